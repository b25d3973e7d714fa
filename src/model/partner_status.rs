//! A partner's standing in the program, the moves between standings an
//! admin may make (pure, table-tested), and the record each move leaves
//! in the partner.
//!
//! Only an `active` partner acts: its links redirect and its conversions
//! count. Every other status stops both, so [`Partner::is_active`] is the
//! one question the redirect cache, the conversion intake and partner
//! health ask.

use serde::{Deserialize, Serialize};

use super::{FieldError, Partner};

/// Where a partner stands.
///
/// Records written before partner statuses existed say `paused`: it reads
/// as `suspended` (the same effect: links stop, conversions are rejected),
/// and `PATCH {"status": "paused"}` still suspends.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PartnerStatus {
    /// Applied through `POST /apply`; waits for an admin (or was not
    /// auto-approved). Its links do not redirect.
    Applied,
    /// In the program: links redirect, conversions count.
    #[default]
    Active,
    /// The application was turned down.
    Rejected,
    /// Stopped by an admin: links stop, conversions are rejected
    /// `partner_inactive`.
    #[serde(alias = "paused")]
    Suspended,
}

impl PartnerStatus {
    /// The name the API and the records use.
    pub fn as_str(self) -> &'static str {
        match self {
            PartnerStatus::Applied => "applied",
            PartnerStatus::Active => "active",
            PartnerStatus::Rejected => "rejected",
            PartnerStatus::Suspended => "suspended",
        }
    }
}

impl std::fmt::Display for PartnerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many status changes a partner's record keeps, latest last.
pub const MAX_STATUS_CHANGES: usize = 50;

/// Longest reason a status change takes, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// One change of a partner's status, kept in its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusChange {
    /// RFC 3339 time of the change.
    pub at: String,
    /// The status before.
    pub from: PartnerStatus,
    /// The status after.
    pub to: PartnerStatus,
    /// Why, as the admin gave it (or `auto_approve: <kind>`); may be empty.
    pub reason: String,
}

/// A status change the table does not allow (answered `409`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("status cannot move from {from} to {to}")]
pub struct MoveError {
    /// The partner's status now.
    pub from: PartnerStatus,
    /// The status asked for.
    pub to: PartnerStatus,
}

/// Whether a partner may move from `from` to `to`.
///
/// - `applied` → `active` (approved) or `rejected`;
/// - `active` ⇄ `suspended`;
/// - `rejected` → `active`: an admin who turned an applicant down by
///   mistake approves after all (the email stays claimed, so the
///   applicant cannot simply apply again);
/// - nothing goes back to `applied`, an applicant is never suspended (it
///   never acted), and an active or suspended partner is never
///   `rejected` (that is the answer to an application, not a sanction).
///
/// Staying put is not a move: callers treat it as a no-op.
pub fn transition(from: PartnerStatus, to: PartnerStatus) -> Result<(), MoveError> {
    use PartnerStatus::*;
    match (from, to) {
        (Applied, Active | Rejected) | (Active, Suspended) | (Suspended, Active) => Ok(()),
        (Rejected, Active) => Ok(()),
        _ => Err(MoveError { from, to }),
    }
}

/// Checks the reason given with a status change.
pub fn check_reason(reason: &str) -> Result<(), FieldError> {
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(FieldError::new(
            "reason",
            format!("must be at most {MAX_REASON_CHARS} characters"),
        ));
    }
    if reason.chars().any(|c| c.is_control() && c != '\n') {
        return Err(FieldError::new(
            "reason",
            "must not hold control characters other than newlines",
        ));
    }
    Ok(())
}

impl Partner {
    /// Whether this partner acts: its links redirect and its conversions
    /// count. The one place that says so.
    pub fn is_active(&self) -> bool {
        self.status == PartnerStatus::Active
    }

