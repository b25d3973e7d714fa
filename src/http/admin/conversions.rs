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

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use utoipa::{IntoParams, ToSchema};

use super::entities::ItemsPage;
use super::error::{ApiError, ApiJson, ErrorBody};
use super::AdminState;
use crate::attribution::{transition, Reason, Status};
use crate::catalog::Catalog;
use crate::events::{ConversionRow, Event, EventSink, Money};

/// The listing's query: a page of latest versions.
pub const LATEST_SQL: &str = include_str!("../../sql/conversions_latest.sql");

/// One conversion's every version, oldest first.
pub const VERSIONS_SQL: &str = include_str!("../../sql/conversion_versions.sql");

/// Default and largest page size of the listing.
const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;

/// Longest conversion id, cursor or filter value taken from a request:
/// intake's ids are 22 characters; anything much longer names nothing.
const MAX_ID_LEN: usize = 64;

/// Longest reversal reason, in bytes.
const MAX_REASON_LEN: usize = 256;

/// How long an admin query may take before it answers `503`.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Lifetime of a version claim: only the moments between claim and
/// record need it (the latest-version key guards afterwards), so it is
/// short enough that a crash mid-change blocks that conversion briefly.
pub const CLAIM_TTL_SECS: u64 = 600;

/// Lifetime of the latest-version key: far longer than any delay between
/// the log and ClickHouse, short enough that Redis does not keep one key
/// per changed conversion forever.
pub const LATEST_TTL_SECS: u64 = 30 * 86_400;

/// Reads conversions from ClickHouse and records their new versions.
pub struct Ledger {
    /// Reads the `conversions` table.
    client: clickhouse::Client,
    /// Makes a new version durable, for the shipper to insert.
    sink: Arc<EventSink>,
    /// [`LATEST_SQL`] for this database, comments removed.
    latest_sql: String,
    /// [`VERSIONS_SQL`] for this database, comments removed.
    versions_sql: String,
    /// Tells the credited partner of every change it can see (approval,
    /// reversal); `None` tells no one.
    postbacks: Option<Arc<crate::conversions::deliver::Postbacks>>,
}

/// A conversion as the API shows it: one version of its row. Money is a
/// decimal string with four places (the column's exact value), times are
/// RFC 3339 in UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConversionView {
    /// The conversion's id, the same in every version.
    pub conversion_id: String,
    /// When the conversion was first recorded.
    pub ts: String,
    /// The attributed click's id, or empty.
    pub click_id: String,
    /// When that click happened; null without a click.
    pub click_ts: Option<String>,
    /// The partner credited, or 0.
    pub partner_id: u64,
    /// The offer converted.
    pub offer_id: u64,
    /// The click's link, or 0.
    pub link_id: u64,
    /// The merchant's order id, or empty.
    pub order_id: String,
    /// The merchant's event name.
    pub event: String,
    /// The order amount, in `currency`.
    #[schema(value_type = String, example = "20.0000")]
    pub amount: Money,
    /// ISO 4217 code of `amount`.
    pub currency: String,
    /// What the partner earns, in `payout_currency`.
    #[schema(value_type = String, example = "5.0000")]
    pub payout: Money,
    /// ISO 4217 code of `payout`.
    pub payout_currency: String,
    /// approved, pending, duplicate, rejected or reversed.
    pub status: String,
    /// Why that status; a reversal's text as given.
    pub reason: String,
    /// The merchant's customer id, or empty.
    pub customer_id: String,
    /// `click`, `customer` or `deal`.
    pub attribution: String,
    /// Which payout rule set `payout`, or empty.
    pub payout_rule: String,
    /// `pixel` or `postback`.
    pub source: String,
    /// 1 when recorded, one more for every status change.
    pub version: u64,
}

/// A conversion's current state and how it got there.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConversionDetail {
    /// The latest version.
    #[serde(flatten)]
    pub latest: ConversionView,
    /// Every version, oldest first; the last is `latest`.
    pub history: Vec<ConversionView>,
}

