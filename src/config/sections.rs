//! The configuration's smaller sections (`[conversions]`, `[health]`,
//! `[postbacks]`, `[redis]`, `[clickhouse]`, `[spool]`, `[limits]`,
//! `[http]`): their keys and defaults. Checked by `Config::validate`.

use super::*;

/// Conversion intake settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConversionsConfig {
    /// Days a counted order (or click/customer and event) is remembered:
    /// a repeat within them is `duplicate`, a later one a new conversion.
    pub dedup_ttl_days: u32,
    /// Postbacks per second one offer may receive (burst: twice that);
    /// over it, `429` and nothing recorded. 0 disables.
    pub postbacks_per_offer_per_second: u32,
    /// Pixel hits per minute one client IP may make (burst: a quarter of
    /// that, at least 1); over it, the GIF, and the hit recorded as
    /// `rejected` / `rate_limited` with no lookup. 0 disables.
    pub pixels_per_ip_per_minute: u32,
    /// Milliseconds a request that claimed an order has to record it
    /// before a retry of the same order may take the claim over (the
    /// holder died: `kill -9`, a lost node). Repeats arriving meanwhile
    /// wait up to this long for the holder's outcome.
    pub claim_lease_ms: u64,
}

impl Default for ConversionsConfig {
    fn default() -> Self {
        ConversionsConfig {
            dedup_ttl_days: 400,
            postbacks_per_offer_per_second: 200,
            pixels_per_ip_per_minute: 60,
            claim_lease_ms: 5_000,
        }
    }
}

/// Partner health settings (`GET /api/v1/partners/health`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Days without a billable click after which a partner is `inactive`
    /// (a partner never clicked: days since its creation).
    pub inactive_days: u32,
    /// Pauses the active links of inactive partners, noting each pause in
    /// the partner's record (`link_pauses`). Off by default: pausing a
    /// partner's links is a business decision.
    pub pause_inactive_links: bool,
    /// Seconds between two rounds of pausing, when on.
    pub check_interval_secs: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            inactive_days: 90,
            pause_inactive_links: false,
            check_interval_secs: 3600,
        }
    }
}

/// Partner postback delivery settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostbacksConfig {
    /// Lets postbacks call loopback, private, link-local and other
    /// non-public addresses (tests, private networks); off, such a URL is
    /// refused on its resolved address.
    pub allow_private_addresses: bool,
    /// Milliseconds one call may take, connecting included, before it
    /// counts as unanswered.
    pub timeout_ms: u64,
    /// First retry delay after a failed call, doubled up to the cap.
    pub retry_initial_ms: u64,
    /// Cap of the retry delay.
    pub retry_max_ms: u64,
    /// Seconds after the first attempt past which a failing postback is
    /// given up.
    pub give_up_after_secs: u64,
    /// Calls in flight at once, per node.
    pub concurrency: usize,
    /// Milliseconds between looks at the queue for jobs another node
    /// queued (this node's own wake the worker at once).
    pub poll_interval_ms: u64,
    /// Milliseconds before a postback whose URL needs the click's sub-ids
    /// looks for the click in ClickHouse again when it is not there yet
    /// (the shipper has not shipped it, or ClickHouse is down), doubled up
    /// to `retry_max_ms`; past `give_up_after_secs` it is sent without
    /// them. A value above `retry_max_ms` is its own cap.
    pub click_lookup_retry_ms: u64,
}

impl Default for PostbacksConfig {
    fn default() -> Self {
        PostbacksConfig {
            allow_private_addresses: false,
            timeout_ms: 10_000,
            retry_initial_ms: 30_000,
            retry_max_ms: 3_600_000,
            give_up_after_secs: 86_400,
            concurrency: 32,
            poll_interval_ms: 1000,
            click_lookup_retry_ms: 2000,
        }
    }
}

/// Redis settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// Redis URL.
    pub url: String,
    /// Prefix of every key and of the change channel, so several
    /// deployments can share one Redis.
    pub prefix: String,
    /// Seconds between checks of the change counter: a change message that
    /// never arrived triggers a full catalog reload.
    pub resync_interval_secs: u64,
    /// Seconds between attempts to reach Redis at start.
    pub connect_retry_secs: u64,
    /// Milliseconds an admin request waits for Redis before answering 503.
    pub timeout_ms: u64,
}

