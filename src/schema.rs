//! `migrate`: creates or upgrades the ClickHouse schema. Idempotent, so
//! `serve` runs it on every start.
//!
//! The statements live in `deploy/clickhouse/schema.sql`, the one copy that
//! operators read, CI proves on ClickHouse 18.16 and on a current release,
//! and this module runs. A column added after a table's first release is an
//! `ALTER TABLE ... ADD COLUMN` statement there, which [`migrate`] runs only
//! when `system.columns` lacks the column: ClickHouse 18.16 has no
//! `ADD COLUMN IF NOT EXISTS`.

use clickhouse::Client;

/// The schema file, compiled in.
pub const SCHEMA_SQL: &str = include_str!("../deploy/clickhouse/schema.sql");

/// Whether a table has a column (see `src/sql/column_exists.sql`).
pub const COLUMN_EXISTS_SQL: &str = include_str!("sql/column_exists.sql");

/// A query file of `src/sql/` as sent: its `--` comment lines dropped (the
/// files document themselves; the server needs none of it) and
/// `{database}` filled in.
pub fn query_text(sql: &str, database: &str) -> String {
    sql.lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("{database}", database)
}

/// The schema's statements for `database`, in order.
pub fn statements(database: &str) -> Vec<String> {
    statements_of(SCHEMA_SQL, database)
}

/// The statements of `sql`, a file in `schema.sql`'s layout (statements
/// separated by a line holding only `;`, `--` comment lines), for
/// `database`, in order.
pub fn statements_of(sql: &str, database: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
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

/// The table and column an `ALTER TABLE db.table ADD COLUMN name ...`
/// statement adds, or `None` for any other statement.
pub fn added_column(statement: &str) -> Option<(&str, &str)> {
    let words: Vec<&str> = statement.split_whitespace().take(6).collect();
    match words[..] {
        ["ALTER", "TABLE", qualified, "ADD", "COLUMN", column] => {
            let table = qualified.rsplit_once('.').map_or(qualified, |(_, t)| t);
            Some((table, column))
        }
        _ => None,
    }
}

/// Runs every statement against `client` (which must not name a database:
/// the first statement creates it), skipping each `ADD COLUMN` whose column
/// exists. Returns how many statements ran.
pub async fn migrate(client: &Client, database: &str) -> clickhouse::error::Result<usize> {
    let column_exists = query_text(COLUMN_EXISTS_SQL, database);
    let has = |table: &str, column: &str| {
        client
            .query(&column_exists)
            .bind(database)
            .bind(table)
            .bind(column)
            .fetch_one::<u64>()
    };
    let mut ran = 0;
    for s in statements(database) {
        if let Some((table, column)) = added_column(&s) {
            if has(table, column).await? > 0 {
                continue;
            }
            if let Err(e) = client.query(&s).execute().await {
                // Another node migrating at the same time may have added it.
                if has(table, column).await? > 0 {
                    continue;
                }
                return Err(e);
            }
        } else {
            client.query(&s).execute().await?;
        }
        ran += 1;
    }
    Ok(ran)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ConversionRow, OrphanRow, PostbackDeliveryRow, ShippedClick};
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
        assert!(s
            .iter()
            .any(|x| x.starts_with("ALTER TABLE te_x.conversions")));
        // The crate treats `?` as a bind placeholder.
        assert!(s.iter().all(|x| !x.contains('?')));
    }

    /// The columns of `table`'s CREATE TABLE, in order, as (name, type):
    /// the lines between the lone `(` and `)`.
    fn typed_columns(table: &str) -> Vec<(String, String)> {
        let stmt = statements("d")
            .into_iter()
            .find(|x| x.starts_with(&format!("CREATE TABLE IF NOT EXISTS d.{table}\n")))
            .unwrap_or_else(|| panic!("no CREATE TABLE for {table}"));
        stmt.lines()
            .map(str::trim)
            .skip_while(|l| *l != "(")
            .skip(1)
            .take_while(|l| *l != ")")
            .map(|l| {
                let (name, ty) = l.trim_end_matches(',').split_once(' ').unwrap_or((l, ""));
                (name.to_string(), ty.trim().to_string())
            })
            .collect()
    }

    fn columns(table: &str) -> Vec<String> {
        typed_columns(table).into_iter().map(|(n, _)| n).collect()
    }

    /// `table`'s columns are `expected`, in that order.
    fn check(table: &str, expected: &[&str]) {
        assert_eq!(columns(table), expected, "columns of {table}");
    }

    #[test]
    fn added_columns_are_recognised() {
        let cases = [
            (
                "ALTER TABLE d.conversions ADD COLUMN payout_rule String AFTER attribution",
                Some(("conversions", "payout_rule")),
            ),
            ("ALTER TABLE t ADD COLUMN c UInt8", Some(("t", "c"))),
            ("ALTER TABLE d.t DROP COLUMN c", None),
            ("CREATE TABLE IF NOT EXISTS d.t (a String)", None),
            ("", None),
        ];
        for (input, expected) in cases {
            assert_eq!(added_column(input), expected, "{input}");
        }
    }

    /// An upgraded table must end up as a fresh one: every added column is
    /// in its table's CREATE TABLE with the same type, right after the
    /// column its AFTER names.
    #[test]
    fn added_columns_match_the_create_table() {
        let added: Vec<String> = statements("d")
            .into_iter()
            .filter(|s| added_column(s).is_some())
            .collect();
        assert!(added.len() >= 4, "{added:?}");
        for s in &added {
            let (table, column) = added_column(s).unwrap();
            let created = typed_columns(table);
            let at = created
                .iter()
                .position(|(n, _)| n == column)
                .unwrap_or_else(|| panic!("{column} is not in CREATE TABLE {table}"));
            let rest = s.split_whitespace().skip(6).collect::<Vec<_>>().join(" ");
            let (ty, after) = rest.split_once(" AFTER ").expect("an AFTER clause");
            assert_eq!(created[at].1, ty, "type of {table}.{column}");
            assert!(at > 0 && created[at - 1].0 == after, "{s}");
        }
    }

    #[test]
    fn event_tables_match_their_row_types() {
        // The crate names a row type's fields, in declaration order, in the
        // INSERT and sends RowBinary in that order: the table must agree
        // field for field, so a renamed, added or reordered field fails here.
        check("clicks", ShippedClick::COLUMN_NAMES);
        check("orphan_hits", OrphanRow::COLUMN_NAMES);
        check("conversions", ConversionRow::COLUMN_NAMES);
        check("postback_deliveries", PostbackDeliveryRow::COLUMN_NAMES);
    }
}
