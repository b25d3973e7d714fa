//! Partners, offers and links: the catalog's entities, their JSON forms and
//! their validation. Pure: storage lives in `catalog`.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};

use crate::payout::{EventPayout, PartnerPayout, PayoutTerms, Recurring, TierPayout};
use crate::template::{self, Template, TemplateError, OFFER_MACROS, POSTBACK_MACROS};

/// Paths of the public listener that can never be link codes.
pub const RESERVED_CODES: &[&str] = &[
    "healthz", "readyz", "pixel", "postback", "metrics", "favicon", "robots", "partner", "apply",
];

mod visibility;

pub use crate::payout::Payout;
pub use crate::validation::FieldError;
pub use visibility::Visibility;

mod offer;
pub use offer::*;
mod subs;
pub use subs::{DefaultSubs, MAX_DEFAULT_SUB_LEN};

mod partner_status;
pub use partner_status::{
    check_reason, transition, MoveError, PartnerStatus, StatusChange, MAX_STATUS_CHANGES,
};

/// Whether an entity takes part in redirects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Redirects and records.
    #[default]
    Active,
    /// Stops redirecting (404 or fallback) until made active again.
    Paused,
}

/// What kind of partner this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PartnerKind {
    /// Promotes offers for commission.
    Affiliate,
    /// Refers customers.
    Referral,
    /// Resells.
    Reseller,
}

/// How a partner's postbacks are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PostbackFormat {
    /// `GET postback_url`, the conversion's facts in its macros.
    #[default]
    Get,
    /// `POST postback_url` (macros rendered as well) with the facts as a
    /// JSON body, signed in `X-Trackedge-Signature` by the partner's
    /// `webhook_secret`.
    Json,
}

/// A partner who promotes offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Partner {
    /// Assigned by the service.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// Affiliate, referral or reseller.
    pub kind: PartnerKind,
    /// Commission tier, free text (numbers are kept as text).
    #[serde(default, deserialize_with = "text_or_number")]
    pub tier: Option<String>,
    /// The partner's own postback URL, with macros.
    #[serde(default)]
    pub postback_url: Option<String>,
    /// `get` (the default): a GET of `postback_url`; `json`: a signed JSON
    /// POST to it.
    #[serde(default)]
    pub postback_format: PostbackFormat,
    /// Key of the HMAC in a JSON postback's `X-Trackedge-Signature`
    /// (generated; empty in partners created before it existed, until
    /// their next change).
    #[serde(default)]
    pub webhook_secret: String,
    /// `applied`, `active`, `rejected` or `suspended` (stored `paused`
    /// reads as `suspended`): only `active` partners' links redirect and
    /// their conversions count.
    #[serde(default)]
    pub status: PartnerStatus,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// Times its links were paused automatically (partner health), latest
    /// last; the most recent [`MAX_LINK_PAUSES`] are kept.
    #[serde(default)]
    pub link_pauses: Vec<LinkPause>,
    /// Tier changes made by the tier rules (`[tiers]`), latest last; the
    /// most recent [`MAX_TIER_CHANGES`] are kept.
    #[serde(default)]
    pub tier_history: Vec<TierChange>,
    /// RFC 3339 time since when the partner's results have been below its
    /// tier: it is demoted once `tiers.grace_days` have passed unless they
    /// recover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier_below_since: Option<String>,
    /// Contact email, as the application gave it (unique among
    /// applications, compared lower-cased); none for partners an admin
    /// created.
    #[serde(default)]
    pub email: Option<String>,
    /// The partner's website, from its application.
    #[serde(default)]
    pub website: Option<String>,
    /// How the partner promotes, in its own words, from its application.
    #[serde(default)]
    pub promotion: Option<String>,
    /// Its status changes, latest last, each with time and reason; the
    /// most recent [`MAX_STATUS_CHANGES`] are kept.
    #[serde(default)]
    pub status_changes: Vec<StatusChange>,
}

/// How many tier changes a partner's record keeps.
pub const MAX_TIER_CHANGES: usize = 50;

/// One change of a partner's tier by the tier rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TierChange {
    /// RFC 3339 time of the evaluation that made it.
    pub at: String,
    /// The tier before (none: the base).
    pub from: Option<String>,
    /// The tier after.
    pub to: Option<String>,
    /// `promotion` or `demotion`.
    pub kind: crate::partners::tiers::TierChangeKind,
    /// The facts and the rule, e.g. `promotion: 52 conversions in 90 days
    /// >= 50 (gold)`.
    pub reason: String,
}

