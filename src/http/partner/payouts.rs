//! `GET /partner/v1/payouts`: what the partner earned, what is on hold,
//! payable, paid and owed, and its payments. The admin payouts report's
//! own computation ([`figures`]) with the partner forced to the caller;
//! rows and payments are shown without what only the admin needs (the
//! partner id, a payment's working).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Caller, PartnerState};
use crate::http::admin::payouts::{figures, now_s, PaymentView, PayoutRow, ReportQuery};
use crate::http::admin::{ApiError, ErrorBody};

/// The query, as documented.
#[allow(dead_code)] // read only by the OpenAPI derive
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PayoutsQuery {
    /// First instant of the activity range, inclusive: RFC 3339, or
    /// `YYYY-MM-DD` (midnight in `tz`). Default: 29 days before today in
    /// `tz`. Balances (`on_hold` … `owed`) are over all time whatever the
    /// range.
    pub from: Option<String>,
    /// End, exclusive: RFC 3339, or `YYYY-MM-DD` (that day included).
    /// Default: today included.
    pub to: Option<String>,
    /// IANA time zone of `from` and `to` dates (default `UTC`).
    pub tz: Option<String>,
}

/// The partner's figures in one currency; money is a decimal string.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartnerBalance {
    /// The currency of every figure of the row.
    #[schema(example = "USD")]
    pub currency: String,
    /// Payout of the range's conversions whose latest status is approved.
    #[schema(example = "125.00")]
    pub approved: String,
    /// Payout of the range's conversions whose latest status is pending.
    #[schema(example = "10.00")]
    pub pending: String,
    /// Payout of the range's conversions whose latest status is reversed.
    #[schema(example = "7.50")]
    pub reversed: String,
    /// Bonuses the partner earned (tier rules), any period: payable once
    /// the day they were earned is over.
    #[schema(example = "500.00")]
    pub bonuses: String,
    /// Approved payout, any day, still in its offer's hold.
    #[schema(example = "40.00")]
    pub on_hold: String,
    /// Approved payout, any day, whose hold is over by `payable_through`.
    #[schema(example = "85.00")]
    pub payable: String,
    /// Every payment made to the partner in this currency.
    #[schema(example = "60.00")]
    pub paid: String,
    /// `payable - paid`: what the next payment through `payable_through`
    /// pays; negative when a paid conversion was reversed since.
    #[schema(example = "25.00")]
    pub owed: String,
    /// The latest payment's `paid_through`, or null.
    #[schema(example = "2026-02-28")]
    pub paid_through: Option<String>,
}

impl From<PayoutRow> for PartnerBalance {
    fn from(r: PayoutRow) -> PartnerBalance {
        // Spelled out field by field, no `..`: a figure added to the admin
        // report must be decided on here, not shown by default.
        let PayoutRow {
            partner_id: _,
            currency,
            approved,
            pending,
            reversed,
            bonuses,
            on_hold,
            payable,
            paid,
            owed,
            paid_through,
        } = r;
        PartnerBalance {
            currency,
            approved,
            pending,
            reversed,
            bonuses,
            on_hold,
            payable,
            paid,
            owed,
            paid_through,
        }
    }
}

/// A payment made to the partner.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartnerPayment {
    /// Its id.
    pub payment_id: String,
    /// ISO 4217 code of `amount`.
    #[schema(example = "USD")]
    pub currency: String,
    /// The last UTC day it paid for.
    #[schema(example = "2026-03-31")]
    pub paid_through: String,
    /// What was paid.
    #[schema(example = "25.00")]
    pub amount: String,
    /// When it was recorded (RFC 3339).
    pub paid_at: String,
    /// The admin's note (a bank reference).
    pub note: String,
}

impl From<PaymentView> for PartnerPayment {
    fn from(v: PaymentView) -> PartnerPayment {
        let PaymentView {
            payment_id,
            partner_id: _,
            currency,
            paid_through,
            amount,
            payable: _,
            paid_before: _,
            paid_at,
            note,
        } = v;
        PartnerPayment {
            payment_id,
            currency,
            paid_through,
            amount,
            paid_at,
            note,
        }
    }
}

