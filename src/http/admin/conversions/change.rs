//! A status change's rules (see the [module doc](super)): which reasons a
//! change may give, and the version it appends. Pure.

use axum::http::StatusCode;

use super::ledger::Stored;
use super::models::{StatusChange, Target};
use crate::attribution::{transition, Reason, Status};
use crate::events::Money;
use crate::http::admin::error::ApiError;

/// Longest reversal reason, in bytes.
pub(super) const MAX_REASON_LEN: usize = 256;

impl StatusChange {
    /// The body's rules that do not depend on the conversion.
    pub(super) fn check(&self) -> Result<(), ApiError> {
        let reason = self.reason.as_deref();
        let allowed: &[Reason] = match self.status {
            Target::Approved => &[Reason::Ok, Reason::DealRegistration],
            Target::Rejected => &[
                Reason::ManualReview,
                Reason::InvalidClickId,
                Reason::Expired,
                Reason::TooFast,
                Reason::OfferMismatch,
                Reason::PartnerInactive,
                Reason::BotClick,
                Reason::CapReached,
                Reason::UnknownCustomer,
            ],
            Target::Reversed => {
                return match reason {
                    Some(r) if !r.is_empty() && r.len() <= MAX_REASON_LEN => Ok(()),
                    _ => Err(ApiError::invalid(
                        "reason",
                        format!(
                            "a reversal needs a reason: any text of 1 to {MAX_REASON_LEN} bytes"
                        ),
                    )),
                };
            }
        };
        match reason {
            None => Ok(()),
            Some(r) if allowed.iter().any(|a| a.as_str() == r) => Ok(()),
            Some(r) => Err(ApiError::invalid(
                "reason",
                format!(
                    "reason {r:?} is not one for {}: use one of {}",
                    self.status.status(),
                    allowed
                        .iter()
                        .map(|a| a.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
}

impl Target {
    fn status(self) -> Status {
        match self {
            Target::Approved => Status::Approved,
            Target::Rejected => Status::Rejected,
            Target::Reversed => Status::Reversed,
        }
    }
}

/// The version `change` appends to `current` (a checked change): pure.
pub(super) fn next_version(current: &Stored, change: &StatusChange) -> Result<Stored, ApiError> {
    let to = change.status.status();
    let from = Status::ALL
        .into_iter()
        .find(|s| s.as_str() == current.status);
    let Some(from) = from else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_transition",
            format!("status cannot change from {:?}", current.status),
            Some("status"),
        ));
    };
    transition(from, to).map_err(|e| {
        ApiError::new(
            StatusCode::CONFLICT,
            "invalid_transition",
            e.to_string(),
            Some("status"),
        )
    })?;
    let given = change.reason.clone();
    let mut next = current.clone();
    match change.status {
        Target::Approved => {
            let default = if current.attribution == "deal" {
                Reason::DealRegistration
            } else {
                Reason::Ok
            };
            next.reason = given.unwrap_or_else(|| default.as_str().into());
        }
        Target::Rejected => {
            next.reason = given.unwrap_or_else(|| Reason::ManualReview.as_str().into());
            next.payout = Money::ZERO;
            next.payout_rule = String::new();
        }
        // check() made sure there is one.
        Target::Reversed => next.reason = given.unwrap_or_default(),
    }
    next.status = to.as_str().into();
    next.version = current.version + 1;
    Ok(next)
}
