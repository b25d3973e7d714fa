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
//! 5. `rejected` / `partner_inactive`: the credited partner is not
//!    `active` (applied, rejected or suspended) or is deleted.
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
//! # Deals
//!
//! When the intake finds an approved deal covering the customer
//! ([`Input::deal`]), [`decide`] first asks whether the conversion's own
//! source claims it: whether deciding through the click (or the bound
//! customer) alone credits a partner. A click that is invalid, of another
//! offer, a bot's, expired, too fast, of an inactive partner, or a customer
//! bound to nothing claims nothing, so the deal takes the conversion with
//! no contest. A claim by the deal's own partner is no contest either: the
//! deal credits it. A claim by another partner is a conflict, settled by
//! the offer's [`DealConflict`]: `deal_wins` (the default) credits the
//! deal's partner, reason `deal_registration`, and names the click's
//! partner in [`Decision::displaced_partner_id`]; `click_wins` decides as
//! if there were no deal. A deal of a paused or deleted partner claims
//! nothing against a claiming click (the click keeps the conversion); with
//! no such click it is `partner_inactive`, like any credited partner's. A
//! deal whose protection ended before the
//! conversion (exactly at its end still protects) is no deal at all.
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

mod checks;
mod contest;
mod input;
mod output;
mod transitions;

pub use checks::MAX_CLOCK_SKEW_MS;
pub use contest::decide;
pub use input::{
    BoundCustomer, CapAction, Caps, Channel, ClickFacts, DealConflict, DealFacts, Dedup, Input,
    LinkFacts, OfferRules, PartnerFacts, PartnerStatus, PixelTrust, Source, DEFAULT_WINDOW_DAYS,
};
pub use output::{Attribution, Decision, Reason, Status};
pub use transitions::{transition, TransitionError};

#[cfg(test)]
mod contest_tests;
#[cfg(test)]
mod tests;
