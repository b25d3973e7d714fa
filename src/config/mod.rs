//! One documented configuration tree, read from TOML and overridden by
//! environment variables, validated once at start.
//!
//! Every key has an environment variable: `TRACKEDGE_` followed by the key's
//! path joined with `_`, upper-cased (`clickhouse.batch_rows` is
//! `TRACKEDGE_CLICKHOUSE_BATCH_ROWS`). Lists take a comma-separated value.
//! `config/trackedge.toml` documents every key with its default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::events::log::{LogConfig, LogConfigError};

mod enrich;
mod sections;
pub use sections::*;

pub use self::enrich::{EnrichConfig, PrivacyConfig, RetentionConfig};
mod partner_api;
mod partners;
mod stats;
pub use partner_api::PartnerApiConfig;
pub use partners::PartnersConfig;
pub use stats::StatsConfig;
mod tiers;
pub use tiers::TiersConfig;

/// The prefix of every environment variable that overrides a key.
pub const ENV_PREFIX: &str = "TRACKEDGE_";

/// The effective configuration of one trackedge process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Public listener: tracked redirects, `healthz` and `readyz`.
    pub listen: SocketAddr,
    /// Admin listener: the JSON API and its OpenAPI document, metrics, health.
    pub admin_listen: SocketAddr,
    /// Base URL of the public listener as users reach it, used to build
    /// `tracking_url`; empty means `http://{listen}`.
    pub public_url: String,
    /// Key that signs click ids; empty means `serve` refuses to start.
    pub secret: String,
    /// Former signing keys, still accepted when verifying click ids, so the
    /// secret can be rotated without rejecting clicks already handed out.
    pub previous_secrets: Vec<String>,
    /// Bearer token of the admin API; empty means the admin API refuses all.
    pub admin_token: String,
    /// SHA-256 digests (64 hex digits) of read-only bearer tokens for
    /// analysts: every `GET` of the admin API (stats, reports, lists),
    /// never a write (`403`). Only digests are configured, so the config
    /// never holds these tokens. Make one with
    /// `printf %s "$TOKEN" | sha256sum`.
    pub read_only_token_sha256: Vec<String>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Where unknown or disabled codes are redirected; empty means a 404 page.
    pub fallback_url: String,
    /// This node's name in the `clicks.node` column; empty means the host name.
    pub node_name: String,
    /// Redis: the catalog of partners, offers and links.
    pub redis: RedisConfig,
    /// ClickHouse: the store of clicks and conversions.
    pub clickhouse: ClickHouseConfig,
    /// The crash-safe event log: every click and conversion until
    /// ClickHouse has it.
    pub spool: SpoolConfig,
    /// Per-client flood limits.
    pub limits: LimitsConfig,
    /// Conversion intake.
    pub conversions: ConversionsConfig,
    /// Calls to partners' postback URLs.
    pub postbacks: PostbacksConfig,
    /// Partner health: when a partner counts as inactive, and what to do.
    pub health: HealthConfig,
    /// HTTP server limits.
    pub http: HttpConfig,
    /// What the shipper adds to each click: country, device, OS, browser.
    pub enrich: EnrichConfig,
    /// What is kept about the person who clicked.
    pub privacy: PrivacyConfig,
    /// How long ClickHouse keeps raw rows.
    pub retention: RetentionConfig,
    /// Limits of the stats API.
    pub stats: StatsConfig,
    /// Performance tier rules.
    pub tiers: TiersConfig,
    /// The partner API's per-key rate.
    pub partner_api: PartnerApiConfig,
    /// Partner applications: the public form and auto-approval.
    pub partners: PartnersConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".parse().expect("literal address"),
            admin_listen: "127.0.0.1:8081".parse().expect("literal address"),
            public_url: String::new(),
            secret: String::new(),
            previous_secrets: Vec::new(),
            admin_token: String::new(),
            read_only_token_sha256: Vec::new(),
            trusted_proxies: vec![
                "127.0.0.0/8".parse().expect("literal network"),
                "::1/128".parse().expect("literal network"),
            ],
            fallback_url: String::new(),
            node_name: String::new(),
            redis: RedisConfig::default(),
            clickhouse: ClickHouseConfig::default(),
            spool: SpoolConfig::default(),
            limits: LimitsConfig::default(),
            conversions: ConversionsConfig::default(),
            postbacks: PostbacksConfig::default(),
            health: HealthConfig::default(),
            http: HttpConfig::default(),
            enrich: EnrichConfig::default(),
            privacy: PrivacyConfig::default(),
            retention: RetentionConfig::default(),
            stats: StatsConfig::default(),
            tiers: TiersConfig::default(),
            partner_api: PartnerApiConfig::default(),
            partners: PartnersConfig::default(),
        }
    }
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("config error: {key}: {problem}")]
pub struct ConfigError {
    /// The key (or file) that is wrong.
    pub key: String,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

impl Config {
    /// Reads `path` (a missing file is fine when `required` is false), applies
    /// environment overrides from `env`, and validates the result.
    pub fn load(
        path: &Path,
        required: bool,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let file = match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => None,
            Err(e) => return Err(ConfigError::new(path.display().to_string(), e.to_string())),
        };
        Self::from_parts(file.as_deref(), env)
    }

