//! The status, reason and payout of one conversion, and the status changes
//! the admin API allows afterwards.
//!
//! Pure: [`decide`] takes everything the intake has gathered ([`Input`]: the
//! click id's verdict and the facts it carries, the link, the offer's rules,
//! the partner, the channel, the time, the caps' state and the dedup outcome)
//! and returns a [`Decision`]. Nothing here waits on Redis or ClickHouse: the
//! click's facts travel with the click id (or with the customer's binding),
//! so a postback a second after its click, on another node, is decided the
//! same way as one a day later.
//!
//! # Order of the checks
//!
//! The first check that applies decides the conversion, so this order is
//! also which reason wins when several apply:
//!
//! 1. `rejected` / `invalid_click_id`: a forged, altered or malformed click
//!    id ([`Source::InvalidClickId`], decided by the codec with no lookup),
//!    or a click stamped more than [`MAX_CLOCK_SKEW_MS`] after the
//!    conversion: a genuine id cannot come from the future, and a node whose
//!    clock is that far ahead issues ids nobody should be paid for
//!    unreviewed. It beats everything, duplicates included: an id we cannot
//!    trust names no conversion to be a duplicate of.
//! 2. `duplicate` / `duplicate_order`, `duplicate_event`: before anything
//!    that could bill, so a retried postback changes nothing, whatever the
//!    first one's verdict was.
//! 3. `rejected` / `unknown_customer`: only a customer id, bound to no
//!    click.
//! 4. `rejected` / `offer_mismatch`: the click's link belongs to another
//!    offer than the token's, or is no longer in the catalog (then nothing
//!    shows it belongs to this offer). Before the time checks: a click of
//!    another offer is wrong whatever its age.
//! 5. `rejected` / `partner_inactive`: the credited partner is paused or
//!    deleted.
//! 6. `rejected` / `bot_click`: the click was a bot's. Before the rate
//!    limit's `pending`, so a bot click is never billed, not even after a
//!    review.
//! 7. `rejected` / `expired`: the click is older than the offer's
//!    attribution window; exactly at the window's end is still inside.
//! 8. `rejected` / `too_fast`: the conversion came sooner after the click
//!    than the offer's minimum seconds; exactly at the minimum passes.
//! 9. `rejected` / `cap_reached`: over a cap, when the offer rejects then.
//!    Caps come last among rejections because only a conversion that would
//!    otherwise be billed should count against one.
//! 10. `pending`, the first that applies: `suspicious_click` (the click was
//!     rate limited), `cap_reached` (over a cap, the offer holds for
//!     review), `manual_review` (the offer reviews every conversion, or its
//!     payout could not be computed), `pixel_untrusted` (a pixel conversion
//!     on an offer that does not trust pixels). Most specific first: a doubt
//!     about this click, then this offer's budget, then offer-wide policy.
//! 11. `approved` / `ok`, or `deal_registration` for a deal.
//!
//! All rejections come before any `pending`, so that approving a pending
//! conversion later never approves one a rule would have rejected.
//!
//! # What each source skips
//!
//! - [`Source::Click`]: every check.
//! - [`Source::Customer`] (a sale naming only a customer bound to a click):
//!   no `expired` or `too_fast`, since the binding conversion passed them
//!   and recurring sales come months later; the offer's recurring rule
//!   decides what they pay ([`crate::payout`]). The bound click's bot and
//!   rate-limit flags still apply.
//! - [`Source::Deal`] (credited to the partner holding an approved deal for
//!   this customer, over any click): no link, bot or time checks, since the
//!   deal, not a click, is the attribution; the partner, cap and pending
//!   checks still apply.
//!
//! # Clock skew
//!
//! The click's time comes from the node that issued the id, the
//! conversion's from the node deciding. A conversion up to
//! [`MAX_CLOCK_SKEW_MS`] before its click is taken as happening at the
//! click (age 0: inside the window, and `too_fast` whenever the offer sets
//! a minimum); further before, the id is invalid (check 1).
//!
//! # Money
//!
//! Approved and pending conversions carry the payout [`crate::payout`]
//! computes (a pending one's is what approving it pays); rejected and
//! duplicate ones pay 0 and have no payout rule.