/// How many automatic link pauses a partner's record keeps.
pub const MAX_LINK_PAUSES: usize = 20;

/// One automatic pause of a partner's links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LinkPause {
    /// RFC 3339 time of the pause.
    pub at: String,
    /// The links paused (those active then).
    pub link_ids: Vec<u64>,
    /// Why, e.g. `inactive: no_recent_click (90 days)`.
    pub reason: String,
}

/// A partner's tracked link to an offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Link {
    /// Assigned by the service; carried inside click ids.
    pub id: u64,
    /// The path of the tracking URL.
    pub code: String,
    /// Who promotes it.
    pub partner_id: u64,
    /// What it promotes.
    pub offer_id: u64,
    /// Active or paused.
    #[serde(default)]
    pub status: Status,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// Sub-ids its clicks get when the tracking URL carries none.
    #[serde(default, skip_serializing_if = "DefaultSubs::is_empty")]
    pub default_subs: DefaultSubs,
}

/// `POST /api/v1/partners`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPartner {
    /// See [`Partner::name`].
    pub name: String,
    /// See [`Partner::kind`].
    pub kind: PartnerKind,
    /// See [`Partner::tier`].
    #[serde(default, deserialize_with = "text_or_number")]
    pub tier: Option<String>,
    /// See [`Partner::postback_url`].
    #[serde(default)]
    pub postback_url: Option<String>,
    /// See [`Partner::postback_format`]; default `get`.
    #[serde(default)]
    pub postback_format: PostbackFormat,
    /// See [`Partner::status`]; default `active`.
    #[serde(default)]
    pub status: PartnerStatus,
}

/// `PATCH /api/v1/partners/{id}`: fields present are changed; an empty
/// `tier` or `postback_url` clears it.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerPatch {
    /// New display name.
    name: Option<String>,
    /// New kind.
    kind: Option<PartnerKind>,
    /// New tier; empty clears it.
    #[serde(default, deserialize_with = "text_or_number")]
    tier: Option<String>,
    /// New postback URL, with macros; empty clears it.
    postback_url: Option<String>,
    /// How postbacks are sent: `get` or `json`.
    postback_format: Option<PostbackFormat>,
    /// A new status, as the moves allow (`409` otherwise): `active` ⇄
    /// `suspended` (`paused` means `suspended`), `applied` → `active` or
    /// `rejected`, `rejected` → `active`.
    status: Option<PartnerStatus>,
    /// Why the status changes, kept in `status_changes`.
    reason: Option<String>,
}

impl PartnerPatch {
    /// The status asked for, if any, and the reason given for it.
    pub fn status_change(&self) -> Option<(PartnerStatus, &str)> {
        self.status
            .map(|s| (s, self.reason.as_deref().unwrap_or_default()))
    }
}

/// `POST /api/v1/links`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    /// See [`Link::partner_id`].
    pub partner_id: u64,
    /// See [`Link::offer_id`].
    pub offer_id: u64,
    /// A vanity code; generated when absent.
    #[serde(default)]
    pub code: Option<String>,
    /// See [`Link::status`].
    #[serde(default)]
    pub status: Status,
    /// See [`Link::default_subs`].
    #[serde(default)]
    pub default_subs: DefaultSubs,
}

/// `PATCH /api/v1/links/{id}`: only the status can change; the code and its
/// owners are fixed because click ids already handed out name the link.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkPatch {
    /// Active or paused.
    status: Option<Status>,
}

impl PartnerPatch {
    /// A change of the postback URL only (empty clears it), validated as
    /// any: what a partner may change of itself.
    pub fn postback_url(url: String) -> PartnerPatch {
        PartnerPatch {
            postback_url: Some(url),
            ..PartnerPatch::default()
        }
    }
}

impl LinkPatch {
    /// A change of status only.
    pub fn status(status: Status) -> LinkPatch {
        LinkPatch {
            status: Some(status),
        }
    }
}

/// Accepts `"2"` or `2` (or null) for a free-text field.
fn text_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(serde::de::Error::custom("expected a string or a number")),
    }
}

/// Checks a display name: 1 to 200 printable characters once trimmed.
pub(crate) fn check_name(name: &str) -> Result<(), FieldError> {
    let n = name.trim();
    if n.is_empty() {
        return Err(FieldError::new("name", "must not be empty"));
    }
    if n.chars().count() > 200 {
        return Err(FieldError::new("name", "must be at most 200 characters"));
    }
    if n.chars().any(char::is_control) {
        return Err(FieldError::new("name", "must not hold control characters"));
    }
    Ok(())
}

