//! Payouts: `GET /api/v1/reports/payouts` (what each partner earned in a
//! range, bonuses included, and what is payable, paid and still owed),
//! `GET`, `POST /api/v1/partners/{id}/payouts` (a partner's payments;
//! record one) and `GET /api/v1/partners/{id}/bonuses` ([`bonuses`]).
//!
//! Every figure comes from [`crate::payments::balance`], the pure
//! decision, over facts read here: each offer's `hold_days` from the
//! catalog, conversions in their latest state, bonuses and the payments
//! made from ClickHouse. A payment is recorded directly into `partner_payments`
//! under a per-partner lock in Redis ([`guard`]), so two payments of one
//! partner never both pay the same money. [`figures`] is the report's one
//! computation, which the partner API's `GET /partner/v1/payouts` calls
//! with its partner forced.

pub(super) mod bonuses;
mod guard;
mod models;
mod params;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, NaiveDate};
use tracing::info;

use super::error::{ApiError, ApiJson, ErrorBody};
use super::AdminState;
use crate::catalog::Catalog;
use crate::events::Money;
use crate::model::{is_currency, Offer};
use crate::payments::store::{date_days, QUERY_TIMEOUT};
use crate::payments::{balances, payment_due, PaymentRow, PaymentStore, Refusal};
use guard::PaymentLock;
use models::{
    csv, parse_date, rfc3339, NewPayment, PaymentList, PayoutReport, ReportParams, MAX_NOTE_BYTES,
};
pub(crate) use models::{PaymentView, PayoutRow};
pub(crate) use params::ReportQuery;

/// Per partner and payout currency: approved, pending and reversed payout
/// of the range's conversions (their latest state) and the range's
/// bonuses; over all time, what is on hold (approved, in the offer's
/// `hold_days`), payable (approved, hold over by the end of yesterday,
/// UTC, and bonuses earned by then: they have no hold), paid, and owed
/// (`payable - paid`, negative when a paid conversion was reversed
/// since).
#[utoipa::path(get, path = "/api/v1/reports/payouts", tag = "payouts", params(ReportParams),
    responses(
        (status = 200, description = "the report (CSV with `format=csv` or `Accept: text/csv`: a header \
            line, then the rows' fields in order)", body = PayoutReport),
        (status = 400, description = "an invalid parameter (named in `field`)", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "redis or clickhouse unavailable, or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn get_report(
    State(s): State<Arc<AdminState>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now = now_s();
    let query = ReportQuery::parse(q.as_deref().unwrap_or(""), now)
        .map_err(|f| ApiError::invalid(&f.field, f.message))?;
    let Figures {
        rows,
        payable_through: through,
        ..
    } = figures(
        &s.payouts,
        s.catalog()?,
        query.partner_id,
        (query.from, query.to),
        now,
    )
    .await?;
    let as_csv = query.csv.unwrap_or_else(|| {
        headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("text/csv"))
    });
    Ok(if as_csv {
        (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            csv(&rows),
        )
            .into_response()
    } else {
        Json(PayoutReport {
            rows,
            from: rfc3339(query.from),
            to: rfc3339(query.to),
            payable_through: through.to_string(),
        })
        .into_response()
    })
}

/// What the report says of every partner (or one): its rows, the
/// payments they count, and the day balances are through.
pub(crate) struct Figures {
    /// By partner, then currency; all-zero rows left out.
    pub rows: Vec<PayoutRow>,
    /// The payments counted in `paid`, oldest first.
    pub payments: Vec<PaymentRow>,
    /// Yesterday (UTC): the last day a payment may cover.
    pub payable_through: NaiveDate,
}

