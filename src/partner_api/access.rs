//! Who may promote an offer: the offer's visibility and the partner's
//! grant decide it, in one pure function with one table of cases.
//!
//! | visibility | no grant | requested | approved | rejected, revoked |
//! | --- | --- | --- | --- | --- |
//! | `public` | open | open | open | open |
//! | `approval` | requestable | requested | granted | refused |
//! | `private` | hidden | hidden | granted | hidden |
//!
//! Only `open` and `granted` may promote (create links; their links stay
//! active). A `hidden` offer does not exist for the partner: asked by id,
//! it answers `404` like an unknown one.

use serde::{Deserialize, Serialize};

use crate::model::Visibility;

/// A grant's state, as the admin and the partner see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GrantStatus {
    /// The partner asked; an admin has not decided yet.
    Requested,
    /// An admin approved the request, or granted access unasked.
    Approved,
    /// An admin turned the request down.
    Rejected,
    /// An admin took an approved access back.
    Revoked,
}

impl GrantStatus {
    /// Its name in JSON and in query filters.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Requested => "requested",
            GrantStatus::Approved => "approved",
            GrantStatus::Rejected => "rejected",
            GrantStatus::Revoked => "revoked",
        }
    }

    /// The status named `s`.
    pub fn parse(s: &str) -> Option<GrantStatus> {
        [
            GrantStatus::Requested,
            GrantStatus::Approved,
            GrantStatus::Rejected,
            GrantStatus::Revoked,
        ]
        .into_iter()
        .find(|g| g.as_str() == s)
    }
}

/// One partner's standing with one offer, kept whatever the offer's
/// visibility (so a change of visibility needs no new decisions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Grant {
    /// The offer.
    pub offer_id: u64,
    /// The partner.
    pub partner_id: u64,
    /// Where it stands.
    pub status: GrantStatus,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
    /// The partner's note with a request, or the admin's with a decision.
    #[serde(default)]
    pub note: String,
}

/// What a partner may do with an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Public: promote it.
    Open,
    /// Approved or granted: promote it.
    Granted,
    /// Needs approval, not asked yet: ask.
    Requestable,
    /// Asked; waiting for an admin.
    Requested,
    /// Rejected or revoked: no links, no new request.
    Refused,
    /// Private and not granted: the offer does not exist for this partner.
    Hidden,
}

impl Access {
    /// Whether the partner may create links to the offer and keep them
    /// active.
    pub fn may_promote(self) -> bool {
        matches!(self, Access::Open | Access::Granted)
    }

    /// Whether the partner may see the offer at all.
    pub fn visible(self) -> bool {
        self != Access::Hidden
    }
}

/// What a partner holding `grant` may do with an offer of `visibility`.
pub fn access(visibility: Visibility, grant: Option<GrantStatus>) -> Access {
    use GrantStatus as G;
    match (visibility, grant) {
        (Visibility::Public, _) => Access::Open,
        (_, Some(G::Approved)) => Access::Granted,
        (Visibility::Approval, None) => Access::Requestable,
        (Visibility::Approval, Some(G::Requested)) => Access::Requested,
        (Visibility::Approval, Some(G::Rejected | G::Revoked)) => Access::Refused,
        (Visibility::Private, _) => Access::Hidden,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use GrantStatus as G;
    use Visibility as V;

    fn check(visibility: V, grant: Option<G>, expected: Access) {
        assert_eq!(
            access(visibility, grant),
            expected,
            "{visibility:?} {grant:?}"
        );
    }

    #[test]
    fn the_table() {
        for g in [
            None,
            Some(G::Requested),
            Some(G::Approved),
            Some(G::Rejected),
            Some(G::Revoked),
        ] {
            check(V::Public, g, Access::Open);
        }
        check(V::Approval, None, Access::Requestable);
        check(V::Approval, Some(G::Requested), Access::Requested);
        check(V::Approval, Some(G::Approved), Access::Granted);
        check(V::Approval, Some(G::Rejected), Access::Refused);
        check(V::Approval, Some(G::Revoked), Access::Refused);
        check(V::Private, None, Access::Hidden);
        check(V::Private, Some(G::Requested), Access::Hidden);
        check(V::Private, Some(G::Approved), Access::Granted);
        check(V::Private, Some(G::Rejected), Access::Hidden);
        check(V::Private, Some(G::Revoked), Access::Hidden);
    }

    #[test]
    fn only_open_and_granted_promote_and_only_hidden_is_invisible() {
        use Access::*;
        for (a, promote, visible) in [
            (Open, true, true),
            (Granted, true, true),
            (Requestable, false, true),
            (Requested, false, true),
            (Refused, false, true),
            (Hidden, false, false),
        ] {
            assert_eq!((a.may_promote(), a.visible()), (promote, visible), "{a:?}");
        }
    }

    #[test]
    fn statuses_round_trip_by_name() {
        for g in [G::Requested, G::Approved, G::Rejected, G::Revoked] {
            assert_eq!(G::parse(g.as_str()), Some(g));
            assert_eq!(serde_json::to_value(g).unwrap(), g.as_str());
        }
        assert_eq!(G::parse("granted"), None);
    }
}
