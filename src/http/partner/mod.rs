//! The partner API: `/partner/v1/*` on the public listener, an axum router
//! the hand-written public handler passes `/partner/` requests to (the
//! redirect path only pays one string comparison for it).
//!
//! Every route but the OpenAPI document needs `Authorization: Bearer
//! <partner key>`. The key is looked up in Redis by its digest on every
//! request (a revoked key is refused by every node at once), then counted
//! against its rate, then its partner must be active. A key reaches only
//! its own partner's data: another partner's link or conversion, or a
//! private offer not granted, answers `404` exactly like an id that does
//! not exist, so ids cannot be probed. Errors are the admin API's shape,
//! `{"error": {"code", "message", "field"}}`.
//!
//! Layers, outermost first: the key check ([`auth`]), the body-size limit;
//! then the routes: [`me`], [`offers`] (and access requests), [`links`],
//! [`reports`] (stats and conversions), [`deals`] (deal registration),
//! [`payouts`] (balances and payments). Beside them, outside the key
//! check, the [`portal`]: a browser page over this API at
//! `/partner/portal` (it holds no data; it asks for the key).
//!
//! A browser page can use it as is: JSON in and out, the key in a header
//! (no cookie, so no cross-site request can borrow it), and served from
//! the tracker's own origin.

mod auth;
mod deals;
mod links;
mod me;
mod offers;
mod payouts;
pub mod portal;
mod reports;

use std::sync::{Arc, OnceLock};

use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::Router;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::Caller;

use crate::catalog::{Catalog, CatalogSlot};
use crate::http::admin::conversions::ledger::Ledger;
use crate::http::admin::ApiError;
use crate::partner_api::PartnerStore;
use crate::payments::PaymentStore;
use crate::ratelimit::KeyLimiter;
use crate::stats::Stats;

/// Every partner API path starts with it.
pub const PREFIX: &str = "/partner/";

/// The path of the partner API's OpenAPI document (no key needed).
pub const OPENAPI_PATH: &str = "/partner/v1/openapi.json";

/// What the partner API needs, and nothing more.
pub struct PartnerState {
    /// Partners, offers and links, once loaded; keys and grants live in
    /// its Redis.
    pub catalog: CatalogSlot,
    /// `GET /partner/v1/stats`, with the partner filter forced.
    pub stats: Stats,
    /// `GET /partner/v1/conversions`: the admin ledger's reader, with the
    /// partner filter forced (this side never writes).
    pub conversions: Ledger,
    /// `GET /partner/v1/payouts`: the admin payouts report's reader, with
    /// the partner forced (this side never records a payment).
    pub payouts: PaymentStore,
    /// Requests per key.
    pub limiter: KeyLimiter,
    /// Base of tracking URLs (`public_url`).
    pub public_base: String,
    /// Largest request body accepted (`http.max_body_bytes`); larger: 413.
    pub max_body_bytes: usize,
}

impl PartnerState {
    /// The catalog, or `503` while it loads.
    fn catalog(&self) -> Result<&Arc<Catalog>, ApiError> {
        self.catalog
            .get()
            .ok_or_else(|| ApiError::unavailable("the catalog is still loading from redis"))
    }

    /// Keys and grants, on the catalog's connection.
    fn store(&self) -> Result<PartnerStore, ApiError> {
        Ok(PartnerStore::new(self.catalog()?))
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "trackedge partner API",
        description = "A partner's own profile, offers, links, stats, conversions, deals and payouts, on the tracker's public \
                       listener under /partner/v1. Every route but this document needs \
                       `Authorization: Bearer <partner key>` (an admin creates keys with \
                       POST /api/v1/partners/{id}/keys). Another partner's ids answer 404. Errors are \
                       `{\"error\": {\"code\", \"message\", \"field\"}}`; money is a decimal string.",
        license(name = "Apache-2.0")
    ),
    modifiers(&KeyAuth),
    tags(
        (name = "profile", description = "the partner the key belongs to"),
        (name = "offers", description = "offers the partner may promote, and access requests"),
        (name = "links", description = "the partner's tracked links"),
        (name = "reports", description = "the partner's stats and conversions"),
        (name = "deals", description = "prospects the partner registers; an approved deal credits it with their conversions"),
        (name = "payouts", description = "what the partner earned, what is payable after each offer's hold, and its payments"),
    )
)]
struct PartnerDoc;

struct KeyAuth;

impl utoipa::Modify for KeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "partner_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The routes and the document describing them, from one list.
fn parts() -> (Router<Arc<PartnerState>>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(PartnerDoc::openapi())
        .routes(routes!(openapi_json))
        .routes(routes!(me::get_me, me::patch_me))
        .routes(routes!(offers::list_offers))
        .routes(routes!(offers::get_offer))
        .routes(routes!(offers::request_access))
        .routes(routes!(links::list_links, links::create_link))
        .routes(routes!(links::get_link))
        .routes(routes!(reports::get_stats))
        .routes(routes!(reports::list_conversions))
        .routes(routes!(reports::get_conversion))
        .routes(routes!(deals::list_deals, deals::create_deal))
        .routes(routes!(deals::get_deal))
        .routes(routes!(payouts::get_payouts))
        .split_for_parts()
}

/// The partner API's OpenAPI 3.1 document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    parts().1
}

/// The partner API's router over `state`.
pub fn router(state: Arc<PartnerState>) -> Router {
    let (routes, _) = parts();
    routes
        .fallback(|| async { ApiError::not_found("no such route", None) })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
                None,
            )
        })
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ))
        .with_state(state)
        // Added after the layers, so the key check does not cover them.
        .merge(portal::routes())
}

/// This document (no key needed).
#[utoipa::path(get, path = "/partner/v1/openapi.json", tag = "profile",
    responses((status = 200, description = "the OpenAPI 3.1 document of the partner API",
               content_type = "application/json")))]
async fn openapi_json() -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    let doc = DOC.get_or_init(|| {
        openapi()
            .to_pretty_json()
            .expect("the generated document serializes")
    });
    ([(header::CONTENT_TYPE, "application/json")], doc.as_str()).into_response()
}

#[cfg(test)]
mod tests;
