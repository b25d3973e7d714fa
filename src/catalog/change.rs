//! One change to the catalog: what the store publishes, the change channel
//! carries and the route cache applies. Plain data, so the route cache can
//! take changes without knowing where they came from.

use serde::{Deserialize, Serialize};

use crate::model::{Link, Offer, Partner};

/// A change published on the channel: the entity's new state, or `None`
/// when it was deleted.
// An offer is larger than a link; changes are rare messages passed by
// value once each, so boxing would buy nothing but an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Change {
    /// A partner changed.
    Partner {
        /// Its id.
        id: u64,
        /// Its new state.
        data: Option<Partner>,
    },
    /// An offer changed.
    Offer {
        /// Its id.
        id: u64,
        /// Its new state.
        data: Option<Offer>,
    },
    /// A link changed.
    Link {
        /// Its id.
        id: u64,
        /// Its new state.
        data: Option<Link>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_messages_round_trip() {
        let ch = Change::Link { id: 5, data: None };
        let text = serde_json::to_string(&ch).unwrap();
        assert_eq!(text, r#"{"kind":"link","id":5,"data":null}"#);
        assert!(matches!(
            serde_json::from_str::<Change>(&text).unwrap(),
            Change::Link { id: 5, data: None }
        ));
    }
}
