//! `GET /partner/v1/offers`, `GET /partner/v1/offers/{id}` and
//! `POST /partner/v1/offers/{id}/access-requests`: what a partner may
//! promote, and asking for what needs approval.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Caller, PartnerState};
use crate::catalog::{now_rfc3339, Catalog, StoreError};
use crate::http::admin::entities::ItemsPage;
use crate::http::admin::{ApiError, ErrorBody};
use crate::model::{Offer, Partner, Payout, Status, Visibility};
use crate::partner_api::access::{access, Access, Grant, GrantStatus};
use crate::payout::{EventPayout, PartnerPayout, Recurring, TierPayout};

/// An offer as a partner sees it: what it pays this partner and whether
/// it may promote it; never the merchant's secrets, nor other partners'
/// payout overrides.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartnerOffer {
    /// Its id.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// The landing URL, with macros.
    pub url: String,
    /// The default payout per conversion.
    pub payout: Payout,
    /// Payouts per event name, instead of `payout`.
    pub payout_by_event: Vec<EventPayout>,
    /// Payouts for this partner's tier only.
    pub payout_by_tier: Vec<TierPayout>,
    /// Payouts for this partner only.
    pub payout_by_partner: Vec<PartnerPayout>,
    /// Which sales of a returning customer pay.
    pub recurring: Recurring,
    /// ISO 4217 code of payouts.
    pub currency: String,
    /// Conversions later than this after the click are rejected.
    pub attribution_window_days: u32,
    /// `public`, `approval` or `private`.
    pub visibility: Visibility,
    /// `active` or `paused` (no new links to a paused offer).
    pub status: Status,
    /// What this partner may do: `open` or `granted` (promote it),
    /// `requestable` (ask with `POST .../access-requests`), `requested`
    /// (waiting for an admin), `refused` (rejected or revoked).
    pub access: Access,
    /// Whether this partner may create links to it now.
    pub may_promote: bool,
}

impl PartnerOffer {
    fn of(o: &Offer, partner: &Partner, access: Access) -> PartnerOffer {
        PartnerOffer {
            id: o.id,
            name: o.name.clone(),
            url: o.url.clone(),
            payout: o.payout.clone(),
            payout_by_event: o.payout_by_event.clone(),
            payout_by_tier: o
                .payout_by_tier
                .iter()
                .filter(|t| partner.tier.as_deref() == Some(t.tier.as_str()))
                .cloned()
                .collect(),
            payout_by_partner: o
                .payout_by_partner
                .iter()
                .filter(|p| p.partner_id == partner.id)
                .cloned()
                .collect(),
            recurring: o.recurring,
            currency: o.currency.clone(),
            attribution_window_days: o.attribution_window_days,
            visibility: o.visibility,
            status: o.status,
            access,
            may_promote: access.may_promote() && o.status == Status::Active,
        }
    }
}

/// The offer listing's query, as documented.
#[allow(dead_code)] // read only by the OpenAPI derive
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OffersQuery {
    /// `promotable` (default): active offers this partner may promote;
    /// `visible`: also those it may ask for or has asked for.
    pub scope: Option<String>,
}

/// The offers this partner may promote (every one, in one page).
#[utoipa::path(get, path = "/partner/v1/offers", tag = "offers", params(OffersQuery),
    responses(
        (status = 200, description = "the offers, by id", body = ItemsPage<PartnerOffer>),
        (status = 400, description = "an unknown parameter or scope (named)", body = ErrorBody),
        (status = 401, description = "missing, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "the partner is not active", body = ErrorBody),
        (status = 429, description = "the key is over its rate (Retry-After)", body = ErrorBody),
        (status = 503, description = "redis unavailable", body = ErrorBody),
    ), security(("partner_key" = [])))]
