//! `GET`, `POST /partner/v1/deals` and `GET /partner/v1/deals/{id}`: the
//! partner registers its prospects and follows their approval. The admin
//! routes' store calls with [`Viewer::Partner`] forced, so another
//! partner's deal answers `404` as one that does not exist; new deals only
//! for offers the partner may promote (the rule of new links).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use tracing::info;
use utoipa::IntoParams;

use super::offers::promotable_offer;
use super::{Caller, PartnerState};
use crate::deals::{Deal, DealRequest, DealStore, Viewer};
use crate::http::admin::deals::{deal_id, filter};
use crate::http::admin::entities::ItemsPage;
use crate::http::admin::{ApiError, ApiJson, ErrorBody};

/// The listing's query, as documented.
#[allow(dead_code)] // read only by the OpenAPI derive
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PartnerDealQuery {
    /// `pending`, `approved`, `rejected` or `expired`.
    pub status: Option<String>,
    /// Only this offer's deals.
    pub offer_id: Option<u64>,
    /// Page size, 1 to 1000; default 100. A rare filter may answer a
    /// shorter page with a `next_cursor` to go on from.
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The partner's deals, oldest first; `expired` is an approved deal whose
/// protection has ended.
#[utoipa::path(get, path = "/partner/v1/deals", tag = "deals", params(PartnerDealQuery),
    responses(
        (status = 200, description = "a page of the partner's deals", body = ItemsPage<Deal>),
        (status = 400, description = "an invalid or unknown parameter (named)", body = ErrorBody),
        (status = 401, description = "missing, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "the partner is not active", body = ErrorBody),
        (status = 404, description = "partner_id names another partner", body = ErrorBody),
        (status = 429, description = "the key is over its rate (Retry-After)", body = ErrorBody),
        (status = 503, description = "redis unavailable", body = ErrorBody),
    ), security(("partner_key" = [])))]
pub async fn list_deals(
    State(s): State<Arc<PartnerState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
) -> Result<Json<ItemsPage<Deal>>, ApiError> {
    let me = caller.partner_id();
    check_query(q.as_deref(), me)?;
    let f = filter(q.as_deref())?;
    let page = DealStore::new(s.catalog()?)
        .list(&f, Viewer::Partner(me))
        .await?;
    Ok(Json(ItemsPage {
        // The store already keeps only the viewer's; this says so here too.
        items: page
            .items
            .into_iter()
            .filter(|d| d.partner_id == me)
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One of the partner's deals.
#[utoipa::path(get, path = "/partner/v1/deals/{id}", tag = "deals",
    params(("id" = u64, Path, description = "deal id")),
    responses(
        (status = 200, description = "the deal", body = Deal),
        (status = 401, description = "missing, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "the partner is not active", body = ErrorBody),
        (status = 404, description = "no such deal of this partner", body = ErrorBody),
        (status = 429, description = "the key is over its rate (Retry-After)", body = ErrorBody),
        (status = 503, description = "redis unavailable", body = ErrorBody),
    ), security(("partner_key" = [])))]
pub async fn get_deal(
    State(s): State<Arc<PartnerState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Deal>, ApiError> {
    let id = deal_id(&id)?;
    let deal = DealStore::new(s.catalog()?)
        .get(id, Viewer::Partner(caller.partner_id()))
        .await?;
    Ok(Json(deal))
}

/// Register a prospect for an offer the partner may promote: `pending`
/// until an admin approves it; once approved, the prospect's conversions
/// on the offer (matched by `customer_id` or email domain) are credited
/// to this partner until `protected_until`.
#[utoipa::path(post, path = "/partner/v1/deals", tag = "deals", request_body = DealRequest,
    responses(
        (status = 201, description = "the pending deal, with its id", body = Deal),
        (status = 400, description = "malformed JSON, an unknown field or an invalid one (named)", body = ErrorBody),
        (status = 401, description = "missing, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "`access_required`: the offer needs an admin's approval (request it), \
            or access was rejected or revoked; `offer_paused` (field offer_id); or the partner is not active", body = ErrorBody),
        (status = 404, description = "no such offer, or a private one not granted (field offer_id)", body = ErrorBody),
        (status = 409, description = "an approved deal already protects the prospect; the message gives the date it ends", body = ErrorBody),
        (status = 429, description = "the key is over its rate (Retry-After)", body = ErrorBody),
        (status = 503, description = "redis unavailable", body = ErrorBody),
    ), security(("partner_key" = [])))]
pub async fn create_deal(
    State(s): State<Arc<PartnerState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<DealRequest>,
) -> Result<(StatusCode, Json<Deal>), ApiError> {
    let me = caller.partner_id();
    // Unlike a link, a deal pays nothing until an admin approves it, so
    // an access lost after this check needs no second look: the admin
    // deciding sees the partner's standing.
    promotable_offer(&s, &caller, body.offer_id, "offer_id").await?;
    let catalog = s.catalog()?;
    let deal = DealStore::new(catalog).register(catalog, me, body).await?;
    info!(
        partner = me,
        deal = deal.id,
        offer = deal.offer_id,
        key = caller.key_id,
        "partner registered a deal"
    );
    Ok((StatusCode::CREATED, Json(deal)))
}

/// The listing's parameters this side adds a rule to: `partner_id` may
/// only name the caller (another is `404`, as for any of its ids), and a
/// parameter the listing does not know is `400` rather than ignored (it
/// would look like a filter that worked). The values are read by the
/// admin listing's [`filter`].
fn check_query(query: Option<&str>, me: u64) -> Result<(), ApiError> {
    const KNOWN: [&str; 5] = ["status", "offer_id", "limit", "cursor", "partner_id"];
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k == "partner_id" {
            let id: u64 = v
                .parse()
                .map_err(|_| ApiError::invalid("partner_id", "must be a whole number"))?;
            if id != me {
                return Err(ApiError::not_found(
                    format!("no partner with id {id}"),
                    Some("partner_id"),
                ));
            }
        } else if !KNOWN.contains(&k.as_ref()) {
            return Err(ApiError::invalid(
                &k,
                "is not a parameter of this listing (known: status, offer_id, limit, cursor)",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `query` for partner 7 → `Ok`, or the field of the error and its
    /// status.
    fn check(query: &str, expected: Result<(), (&str, u16)>) {
        let got = check_query(Some(query), 7).map_err(|e| {
            (
                e.detail.field.clone().unwrap_or_default(),
                e.status.as_u16(),
            )
        });
        let expected = expected.map_err(|(f, s)| (f.to_string(), s));
        assert_eq!(got, expected, "{query:?}");
    }

    #[test]
    fn only_the_callers_partner_id_and_known_parameters() {
        check("", Ok(()));
        check("status=pending&offer_id=3&limit=5&cursor=9", Ok(()));
        check("partner_id=7", Ok(()));
        check("partner_id=8", Err(("partner_id", 404)));
        check("partner_id=7&partner_id=8", Err(("partner_id", 404)));
        check("partner_id=x", Err(("partner_id", 400)));
        check("company=Acme", Err(("company", 400)));
    }
}
