//! What a conversion pays, and which rule said so.
//!
//! Pure: [`compute`] takes an offer's [`PayoutTerms`] and the facts of one
//! conversion ([`PayoutInput`]) and returns a [`PayoutDecision`]: the amount
//! and the [`PayoutRule`] that produced it, which the conversion row keeps in
//! its `payout_rule` column so a partner asking "why 12.50?" gets an answer.
//!
//! The rules, in the order they are applied:
//!
//! 1. **Recurring** ([`Recurring`]), only for sales attributed through a
//!    customer binding ([`PayoutInput::customer`]): once the offer's
//!    recurring rule has ended for that customer, the sale pays 0 under
//!    [`PayoutRule::RecurringEnded`], whatever an override says. The
//!    customer's first sale always pays.
//! 2. **The most specific payout wins**: a partner override for this event,
//!    a partner override for every event, a tier override for this event, a
//!    tier override for every event, the offer's payout for this event, the
//!    offer's default. Event names and tiers match exactly (the intake
//!    lower-cases nothing: event names are already `[a-z0-9_.-]`, tiers are
//!    the partner's free text).
//! 3. **The model**: CPA and CPL pay their fixed amount; CPS pays `percent`
//!    of the sale amount. A CPS payout with no sale amount pays 0 under
//!    [`PayoutRule::NoAmount`]: a merchant sending a sale without its
//!    amount gets a visible zero, not a guess.
//! 4. **Rounding**: to 4 decimal places, midpoint away from zero ("half
//!    up" for the non-negative amounts paid here), because that is what a
//!    partner checking by hand or in a spreadsheet (`ROUND`) gets. Banker's
//!    rounding would avoid a bias over millions of payouts, but an
//!    explainable figure matters more here, and the bias is at most 0.00005
//!    per conversion.
//! 5. **Never negative**: amounts and percents are refused when negative at
//!    the edges ([`PayoutTerms::validate`], the intake); a negative result
//!    is still clamped to 0 here. Arithmetic is checked: a product too large
//!    for a [`Decimal`] pays 0 under [`PayoutRule::Overflow`] instead of
//!    panicking, and attribution sends it to manual review.
//!
//! Money is [`Decimal`] throughout; no float ever holds an amount.

use std::borrow::Cow;
use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::validation::FieldError;

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

/// The largest fixed amount terms may hold, as for an offer's own payout.
const MAX_AMOUNT: i64 = 1_000_000_000;
/// The largest percent terms may hold.
const MAX_PERCENT: i64 = 100;

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

/// The facts of a sale attributed through a customer binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustomerSale {
    /// True for the customer's first paid conversion on this offer.
    pub first_sale: bool,
    /// Whole calendar months since the customer was bound to the click
    /// (see [`whole_months`]).
    pub months_since_bound: u32,
}

/// The facts of one conversion that its payout depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayoutInput<'a> {
    /// The partner credited with the conversion.
    pub partner_id: u64,
    /// That partner's tier, if any.
    pub tier: Option<&'a str>,
    /// The conversion's event name (`sale` when the merchant named none).
    pub event: &'a str,
    /// The sale amount, when the merchant sent one.
    pub amount: Option<Decimal>,
    /// Set when the conversion was attributed through a customer binding
    /// rather than its own click id; the recurring rule applies only then.
    pub customer: Option<CustomerSale>,
}

/// What a conversion pays and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutDecision {
    /// The amount, at most [`PAYOUT_SCALE`] decimal places, never negative.
    pub amount: Decimal,
    /// The rule that produced it.
    pub rule: PayoutRule,
}

/// Which rule set a payout; [`PayoutRule::as_str`] is the `payout_rule`
/// column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayoutRule {
    /// The offer's default payout: `offer`.
    Offer,
    /// The offer's payout for this event: `offer_event:<event>`.
    OfferEvent(String),
    /// A tier override: `tier:<tier>`, or `tier:<tier>/event:<event>` when
    /// the override names the event.
    Tier {
        /// The tier's name.
        tier: String,
        /// The event the override is limited to, if any.
        event: Option<String>,
    },
    /// A partner override: `partner:<id>`, or `partner:<id>/event:<event>`
    /// when the override names the event.
    Partner {
        /// The partner's id.
        partner_id: u64,
        /// The event the override is limited to, if any.
        event: Option<String>,
    },
    /// The offer's recurring rule has ended for this customer: pays 0;
    /// `recurring_ended`.
    RecurringEnded,
    /// A percent-of-sale payout with no sale amount: pays 0; `no_amount`.
    NoAmount,
    /// The amount does not fit a decimal: pays 0; `overflow`.
    Overflow,
}

