-- The versions ClickHouse already holds of some of one batch's
-- conversions (at most `HELD_IDS_PER_QUERY` ids, bound as a tuple for IN),
-- with the state each holds. The time and id range of those conversions
-- (ids sort by arrival time, and every version keeps its conversion's ts)
-- let ClickHouse skip partitions and granules; IN keeps the answer to
-- these conversions' own versions, even when a status change of an old
-- conversion widens the range to a month.
-- Asked before EVERY conversion batch: a pair stored twice would count
-- twice in conversions_15m, and a version may reach the log twice (a claim
-- taken over). The state fills in what a later version written before
-- event format 3 lacks (prev_*). One query per batch of up to that many
-- conversions, not per row.
-- params: UInt32, UInt32, String, String, Tuple(String)
SELECT conversion_id, version, status, amount, payout
FROM {database}.conversions
WHERE ts >= toDateTime(?) AND ts <= toDateTime(?)
  AND conversion_id >= ? AND conversion_id <= ?
  AND conversion_id IN ?
