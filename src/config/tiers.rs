//! `[tiers]`: performance tiers, the program's rules for promoting and
//! demoting partners (none by default: tiers are then set by hand).

use std::collections::HashSet;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::partners::tiers::TierLevel;

/// Tier rules and when they run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TiersConfig {
    /// The tiers, lowest first (`[[tiers.levels]]` with `name`, `metric`
    /// = `conversions`, `revenue` or `payout`, `threshold`, `window_days`).
    pub levels: Vec<TierLevel>,
    /// Days a partner's results must stay below its tier before it is
    /// demoted; promotion is at once.
    pub grace_days: u32,
    /// Seconds between two evaluations (one node evaluates per period).
    pub evaluate_interval_secs: u64,
}

impl Default for TiersConfig {
    fn default() -> Self {
        TiersConfig {
            levels: Vec::new(),
            grace_days: 30,
            evaluate_interval_secs: 86_400,
        }
    }
}

impl TiersConfig {
    /// Checks each level, naming the key that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut names = HashSet::new();
        for (i, l) in self.levels.iter().enumerate() {
            let key = |k: &str| format!("tiers.levels[{i}].{k}");
            if l.name.trim().is_empty() || l.name.len() > 64 {
                return Err(ConfigError::new(
                    key("name"),
                    "must be 1 to 64 characters".to_string(),
                ));
            }
            if !names.insert(l.name.as_str()) {
                return Err(ConfigError::new(
                    key("name"),
                    format!("{:?} is named twice", l.name),
                ));
            }
            if l.threshold <= Decimal::ZERO {
                return Err(ConfigError::new(
                    key("threshold"),
                    "must be above 0".to_string(),
                ));
            }
            if !(1..=3660).contains(&l.window_days) {
                return Err(ConfigError::new(
                    key("window_days"),
                    "must be between 1 and 3660".to_string(),
                ));
            }
        }
        if self.grace_days > 3660 {
            return Err(ConfigError::new(
                "tiers.grace_days",
                "must be at most 3660".to_string(),
            ));
        }
        if !(60..=30 * 86_400).contains(&self.evaluate_interval_secs) {
            return Err(ConfigError::new(
                "tiers.evaluate_interval_secs",
                "must be between 60 and 2592000".to_string(),
            ));
        }
        Ok(())
    }

    /// The distinct windows the levels count over.
    pub fn windows(&self) -> Vec<u32> {
        let mut w: Vec<u32> = self.levels.iter().map(|l| l.window_days).collect();
        w.sort_unstable();
        w.dedup();
        w
    }
}
