//! `[stats]`: the limits of `GET /api/v1/stats`.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Stats API settings: every bound a query is held to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsConfig {
    /// Rows answered when the request gives no `limit`.
    pub default_limit: u64,
    /// Most rows one answer may hold (`limit` above it is refused): the
    /// row cap that keeps an answer's memory bounded; more come by cursor.
    pub max_limit: u64,
    /// Longest `from`..`to` range, in days (a little more across a daylight
    /// saving change); longer is refused with `400`.
    pub max_range_days: u64,
    /// Seconds a stats query may run, in ClickHouse (`max_execution_time`)
    /// and in the wait for its answer; past it, `503`.
    pub query_timeout_secs: u64,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            default_limit: 1000,
            max_limit: 10_000,
            max_range_days: 400,
            query_timeout_secs: 30,
        }
    }
}

impl StatsConfig {
    /// Checks each bound, naming the key that is out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let range = |key: &str, v: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(ConfigError::new(
                    key,
                    format!("must be between {lo} and {hi}, got {v}"),
                ))
            }
        };
        range("stats.max_limit", self.max_limit, 1, 1_000_000)?;
        range("stats.default_limit", self.default_limit, 1, self.max_limit)?;
        // 49,000 days keeps every range inside ClickHouse's DateTime.
        range("stats.max_range_days", self.max_range_days, 1, 49_000)?;
        range("stats.query_timeout_secs", self.query_timeout_secs, 1, 3600)
    }
}
