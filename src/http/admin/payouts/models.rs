//! The JSON (and CSV) shapes of the payouts report and of payments.

use std::time::{Duration, UNIX_EPOCH};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::events::money::money_text;
use crate::payments::{Balance, PaymentRow};

/// Query parameters of `GET /api/v1/reports/payouts` (documentation only:
/// the handler reads the raw query string to name any bad parameter).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ReportParams {
    /// First instant of the activity range, inclusive: RFC 3339, or
    /// `YYYY-MM-DD` (midnight in `tz`). Default: 29 days before today in
    /// `tz`. Balances (`on_hold` … `owed`) are over all time whatever the
    /// range.
    from: Option<String>,
    /// End, exclusive: RFC 3339, or `YYYY-MM-DD` (that day included).
    /// Default: today included.
    to: Option<String>,
    /// IANA time zone of `from` and `to` dates (default `UTC`).
    tz: Option<String>,
    /// Only this partner.
    partner_id: Option<u64>,
    /// `json` or `csv`; without it, CSV when `Accept` names `text/csv`.
    format: Option<String>,
}

/// One partner's figures in one currency. Money is a decimal string.
#[derive(Debug, Serialize, ToSchema)]
pub struct PayoutRow {
    /// The partner.
    pub partner_id: u64,
    /// The currency of every figure of the row (the offers' payout
    /// currency).
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
    /// Bonuses earned in the range (`GET /api/v1/partners/{id}/bonuses`),
    /// each counted once; bonuses have no hold: payable once the day they
    /// were earned is over.
    #[schema(example = "500.00")]
    pub bonuses: String,
    /// Approved payout, any day, still in its offer's hold (and bonuses
    /// earned today).
    #[schema(example = "40.00")]
    pub on_hold: String,
    /// Approved payout, any day, whose hold is over by `payable_through`,
    /// and every bonus earned by then.
    #[schema(example = "585.00")]
    pub payable: String,
    /// Every payment made to the partner in this currency.
    #[schema(example = "60.00")]
    pub paid: String,
    /// `payable - paid`: what a payment through `payable_through` pays;
    /// negative when a paid conversion was reversed (carried forward).
    #[schema(example = "525.00")]
    pub owed: String,
    /// The latest payment's `paid_through`, or null.
    #[schema(example = "2026-02-28")]
    pub paid_through: Option<String>,
}

impl PayoutRow {
    /// The decision's figures as the API writes them.
    pub fn of(b: &Balance) -> PayoutRow {
        PayoutRow {
            partner_id: b.partner_id,
            currency: b.currency.clone(),
            approved: money_text(b.approved),
            pending: money_text(b.pending),
            reversed: money_text(b.reversed),
            bonuses: money_text(b.bonuses),
            on_hold: money_text(b.on_hold),
            payable: money_text(b.payable),
            paid: money_text(b.paid),
            owed: money_text(b.owed),
            paid_through: b.paid_through.map(|d| d.to_string()),
        }
    }
}

/// The payouts report.
#[derive(Debug, Serialize, ToSchema)]
pub struct PayoutReport {
    /// By partner, then currency; rows whose every figure is zero are
    /// left out.
    pub rows: Vec<PayoutRow>,
    /// The activity range's first instant (RFC 3339, UTC).
    pub from: String,
    /// The activity range's end, exclusive.
    pub to: String,
    /// Balances are through the end of this UTC day: yesterday, the last
    /// day a payment may cover.
    #[schema(example = "2026-04-14")]
    pub payable_through: String,
}

/// The CSV form: a header line, then one line per row, the columns of
/// [`PayoutRow`] in order. Every value is a number, a decimal, a date or
/// an ISO 4217 code, so none needs quoting.
pub fn csv(rows: &[PayoutRow]) -> String {
    let mut out = String::from(
        "partner_id,currency,approved,pending,reversed,bonuses,on_hold,payable,paid,owed,paid_through\n",
    );
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}\n",
            r.partner_id,
            r.currency,
            r.approved,
            r.pending,
            r.reversed,
            r.bonuses,
            r.on_hold,
            r.payable,
            r.paid,
            r.owed,
            r.paid_through.as_deref().unwrap_or(""),
        ));
    }
    out
}

/// `POST /api/v1/partners/{id}/payouts`: the partner was paid everything
/// owed in `currency` through `paid_through`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPayment {
    /// The last UTC day paid for, `YYYY-MM-DD`: before today. The amount
    /// is what is payable through its end less earlier payments.
    #[schema(example = "2026-03-31")]
    pub paid_through: String,
    /// ISO 4217 code of the payout currency paid.
    #[schema(example = "USD")]
    pub currency: String,
    /// Free text kept with the payment (a bank reference), at most 1000
    /// bytes.
    #[serde(default)]
    pub note: String,
}

/// Longest `note` accepted.
pub const MAX_NOTE_BYTES: usize = 1000;

/// A recorded payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentView {
    /// Its id.
    pub payment_id: String,
    /// Who was paid.
    pub partner_id: u64,
    /// In what.
    #[schema(example = "USD")]
    pub currency: String,
    /// The last UTC day paid for.
    #[schema(example = "2026-03-31")]
    pub paid_through: String,
    /// What was paid: `payable - paid_before`.
    #[schema(example = "25.00")]
    pub amount: String,
    /// Approved payout whose hold was over by `paid_through`, when paid.
    #[schema(example = "85.00")]
    pub payable: String,
    /// The partner's earlier payments in this currency.
    #[schema(example = "60.00")]
    pub paid_before: String,
    /// When it was recorded (RFC 3339).
    pub paid_at: String,
    /// The note given.
    pub note: String,
}

impl PaymentView {
    /// A stored row as the API shows it.
    pub fn of(r: &PaymentRow) -> PaymentView {
        PaymentView {
            payment_id: r.payment_id.clone(),
            partner_id: r.partner_id,
            currency: r.currency.clone(),
            paid_through: r.paid_through_date().to_string(),
            amount: money_text(r.amount.to_decimal()),
            payable: money_text(r.payable.to_decimal()),
            paid_before: money_text(r.paid_before.to_decimal()),
            paid_at: rfc3339(r.ts),
            note: r.note.clone(),
        }
    }
}

/// A partner's payments.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentList {
    /// Oldest first.
    pub items: Vec<PaymentView>,
}

/// Unix seconds as RFC 3339 in UTC.
pub fn rfc3339(secs: u32) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs.into())).to_string()
}

/// A `YYYY-MM-DD` date, or `None`.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    (s.len() == 10)
        .then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .flatten()
}