impl PayoutRule {
    /// The stable text of the `payout_rule` column.
    pub fn as_str(&self) -> Cow<'_, str> {
        match self {
            PayoutRule::Offer => Cow::Borrowed("offer"),
            PayoutRule::OfferEvent(event) => Cow::Owned(format!("offer_event:{event}")),
            PayoutRule::Tier { tier, event: None } => Cow::Owned(format!("tier:{tier}")),
            PayoutRule::Tier {
                tier,
                event: Some(event),
            } => Cow::Owned(format!("tier:{tier}/event:{event}")),
            PayoutRule::Partner {
                partner_id,
                event: None,
            } => Cow::Owned(format!("partner:{partner_id}")),
            PayoutRule::Partner {
                partner_id,
                event: Some(event),
            } => Cow::Owned(format!("partner:{partner_id}/event:{event}")),
            PayoutRule::RecurringEnded => Cow::Borrowed("recurring_ended"),
            PayoutRule::NoAmount => Cow::Borrowed("no_amount"),
            PayoutRule::Overflow => Cow::Borrowed("overflow"),
        }
    }
}

impl fmt::Display for PayoutRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

/// What one conversion pays under `terms`. See the module doc for the rules.
pub fn compute(terms: &PayoutTerms, input: &PayoutInput<'_>) -> PayoutDecision {
    if let Some(sale) = input.customer {
        if !terms.recurring.pays(sale) {
            return PayoutDecision {
                amount: Decimal::ZERO,
                rule: PayoutRule::RecurringEnded,
            };
        }
    }
    let (payout, rule) = select(terms, input);
    let raw = match payout {
        Payout::Cpa { amount } | Payout::Cpl { amount } => Some(*amount),
        Payout::Cps { percent } => match input.amount {
            None => {
                return PayoutDecision {
                    amount: Decimal::ZERO,
                    rule: PayoutRule::NoAmount,
                }
            }
            // Dividing the percent first keeps the product no larger than
            // the sale amount for percents up to 100.
            Some(sale) => percent
                .checked_div(Decimal::ONE_HUNDRED)
                .and_then(|share| share.checked_mul(sale)),
        },
    };
    match raw {
        Some(amount) => {
            let amount =
                amount.round_dp_with_strategy(PAYOUT_SCALE, RoundingStrategy::MidpointAwayFromZero);
            PayoutDecision {
                // Also turns a negative zero into a plain one.
                amount: if amount > Decimal::ZERO {
                    amount
                } else {
                    Decimal::ZERO
                },
                rule,
            }
        }
        None => PayoutDecision {
            amount: Decimal::ZERO,
            rule: PayoutRule::Overflow,
        },
    }
}

/// Whole calendar months from `from_ms` to `to_ms` (Unix milliseconds,
/// UTC): 0 until the same day and time of the next month, and so on; 0 when
/// `to_ms` is not after `from_ms`. A binding on the 31st reaches its first
/// month on the 1st of the month after a shorter one (Jan 31 → Mar 1).
pub fn whole_months(from_ms: u64, to_ms: u64) -> u32 {
    if to_ms <= from_ms {
        return 0;
    }
    let (fy, fm, f_rest) = civil(from_ms);
    let (ty, tm, t_rest) = civil(to_ms);
    let months = (ty - fy) * 12 + (i64::from(tm) - i64::from(fm));
    let months = if t_rest < f_rest { months - 1 } else { months };
    u32::try_from(months.max(0)).unwrap_or(u32::MAX)
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

    /// Checks every payout (not negative, at most 4 decimal places, amounts
    /// up to 1 000 000 000, percents up to 100) and that no two entries
    /// match the same conversion. Field names are those of the JSON form,
    /// e.g. `by_tier[1].payout.percent`.
    pub fn validate(&self) -> Result<(), FieldError> {
        check_payout("default", &self.default)?;
        for (i, e) in self.by_event.iter().enumerate() {
            let field = format!("by_event[{i}]");
            check_event(&format!("{field}.event"), Some(&e.event))?;
            check_payout(&format!("{field}.payout"), &e.payout)?;
            if self.by_event[..i].iter().any(|p| p.event == e.event) {
                return Err(FieldError::new(&field, "repeats an event"));
            }
        }
        for (i, t) in self.by_tier.iter().enumerate() {
            let field = format!("by_tier[{i}]");
            if t.tier.is_empty() {
                return Err(FieldError::new(
                    &format!("{field}.tier"),
                    "must not be empty",
                ));
            }
            check_event(&format!("{field}.event"), t.event.as_deref())?;
            check_payout(&format!("{field}.payout"), &t.payout)?;
            if self.by_tier[..i]
                .iter()
                .any(|p| p.tier == t.tier && p.event == t.event)
            {
                return Err(FieldError::new(&field, "repeats a tier and event"));
            }
        }
        for (i, p) in self.by_partner.iter().enumerate() {
            let field = format!("by_partner[{i}]");
            check_event(&format!("{field}.event"), p.event.as_deref())?;
            check_payout(&format!("{field}.payout"), &p.payout)?;
            if self.by_partner[..i]
                .iter()
                .any(|q| q.partner_id == p.partner_id && q.event == p.event)
            {
                return Err(FieldError::new(&field, "repeats a partner and event"));
            }
        }
        Ok(())
    }
}

