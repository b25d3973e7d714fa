//! The payout rules' tables: the most specific rule, overflow, recurring
//! sales, calendar months, the terms' JSON and their validation.

use rust_decimal::Decimal;

use super::*;

fn d(s: &str) -> Decimal {
    s.parse().expect("test decimals are valid")
}

fn cpa(s: &str) -> Payout {
    Payout::Cpa { amount: d(s) }
}

fn cps(s: &str) -> Payout {
    Payout::Cps { percent: d(s) }
}

fn cpl(s: &str) -> Payout {
    Payout::Cpl { amount: d(s) }
}

/// An offer with a lead at CPL 1.00 and a sale at CPS 10 %, gold
/// partners at 15 % of sales and 2.00 for anything else, partner 42 at
/// 12.50 per conversion and partner 7 at 20 % of sales only.
fn program() -> PayoutTerms {
    PayoutTerms {
        default: cpa("5.00"),
        by_event: vec![
            EventPayout {
                event: "lead".into(),
                payout: cpl("1.00"),
            },
            EventPayout {
                event: "sale".into(),
                payout: cps("10"),
            },
        ],
        by_tier: vec![
            TierPayout {
                tier: "gold".into(),
                event: None,
                payout: cpa("2.00"),
            },
            TierPayout {
                tier: "gold".into(),
                event: Some("sale".into()),
                payout: cps("15"),
            },
        ],
        by_partner: vec![
            PartnerPayout {
                partner_id: 42,
                event: None,
                payout: cpa("12.50"),
            },
            PartnerPayout {
                partner_id: 7,
                event: Some("sale".into()),
                payout: cps("20"),
            },
        ],
        recurring: Recurring::FirstSaleOnly,
    }
}

struct Case {
    partner_id: u64,
    tier: Option<&'static str>,
    event: &'static str,
    amount: Option<&'static str>,
    customer: Option<CustomerSale>,
}

const BASE: Case = Case {
    partner_id: 1,
    tier: None,
    event: "sale",
    amount: Some("80.00"),
    customer: None,
};

fn check(terms: &PayoutTerms, case: Case, amount: &str, rule: &str) {
    let input = PayoutInput {
        partner_id: case.partner_id,
        tier: case.tier,
        event: case.event,
        amount: case.amount.map(d),
        customer: case.customer,
    };
    let got = compute(terms, &input);
    assert_eq!(
        (got.amount, got.rule.as_str().into_owned()),
        (d(amount), rule.to_string()),
        "{input:?}"
    );
    assert!(got.amount.scale() <= PAYOUT_SCALE, "{input:?}");
}

fn renewal(months_since_bound: u32) -> Option<CustomerSale> {
    Some(CustomerSale {
        first_sale: false,
        months_since_bound,
    })
}

#[test]
fn most_specific_rule_wins() {
    let t = program();
    let cases: Vec<(Case, &str, &str)> = vec![
        // Offer default, per event, per model.
        (
            Case {
                event: "install",
                ..BASE
            },
            "5.00",
            "offer",
        ),
        (
            Case {
                event: "lead",
                amount: None,
                ..BASE
            },
            "1.00",
            "offer_event:lead",
        ),
        (BASE, "8.00", "offer_event:sale"),
        // A sale without its amount under a percent payout pays 0.
        (
            Case {
                amount: None,
                ..BASE
            },
            "0",
            "no_amount",
        ),
        // Tier: the event's override, then the tier's general one.
        (
            Case {
                tier: Some("gold"),
                ..BASE
            },
            "12.00",
            "tier:gold/event:sale",
        ),
        (
            Case {
                tier: Some("gold"),
                event: "lead",
                ..BASE
            },
            "2.00",
            "tier:gold",
        ),
        // A tier with no override falls through to the offer's rules.
        (
            Case {
                tier: Some("silver"),
                ..BASE
            },
            "8.00",
            "offer_event:sale",
        ),
        // Tiers match exactly.
        (
            Case {
                tier: Some("Gold"),
                ..BASE
            },
            "8.00",
            "offer_event:sale",
        ),
        // Partner over tier, over event.
        (
            Case {
                partner_id: 42,
                tier: Some("gold"),
                ..BASE
            },
            "12.50",
            "partner:42",
        ),
        (
            Case {
                partner_id: 42,
                event: "lead",
                ..BASE
            },
            "12.50",
            "partner:42",
        ),
        (
            Case {
                partner_id: 7,
                tier: Some("gold"),
                ..BASE
            },
            "16.00",
            "partner:7/event:sale",
        ),
        // Partner 7's override names only sales: its lead takes the tier's.
        (
            Case {
                partner_id: 7,
                tier: Some("gold"),
                event: "lead",
                ..BASE
            },
            "2.00",
            "tier:gold",
        ),
        // Rounding: 10 % of 0.00125 is 0.000125 → 0.0001; 10 % of
        // 0.0015 is 0.00015 → 0.0002 (midpoint away from zero).
        (
            Case {
                amount: Some("0.00125"),
                ..BASE
            },
            "0.0001",
            "offer_event:sale",
        ),
        (
            Case {
                amount: Some("0.0015"),
                ..BASE
            },
            "0.0002",
            "offer_event:sale",
        ),
        (
            Case {
                amount: Some("19.99"),
                ..BASE
            },
            "1.999",
            "offer_event:sale",
        ),
        (
            Case {
                amount: Some("0"),
                ..BASE
            },
            "0",
            "offer_event:sale",
        ),
        // A negative amount (refused at intake) never pays a negative.
        (
            Case {
                amount: Some("-50"),
                ..BASE
            },
            "0",
            "offer_event:sale",
        ),
    ];
    for (case, amount, rule) in cases {
        check(&t, case, amount, rule);
    }
}