    /// Builds a config from TOML text (if any) and environment pairs.
    pub fn from_parts(
        toml_text: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut tree = toml::Value::try_from(Config::default())
            .expect("the default config serializes to TOML");
        if let Some(text) = toml_text {
            let file: toml::Value = toml::from_str(text)
                .map_err(|e| ConfigError::new("config file", e.message().to_string()))?;
            merge(&mut tree, file);
        }
        let env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        apply_env(&mut tree, &mut Vec::new(), &env)?;
        let config: Config = serde_path_to_error::deserialize(tree).map_err(|e| {
            let key = e.path().to_string();
            let problem = e.into_inner().to_string();
            // One line: serde appends context on later lines.
            let first = problem.lines().next().unwrap_or_default().to_string();
            ConfigError::new(key, first)
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value once, so the rest of the program can trust them.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for digest in &self.read_only_token_sha256 {
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError::new(
                    "read_only_token_sha256",
                    "each entry must be a SHA-256 digest in 64 hex digits".to_string(),
                ));
            }
        }
        let range = |key: &str, v: u64, lo: u64, hi: u64| {
            if v < lo || v > hi {
                Err(ConfigError::new(
                    key,
                    format!("must be between {lo} and {hi}, got {v}"),
                ))
            } else {
                Ok(())
            }
        };
        // Port 0 (any free port) on both is fine: they get different ones.
        if self.listen == self.admin_listen && self.listen.port() != 0 {
            return Err(ConfigError::new("admin_listen", "must differ from listen"));
        }
        if !self.public_url.is_empty() {
            check_http_url("public_url", &self.public_url)?;
        }
        if !self.fallback_url.is_empty() {
            check_http_url("fallback_url", &self.fallback_url)?;
        }
        if !self.redis.url.starts_with("redis://")
            && !self.redis.url.starts_with("rediss://")
            && !self.redis.url.starts_with("unix://")
        {
            return Err(ConfigError::new(
                "redis.url",
                "must start with redis://, rediss:// or unix://",
            ));
        }
        if self.redis.prefix.chars().any(|c| c.is_whitespace()) {
            return Err(ConfigError::new(
                "redis.prefix",
                "must not hold white space",
            ));
        }
        range(
            "redis.resync_interval_secs",
            self.redis.resync_interval_secs,
            1,
            86_400,
        )?;
        range(
            "redis.connect_retry_secs",
            self.redis.connect_retry_secs,
            1,
            3600,
        )?;
        range("redis.timeout_ms", self.redis.timeout_ms, 10, 60_000)?;
        check_http_url("clickhouse.url", &self.clickhouse.url)?;
        if !is_identifier(&self.clickhouse.database) {
            return Err(ConfigError::new(
                "clickhouse.database",
                "must be letters, digits and underscores, not starting with a digit",
            ));
        }
        if !matches!(self.clickhouse.compression.as_str(), "lz4" | "none") {
            return Err(ConfigError::new(
                "clickhouse.compression",
                "must be lz4 or none",
            ));
        }
        range(
            "clickhouse.batch_rows",
            self.clickhouse.batch_rows as u64,
            1,
            1_000_000,
        )?;
        range(
            "clickhouse.flush_interval_ms",
            self.clickhouse.flush_interval_ms,
            10,
            600_000,
        )?;
        range(
            "clickhouse.insert_timeout_secs",
            self.clickhouse.insert_timeout_secs,
            1,
            3600,
        )?;
        range(
            "clickhouse.retry_initial_ms",
            self.clickhouse.retry_initial_ms,
            1,
            600_000,
        )?;
        range(
            "clickhouse.retry_max_ms",
            self.clickhouse.retry_max_ms,
            self.clickhouse.retry_initial_ms,
            3_600_000,
        )?;
        if self.spool.dir.as_os_str().is_empty() {
            return Err(ConfigError::new("spool.dir", "must not be empty"));
        }
        self.spool.log_config()?;
        range(
            "spool.sync_interval_ms",
            self.spool.sync_interval_ms,
            10,
            60_000,
        )?;
        range(
            "limits.clicks_burst",
            self.limits.clicks_burst as u64,
            1,
            1_000_000,
        )?;
        range(
            "limits.max_tracked_ips",
            self.limits.max_tracked_ips as u64,
            1000,
            100_000_000,
        )?;
        range(
            "conversions.dedup_ttl_days",
            u64::from(self.conversions.dedup_ttl_days),
            1,
            3650,
        )?;
        range(
            "health.inactive_days",
            u64::from(self.health.inactive_days),
            1,
            3650,
        )?;
        range(
            "health.check_interval_secs",
            self.health.check_interval_secs,
            1,
            604_800,
        )?;
        range(
            "conversions.claim_lease_ms",
            self.conversions.claim_lease_ms,
            10,
            600_000,
        )?;
        range(
            "postbacks.timeout_ms",
            self.postbacks.timeout_ms,
            100,
            600_000,
        )?;
        range(
            "postbacks.retry_initial_ms",
            self.postbacks.retry_initial_ms,
            1,
            86_400_000,
        )?;
        range(
            "postbacks.retry_max_ms",
            self.postbacks.retry_max_ms,
            self.postbacks.retry_initial_ms,
            86_400_000,
        )?;
        range(
            "postbacks.give_up_after_secs",
            self.postbacks.give_up_after_secs,
            1,
            30 * 86_400,
        )?;
        range(
            "postbacks.concurrency",
            self.postbacks.concurrency as u64,
            1,
            10_000,
        )?;
        range(
            "postbacks.poll_interval_ms",
            self.postbacks.poll_interval_ms,
            10,
            600_000,
        )?;
        range(
            "postbacks.click_lookup_retry_ms",
            self.postbacks.click_lookup_retry_ms,
            10,
            86_400_000,
        )?;
        range(
            "http.header_read_timeout_ms",
            self.http.header_read_timeout_ms,
            100,
            600_000,
        )?;
        range(
            "http.max_header_bytes",
            self.http.max_header_bytes as u64,
            8192,
            1 << 20,
        )?;
        range(
            "http.max_body_bytes",
            self.http.max_body_bytes as u64,
            1024,
            64 << 20,
        )?;
        range(
            "http.shutdown_grace_secs",
            self.http.shutdown_grace_secs,
            1,
            3600,
        )?;
        enrich::validate(&self.enrich, &self.retention)?;
        self.stats.validate()?;
        self.tiers.validate()?;
        self.partner_api.validate()?;
        self.partners.validate()?;
        for (i, s) in self.previous_secrets.iter().enumerate() {
            if s.is_empty() {
                return Err(ConfigError::new(
                    format!("previous_secrets[{i}]"),
                    "must not be empty",
                ));
            }
        }
        Ok(())
    }

