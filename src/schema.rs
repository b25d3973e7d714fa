//! `migrate`: creates or upgrades the ClickHouse schema. Idempotent, so
//! `serve` runs it on every start.
//!
//! The statements live in `deploy/clickhouse/schema.sql`, the one copy that
//! operators read, CI proves on ClickHouse 18.16 and on a current release,
//! and this module runs. A column added after a table's first release is an
//! `ALTER TABLE ... ADD COLUMN` statement there, which [`migrate`] runs only
//! when `system.columns` lacks the column: ClickHouse 18.16 has no
//! `ADD COLUMN IF NOT EXISTS`.
//!
//! # Rollups and their backfill
//!
//! A rollup (`clicks_15m`, `clicks_15m_links`, `conversions_15m`) is fed
//! by a materialized view, which sees only rows inserted after it exists.
//! So when the view of a rollup in [`BACKFILLED_VIEWS`] does not exist
//! yet, [`migrate`] empties the rollup (left half-filled by an earlier
//! attempt that failed, or new), fills it from the rows already stored
//! with the view's own SELECT (or, for `conversions_15m`, one counting
//! each conversion's latest version: [`BACKFILL_SELECTS`]), and only then
//! creates the view: the view's existence marks a finished backfill, so a
//! failed attempt is redone whole by the next. `serve` ships nothing
//! before its migration has finished, so on one node no click is counted
//! twice or missed; with several nodes, run `trackedge migrate` once
//! before upgrading them (README, "Upgrading").

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
/// Whether a table or view exists (see `src/sql/table_exists.sql`).
pub const TABLE_EXISTS_SQL: &str = include_str!("sql/table_exists.sql");

/// Materialized views whose target is a rollup to fill from the rows
/// already stored when the view is first created.
pub const BACKFILLED_VIEWS: &[&str] =
    &["clicks_15m_mv", "clicks_15m_links_mv", "conversions_15m_mv"];

/// Fills `conversions_15m` from the conversions stored, in their latest
/// state (see `src/sql/conversions_15m_backfill.sql`).
pub const CONVERSIONS_15M_BACKFILL_SQL: &str = include_str!("sql/conversions_15m_backfill.sql");

/// Views of [`BACKFILLED_VIEWS`] whose rollup is filled by a SELECT of its
/// own rather than the view's: the view counts each row as a change of
/// state, which only rows written since it exists can say.
pub const BACKFILL_SELECTS: &[(&str, &str)] =
    &[("conversions_15m_mv", CONVERSIONS_15M_BACKFILL_SQL)];

/// The SELECT that fills `rollup`'s table in `database` before its view
/// exists: its own from [`BACKFILL_SELECTS`], else the view's.
pub fn backfill_select(rollup: &RollupView<'_>, database: &str) -> String {
    BACKFILL_SELECTS
        .iter()
        .find(|(view, _)| *view == rollup.view)
        .map_or_else(
            || rollup.select.to_string(),
            |(_, sql)| query_text(sql, database),
        )
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

/// A rollup's view statement, `CREATE MATERIALIZED VIEW IF NOT EXISTS
/// db.view TO db.table AS SELECT ...`, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupView<'a> {
    /// The view's name, without the database.
    pub view: &'a str,
    /// The rollup table, with its database.
    pub target: &'a str,
    /// The view's SELECT, which also fills the rollup from stored rows.
    pub select: &'a str,
}

/// `statement` taken apart when it creates a view of [`BACKFILLED_VIEWS`],
/// else `None`.
pub fn rollup_view(statement: &str) -> Option<RollupView<'_>> {
    let rest = statement.strip_prefix("CREATE MATERIALIZED VIEW IF NOT EXISTS ")?;
    let (qualified, rest) = rest.split_once(char::is_whitespace)?;
    let view = qualified.rsplit_once('.').map_or(qualified, |(_, v)| v);
    if !BACKFILLED_VIEWS.contains(&view) {
        return None;
    }
    let rest = rest.trim_start().strip_prefix("TO ")?;
    let (target, rest) = rest.split_once(char::is_whitespace)?;
    let select = rest.trim_start().strip_prefix("AS ")?.trim_start();
    select.starts_with("SELECT").then_some(RollupView {
        view,
        target,
        select,
    })
}