#[test]
fn overflow_pays_nothing() {
    // 20 % of the largest decimal still fits; 150 % of it does not.
    let t = PayoutTerms::flat(cps("150"));
    let max = "79228162514264337593543950335";
    check(
        &t,
        Case {
            amount: Some(max),
            ..BASE
        },
        "0",
        "overflow",
    );
}

#[test]
fn recurring_rules() {
    let first = Some(CustomerSale {
        first_sale: true,
        months_since_bound: 40,
    });
    let rules: &[(Recurring, Option<CustomerSale>, &str, &str)] = &[
        // Not customer-bound: the recurring rule does not apply.
        (Recurring::FirstSaleOnly, None, "8.00", "offer_event:sale"),
        // The first sale always pays, however late.
        (Recurring::FirstSaleOnly, first, "8.00", "offer_event:sale"),
        (
            Recurring::FirstMonths { months: 0 },
            first,
            "8.00",
            "offer_event:sale",
        ),
        (Recurring::FirstSaleOnly, renewal(0), "0", "recurring_ended"),
        // FirstMonths(12): months 0 to 11 pay, month 12 does not.
        (
            Recurring::FirstMonths { months: 12 },
            renewal(0),
            "8.00",
            "offer_event:sale",
        ),
        (
            Recurring::FirstMonths { months: 12 },
            renewal(11),
            "8.00",
            "offer_event:sale",
        ),
        (
            Recurring::FirstMonths { months: 12 },
            renewal(12),
            "0",
            "recurring_ended",
        ),
        (
            Recurring::Lifetime,
            renewal(600),
            "8.00",
            "offer_event:sale",
        ),
    ];
    for &(recurring, customer, amount, rule) in rules {
        let t = PayoutTerms {
            recurring,
            ..program()
        };
        check(&t, Case { customer, ..BASE }, amount, rule);
    }
    // An ended rule beats even a partner override.
    let t = program();
    check(
        &t,
        Case {
            partner_id: 42,
            customer: renewal(1),
            ..BASE
        },
        "0",
        "recurring_ended",
    );
}

#[test]
fn months_between_instants() {
    // Unix milliseconds of UTC instants.
    const JAN_31_2024: u64 = 1_706_659_200_000;
    const FEB_29_2024: u64 = 1_709_164_800_000;
    const MAR_1_2024: u64 = 1_709_251_200_000;
    const JAN_15_2024_NOON: u64 = 1_705_320_000_000;
    const JAN_15_2025_NOON: u64 = 1_736_942_400_000;
    let cases: &[(u64, u64, u32)] = &[
        (JAN_31_2024, JAN_31_2024, 0),
        (JAN_31_2024, JAN_31_2024 - 1, 0),
        (JAN_31_2024, FEB_29_2024, 0),
        (JAN_31_2024, MAR_1_2024, 1),
        (JAN_15_2024_NOON, JAN_15_2025_NOON - 1, 11),
        (JAN_15_2024_NOON, JAN_15_2025_NOON, 12),
        (0, JAN_31_2024, 648),
    ];
    for &(from, to, months) in cases {
        assert_eq!(whole_months(from, to), months, "{from} → {to}");
    }
}