/// The report's figures for `partner` (every partner when `None`) over
/// the activity range `from..to` (Unix seconds), as of `now`. The admin
/// report and the partner API's `GET /partner/v1/payouts` (its partner
/// forced) both answer from here, so the two never disagree.
pub(crate) async fn figures(
    payouts: &PaymentStore,
    catalog: &Catalog,
    partner: Option<u64>,
    (from, to): (u32, u32),
    now: i64,
) -> Result<Figures, ApiError> {
    let holds = holds(catalog).await?;
    let (earnings, payments) = tokio::join!(
        timed(payouts.earnings(partner, from, to, &holds)),
        timed(payouts.payments(partner)),
    );
    let payments = payments?;
    let counted: Vec<_> = payments.iter().map(PaymentRow::payment).collect();
    let through = yesterday(now);
    let rows = balances(&earnings?, &counted, through)
        .iter()
        .map(PayoutRow::of)
        .collect();
    Ok(Figures {
        rows,
        payments,
        payable_through: through,
    })
}

/// A partner's payments, oldest first.
#[utoipa::path(get, path = "/api/v1/partners/{id}/payouts", tag = "payouts",
    params(("id" = u64, Path, description = "partner id")),
    responses(
        (status = 200, description = "the partner's payments (none: an empty list)", body = PaymentList),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "the id is not a number", body = ErrorBody),
        (status = 503, description = "clickhouse unavailable", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn list_payments(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Result<Json<PaymentList>, ApiError> {
    let partner_id = parse_id(&id)?;
    let rows = timed(s.payouts.payments(Some(partner_id))).await?;
    Ok(Json(PaymentList {
        items: rows.iter().map(PaymentView::of).collect(),
    }))
}

/// Record that a partner was paid everything owed in `currency` through
/// `paid_through` (a UTC day before today). The amount is worked out, not
/// given: approved payout whose offer's hold was over by the end of that
/// day, less the partner's earlier payments in that currency (so a
/// reversal after a payment makes the next one smaller). The answer is
/// the payment, which records both figures.
#[utoipa::path(post, path = "/api/v1/partners/{id}/payouts", tag = "payouts",
    request_body = NewPayment,
    params(("id" = u64, Path, description = "partner id")),
    responses(
        (status = 201, description = "the payment recorded", body = PaymentView),
        (status = 400, description = "malformed JSON or an invalid field (named): `paid_through` not a date \
            or not over yet, `currency` not an ISO 4217 code, `note` too long", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 403, description = "a read-only token", body = ErrorBody),
        (status = 404, description = "the id is not a number", body = ErrorBody),
        (status = 409, description = "`nothing_owed`: nothing (or less) is owed through `paid_through`; \
            `already_paid`: an earlier payment went past `paid_through`; `conflict`: another payment of \
            this partner is being recorded", body = ErrorBody),
        (status = 413, description = "body larger than http.max_body_bytes", body = ErrorBody),
        (status = 503, description = "redis or clickhouse unavailable, or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn create_payment(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewPayment>,
) -> Result<(StatusCode, Json<PaymentView>), ApiError> {
    let partner_id = parse_id(&id)?;
    let (through, through_days) = parse_date(&body.paid_through)
        .and_then(|d| Some((d, date_days(d)?)))
        .ok_or_else(|| {
            ApiError::invalid("paid_through", "must be a date from 1970 on (2026-03-31)")
        })?;
    if !is_currency(&body.currency) {
        return Err(ApiError::invalid(
            "currency",
            "must be an ISO 4217 currency code in use, such as USD",
        ));
    }
    if body.note.len() > MAX_NOTE_BYTES {
        return Err(ApiError::invalid(
            "note",
            format!("must be at most {MAX_NOTE_BYTES} bytes"),
        ));
    }
    let catalog = s.catalog()?;
    let lock = PaymentLock::take(catalog, partner_id).await?;
    let result = pay(&s, catalog, partner_id, (through, through_days), body).await;
    lock.release().await;
    let row = result?;
    info!(partner_id, payment_id = %row.payment_id, currency = %row.currency,
          paid_through = %through, amount = %row.amount, "partner payment recorded");
    Ok((StatusCode::CREATED, Json(PaymentView::of(&row))))
}

/// Under the partner's lock: what is owed, decided, then recorded.
async fn pay(
    s: &AdminState,
    catalog: &Catalog,
    partner_id: u64,
    (through, through_days): (NaiveDate, u16),
    body: NewPayment,
) -> Result<PaymentRow, ApiError> {
    let holds = holds(catalog).await?;
    let now = now_s();
    // The range does not matter to a payment: only balances count.
    let (earnings, payments) = tokio::join!(
        timed(s.payouts.earnings(Some(partner_id), 0, 0, &holds)),
        timed(s.payouts.payments(Some(partner_id))),
    );
    let payments: Vec<_> = payments?.iter().map(PaymentRow::payment).collect();
    let today = utc_day(now);
    let due = payment_due(
        &earnings?,
        &payments,
        partner_id,
        &body.currency,
        through,
        today,
    )
    .map_err(refused)?;
    // Sums of Decimal(18, 4) values: only an absurd total does not fit.
    let money = |d| {
        Money::from_decimal(d).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the payment cannot be recorded: {e}"),
                None,
            )
        })
    };
    let row = PaymentRow {
        payment_id: payment_id(),
        partner_id,
        currency: body.currency,
        paid_through: through_days,
        amount: money(due.amount)?,
        payable: money(due.payable)?,
        paid_before: money(due.paid_before)?,
        ts: now as u32,
        note: body.note,
    };
    timed(s.payouts.record(&row)).await?;
    Ok(row)
}

