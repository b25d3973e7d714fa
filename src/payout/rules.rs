//! What one conversion pays: the facts it depends on, the most specific
//! payout, the model's arithmetic and the rule that is recorded with it.

use std::borrow::Cow;
use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};

use super::terms::{Payout, PayoutTerms, Recurring, PAYOUT_SCALE};

/// The facts of a sale attributed through a customer binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustomerSale {
    /// True for the customer's first paid conversion on this offer.
    pub first_sale: bool,
    /// Whole calendar months since the customer was bound to the click
    /// (see [`whole_months`]).
    ///
    /// [`whole_months`]: crate::payout::whole_months
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

/// What one conversion pays under `terms`. See the [module doc] for the rules.
///
/// [module doc]: crate::payout
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
