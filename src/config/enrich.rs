//! The analytics-side keys: what the shipper adds to each click
//! (`enrich.*`), what it may keep of the client (`privacy.*`), and how long
//! ClickHouse keeps raw rows (`retention.*`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Click enrichment, done by the shipper (never the redirect).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichConfig {
    /// A country database in MaxMind's `.mmdb` format (the
    /// `geo-whois-asn-country` one that `scripts/services.sh geoip` fetches,
    /// or a GeoIP2/GeoLite2 Country or City file). Read once at start; a
    /// missing file leaves `country` to the trusted proxy's header, with one
    /// warning. Empty: no lookup, no warning.
    pub geoip_path: PathBuf,
    /// Distinct user agents whose parse is kept (device, OS, browser); real
    /// traffic repeats a few hundred endlessly, a flood of made-up ones
    /// only costs parse time.
    pub agent_cache_entries: usize,
}

impl Default for EnrichConfig {
    fn default() -> Self {
        EnrichConfig {
            geoip_path: PathBuf::from("./data/geoip/geo-whois-asn-country.mmdb"),
            agent_cache_entries: 20_000,
        }
    }
}

/// What is kept about the person who clicked.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Store the client IP in `clicks.ip`, `orphan_hits.ip` and
    /// `conversions.ip`. Off, those columns stay empty: the country and
    /// the daily visitor hash are still derived from the IP first, and the
    /// IP only passes through the spool on its way.
    pub store_ip: bool,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig { store_ip: true }
    }
}

/// How long ClickHouse keeps raw rows (a `TTL`, on ClickHouse 19.6 and
/// later; see README, Retention, for older servers). Rollups are not
/// affected: they keep their aggregates. Both default to 0 (forever):
/// deleting a deployment's data is the operator's choice.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Days a row of `clicks` is kept after its `ts`; 0 keeps them forever.
    pub clicks_days: u32,
    /// Days a row of `orphan_hits` is kept after its `ts`; 0 keeps them
    /// forever.
    pub orphan_hits_days: u32,
}

/// Most days a retention may name: past 100 years it means "forever",
/// which 0 says.
const MAX_RETENTION_DAYS: u32 = 36_500;

/// Checks the keys of this file.
pub(super) fn validate(
    enrich: &EnrichConfig,
    retention: &RetentionConfig,
) -> Result<(), ConfigError> {
    if enrich.agent_cache_entries < 16 || enrich.agent_cache_entries > 10_000_000 {
        return Err(ConfigError::new(
            "enrich.agent_cache_entries",
            format!(
                "must be between 16 and 10000000, got {}",
                enrich.agent_cache_entries
            ),
        ));
    }
    for (key, days) in [
        ("retention.clicks_days", retention.clicks_days),
        ("retention.orphan_hits_days", retention.orphan_hits_days),
    ] {
        if days > MAX_RETENTION_DAYS {
            return Err(ConfigError::new(
                key,
                format!("must be at most {MAX_RETENTION_DAYS} (0 keeps rows forever), got {days}"),
            ));
        }
    }
    Ok(())
}
