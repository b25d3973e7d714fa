//! A deal against the conversion's own source: which one takes the
//! conversion (see the [module doc](crate::attribution), "Deals").

use super::checks::decide_source;
use super::input::{DealConflict, DealFacts, Input, Source};
use super::output::{Decision, Reason, Status};

/// The status, reason, payout and credited partner of one conversion. See
/// the [module doc] for the order of the checks and how a deal competes
/// with a click.
///
/// [module doc]: crate::attribution
pub fn decide(input: &Input<'_>) -> Decision {
    let deal = match input.deal {
        Some(deal) if deal.protected_until_ms >= input.now_ms => deal,
        // An expired deal is no deal: the conversion is its source's.
        _ => return decide_source(input),
    };
    if let Source::Deal { .. } = input.source {
        return through_deal(input, deal, None);
    }
    let by_source = decide_source(input);
    let by_deal = |displaced| {
        let d = through_deal(input, deal, displaced);
        // A deal of an inactive partner claims nothing either: a click
        // that claims the conversion keeps it.
        if d.reason == Reason::PartnerInactive && displaced.is_some() {
            by_source.clone()
        } else {
            d
        }
    };
    match claimant(&by_source) {
        None => through_deal(input, deal, None),
        Some(p) if p == deal.partner_id => through_deal(input, deal, None),
        Some(p) => match input.offer.deal_conflict {
            DealConflict::ClickWins => by_source,
            DealConflict::DealWins => by_deal(Some(p)),
        },
    }
}

/// The partner the conversion's own source would credit: none when its
/// verdict is a rejection about the click or customer itself (the click
/// claims nothing then), or credits no one.
fn claimant(by_source: &Decision) -> Option<u64> {
    let rejected_source = by_source.status == Status::Rejected
        && matches!(
            by_source.reason,
            Reason::InvalidClickId
                | Reason::OfferMismatch
                | Reason::PartnerInactive
                | Reason::BotClick
                | Reason::Expired
                | Reason::TooFast
                | Reason::UnknownCustomer
        );
    if rejected_source {
        None
    } else {
        by_source.partner_id
    }
}

/// The conversion decided through `deal`, naming `displaced`, the partner
/// whose click lost to it.
fn through_deal(input: &Input<'_>, deal: DealFacts<'_>, displaced: Option<u64>) -> Decision {
    let mut i = input.clone();
    i.source = Source::Deal {
        partner_id: deal.partner_id,
    };
    i.partner = deal.partner;
    i.link = None;
    i.deal = None;
    let mut d = decide_source(&i);
    d.deal_id = Some(deal.deal_id);
    d.displaced_partner_id = displaced;
    d
}
