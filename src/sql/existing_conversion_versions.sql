-- The versions ClickHouse already holds of one batch's conversions, found
-- by the batch's time range and id range (ids sort by arrival time, and
-- every version keeps its conversion's ts), with the state each holds.
-- Asked before EVERY conversion batch: a pair stored twice would count
-- twice in conversions_15m, and a version may reach the log twice (a claim
-- taken over). The state fills in what a later version written before
-- event format 3 lacks (prev_*). One query per batch, not per row.
-- params: UInt32, UInt32, String, String
SELECT conversion_id, version, status, amount, payout
FROM {database}.conversions
WHERE ts >= toDateTime(?) AND ts <= toDateTime(?)
  AND conversion_id >= ? AND conversion_id <= ?
