//! `/api/v1/partners/{id}/keys`: partner API keys. A key's secret is
//! answered once, at creation, and stored only as its digest; listings
//! show everything else. A revoked key is refused by every node from the
//! moment the `DELETE` answered.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use tracing::info;
use utoipa::ToSchema;

use super::entities::ItemsPage;
use super::error::{parse, ApiError, ErrorBody};
use super::AdminState;
use crate::catalog::Kind;
use crate::model::Partner;
use crate::partner_api::{KeyRecord, PartnerStore};

/// `POST /api/v1/partners/{id}/keys`: an optional body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// What the key is for (`portal`, `reporting script`), at most 200
    /// characters.
    #[serde(default)]
    pub label: String,
}

/// A new key: its record and, this once, its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// The stored record.
    #[serde(flatten)]
    pub record: KeyRecord,
    /// The secret: `Authorization: Bearer <key>` on `/partner/v1/*`.
    /// Shown only now; store it, it cannot be read again.
    pub key: String,
}

/// Create a partner API key; its secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/partners/{id}/keys", tag = "partners",
    request_body(content = NewKey, description = "optional"),
    params(("id" = u64, Path, description = "partner id")),
    responses(
        (status = 201, description = "the key's record and its secret `key`", body = CreatedKey),
        (status = 400, description = "malformed JSON or an invalid field (named)", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "no such partner", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn create_key(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let req: NewKey = if body.iter().all(u8::is_ascii_whitespace) {
        NewKey::default()
    } else {
        parse(&body)?
    };
    let label = req.label.trim().to_string();
    if label.chars().count() > 200 || label.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "label",
            "must be at most 200 printable characters",
        ));
    }
    let catalog = s.catalog()?;
    let partner = catalog.get::<Partner>(partner_id(&id)?).await?;
    let (record, key) = PartnerStore::new(catalog)
        .create_key(partner.id, label)
        .await?;
    info!(
        partner = partner.id,
        key = record.id,
        "partner api key created"
    );
    Ok((StatusCode::CREATED, Json(CreatedKey { record, key })))
}

/// List a partner's API keys (never their secrets).
#[utoipa::path(get, path = "/api/v1/partners/{id}/keys", tag = "partners",
    params(("id" = u64, Path, description = "partner id")),
    responses(
        (status = 200, description = "every key of the partner, by id", body = ItemsPage<KeyRecord>),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "no such partner", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn list_keys(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Result<Json<ItemsPage<KeyRecord>>, ApiError> {
    let catalog = s.catalog()?;
    let partner = catalog.get::<Partner>(partner_id(&id)?).await?;
    Ok(Json(ItemsPage {
        items: PartnerStore::new(catalog).keys(partner.id).await?,
        next_cursor: None,
    }))
}

/// Revoke a partner API key: refused at once, on every node.
#[utoipa::path(delete, path = "/api/v1/partners/{id}/keys/{key_id}", tag = "partners",
    params(
        ("id" = u64, Path, description = "partner id"),
        ("key_id" = u64, Path, description = "key id"),
    ),
    responses(
        (status = 204, description = "revoked"),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "no such key of this partner", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn revoke_key(
    State(s): State<Arc<AdminState>>,
    Path((id, key_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let partner = partner_id(&id)?;
    let missing = || {
        ApiError::not_found(
            format!("partner {id} has no key {key_id:?}"),
            Some("key_id"),
        )
    };
    let key: u64 = key_id.parse().map_err(|_| missing())?;
    if !PartnerStore::new(s.catalog()?)
        .revoke_key(partner, key)
        .await?
    {
        return Err(missing());
    }
    info!(partner, key, "partner api key revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// A partner id from the path.
fn partner_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::not_found(
            format!("no {} with id {raw:?}", Kind::Partner.singular()),
            Some("id"),
        )
    })
}
