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

    #[test]
    fn clicks_columns_match_the_row_type() {
        let clicks = statements("d")
            .into_iter()
            .find(|x| x.contains("d.clicks"))
            .unwrap();
        let cols: Vec<&str> = clicks
            .lines()
            .map(str::trim)
            .filter(|l| l.ends_with(',') || l.ends_with("String") || l.ends_with("UInt8"))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        let expected = [
            "click_id",
            "ts",
            "code",
            "link_id",
            "partner_id",
            "offer_id",
            "sub1",
            "sub2",
            "sub3",
            "sub4",
            "sub5",
            "ip",
            "user_agent",
            "referer",
            "is_bot",
            "is_rate_limited",
            "country",
            "device",
            "node",
        ];
        assert_eq!(cols, expected);
    }
}
