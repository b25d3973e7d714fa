//! Offer access: the requests partners make for offers that need
//! approval, and the admin's decisions and grants (approval and private
//! offers alike). Losing access pauses the partner's links on the offer
//! (`partner_api::enforce`), noted with the reason in its `link_pauses`.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use tracing::info;
use utoipa::{IntoParams, ToSchema};

use super::entities::ItemsPage;
use super::error::{ApiError, ApiJson, ErrorBody};
use super::AdminState;
use crate::catalog::{now_rfc3339, Catalog, StoreError};
use crate::model::{Offer, Partner};
use crate::partner_api::access::{Grant, GrantStatus};
use crate::partner_api::{enforce, PartnerStore};

/// An admin's decision on a partner's access to an offer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// `approved` (grants access, asked for or not) or `rejected`.
    pub status: Decided,
    /// Why, for the partner to read; at most 1000 characters.
    #[serde(default)]
    pub note: String,
}

/// What a decision may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decided {
    /// Access granted.
    Approved,
    /// Request turned down.
    Rejected,
}

/// A grant as changed, and the links the change paused.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantChange {
    /// The grant now.
    #[serde(flatten)]
    pub grant: Grant,
    /// Links of the partner on the offer paused because it lost access.
    pub paused_link_ids: Vec<u64>,
}

/// The query of the request listings, as documented.
#[allow(dead_code)] // read only by the OpenAPI derive
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GrantsQuery {
    /// Only grants in this state: `requested`, `approved`, `rejected` or
    /// `revoked` (`/api/v1/access-requests`: default `requested`).
    pub status: Option<String>,
}