/// A status change.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    /// The new status.
    pub status: Target,
    /// Why: for `approved`, `ok` or `deal_registration`; for `rejected`, a
    /// rejected reason or `manual_review` (the default); for `reversed`,
    /// required, any text up to 256 bytes.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The statuses a change may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// From pending.
    Approved,
    /// From pending.
    Rejected,
    /// From approved: a clawback.
    Reversed,
}

/// The listing's query, as documented; [`ListFilter::parse`] reads the raw
/// query itself so that each bad value is named with the API's error shape.
#[allow(dead_code)] // read only by the OpenAPI derive
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1 to 1000; default 100.
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only this partner's conversions.
    pub partner_id: Option<u64>,
    /// Only this offer's conversions.
    pub offer_id: Option<u64>,
    /// Only conversions whose latest status is this one.
    pub status: Option<String>,
    /// Recorded at or after: RFC 3339, or `YYYY-MM-DD` (midnight UTC).
    pub from: Option<String>,
    /// Recorded before: RFC 3339, or `YYYY-MM-DD` (that whole day, UTC).
    pub to: Option<String>,
}

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
    if !s.conversions.record(&next) {
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

impl Ledger {
    /// The same ledger, queueing a partner postback for each change the
    /// partner can see.
    pub fn with_postbacks(
        mut self,
        postbacks: Arc<crate::conversions::deliver::Postbacks>,
    ) -> Ledger {
        self.postbacks = Some(postbacks);
        self
    }

    /// Queues the partner's postback for a recorded change. The change
    /// stands either way: a queue failure is logged, not answered.
    async fn announce(&self, v: &Stored) {
        use crate::attribution::Status;
        let (Some(postbacks), Some(status)) = (
            &self.postbacks,
            match v.status.as_str() {
                "approved" => Some(Status::Approved),
                "reversed" => Some(Status::Reversed),
                _ => None,
            },
        ) else {
            return;
        };
        if v.partner_id == 0 {
            return;
        }
        let queued = postbacks
            .enqueue(&crate::conversions::deliver::Announcement {
                conversion_id: &v.conversion_id,
                partner_id: v.partner_id,
                offer_id: v.offer_id,
                click_id: &v.click_id,
                order_id: &v.order_id,
                event: &v.event,
                payout: v.payout.to_decimal(),
                currency: &v.payout_currency,
                status,
                reason: &v.reason,
                subs: [""; 5],
            })
            .await;
        if let Err(e) = queued {
            tracing::error!(conversion_id = %v.conversion_id, error = %e, "partner postback of a status change not queued");
        }
    }

    /// A ledger reading `database` through `client` and recording into
    /// `sink`.
    pub fn new(client: clickhouse::Client, database: &str, sink: Arc<EventSink>) -> Ledger {
        let prepare = |sql: &str| {
            sql.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
                .replace("{database}", database)
        };
        Ledger {
            client,
            sink,
            latest_sql: prepare(LATEST_SQL),
            versions_sql: prepare(VERSIONS_SQL),
            postbacks: None,
        }
    }

    /// One page of latest versions, with one row more than `limit` when
    /// there is a next page.
    async fn page(&self, f: &ListFilter) -> Result<Vec<Stored>, ApiError> {
        let query = self
            .client
            .query(&self.latest_sql)
            .bind(f.from)
            .bind(f.to)
            .bind(u8::from(f.partner_id.is_some()))
            .bind(f.partner_id.unwrap_or(0))
            .bind(u8::from(f.offer_id.is_some()))
            .bind(f.offer_id.unwrap_or(0))
            .bind(f.cursor.as_str())
            .bind(f.status.map_or("", Status::as_str))
            .bind(f.status.map_or("", Status::as_str))
            .bind(f.limit + 1);
        fetch(query.fetch_all::<Stored>()).await
    }

    /// Every version of conversion `id`, oldest first; empty when unknown.
    async fn versions(&self, id: &str) -> Result<Vec<Stored>, ApiError> {
        if !plausible_id(id) {
            return Ok(Vec::new());
        }
        let query = self.client.query(&self.versions_sql).bind(id);
        fetch(query.fetch_all::<Stored>()).await
    }

    /// Makes a new version durable; false when the spool cannot take it.
    fn record(&self, v: &Stored) -> bool {
        self.sink.record(&Event::Conversion(ConversionRow {
            conversion_id: &v.conversion_id,
            ts: v.ts,
            click_id: &v.click_id,
            click_ts: v.click_ts,
            link_id: v.link_id,
            partner_id: v.partner_id,
            offer_id: v.offer_id,
            order_id: &v.order_id,
            event: &v.event,
            amount: v.amount,
            currency: &v.currency,
            payout: v.payout,
            payout_currency: &v.payout_currency,
            status: &v.status,
            reason: &v.reason,
            customer_id: &v.customer_id,
            attribution: &v.attribution,
            payout_rule: &v.payout_rule,
            source: &v.source,
            ip: &v.ip,
            version: v.version,
        }))
    }
}

/// A ClickHouse read with the admin timeout; a network failure or timeout
/// is `503`, anything else (a query this build got wrong) `500`.
async fn fetch<T>(
    f: impl std::future::Future<Output = clickhouse::error::Result<T>>,
) -> Result<T, ApiError> {
    use clickhouse::error::Error as E;
    match tokio::time::timeout(QUERY_TIMEOUT, f).await {
        Ok(Ok(rows)) => Ok(rows),
        Ok(Err(e @ (E::Network(_) | E::TimedOut))) => Err(ApiError::unavailable(format!(
            "clickhouse cannot be reached: {e}"
        ))),
        Ok(Err(e)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("clickhouse query failed: {e}"),
            None,
        )),
        Err(_) => Err(ApiError::unavailable(format!(
            "clickhouse did not answer within {}s",
            QUERY_TIMEOUT.as_secs()
        ))),
    }
}

