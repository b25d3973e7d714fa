//! What an offer says its conversions pay: the payout models, the
//! overrides by event, tier and partner, and the recurring rule. Stored with
//! the offer and read and written as JSON by the admin API.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// How a partner is paid for a conversion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "model", rename_all = "lowercase", deny_unknown_fields)]
pub enum Payout {
    /// A fixed amount per sale.
    Cpa {
        /// The amount, as a decimal string.
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
    },
    /// A share of the sale amount.
    Cps {
        /// Percent of the amount, as a decimal string.
        #[serde(with = "rust_decimal::serde::str")]
        percent: Decimal,
    },
    /// A fixed amount per lead.
    Cpl {
        /// The amount, as a decimal string.
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
    },
}

/// Decimal places of every payout.
pub const PAYOUT_SCALE: u32 = 4;

/// Everything an offer says about what its conversions pay. Stored with the
/// offer; the admin API reads and writes it as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayoutTerms {
    /// What a conversion pays when no more specific rule matches: the
    /// offer's `payout`.
    pub default: Payout,
    /// Payouts per event name (e.g. `lead` pays CPL 1.00, `sale` pays CPS
    /// 10 %); at most one entry per event.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_event: Vec<EventPayout>,
    /// Overrides for partners of a tier on this offer; at most one entry per
    /// (tier, event).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_tier: Vec<TierPayout>,
    /// Overrides for single partners on this offer; at most one entry per
    /// (partner, event).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_partner: Vec<PartnerPayout>,
    /// Which sales of a customer bound to a click pay; default: the first
    /// sale only, so that no offer pays renewals it never asked to pay.
    #[serde(default)]
    pub recurring: Recurring,
}

/// The offer's payout for one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventPayout {
    /// The event name, as the conversion sends it (`lead`, `sale`, ...).
    pub event: String,
    /// What a conversion of this event pays.
    pub payout: Payout,
}

/// A payout override for partners of one tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TierPayout {
    /// The tier's name, exactly as on the partner (`gold`, `silver`, ...).
    pub tier: String,
    /// Only conversions of this event; absent: every event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// What such a conversion pays.
    pub payout: Payout,
}

/// A payout override for one partner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerPayout {
    /// The partner's id.
    pub partner_id: u64,
    /// Only conversions of this event; absent: every event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// What such a conversion pays.
    pub payout: Payout,
}

/// Which sales of a customer bound to a click pay a commission. The
/// customer's first sale always pays; this decides the later ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Recurring {
    /// Only the first sale pays.
    #[default]
    FirstSaleOnly,
    /// Sales pay while fewer than `months` whole months have passed since
    /// the customer was bound (12: a year of monthly renewals).
    FirstMonths {
        /// How many whole months after the binding sales keep paying.
        months: u32,
    },
    /// Every sale of the customer pays, for as long as they buy.
    Lifetime,
}

impl PayoutTerms {
    /// Terms that pay `default` for every conversion, first sales only.
    pub fn flat(default: Payout) -> Self {
        PayoutTerms {
            default,
            by_event: Vec::new(),
            by_tier: Vec::new(),
            by_partner: Vec::new(),
            recurring: Recurring::default(),
        }
    }
}