    /// The checks only `serve` needs: a signing secret.
    pub fn validate_for_serve(&self) -> Result<(), ConfigError> {
        if self.secret.is_empty() {
            return Err(ConfigError::new(
                "secret",
                "is required to serve (set TRACKEDGE_SECRET)",
            ));
        }
        if self.secret.len() < 16 {
            return Err(ConfigError::new("secret", "must be at least 16 bytes"));
        }
        Ok(())
    }

    /// The `Location` answered for unknown codes, if `fallback_url` is set.
    pub fn fallback_location(&self) -> Result<Option<hyper::header::HeaderValue>, ConfigError> {
        if self.fallback_url.is_empty() {
            return Ok(None);
        }
        check_http_url("fallback_url", &self.fallback_url)?;
        hyper::header::HeaderValue::from_str(&self.fallback_url)
            .map(Some)
            .map_err(|_| ConfigError::new("fallback_url", "is not a valid header value"))
    }

    /// The base of tracking URLs, without a trailing slash: `public_url`,
    /// else the public listener's bound address `listen`.
    pub fn public_base(&self, listen: SocketAddr) -> String {
        if self.public_url.is_empty() {
            format!("http://{listen}")
        } else {
            self.public_url.trim_end_matches('/').to_string()
        }
    }

    /// Refuses a `spool.max_bytes` larger than the volume holding
    /// `spool.dir` (which must exist).
    pub fn check_spool_volume(&self) -> Result<(), ConfigError> {
        let total = volume_bytes(&self.spool.dir).map_err(|e| {
            ConfigError::new("spool.dir", format!("{}: {e}", self.spool.dir.display()))
        })?;
        if self.spool.max_bytes > total {
            return Err(ConfigError::new(
                "spool.max_bytes",
                format!(
                    "{} is larger than the volume holding {} ({total} bytes)",
                    self.spool.max_bytes,
                    self.spool.dir.display()
                ),
            ));
        }
        Ok(())
    }