/// One version of a conversion as ClickHouse returns it: the columns of
/// `conversions` in table order (both queries select them so).
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
struct Stored {
    conversion_id: String,
    ts: u32,
    click_id: String,
    click_ts: u32,
    link_id: u64,
    partner_id: u64,
    offer_id: u64,
    order_id: String,
    event: String,
    amount: Money,
    currency: String,
    payout: Money,
    payout_currency: String,
    status: String,
    reason: String,
    customer_id: String,
    attribution: String,
    payout_rule: String,
    source: String,
    /// Carried into new versions, never shown: the client IP of the hit.
    ip: String,
    version: u64,
}

impl Stored {
    fn view(self) -> ConversionView {
        ConversionView {
            ts: rfc3339(self.ts),
            click_ts: (self.click_ts != 0).then(|| rfc3339(self.click_ts)),
            conversion_id: self.conversion_id,
            click_id: self.click_id,
            partner_id: self.partner_id,
            offer_id: self.offer_id,
            link_id: self.link_id,
            order_id: self.order_id,
            event: self.event,
            amount: self.amount,
            currency: self.currency,
            payout: self.payout,
            payout_currency: self.payout_currency,
            status: self.status,
            reason: self.reason,
            customer_id: self.customer_id,
            attribution: self.attribution,
            payout_rule: self.payout_rule,
            source: self.source,
            version: self.version,
        }
    }
}

fn rfc3339(secs: u32) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs.into())).to_string()
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(
        format!(
            "no conversion with id {id:?} (one recorded in the last seconds may not be in clickhouse yet)"
        ),
        Some("conversion_id"),
    )
}

