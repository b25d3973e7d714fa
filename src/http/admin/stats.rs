//! `GET /api/v1/stats`: the HTTP face of [`crate::stats`]: the query
//! string in, JSON or CSV out, errors in the API's shape. The shapes here
//! only document the answer; `stats::render` writes it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::AdminState;
use crate::stats::render::{csv, JsonPage};
use crate::stats::request::Format;
use crate::stats::timing::{TimingKey, BUCKETS};
use crate::stats::{Stats, StatsError};

/// The page's next cursor, on CSV answers (JSON has `next_cursor`).
pub const NEXT_CURSOR_HEADER: &str = "x-next-cursor";

/// Which source answered the click counts (`rollup` or `raw`), on every
/// answer.
pub const SOURCE_HEADER: &str = "x-stats-source";

/// Which source answered the conversion counts (`rollup` or `raw`), on
/// every answer.
pub const CONVERSIONS_SOURCE_HEADER: &str = "x-stats-conversions-source";

/// Query parameters of `GET /api/v1/stats` (documentation only: the
/// handler reads the raw query string to name any bad parameter).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct StatsQuery {
    /// Comma list of group keys: `partner`, `offer`, `link`, `day`, `hour`,
    /// `week`, `month`, `country`, `device`, `os`, `browser`, `sub1` …
    /// `sub5`. None: one row of totals.
    group_by: Option<String>,
    /// Comma list of metrics to answer (default all): `clicks`,
    /// `unique_clicks`, `bot_clicks`, `rate_limited_clicks`,
    /// `conversions`, `pending`, `rejected`, `reversed`, `revenue`,
    /// `payout`, `cr`, `epc`.
    metrics: Option<String>,
    /// Comma list of partner ids to keep.
    partner_id: Option<String>,
    /// Comma list of offer ids to keep.
    offer_id: Option<String>,
    /// Comma list of link ids to keep.
    link_id: Option<String>,
    /// Comma list of click countries to keep (`DE,FR`).
    country: Option<String>,
    /// First instant, inclusive: RFC 3339, or `YYYY-MM-DD` (midnight in
    /// `tz`). Default: 29 days before today in `tz`.
    from: Option<String>,
    /// End, exclusive: RFC 3339, or `YYYY-MM-DD` (that day included: the
    /// midnight in `tz` that ends it). Default: today included.
    to: Option<String>,
    /// IANA time zone of dates and of day, hour, week and month keys
    /// (default `UTC`).
    tz: Option<String>,
    /// A metric or a group key, `-` first for descending (`-clicks`).
    /// Ties (and the default order) go by the group keys ascending.
    sort: Option<String>,
    /// Rows per page (default `stats.default_limit`, at most
    /// `stats.max_limit`).
    limit: Option<u64>,
    /// `next_cursor` of the previous page of the same query.
    cursor: Option<String>,
    /// `auto` (default: a rollup whenever one can answer), `rollup` (`400`
    /// when none can: `sub2`…`sub5` keys, `unique_clicks` shown or sorted
    /// by, or `from`/`to` off a 15-minute boundary) or `raw`.
    source: Option<String>,
    /// `json` or `csv`; without it, CSV when `Accept` names `text/csv`.
    format: Option<String>,
}

