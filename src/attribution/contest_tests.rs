//! A deal against clicks and bound customers: the table of who takes the
//! conversion, under both conflict rules.

use super::tests::{base, bound, click, d, HOUR, NOW, PARTNER};
use super::*;

use Reason as R;
use Status as S;

/// The deal's partner and id.
const DEAL_PARTNER: u64 = 12;
const DEAL: u64 = 40;

/// An approved deal of partner 12, protecting for another day.
fn deal() -> DealFacts<'static> {
    DealFacts {
        deal_id: DEAL,
        partner_id: DEAL_PARTNER,
        protected_until_ms: NOW + 24 * HOUR,
        partner: PartnerFacts {
            status: PartnerStatus::Active,
            tier: None,
        },
    }
}

/// `base()` (partner 7's clean click) with the deal.
fn with_deal() -> Input<'static> {
    Input {
        deal: Some(deal()),
        ..base()
    }
}

/// Status, reason, attribution, credited partner, deal credited,
/// displaced partner.
type Expect = (
    Status,
    Reason,
    &'static str,
    Option<u64>,
    Option<u64>,
    Option<u64>,
);

type Change = fn(&mut Input<'static>);

fn check(name: &str, change: Change, expected: Expect) {
    let mut input = with_deal();
    change(&mut input);
    let got = decide(&input);
    assert_eq!(
        (
            got.status,
            got.reason,
            got.attribution.as_str(),
            got.partner_id,
            got.deal_id,
            got.displaced_partner_id
        ),
        expected,
        "{name}"
    );
}

const CLICK: Option<u64> = Some(PARTNER);
const DEALER: Option<u64> = Some(DEAL_PARTNER);

fn click_wins(i: &mut Input<'static>) {
    i.offer.deal_conflict = DealConflict::ClickWins;
}

#[test]
fn who_takes_the_conversion() {
    let by_deal = (S::Approved, R::DealRegistration, "deal", DEALER, Some(DEAL));
    let cases: &[(&str, Change, Expect)] = &[
        (
            "no deal: the click",
            |i| i.deal = None,
            (S::Approved, R::Ok, "click", CLICK, None, None),
        ),
        (
            "deal over another partner's click",
            |_| {},
            (
                S::Approved,
                R::DealRegistration,
                "deal",
                DEALER,
                Some(DEAL),
                CLICK,
            ),
        ),
        (
            "click_wins: the click, the deal unnamed",
            click_wins,
            (S::Approved, R::Ok, "click", CLICK, None, None),
        ),
        (
            "deal expired a millisecond ago: the click",
            |i| {
                i.deal = Some(DealFacts {
                    protected_until_ms: NOW - 1,
                    ..deal()
                })
            },
            (S::Approved, R::Ok, "click", CLICK, None, None),
        ),
        (
            "deal ending this millisecond still protects",
            |i| {
                i.deal = Some(DealFacts {
                    protected_until_ms: NOW,
                    ..deal()
                })
            },
            (
                S::Approved,
                R::DealRegistration,
                "deal",
                DEALER,
                Some(DEAL),
                CLICK,
            ),
        ),
        (
            "expired deal, no click: unknown customer",
            |i| {
                i.deal = Some(DealFacts {
                    protected_until_ms: NOW - 1,
                    ..deal()
                });
                i.source = Source::Customer(None);
            },
            (
                S::Rejected,
                R::UnknownCustomer,
                "customer",
                None,
                None,
                None,
            ),
        ),
        (
            "deal, customer bound to no click: no contest",
            |i| i.source = Source::Customer(None),
            (by_deal.0, by_deal.1, by_deal.2, by_deal.3, by_deal.4, None),
        ),
        (
            "deal, no click, click_wins: still the deal",
            |i| {
                click_wins(i);
                i.source = Source::Customer(None);
            },
            (by_deal.0, by_deal.1, by_deal.2, by_deal.3, by_deal.4, None),
        ),
        (
            "deal over an expired click: the click claims nothing",
            |i| {
                click_wins(i);
                i.source = Source::Click(ClickFacts {
                    ts_ms: NOW - 31 * 24 * HOUR,
                    ..click()
                });
            },
            (by_deal.0, by_deal.1, by_deal.2, by_deal.3, by_deal.4, None),
        ),
        (
            "deal over a bot's click",
            |i| {
                click_wins(i);
                i.source = Source::Click(ClickFacts {
                    is_bot: true,
                    ..click()
                });
            },
            (by_deal.0, by_deal.1, by_deal.2, by_deal.3, by_deal.4, None),
        ),
        (
            "deal over an invalid click id",
            |i| i.source = Source::InvalidClickId,
            (by_deal.0, by_deal.1, by_deal.2, by_deal.3, by_deal.4, None),
        ),
        (
            "deal over a click of another offer",
            |i| {
                click_wins(i);
                i.link = Some(LinkFacts {
                    partner_id: PARTNER,
                    offer_id: 99,
                });
            },
            (by_deal.0, by_deal.1, by_deal.2, by_deal.3, by_deal.4, None),
        ),
        (
            "deal over a paused partner's click",
            |i| {
                click_wins(i);
                i.partner.status = PartnerStatus::Inactive;
            },
            (by_deal.0, by_deal.1, by_deal.2, by_deal.3, by_deal.4, None),
        ),
        (
            "the deal partner's own click: the deal, nobody displaced",
            |i| {
                click_wins(i);
                i.link = Some(LinkFacts {
                    partner_id: DEAL_PARTNER,
                    offer_id: 3,
                });
            },
            (by_deal.0, by_deal.1, by_deal.2, by_deal.3, by_deal.4, None),
        ),
        (
            "deal over another partner's bound customer",
            |i| i.source = bound(false, 2),
            (
                S::Approved,
                R::DealRegistration,
                "deal",
                DEALER,
                Some(DEAL),
                CLICK,
            ),
        ),
        (
            "click_wins: the bound customer",
            |i| {
                click_wins(i);
                i.source = bound(true, 0);
            },
            (S::Approved, R::Ok, "customer", CLICK, None, None),
        ),
        (
            "deal over a rate-limited click: the click claims, the deal wins",
            |i| {
                i.source = Source::Click(ClickFacts {
                    is_rate_limited: true,
                    ..click()
                })
            },
            (
                S::Approved,
                R::DealRegistration,
                "deal",
                DEALER,
                Some(DEAL),
                CLICK,
            ),
        ),
        (
            "click_wins over the deal: the rate-limited click is pending",
            |i| {
                click_wins(i);
                i.source = Source::Click(ClickFacts {
                    is_rate_limited: true,
                    ..click()
                });
            },
            (S::Pending, R::SuspiciousClick, "click", CLICK, None, None),
        ),
        (
            "paused deal partner: a claiming click takes it",
            |i| {
                i.deal = Some(DealFacts {
                    partner: PartnerFacts {
                        status: PartnerStatus::Inactive,
                        tier: None,
                    },
                    ..deal()
                })
            },
            (S::Approved, R::Ok, "click", CLICK, None, None),
        ),
        (
            "paused deal partner, no click: rejected, the deal's",
            |i| {
                i.source = Source::Customer(None);
                i.deal = Some(DealFacts {
                    partner: PartnerFacts {
                        status: PartnerStatus::Inactive,
                        tier: None,
                    },
                    ..deal()
                });
            },
            (
                S::Rejected,
                R::PartnerInactive,
                "deal",
                DEALER,
                Some(DEAL),
                None,
            ),
        ),
        (
            "over a cap the offer rejects: the deal partner's cap",
            |i| i.caps = Caps::Over,
            (
                S::Rejected,
                R::CapReached,
                "deal",
                DEALER,
                Some(DEAL),
                CLICK,
            ),
        ),
        (
            "an untrusted pixel through the deal is pending",
            |i| {
                i.channel = Channel::Pixel;
                i.offer.pixel = PixelTrust::Pending;
            },
            (
                S::Pending,
                R::PixelUntrusted,
                "deal",
                DEALER,
                Some(DEAL),
                CLICK,
            ),
        ),
        (
            "a duplicate stays a duplicate",
            |i| i.dedup = Dedup::DuplicateOrder,
            (
                S::Duplicate,
                R::DuplicateOrder,
                "deal",
                None,
                Some(DEAL),
                None,
            ),
        ),
    ];
    for &(name, change, expected) in cases {
        check(name, change, expected);
    }
}

#[test]
fn a_deal_pays_its_own_partner_s_rate() {
    let mut input = with_deal();
    input.deal = Some(DealFacts {
        partner: PartnerFacts {
            status: PartnerStatus::Active,
            tier: Some("gold"),
        },
        ..deal()
    });
    let got = decide(&input);
    assert_eq!(
        got.payout,
        d("12.00"),
        "15 % of 80.00 for the gold deal partner"
    );
    assert_eq!(
        got.payout_rule.map(|r| r.as_str().into_owned()).as_deref(),
        Some("tier:gold/event:sale")
    );
}
