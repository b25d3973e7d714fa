//! The decision's table of cases, the partner credited, the interface's
//! names and the allowed status changes.

use std::borrow::Cow;

use rust_decimal::Decimal;

use super::*;
use crate::model::Payout;
use crate::payout::{CustomerSale, EventPayout, PartnerPayout, PayoutTerms, Recurring, TierPayout};

use Reason as R;
use Status as S;

/// 2025-01-01T00:00:00Z.
pub(super) const NOW: u64 = 1_735_689_600_000;
pub(super) const HOUR: u64 = 3_600_000;
pub(super) const OFFER: u64 = 3;
pub(super) const PARTNER: u64 = 7;

pub(super) fn d(s: &str) -> Decimal {
    s.parse().expect("test decimals are valid")
}

/// A click an hour before the conversion, on partner 7's link to offer 3.
pub(super) fn click() -> ClickFacts {
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

pub(super) fn bound(first_sale: bool, months_since_bound: u32) -> Source {
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
pub(super) fn base() -> Input<'static> {
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
            deal_conflict: DealConflict::DealWins,
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
        deal: None,
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
            |i| i.partner.status = PartnerStatus::Inactive,
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
                i.partner.status = PartnerStatus::Inactive;
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
                i.offer.payout = Cow::Owned(PayoutTerms::flat(Payout::Cps { percent: d("150") }));
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
                i.partner.status = PartnerStatus::Inactive;
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
                i.partner.status = PartnerStatus::Inactive;
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
        (
            |i| i.partner.status = PartnerStatus::Inactive,
            Some(PARTNER),
        ),
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
            "rate_limited",
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
