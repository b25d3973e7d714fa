//! `/api/v1/{partners,offers,links}`: create, list, read, change, delete.
//!
//! Each handler is a thin, documented shell (its OpenAPI entry is generated
//! from the attribute above it) over the generic helpers at the end.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::applications::{list_by_status, status_filter, PartnerListQuery};
use super::error::{ApiError, ApiJson, ErrorBody};
use super::AdminState;
use crate::catalog::{Entity, Kind};
use crate::model::{
    Link, LinkPatch, NewLink, NewOffer, NewPartner, Offer, OfferPatch, Partner, PartnerPatch,
};

/// Default and largest page size of a listing.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// One page of a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemsPage<T> {
    /// The entities, oldest first.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// A link as the API shows it: the stored link and its tracking URL.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkView {
    /// The stored link.
    #[serde(flatten)]
    pub link: Link,
    /// The URL partners share: `public_url` + `/` + code.
    pub tracking_url: String,
}

/// Paging of a listing, as documented; [`page_params`] reads the raw query
/// itself so that each bad value is named with the API's error shape.
#[allow(dead_code)] // read only by the OpenAPI derive
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1 to 1000; default 100.
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

type Created<T> = Result<(StatusCode, Json<T>), ApiError>;
type Answer<T> = Result<Json<T>, ApiError>;

