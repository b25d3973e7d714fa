//! `migrate`: creates or upgrades the ClickHouse schema. Idempotent, so
//! `serve` runs it on every start.
//!
//! The statements live in `deploy/clickhouse/schema.sql`, the one copy that
//! operators read, CI proves on ClickHouse 18.16 and on a current release,
//! and this module runs.

use clickhouse::Client;

/// The schema file, compiled in.
pub const SCHEMA_SQL: &str = include_str!("../deploy/clickhouse/schema.sql");

/// The schema's statements for `database`, in order.
pub fn statements(database: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in SCHEMA_SQL.lines() {
        let trimmed = line.trim();
        if trimmed == ";" {
            if !current.trim().is_empty() {
                out.push(current.trim().replace("{database}", database));
            }
            current.clear();
        } else if !trimmed.starts_with("--") {
            current.push_str(line);
            current.push('\n');
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().replace("{database}", database));
    }
    out
}

/// Runs every statement against `client` (which must not name a database:
/// the first statement creates it).
pub async fn migrate(client: &Client, database: &str) -> clickhouse::error::Result<usize> {
    let stmts = statements(database);
    for s in &stmts {
        client.query(s).execute().await?;
    }
    Ok(stmts.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ClickRow, OrphanRow};
    use clickhouse::Row;

    #[test]
    fn statements_split_and_substitute() {
        let s = statements("te_x");
        assert!(s.len() >= 4, "{s:?}");
        assert_eq!(s[0], "CREATE DATABASE IF NOT EXISTS te_x");
        assert!(s
            .iter()
            .all(|x| !x.contains("{database}") && !x.contains(';')));
        assert!(s
            .iter()
            .any(|x| x.starts_with("CREATE TABLE IF NOT EXISTS te_x.clicks")));
        assert!(s
            .iter()
            .any(|x| x.starts_with("CREATE TABLE IF NOT EXISTS te_x.conversions")));
        // The crate treats `?` as a bind placeholder.
        assert!(s.iter().all(|x| !x.contains('?')));
    }

    /// The columns of `table`'s CREATE TABLE, in order: the lines between
    /// the lone `(` and `)`, each a name and a type.
    fn columns(table: &str) -> Vec<String> {
        let stmt = statements("d")
            .into_iter()
            .find(|x| x.starts_with(&format!("CREATE TABLE IF NOT EXISTS d.{table}\n")))
            .unwrap_or_else(|| panic!("no CREATE TABLE for {table}"));
        stmt.lines()
            .map(str::trim)
            .skip_while(|l| *l != "(")
            .skip(1)
            .take_while(|l| *l != ")")
            .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
            .collect()
    }

    /// `table`'s columns are `expected`, in that order.
    fn check(table: &str, expected: &[&str]) {
        assert_eq!(columns(table), expected, "columns of {table}");
    }

    #[test]
    fn event_tables_match_their_row_types() {
        // The crate names a row type's fields, in declaration order, in the
        // INSERT and sends RowBinary in that order: the table must agree
        // field for field, so a renamed, added or reordered field fails here.
        check("clicks", ClickRow::COLUMN_NAMES);
        check("orphan_hits", OrphanRow::COLUMN_NAMES);
    }
}
