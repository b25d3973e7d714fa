-- The sub-ids of one click, for a partner postback that names them: found
-- by the second the click id says it was issued at (which the row's `ts`
-- holds, so only that month's partition is read) and the id. The
-- partner is read too: the sub-ids are told only to the click's partner.
-- params: UInt32, UInt32, String
SELECT partner_id, sub1, sub2, sub3, sub4, sub5
FROM {database}.clicks
WHERE ts >= toDateTime(?) AND ts <= toDateTime(?)
  AND click_id = ?
LIMIT 1
