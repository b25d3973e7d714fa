//! Retention: how long ClickHouse keeps raw rows, as a `TTL` on their `ts`
//! (`retention.clicks_days`, `retention.orphan_hits_days`).
//!
//! ClickHouse has table TTLs from 19.6 on; on an older server (Debian's
//! 18.16) this logs one warning and changes nothing, and README, Retention,
//! says how to drop old monthly partitions instead. A TTL already set to
//! the configured days is left alone: setting one rewrites the table's
//! parts. 0 sets nothing (and removes nothing: see README).

use clickhouse::Client;
use tracing::{info, warn};

use crate::config::RetentionConfig;
use crate::schema::statements_of;

/// The TTL statements, one per table in [`TABLES`] order.
pub const RETENTION_SQL: &str = include_str!("sql/retention.sql");

/// `SELECT version()`.
pub const SERVER_VERSION_SQL: &str = include_str!("sql/server_version.sql");

/// A table's `engine_full`.
pub const TABLE_ENGINE_SQL: &str = include_str!("sql/table_engine.sql");

/// The tables with a retention, in the order of [`RETENTION_SQL`]'s
/// statements.
pub const TABLES: [&str; 2] = ["clicks", "orphan_hits"];

/// The first ClickHouse release with table TTLs.
const FIRST_WITH_TTL: (u32, u32) = (19, 6);

/// Whether a server of `version` (`18.16.1`, `24.8.4.13`) has table TTLs;
/// a version that does not parse is taken for one that has them (an
/// unknown build is a new one), and a refused ALTER then says why.
pub fn supports_ttl(version: &str) -> bool {
    let mut parts = version.trim().split('.').map(|p| p.parse::<u32>());
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= FIRST_WITH_TTL,
        _ => true,
    }
}

/// Whether `engine_full` (from `system.tables`) already has the TTL of
/// `days` on `ts`, as ClickHouse writes it back.
pub fn has_ttl(engine_full: &str, days: u32) -> bool {
    engine_full.contains(&format!("TTL ts + toIntervalDay({days})"))
}

/// `sql` without its comment lines.
fn bare(sql: &str) -> String {
    sql.lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Sets the configured TTLs on `database`'s tables where the server has
/// TTLs and a table's differs. Returns how many it set.
pub async fn apply(
    client: &Client,
    database: &str,
    cfg: &RetentionConfig,
) -> clickhouse::error::Result<usize> {
    let wanted: Vec<(&str, u32, String)> = TABLES
        .iter()
        .zip([cfg.clicks_days, cfg.orphan_hits_days])
        .zip(statements_of(RETENTION_SQL, database))
        .filter(|((_, days), _)| *days > 0)
        .map(|((table, days), sql)| (*table, days, sql))
        .collect();
    if wanted.is_empty() {
        return Ok(0);
    }
    let version = client
        .query(&bare(SERVER_VERSION_SQL))
        .fetch_one::<String>()
        .await?;
    if !supports_ttl(&version) {
        warn!(
            version = %version,
            "retention is configured but this clickhouse has no TTL (19.6 and later): rows are kept until old partitions are dropped by hand (README, Retention)"
        );
        return Ok(0);
    }
    let engine_sql = bare(TABLE_ENGINE_SQL);
    let mut set = 0;
    for (table, days, sql) in wanted {
        let engine = client
            .query(&engine_sql)
            .bind(database)
            .bind(table)
            .fetch_one::<String>()
            .await?;
        if has_ttl(&engine, days) {
            continue;
        }
        client.query(&sql).bind(days).execute().await?;
        info!(
            table,
            days, "retention set: rows older than this are deleted by clickhouse"
        );
        set += 1;
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_support_by_version() {
        let cases = [
            ("18.16.1", false),
            ("19.5.4.1", false),
            ("19.6.1", true),
            ("19.13.1.11", true),
            ("20.3.5", true),
            ("24.8.4.13", true),
            ("26.9.2.1", true),
            ("1.1.54343", false),
            ("nonsense", true),
        ];
        for (version, expected) in cases {
            assert_eq!(supports_ttl(version), expected, "{version}");
        }
    }

    #[test]
    fn ttl_already_set() {
        let with = "MergeTree PARTITION BY toYYYYMM(ts) ORDER BY ts TTL ts + toIntervalDay(90) SETTINGS index_granularity = 8192";
        let cases = [
            (with, 90, true),
            (with, 9, false),
            (with, 900, false),
            (
                "MergeTree PARTITION BY toYYYYMM(ts) ORDER BY ts SETTINGS index_granularity = 8192",
                90,
                false,
            ),
        ];
        for (engine, days, expected) in cases {
            assert_eq!(has_ttl(engine, days), expected, "{days} {engine}");
        }
    }

    #[test]
    fn one_statement_per_table() {
        let s = statements_of(RETENTION_SQL, "d");
        assert_eq!(s.len(), TABLES.len());
        for (sql, table) in s.iter().zip(TABLES) {
            assert!(
                sql.starts_with(&format!(
                    "ALTER TABLE d.{table} MODIFY TTL ts + INTERVAL ? DAY"
                )),
                "{sql}"
            );
        }
    }
}