    /// The flush interval as a duration.
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.clickhouse.flush_interval_ms)
    }

    /// The effective config as TOML with every secret masked.
    pub fn masked_toml(&self) -> String {
        let mut c = self.clone();
        let mask = |s: &mut String| {
            if !s.is_empty() {
                *s = "********".into();
            }
        };
        mask(&mut c.secret);
        mask(&mut c.admin_token);
        mask(&mut c.clickhouse.password);
        c.previous_secrets.iter_mut().for_each(mask);
        c.redis.url = mask_url_password(&c.redis.url);
        toml::to_string_pretty(&c).expect("the config serializes to TOML")
    }
}

/// Total bytes of the filesystem holding `path`.
fn volume_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("path holds a NUL byte"))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `st` is writable
    // memory of the right type; statvfs initialises it on success.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so `st` is initialised.
    let st = unsafe { st.assume_init() };
    // The field widths differ between platforms.
    #[allow(clippy::unnecessary_cast)]
    Ok(st.f_blocks as u64 * st.f_frsize as u64)
}

/// Replaces the password of a `scheme://user:password@host` URL.
fn mask_url_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("********"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

fn check_http_url(key: &str, value: &str) -> Result<(), ConfigError> {
    // The URL parser drops tabs and newlines as browsers do, but the value
    // itself is what goes into a `Location` header or a tracking URL.
    if value.chars().any(|c| c.is_control() || c == ' ') {
        return Err(ConfigError::new(
            key,
            format!("must not hold spaces or control characters (newlines, tabs): {value:?}"),
        ));
    }
    match url::Url::parse(value) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => Ok(()),
        _ => Err(ConfigError::new(
            key,
            format!("not an http(s) URL: {value:?}"),
        )),
    }
}

/// True for a plain SQL identifier: safe to splice into DDL.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 64
}

/// Deep-merges `over` into `base`: tables key by key, anything else replaced.
fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Walks every leaf of the default tree and replaces it with its
/// environment variable, when set, parsed as the leaf's type.
fn apply_env(
    node: &mut toml::Value,
    path: &mut Vec<String>,
    env: &[(String, String)],
) -> Result<(), ConfigError> {
    if let toml::Value::Table(table) = node {
        for (key, child) in table.iter_mut() {
            path.push(key.clone());
            apply_env(child, path, env)?;
            path.pop();
        }
        return Ok(());
    }
    let name = format!("{ENV_PREFIX}{}", path.join("_").to_uppercase());
    let Some((_, raw)) = env.iter().rev().find(|(k, _)| *k == name) else {
        return Ok(());
    };
    let bad =
        |what: &str| ConfigError::new(path.join("."), format!("{name}={raw:?} is not {what}"));
    *node = match node {
        toml::Value::Integer(_) => {
            toml::Value::Integer(raw.trim().parse().map_err(|_| bad("an integer"))?)
        }
        toml::Value::Boolean(_) => {
            toml::Value::Boolean(raw.trim().parse().map_err(|_| bad("true or false"))?)
        }
        toml::Value::Array(_) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        ),
        _ => toml::Value::String(raw.clone()),
    };
    Ok(())
}

#[cfg(test)]
mod tests;
