//! The checks an offer's payout terms pass before they are stored.

use rust_decimal::Decimal;

use super::terms::{Payout, PayoutTerms, PAYOUT_SCALE};
use crate::validation::FieldError;

/// The largest fixed amount terms may hold, as for an offer's own payout.
const MAX_AMOUNT: i64 = 1_000_000_000;
/// The largest percent terms may hold.
const MAX_PERCENT: i64 = 100;

impl PayoutTerms {
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
