//! The per-IP click rate limit.
//!
//! Over-limit clicks are still redirected and recorded, flagged
//! `is_rate_limited`, so a flood is visible in reports and kept out of
//! billing without breaking a real user's redirect.

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
    pub fn maintain(&self) {
        let (Some(inner), Some(quota)) = (&self.inner, self.quota) else {
            return;
        };
        let l = inner.load();
        l.retain_recent();
        l.shrink_to_fit();
        if l.len() > self.max_keys {
            inner.store(Arc::new(RateLimiter::dashmap(quota)));
        }
    }

    /// IPs tracked now.
    pub fn tracked(&self) -> usize {
        self.inner.as_ref().map_or(0, |l| l.load().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
