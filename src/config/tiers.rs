//! `[tiers]`: performance tiers, the program's rules for promoting and
//! demoting partners (none by default: tiers are then set by hand), and
//! bonuses, one-off amounts for reaching a threshold in a period (none by
//! default).

use std::collections::HashSet;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::events::Money;
use crate::model::is_currency;
use crate::partners::bonuses::{valid_rule_name, BonusRule};
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
    /// Bonuses, evaluated in the same rounds (`[[tiers.bonuses]]` with
    /// `name`, `metric`, `threshold`, `period` = `week`, `month` or
    /// `quarter`, `amount`, `currency`).
    pub bonuses: Vec<BonusRule>,
}

impl Default for TiersConfig {
    fn default() -> Self {
        TiersConfig {
            levels: Vec::new(),
            grace_days: 30,
            evaluate_interval_secs: 86_400,
            bonuses: Vec::new(),
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
        self.validate_bonuses()?;
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

    /// Checks each bonus rule, naming the key that is wrong.
    fn validate_bonuses(&self) -> Result<(), ConfigError> {
        let mut names = HashSet::new();
        for (i, b) in self.bonuses.iter().enumerate() {
            let key = |k: &str| format!("tiers.bonuses[{i}].{k}");
            let bad = |k: &str, why: &str| Err(ConfigError::new(key(k), why.to_string()));
            if !valid_rule_name(&b.name) {
                return bad("name", "must be 1 to 64 of A-Z a-z 0-9 _ . -");
            }
            if !names.insert(b.name.as_str()) {
                return Err(ConfigError::new(
                    key("name"),
                    format!("{:?} is named twice", b.name),
                ));
            }
            if b.threshold <= Decimal::ZERO {
                return bad("threshold", "must be above 0");
            }
            if b.amount <= Decimal::ZERO {
                return bad("amount", "must be above 0");
            }
            // It is recorded as a Decimal(18, 4), exactly.
            if Money::from_decimal(b.amount).is_err() {
                return bad(
                    "amount",
                    "must have at most 4 decimals and fit Decimal(18, 4)",
                );
            }
            if !is_currency(&b.currency) {
                return bad(
                    "currency",
                    "must be an ISO 4217 currency code in use, such as USD",
                );
            }
        }
        Ok(())
    }

    /// Whether there is anything for a round to do.
    pub fn any_rules(&self) -> bool {
        !self.levels.is_empty() || !self.bonuses.is_empty()
    }

    /// The distinct windows the levels count over.
    pub fn windows(&self) -> Vec<u32> {
        let mut w: Vec<u32> = self.levels.iter().map(|l| l.window_days).collect();
        w.sort_unstable();
        w.dedup();
        w
    }
}
