//! The money decision, pure: from conversions in their latest state and
//! the payments made, what each partner earned, what is payable, what was
//! paid and what is still owed; and what a new payment pays, or why it
//! pays nothing.
//!
//! Everything is a balance over all time, in whole UTC days: an approved
//! conversion of day `d` whose offer holds `h` days is payable through day
//! `D` when `d + h <= D` (its hold is over by the end of `D`). Payable is
//! what *stands* approved now, so a conversion reversed after it was paid
//! is payable no more while its payment stays in `paid`: owed goes
//! negative by it and the next payment is that much smaller (carried
//! forward). No reversal time is needed for that, which is as well: a
//! status change keeps the conversion's own `ts`.
//!
//! A bonus (`partner_bonuses`) is an earning too: approved, held 0 days,
//! of the UTC day it was earned as of; it is counted in the `bonuses`
//! figure instead of `approved`, and in payable and owed like any other.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use rust_decimal::Decimal;

/// A conversion's latest status, as far as money goes (rejected and
/// duplicate ones pay nothing and are not read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Earned: payable once its hold is over.
    Approved,
    /// Awaiting review: not payable yet, maybe never.
    Pending,
    /// Clawed back: not payable; if it was paid, owed goes negative by it.
    Reversed,
}

impl Standing {
    /// The `status` column's text, or `None` for a status that pays
    /// nothing.
    pub fn parse(status: &str) -> Option<Standing> {
        match status {
            "approved" => Some(Standing::Approved),
            "pending" => Some(Standing::Pending),
            "reversed" => Some(Standing::Reversed),
            _ => None,
        }
    }
}

/// What an [`Earning`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Conversions' payouts.
    Conversion,
    /// A bonus (always [`Standing::Approved`], held 0 days).
    Bonus,
}

/// Conversions in their latest state, of one partner, payout currency,
/// standing, UTC day and hold, summed (one conversion is a group of one:
/// the decision is the same either way); or one bonus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Earning {
    /// Conversions or a bonus.
    pub source: Source,
    /// The credited partner.
    pub partner_id: u64,
    /// The payout's currency (the offer's).
    pub currency: String,
    /// Their latest status.
    pub standing: Standing,
    /// The UTC day of their `ts`.
    pub day: NaiveDate,
    /// Their offer's `hold_days`.
    pub hold_days: u32,
    /// Whether their `ts` is inside the report's range (the activity
    /// figures count only those; balances count all).
    pub in_range: bool,
    /// Their payouts' sum.
    pub payout: Decimal,
}

/// A payment made (a `partner_payments` row), as far as balances go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// Who was paid.
    pub partner_id: u64,
    /// In what.
    pub currency: String,
    /// The last UTC day it paid for.
    pub paid_through: NaiveDate,
    /// How much.
    pub amount: Decimal,
}

/// One partner's figures in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    /// The partner.
    pub partner_id: u64,
    /// The currency of every figure.
    pub currency: String,
    /// Payout of the range's conversions that stand approved.
    pub approved: Decimal,
    /// Payout of the range's conversions that stand pending.
    pub pending: Decimal,
    /// Payout of the range's conversions that stand reversed.
    pub reversed: Decimal,
    /// The range's bonuses (by the day each was earned).
    pub bonuses: Decimal,
    /// Approved, any day, whose hold is not over by `through`.
    pub on_hold: Decimal,
    /// Approved, any day, whose hold is over by `through`.
    pub payable: Decimal,
    /// Every payment's amount.
    pub paid: Decimal,
    /// `payable - paid`: negative when a paid conversion was reversed.
    pub owed: Decimal,
    /// The latest payment's `paid_through`, if any.
    pub paid_through: Option<NaiveDate>,
}

impl Balance {
    fn new(partner_id: u64, currency: &str) -> Balance {
        Balance {
            partner_id,
            currency: currency.to_string(),
            approved: Decimal::ZERO,
            pending: Decimal::ZERO,
            reversed: Decimal::ZERO,
            bonuses: Decimal::ZERO,
            on_hold: Decimal::ZERO,
            payable: Decimal::ZERO,
            paid: Decimal::ZERO,
            owed: Decimal::ZERO,
            paid_through: None,
        }
    }

    /// Whether any figure is not zero (all-zero rows are left out).
    fn any(&self) -> bool {
        [
            self.approved,
            self.pending,
            self.reversed,
            self.bonuses,
            self.on_hold,
            self.payable,
            self.paid,
        ]
        .iter()
        .any(|d| !d.is_zero())
    }
}

/// Whether an approved conversion of `day` held `hold_days` is payable
/// through `through`: its hold is over by the end of that day.
pub fn released(day: NaiveDate, hold_days: u32, through: NaiveDate) -> bool {
    day.checked_add_days(Days::new(u64::from(hold_days)))
        .is_some_and(|free| free <= through)
}