pub async fn list_offers(
    State(s): State<Arc<PartnerState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
) -> Result<Json<ItemsPage<PartnerOffer>>, ApiError> {
    let mut promotable_only = true;
    for (k, v) in form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes()) {
        match (k.as_ref(), v.as_ref()) {
            ("scope", "promotable") => promotable_only = true,
            ("scope", "visible") => promotable_only = false,
            ("scope", _) => {
                return Err(ApiError::invalid("scope", "must be promotable or visible"))
            }
            (other, _) => {
                return Err(ApiError::invalid(
                    other,
                    "is not a parameter of this listing (known: scope)",
                ))
            }
        }
    }
    let catalog = s.catalog()?;
    let grants: HashMap<u64, GrantStatus> = s
        .store()?
        .grants_of_partner(caller.partner_id())
        .await?
        .into_iter()
        .map(|(offer, g)| (offer, g.status))
        .collect();
    let mut items = Vec::new();
    for o in all_offers(catalog).await? {
        let a = access(o.visibility, grants.get(&o.id).copied());
        let view = PartnerOffer::of(&o, &caller.partner, a);
        let keep = if promotable_only {
            view.may_promote
        } else {
            a.visible() && o.status == Status::Active
        };
        if keep {
            items.push(view);
        }
    }
    Ok(Json(ItemsPage {
        items,
        next_cursor: None,
    }))
}

/// One offer this partner may see.
#[utoipa::path(get, path = "/partner/v1/offers/{id}", tag = "offers",
    params(("id" = u64, Path, description = "offer id")),
    responses(
        (status = 200, description = "the offer", body = PartnerOffer),
        (status = 401, description = "missing, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "the partner is not active", body = ErrorBody),
        (status = 404, description = "no such offer, or a private one not granted", body = ErrorBody),
        (status = 429, description = "the key is over its rate (Retry-After)", body = ErrorBody),
        (status = 503, description = "redis unavailable", body = ErrorBody),
    ), security(("partner_key" = [])))]
pub async fn get_offer(
    State(s): State<Arc<PartnerState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<PartnerOffer>, ApiError> {
    let (offer, grant) = visible_offer(&s, &caller, &id, "id").await?;
    let a = access(offer.visibility, grant.map(|g| g.status));
    Ok(Json(PartnerOffer::of(&offer, &caller.partner, a)))
}

/// An access request's optional body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessRequest {
    /// A note for the admin who decides (how the offer will be promoted),
    /// at most 1000 characters.
    #[serde(default)]
    pub note: String,
}

/// Ask for access to an offer that needs approval. Asking again while the
/// request waits answers it unchanged.
#[utoipa::path(post, path = "/partner/v1/offers/{id}/access-requests", tag = "offers",
    request_body(content = AccessRequest, description = "optional"),
    params(("id" = u64, Path, description = "offer id")),
    responses(
        (status = 201, description = "requested: an admin decides", body = Grant),
        (status = 200, description = "already requested: the waiting request", body = Grant),
        (status = 400, description = "malformed JSON or a note too long (named)", body = ErrorBody),
        (status = 401, description = "missing, unknown or revoked key", body = ErrorBody),
        (status = 403, description = "the partner is not active", body = ErrorBody),
        (status = 404, description = "no such offer, or a private one not granted", body = ErrorBody),
        (status = 409, description = "no request possible: the offer is public or already granted, \
            or a request was rejected or access revoked", body = ErrorBody),
        (status = 429, description = "the key is over its rate (Retry-After)", body = ErrorBody),
        (status = 503, description = "redis unavailable", body = ErrorBody),
    ), security(("partner_key" = [])))]
