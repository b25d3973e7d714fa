//! The decision itself: the checks in their order (see the
//! [module doc](crate::attribution)), then the payout.

use rust_decimal::Decimal;

use super::input::{CapAction, Caps, Channel, Dedup, Input, PartnerStatus, PixelTrust, Source};
use super::output::{Attribution, Decision, Reason, Status};
use crate::payout::{self, PayoutInput, PayoutRule};

/// How far a click's time may be after its conversion's before the click id
/// counts as invalid: generous for clocks kept by NTP, small enough that an
/// id stamped in the future stands out.
pub const MAX_CLOCK_SKEW_MS: u64 = 60_000;

const DAY_MS: u64 = 86_400_000;

/// The status, reason and payout of one conversion through its
/// `source` alone, as if it had no deal (see [`super::contest`] for how a
/// deal competes). See the [module doc] for the order of the checks.
///
/// [module doc]: crate::attribution
pub(super) fn decide_source(input: &Input<'_>) -> Decision {
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
        deal_id: None,
        displaced_partner_id: None,
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
            deal_id: None,
            displaced_partner_id: None,
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
