//! `GET`, `POST /partner/v1/links` and `GET /partner/v1/links/{id}`: the
//! partner's own links; new ones only to offers it may promote.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use futures_util::future::try_join_all;
use serde::Deserialize;
use tracing::info;
use utoipa::{IntoParams, ToSchema};

use super::offers::promotable_offer;
use super::{Caller, PartnerState};
use crate::catalog::StoreError;
use crate::http::admin::entities::{ItemsPage, LinkView};
use crate::http::admin::{ApiError, ApiJson, ErrorBody};
use crate::model::{Link, NewLink, Status};
use crate::partner_api::access::access;
use crate::partner_api::enforce;

/// Default and largest page size of the listing.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// `POST /partner/v1/links`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerNewLink {
    /// An offer this partner may promote.
    pub offer_id: u64,
    /// A vanity code (1 to 32 of `[0-9A-Za-z]`); generated when absent.
    #[serde(default)]
    pub code: Option<String>,
    /// Sub-ids its clicks get when the shared URL carries none.
    #[serde(default)]
    pub default_subs: crate::model::DefaultSubs,
}

/// The listing's query, as documented.
#[allow(dead_code)] // read only by the OpenAPI derive
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinksQuery {
    /// Page size, 1 to 1000; default 100.
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only links to this offer.
    pub offer_id: Option<u64>,
}

/// The partner's links, oldest first. A link made on another node shows
/// here once this node has heard of it (within a second).
#[utoipa::path(get, path = "/partner/v1/links", tag = "links", params(LinksQuery),
    responses(
        (status = 200, description = "a page of the partner's links", body = ItemsPage<LinkView>),
        (status = 400, description = "an invalid or unknown parameter (named)", body = ErrorBody),
        (status = 401, description = "missing, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "the partner is not active", body = ErrorBody),
        (status = 429, description = "the key is over its rate (Retry-After)", body = ErrorBody),
        (status = 503, description = "redis unavailable", body = ErrorBody),
    ), security(("partner_key" = [])))]
pub async fn list_links(
    State(s): State<Arc<PartnerState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
) -> Result<Json<ItemsPage<LinkView>>, ApiError> {
    let (limit, cursor, offer) = params(q.as_deref())?;
    let catalog = s.catalog()?;
    let me = caller.partner_id();
    let ids: Vec<u64> = catalog
        .cache()
        .links_where(|p, o| p == me && offer.is_none_or(|want| want == o))
        .into_iter()
        .map(|l| l.link_id)
        .filter(|id| *id > cursor)
        .take(limit + 1)
        .collect();
    let more = ids.len() > limit;
    let ids = &ids[..ids.len().min(limit)];
    let found = try_join_all(ids.iter().map(|id| async move {
        match catalog.get::<Link>(*id).await {
            Ok(l) => Ok(Some(l)),
            // Deleted since the cache was read.
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }))
    .await?;
    Ok(Json(ItemsPage {
        items: found
            .into_iter()
            .flatten()
            .filter(|l| l.partner_id == me)
            .map(|l| view(&s, l))
            .collect(),
        next_cursor: more.then(|| ids.last().map(u64::to_string)).flatten(),
    }))
}

/// One of the partner's links.
#[utoipa::path(get, path = "/partner/v1/links/{id}", tag = "links",
    params(("id" = u64, Path, description = "link id")),
    responses(
        (status = 200, description = "the link", body = LinkView),
        (status = 401, description = "missing, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "the partner is not active", body = ErrorBody),
        (status = 404, description = "no such link of this partner", body = ErrorBody),
        (status = 429, description = "the key is over its rate (Retry-After)", body = ErrorBody),
        (status = 503, description = "redis unavailable", body = ErrorBody),
    ), security(("partner_key" = [])))]