/// Every partner's grant or request for one offer.
#[utoipa::path(get, path = "/api/v1/offers/{id}/access", tag = "offers", params(
        ("id" = u64, Path, description = "offer id"), GrantsQuery),
    responses(
        (status = 200, description = "the offer's grants, by partner id", body = ItemsPage<Grant>),
        (status = 400, description = "an invalid status (named)", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "no such offer", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn list_offer_access(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<ItemsPage<Grant>>, ApiError> {
    let status = status_filter(q.as_deref(), None)?;
    let catalog = s.catalog()?;
    let offer = catalog.get::<Offer>(path_id("offer", "id", &id)?).await?;
    let items = PartnerStore::new(catalog)
        .grants_of_offer(offer.id)
        .await?
        .into_iter()
        .filter(|g| status.is_none_or(|s| g.status == s))
        .collect();
    Ok(Json(ItemsPage {
        items,
        next_cursor: None,
    }))
}

/// Access requests across every offer, waiting ones by default: the
/// admin's inbox.
#[utoipa::path(get, path = "/api/v1/access-requests", tag = "offers", params(GrantsQuery),
    responses(
        (status = 200, description = "grants in that state, by offer then partner", body = ItemsPage<Grant>),
        (status = 400, description = "an invalid status (named)", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn list_access_requests(
    State(s): State<Arc<AdminState>>,
    RawQuery(q): RawQuery,
) -> Result<Json<ItemsPage<Grant>>, ApiError> {
    let status = status_filter(q.as_deref(), Some(GrantStatus::Requested))?;
    let catalog = s.catalog()?;
    let store = PartnerStore::new(catalog);
    let mut items = Vec::new();
    let mut cursor = 0;
    loop {
        let page = catalog.list::<Offer>(cursor, 1000).await?;
        for o in &page.items {
            items.extend(
                store
                    .grants_of_offer(o.id)
                    .await?
                    .into_iter()
                    .filter(|g| status.is_none_or(|s| g.status == s)),
            );
        }
        match page.next_cursor.and_then(|c| c.parse().ok()) {
            Some(next) => cursor = next,
            None => break,
        }
    }
    Ok(Json(ItemsPage {
        items,
        next_cursor: None,
    }))
}

/// Decide a partner's access to an offer: approve (a request, or grant
/// unasked, as for private offers) or reject. Rejecting an approved access
/// pauses the partner's links on the offer.
#[utoipa::path(put, path = "/api/v1/offers/{id}/access/{partner_id}", tag = "offers",
    request_body = Decision,
    params(
        ("id" = u64, Path, description = "offer id"),
        ("partner_id" = u64, Path, description = "partner id"),
    ),
    responses(
        (status = 200, description = "the grant now, and the links paused", body = GrantChange),
        (status = 400, description = "malformed JSON or an invalid field (named)", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "no such offer or partner (named)", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn decide_access(
    State(s): State<Arc<AdminState>>,
    Path((id, partner)): Path<(String, String)>,
    ApiJson(body): ApiJson<Decision>,
) -> Result<Json<GrantChange>, ApiError> {
    if body.note.chars().count() > 1000 {
        return Err(ApiError::invalid("note", "must be at most 1000 characters"));
    }
    let status = match body.status {
        Decided::Approved => GrantStatus::Approved,
        Decided::Rejected => GrantStatus::Rejected,
    };
    change(&s, &id, &partner, status, body.note).await.map(Json)
}

/// Revoke a partner's access to an offer: its links there are paused
/// (unless the offer is public: then access was never the grant's).
#[utoipa::path(delete, path = "/api/v1/offers/{id}/access/{partner_id}", tag = "offers",
    params(
        ("id" = u64, Path, description = "offer id"),
        ("partner_id" = u64, Path, description = "partner id"),
    ),
    responses(
        (status = 200, description = "the grant now (`revoked`), and the links paused", body = GrantChange),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "no such offer or partner, or no grant to revoke (named)", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn revoke_access(
    State(s): State<Arc<AdminState>>,
    Path((id, partner)): Path<(String, String)>,
) -> Result<Json<GrantChange>, ApiError> {
    change(&s, &id, &partner, GrantStatus::Revoked, String::new())
        .await
        .map(Json)
}

/// Sets partner `partner`'s grant for offer `id` to `status`, then pauses
/// its links there if it lost access.
async fn change(
    s: &AdminState,
    id: &str,
    partner: &str,
    status: GrantStatus,
    note: String,
) -> Result<GrantChange, ApiError> {
    let catalog = s.catalog()?;
    let offer = catalog.get::<Offer>(path_id("offer", "id", id)?).await?;
    let partner_id = path_id("partner", "partner_id", partner)?;
    exists_partner(catalog, partner_id).await?;
    let store = PartnerStore::new(catalog);
    if status == GrantStatus::Revoked && store.grant(partner_id, offer.id).await?.is_none() {
        return Err(ApiError::not_found(
            format!(
                "partner {partner_id} has no grant for offer {} to revoke",
                offer.id
            ),
            Some("partner_id"),
        ));
    }
    let grant = Grant {
        offer_id: offer.id,
        partner_id,
        status,
        updated_at: now_rfc3339(),
        note,
    };
    let before = store.put_grant(&grant).await?.map(|g| g.status);
    info!(
        offer = offer.id,
        partner = partner_id,
        status = status.as_str(),
        "offer access changed"
    );
    let paused =
        enforce::after_grant_change(catalog, &offer, partner_id, before, Some(status)).await?;
    Ok(GrantChange {
        grant,
        paused_link_ids: paused,
    })
}

async fn exists_partner(catalog: &Catalog, id: u64) -> Result<(), ApiError> {
    match catalog.get::<Partner>(id).await {
        Ok(_) => Ok(()),
        Err(StoreError::NotFound(_)) => Err(ApiError::not_found(
            format!("no partner with id {id}"),
            Some("partner_id"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// An id from the path; anything but a whole number names nothing.
fn path_id(kind: &str, field: &str, raw: &str) -> Result<u64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("no {kind} with id {raw:?}"), Some(field)))
}

/// The `status` filter of a listing (`any` for every state).
fn status_filter(
    query: Option<&str>,
    default: Option<GrantStatus>,
) -> Result<Option<GrantStatus>, ApiError> {
    let mut status = default;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "status" if v == "any" => status = None,
            "status" => {
                status = Some(GrantStatus::parse(&v).ok_or_else(|| {
                    ApiError::invalid(
                        "status",
                        "must be requested, approved, rejected, revoked or any",
                    )
                })?)
            }
            other => {
                return Err(ApiError::invalid(
                    other,
                    "is not a parameter of this listing (known: status)",
                ))
            }
        }
    }
    Ok(status)
}
