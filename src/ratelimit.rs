//! The per-IP click rate limit, and the per-key rate of the partner API.
//!
//! Over-limit clicks are still redirected and recorded, flagged
//! `is_rate_limited`, so a flood is visible in reports and kept out of
//! billing without breaking a real user's redirect. Over-limit partner
//! API calls are refused (`429`).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use arc_swap::ArcSwap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LimitsConfig;

/// Keyed GCRA limiter over client IPs with bounded memory.
pub struct ClickLimiter {
    /// Swapped for an empty one when it tracks more than `max_keys` IPs: the
    /// only way to bound memory under a flood of distinct addresses.
    inner: Option<ArcSwap<DefaultKeyedRateLimiter<IpAddr>>>,
    quota: Option<Quota>,
    max_keys: usize,
}

impl ClickLimiter {
    /// A limiter per `cfg`; a rate of 0 disables it.
    pub fn new(cfg: &LimitsConfig) -> Self {
        let quota = NonZeroU32::new(cfg.clicks_per_ip_per_minute).map(|rate| {
            let burst = NonZeroU32::new(cfg.clicks_burst).unwrap_or(NonZeroU32::MIN);
            Quota::per_minute(rate).allow_burst(burst)
        });
        ClickLimiter {
            inner: quota.map(|q| ArcSwap::from_pointee(RateLimiter::dashmap(q))),
            quota,
            max_keys: cfg.max_tracked_ips,
        }
    }

    /// True when this click from `ip` is over the limit.
    #[inline]
    pub fn over_limit(&self, ip: IpAddr) -> bool {
        match &self.inner {
            Some(l) => l.load().check_key(&ip).is_err(),
            None => false,
        }
    }

    /// Forgets IPs whose state is back to fresh; resets the limiter when it
    /// still tracks too many. Run periodically.
    ///
    /// The map is not shrunk: rehashing a shard holds its lock while every
    /// entry moves, and a redirect on another core looking up an IP in it
    /// waits that long. Its table stays at its peak size instead, which
    /// `max_keys` bounds (a reset drops it whole, off the locks).
    pub fn maintain(&self) {
        let (Some(inner), Some(quota)) = (&self.inner, self.quota) else {
            return;
        };
        let l = inner.load();
        l.retain_recent();
        if l.len() > self.max_keys {
            inner.store(Arc::new(RateLimiter::dashmap(quota)));
        }
    }

    /// IPs tracked now.
    pub fn tracked(&self) -> usize {
        self.inner.as_ref().map_or(0, |l| l.load().len())
    }
}

/// Keyed GCRA limiter over partner API key ids. Its memory needs no
/// bound beyond the keys' own: only keys found in Redis are counted, and
/// only admins create keys.
pub struct KeyLimiter {
    inner: DefaultKeyedRateLimiter<u64>,
}

impl KeyLimiter {
    /// `per_minute` requests per key, `burst` at once (0 is taken as 1).
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        KeyLimiter {
            inner: RateLimiter::dashmap(Quota::per_minute(rate).allow_burst(burst)),
        }
    }

    /// `None` when key `key_id` may make this request; else how long until
    /// it may.
    pub fn check(&self, key_id: u64) -> Option<std::time::Duration> {
        use governor::clock::{Clock, DefaultClock};
        self.inner
            .check_key(&key_id)
            .err()
            .map(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_their_own_budgets() {
        let l = KeyLimiter::new(60, 2);
        let verdicts: Vec<bool> = (0..4).map(|_| l.check(7).is_some()).collect();
        assert_eq!(verdicts, vec![false, false, true, true]);
        assert!(l.check(8).is_none(), "another key has its own budget");
        let wait = l.check(7).expect("still over");
        assert!(wait <= std::time::Duration::from_secs(1), "{wait:?}");
    }

    fn limiter(rate: u32, burst: u32, max: usize) -> ClickLimiter {
        ClickLimiter::new(&LimitsConfig {
            clicks_per_ip_per_minute: rate,
            clicks_burst: burst,
            max_tracked_ips: max,
        })
    }

    #[test]
    fn burst_then_limited_per_ip() {
        let l = limiter(60, 3, 1000);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let verdicts: Vec<bool> = (0..5).map(|_| l.over_limit(a)).collect();
        assert_eq!(verdicts, vec![false, false, false, true, true]);
        assert!(!l.over_limit(b), "another IP has its own budget");
    }

    #[test]
    fn zero_rate_disables() {
        let l = limiter(0, 1, 1000);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..1000).all(|_| !l.over_limit(a)));
    }

    #[test]
    fn memory_is_bounded() {
        let l = limiter(1, 1, 1000);
        for i in 0..3000u32 {
            l.over_limit(IpAddr::from(i.to_be_bytes()));
        }
        assert_eq!(l.tracked(), 3000);
        l.maintain();
        assert!(l.tracked() <= 1000, "tracked {}", l.tracked());
    }
}
