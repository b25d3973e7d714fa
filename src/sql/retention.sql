-- Retention: how long ClickHouse keeps raw rows, as a TTL on their ts
-- (`retention.clicks_days`, `retention.orphan_hits_days`). migrate runs
-- each only on ClickHouse 19.6 or later (18.16 has no TTL) and only when
-- the table's TTL differs: changing a TTL rewrites the table's parts.
-- The first statement is for clicks, the second for orphan_hits.
-- params: UInt32
ALTER TABLE {database}.clicks MODIFY TTL ts + INTERVAL ? DAY
;
-- params: UInt32
ALTER TABLE {database}.orphan_hits MODIFY TTL ts + INTERVAL ? DAY
;