use std::borrow::Cow;
use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::payout::{self, CustomerSale, PayoutInput, PayoutRule, PayoutTerms};

/// An offer's attribution window when it sets none, in days.
pub const DEFAULT_WINDOW_DAYS: u32 = 30;

/// How far a click's time may be after its conversion's before the click id
/// counts as invalid: generous for clocks kept by NTP, small enough that an
/// id stamped in the future stands out.
pub const MAX_CLOCK_SKEW_MS: u64 = 60_000;

const DAY_MS: u64 = 86_400_000;

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
    /// Active, paused or deleted.
    pub status: PartnerStatus,
    /// The partner's tier, for tier payouts.
    pub tier: Option<&'a str>,
}

/// Whether a partner can be credited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartnerStatus {
    /// Can be credited.
    Active,
    /// Suspended: `partner_inactive`.
    Paused,
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
}

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
}

/// A status change the admin API refuses (`409`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("status cannot change from {from} to {to}")]
pub struct TransitionError {
    /// The conversion's current status.
    pub from: Status,
    /// The status asked for.
    pub to: Status,
}

/// The status, reason and payout of one conversion. See the module doc for
/// the order of the checks.
pub fn decide(input: &Input<'_>) -> Decision {
    let attribution = match input.source {
        Source::InvalidClickId | Source::Click(_) => Attribution::Click,
        Source::Customer(_) => Attribution::Customer,
        Source::Deal { .. } => Attribution::Deal,
    };
    let verdict = Verdict {
        attribution,
        partner_id: None,
    };

    // The click, when attribution goes through one, and the customer's
    // sale facts, when through a binding.
    let (click, customer) = match input.source {
        Source::InvalidClickId => return verdict.reject(Reason::InvalidClickId),
        Source::Click(click) => (Some(click), None),
        Source::Customer(Some(bound)) => (Some(bound.click), Some(bound.sale)),
        Source::Customer(None) | Source::Deal { .. } => (None, None),
    };
    let age_ms = match click.map(|c| age_ms(c.ts_ms, input.now_ms)) {
        Some(None) => return verdict.reject(Reason::InvalidClickId),
        Some(Some(age)) => age,
        None => 0,
    };

    match input.dedup {
        Dedup::Fresh => {}
        Dedup::DuplicateOrder => return verdict.duplicate(Reason::DuplicateOrder),
        Dedup::DuplicateEvent => return verdict.duplicate(Reason::DuplicateEvent),
    }

    let partner_id = match input.source {
        Source::Deal { partner_id } => partner_id,
        Source::Customer(None) => return verdict.reject(Reason::UnknownCustomer),
        _ => match input.link {
            Some(link) if link.offer_id == input.offer.id => link.partner_id,
            _ => return verdict.reject(Reason::OfferMismatch),
        },
    };
    let verdict = Verdict {
        partner_id: Some(partner_id),
        ..verdict
    };

    if input.partner.status != PartnerStatus::Active {
        return verdict.reject(Reason::PartnerInactive);
    }
    if let Some(click) = click {
        if click.is_bot {
            return verdict.reject(Reason::BotClick);
        }
        // A customer's later sales are not timed against the click.
        if attribution == Attribution::Click {
            let window_ms = u64::from(input.offer.window_days) * DAY_MS;
            if age_ms > window_ms {
                return verdict.reject(Reason::Expired);
            }
            if age_ms < u64::from(input.offer.min_seconds) * 1000 {
                return verdict.reject(Reason::TooFast);
            }
        }
    }
    let over_cap = input.caps == Caps::Over;
    if over_cap && input.offer.cap_action == CapAction::Reject {
        return verdict.reject(Reason::CapReached);
    }

    let paid = payout::compute(
        &input.offer.payout,
        &PayoutInput {
            partner_id,
            tier: input.partner.tier,
            event: input.event,
            amount: input.amount,
            customer,
        },
    );
    let pending = if click.is_some_and(|c| c.is_rate_limited) {
        Some(Reason::SuspiciousClick)
    } else if over_cap {
        Some(Reason::CapReached)
    } else if input.offer.manual_review || paid.rule == PayoutRule::Overflow {
        Some(Reason::ManualReview)
    } else if input.channel == Channel::Pixel && input.offer.pixel == PixelTrust::Pending {
        Some(Reason::PixelUntrusted)
    } else {
        None
    };
    let (status, reason) = match (pending, attribution) {
        (Some(reason), _) => (Status::Pending, reason),
        (None, Attribution::Deal) => (Status::Approved, Reason::DealRegistration),
        (None, _) => (Status::Approved, Reason::Ok),
    };
    Decision {
        status,
        reason,
        payout: paid.amount,
        payout_rule: Some(paid.rule),
        attribution,
        partner_id: verdict.partner_id,
    }
}

