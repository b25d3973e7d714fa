//! The ledger's JSON shapes: a conversion as the API shows it, its
//! history, a status change and the listing's documented query.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::events::Money;

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
    /// The deal credited (`attribution` = `deal`), or 0.
    pub deal_id: u64,
    /// The partner whose click lost this conversion to a deal, or 0.
    pub displaced_partner_id: u64,
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
///
/// [`ListFilter::parse`]: super::params::ListFilter::parse
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