/// Every partner's figures in every currency, by partner and currency,
/// with balances through the end of UTC day `through`; rows where every
/// figure is zero are left out.
pub fn balances(earnings: &[Earning], payments: &[Payment], through: NaiveDate) -> Vec<Balance> {
    let mut out: BTreeMap<(u64, &str), Balance> = BTreeMap::new();
    for e in earnings {
        let b = out
            .entry((e.partner_id, &e.currency))
            .or_insert_with(|| Balance::new(e.partner_id, &e.currency));
        if e.in_range {
            match (e.source, e.standing) {
                (Source::Bonus, _) => b.bonuses += e.payout,
                (_, Standing::Approved) => b.approved += e.payout,
                (_, Standing::Pending) => b.pending += e.payout,
                (_, Standing::Reversed) => b.reversed += e.payout,
            }
        }
        if e.standing == Standing::Approved {
            if released(e.day, e.hold_days, through) {
                b.payable += e.payout;
            } else {
                b.on_hold += e.payout;
            }
        }
    }
    for p in payments {
        let b = out
            .entry((p.partner_id, &p.currency))
            .or_insert_with(|| Balance::new(p.partner_id, &p.currency));
        b.paid += p.amount;
        b.paid_through = b.paid_through.max(Some(p.paid_through));
    }
    out.into_values()
        .map(|mut b| {
            b.owed = b.payable - b.paid;
            b
        })
        .filter(Balance::any)
        .collect()
}

/// What a new payment pays, and why: `amount = payable - paid_before`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentDue {
    /// What to pay.
    pub amount: Decimal,
    /// Approved payout whose hold is over by `paid_through`, all days.
    pub payable: Decimal,
    /// The earlier payments' sum in this currency.
    pub paid_before: Decimal,
}

/// Why a payment pays nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `paid_through` is today or later: what is payable through a day is
    /// known only once it is over.
    #[error("paid_through {through} is not over yet: pay through {latest} (yesterday, UTC) at the latest")]
    DayNotOver {
        /// The day asked for.
        through: NaiveDate,
        /// Yesterday.
        latest: NaiveDate,
    },
    /// An earlier payment went further: paying through an earlier day
    /// again would muddle what was paid for.
    #[error("partner {partner_id} is already paid in {currency} through {last}: paid_through must not be earlier")]
    BeforeLastPayment {
        /// The partner.
        partner_id: u64,
        /// The currency.
        currency: String,
        /// The latest payment's `paid_through`.
        last: NaiveDate,
    },
    /// Nothing (or less than nothing, after a reversal) is owed.
    #[error("nothing is owed to partner {partner_id} in {currency} through {through}: payable {payable}, already paid {paid}")]
    NothingOwed {
        /// The partner.
        partner_id: u64,
        /// The currency.
        currency: String,
        /// The day asked for.
        through: NaiveDate,
        /// Payable through it.
        payable: Decimal,
        /// Paid before.
        paid: Decimal,
    },
}

/// What paying `partner_id` in `currency` through `through` pays, given
/// `today` (UTC); a payment pays what is owed through that day, all of
/// it, or is refused.
pub fn payment_due(
    earnings: &[Earning],
    payments: &[Payment],
    partner_id: u64,
    currency: &str,
    through: NaiveDate,
    today: NaiveDate,
) -> Result<PaymentDue, Refusal> {
    if through >= today {
        return Err(Refusal::DayNotOver {
            through,
            latest: today.pred_opt().unwrap_or(today),
        });
    }
    let mine = |id: u64, cur: &str| id == partner_id && cur == currency;
    let earlier: Vec<&Payment> = payments
        .iter()
        .filter(|p| mine(p.partner_id, &p.currency))
        .collect();
    if let Some(last) = earlier.iter().map(|p| p.paid_through).max() {
        if through < last {
            return Err(Refusal::BeforeLastPayment {
                partner_id,
                currency: currency.to_string(),
                last,
            });
        }
    }
    let payable: Decimal = earnings
        .iter()
        .filter(|e| mine(e.partner_id, &e.currency))
        .filter(|e| e.standing == Standing::Approved && released(e.day, e.hold_days, through))
        .map(|e| e.payout)
        .sum();
    let paid_before: Decimal = earlier.iter().map(|p| p.amount).sum();
    let amount = payable - paid_before;
    if amount <= Decimal::ZERO {
        return Err(Refusal::NothingOwed {
            partner_id,
            currency: currency.to_string(),
            through,
            payable,
            paid: paid_before,
        });
    }
    Ok(PaymentDue {
        amount,
        payable,
        paid_before,
    })
}
