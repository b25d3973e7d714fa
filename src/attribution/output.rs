//! What [`decide`](crate::attribution::decide) returns: the status, the
//! reason, the attribution and the [`Decision`] that carries them with the
//! payout, and the names the `conversions` columns store.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::payout::PayoutRule;

/// A conversion's status: the `status` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Counts and pays.
    Approved,
    /// Held for review; pays only once approved.
    Pending,
    /// A repeat of a conversion already recorded; changes nothing.
    Duplicate,
    /// Does not count or pay.
    Rejected,
    /// An approved conversion clawed back.
    Reversed,
}

/// Why [`decide`] gave its status: the `reason` column. A reversal's reason
/// is the admin's free text instead, stored as given.
///
/// [`decide`]: crate::attribution::decide
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Approved through its click.
    Ok,
    /// Approved for the partner holding an approved deal for the customer.
    DealRegistration,
    /// Pending: a pixel conversion on an offer that does not trust pixels.
    PixelUntrusted,
    /// Pending: the offer reviews every conversion, or the payout could not
    /// be computed.
    ManualReview,
    /// Pending or rejected: over a cap.
    CapReached,
    /// Pending: the click was rate limited.
    SuspiciousClick,
    /// Duplicate: the order id was seen before.
    DuplicateOrder,
    /// Duplicate: the click or customer already converted on this event.
    DuplicateEvent,
    /// Rejected: the click id is malformed, forged, altered or from the
    /// future.
    InvalidClickId,
    /// Rejected: older than the attribution window.
    Expired,
    /// Rejected: sooner than the offer's minimum after the click.
    TooFast,
    /// Rejected: the click belongs to another offer, or to no known link.
    OfferMismatch,
    /// Rejected: the partner is paused or deleted.
    PartnerInactive,
    /// Rejected: a bot's click.
    BotClick,
    /// Rejected: a customer bound to no click.
    UnknownCustomer,
    /// Rejected: a pixel over its client IP's rate, judged before any
    /// lookup (anyone can fire a pixel; a flood must cost nothing).
    RateLimited,
}

/// How a conversion was attributed: the `attribution` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Attribution {
    /// Through the click id it carried (valid or not).
    Click,
    /// Through a customer bound to a click.
    Customer,
    /// Through a partner's deal registration.
    Deal,
}

/// The verdict on one conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Approved, pending, duplicate or rejected (never reversed).
    pub status: Status,
    /// Why.
    pub reason: Reason,
    /// What it pays: 0 unless approved or pending.
    pub payout: Decimal,
    /// The rule behind `payout`; `None` when nothing is paid because of the
    /// status.
    pub payout_rule: Option<PayoutRule>,
    /// Click, customer or deal.
    pub attribution: Attribution,
    /// The partner credited; `None` when none was looked at (an invalid
    /// click id, a duplicate, an unknown customer or link).
    pub partner_id: Option<u64>,
    /// The deal credited, when attributed through one found by the intake.
    pub deal_id: Option<u64>,
    /// The partner whose click would have been credited but lost to the
    /// deal (the offer's `deal_conflict` is `deal_wins`).
    pub displaced_partner_id: Option<u64>,
}

impl Decision {
    /// The verdict on a pixel over its client's rate: rejected, paying
    /// nothing, crediting no one (no link or partner was looked up).
    pub fn rate_limited() -> Decision {
        Decision {
            status: Status::Rejected,
            reason: Reason::RateLimited,
            payout: Decimal::ZERO,
            payout_rule: None,
            attribution: Attribution::Click,
            partner_id: None,
            deal_id: None,
            displaced_partner_id: None,
        }
    }
}

impl Status {
    /// Every status, for metrics registered up front.
    pub const ALL: [Status; 5] = [
        Status::Approved,
        Status::Pending,
        Status::Duplicate,
        Status::Rejected,
        Status::Reversed,
    ];

    /// The interface's name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Approved => "approved",
            Status::Pending => "pending",
            Status::Duplicate => "duplicate",
            Status::Rejected => "rejected",
            Status::Reversed => "reversed",
        }
    }
}

impl Reason {
    /// Every reason [`decide`] gives, for metrics registered up front.
    ///
    /// [`decide`]: crate::attribution::decide
    pub const ALL: [Reason; 16] = [
        Reason::Ok,
        Reason::DealRegistration,
        Reason::PixelUntrusted,
        Reason::ManualReview,
        Reason::CapReached,
        Reason::SuspiciousClick,
        Reason::DuplicateOrder,
        Reason::DuplicateEvent,
        Reason::InvalidClickId,
        Reason::Expired,
        Reason::TooFast,
        Reason::OfferMismatch,
        Reason::PartnerInactive,
        Reason::BotClick,
        Reason::UnknownCustomer,
        Reason::RateLimited,
    ];

    /// The interface's name of the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::DealRegistration => "deal_registration",
            Reason::PixelUntrusted => "pixel_untrusted",
            Reason::ManualReview => "manual_review",
            Reason::CapReached => "cap_reached",
            Reason::SuspiciousClick => "suspicious_click",
            Reason::DuplicateOrder => "duplicate_order",
            Reason::DuplicateEvent => "duplicate_event",
            Reason::InvalidClickId => "invalid_click_id",
            Reason::Expired => "expired",
            Reason::TooFast => "too_fast",
            Reason::OfferMismatch => "offer_mismatch",
            Reason::PartnerInactive => "partner_inactive",
            Reason::BotClick => "bot_click",
            Reason::UnknownCustomer => "unknown_customer",
            Reason::RateLimited => "rate_limited",
        }
    }
}

impl Attribution {
    /// The name stored in the `attribution` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Attribution::Click => "click",
            Attribution::Customer => "customer",
            Attribution::Deal => "deal",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Attribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
