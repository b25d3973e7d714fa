//! Partner payments: what each partner earned, what is payable once the
//! offers' holds are over, what was paid and what is still owed
//! (`GET /api/v1/reports/payouts`), and recording a payment
//! (`POST /api/v1/partners/{id}/payouts`).
//!
//! Bottom up: [`balance`] is the decision, pure and table-tested (every
//! figure that bills someone comes from it, and a payment row records
//! why it pays what it pays); [`store`] reads its facts from ClickHouse
//! and records payments; [`bonuses`] reads and records the bonuses the
//! tier round awards (`partner_bonuses`), which the decision counts as
//! earnings held 0 days. Not to be confused with [`crate::payout`], what
//! one conversion pays.

pub mod balance;
pub mod bonuses;
pub mod store;

pub use balance::{
    balances, payment_due, Balance, Earning, Payment, PaymentDue, Refusal, Source, Standing,
};
pub use bonuses::BonusRow;
pub use store::{PaymentRow, PaymentStore};

#[cfg(test)]
mod tests;