/// One row: the group keys asked for, then the metrics asked for. Money,
/// `cr` and `epc` are decimal strings with 4 places.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
pub struct StatsRowDoc {
    /// Group key `partner`.
    partner_id: Option<u64>,
    /// Group key `offer`.
    offer_id: Option<u64>,
    /// Group key `link`.
    link_id: Option<u64>,
    /// Group key: the local date in `tz`.
    #[schema(example = "2026-01-15")]
    day: Option<String>,
    /// Group key: the local hour's start in `tz`, with the offset.
    #[schema(example = "2026-01-15T05:00:00+05:45")]
    hour: Option<String>,
    /// Group key: the week's Monday, a local date.
    #[schema(example = "2026-01-12")]
    week: Option<String>,
    /// Group key: the local month.
    #[schema(example = "2026-01")]
    month: Option<String>,
    /// Group key: the click's country (empty: unknown).
    country: Option<String>,
    /// Group key: the click's device type.
    device: Option<String>,
    /// Group key: the click's operating system.
    os: Option<String>,
    /// Group key: the click's browser.
    browser: Option<String>,
    /// Group key: the click's sub-id 1 (`sub2` … `sub5` alike).
    sub1: Option<String>,
    /// Billable clicks: neither bot nor rate limited.
    clicks: Option<u64>,
    /// Distinct visitors (daily keyed hash of IP and user agent) among
    /// billable clicks.
    unique_clicks: Option<u64>,
    /// Clicks flagged as bots.
    bot_clicks: Option<u64>,
    /// Clicks over their client's rate (not bots).
    rate_limited_clicks: Option<u64>,
    /// Conversions whose latest state is approved, at the conversion's time.
    conversions: Option<u64>,
    /// Conversions whose latest state is pending.
    pending: Option<u64>,
    /// Conversions whose latest state is rejected.
    rejected: Option<u64>,
    /// Conversions whose latest state is reversed.
    reversed: Option<u64>,
    /// Sum of approved conversions' amounts.
    #[schema(example = "1250.0000")]
    revenue: Option<String>,
    /// Sum of approved conversions' payouts.
    #[schema(example = "125.0000")]
    payout: Option<String>,
    /// conversions / clicks, 4 places; null without clicks.
    #[schema(example = "0.0125")]
    cr: Option<String>,
    /// payout / clicks, 4 places; null without clicks.
    #[schema(example = "0.0150")]
    epc: Option<String>,
}

/// A page of stats.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
pub struct StatsAnswer {
    /// The rows, in the order asked.
    rows: Vec<StatsRowDoc>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
    /// Where the click counts came from: `rollup` or `raw`.
    source: String,
    /// Where the conversion counts came from: `rollup`
    /// (`conversions_15m`: keys and filters by partner, offer, link and
    /// time only, whole 15-minute bounds, not `source=raw`) or `raw`.
    conversions_source: String,
}

/// Clicks and conversions grouped, filtered and sorted. Exact in every
/// time zone: click counts come from 15-minute rollups where one can answer
/// (every UTC offset is a whole number of quarter hours), else from the raw
/// table, as do distinct visitors; conversions count in their latest state,
/// at their own time, from a 15-minute rollup where it can answer, else
/// from the raw table.
#[utoipa::path(get, path = "/api/v1/stats", tag = "stats", params(StatsQuery),
    responses(
        (status = 200, description = "a page of rows (CSV with `format=csv` or `Accept: text/csv`; \
            its next cursor in `X-Next-Cursor`)", body = StatsAnswer,
            headers(("x-stats-source" = String, description = "where the click counts came from: rollup or raw"),
                ("x-stats-conversions-source" = String, description = "where the conversion counts came from: rollup or raw"))),
        (status = 400, description = "an invalid parameter (named in `field`): unknown group key, metric \
            or parameter, from after to, a range over stats.max_range_days, a bad tz or cursor, \
            source=rollup that the rollup cannot answer", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "clickhouse unreachable, or the query over stats.query_timeout_secs", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn get_stats(
    State(s): State<Arc<AdminState>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    respond(&s.stats, q.as_deref().unwrap_or(""), &headers).await
}

/// The stats answer to raw query string `query`, JSON or CSV as asked
/// (`format`, else `Accept`): the admin API's and, with its partner filter
/// forced, the partner API's.
pub(crate) async fn respond(
    stats: &Stats,
    query: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let request = stats.parse(query, now)?;
    let as_csv = match request.format {
        Some(f) => f == Format::Csv,
        None => headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("text/csv")),
    };
    let page = stats.answer(request).await?;
    let source = HeaderValue::from_static(page.plan.name());
    let conversions_source = HeaderValue::from_static(page.conversions_plan.name());
    let mut resp = if as_csv {
        let mut r = (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            csv(&page),
        )
            .into_response();
        if let Some(c) = page.next_cursor.as_deref() {
            // Hex digits: always a valid header value.
            if let Ok(v) = HeaderValue::from_str(c) {
                r.headers_mut().insert(NEXT_CURSOR_HEADER, v);
            }
        }
        r
    } else {
        Json(JsonPage(&page)).into_response()
    };
    resp.headers_mut().insert(SOURCE_HEADER, source);
    resp.headers_mut()
        .insert(CONVERSIONS_SOURCE_HEADER, conversions_source);
    Ok(resp)
}

impl From<StatsError> for ApiError {
    fn from(e: StatsError) -> ApiError {
        match e {
            StatsError::Invalid(f) => ApiError::invalid(&f.field, f.message),
            StatsError::Unavailable(m) => ApiError::unavailable(m),
            StatsError::Failed(m) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", m, None)
            }
        }
    }
}