pub async fn request_access(
    State(s): State<Arc<PartnerState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Grant>), ApiError> {
    let req: AccessRequest = if body.iter().all(u8::is_ascii_whitespace) {
        AccessRequest::default()
    } else {
        crate::http::admin::parse_json(&body)?
    };
    if req.note.chars().count() > 1000 {
        return Err(ApiError::invalid("note", "must be at most 1000 characters"));
    }
    let (offer, grant) = visible_offer(&s, &caller, &id, "id").await?;
    let wanted = Grant {
        offer_id: offer.id,
        partner_id: caller.partner_id(),
        status: GrantStatus::Requested,
        updated_at: now_rfc3339(),
        note: req.note,
    };
    // Stored only when none is there yet: of two concurrent requests, one
    // creates it and the other reads it back.
    let current = match access(offer.visibility, grant.as_ref().map(|g| g.status)) {
        Access::Requestable => match s.store()?.put_grant_if_absent(&wanted).await? {
            None => return Ok((StatusCode::CREATED, Json(wanted))),
            Some(raced) => Some(raced),
        },
        _ => grant,
    };
    let a = access(offer.visibility, current.as_ref().map(|g| g.status));
    match (a, current) {
        (Access::Requested, Some(waiting)) => Ok((StatusCode::OK, Json(waiting))),
        (a, current) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            match a {
                Access::Open => format!("offer {} is public: promote it without asking", offer.id),
                Access::Granted => format!("offer {} is already granted", offer.id),
                _ => format!(
                    "access to offer {} was {} by an admin: ask them directly",
                    offer.id,
                    current.map_or("refused", |g| g.status.as_str())
                ),
            },
            Some("id"),
        )),
    }
}

/// Offer `raw_id` with this partner's grant, or `404` (naming `field`)
/// when it does not exist or is hidden from the partner: the two answers
/// are the same, so private offers cannot be probed.
pub(super) async fn visible_offer(
    s: &PartnerState,
    caller: &Caller,
    raw_id: &str,
    field: &str,
) -> Result<(Offer, Option<Grant>), ApiError> {
    let missing = || ApiError::not_found(format!("no offer with id {raw_id:?}"), Some(field));
    let id: u64 = raw_id.parse().map_err(|_| missing())?;
    let offer = match s.catalog()?.get::<Offer>(id).await {
        Ok(o) => o,
        Err(StoreError::NotFound(_)) => return Err(missing()),
        Err(e) => return Err(e.into()),
    };
    let grant = s.store()?.grant(caller.partner_id(), id).await?;
    if !access(offer.visibility, grant.as_ref().map(|g| g.status)).visible() {
        return Err(missing());
    }
    Ok((offer, grant))
}

/// Offer `id` with this partner's grant, when the partner may promote it
/// now (new links and deals need that): `404` (naming `field`) when it
/// does not exist for the partner, `403 access_required` when it needs an
/// approval the partner does not hold, `403 offer_paused` when paused.
pub(super) async fn promotable_offer(
    s: &PartnerState,
    caller: &Caller,
    id: u64,
    field: &str,
) -> Result<(Offer, Option<Grant>), ApiError> {
    let (offer, grant) = visible_offer(s, caller, &id.to_string(), field).await?;
    let a = access(offer.visibility, grant.as_ref().map(|g| g.status));
    if !a.may_promote() {
        let why = match a {
            Access::Requestable => format!(
                "offer {0} needs an admin's approval: request it with POST /partner/v1/offers/{0}/access-requests",
                offer.id
            ),
            Access::Requested => format!(
                "offer {} needs an admin's approval: the request waits for a decision",
                offer.id
            ),
            _ => format!("access to offer {} was rejected or revoked by an admin", offer.id),
        };
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "access_required",
            why,
            Some(field),
        ));
    }
    if offer.status != Status::Active {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "offer_paused",
            format!("offer {} is paused: no new links or deals for it", offer.id),
            Some(field),
        ));
    }
    Ok((offer, grant))
}

/// Every offer in the catalog, all pages (offers are few).
async fn all_offers(catalog: &Catalog) -> Result<Vec<Offer>, StoreError> {
    let mut out = Vec::new();
    let mut cursor = 0;
    loop {
        let page = catalog.list::<Offer>(cursor, 1000).await?;
        out.extend(page.items);
        match page.next_cursor.and_then(|c| c.parse().ok()) {
            Some(next) => cursor = next,
            None => return Ok(out),
        }
    }
}