    /// This partner moved to `to` at `at` (RFC 3339), the change recorded
    /// with `reason`; unchanged (and nothing recorded) when it is there
    /// already.
    pub fn moved(&self, to: PartnerStatus, reason: &str, at: &str) -> Result<Partner, MoveError> {
        let mut p = self.clone();
        if to == self.status {
            return Ok(p);
        }
        transition(self.status, to)?;
        p.status = to;
        p.status_changes.push(StatusChange {
            at: at.to_string(),
            from: self.status,
            to,
            reason: reason.trim().to_string(),
        });
        let excess = p.status_changes.len().saturating_sub(MAX_STATUS_CHANGES);
        p.status_changes.drain(..excess);
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PartnerKind;
    use PartnerStatus::*;

    const ALL: [PartnerStatus; 4] = [Applied, Active, Rejected, Suspended];

    #[test]
    fn moves() {
        // (from, to, allowed); staying put is left to `moved`.
        let allowed = [
            (Applied, Active),
            (Applied, Rejected),
            (Active, Suspended),
            (Suspended, Active),
            (Rejected, Active),
        ];
        for from in ALL {
            for to in ALL {
                let expected = if allowed.contains(&(from, to)) {
                    Ok(())
                } else {
                    Err(MoveError { from, to })
                };
                assert_eq!(transition(from, to), expected, "{from} -> {to}");
            }
        }
    }

    fn partner(status: PartnerStatus) -> Partner {
        Partner {
            id: 1,
            name: "p".into(),
            kind: PartnerKind::Affiliate,
            tier: None,
            postback_url: None,
            postback_format: Default::default(),
            webhook_secret: String::new(),
            status,
            created_at: "t".into(),
            link_pauses: Vec::new(),
            tier_history: Vec::new(),
            tier_below_since: None,
            email: None,
            website: None,
            promotion: None,
            status_changes: Vec::new(),
        }
    }

    #[test]
    fn a_move_is_recorded_and_staying_is_not() {
        let p = partner(Applied);
        let q = p
            .moved(Active, " looks good ", "2030-01-01T00:00:00Z")
            .unwrap();
        assert!(q.is_active());
        assert_eq!(
            q.status_changes,
            [StatusChange {
                at: "2030-01-01T00:00:00Z".into(),
                from: Applied,
                to: Active,
                reason: "looks good".into(),
            }]
        );
        assert_eq!(q.moved(Active, "again", "later").unwrap(), q);
        assert_eq!(
            q.moved(Rejected, "", "later").unwrap_err().to_string(),
            "status cannot move from active to rejected"
        );
    }

    #[test]
    fn only_active_acts() {
        let acting: Vec<_> = ALL.iter().filter(|s| partner(**s).is_active()).collect();
        assert_eq!(acting, [&Active]);
    }

    #[test]
    fn the_record_keeps_the_latest_changes() {
        let mut p = partner(Active);
        for i in 0..MAX_STATUS_CHANGES + 3 {
            let to = if p.is_active() { Suspended } else { Active };
            p = p.moved(to, &i.to_string(), "t").unwrap();
        }
        assert_eq!(p.status_changes.len(), MAX_STATUS_CHANGES);
        let last = MAX_STATUS_CHANGES + 2;
        assert_eq!(p.status_changes.last().unwrap().reason, last.to_string());
    }

    #[test]
    fn old_records_say_paused() {
        let s: PartnerStatus = serde_json::from_str("\"paused\"").unwrap();
        assert_eq!(s, Suspended);
        for s in ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn reasons() {
        assert!(check_reason("spam traffic\nsee ticket 4").is_ok());
        assert_eq!(check_reason("a\u{7}").unwrap_err().field, "reason");
        assert!(check_reason(&"x".repeat(MAX_REASON_CHARS)).is_ok());
        assert_eq!(
            check_reason(&"x".repeat(MAX_REASON_CHARS + 1))
                .unwrap_err()
                .field,
            "reason"
        );
    }
}