/// ClickHouse settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    /// ClickHouse HTTP URL.
    pub url: String,
    /// Database, created by `migrate`.
    pub database: String,
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// INSERT body compression: `lz4` (less network) or `none` (less CPU,
    /// for a ClickHouse on the same host).
    pub compression: String,
    /// A batch is sent once it holds this many rows...
    pub batch_rows: usize,
    /// ...or once its oldest row has waited this many milliseconds.
    pub flush_interval_ms: u64,
    /// Seconds one INSERT may take before it counts as failed.
    pub insert_timeout_secs: u64,
    /// First retry delay after a transient error, doubled up to the cap.
    pub retry_initial_ms: u64,
    /// Cap of the retry delay.
    pub retry_max_ms: u64,
}

/// Spool (segment log) settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Directory of segment files, the cursor and rejected rows.
    pub dir: PathBuf,
    /// Most bytes of segment files; past this, clicks are still redirected
    /// but not recorded (counted in `clicks_dropped_total`). `serve` refuses
    /// to start when the volume holding `dir` is smaller.
    pub max_bytes: u64,
    /// Size of one segment file; one event may take at most a quarter of
    /// it. Bounds (with those of `max_bytes`) are the log's own, see
    /// [`LogConfig::new`].
    pub segment_bytes: u64,
    /// Milliseconds between msyncs: what a power loss can take at most.
    pub sync_interval_ms: u64,
}

/// Flood limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Clicks per minute one client IP may make before its clicks are
    /// flagged `is_rate_limited` (still redirected and recorded); 0 disables.
    pub clicks_per_ip_per_minute: u32,
    /// Clicks one client IP may make in a burst above that rate.
    pub clicks_burst: u32,
    /// Client IPs tracked at most; past this the limiter forgets them all,
    /// which bounds its memory under a spoofed-address flood.
    pub max_tracked_ips: usize,
}

/// HTTP server settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Milliseconds a client has to send its whole request head.
    pub header_read_timeout_ms: u64,
    /// Largest request head accepted; larger ones get 431.
    pub max_header_bytes: usize,
    /// Largest admin API request body accepted (413 above it).
    pub max_body_bytes: usize,
    /// Seconds shutdown waits for in-flight requests and the final flush.
    pub shutdown_grace_secs: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            prefix: "te:".into(),
            resync_interval_secs: 60,
            connect_retry_secs: 2,
            timeout_ms: 2000,
        }
    }
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        ClickHouseConfig {
            url: "http://127.0.0.1:8123".into(),
            database: "trackedge".into(),
            user: "default".into(),
            password: String::new(),
            compression: "lz4".into(),
            batch_rows: 50_000,
            flush_interval_ms: 1000,
            insert_timeout_secs: 30,
            retry_initial_ms: 200,
            retry_max_ms: 10_000,
        }
    }
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            dir: PathBuf::from("./data/spool"),
            max_bytes: 10 << 30,
            segment_bytes: 16 << 20,
            sync_interval_ms: 1000,
        }
    }
}

impl SpoolConfig {
    /// The segment log's sizes. The log checks `segment_bytes` and
    /// `max_bytes` against its own bounds, the only place they are written;
    /// this names the key it refused.
    pub fn log_config(&self) -> Result<LogConfig, ConfigError> {
        LogConfig::new(self.segment_bytes, self.max_bytes).map_err(|e| {
            let key = match e {
                LogConfigError::SegmentBytes(_) => "spool.segment_bytes",
                LogConfigError::MaxBytes { .. } => "spool.max_bytes",
            };
            ConfigError::new(key, e.problem())
        })
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            clicks_per_ip_per_minute: 120,
            clicks_burst: 30,
            max_tracked_ips: 1_000_000,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_read_timeout_ms: 10_000,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            shutdown_grace_secs: 20,
        }
    }
}
