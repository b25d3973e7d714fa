-- The click ids of one batch that ClickHouse already holds, found by the
-- batch's time range and id range (click ids sort by time). Asked before a
-- batch whose earlier INSERT had an unknown outcome is sent again.
-- params: UInt32, UInt32, String, String
SELECT click_id
FROM {database}.clicks
WHERE ts >= toDateTime(?) AND ts <= toDateTime(?)
  AND click_id >= ? AND click_id <= ?
