-- The (conversion_id, version) pairs of one batch that ClickHouse already
-- holds, found by the batch's time range and id range. Asked before a batch
-- whose earlier INSERT had an unknown outcome is sent again.
-- params: UInt32, UInt32, String, String
SELECT conversion_id, version
FROM {database}.conversions
WHERE ts >= toDateTime(?) AND ts <= toDateTime(?)
  AND conversion_id >= ? AND conversion_id <= ?