/// Whether `id` could be a conversion id: anything else names none, and is
/// answered without a query.
fn plausible_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl StatusChange {
    /// The body's rules that do not depend on the conversion.
    fn check(&self) -> Result<(), ApiError> {
        let reason = self.reason.as_deref();
        let allowed: &[Reason] = match self.status {
            Target::Approved => &[Reason::Ok, Reason::DealRegistration],
            Target::Rejected => &[
                Reason::ManualReview,
                Reason::InvalidClickId,
                Reason::Expired,
                Reason::TooFast,
                Reason::OfferMismatch,
                Reason::PartnerInactive,
                Reason::BotClick,
                Reason::CapReached,
                Reason::UnknownCustomer,
            ],
            Target::Reversed => {
                return match reason {
                    Some(r) if !r.is_empty() && r.len() <= MAX_REASON_LEN => Ok(()),
                    _ => Err(ApiError::invalid(
                        "reason",
                        format!(
                            "a reversal needs a reason: any text of 1 to {MAX_REASON_LEN} bytes"
                        ),
                    )),
                };
            }
        };
        match reason {
            None => Ok(()),
            Some(r) if allowed.iter().any(|a| a.as_str() == r) => Ok(()),
            Some(r) => Err(ApiError::invalid(
                "reason",
                format!(
                    "reason {r:?} is not one for {}: use one of {}",
                    self.status.status(),
                    allowed
                        .iter()
                        .map(|a| a.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
}

impl Target {
    fn status(self) -> Status {
        match self {
            Target::Approved => Status::Approved,
            Target::Rejected => Status::Rejected,
            Target::Reversed => Status::Reversed,
        }
    }
}

/// The version `change` appends to `current` (a checked change): pure.
fn next_version(current: &Stored, change: &StatusChange) -> Result<Stored, ApiError> {
    let to = change.status.status();
    let from = Status::ALL
        .into_iter()
        .find(|s| s.as_str() == current.status);
    let Some(from) = from else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_transition",
            format!("status cannot change from {:?}", current.status),
            Some("status"),
        ));
    };
    transition(from, to).map_err(|e| {
        ApiError::new(
            StatusCode::CONFLICT,
            "invalid_transition",
            e.to_string(),
            Some("status"),
        )
    })?;
    let given = change.reason.clone();
    let mut next = current.clone();
    match change.status {
        Target::Approved => {
            let default = if current.attribution == "deal" {
                Reason::DealRegistration
            } else {
                Reason::Ok
            };
            next.reason = given.unwrap_or_else(|| default.as_str().into());
        }
        Target::Rejected => {
            next.reason = given.unwrap_or_else(|| Reason::ManualReview.as_str().into());
            next.payout = Money::ZERO;
            next.payout_rule = String::new();
        }
        // check() made sure there is one.
        Target::Reversed => next.reason = given.unwrap_or_default(),
    }
    next.status = to.as_str().into();
    next.version = current.version + 1;
    Ok(next)
}

/// The listing's parameters, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ListFilter {
    limit: u64,
    /// The last conversion id of the previous page, or empty.
    cursor: String,
    partner_id: Option<u64>,
    offer_id: Option<u64>,
    status: Option<Status>,
    /// Unix seconds, inclusive.
    from: u32,
    /// Unix seconds, exclusive.
    to: u32,
}

impl ListFilter {
    fn parse(query: Option<&str>) -> Result<ListFilter, ApiError> {
        let mut f = ListFilter {
            limit: DEFAULT_LIMIT,
            cursor: String::new(),
            partner_id: None,
            offer_id: None,
            status: None,
            from: 0,
            to: u32::MAX,
        };
        let id = |field: &str, v: &str| {
            v.parse::<u64>()
                .map_err(|_| ApiError::invalid(field, "must be a whole number"))
        };
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "limit" => match v.parse::<u64>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => f.limit = n,
                    _ => {
                        return Err(ApiError::invalid(
                            "limit",
                            format!("must be a whole number from 1 to {MAX_LIMIT}"),
                        ))
                    }
                },
                "cursor" if plausible_id(&v) => f.cursor = v.into_owned(),
                "cursor" => {
                    return Err(ApiError::invalid(
                        "cursor",
                        "must be a next_cursor value from an earlier page",
                    ))
                }
                "partner_id" => f.partner_id = Some(id("partner_id", &v)?),
                "offer_id" => f.offer_id = Some(id("offer_id", &v)?),
                "status" => {
                    f.status = Some(
                        Status::ALL
                            .into_iter()
                            .find(|s| s.as_str() == v)
                            .ok_or_else(|| {
                                ApiError::invalid(
                                    "status",
                                    "must be approved, pending, duplicate, rejected or reversed",
                                )
                            })?,
                    )
                }
                "from" => f.from = parse_instant("from", &v, false)?,
                "to" => f.to = parse_instant("to", &v, true)?,
                _ => {}
            }
        }
        if f.from > f.to {
            return Err(ApiError::invalid("to", "must not be before from"));
        }
        Ok(f)
    }
}