/// A new payment id: the milliseconds since 1970 and 64 random bits, in
/// hex, so ids sort by time (payments of one partner are never recorded
/// in the same millisecond: they wait for its lock) and never repeat.
fn payment_id() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    format!("{ms:012x}{:016x}", rand::random::<u64>())
}

/// A refusal as the API answers it, naming `paid_through`.
fn refused(r: Refusal) -> ApiError {
    let (status, code) = match r {
        Refusal::DayNotOver { .. } => (StatusCode::BAD_REQUEST, "invalid"),
        Refusal::BeforeLastPayment { .. } => (StatusCode::CONFLICT, "already_paid"),
        Refusal::NothingOwed { .. } => (StatusCode::CONFLICT, "nothing_owed"),
    };
    ApiError::new(status, code, r.to_string(), Some("paid_through"))
}

/// Every offer's `hold_days`, by offer id.
async fn holds(catalog: &Catalog) -> Result<HashMap<u64, u32>, ApiError> {
    let mut out = HashMap::new();
    let mut cursor = 0;
    loop {
        let page = catalog.list::<Offer>(cursor, 1000).await?;
        out.extend(page.items.iter().map(|o| (o.id, o.hold_days)));
        match page.next_cursor.and_then(|c| c.parse().ok()) {
            Some(next) => cursor = next,
            None => return Ok(out),
        }
    }
}

/// A ClickHouse call under [`QUERY_TIMEOUT`]: unreachable or slow is
/// `503`, anything else (a query this build got wrong) `500`.
async fn timed<T>(
    f: impl std::future::Future<Output = clickhouse::error::Result<T>>,
) -> Result<T, ApiError> {
    use clickhouse::error::Error as E;
    match tokio::time::timeout(QUERY_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
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

fn parse_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("no partner with id {raw:?}"), Some("id")))
}

/// Now, in Unix seconds.
pub(crate) fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The UTC day holding `now` (Unix seconds).
fn utc_day(now: i64) -> NaiveDate {
    DateTime::from_timestamp(now, 0).map_or(NaiveDate::MIN, |t| t.date_naive())
}

/// The UTC day before the one holding `now`: the last day that is over.
fn yesterday(now: i64) -> NaiveDate {
    utc_day(now).pred_opt().unwrap_or(NaiveDate::MIN)
}
