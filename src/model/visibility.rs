//! Which partners an offer is shown to, and who decides.

use serde::{Deserialize, Serialize};

/// Which partners may promote an offer. The rule that reads it, with the
/// partner's grant, is [`crate::partner_api::access`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Every active partner may promote it.
    #[default]
    Public,
    /// Partners see it and ask for access; an admin approves or rejects.
    Approval,
    /// Only partners an admin granted access see it.
    Private,
}

impl Visibility {
    /// Its name in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Approval => "approval",
            Visibility::Private => "private",
        }
    }
}
