//! The admin listener: the bearer-protected JSON API under `/api/v1` on an
//! axum router, its OpenAPI document (generated from the handlers'
//! attributes, served at `/api/v1/openapi.json` without auth and committed
//! as `docs/openapi.json`), plus `/metrics`, `/healthz` and `/readyz`,
//! and the dashboard (`/dashboard`, its files compiled in; no auth, as it
//! holds no data: its script calls the API with a token it asks for).
//!
//! Layers, outermost first: request counting, bearer auth (every
//! `/api/v1/*` route but the document), the body-size limit; then the
//! routes, whose bad input is answered by `error::ApiJson` and
//! `error::ApiError` in the one error shape.

mod access;
mod applications;
pub(crate) mod conversions;
mod dashboard;
pub(crate) mod deals;
pub(crate) mod entities;
mod error;
mod health;
mod partner_keys;
pub(crate) mod payouts;

pub use health::HealthSettings;
pub(crate) mod stats;
mod tiers;

pub use tiers::TierSettings;

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use conversions::Ledger;
pub use error::{parse as parse_json, ApiError, ApiJson, ErrorBody, ErrorDetail};

use super::Readiness;
use crate::catalog::Catalog;
use crate::metrics::{Metrics, RequestCounters};
use crate::model::Link;

pub use crate::catalog::CatalogSlot;

/// What the admin listener needs, and nothing more.
pub struct AdminState {
    /// Partners, offers and links, once loaded; its Redis connection also
    /// guards conversion status changes.
    pub catalog: CatalogSlot,
    /// Conversions: read from ClickHouse, new versions recorded into the
    /// event log.
    pub conversions: Ledger,
    /// `GET /api/v1/stats`: reads ClickHouse.
    pub stats: crate::stats::Stats,
    /// The bearer token, as a digest.
    pub token: AdminToken,
    /// Base of tracking URLs (`public_url`).
    pub public_base: String,
    /// Rendered at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Requests by route and status class.
    pub requests: RequestCounters,
    /// `readyz`.
    pub ready: Readiness,
    /// Largest request body accepted (`http.max_body_bytes`); larger: 413.
    pub max_body_bytes: usize,
    /// Partner health: its facts' reader and the inactivity period.
    pub health: health::HealthSettings,
    /// Performance tiers: their rules and their facts' reader.
    pub tiers: TierSettings,
    /// The payouts report and partner payments: reads ClickHouse, records
    /// payments into it.
    pub payouts: crate::payments::PaymentStore,
}

impl AdminState {
    /// The catalog, or `503` while it loads.
    fn catalog(&self) -> Result<&Arc<Catalog>, ApiError> {
        self.catalog
            .get()
            .ok_or_else(|| ApiError::unavailable("the catalog is still loading from redis"))
    }

    /// A link with its tracking URL.
    fn link_view(&self, link: Link) -> entities::LinkView {
        entities::LinkView {
            tracking_url: format!("{}/{}", self.public_base, link.code),
            link,
        }
    }
}

/// The admin API's bearer tokens, kept only as SHA-256 digests: comparing
/// digests in constant time leaks neither a token's bytes nor its length.
pub struct AdminToken {
    /// The admin token's digest: every route. `None` when unset.
    admin: Option<[u8; 32]>,
    /// Read-only tokens' digests: `GET` and `HEAD` only.
    read_only: Vec<[u8; 32]>,
}

/// What a valid token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything.
    Admin,
    /// Reads only: stats, reports and lists.
    ReadOnly,
}

impl AdminToken {
    /// The admin token alone; an empty one refuses every request.
    pub fn new(token: &str) -> AdminToken {
        AdminToken {
            admin: (!token.is_empty()).then(|| Sha256::digest(token.as_bytes()).into()),
            read_only: Vec::new(),
        }
    }

    /// The same, also accepting for reads the tokens whose SHA-256
    /// digests are `digests` (64 hex digits each, as config validated;
    /// a malformed one is skipped).
    pub fn with_read_only(mut self, digests: &[String]) -> AdminToken {
        self.read_only = digests.iter().filter_map(|d| parse_digest(d)).collect();
        self
    }

    /// Checks an `Authorization` header value: the scope it grants.
    fn check(&self, authorization: Option<&HeaderValue>) -> Result<Scope, ApiError> {
        if self.admin.is_none() && self.read_only.is_empty() {
            return Err(ApiError::unauthorized(
                "the admin API is disabled: no admin token is configured",
            ));
        }
        let given = authorization
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
        let given: [u8; 32] = Sha256::digest(given).into();
        let admin = self
            .admin
            .as_ref()
            .map_or(subtle::Choice::from(0), |d| given.ct_eq(d));
        // Every digest is compared: the time taken says nothing of which.
        let read_only = self
            .read_only
            .iter()
            .fold(subtle::Choice::from(0), |any, d| any | given.ct_eq(d));
        if bool::from(admin) {
            Ok(Scope::Admin)
        } else if bool::from(read_only) {
            Ok(Scope::ReadOnly)
        } else {
            Err(ApiError::unauthorized("wrong bearer token"))
        }
    }
}

