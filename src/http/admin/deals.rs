//! `/api/v1/deals`: register a deal on a partner's behalf, list and read
//! deals, approve or reject one. Thin shells over [`crate::deals`], with
//! the admin as viewer; the partner API calls the same store with its
//! partner forced.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::entities::ItemsPage;
use super::error::{ApiError, ApiJson, ErrorBody};
use super::AdminState;
use crate::deals::{
    Deal, DealError, DealFilter, DealStatus, DealStore, NewDeal, Rejection, Viewer,
};

/// Default and largest page size of the listing.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// The listing's query, as documented; [`filter`] reads the raw query
/// itself so that each bad value is named with the API's error shape.
#[allow(dead_code)] // read only by the OpenAPI derive
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DealQuery {
    /// `pending`, `approved`, `rejected` or `expired`.
    pub status: Option<String>,
    /// Only this partner's deals.
    pub partner_id: Option<u64>,
    /// Only this offer's deals.
    pub offer_id: Option<u64>,
    /// Page size, 1 to 1000; default 100. A rare filter may answer a
    /// shorter page with a `next_cursor` to go on from.
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl From<DealError> for ApiError {
    fn from(e: DealError) -> ApiError {
        let msg = e.to_string();
        match e {
            DealError::Unavailable(_) => ApiError::unavailable(msg),
            DealError::NotFound => ApiError::not_found(msg, Some("id")),
            DealError::UnknownReference(f) => ApiError::not_found(f.message, Some(&f.field)),
            DealError::Invalid(f) => ApiError::invalid(&f.field, f.message),
            DealError::Protected { field, message, .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message, Some(field))
            }
            DealError::NotPending(_) => ApiError::new(
                StatusCode::CONFLICT,
                "invalid_transition",
                msg,
                Some("status"),
            ),
            DealError::Corrupt { .. } => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "corrupt_entity",
                msg,
                None,
            ),
        }
    }
}

