//! The Redis lock that keeps two payments of one partner from being
//! worked out at once: each computes "owed" from the payments it sees, so
//! two at once would both pay the same money.
//!
//! `{prefix}payout-lock:{partner_id}` is taken with `SET NX EX` holding a
//! random token, before the payments are read, and given back (only if it
//! still holds that token) once the new payment is in ClickHouse, which
//! the next holder then reads. A request finding it taken gets `409
//! conflict`. A holder that dies leaves it to expire after
//! [`LOCK_TTL_SECS`], far longer than the reads and the INSERT may take
//! (each bounded by [`QUERY_TIMEOUT`]), so no lock expires under a live
//! holder.
//!
//! [`QUERY_TIMEOUT`]: crate::payments::store::QUERY_TIMEOUT

use std::time::Duration;

use axum::http::StatusCode;
use tracing::warn;

use crate::catalog::Catalog;
use crate::http::admin::error::ApiError;

/// Lifetime of a lock: four times the longest the holder's reads and
/// INSERT may take together (three steps of 30 s), so it never expires
/// under a live holder, yet a crashed one blocks the partner's payments
/// for minutes, not for ever.
pub const LOCK_TTL_SECS: u64 = 360;

/// Deletes the key only while it holds the caller's token: a holder never
/// frees a lock that expired and was taken by another.
const RELEASE_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// A partner's payment lock, held.
pub(super) struct PaymentLock<'a> {
    catalog: &'a Catalog,
    key: String,
    token: String,
}

impl<'a> PaymentLock<'a> {
    /// Takes the lock of `partner_id`; `409 conflict` when another payment
    /// holds it, `503` when Redis does not answer.
    pub(super) async fn take(catalog: &'a Catalog, partner_id: u64) -> Result<Self, ApiError> {
        let (mut conn, prefix, timeout) = catalog.redis();
        let key = format!("{prefix}payout-lock:{partner_id}");
        let token = crate::model::random_token();
        let cmd = redis::cmd("SET")
            .arg(&key)
            .arg(&token)
            .arg("NX")
            .arg("EX")
            .arg(LOCK_TTL_SECS)
            .clone();
        let set: Option<String> = run(timeout, cmd.query_async(&mut conn)).await?;
        match set {
            Some(_) => Ok(PaymentLock {
                catalog,
                key,
                token,
            }),
            None => Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("another payment of partner {partner_id} is being recorded; read the report again"),
                None,
            )),
        }
    }

    /// Gives the lock back; should that fail, it expires on its own.
    pub(super) async fn release(self) {
        let (mut conn, _, timeout) = self.catalog.redis();
        let cmd = redis::cmd("EVAL")
            .arg(RELEASE_SCRIPT)
            .arg(1)
            .arg(&self.key)
            .arg(&self.token)
            .clone();
        if let Err(e) = run::<i64>(timeout, cmd.query_async(&mut conn)).await {
            warn!(key = %self.key, error = %e.detail.message, "payment lock not released; it expires on its own");
        }
    }
}

async fn run<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(timeout, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ApiError::unavailable(format!("redis: {e}"))),
        Err(_) => Err(ApiError::unavailable("redis timed out")),
    }
}
