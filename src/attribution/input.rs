//! What [`decide`](crate::attribution::decide) is given: the facts of the
//! click, the link, the offer's rules, the partner, the channel, the caps and
//! the dedup, gathered by the intake.

use std::borrow::Cow;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::payout::{CustomerSale, PayoutTerms};

/// An offer's attribution window when it sets none, in days.
pub const DEFAULT_WINDOW_DAYS: u32 = 30;

/// What a verified click id says about its click: everything attribution
/// needs, with no lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClickFacts {
    /// Unix milliseconds of the click, on the issuing node's clock.
    pub ts_ms: u64,
    /// The link clicked; the intake looks it up for [`Input::link`].
    pub link_id: u64,
    /// The click was a bot's: never billed.
    pub is_bot: bool,
    /// The click was over a rate limit: held for review.
    pub is_rate_limited: bool,
}

/// A customer bound to a click by an earlier conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundCustomer {
    /// The click the customer is bound to.
    pub click: ClickFacts,
    /// This sale's place in the customer's history, for recurring payouts.
    pub sale: CustomerSale,
}

/// What the conversion is attributed through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// It carried a click id that failed verification: malformed, forged or
    /// altered. Chosen whenever a click id was sent and failed, whatever
    /// else the conversion carried.
    InvalidClickId,
    /// It carried a verified click id.
    Click(ClickFacts),
    /// It carried only a customer id; the click that customer is bound to,
    /// `None` when the customer is bound to none.
    Customer(Option<BoundCustomer>),
    /// The customer is covered by an approved deal of this partner, which
    /// takes the credit over any click.
    Deal {
        /// The partner holding the deal.
        partner_id: u64,
    },
}

/// The catalog's link named by the click.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkFacts {
    /// The partner who promotes it, credited with the conversion.
    pub partner_id: u64,
    /// The offer it promotes.
    pub offer_id: u64,
}

/// What the offer decides about its conversions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferRules<'a> {
    /// The offer named by the conversion's token or signature.
    pub id: u64,
    /// Clicks older than this many days do not convert
    /// ([`DEFAULT_WINDOW_DAYS`] unless the offer says otherwise).
    pub window_days: u32,
    /// Conversions sooner than this many seconds after the click are
    /// rejected; 0 turns the check off.
    pub min_seconds: u32,
    /// Where pixel conversions land.
    pub pixel: PixelTrust,
    /// Every conversion is held for review.
    pub manual_review: bool,
    /// What happens over a cap.
    pub cap_action: CapAction,
    /// What conversions pay; borrowed from the catalog on the intake.
    pub payout: Cow<'a, PayoutTerms>,
    /// Who takes a conversion claimed by a click of one partner and a deal
    /// of another.
    pub deal_conflict: DealConflict,
}

/// Who takes a conversion that a click (or a customer bound to one) of one
/// partner and an approved deal of another partner both claim: the offer's
/// `deal_conflict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DealConflict {
    /// The deal's partner, reason `deal_registration`; the row names the
    /// partner whose click lost.
    #[default]
    DealWins,
    /// The click's partner, as if there were no deal.
    ClickWins,
}

/// An approved deal covering the conversion's customer (by customer id or
/// email domain), as the intake found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DealFacts<'a> {
    /// The deal.
    pub deal_id: u64,
    /// The partner holding it.
    pub partner_id: u64,
    /// Unix milliseconds when its protection ends; a conversion after
    /// that is decided as if there were no deal.
    pub protected_until_ms: u64,
    /// The deal partner's standing, for when the deal takes the credit.
    pub partner: PartnerFacts<'a>,
}

/// Whether an offer trusts conversions reported by its browser pixel, which
/// cannot keep a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelTrust {
    /// Pixel conversions are approved like postbacks.
    #[default]
    Approve,
    /// Pixel conversions are `pending` / `pixel_untrusted`.
    Pending,
}

/// What an offer does with a conversion over one of its caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CapAction {
    /// `rejected` / `cap_reached`.
    #[default]
    Reject,
    /// `pending` / `cap_reached`.
    Pending,
}

/// The credited partner's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartnerFacts<'a> {
    /// Active, inactive or deleted.
    pub status: PartnerStatus,
    /// The partner's tier, for tier payouts.
    pub tier: Option<&'a str>,
}

/// Whether a partner can be credited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartnerStatus {
    /// Can be credited.
    Active,
    /// Applied, rejected or suspended (anything but `active`, see
    /// `Partner::is_active`): `partner_inactive`.
    Inactive,
    /// Deleted, or no longer in the catalog: `partner_inactive`.
    Deleted,
}

/// How the conversion arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// `GET /pixel`, from the merchant's page.
    Pixel,
    /// `GET|POST /postback`, from the merchant's server.
    Postback,
}

/// The caps' state once this conversion is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caps {
    /// Within every cap.
    Within,
    /// Over at least one cap of the offer or of the partner on the offer.
    Over,
}

/// The atomic dedup's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dedup {
    /// The first conversion of its key.
    Fresh,
    /// `(offer, order_id)` was seen before.
    DuplicateOrder,
    /// No order id, and `(offer, click or customer, event)` was seen before.
    DuplicateEvent,
}

/// Everything [`decide`] looks at.
///
/// [`decide`]: crate::attribution::decide
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input<'a> {
    /// What the conversion is attributed through.
    pub source: Source,
    /// The link of the click (its own, or the bound customer's); `None`
    /// when the catalog no longer has it. Not read for invalid ids and
    /// deals.
    pub link: Option<LinkFacts>,
    /// The offer named by the token or signature.
    pub offer: OfferRules<'a>,
    /// The credited partner: the link's, or the deal's.
    pub partner: PartnerFacts<'a>,
    /// Pixel or postback.
    pub channel: Channel,
    /// Unix milliseconds of the conversion, on the deciding node's clock.
    pub now_ms: u64,
    /// The event name (`sale` when the merchant named none).
    pub event: &'a str,
    /// The sale amount, when sent.
    pub amount: Option<Decimal>,
    /// The caps' state.
    pub caps: Caps,
    /// The dedup's outcome.
    pub dedup: Dedup,
    /// An approved deal covering the customer, if the intake found one
    /// (expired or not: [`decide`] compares its end with `now_ms`).
    ///
    /// [`decide`]: crate::attribution::decide
    pub deal: Option<DealFacts<'a>>,
}
