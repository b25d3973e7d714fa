//! The status changes the admin API allows after the decision.

use super::output::Status;

/// A status change the admin API refuses (`409`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("status cannot change from {from} to {to}")]
pub struct TransitionError {
    /// The conversion's current status.
    pub from: Status,
    /// The status asked for.
    pub to: Status,
}

/// Whether the admin API may move a conversion from `from` to `to`:
/// pending → approved or rejected, approved → reversed; nothing else, not
/// even to the same status.
pub fn transition(from: Status, to: Status) -> Result<(), TransitionError> {
    match (from, to) {
        (Status::Pending, Status::Approved | Status::Rejected)
        | (Status::Approved, Status::Reversed) => Ok(()),
        _ => Err(TransitionError { from, to }),
    }
}
