//! `POST /apply` on the public listener: a partner's application to join,
//! as JSON or a form body.
//!
//! Answers `201 {"id", "status"}` (`applied`, or `active` for an
//! auto-approved kind); `400` naming the field that is malformed or too
//! long; `409` naming `email` when the address applied before (claimed
//! atomically in Redis, so two nodes cannot both take it); `413` for a
//! body over [`MAX_BODY_BYTES`]; `429` over the per-IP rate (checked
//! first, before the body is read); `503` while the catalog loads or Redis
//! is down. Never on the redirect path: the router matches `apply` by name
//! before it takes a path for a link code.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use arc_swap::ArcSwap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http_body_util::{BodyExt, Limited};
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode};

use super::conversion::json_error;
use super::{response, Resp};
use crate::catalog::{CatalogSlot, StoreError};
use crate::config::PartnersConfig;
use crate::model::PartnerKind;
use crate::partners::applications::{Application, MAX_BODY_BYTES};

/// What `POST /apply` needs.
pub struct Applications {
    /// Where applicants are stored, once loaded.
    catalog: CatalogSlot,
    /// Kinds approved without an admin.
    auto_approve: Vec<PartnerKind>,
    /// Applications per client IP; `None` when the rate is 0. Swapped for
    /// an empty one when it tracks more than `max_keys` addresses: memory
    /// stays bounded under a flood of distinct addresses.
    limiter: Option<(ArcSwap<DefaultKeyedRateLimiter<IpAddr>>, Quota)>,
    /// See `limiter`.
    max_keys: usize,
}

impl Applications {
    /// The form per `cfg`, storing into `catalog`, tracking at most
    /// `max_keys` client addresses for the rate limit.
    pub fn new(cfg: &PartnersConfig, catalog: CatalogSlot, max_keys: usize) -> Applications {
        let limiter = NonZeroU32::new(cfg.applications_per_ip_per_hour).map(|rate| {
            let burst = NonZeroU32::new(cfg.applications_burst).unwrap_or(NonZeroU32::MIN);
            let quota = Quota::per_hour(rate).allow_burst(burst);
            (ArcSwap::from_pointee(RateLimiter::dashmap(quota)), quota)
        });
        Applications {
            catalog,
            auto_approve: cfg.auto_approve.clone(),
            limiter,
            max_keys,
        }
    }

    /// Seconds until `ip` may apply again; `None` when it may now.
    fn over_limit(&self, ip: IpAddr) -> Option<u64> {
        let (limiter, quota) = self.limiter.as_ref()?;
        let l = limiter.load();
        if l.len() > self.max_keys {
            l.retain_recent();
            if l.len() > self.max_keys {
                limiter.store(Arc::new(RateLimiter::dashmap(*quota)));
            }
        }
        let refused = limiter.load().check_key(&ip).err()?;
        let wait = refused.wait_time_from(DefaultClock::default().now());
        Some(wait.as_secs().max(1))
    }

    /// Answers one `POST /apply` from client `ip`.
    pub async fn apply(&self, req: Request<hyper::body::Incoming>, ip: IpAddr) -> Resp {
        if let Some(wait) = self.over_limit(ip) {
            let mut r = json_error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many applications from this address; try again later",
                None,
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait));
            return r;
        }
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // One byte over the limit tells "too large" from "exactly full".
        let body = match Limited::new(req.into_body(), MAX_BODY_BYTES + 1)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return json_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    &format!("must be at most {MAX_BODY_BYTES} bytes, and complete"),
                    Some("body"),
                )
            }
        };
        let application = match Application::from_body(content_type.as_deref(), &body) {
            Ok(a) => a,
            Err(e) => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    &e.message,
                    Some(&e.field),
                )
            }
        };
        let Some(catalog) = self.catalog.get() else {
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the catalog is still loading from redis",
                None,
            );
        };
        let auto = &self.auto_approve;
        let stored = catalog
            .create_applicant(|id, secret, now| application.into_partner(id, secret, now, auto))
            .await;
        match stored {
            Ok(p) => created(p.id, p.status.as_str()),
            Err(StoreError::Conflict(f)) => {
                json_error(StatusCode::CONFLICT, "conflict", &f.message, Some(&f.field))
            }
            Err(StoreError::Invalid(f)) => json_error(
                StatusCode::BAD_REQUEST,
                "invalid",
                &f.message,
                Some(&f.field),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "partner application not stored");
                json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the application could not be stored; try again",
                    None,
                )
            }
        }
    }
}

/// `201 {"id", "status"}`.
fn created(id: u64, status: &str) -> Resp {
    let body = serde_json::json!({ "id": id, "status": status });
    let mut r = response(
        StatusCode::CREATED,
        "application/json",
        serde_json::to_vec(&body).expect("a json value serializes"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applications(rate: u32, burst: u32, max_keys: usize) -> Applications {
        let cfg = PartnersConfig {
            applications_per_ip_per_hour: rate,
            applications_burst: burst,
            ..PartnersConfig::default()
        };
        Applications::new(&cfg, CatalogSlot::default(), max_keys)
    }

    #[test]
    fn the_rate_is_per_address() {
        let a = applications(1, 2, 1000);
        let ann: IpAddr = "192.0.2.1".parse().unwrap();
        let bob: IpAddr = "192.0.2.2".parse().unwrap();
        let verdicts: Vec<bool> = (0..4).map(|_| a.over_limit(ann).is_some()).collect();
        assert_eq!(verdicts, [false, false, true, true]);
        // One an hour: the next one is about an hour away.
        let wait = a.over_limit(ann).unwrap();
        assert!((3000..=3600).contains(&wait), "{wait}");
        assert_eq!(
            a.over_limit(bob),
            None,
            "another address has its own budget"
        );
    }

    #[test]
    fn zero_disables_the_limit() {
        let a = applications(0, 1, 1000);
        let ann: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..100).all(|_| a.over_limit(ann).is_none()));
    }

    #[test]
    fn memory_is_bounded() {
        let a = applications(1, 1, 10);
        for i in 0..100u32 {
            a.over_limit(IpAddr::from(i.to_be_bytes()));
        }
        let (limiter, _) = a.limiter.as_ref().unwrap();
        assert!(
            limiter.load().len() <= 11,
            "tracked {}",
            limiter.load().len()
        );
    }
}
