-- A table's full engine clause, TTL included (`... TTL ts +
-- toIntervalDay(90) ...`): migrate leaves a TTL that is already right alone.
-- params: String, String
SELECT engine_full
FROM system.tables
WHERE database = ? AND name = ?
