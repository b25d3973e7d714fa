-- Whether a table or view exists: 1 or 0. migrate asks it before creating
-- a rollup's materialized view, to fill the rollup from the rows already
-- stored when the view is new.
-- params: String, String
SELECT count()
FROM system.tables
WHERE database = ? AND name = ?