/// Query parameters of `GET /api/v1/stats/conversion-times` (documentation
/// only: the handler reads the raw query string to name any bad
/// parameter).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct TimingQuery {
    /// Comma list of `partner`, `offer` (default both; empty: one row of
    /// totals).
    group_by: Option<String>,
    /// Comma list of partner ids to keep.
    partner_id: Option<String>,
    /// Comma list of offer ids to keep.
    offer_id: Option<String>,
    /// Comma list of latest statuses counted: `approved`, `pending`,
    /// `rejected`, `reversed` (default all but `rejected`).
    status: Option<String>,
    /// First conversion instant, inclusive, as in `/api/v1/stats`.
    from: Option<String>,
    /// End, exclusive, as in `/api/v1/stats` (a date is included).
    to: Option<String>,
    /// IANA time zone of dates (default `UTC`).
    tz: Option<String>,
    /// Rows, most conversions first (default `stats.default_limit`).
    limit: Option<u64>,
}

/// Seconds from click to conversion of one partner and offer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimingRowDoc {
    /// Group key `partner`.
    #[serde(skip_serializing_if = "Option::is_none")]
    partner_id: Option<u64>,
    /// Group key `offer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    offer_id: Option<u64>,
    /// Conversions counted.
    conversions: u64,
    /// Conversions per bucket: `under_10s`, `10s_to_1m`, `1m_to_10m`,
    /// `10m_to_1h`, `1h_to_1d`, `1d_to_7d`, `7d_to_30d`, `30d_and_over`.
    #[schema(value_type = Object)]
    buckets: serde_json::Map<String, serde_json::Value>,
    /// 10th percentile of the seconds, exact.
    p10_seconds: u64,
    /// Median seconds, exact.
    median_seconds: u64,
    /// 90th percentile, exact.
    p90_seconds: u64,
}

/// The distribution's rows.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimingAnswer {
    /// Most conversions first.
    rows: Vec<TimingRowDoc>,
    /// Whether rows were left off by `limit`.
    truncated: bool,
}

/// How long after their click conversions came, per partner and offer:
/// counts in eight buckets from under 10 seconds to 30 days and over, and
/// exact percentiles. Each conversion counts once, in its latest state, at
/// its own time; conversions without a click are left out. Most sales
/// within seconds of the click, or most of them weeks later, are both
/// worth a look.
#[utoipa::path(get, path = "/api/v1/stats/conversion-times", tag = "stats", params(TimingQuery),
    responses(
        (status = 200, description = "the distribution", body = TimingAnswer),
        (status = 400, description = "an invalid parameter (named in `field`)", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "clickhouse unreachable, or the query over stats.query_timeout_secs", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn get_conversion_times(
    State(s): State<Arc<AdminState>>,
    RawQuery(q): RawQuery,
) -> Result<Json<TimingAnswer>, ApiError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let request = s.stats.parse_timing(q.as_deref().unwrap_or(""), now)?;
    let (rows, truncated) = s.stats.answer_timing(&request).await?;
    let rows = rows
        .into_iter()
        .map(|r| {
            let key = |k: TimingKey| {
                request
                    .group_by
                    .iter()
                    .position(|g| *g == k)
                    .and_then(|i| r.keys.get(i))
                    .and_then(|t| t.parse::<u64>().ok())
            };
            let buckets = BUCKETS
                .iter()
                .zip(&r.buckets)
                .map(|((name, _), n)| (name.to_string(), serde_json::Value::from(*n)))
                .collect();
            TimingRowDoc {
                partner_id: key(TimingKey::Partner),
                offer_id: key(TimingKey::Offer),
                conversions: r.conversions,
                buckets,
                p10_seconds: r.p10,
                median_seconds: r.p50,
                p90_seconds: r.p90,
            }
        })
        .collect();
    Ok(Json(TimingAnswer { rows, truncated }))
}
