//! `[partners]`: the public application form (`POST /apply`) and which
//! applications are approved without an admin.

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::model::PartnerKind;

/// Partner application settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PartnersConfig {
    /// Whether `POST /apply` takes applications; false answers `404`, for
    /// programs whose partners an admin creates.
    pub accept_applications: bool,
    /// Kinds (`affiliate`, `referral`, `reseller`) whose applications are
    /// `active` at once, recorded as `auto_approve: <kind>`; the others
    /// wait as `applied` for an admin. Default none.
    pub auto_approve: Vec<PartnerKind>,
    /// Applications one client IP may send per hour, on each node (burst:
    /// `applications_burst`); over it, `429` and nothing stored. Counts
    /// every attempt, refused ones included. 0 disables.
    pub applications_per_ip_per_hour: u32,
    /// Applications one client IP may send at once before the hourly
    /// rate applies.
    pub applications_burst: u32,
}

impl Default for PartnersConfig {
    fn default() -> Self {
        PartnersConfig {
            accept_applications: true,
            auto_approve: Vec::new(),
            applications_per_ip_per_hour: 10,
            applications_burst: 3,
        }
    }
}

impl PartnersConfig {
    /// Checks each bound, naming the key that is out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=10_000).contains(&self.applications_burst) {
            return Err(ConfigError::new(
                "partners.applications_burst",
                format!(
                    "must be between 1 and 10000, got {}",
                    self.applications_burst
                ),
            ));
        }
        Ok(())
    }
}
