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
//!
//! [`Decimal`]: rust_decimal::Decimal

mod months;
mod rules;
mod terms;
mod validate;

pub use months::whole_months;
pub use rules::{compute, CustomerSale, PayoutDecision, PayoutInput, PayoutRule};
pub use terms::{
    EventPayout, PartnerPayout, Payout, PayoutTerms, Recurring, TierPayout, PAYOUT_SCALE,
};

#[cfg(test)]
mod tests;