fn template_error(field: &str, e: TemplateError) -> FieldError {
    FieldError::new(field, e.to_string())
}

fn check_money(field: &str, d: &Decimal, max: Decimal) -> Result<(), FieldError> {
    if d.is_sign_negative() {
        return Err(FieldError::new(field, "must not be negative"));
    }
    if *d > max {
        return Err(FieldError::new(field, format!("must be at most {max}")));
    }
    if d.scale() > 4 {
        return Err(FieldError::new(field, "must have at most 4 decimal places"));
    }
    Ok(())
}

/// The claim key of a contact email: trimmed and lower-cased, so one
/// address is one applicant however it is capitalised.
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// True for an ISO 4217 code in use (three upper-case letters that name a
/// currency: `UDS` is refused).
pub fn is_currency(s: &str) -> bool {
    crate::currency::is_known(s)
}

impl Partner {
    /// A new partner from a create request, with its generated
    /// `webhook_secret`.
    pub fn create(
        id: u64,
        req: NewPartner,
        webhook_secret: String,
        now: String,
    ) -> Result<Partner, FieldError> {
        let p = Partner {
            id,
            name: req.name.trim().to_string(),
            kind: req.kind,
            tier: req.tier.filter(|t| !t.is_empty()),
            postback_url: req.postback_url.filter(|u| !u.is_empty()),
            postback_format: req.postback_format,
            webhook_secret,
            status: req.status,
            created_at: now,
            link_pauses: Vec::new(),
            tier_history: Vec::new(),
            tier_below_since: None,
            email: None,
            website: None,
            promotion: None,
            status_changes: Vec::new(),
        };
        p.validate()?;
        Ok(p)
    }

    /// This partner with `patch` applied, but for its status: a status
    /// change is a move ([`Partner::moved`]) the store makes with it.
    pub fn patched(&self, patch: PartnerPatch) -> Result<Partner, FieldError> {
        let mut p = self.clone();
        if let Some(v) = patch.name {
            p.name = v.trim().to_string();
        }
        if let Some(v) = patch.kind {
            p.kind = v;
        }
        if let Some(v) = patch.tier {
            p.tier = Some(v).filter(|t| !t.is_empty());
        }
        if let Some(v) = patch.postback_url {
            p.postback_url = Some(v).filter(|u| !u.is_empty());
        }
        if let Some(v) = patch.postback_format {
            p.postback_format = v;
        }
        if let Some(r) = &patch.reason {
            check_reason(r)?;
        }
        p.validate()?;
        Ok(p)
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), FieldError> {
        check_name(&self.name)?;
        if let Some(t) = &self.tier {
            if t.chars().count() > 64 || t.chars().any(char::is_control) {
                return Err(FieldError::new(
                    "tier",
                    "must be at most 64 printable characters",
                ));
            }
        }
        if let Some(u) = &self.postback_url {
            Template::parse(u, POSTBACK_MACROS).map_err(|e| template_error("postback_url", e))?;
        }
        Ok(())
    }
}

/// The secrets an offer is created with, generated by the store.
#[derive(Debug, Clone)]
pub struct GeneratedSecrets {
    /// See [`Offer::postback_token`].
    pub postback_token: String,
    /// See [`Offer::signing_secret`].
    pub signing_secret: String,
}

impl Link {
    /// This link with `patch` applied.
    pub fn patched(&self, patch: LinkPatch) -> Link {
        let mut l = self.clone();
        if let Some(v) = patch.status {
            l.status = v;
        }
        l
    }
}

/// Checks a vanity code.
pub fn check_code(code: &str) -> Result<(), FieldError> {
    if !template::is_valid_code(code) {
        return Err(FieldError::new(
            "code",
            "must be 1 to 32 characters of [0-9A-Za-z]",
        ));
    }
    if RESERVED_CODES.iter().any(|r| r.eq_ignore_ascii_case(code)) {
        return Err(FieldError::new("code", "is reserved for a built-in path"));
    }
    Ok(())
}

/// A new random link code: base62 of a random 47-bit number, so codes say
/// nothing about their neighbours.
pub fn random_code() -> String {
    // 62^7 <= n < 62^8 gives every code exactly 8 characters.
    let n = rand::random_range(3_521_614_606_208u64..218_340_105_584_896u64);
    base62::encode(n)
}

/// A new random postback token.
pub fn random_token() -> String {
    let n: u128 = rand::random();
    base62::encode(n)
}

#[cfg(test)]
mod tests;
