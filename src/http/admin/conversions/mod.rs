//! `/api/v1/conversions`: the conversions ledger. Listing and reading are
//! ClickHouse queries (`src/sql/conversions_latest.sql`,
//! `src/sql/conversion_versions.sql`); a status change appends a version.
//!
//! # Status changes
//!
//! `PATCH /api/v1/conversions/{id}` with `{"status", "reason"}` appends the
//! same row (same `conversion_id`, `ts` and `offer_id`: the table keeps
//! versions of one conversion together by its sort key and month) with
//! `version + 1`, through the [`EventSink`] like any conversion: durable
//! before the answer, shipped to ClickHouse exactly once. Nothing is
//! rewritten. The move must be one [`transition`] allows (pending →
//! approved or rejected, approved → reversed), else `409
//! invalid_transition`. The new version's reason and payout:
//!
//! | to | reason | payout |
//! | --- | --- | --- |
//! | `approved` | `ok` or `deal_registration`; default `deal_registration` for a deal's conversion, else `ok` | unchanged (a pending row already carries what approving it pays) |
//! | `rejected` | a rejected reason of the interface's table, or `manual_review`; default `manual_review` (a person reviewed it) | 0, no payout rule |
//! | `reversed` | required: any text of 1 to 256 bytes | unchanged: the reversal row says what is clawed back |
//!
//! # Concurrent and early changes
//!
//! The new version is `v + 1` where `v` is the latest version ClickHouse
//! shows, and ClickHouse lags the log by about a second. Two guards in the
//! catalog's Redis keep one version number from being written twice:
//! - `{prefix}conv-version:{id}` holds the latest version a PATCH wrote
//!   ([`LATEST_TTL_SECS`]). When ClickHouse shows less, the last change has
//!   not been shipped yet: `409 not_yet_shipped`, retry in a second.
//! - `{prefix}conv-version:{id}:{v + 1}` is claimed with `SET NX` before
//!   the version is recorded ([`CLAIM_TTL_SECS`]): of two PATCHes that read
//!   the same `v`, one claims it and the other gets `409 conflict`. A
//!   failed record releases the claim; a crash between claim and record
//!   holds that conversion's changes back until the claim expires.
//!
//! A conversion recorded in the last second may not be in ClickHouse yet:
//! reading or changing it answers `404` until it is.
//!
//! [`EventSink`]: crate::events::EventSink
//! [`transition`]: crate::attribution::transition
//! [`LATEST_TTL_SECS`]: guard::LATEST_TTL_SECS
//! [`CLAIM_TTL_SECS`]: guard::CLAIM_TTL_SECS

mod change;
mod guard;
pub(crate) mod ledger;
pub(crate) mod models;
pub(crate) mod params;

pub use ledger::Ledger;

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use tracing::{info, warn};

use super::entities::ItemsPage;
use super::error::{ApiError, ApiJson, ErrorBody};
use super::AdminState;
use change::next_version;
use guard::VersionGuard;
use ledger::Stored;
use models::{ConversionDetail, ConversionView, ListQuery, StatusChange};
use params::ListFilter;

type Answer<T> = Result<Json<T>, ApiError>;

/// List conversions, each in its latest state, oldest first.
#[utoipa::path(get, path = "/api/v1/conversions", tag = "conversions", params(ListQuery),
    responses(
        (status = 200, description = "a page of conversions, each its latest version", body = ItemsPage<ConversionView>),
        (status = 400, description = "an invalid query parameter (named)", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "clickhouse unavailable", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn list_conversions(
    State(s): State<Arc<AdminState>>,
    RawQuery(q): RawQuery,
) -> Answer<ItemsPage<ConversionView>> {
    let filter = ListFilter::parse(q.as_deref())?;
    let mut rows = s.conversions.page(&filter).await?;
    let next_cursor = if rows.len() as u64 > filter.limit {
        rows.truncate(filter.limit as usize);
        rows.last().map(|r| r.conversion_id.clone())
    } else {
        None
    };
    Ok(Json(ItemsPage {
        items: rows.into_iter().map(Stored::view).collect(),
        next_cursor,
    }))
}

/// Read a conversion: its latest state and its history.
#[utoipa::path(get, path = "/api/v1/conversions/{conversion_id}", tag = "conversions",
    params(("conversion_id" = String, Path, description = "conversion id")),
    responses(
        (status = 200, description = "the latest state, with every version in `history`", body = ConversionDetail),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "no such conversion in clickhouse (yet)", body = ErrorBody),
        (status = 503, description = "clickhouse unavailable", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn get_conversion(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Answer<ConversionDetail> {
    let versions = s.conversions.versions(&id).await?;
    let history: Vec<ConversionView> = versions.into_iter().map(Stored::view).collect();
    let latest = history.last().cloned().ok_or_else(|| not_found(&id))?;
    Ok(Json(ConversionDetail { latest, history }))
}

/// Change a conversion's status: appends a version (see the rules in the
/// description of `StatusChange`). Allowed: pending → approved or
/// rejected, approved → reversed.
#[utoipa::path(patch, path = "/api/v1/conversions/{conversion_id}", tag = "conversions",
    request_body = StatusChange,
    params(("conversion_id" = String, Path, description = "conversion id")),
    responses(
        (status = 200, description = "the new latest state", body = ConversionView),
        (status = 400, description = "malformed JSON, or an invalid status or reason (named)", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "no such conversion in clickhouse (yet)", body = ErrorBody),
        (status = 409, description = "`invalid_transition`: the move is not allowed; `not_yet_shipped`: \
            the last change is not in clickhouse yet, retry in a second; `conflict`: changed concurrently", body = ErrorBody),
        (status = 413, description = "body larger than http.max_body_bytes", body = ErrorBody),
        (status = 503, description = "redis, clickhouse or the spool unavailable", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn patch_conversion(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<StatusChange>,
) -> Answer<ConversionView> {
    change.check()?;
    let catalog = s.catalog()?;
    let versions = s.conversions.versions(&id).await?;
    let current = versions.last().ok_or_else(|| not_found(&id))?;
    let next = next_version(current, &change)?;
    let guard = VersionGuard::new(catalog);
    guard.check_shipped(&id, current.version).await?;
    guard.claim(&id, next.version).await?;
    if !s.conversions.record(&next, current) {
        guard.release(&id, next.version).await;
        return Err(ApiError::unavailable(
            "the spool cannot take the new version; nothing was changed",
        ));
    }
    if let Err(e) = guard.set_latest(&id, next.version).await {
        // Recorded, so answered as done; the claim still guards the
        // version for CLAIM_TTL_SECS.
        warn!(conversion_id = %id, version = next.version, error = %e, "latest conversion version not saved in redis");
    }
    info!(conversion_id = %id, version = next.version, from = %current.status, to = %next.status, "conversion status changed");
    s.conversions.announce(&next).await;
    Ok(Json(next.view()))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(
        format!(
            "no conversion with id {id:?} (one recorded in the last seconds may not be in clickhouse yet)"
        ),
        Some("conversion_id"),
    )
}

#[cfg(test)]
mod tests;