/// Unix seconds of an RFC 3339 time (any offset) or a `YYYY-MM-DD` date in
/// UTC: its midnight, or with `end_of_day` the next midnight (so `to` is
/// exclusive and a date includes that whole day).
fn parse_instant(field: &str, v: &str, end_of_day: bool) -> Result<u32, ApiError> {
    let bad = || {
        ApiError::invalid(
            field,
            "must be an RFC 3339 time (2026-01-31T12:00:00Z) or a date (2026-01-31)",
        )
    };
    let secs: i64 = if v.len() == 10 {
        let t = humantime::parse_rfc3339(&format!("{v}T00:00:00Z")).map_err(|_| bad())?;
        unix(t) + if end_of_day { 86_400 } else { 0 }
    } else {
        // humantime reads UTC only: take any other offset off by hand.
        let (local, offset) = match v.as_bytes() {
            [.., b'Z' | b'z'] => (&v[..v.len() - 1], 0),
            [.., sign @ (b'+' | b'-'), h1, h2, b':', m1, m2]
                if [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()) =>
            {
                let hours = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
                let minutes = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
                let offset = (hours * 60 + minutes) * 60;
                let offset = if *sign == b'-' { -offset } else { offset };
                (&v[..v.len() - 6], offset)
            }
            _ => return Err(bad()),
        };
        let t = humantime::parse_rfc3339(&format!("{local}Z")).map_err(|_| bad())?;
        unix(t) - offset
    };
    u32::try_from(secs).map_err(|_| ApiError::invalid(field, "is out of range (1970 to 2106)"))
}

/// Seconds since the epoch, negative before it.
fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// The Redis side of a change: the latest-version key and version claims
/// (see the module doc).
struct VersionGuard<'a> {
    catalog: &'a Catalog,
}