pub async fn get_link(
    State(s): State<Arc<PartnerState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<LinkView>, ApiError> {
    let missing = || ApiError::not_found(format!("no link with id {id:?}"), Some("id"));
    let link_id: u64 = id.parse().map_err(|_| missing())?;
    match s.catalog()?.get::<Link>(link_id).await {
        Ok(l) if l.partner_id == caller.partner_id() => Ok(Json(view(&s, l))),
        Ok(_) | Err(StoreError::NotFound(_)) => Err(missing()),
        Err(e) => Err(e.into()),
    }
}

/// Create a link to an offer this partner may promote.
#[utoipa::path(post, path = "/partner/v1/links", tag = "links", request_body = PartnerNewLink,
    responses(
        (status = 201, description = "the link, with its code and tracking_url", body = LinkView),
        (status = 400, description = "malformed JSON or an invalid field (named)", body = ErrorBody),
        (status = 401, description = "missing, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "`access_required`: the offer needs an admin's approval (request it), \
            or access was rejected or revoked; `offer_paused`: no new links to it (field offer_id)", body = ErrorBody),
        (status = 404, description = "no such offer, or a private one not granted (field offer_id)", body = ErrorBody),
        (status = 409, description = "the vanity code is taken", body = ErrorBody),
        (status = 429, description = "the key is over its rate (Retry-After)", body = ErrorBody),
        (status = 503, description = "redis unavailable", body = ErrorBody),
    ), security(("partner_key" = [])))]
pub async fn create_link(
    State(s): State<Arc<PartnerState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<PartnerNewLink>,
) -> Result<(StatusCode, Json<LinkView>), ApiError> {
    let me = caller.partner_id();
    let (offer, _) = promotable_offer(&s, &caller, body.offer_id, "offer_id").await?;
    let catalog = s.catalog()?;
    let link = catalog
        .create_link(NewLink {
            partner_id: me,
            offer_id: offer.id,
            code: body.code,
            status: Status::Active,
            default_subs: body.default_subs,
        })
        .await?;
    // A revocation or visibility change that ran between the check above
    // and the link's creation did not see this link; looking again after
    // it closes the gap: either that change's pause found the link, or
    // this look finds the change.
    let now_offer = catalog.get::<crate::model::Offer>(offer.id).await?;
    let now_grant = s.store()?.grant(me, offer.id).await?;
    let link = if access(now_offer.visibility, now_grant.map(|g| g.status)).may_promote() {
        link
    } else {
        enforce::pause_links_on_offer(
            catalog,
            me,
            offer.id,
            &format!("access to offer {} lost while the link was made", offer.id),
        )
        .await?;
        catalog.get::<Link>(link.id).await?
    };
    info!(
        partner = me,
        link = link.id,
        offer = offer.id,
        key = caller.key_id,
        "partner created a link"
    );
    Ok((StatusCode::CREATED, Json(view(&s, link))))
}

fn view(s: &PartnerState, link: Link) -> LinkView {
    LinkView {
        tracking_url: format!("{}/{}", s.public_base, link.code),
        link,
    }
}

/// `limit`, `cursor` and `offer_id` of the listing.
fn params(query: Option<&str>) -> Result<(usize, u64, Option<u64>), ApiError> {
    let mut limit = DEFAULT_LIMIT;
    let mut cursor = 0;
    let mut offer = None;
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
            "offer_id" => {
                offer = Some(
                    v.parse()
                        .map_err(|_| ApiError::invalid("offer_id", "must be a whole number"))?,
                )
            }
            other => {
                return Err(ApiError::invalid(
                    other,
                    "is not a parameter of this listing (known: limit, cursor, offer_id)",
                ))
            }
        }
    }
    Ok((limit, cursor, offer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: Option<&str>, expected: Result<(usize, u64, Option<u64>), &str>) {
        let got = params(query).map_err(|e| e.detail.field.unwrap_or_default());
        assert_eq!(got, expected.map_err(str::to_string), "{query:?}");
    }

    #[test]
    fn listing_parameters() {
        check(None, Ok((100, 0, None)));
        check(Some("limit=5&cursor=42&offer_id=7"), Ok((5, 42, Some(7))));
        check(Some("limit=0"), Err("limit"));
        check(Some("limit=1001"), Err("limit"));
        check(Some("cursor=x"), Err("cursor"));
        check(Some("offer_id=-1"), Err("offer_id"));
        // A filter this listing does not know must not be ignored: it
        // would look like it worked.
        check(Some("partner_id=2"), Err("partner_id"));
    }
}
