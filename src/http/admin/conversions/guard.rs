//! The Redis side of a status change: the latest-version key and the
//! version claims that keep one version number from being written twice
//! (see the [module doc](super)).

use std::time::Duration;

use axum::http::StatusCode;
use tracing::warn;

use crate::catalog::Catalog;
use crate::http::admin::error::ApiError;

/// Lifetime of a version claim: only the moments between claim and
/// record need it (the latest-version key guards afterwards), so it is
/// short enough that a crash mid-change blocks that conversion briefly.
pub const CLAIM_TTL_SECS: u64 = 600;

/// Lifetime of the latest-version key: far longer than any delay between
/// the log and ClickHouse, short enough that Redis does not keep one key
/// per changed conversion forever.
pub const LATEST_TTL_SECS: u64 = 30 * 86_400;

/// The Redis side of a change: the latest-version key and version claims
/// (see the module doc).
pub(super) struct VersionGuard<'a> {
    catalog: &'a Catalog,
}

impl<'a> VersionGuard<'a> {
    pub(super) fn new(catalog: &'a Catalog) -> Self {
        VersionGuard { catalog }
    }

    fn latest_key(prefix: &str, id: &str) -> String {
        format!("{prefix}conv-version:{id}")
    }

    fn claim_key(prefix: &str, id: &str, version: u64) -> String {
        format!("{prefix}conv-version:{id}:{version}")
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

    /// `409 not_yet_shipped` when a PATCH wrote a version after `seen`.
    pub(super) async fn check_shipped(&self, id: &str, seen: u64) -> Result<(), ApiError> {
        let (mut conn, prefix, timeout) = self.catalog.redis();
        let cmd = redis::cmd("GET").arg(Self::latest_key(prefix, id)).clone();
        let latest: Option<u64> = Self::run(timeout, cmd.query_async(&mut conn)).await?;
        match latest {
            Some(l) if l > seen => Err(ApiError::new(
                StatusCode::CONFLICT,
                "not_yet_shipped",
                format!(
                    "version {l} of conversion {id} is not in clickhouse yet (it shows {seen}); retry in a second"
                ),
                None,
            )),
            _ => Ok(()),
        }
    }

    /// Claims `version`; `409 conflict` when another change holds it.
    pub(super) async fn claim(&self, id: &str, version: u64) -> Result<(), ApiError> {
        let (mut conn, prefix, timeout) = self.catalog.redis();
        let cmd = redis::cmd("SET")
            .arg(Self::claim_key(prefix, id, version))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(CLAIM_TTL_SECS)
            .clone();
        let set: Option<String> = Self::run(timeout, cmd.query_async(&mut conn)).await?;
        match set {
            Some(_) => Ok(()),
            None => Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("conversion {id} is being changed by another request; read it again"),
                None,
            )),
        }
    }

    /// Gives a claim back after the version could not be recorded; should
    /// that fail, the claim expires on its own.
    pub(super) async fn release(&self, id: &str, version: u64) {
        let (mut conn, prefix, timeout) = self.catalog.redis();
        let cmd = redis::cmd("DEL")
            .arg(Self::claim_key(prefix, id, version))
            .clone();
        if let Err(e) = Self::run::<i64>(timeout, cmd.query_async(&mut conn)).await {
            warn!(conversion_id = %id, version, error = %e.detail.message, "conversion version claim not released; it expires on its own");
        }
    }

    /// Remembers `version` as the latest written.
    pub(super) async fn set_latest(&self, id: &str, version: u64) -> Result<(), String> {
        let (mut conn, prefix, timeout) = self.catalog.redis();
        let cmd = redis::cmd("SET")
            .arg(Self::latest_key(prefix, id))
            .arg(version)
            .arg("EX")
            .arg(LATEST_TTL_SECS)
            .clone();
        Self::run::<()>(timeout, cmd.query_async(&mut conn))
            .await
            .map_err(|e| e.detail.message)
    }
}