#[test]
fn terms_json() {
    let json = r#"{
        "default": {"model": "cpa", "amount": "5.00"},
        "by_event": [{"event": "sale", "payout": {"model": "cps", "percent": "10"}}],
        "by_tier": [{"tier": "gold", "payout": {"model": "cpa", "amount": "7"}}],
        "by_partner": [{"partner_id": 42, "event": "lead", "payout": {"model": "cpl", "amount": "1.5"}}],
        "recurring": {"kind": "first_months", "months": 12}
    }"#;
    let t: PayoutTerms = serde_json::from_str(json).expect("valid terms");
    assert_eq!(t.recurring, Recurring::FirstMonths { months: 12 });
    assert_eq!(t.by_partner[0].event.as_deref(), Some("lead"));
    let back: PayoutTerms =
        serde_json::from_str(&serde_json::to_string(&t).expect("serializes")).expect("round trip");
    assert_eq!(back, t);

    let minimal: PayoutTerms =
        serde_json::from_str(r#"{"default": {"model": "cpa", "amount": "5"}}"#).expect("defaults");
    assert_eq!(minimal, PayoutTerms::flat(cpa("5")));

    // serde cannot deny extra fields beside the tag of a unit variant
    // (`{"kind": "lifetime", "months": 3}` is read as lifetime); those of
    // `first_months` and of every struct are denied.
    for bad in [
        r#"{"default": {"model": "cpa", "amount": "5"}, "extra": 1}"#,
        r#"{"default": {"model": "cpa", "amount": "5"}, "recurring": {"kind": "first_months", "months": 3, "x": 1}}"#,
        r#"{"default": {"model": "cpa", "amount": "5"}, "recurring": {"kind": "first_months"}}"#,
        r#"{"default": {"model": "cpa", "amount": "5"}, "by_tier": [{"tier": "gold", "payout": {"model": "cpa", "amount": "1"}, "x": 1}]}"#,
        r#"{"default": {"model": "cpa", "amount": 5.5}}"#,
    ] {
        assert!(serde_json::from_str::<PayoutTerms>(bad).is_err(), "{bad}");
    }
}

#[test]
fn validation() {
    assert_eq!(program().validate(), Ok(()));
    let tier = |tier: &str, event: Option<&str>, payout| TierPayout {
        tier: tier.into(),
        event: event.map(Into::into),
        payout,
    };
    let cases: Vec<(PayoutTerms, &str)> = vec![
        (PayoutTerms::flat(cpa("-1")), "default.amount"),
        (PayoutTerms::flat(cps("100.5")), "default.percent"),
        (PayoutTerms::flat(cpl("1.00001")), "default.amount"),
        (PayoutTerms::flat(cpa("1000000001")), "default.amount"),
        (
            PayoutTerms {
                by_event: vec![
                    EventPayout {
                        event: "lead".into(),
                        payout: cpl("1"),
                    },
                    EventPayout {
                        event: "lead".into(),
                        payout: cpl("2"),
                    },
                ],
                ..program()
            },
            "by_event[1]",
        ),
        (
            PayoutTerms {
                by_event: vec![EventPayout {
                    event: "Lead".into(),
                    payout: cpl("1"),
                }],
                ..program()
            },
            "by_event[0].event",
        ),
        (
            PayoutTerms {
                by_tier: vec![tier("gold", Some("sale"), cps("150"))],
                ..program()
            },
            "by_tier[0].payout.percent",
        ),
        (
            PayoutTerms {
                by_tier: vec![tier("gold", None, cps("1")), tier("gold", None, cps("2"))],
                ..program()
            },
            "by_tier[1]",
        ),
        (
            PayoutTerms {
                by_tier: vec![tier("", None, cps("1"))],
                ..program()
            },
            "by_tier[0].tier",
        ),
        (
            PayoutTerms {
                by_partner: vec![
                    PartnerPayout {
                        partner_id: 3,
                        event: Some("sale".into()),
                        payout: cpa("1"),
                    },
                    PartnerPayout {
                        partner_id: 3,
                        event: Some("sale".into()),
                        payout: cpa("2"),
                    },
                ],
                ..program()
            },
            "by_partner[1]",
        ),
    ];
    for (terms, field) in cases {
        let err = terms.validate().expect_err(field);
        assert_eq!(err.field, field, "{err}");
    }
}
