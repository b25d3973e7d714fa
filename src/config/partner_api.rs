//! `[partner_api]`: the partner API under `/partner/v1/` on the public
//! listener.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Partner API settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PartnerApiConfig {
    /// Requests per minute one partner API key may make; over it, `429`
    /// with `Retry-After`. Counted per node (each node has its own
    /// budget), after the key is known to exist.
    pub requests_per_minute: u32,
    /// Requests one key may make at once before the rate applies.
    pub burst: u32,
}

impl Default for PartnerApiConfig {
    fn default() -> Self {
        PartnerApiConfig {
            requests_per_minute: 600,
            burst: 60,
        }
    }
}

impl PartnerApiConfig {
    /// Checks each value, naming the key that is out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=1_000_000).contains(&self.requests_per_minute) {
            return Err(ConfigError::new(
                "partner_api.requests_per_minute",
                format!(
                    "must be between 1 and 1000000, got {}",
                    self.requests_per_minute
                ),
            ));
        }
        if !(1..=100_000).contains(&self.burst) {
            return Err(ConfigError::new(
                "partner_api.burst",
                format!("must be between 1 and 100000, got {}", self.burst),
            ));
        }
        Ok(())
    }
}