impl Recurring {
    /// True when `sale` still pays under this rule.
    pub fn pays(self, sale: CustomerSale) -> bool {
        sale.first_sale
            || match self {
                Recurring::FirstSaleOnly => false,
                Recurring::FirstMonths { months } => sale.months_since_bound < months,
                Recurring::Lifetime => true,
            }
    }
}

/// The most specific payout for `input`, and its rule.
fn select<'t>(terms: &'t PayoutTerms, input: &PayoutInput<'_>) -> (&'t Payout, PayoutRule) {
    let event = input.event;
    let for_partner = |want_event: bool| {
        terms.by_partner.iter().find(|p| {
            p.partner_id == input.partner_id && p.event.as_deref() == want_event.then_some(event)
        })
    };
    for want_event in [true, false] {
        if let Some(p) = for_partner(want_event) {
            let rule = PayoutRule::Partner {
                partner_id: p.partner_id,
                event: p.event.clone(),
            };
            return (&p.payout, rule);
        }
    }
    if let Some(tier) = input.tier {
        for want_event in [true, false] {
            let found = terms
                .by_tier
                .iter()
                .find(|t| t.tier == tier && t.event.as_deref() == want_event.then_some(event));
            if let Some(t) = found {
                let rule = PayoutRule::Tier {
                    tier: t.tier.clone(),
                    event: t.event.clone(),
                };
                return (&t.payout, rule);
            }
        }
    }
    if let Some(e) = terms.by_event.iter().find(|e| e.event == event) {
        return (&e.payout, PayoutRule::OfferEvent(e.event.clone()));
    }
    (&terms.default, PayoutRule::Offer)
}

/// Checks one payout; `prefix` names it in the JSON form (`default`,
/// `by_tier[0].payout`).
fn check_payout(prefix: &str, payout: &Payout) -> Result<(), FieldError> {
    let (name, value, max) = match payout {
        Payout::Cpa { amount } | Payout::Cpl { amount } => ("amount", amount, MAX_AMOUNT),
        Payout::Cps { percent } => ("percent", percent, MAX_PERCENT),
    };
    let field = format!("{prefix}.{name}");
    if value.is_sign_negative() && !value.is_zero() {
        return Err(FieldError::new(&field, "must not be negative"));
    }
    if *value > Decimal::from(max) {
        return Err(FieldError::new(&field, format!("must be at most {max}")));
    }
    if value.scale() > PAYOUT_SCALE {
        return Err(FieldError::new(
            &field,
            "must have at most 4 decimal places",
        ));
    }
    Ok(())
}

/// Event names as the interface allows them: 1 to 64 of `[a-z0-9_.-]`.
fn check_event(field: &str, event: Option<&str>) -> Result<(), FieldError> {
    match event {
        Some(e)
            if e.is_empty()
                || e.len() > 64
                || !e.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b)
                }) =>
        {
            Err(FieldError::new(field, "must be 1 to 64 of a-z, 0-9, _ . -"))
        }
        _ => Ok(()),
    }
}

/// Year, month (1..=12) and the rest of the month in milliseconds (day and
/// time of day, comparable between months) of a Unix millisecond instant.
fn civil(ms: u64) -> (i64, u32, u64) {
    const DAY_MS: u64 = 86_400_000;
    let days = i64::try_from(ms / DAY_MS).unwrap_or(i64::MAX / 2);
    let rest_of_day = ms % DAY_MS;
    // Howard Hinnant's days-to-civil, for days since 1970-01-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5; // 0-based day of the month
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are small and non-negative by construction.
    let month = u32::try_from(month).unwrap_or(1);
    let day = u64::try_from(day).unwrap_or(0);
    (year, month, day * DAY_MS + rest_of_day)
}

#[cfg(test)]
mod tests {
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
            serde_json::from_str(&serde_json::to_string(&t).expect("serializes"))
                .expect("round trip");
        assert_eq!(back, t);

        let minimal: PayoutTerms =
            serde_json::from_str(r#"{"default": {"model": "cpa", "amount": "5"}}"#)
                .expect("defaults");
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
}