/// Register a deal on a partner's behalf: it is `pending` until approved.
#[utoipa::path(post, path = "/api/v1/deals", tag = "deals", request_body = NewDeal,
    responses(
        (status = 201, description = "the pending deal, with its id", body = Deal),
        (status = 400, description = "malformed JSON or an invalid field (named)", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "unknown partner_id or offer_id (named)", body = ErrorBody),
        (status = 409, description = "an approved deal already protects the prospect; the message gives the date it ends", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn create_deal(
    State(s): State<Arc<AdminState>>,
    ApiJson(body): ApiJson<NewDeal>,
) -> Result<(StatusCode, Json<Deal>), ApiError> {
    let catalog = s.catalog()?;
    let (partner_id, req) = body.split();
    let deal = DealStore::new(catalog)
        .register(catalog, partner_id, req)
        .await?;
    Ok((StatusCode::CREATED, Json(deal)))
}

/// List deals, oldest first; `expired` is an approved deal whose
/// protection has ended.
#[utoipa::path(get, path = "/api/v1/deals", tag = "deals", params(DealQuery),
    responses(
        (status = 200, description = "a page of deals", body = ItemsPage<Deal>),
        (status = 400, description = "invalid filter, limit or cursor (named)", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn list_deals(
    State(s): State<Arc<AdminState>>,
    RawQuery(q): RawQuery,
) -> Result<Json<ItemsPage<Deal>>, ApiError> {
    let f = filter(q.as_deref())?;
    let page = DealStore::new(s.catalog()?).list(&f, Viewer::Admin).await?;
    Ok(Json(ItemsPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// Read a deal.
#[utoipa::path(get, path = "/api/v1/deals/{id}", tag = "deals",
    params(("id" = u64, Path, description = "deal id")),
    responses(
        (status = 200, description = "the deal", body = Deal),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "no such deal", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn get_deal(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Result<Json<Deal>, ApiError> {
    let id = deal_id(&id)?;
    let deal = DealStore::new(s.catalog()?).get(id, Viewer::Admin).await?;
    Ok(Json(deal))
}

/// Approve a pending deal: its partner is credited with the prospect's
/// conversions on the offer until `protected_until` (the offer's
/// `deal_protection_days` from now). The first approved deal of a
/// prospect wins, on every node at once.
#[utoipa::path(post, path = "/api/v1/deals/{id}/approve", tag = "deals",
    params(("id" = u64, Path, description = "deal id")),
    responses(
        (status = 200, description = "the approved deal", body = Deal),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "no such deal, or its offer is gone (named)", body = ErrorBody),
        (status = 409, description = "`conflict`: another approved deal protects the prospect (the message gives the date it ends); `invalid_transition`: the deal is not pending", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn approve_deal(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Result<Json<Deal>, ApiError> {
    let id = deal_id(&id)?;
    let catalog = s.catalog()?;
    let deal = DealStore::new(catalog).approve(catalog, id).await?;
    Ok(Json(deal))
}

/// Reject a pending deal, with a reason the partner sees.
#[utoipa::path(post, path = "/api/v1/deals/{id}/reject", tag = "deals", request_body = Rejection,
    params(("id" = u64, Path, description = "deal id")),
    responses(
        (status = 200, description = "the rejected deal", body = Deal),
        (status = 400, description = "malformed JSON or a missing or invalid reason", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "no such deal", body = ErrorBody),
        (status = 409, description = "`invalid_transition`: the deal is not pending", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn reject_deal(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Rejection>,
) -> Result<Json<Deal>, ApiError> {
    let id = deal_id(&id)?;
    let deal = DealStore::new(s.catalog()?)
        .reject(id, &body.reason)
        .await?;
    Ok(Json(deal))
}

/// An id from the path; anything but a whole number names no deal.
pub(crate) fn deal_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("no deal with id {raw:?}"), Some("id")))
}

/// The listing's filters and page from a query string (the partner API's
/// listing reads it too, with its partner forced).
pub(crate) fn filter(query: Option<&str>) -> Result<DealFilter, ApiError> {
    let mut f = DealFilter {
        limit: DEFAULT_LIMIT,
        ..DealFilter::default()
    };
    let whole = |name: &str, v: &str| {
        v.parse::<u64>()
            .map_err(|_| ApiError::invalid(name, "must be a whole number"))
    };
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "status" => {
                f.status = Some(DealStatus::parse(&v).ok_or_else(|| {
                    ApiError::invalid("status", "must be pending, approved, rejected or expired")
                })?)
            }
            "partner_id" => f.partner_id = Some(whole("partner_id", &v)?),
            "offer_id" => f.offer_id = Some(whole("offer_id", &v)?),
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => f.limit = n,
                _ => {
                    return Err(ApiError::invalid(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    ))
                }
            },
            "cursor" => {
                f.cursor = v.parse().map_err(|_| {
                    ApiError::invalid("cursor", "must be a next_cursor value from an earlier page")
                })?
            }
            _ => {}
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: &str, expected: Result<DealFilter, &str>) {
        let got = filter(Some(query)).map_err(|e| e.detail.field.unwrap_or_default());
        assert_eq!(got, expected.map_err(str::to_string), "{query}");
    }

    #[test]
    fn listing_filters() {
        let base = DealFilter {
            limit: DEFAULT_LIMIT,
            ..DealFilter::default()
        };
        check("", Ok(base.clone()));
        check(
            "status=expired&partner_id=4&offer_id=5&limit=10&cursor=7",
            Ok(DealFilter {
                status: Some(DealStatus::Expired),
                partner_id: Some(4),
                offer_id: Some(5),
                limit: 10,
                cursor: 7,
            }),
        );
        check("status=won", Err("status"));
        check("partner_id=x", Err("partner_id"));
        check("offer_id=-1", Err("offer_id"));
        check("limit=0", Err("limit"));
        check("cursor=z", Err("cursor"));
    }
}
