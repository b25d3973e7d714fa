//! The delivery settings, from `[postbacks]` (see `config`).

use std::time::Duration;

use crate::config::PostbacksConfig;

/// The delivery settings, from `[postbacks]`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// See [`PostbacksConfig::allow_private_addresses`].
    pub allow_private_addresses: bool,
    /// One call's limit.
    pub timeout: Duration,
    /// First retry delay.
    pub retry_initial: Duration,
    /// Cap of the retry delay.
    pub retry_max: Duration,
    /// Age past which a failing postback is given up.
    pub give_up_after: Duration,
    /// Calls in flight at once.
    pub concurrency: usize,
    /// Looks at the queue at least this often.
    pub poll_interval: Duration,
    /// First wait for a click not in ClickHouse yet, doubled up to
    /// `retry_max`.
    pub click_lookup_retry: Duration,
}

impl From<&PostbacksConfig> for Settings {
    fn from(c: &PostbacksConfig) -> Self {
        Settings {
            allow_private_addresses: c.allow_private_addresses,
            timeout: Duration::from_millis(c.timeout_ms),
            retry_initial: Duration::from_millis(c.retry_initial_ms),
            retry_max: Duration::from_millis(c.retry_max_ms),
            give_up_after: Duration::from_secs(c.give_up_after_secs),
            concurrency: c.concurrency,
            poll_interval: Duration::from_millis(c.poll_interval_ms),
            click_lookup_retry: Duration::from_millis(c.click_lookup_retry_ms),
        }
    }
}