/// Runs every statement against `client` (which must not name a database:
/// the first statement creates it), skipping each `ADD COLUMN` whose column
/// exists, and filling each rollup whose view is new before creating the
/// view. Returns how many statements ran.
pub async fn migrate(client: &Client, database: &str) -> clickhouse::error::Result<usize> {
    let column_exists = query_text(COLUMN_EXISTS_SQL, database);
    let table_exists = query_text(TABLE_EXISTS_SQL, database);
    let has = |table: &str, column: &str| {
        client
            .query(&column_exists)
            .bind(database)
            .bind(table)
            .bind(column)
            .fetch_one::<u64>()
    };
    let exists = |name: &str| {
        client
            .query(&table_exists)
            .bind(database)
            .bind(name)
            .fetch_one::<u64>()
    };
    let mut ran = 0;
    for s in statements(database) {
        if let Some(rollup) = rollup_view(&s) {
            if exists(rollup.view).await? == 0 {
                backfill(client, &rollup, &backfill_select(&rollup, database)).await?;
            }
            // Like every CREATE ... IF NOT EXISTS: a no-op once it exists.
            client.query(&s).execute().await?;
        } else if let Some((table, column)) = added_column(&s) {
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

/// Empties `rollup`'s table (left half-filled by an earlier attempt, or
/// new) and fills it from the rows already stored with `select`; the
/// caller creates the view next.
async fn backfill(
    client: &Client,
    rollup: &RollupView<'_>,
    select: &str,
) -> clickhouse::error::Result<()> {
    let started = std::time::Instant::now();
    client
        .query(&format!("TRUNCATE TABLE {}", rollup.target))
        .execute()
        .await?;
    client
        .query(&format!("INSERT INTO {} {select}", rollup.target))
        .execute()
        .await?;
    tracing::info!(
        rollup = rollup.target,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "rollup filled from the rows already stored; creating its view"
    );
    Ok(())
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
            // conversion_history is created AS conversions: its columns
            // are conversions'.
            let created = typed_columns(match table {
                "conversion_history" => "conversions",
                t => t,
            });
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

    /// The output column names of a SELECT's list (`expr AS name` or a
    /// bare column), in order.
    fn select_names(select: &str) -> Vec<String> {
        let list = select
            .strip_prefix("SELECT")
            .and_then(|s| s.split("\nFROM").next())
            .expect("SELECT ... FROM");
        list.lines()
            .map(|l| l.trim().trim_end_matches(','))
            .filter(|l| !l.is_empty())
            .map(|l| l.rsplit(" AS ").next().unwrap_or(l).to_string())
            .collect()
    }

    /// The backfill inserts the view's SELECT by position: its columns
    /// must be the rollup's, in table order.
    #[test]
    fn rollup_views_select_their_tables_columns_in_order() {
        let views: Vec<String> = statements("d")
            .into_iter()
            .filter(|s| rollup_view(s).is_some())
            .collect();
        assert_eq!(views.len(), BACKFILLED_VIEWS.len(), "{views:?}");
        for s in &views {
            let v = rollup_view(s).unwrap();
            let table = v.target.strip_prefix("d.").expect("qualified target");
            assert_eq!(select_names(v.select), columns(table), "{}", v.view);
            let fill = backfill_select(&v, "d");
            assert_eq!(
                select_names(&fill),
                columns(table),
                "backfill of {}",
                v.view
            );
        }
        for (view, _) in BACKFILL_SELECTS {
            assert!(BACKFILLED_VIEWS.contains(view), "{view}");
        }
        let cases = [
            (
                "CREATE MATERIALIZED VIEW IF NOT EXISTS d.clicks_15m_mv\nTO d.clicks_15m\nAS SELECT a FROM d.clicks",
                Some(("clicks_15m_mv", "d.clicks_15m", "SELECT a FROM d.clicks")),
            ),
            // Views that are not rollups are left to the plain statement.
            (
                "CREATE MATERIALIZED VIEW IF NOT EXISTS d.conversion_history_mv\nTO d.conversion_history\nAS SELECT * FROM d.conversions",
                None,
            ),
            ("CREATE TABLE IF NOT EXISTS d.clicks_15m_mv (a UInt8)", None),
        ];
        for (input, expected) in cases {
            assert_eq!(
                rollup_view(input).map(|v| (v.view, v.target, v.select)),
                expected,
                "{input}"
            );
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
        check(
            "partner_payments",
            crate::payments::PaymentRow::COLUMN_NAMES,
        );
        check("partner_bonuses", crate::payments::BonusRow::COLUMN_NAMES);
    }
}