/// Whether the admin API may move a conversion from `from` to `to`:
/// pending → approved or rejected, approved → reversed; nothing else, not
/// even to the same status.
pub fn transition(from: Status, to: Status) -> Result<(), TransitionError> {
    match (from, to) {
        (Status::Pending, Status::Approved | Status::Rejected)
        | (Status::Approved, Status::Reversed) => Ok(()),
        _ => Err(TransitionError { from, to }),
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
    pub const ALL: [Reason; 15] = [
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

/// The parts of a [`Decision`] known before the payout.
#[derive(Clone, Copy)]
struct Verdict {
    attribution: Attribution,
    partner_id: Option<u64>,
}

impl Verdict {
    fn reject(self, reason: Reason) -> Decision {
        self.unpaid(Status::Rejected, reason)
    }

    fn duplicate(self, reason: Reason) -> Decision {
        self.unpaid(Status::Duplicate, reason)
    }

    fn unpaid(self, status: Status, reason: Reason) -> Decision {
        Decision {
            status,
            reason,
            payout: Decimal::ZERO,
            payout_rule: None,
            attribution: self.attribution,
            partner_id: self.partner_id,
        }
    }
}

/// Milliseconds from the click to the conversion: 0 for a conversion up to
/// [`MAX_CLOCK_SKEW_MS`] before its click, `None` further before.
fn age_ms(click_ms: u64, now_ms: u64) -> Option<u64> {
    match now_ms.checked_sub(click_ms) {
        Some(age) => Some(age),
        None if click_ms - now_ms <= MAX_CLOCK_SKEW_MS => Some(0),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Payout;
    use crate::payout::{EventPayout, PartnerPayout, Recurring, TierPayout};

    use Reason as R;
    use Status as S;

    /// 2025-01-01T00:00:00Z.
    const NOW: u64 = 1_735_689_600_000;
    const HOUR: u64 = 3_600_000;
    const OFFER: u64 = 3;
    const PARTNER: u64 = 7;

    fn d(s: &str) -> Decimal {
        s.parse().expect("test decimals are valid")
    }

    /// A click an hour before the conversion, on partner 7's link to offer 3.
    fn click() -> ClickFacts {
        ClickFacts {
            ts_ms: NOW - HOUR,
            link_id: 11,
            is_bot: false,
            is_rate_limited: false,
        }
    }

    fn click_at(ts_ms: u64) -> Source {
        Source::Click(ClickFacts { ts_ms, ..click() })
    }

    fn bound(first_sale: bool, months_since_bound: u32) -> Source {
        Source::Customer(Some(BoundCustomer {
            click: click(),
            sale: CustomerSale {
                first_sale,
                months_since_bound,
            },
        }))
    }

    /// Leads pay CPL 1.00, sales CPS 10 %, anything else CPA 5.00; gold
    /// partners get 15 % of sales; partner 9 gets 12.50 per conversion.
    fn terms() -> PayoutTerms {
        PayoutTerms {
            default: Payout::Cpa { amount: d("5.00") },
            by_event: vec![
                EventPayout {
                    event: "lead".into(),
                    payout: Payout::Cpl { amount: d("1.00") },
                },
                EventPayout {
                    event: "sale".into(),
                    payout: Payout::Cps { percent: d("10") },
                },
            ],
            by_tier: vec![TierPayout {
                tier: "gold".into(),
                event: Some("sale".into()),
                payout: Payout::Cps { percent: d("15") },
            }],
            by_partner: vec![PartnerPayout {
                partner_id: 9,
                event: None,
                payout: Payout::Cpa { amount: d("12.50") },
            }],
            recurring: Recurring::FirstSaleOnly,
        }
    }

    /// A fresh 80.00 sale reported by postback for a clean click: approved,
    /// 8.00 under the offer's sale payout.
    fn base() -> Input<'static> {
        Input {
            source: Source::Click(click()),
            link: Some(LinkFacts {
                partner_id: PARTNER,
                offer_id: OFFER,
            }),
            offer: OfferRules {
                id: OFFER,
                window_days: DEFAULT_WINDOW_DAYS,
                min_seconds: 0,
                pixel: PixelTrust::Approve,
                manual_review: false,
                cap_action: CapAction::Reject,
                payout: Cow::Owned(terms()),
            },
            partner: PartnerFacts {
                status: PartnerStatus::Active,
                tier: None,
            },
            channel: Channel::Postback,
            now_ms: NOW,
            event: "sale",
            amount: Some(d("80.00")),
            caps: Caps::Within,
            dedup: Dedup::Fresh,
        }
    }

    /// The expected decision: status, reason, payout, payout rule (`None`:
    /// unpaid), attribution.
    type Expect = (
        Status,
        Reason,
        &'static str,
        Option<&'static str>,
        &'static str,
    );

    /// A change to [`base`].
    type Change = fn(&mut Input<'static>);

    fn check(name: &str, change: Change, expected: Expect) {
        let mut input = base();
        change(&mut input);
        let got = decide(&input);
        let rule = got.payout_rule.as_ref().map(|r| r.as_str().into_owned());
        assert_eq!(
            (
                got.status,
                got.reason,
                got.payout,
                rule.as_deref(),
                got.attribution.as_str()
            ),
            (
                expected.0,
                expected.1,
                d(expected.2),
                expected.3,
                expected.4
            ),
            "{name}"
        );
        assert!(got.payout >= Decimal::ZERO, "{name}");
        if matches!(got.status, S::Rejected | S::Duplicate) {
            assert_eq!(
                (got.payout, got.payout_rule),
                (Decimal::ZERO, None),
                "{name}"
            );
        }
    }

    const SALE: Option<&str> = Some("offer_event:sale");
    const WINDOW_MS: u64 = DEFAULT_WINDOW_DAYS as u64 * 86_400_000;

    #[test]
    fn decisions() {
        let cases: &[(&str, Change, Expect)] = &[
            // approved
            (
                "clean click",
                |_| {},
                (S::Approved, R::Ok, "8.00", SALE, "click"),
            ),
            (
                "deal over another partner's click",
                |i| {
                    i.source = Source::Deal { partner_id: 12 };
                    i.link = Some(LinkFacts {
                        partner_id: 99,
                        offer_id: 4,
                    });
                },
                (S::Approved, R::DealRegistration, "8.00", SALE, "deal"),
            ),
            (
                "bound customer's first sale",
                |i| i.source = bound(true, 0),
                (S::Approved, R::Ok, "8.00", SALE, "customer"),
            ),
            (
                "trusted pixel",
                |i| i.channel = Channel::Pixel,
                (S::Approved, R::Ok, "8.00", SALE, "click"),
            ),
            (
                "pixel trust does not touch postbacks",
                |i| i.offer.pixel = PixelTrust::Pending,
                (S::Approved, R::Ok, "8.00", SALE, "click"),
            ),
            // pending
            (
                "untrusted pixel",
                |i| {
                    i.channel = Channel::Pixel;
                    i.offer.pixel = PixelTrust::Pending;
                },
                (S::Pending, R::PixelUntrusted, "8.00", SALE, "click"),
            ),
            (
                "manual review",
                |i| i.offer.manual_review = true,
                (S::Pending, R::ManualReview, "8.00", SALE, "click"),
            ),
            (
                "over a cap, held",
                |i| {
                    i.caps = Caps::Over;
                    i.offer.cap_action = CapAction::Pending;
                },
                (S::Pending, R::CapReached, "8.00", SALE, "click"),
            ),
            (
                "rate-limited click",
                |i| {
                    i.source = Source::Click(ClickFacts {
                        is_rate_limited: true,
                        ..click()
                    })
                },
                (S::Pending, R::SuspiciousClick, "8.00", SALE, "click"),
            ),
            (
                "deal under manual review",
                |i| {
                    i.source = Source::Deal { partner_id: 12 };
                    i.offer.manual_review = true;
                },
                (S::Pending, R::ManualReview, "8.00", SALE, "deal"),
            ),
            // duplicate
            (
                "repeated order",
                |i| i.dedup = Dedup::DuplicateOrder,
                (S::Duplicate, R::DuplicateOrder, "0", None, "click"),
            ),
            (
                "repeated event",
                |i| i.dedup = Dedup::DuplicateEvent,
                (S::Duplicate, R::DuplicateEvent, "0", None, "click"),
            ),
            // rejected
            (
                "invalid click id",
                |i| i.source = Source::InvalidClickId,
                (S::Rejected, R::InvalidClickId, "0", None, "click"),
            ),
            (
                "expired",
                |i| i.source = click_at(NOW - WINDOW_MS - 1),
                (S::Rejected, R::Expired, "0", None, "click"),
            ),
            (
                "too fast",
                |i| {
                    i.offer.min_seconds = 10;
                    i.source = click_at(NOW - 9_999);
                },
                (S::Rejected, R::TooFast, "0", None, "click"),
            ),
            (
                "another offer's click",
                |i| {
                    i.link = Some(LinkFacts {
                        partner_id: PARTNER,
                        offer_id: 4,
                    })
                },
                (S::Rejected, R::OfferMismatch, "0", None, "click"),
            ),
            (
                "unknown link",
                |i| i.link = None,
                (S::Rejected, R::OfferMismatch, "0", None, "click"),
            ),
            (
                "paused partner",
                |i| i.partner.status = PartnerStatus::Paused,
                (S::Rejected, R::PartnerInactive, "0", None, "click"),
            ),
            (
                "deleted partner",
                |i| i.partner.status = PartnerStatus::Deleted,
                (S::Rejected, R::PartnerInactive, "0", None, "click"),
            ),
            (
                "paused deal partner",
                |i| {
                    i.source = Source::Deal { partner_id: 12 };
                    i.partner.status = PartnerStatus::Paused;
                },
                (S::Rejected, R::PartnerInactive, "0", None, "deal"),
            ),
            (
                "bot click",
                |i| {
                    i.source = Source::Click(ClickFacts {
                        is_bot: true,
                        ..click()
                    })
                },
                (S::Rejected, R::BotClick, "0", None, "click"),
            ),
            (
                "over a cap, rejected",
                |i| i.caps = Caps::Over,
                (S::Rejected, R::CapReached, "0", None, "click"),
            ),
            (
                "unbound customer",
                |i| i.source = Source::Customer(None),
                (S::Rejected, R::UnknownCustomer, "0", None, "customer"),
            ),
            // boundaries
            (
                "exactly at the window's end",
                |i| i.source = click_at(NOW - WINDOW_MS),
                (S::Approved, R::Ok, "8.00", SALE, "click"),
            ),
            (
                "a shorter window",
                |i| {
                    i.offer.window_days = 7;
                    i.source = click_at(NOW - 7 * 86_400_000 - 1);
                },
                (S::Rejected, R::Expired, "0", None, "click"),
            ),
            (
                "exactly at the minimum seconds",
                |i| {
                    i.offer.min_seconds = 10;
                    i.source = click_at(NOW - 10_000);
                },
                (S::Approved, R::Ok, "8.00", SALE, "click"),
            ),
            (
                "at the click's very millisecond",
                |i| i.source = click_at(NOW),
                (S::Approved, R::Ok, "8.00", SALE, "click"),
            ),
            (
                "before its click, within the skew",
                |i| i.source = click_at(NOW + MAX_CLOCK_SKEW_MS),
                (S::Approved, R::Ok, "8.00", SALE, "click"),
            ),
            (
                "before its click, with a minimum",
                |i| {
                    i.offer.min_seconds = 1;
                    i.source = click_at(NOW + 1);
                },
                (S::Rejected, R::TooFast, "0", None, "click"),
            ),
            (
                "before its click, beyond the skew",
                |i| i.source = click_at(NOW + MAX_CLOCK_SKEW_MS + 1),
                (S::Rejected, R::InvalidClickId, "0", None, "click"),
            ),
            (
                "a customer's click beyond the skew",
                |i| {
                    i.source = Source::Customer(Some(BoundCustomer {
                        click: ClickFacts {
                            ts_ms: NOW + MAX_CLOCK_SKEW_MS + 1,
                            ..click()
                        },
                        sale: CustomerSale {
                            first_sale: false,
                            months_since_bound: 0,
                        },
                    }))
                },
                (S::Rejected, R::InvalidClickId, "0", None, "customer"),
            ),
            // customers: no window, the recurring rule pays
            (
                "a customer's sale long after the window",
                |i| {
                    i.source = Source::Customer(Some(BoundCustomer {
                        click: ClickFacts {
                            ts_ms: NOW - 400 * 86_400_000,
                            ..click()
                        },
                        sale: CustomerSale {
                            first_sale: true,
                            months_since_bound: 13,
                        },
                    }))
                },
                (S::Approved, R::Ok, "8.00", SALE, "customer"),
            ),
            (
                "a customer's renewal, first sale only",
                |i| i.source = bound(false, 1),
                (S::Approved, R::Ok, "0", Some("recurring_ended"), "customer"),
            ),
            (
                "a customer's renewal, lifetime",
                |i| {
                    i.source = bound(false, 30);
                    let mut t = terms();
                    t.recurring = Recurring::Lifetime;
                    i.offer.payout = Cow::Owned(t);
                },
                (S::Approved, R::Ok, "8.00", SALE, "customer"),
            ),
            (
                "a customer's renewal within months",
                |i| {
                    i.source = bound(false, 2);
                    let mut t = terms();
                    t.recurring = Recurring::FirstMonths { months: 3 };
                    i.offer.payout = Cow::Owned(t);
                },
                (S::Approved, R::Ok, "8.00", SALE, "customer"),
            ),
            (
                "a bound customer's bot click",
                |i| {
                    i.source = Source::Customer(Some(BoundCustomer {
                        click: ClickFacts {
                            is_bot: true,
                            ..click()
                        },
                        sale: CustomerSale {
                            first_sale: true,
                            months_since_bound: 0,
                        },
                    }))
                },
                (S::Rejected, R::BotClick, "0", None, "customer"),
            ),
            (
                "a deal ignores the click's time",
                |i| {
                    i.source = Source::Deal { partner_id: 12 };
                    i.offer.min_seconds = 1_000_000;
                },
                (S::Approved, R::DealRegistration, "8.00", SALE, "deal"),
            ),
            // payouts per model and override
            (
                "a lead, CPL",
                |i| {
                    i.event = "lead";
                    i.amount = None;
                },
                (
                    S::Approved,
                    R::Ok,
                    "1.00",
                    Some("offer_event:lead"),
                    "click",
                ),
            ),
            (
                "another event, CPA default",
                |i| i.event = "install",
                (S::Approved, R::Ok, "5.00", Some("offer"), "click"),
            ),
            (
                "a sale without an amount",
                |i| i.amount = None,
                (S::Approved, R::Ok, "0", Some("no_amount"), "click"),
            ),
            (
                "a gold partner's sale",
                |i| i.partner.tier = Some("gold"),
                (
                    S::Approved,
                    R::Ok,
                    "12.00",
                    Some("tier:gold/event:sale"),
                    "click",
                ),
            ),
            (
                "a gold partner's lead",
                |i| {
                    i.partner.tier = Some("gold");
                    i.event = "lead";
                },
                (
                    S::Approved,
                    R::Ok,
                    "1.00",
                    Some("offer_event:lead"),
                    "click",
                ),
            ),
            (
                "partner 9's override over its tier",
                |i| {
                    i.link = Some(LinkFacts {
                        partner_id: 9,
                        offer_id: OFFER,
                    });
                    i.partner.tier = Some("gold");
                },
                (S::Approved, R::Ok, "12.50", Some("partner:9"), "click"),
            ),
            (
                "a deal pays the deal partner's override",
                |i| i.source = Source::Deal { partner_id: 9 },
                (
                    S::Approved,
                    R::DealRegistration,
                    "12.50",
                    Some("partner:9"),
                    "deal",
                ),
            ),
            (
                "the largest amount still pays its percent",
                |i| i.amount = Some(Decimal::MAX),
                (
                    S::Approved,
                    R::Ok,
                    "7922816251426433759354395033.5",
                    SALE,
                    "click",
                ),
            ),
            (
                "an overflowing payout goes to review",
                |i| {
                    i.amount = Some(Decimal::MAX);
                    i.offer.payout =
                        Cow::Owned(PayoutTerms::flat(Payout::Cps { percent: d("150") }));
                },
                (S::Pending, R::ManualReview, "0", Some("overflow"), "click"),
            ),
            // which reason wins
            (
                "invalid beats duplicate",
                |i| {
                    i.source = Source::InvalidClickId;
                    i.dedup = Dedup::DuplicateOrder;
                },
                (S::Rejected, R::InvalidClickId, "0", None, "click"),
            ),
            (
                "duplicate beats every rejection",
                |i| {
                    i.dedup = Dedup::DuplicateEvent;
                    i.link = None;
                    i.partner.status = PartnerStatus::Paused;
                    i.source = Source::Click(ClickFacts {
                        is_bot: true,
                        ts_ms: 0,
                        ..click()
                    });
                    i.caps = Caps::Over;
                },
                (S::Duplicate, R::DuplicateEvent, "0", None, "click"),
            ),
            (
                "duplicate beats an unbound customer",
                |i| {
                    i.source = Source::Customer(None);
                    i.dedup = Dedup::DuplicateOrder;
                },
                (S::Duplicate, R::DuplicateOrder, "0", None, "customer"),
            ),
            (
                "offer mismatch beats inactive, bot and time",
                |i| {
                    i.link = Some(LinkFacts {
                        partner_id: PARTNER,
                        offer_id: 4,
                    });
                    i.partner.status = PartnerStatus::Deleted;
                    i.source = Source::Click(ClickFacts {
                        is_bot: true,
                        ts_ms: 0,
                        ..click()
                    });
                },
                (S::Rejected, R::OfferMismatch, "0", None, "click"),
            ),
            (
                "inactive beats bot",
                |i| {
                    i.partner.status = PartnerStatus::Paused;
                    i.source = Source::Click(ClickFacts {
                        is_bot: true,
                        ..click()
                    });
                },
                (S::Rejected, R::PartnerInactive, "0", None, "click"),
            ),
            (
                "bot beats expired and rate limited",
                |i| {
                    i.source = Source::Click(ClickFacts {
                        is_bot: true,
                        is_rate_limited: true,
                        ts_ms: 0,
                        ..click()
                    });
                },
                (S::Rejected, R::BotClick, "0", None, "click"),
            ),
            (
                "expired beats a rejecting cap",
                |i| {
                    i.source = click_at(0);
                    i.caps = Caps::Over;
                },
                (S::Rejected, R::Expired, "0", None, "click"),
            ),
            (
                "too fast beats a rejecting cap",
                |i| {
                    i.offer.min_seconds = 7200;
                    i.caps = Caps::Over;
                },
                (S::Rejected, R::TooFast, "0", None, "click"),
            ),
            (
                "a rejecting cap beats every pending",
                |i| {
                    i.source = Source::Click(ClickFacts {
                        is_rate_limited: true,
                        ..click()
                    });
                    i.caps = Caps::Over;
                    i.offer.manual_review = true;
                },
                (S::Rejected, R::CapReached, "0", None, "click"),
            ),
            (
                "suspicious beats a holding cap",
                |i| {
                    i.source = Source::Click(ClickFacts {
                        is_rate_limited: true,
                        ..click()
                    });
                    i.caps = Caps::Over;
                    i.offer.cap_action = CapAction::Pending;
                    i.offer.manual_review = true;
                },
                (S::Pending, R::SuspiciousClick, "8.00", SALE, "click"),
            ),
            (
                "a holding cap beats manual review",
                |i| {
                    i.caps = Caps::Over;
                    i.offer.cap_action = CapAction::Pending;
                    i.offer.manual_review = true;
                    i.channel = Channel::Pixel;
                    i.offer.pixel = PixelTrust::Pending;
                },
                (S::Pending, R::CapReached, "8.00", SALE, "click"),
            ),
            (
                "manual review beats an untrusted pixel",
                |i| {
                    i.offer.manual_review = true;
                    i.channel = Channel::Pixel;
                    i.offer.pixel = PixelTrust::Pending;
                },
                (S::Pending, R::ManualReview, "8.00", SALE, "click"),
            ),
        ];
        for &(name, change, expected) in cases {
            check(name, change, expected);
        }
    }

    #[test]
    fn partner_credited() {
        let cases: &[(Change, Option<u64>)] = &[
            (|_| {}, Some(PARTNER)),
            (|i| i.source = Source::Deal { partner_id: 12 }, Some(12)),
            (|i| i.source = bound(false, 0), Some(PARTNER)),
            (|i| i.source = Source::InvalidClickId, None),
            (|i| i.source = Source::Customer(None), None),
            (|i| i.link = None, None),
            (|i| i.dedup = Dedup::DuplicateOrder, None),
            (|i| i.partner.status = PartnerStatus::Paused, Some(PARTNER)),
        ];
        for (n, &(change, partner)) in cases.iter().enumerate() {
            let mut input = base();
            change(&mut input);
            assert_eq!(decide(&input).partner_id, partner, "case {n}");
        }
    }

    #[test]
    fn names_are_the_interface_s() {
        let statuses: Vec<_> = Status::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            statuses,
            ["approved", "pending", "duplicate", "rejected", "reversed"]
        );
        let reasons: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "ok",
                "deal_registration",
                "pixel_untrusted",
                "manual_review",
                "cap_reached",
                "suspicious_click",
                "duplicate_order",
                "duplicate_event",
                "invalid_click_id",
                "expired",
                "too_fast",
                "offer_mismatch",
                "partner_inactive",
                "bot_click",
                "unknown_customer",
            ]
        );
        // serde agrees with as_str.
        for s in Status::ALL {
            assert_eq!(serde_json::to_value(s).ok(), Some(s.as_str().into()));
        }
        for r in Reason::ALL {
            assert_eq!(serde_json::to_value(r).ok(), Some(r.as_str().into()));
        }
    }

    #[test]
    fn transitions() {
        let allowed = [
            (S::Pending, S::Approved),
            (S::Pending, S::Rejected),
            (S::Approved, S::Reversed),
        ];
        for from in Status::ALL {
            for to in Status::ALL {
                let expected = if allowed.contains(&(from, to)) {
                    Ok(())
                } else {
                    Err(TransitionError { from, to })
                };
                assert_eq!(transition(from, to), expected, "{from} → {to}");
            }
        }
        assert_eq!(
            TransitionError {
                from: S::Rejected,
                to: S::Approved
            }
            .to_string(),
            "status cannot change from rejected to approved"
        );
    }
}