impl<'a> VersionGuard<'a> {
    fn new(catalog: &'a Catalog) -> Self {
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
    async fn check_shipped(&self, id: &str, seen: u64) -> Result<(), ApiError> {
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
    async fn claim(&self, id: &str, version: u64) -> Result<(), ApiError> {
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
    async fn release(&self, id: &str, version: u64) {
        let (mut conn, prefix, timeout) = self.catalog.redis();
        let cmd = redis::cmd("DEL")
            .arg(Self::claim_key(prefix, id, version))
            .clone();
        if let Err(e) = Self::run::<i64>(timeout, cmd.query_async(&mut conn)).await {
            warn!(conversion_id = %id, version, error = %e.detail.message, "conversion version claim not released; it expires on its own");
        }
    }

    /// Remembers `version` as the latest written.
    async fn set_latest(&self, id: &str, version: u64) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(status: &str, attribution: &str) -> Stored {
        Stored {
            conversion_id: "0000AbC".into(),
            ts: 1_790_000_100,
            click_id: "c".into(),
            click_ts: 1_790_000_000,
            link_id: 3,
            partner_id: 1,
            offer_id: 2,
            order_id: "o-1".into(),
            event: "sale".into(),
            amount: Money::from_scaled(200_000).unwrap(),
            currency: "EUR".into(),
            payout: Money::from_scaled(50_000).unwrap(),
            payout_currency: "USD".into(),
            status: status.into(),
            reason: "x".into(),
            customer_id: "cu".into(),
            attribution: attribution.into(),
            payout_rule: "offer".into(),
            source: "postback".into(),
            ip: "1.2.3.4".into(),
            version: 4,
        }
    }

    /// `(status, reason, payout in ten-thousandths, payout_rule)` of the
    /// version a change appends, or the error's `(http status, code, field)`.
    type Expected = Result<
        (&'static str, &'static str, i64, &'static str),
        (u16, &'static str, Option<&'static str>),
    >;

    fn check(from: &str, attribution: &str, body: &str, expected: Expected) {
        let current = stored(from, attribution);
        let got = super::super::error::parse::<StatusChange>(body.as_bytes())
            .and_then(|c| c.check().map(|()| c))
            .and_then(|c| next_version(&current, &c));
        let got = match got {
            Ok(n) => {
                // Everything else is carried over, one version up.
                let carried = Stored {
                    status: current.status.clone(),
                    reason: current.reason.clone(),
                    payout: current.payout,
                    payout_rule: current.payout_rule.clone(),
                    version: current.version,
                    ..n.clone()
                };
                assert_eq!(carried, current, "{from} {body}");
                assert_eq!(n.version, 5);
                Ok((n.status, n.reason, n.payout.scaled(), n.payout_rule))
            }
            Err(e) => Err((e.status.as_u16(), e.detail.code, e.detail.field)),
        };
        let expected = expected
            .map(|(s, r, p, rule)| (s.into(), r.into(), p, rule.into()))
            .map_err(|(st, c, f)| (st, c.to_string(), f.map(str::to_string)));
        assert_eq!(got, expected, "{from} {attribution} {body}");
    }

    #[test]
    fn status_changes() {
        let conflict = Err((409, "invalid_transition", Some("status")));
        let bad_reason = Err((400, "invalid", Some("reason")));
        let cases: &[(&str, &str, &str, Expected)] = &[
            // pending → approved: payout kept, reason ok (or the deal's).
            (
                "pending",
                "click",
                r#"{"status":"approved"}"#,
                Ok(("approved", "ok", 50_000, "offer")),
            ),
            (
                "pending",
                "deal",
                r#"{"status":"approved"}"#,
                Ok(("approved", "deal_registration", 50_000, "offer")),
            ),
            (
                "pending",
                "click",
                r#"{"status":"approved","reason":"ok"}"#,
                Ok(("approved", "ok", 50_000, "offer")),
            ),
            (
                "pending",
                "click",
                r#"{"status":"approved","reason":"looks fine"}"#,
                bad_reason,
            ),
            (
                "pending",
                "click",
                r#"{"status":"approved","reason":"bot_click"}"#,
                bad_reason,
            ),
            // pending → rejected: pays nothing.
            (
                "pending",
                "click",
                r#"{"status":"rejected"}"#,
                Ok(("rejected", "manual_review", 0, "")),
            ),
            (
                "pending",
                "click",
                r#"{"status":"rejected","reason":"bot_click"}"#,
                Ok(("rejected", "bot_click", 0, "")),
            ),
            (
                "pending",
                "click",
                r#"{"status":"rejected","reason":"ok"}"#,
                bad_reason,
            ),
            // approved → reversed: the payout clawed back, any reason.
            (
                "approved",
                "click",
                r#"{"status":"reversed","reason":"refund #42"}"#,
                Ok(("reversed", "refund #42", 50_000, "offer")),
            ),
            ("approved", "click", r#"{"status":"reversed"}"#, bad_reason),
            (
                "approved",
                "click",
                r#"{"status":"reversed","reason":""}"#,
                bad_reason,
            ),
            // Every other move.
            (
                "pending",
                "click",
                r#"{"status":"reversed","reason":"r"}"#,
                conflict,
            ),
            ("approved", "click", r#"{"status":"approved"}"#, conflict),
            ("approved", "click", r#"{"status":"rejected"}"#, conflict),
            ("rejected", "click", r#"{"status":"approved"}"#, conflict),
            (
                "reversed",
                "click",
                r#"{"status":"reversed","reason":"again"}"#,
                conflict,
            ),
            ("duplicate", "click", r#"{"status":"approved"}"#, conflict),
            ("mystery", "click", r#"{"status":"approved"}"#, conflict),
            // Statuses a change cannot set, and bad bodies.
            (
                "approved",
                "click",
                r#"{"status":"pending"}"#,
                Err((400, "invalid", Some("status"))),
            ),
            (
                "pending",
                "click",
                r#"{"status":"duplicate"}"#,
                Err((400, "invalid", Some("status"))),
            ),
            (
                "pending",
                "click",
                r#"{"reason":"ok"}"#,
                Err((400, "invalid", Some("status"))),
            ),
            (
                "pending",
                "click",
                r#"{"status":"approved","note":"x"}"#,
                Err((400, "invalid", Some("note"))),
            ),
        ];
        for (from, attribution, body, expected) in cases {
            check(from, attribution, body, *expected);
        }
        let long = "r".repeat(MAX_REASON_LEN + 1);
        check(
            "approved",
            "click",
            &format!(r#"{{"status":"reversed","reason":"{long}"}}"#),
            bad_reason,
        );
    }

    fn check_filter(query: &str, expected: Result<ListFilter, &str>) {
        let got = ListFilter::parse(Some(query)).map_err(|e| e.detail.field.unwrap_or_default());
        assert_eq!(got, expected.map_err(str::to_string), "{query}");
    }

    #[test]
    fn list_parameters() {
        let all = ListFilter {
            limit: 100,
            cursor: String::new(),
            partner_id: None,
            offer_id: None,
            status: None,
            from: 0,
            to: u32::MAX,
        };
        check_filter("", Ok(all.clone()));
        check_filter(
            "limit=5&cursor=0000AbC&partner_id=3&offer_id=0&status=pending",
            Ok(ListFilter {
                limit: 5,
                cursor: "0000AbC".into(),
                partner_id: Some(3),
                offer_id: Some(0),
                status: Some(Status::Pending),
                ..all.clone()
            }),
        );
        // 2026-01-31 is 1_769_817_600.
        for (q, from, to) in [
            (
                "from=2026-01-31&to=2026-01-31",
                1_769_817_600,
                1_769_904_000,
            ),
            ("from=2026-01-31T12:00:00Z", 1_769_860_800, u32::MAX),
            ("from=2026-01-31T12:00:00.5Z", 1_769_860_800, u32::MAX),
            ("from=2026-01-31T14:00:00%2B02:00", 1_769_860_800, u32::MAX),
            ("from=2026-01-31T10:30:00-01:30", 1_769_860_800, u32::MAX),
            ("to=1970-01-01T00:00:00Z", 0, 0),
        ] {
            check_filter(
                q,
                Ok(ListFilter {
                    from,
                    to,
                    ..all.clone()
                }),
            );
        }
        for (q, field) in [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("cursor=a%20b", "cursor"),
            ("partner_id=-1", "partner_id"),
            ("offer_id=x", "offer_id"),
            ("status=paid", "status"),
            ("from=yesterday", "from"),
            ("from=2026-02-30", "from"),
            ("from=2026-01-31T12:00:00", "from"),
            ("to=1969-12-31T23:59:59Z", "to"),
            ("to=2200-01-01", "to"),
            ("from=2026-02-01&to=2026-01-01", "to"),
        ] {
            check_filter(q, Err(field));
        }
    }

    #[test]
    fn ids() {
        for (id, ok) in [
            ("0000AbC", true),
            ("cv_0A2b5nkX12I0sfAI8Qi4Oy2LGb50Bi", true),
            ("", false),
            ("a'b", false),
            ("a b", false),
            (&"a".repeat(65), false),
        ] {
            assert_eq!(plausible_id(id), ok, "{id}");
        }
    }

    #[test]
    fn views_show_money_as_decimal_strings_and_times_in_utc() {
        let mut s = stored("approved", "click");
        s.ts = 1_769_860_800;
        let v = serde_json::to_value(s.clone().view()).unwrap();
        assert_eq!(v["amount"], "20.0000");
        assert_eq!(v["payout"], "5.0000");
        assert_eq!(v["ts"], "2026-01-31T12:00:00Z");
        assert_eq!(v["click_ts"], "2026-09-21T14:13:20Z");
        assert!(v.get("ip").is_none());
        s.click_ts = 0;
        assert_eq!(
            serde_json::to_value(s.view()).unwrap()["click_ts"],
            serde_json::Value::Null
        );
    }
}