/// 64 hex digits → 32 bytes.
fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// The path of the OpenAPI document, the one `/api/v1` route without auth.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "trackedge admin API",
        description = "Partners, offers, links, conversions and stats of a trackedge node. Every /api/v1 route but \
                       this document needs `Authorization: Bearer <admin token>`. Errors are \
                       `{\"error\": {\"code\", \"message\", \"field\"}}`; money is a decimal string.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "partners", description = "who promotes offers"),
        (name = "offers", description = "what is promoted, and what a conversion pays"),
        (name = "links", description = "a partner's tracked link to an offer"),
        (name = "conversions", description = "the conversions ledger: latest states, histories, status changes"),
        (name = "payouts", description = "what partners earned, what is payable after each offer's hold, what was paid and what is still owed; recording payments"),
        (name = "deals", description = "partners' registered prospects: approved deals credit their partner with the prospect's conversions"),
        (name = "stats", description = "clicks and conversions grouped by partner, offer, link, time (in any zone) and click attributes"),
        (name = "operations", description = "health, readiness, metrics and this document"),
        (name = "dashboard", description = "the browser dashboard over this API: a page and its files, no auth"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The routes and the document describing them, from one list.
fn parts() -> (Router<Arc<AdminState>>, utoipa::openapi::OpenApi) {
    use entities::*;
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(dashboard::page))
        .routes(routes!(dashboard::asset))
        .routes(routes!(create_partner, list_partners))
        .routes(routes!(health::partners_health))
        .routes(routes!(get_partner, patch_partner, delete_partner))
        .routes(routes!(partner_keys::create_key, partner_keys::list_keys))
        .routes(routes!(partner_keys::revoke_key))
        .routes(routes!(applications::approve_partner))
        .routes(routes!(applications::reject_partner))
        .routes(routes!(create_offer, list_offers))
        .routes(routes!(get_offer, patch_offer, delete_offer))
        .routes(routes!(access::list_offer_access))
        .routes(routes!(access::decide_access, access::revoke_access))
        .routes(routes!(access::list_access_requests))
        .routes(routes!(create_link, list_links))
        .routes(routes!(get_link, patch_link, delete_link))
        .routes(routes!(conversions::list_conversions))
        .routes(routes!(
            conversions::get_conversion,
            conversions::patch_conversion
        ))
        .routes(routes!(deals::create_deal, deals::list_deals))
        .routes(routes!(deals::get_deal))
        .routes(routes!(deals::approve_deal))
        .routes(routes!(deals::reject_deal))
        .routes(routes!(stats::get_stats))
        .routes(routes!(stats::get_conversion_times))
        .routes(routes!(tiers::get_tiers))
        .routes(routes!(tiers::post_evaluate))
        .routes(routes!(payouts::get_report))
        .routes(routes!(payouts::list_payments, payouts::create_payment))
        .routes(routes!(payouts::bonuses::list_bonuses))
        .split_for_parts()
}

/// The admin API's OpenAPI 3.1 document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    parts().1
}

/// The admin listener's router over `state`.
pub fn router(state: Arc<AdminState>) -> Router {
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
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
}

/// Bearer auth for everything under `/api/v1/` but the OpenAPI document;
/// unknown `/api/v1/` paths too, so they tell nothing without a token.
async fn require_token(State(s): State<Arc<AdminState>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path.starts_with("/api/v1/") && path != OPENAPI_PATH {
        match s.token.check(req.headers().get(header::AUTHORIZATION)) {
            Err(e) => return e.into_response(),
            Ok(Scope::ReadOnly)
                if !matches!(
                    *req.method(),
                    axum::http::Method::GET | axum::http::Method::HEAD
                ) =>
            {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "a read-only token cannot change anything: use the admin token",
                    Some("authorization"),
                )
                .into_response();
            }
            Ok(_) => {}
        }
    }
    next.run(req).await
}

/// Counts every answer by route and status class.
async fn count(State(s): State<Arc<AdminState>>, req: Request, next: Next) -> Response {
    let label = match req.uri().path() {
        "/healthz" | "/readyz" => "health",
        "/metrics" => "metrics",
        p if p == "/dashboard" || p.starts_with("/dashboard/") => "dashboard",
        p if p.starts_with("/api/v1/") => "admin",
        _ => "other",
    };
    let resp = next.run(req).await;
    s.requests.inc(label, resp.status().as_u16());
    resp
}

/// Liveness: `200` while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "alive", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: `200` once the catalog is loaded, `503` while starting or
/// stopping.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "taking traffic", body = String, content_type = "text/plain"),
        (status = 503, description = "starting or stopping", body = String, content_type = "text/plain"),
    ))]
async fn readyz(State(s): State<Arc<AdminState>>) -> Response {
    s.ready.response().map(Body::new)
}

/// Every metric, in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String,
               content_type = "text/plain; version=0.0.4")))]
async fn metrics(State(s): State<Arc<AdminState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

/// This document (no auth).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "the OpenAPI 3.1 document of this API",
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
