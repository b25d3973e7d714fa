-- Whether a table has a column: 1 or 0. migrate asks it before each
-- ALTER TABLE ... ADD COLUMN, which ClickHouse 18.16 cannot make
-- conditional.
-- params: String, String, String
SELECT count()
FROM system.columns
WHERE database = ? AND table = ? AND name = ?
