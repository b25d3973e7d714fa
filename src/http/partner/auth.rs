//! The partner key check in front of every partner API route: `401` for a
//! missing, malformed, unknown or revoked key; `429` over the key's rate;
//! `403` when the key's partner may not act (paused, suspended).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{PartnerState, OPENAPI_PATH};
use crate::catalog::StoreError;
use crate::http::admin::ApiError;
use crate::model::Partner;
use crate::partner_api::keys;

/// Who is calling: put into every authenticated request's extensions.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key used.
    pub key_id: u64,
    /// Its partner, as Redis has it now (active).
    pub partner: Arc<Partner>,
}

impl Caller {
    /// The partner's id.
    pub fn partner_id(&self) -> u64 {
        self.partner.id
    }
}

/// Checks the key; passes the request on with its [`Caller`].
pub async fn require_key(
    State(s): State<Arc<PartnerState>>,
    mut req: Request,
    next: Next,
) -> Response {
    if req.uri().path() == OPENAPI_PATH {
        return next.run(req).await;
    }
    match caller(&s, req.headers().get(header::AUTHORIZATION)).await {
        Ok(c) => {
            req.extensions_mut().insert(c);
            next.run(req).await
        }
        Err(e) => e,
    }
}

async fn caller(s: &PartnerState, authorization: Option<&HeaderValue>) -> Result<Caller, Response> {
    let key = authorization
        .and_then(|v| keys::bearer(v.as_bytes()))
        .ok_or_else(|| {
            ApiError::unauthorized(
                "missing or malformed partner key: send Authorization: Bearer tep_...",
            )
            .into_response()
        })?;
    let catalog = s.catalog().map_err(IntoResponse::into_response)?;
    let store = s.store().map_err(IntoResponse::into_response)?;
    let record = store
        .key_by_digest(&keys::digest(key))
        .await
        .map_err(|e| ApiError::from(e).into_response())?
        .ok_or_else(|| ApiError::unauthorized("unknown or revoked partner key").into_response())?;
    if let Some(wait) = s.limiter.check(record.id) {
        let secs = wait.as_secs() + 1;
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "this key is over its rate (partner_api.requests_per_minute); retry in {secs}s"
            ),
            Some("authorization"),
        )
        .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return Err(r);
    }
    let partner = match catalog.get::<Partner>(record.partner_id).await {
        Ok(p) => p,
        Err(StoreError::NotFound(_)) => {
            return Err(
                ApiError::unauthorized("the partner of this key no longer exists").into_response(),
            )
        }
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    if !partner.is_active() {
        let status = serde_json::to_value(partner.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "partner_inactive",
            format!(
                "partner {} is {status}: its keys are refused until an admin makes it active",
                partner.id
            ),
            Some("authorization"),
        )
        .into_response());
    }
    Ok(Caller {
        key_id: record.id,
        partner: Arc::new(partner),
    })
}