/// Create a partner; the answer carries its generated `webhook_secret`.
#[utoipa::path(post, path = "/api/v1/partners", tag = "partners", request_body = NewPartner,
    responses(
        (status = 201, description = "the partner, with its id and webhook_secret", body = Partner),
        (status = 400, description = "malformed JSON or an invalid field (named)", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 413, description = "body larger than http.max_body_bytes", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn create_partner(
    State(s): State<Arc<AdminState>>,
    ApiJson(body): ApiJson<NewPartner>,
) -> Created<Partner> {
    let p = s.catalog()?.create_partner(body).await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// List partners; `status=applied` lists the applications waiting for an
/// admin.
#[utoipa::path(get, path = "/api/v1/partners", tag = "partners", params(PartnerListQuery),
    responses(
        (status = 200, description = "a page of partners", body = ItemsPage<Partner>),
        (status = 400, description = "invalid limit, cursor or status (named)", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn list_partners(
    State(s): State<Arc<AdminState>>,
    RawQuery(q): RawQuery,
) -> Answer<ItemsPage<Partner>> {
    match status_filter(q.as_deref())? {
        Some(status) => list_by_status(&s, q.as_deref(), status).await,
        None => list::<Partner, _>(&s, q, Ok).await,
    }
}

/// Read a partner.
#[utoipa::path(get, path = "/api/v1/partners/{id}", tag = "partners",
    params(("id" = u64, Path, description = "partner id")),
    responses(
        (status = 200, description = "the partner", body = Partner),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "no such partner", body = ErrorBody),
        (status = 500, description = "the stored partner does not decode (named)", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn get_partner(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Answer<Partner> {
    let id = parse_id(Kind::Partner, &id)?;
    Ok(Json(s.catalog()?.get::<Partner>(id).await?))
}

/// Change a partner: the fields present are changed. A new `status` is a
/// move (`active` ⇄ `suspended`, `applied` → `active` or `rejected`,
/// `rejected` → `active`), recorded with `reason` in `status_changes`.
#[utoipa::path(patch, path = "/api/v1/partners/{id}", tag = "partners", request_body = PartnerPatch,
    params(("id" = u64, Path, description = "partner id")),
    responses(
        (status = 200, description = "the changed partner", body = Partner),
        (status = 400, description = "malformed JSON or an invalid field (named)", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "no such partner", body = ErrorBody),
        (status = 409, description = "`invalid_transition`: the status move is not allowed", body = ErrorBody),
        (status = 413, description = "body larger than http.max_body_bytes", body = ErrorBody),
        (status = 500, description = "the stored partner does not decode (named)", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn patch_partner(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PartnerPatch>,
) -> Answer<Partner> {
    let id = parse_id(Kind::Partner, &id)?;
    Ok(Json(s.catalog()?.patch_partner(id, body).await?))
}

/// Delete a partner.
#[utoipa::path(delete, path = "/api/v1/partners/{id}", tag = "partners",
    params(("id" = u64, Path, description = "partner id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "no such partner", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn delete_partner(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete(&s, Kind::Partner, &id).await
}

/// Create an offer; the answer carries its generated `postback_token`.
#[utoipa::path(post, path = "/api/v1/offers", tag = "offers", request_body = NewOffer,
    responses(
        (status = 201, description = "the offer, with its id and postback_token", body = Offer),
        (status = 400, description = "malformed JSON or an invalid field (named)", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 413, description = "body larger than http.max_body_bytes", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn create_offer(
    State(s): State<Arc<AdminState>>,
    ApiJson(body): ApiJson<NewOffer>,
) -> Created<Offer> {
    let o = s.catalog()?.create_offer(body).await?;
    Ok((StatusCode::CREATED, Json(o)))
}

/// List offers.
#[utoipa::path(get, path = "/api/v1/offers", tag = "offers", params(ListQuery),
    responses(
        (status = 200, description = "a page of offers", body = ItemsPage<Offer>),
        (status = 400, description = "invalid limit or cursor (named)", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn list_offers(
    State(s): State<Arc<AdminState>>,
    RawQuery(q): RawQuery,
) -> Answer<ItemsPage<Offer>> {
    list::<Offer, _>(&s, q, Ok).await
}

/// Read an offer.
#[utoipa::path(get, path = "/api/v1/offers/{id}", tag = "offers",
    params(("id" = u64, Path, description = "offer id")),
    responses(
        (status = 200, description = "the offer", body = Offer),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "no such offer", body = ErrorBody),
        (status = 500, description = "the stored offer does not decode (named)", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn get_offer(State(s): State<Arc<AdminState>>, Path(id): Path<String>) -> Answer<Offer> {
    let id = parse_id(Kind::Offer, &id)?;
    Ok(Json(s.catalog()?.get::<Offer>(id).await?))
}

/// Change an offer: the fields present are changed.
#[utoipa::path(patch, path = "/api/v1/offers/{id}", tag = "offers", request_body = OfferPatch,
    params(("id" = u64, Path, description = "offer id")),
    responses(
        (status = 200, description = "the changed offer", body = Offer),
        (status = 400, description = "malformed JSON or an invalid field (named)", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "no such offer", body = ErrorBody),
        (status = 413, description = "body larger than http.max_body_bytes", body = ErrorBody),
        (status = 500, description = "the stored offer does not decode (named)", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn patch_offer(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<OfferPatch>,
) -> Answer<Offer> {
    let id = parse_id(Kind::Offer, &id)?;
    let catalog = s.catalog()?;
    let before = catalog.get::<Offer>(id).await?.visibility;
    let offer = catalog.patch_offer(id, body).await?;
    // Partners that could promote the offer and no longer may lose their
    // links on it; the offer stands changed either way.
    let store = crate::partner_api::PartnerStore::new(catalog);
    if let Err(e) =
        crate::partner_api::enforce::after_visibility_change(catalog, &store, &offer, before).await
    {
        tracing::error!(offer = id, error = %e, "offer visibility changed but links of partners without access not all paused");
        return Err(ApiError::unavailable(format!(
            "the offer was changed, but pausing the links of partners that lost access failed ({e}): \
             pause them by PATCH /api/v1/links/{{id}}, or revoke each partner's access"
        )));
    }
    Ok(Json(offer))
}

/// Delete an offer.
#[utoipa::path(delete, path = "/api/v1/offers/{id}", tag = "offers",
    params(("id" = u64, Path, description = "offer id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "no such offer", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn delete_offer(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete(&s, Kind::Offer, &id).await
}

/// Create a link; without `code`, an 8-character code is generated.
#[utoipa::path(post, path = "/api/v1/links", tag = "links", request_body = NewLink,
    responses(
        (status = 201, description = "the link, with its code and tracking_url", body = LinkView),
        (status = 400, description = "malformed JSON or an invalid field (named)", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 409, description = "the vanity code is taken", body = ErrorBody),
        (status = 413, description = "body larger than http.max_body_bytes", body = ErrorBody),
        (status = 422, description = "unknown partner_id or offer_id (named)", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn create_link(
    State(s): State<Arc<AdminState>>,
    ApiJson(body): ApiJson<NewLink>,
) -> Created<LinkView> {
    let l = s.catalog()?.create_link(body).await?;
    Ok((StatusCode::CREATED, Json(s.link_view(l))))
}

/// List links.
#[utoipa::path(get, path = "/api/v1/links", tag = "links", params(ListQuery),
    responses(
        (status = 200, description = "a page of links", body = ItemsPage<LinkView>),
        (status = 400, description = "invalid limit or cursor (named)", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn list_links(
    State(s): State<Arc<AdminState>>,
    RawQuery(q): RawQuery,
) -> Answer<ItemsPage<LinkView>> {
    list::<Link, _>(&s, q, |l| Ok(s.link_view(l))).await
}

/// Read a link.
#[utoipa::path(get, path = "/api/v1/links/{id}", tag = "links",
    params(("id" = u64, Path, description = "link id")),
    responses(
        (status = 200, description = "the link", body = LinkView),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "no such link", body = ErrorBody),
        (status = 500, description = "the stored link does not decode (named)", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn get_link(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Answer<LinkView> {
    let id = parse_id(Kind::Link, &id)?;
    let l = s.catalog()?.get::<Link>(id).await?;
    Ok(Json(s.link_view(l)))
}

/// Change a link's status (its code and owners are fixed: click ids
/// already handed out name the link). A paused link stops redirecting at
/// once on this node and within a second on every node.
#[utoipa::path(patch, path = "/api/v1/links/{id}", tag = "links", request_body = LinkPatch,
    params(("id" = u64, Path, description = "link id")),
    responses(
        (status = 200, description = "the changed link", body = LinkView),
        (status = 400, description = "malformed JSON or an invalid field (named)", body = ErrorBody),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "no such link", body = ErrorBody),
        (status = 413, description = "body larger than http.max_body_bytes", body = ErrorBody),
        (status = 500, description = "the stored link does not decode (named)", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn patch_link(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<LinkPatch>,
) -> Answer<LinkView> {
    let id = parse_id(Kind::Link, &id)?;
    let l = s.catalog()?.patch_link(id, body).await?;
    Ok(Json(s.link_view(l)))
}

/// Delete a link: it stops redirecting at once on this node and within a
/// second on every node.
#[utoipa::path(delete, path = "/api/v1/links/{id}", tag = "links",
    params(("id" = u64, Path, description = "link id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, description = "missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "no such link", body = ErrorBody),
        (status = 503, description = "redis unavailable or the catalog still loading", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn delete_link(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete(&s, Kind::Link, &id).await
}

/// An id from the path; anything but a whole number names no entity.
pub(super) fn parse_id(kind: Kind, raw: &str) -> Result<u64, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::not_found(
            format!("no {} with id {raw:?}", kind.singular()),
            Some("id"),
        )
    })
}

/// `limit` and `cursor` from a query string.
pub(super) fn page_params(query: Option<&str>) -> Result<(usize, u64), ApiError> {
    let mut limit = DEFAULT_LIMIT;
    let mut cursor = 0u64;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => limit = n,
                _ => {
                    return Err(ApiError::invalid(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    ))
                }
            },
            "cursor" => {
                cursor = v.parse().map_err(|_| {
                    ApiError::invalid("cursor", "must be a next_cursor value from an earlier page")
                })?
            }
            _ => {}
        }
    }
    Ok((limit, cursor))
}

async fn list<T: Entity, V>(
    s: &AdminState,
    query: Option<String>,
    view: impl Fn(T) -> Result<V, ApiError>,
) -> Answer<ItemsPage<V>> {
    let (limit, cursor) = page_params(query.as_deref())?;
    let page = s.catalog()?.list::<T>(cursor, limit).await?;
    Ok(Json(ItemsPage {
        items: page.items.into_iter().map(view).collect::<Result<_, _>>()?,
        next_cursor: page.next_cursor,
    }))
}

async fn delete(s: &AdminState, kind: Kind, raw_id: &str) -> Result<StatusCode, ApiError> {
    let id = parse_id(kind, raw_id)?;
    s.catalog()?.delete(kind, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: Option<&str>, expected: Result<(usize, u64), &str>) {
        let got = page_params(query).map_err(|e| e.detail.field.unwrap_or_default());
        assert_eq!(got, expected.map_err(str::to_string), "{query:?}");
    }

    #[test]
    fn paging_parameters() {
        check(None, Ok((100, 0)));
        check(Some("limit=5&cursor=42"), Ok((5, 42)));
        check(Some("limit=1000&other=x"), Ok((1000, 0)));
        check(Some("limit=0"), Err("limit"));
        check(Some("limit=1001"), Err("limit"));
        check(Some("limit=ten"), Err("limit"));
        check(Some("cursor=-1"), Err("cursor"));
    }
}
