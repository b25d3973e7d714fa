//! `GET`, `PATCH /partner/v1/me`: the partner the key belongs to; a
//! partner may change its own postback URL.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Caller, PartnerState};
use crate::http::admin::{ApiError, ApiJson, ErrorBody};
use crate::model::{LinkPause, Partner, PartnerKind, PartnerPatch, PostbackFormat, TierChange};

/// The partner as it sees itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct Profile {
    /// Its id.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// `affiliate`, `referral` or `reseller`.
    pub kind: PartnerKind,
    /// Commission tier, if any.
    pub tier: Option<String>,
    /// Its standing (only an active partner's keys are taken). Written
    /// from the partner's own status as stored, so this view follows the
    /// model's statuses without a list of its own.
    #[schema(value_type = String, example = "active")]
    pub status: serde_json::Value,
    /// Where conversions are announced, with macros.
    pub postback_url: Option<String>,
    /// `get` or `json` (a signed POST).
    pub postback_format: PostbackFormat,
    /// Key of the HMAC of JSON postbacks (`X-Trackedge-Signature`): check
    /// it to know a postback came from this tracker.
    pub webhook_secret: String,
    /// Times its links were paused automatically, and why, latest last.
    pub link_pauses: Vec<LinkPause>,
    /// Its tier's changes by the tier rules, and why (the facts and the
    /// rule), latest last: the partner sees what moved it.
    pub tier_history: Vec<TierChange>,
    /// RFC 3339 time since when its results have been below its tier:
    /// unless they recover, it is demoted once the grace period passes.
    /// Null when they are not below.
    pub tier_below_since: Option<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
}

impl From<&Partner> for Profile {
    fn from(p: &Partner) -> Profile {
        Profile {
            id: p.id,
            name: p.name.clone(),
            kind: p.kind,
            tier: p.tier.clone(),
            status: serde_json::to_value(p.status).unwrap_or_default(),
            postback_url: p.postback_url.clone(),
            postback_format: p.postback_format,
            webhook_secret: p.webhook_secret.clone(),
            link_pauses: p.link_pauses.clone(),
            tier_history: p.tier_history.clone(),
            tier_below_since: p.tier_below_since.clone(),
            created_at: p.created_at.clone(),
        }
    }
}

/// What a partner may change of itself.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    /// New postback URL, with macros (`{click_id}`, `{conversion_id}`,
    /// `{order_id}`, `{payout}`, `{currency}`, `{status}`, `{event}`,
    /// `{offer_id}`, `{partner_id}`, `{sub1}`…`{sub5}`); empty clears it.
    pub postback_url: String,
}

/// The partner this key belongs to.
#[utoipa::path(get, path = "/partner/v1/me", tag = "profile",
    responses(
        (status = 200, description = "the partner", body = Profile),
        (status = 401, description = "missing, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "the partner is not active", body = ErrorBody),
        (status = 429, description = "the key is over its rate (Retry-After)", body = ErrorBody),
        (status = 503, description = "redis unavailable", body = ErrorBody),
    ), security(("partner_key" = [])))]
pub async fn get_me(Extension(caller): Extension<Caller>) -> Json<Profile> {
    Json(Profile::from(caller.partner.as_ref()))
}

/// Change the partner's postback URL (validated as the admin API does).
#[utoipa::path(patch, path = "/partner/v1/me", tag = "profile", request_body = ProfilePatch,
    responses(
        (status = 200, description = "the changed partner", body = Profile),
        (status = 400, description = "malformed JSON, an unknown field, or an invalid postback_url (named)", body = ErrorBody),
        (status = 401, description = "missing, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "the partner is not active", body = ErrorBody),
        (status = 429, description = "the key is over its rate (Retry-After)", body = ErrorBody),
        (status = 503, description = "redis unavailable", body = ErrorBody),
    ), security(("partner_key" = [])))]
pub async fn patch_me(
    State(s): State<Arc<PartnerState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<ProfilePatch>,
) -> Result<Json<Profile>, ApiError> {
    let p = s
        .catalog()?
        .patch_partner(
            caller.partner_id(),
            PartnerPatch::postback_url(body.postback_url),
        )
        .await?;
    Ok(Json(Profile::from(&p)))
}