/// `GET /partner/v1/payouts`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartnerPayouts {
    /// One row per payout currency; a currency whose every figure is zero
    /// is left out.
    pub balances: Vec<PartnerBalance>,
    /// The partner's payments, oldest first.
    pub payments: Vec<PartnerPayment>,
    /// Balances are through the end of this UTC day (yesterday): the last
    /// day a payment may cover.
    #[schema(example = "2026-04-14")]
    pub payable_through: String,
}

/// The partner's payout balances (the admin payouts report's figures for
/// this partner) and its payments.
#[utoipa::path(get, path = "/partner/v1/payouts", tag = "payouts", params(PayoutsQuery),
    responses(
        (status = 200, description = "balances per currency and payments", body = PartnerPayouts),
        (status = 400, description = "an invalid or unknown parameter (named)", body = ErrorBody),
        (status = 401, description = "missing, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "the partner is not active", body = ErrorBody),
        (status = 404, description = "partner_id names another partner", body = ErrorBody),
        (status = 429, description = "the key is over its rate (Retry-After)", body = ErrorBody),
        (status = 503, description = "redis or clickhouse unavailable", body = ErrorBody),
    ), security(("partner_key" = [])))]
pub async fn get_payouts(
    State(s): State<Arc<PartnerState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
) -> Result<Json<PartnerPayouts>, ApiError> {
    let me = caller.partner_id();
    let raw = q.as_deref().unwrap_or("");
    check_query(raw, me)?;
    let query =
        ReportQuery::parse(raw, now_s()).map_err(|f| ApiError::invalid(&f.field, f.message))?;
    let f = figures(
        &s.payouts,
        s.catalog()?,
        Some(me),
        (query.from, query.to),
        now_s(),
    )
    .await?;
    // The queries are filtered by partner already; these filters keep any
    // other partner's row out should that ever change.
    Ok(Json(PartnerPayouts {
        balances: f
            .rows
            .into_iter()
            .filter(|r| r.partner_id == me)
            .map(PartnerBalance::from)
            .collect(),
        payments: f
            .payments
            .iter()
            .filter(|p| p.partner_id == me)
            .map(|p| PaymentView::of(p).into())
            .collect(),
        payable_through: f.payable_through.to_string(),
    }))
}

/// The rules this side adds to the report's parameters: only `from`,
/// `to` and `tz` (and `partner_id` naming the caller; another is `404`,
/// as for any of its ids). The values are read by [`ReportQuery`].
fn check_query(query: &str, me: u64) -> Result<(), ApiError> {
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "from" | "to" | "tz" => {}
            "partner_id" => {
                let id: u64 = v
                    .parse()
                    .map_err(|_| ApiError::invalid("partner_id", "must be a whole number"))?;
                if id != me {
                    return Err(ApiError::not_found(
                        format!("no partner with id {id}"),
                        Some("partner_id"),
                    ));
                }
            }
            other => {
                return Err(ApiError::invalid(
                    other,
                    "is not a parameter of this report (known: from, to, tz)",
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `query` for partner 7 → `Ok`, or the field of the error and its
    /// status.
    fn check(query: &str, expected: Result<(), (&str, u16)>) {
        let got = check_query(query, 7).map_err(|e| {
            (
                e.detail.field.clone().unwrap_or_default(),
                e.status.as_u16(),
            )
        });
        let expected = expected.map_err(|(f, s)| (f.to_string(), s));
        assert_eq!(got, expected, "{query:?}");
    }

    #[test]
    fn the_partner_is_forced_and_only_the_range_is_read() {
        check("", Ok(()));
        check("from=2026-01-01&to=2026-01-31&tz=Europe%2FBerlin", Ok(()));
        check("partner_id=7", Ok(()));
        check("partner_id=8", Err(("partner_id", 404)));
        check("partner_id=x", Err(("partner_id", 400)));
        // The admin report's CSV form is not offered here.
        check("format=csv", Err(("format", 400)));
        check("group_by=day", Err(("group_by", 400)));
    }
}
