//! The admin listener: the bearer-protected JSON API under `/api/v1`, plus
//! `/metrics`, `/healthz` and `/readyz`.

// Handlers return early with a ready error response; boxing it would only
// add an allocation on the error path.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::{Method, Request, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{json, json_error, response, text, Resp};
use crate::app::App;
use crate::catalog::{Catalog, Entity, Kind, StoreError};
use crate::model::{
    Link, LinkPatch, NewLink, NewOffer, NewPartner, Offer, OfferPatch, Partner, PartnerPatch,
};

/// Default and largest page size of a listing.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// Routes one admin request.
pub async fn handle(app: Arc<App>, req: Request<Incoming>, _peer: SocketAddr) -> Resp {
    let path = req.uri().path().to_string();
    let (route, resp) = match path.as_str() {
        "/healthz" => ("health", text(StatusCode::OK, "ok\n")),
        "/readyz" => ("health", app.readiness()),
        "/metrics" => (
            "metrics",
            response(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                app.metrics.render(),
            ),
        ),
        p if p.starts_with("/api/v1/") => ("admin", api(&app, req).await),
        _ => ("other", not_found()),
    };
    app.admin_requests.inc(route, resp.status().as_u16());
    resp
}

fn not_found() -> Resp {
    json_error(StatusCode::NOT_FOUND, "not_found", "no such route", None)
}

/// Everything under `/api/v1/`, after the token check.
async fn api(app: &App, req: Request<Incoming>) -> Resp {
    if let Err(resp) = authorize(app, req.headers()) {
        return resp;
    }
    let Some(catalog) = app.catalog() else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the catalog is still loading from redis",
            None,
        );
    };
    let method = req.method().clone();
    let path = req.uri().path()["/api/v1/".len()..].to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let kind = match segments.first() {
        Some(&"partners") => Kind::Partner,
        Some(&"offers") => Kind::Offer,
        Some(&"links") => Kind::Link,
        _ => return not_found(),
    };
    match (segments.len(), method) {
        (1, Method::POST) => {
            let body = match read_body(app, req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            create(app, catalog, kind, &body).await
        }
        (1, Method::GET) => list(app, catalog, kind, &query).await,
        (2, m) => {
            let Ok(id) = segments[1].parse::<u64>() else {
                return json_error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    &format!("no {} with id {:?}", kind.singular(), segments[1]),
                    Some("id"),
                );
            };
            match m {
                Method::GET => get(app, catalog, kind, id).await,
                Method::PATCH => {
                    let body = match read_body(app, req).await {
                        Ok(b) => b,
                        Err(r) => return r,
                    };
                    patch(app, catalog, kind, id, &body).await
                }
                Method::DELETE => match catalog.delete(kind, id).await {
                    Ok(()) => response(StatusCode::NO_CONTENT, "application/json", Bytes::new()),
                    Err(e) => store_error(e),
                },
                _ => method_not_allowed(),
            }
        }
        (1, _) => method_not_allowed(),
        _ => not_found(),
    }
}

fn method_not_allowed() -> Resp {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
        None,
    )
}

/// Checks `Authorization: Bearer <token>` in constant time.
fn authorize(app: &App, headers: &HeaderMap) -> Result<(), Resp> {
    let unauthorized = |msg: &str| {
        let mut r = json_error(StatusCode::UNAUTHORIZED, "unauthorized", msg, None);
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        r
    };
    let expected = app.config.admin_token.as_bytes();
    if expected.is_empty() {
        return Err(unauthorized(
            "the admin API is disabled: no admin token is configured",
        ));
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .ok_or_else(|| unauthorized("missing bearer token"))?;
    if !constant_time_eq(given, expected) {
        return Err(unauthorized("wrong bearer token"));
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn read_body(app: &App, req: Request<Incoming>) -> Result<Bytes, Resp> {
    let limit = app.config.http.max_body_bytes;
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            &format!("request body is larger than {limit} bytes"),
            None,
        )),
        Err(e) => Err(json_error(
            StatusCode::BAD_REQUEST,
            "bad_body",
            &format!("could not read the body: {e}"),
            None,
        )),
    }
}

/// Parses a JSON body, naming the offending field on error.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Resp> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        let field = if inner.is_syntax() || inner.is_eof() {
            None
        } else if path != "." && path != "?" && !path.is_empty() {
            Some(path)
        } else {
            // "missing field `name`" and "unknown field `x`" name the field
            // only in the message.
            message
                .split('`')
                .nth(1)
                .filter(|_| message.contains("field `"))
                .map(str::to_string)
        };
        let code = if inner.is_syntax() || inner.is_eof() {
            "malformed_json"
        } else {
            "invalid"
        };
        json_error(StatusCode::BAD_REQUEST, code, &message, field.as_deref())
    })
}

fn store_error(e: StoreError) -> Resp {
    let msg = e.to_string();
    match e {
        StoreError::Unavailable(_) => {
            json_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &msg, None)
        }
        StoreError::NotFound(_) => json_error(StatusCode::NOT_FOUND, "not_found", &msg, None),
        StoreError::Invalid(f) => json_error(
            StatusCode::BAD_REQUEST,
            "invalid",
            &f.message,
            Some(&f.field),
        ),
        StoreError::UnknownReference(f) => json_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_reference",
            &f.message,
            Some(&f.field),
        ),
        StoreError::Conflict(f) => {
            json_error(StatusCode::CONFLICT, "conflict", &f.message, Some(&f.field))
        }
        StoreError::Corrupt { .. } => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "corrupt_entity",
            &msg,
            None,
        ),
    }
}

/// The JSON of an entity; links also carry their `tracking_url`.
fn view<T: Entity>(app: &App, entity: &T) -> serde_json::Value {
    let mut v = serde_json::to_value(entity).expect("entities serialize");
    if T::KIND == Kind::Link {
        if let Some(code) = v.get("code").and_then(|c| c.as_str()).map(str::to_string) {
            v["tracking_url"] = format!("{}/{}", app.public_base, code).into();
        }
    }
    v
}

fn respond<T: Entity>(app: &App, status: StatusCode, r: Result<T, StoreError>) -> Resp {
    match r {
        Ok(e) => json(status, &view(app, &e)),
        Err(e) => store_error(e),
    }
}

async fn create(app: &App, c: &Catalog, kind: Kind, body: &[u8]) -> Resp {
    match kind {
        Kind::Partner => match parse::<NewPartner>(body) {
            Ok(req) => respond(app, StatusCode::CREATED, c.create_partner(req).await),
            Err(r) => r,
        },
        Kind::Offer => match parse::<NewOffer>(body) {
            Ok(req) => respond(app, StatusCode::CREATED, c.create_offer(req).await),
            Err(r) => r,
        },
        Kind::Link => match parse::<NewLink>(body) {
            Ok(req) => respond(app, StatusCode::CREATED, c.create_link(req).await),
            Err(r) => r,
        },
    }
}

async fn get(app: &App, c: &Catalog, kind: Kind, id: u64) -> Resp {
    match kind {
        Kind::Partner => respond(app, StatusCode::OK, c.get::<Partner>(id).await),
        Kind::Offer => respond(app, StatusCode::OK, c.get::<Offer>(id).await),
        Kind::Link => respond(app, StatusCode::OK, c.get::<Link>(id).await),
    }
}

async fn patch(app: &App, c: &Catalog, kind: Kind, id: u64, body: &[u8]) -> Resp {
    match kind {
        Kind::Partner => match parse::<PartnerPatch>(body) {
            Ok(p) => respond(app, StatusCode::OK, c.patch_partner(id, p).await),
            Err(r) => r,
        },
        Kind::Offer => match parse::<OfferPatch>(body) {
            Ok(p) => respond(app, StatusCode::OK, c.patch_offer(id, p).await),
            Err(r) => r,
        },
        Kind::Link => match parse::<LinkPatch>(body) {
            Ok(p) => respond(app, StatusCode::OK, c.patch_link(id, p).await),
            Err(r) => r,
        },
    }
}

#[derive(Serialize)]
struct PageView {
    items: Vec<serde_json::Value>,
    next_cursor: Option<String>,
}

async fn list(app: &App, catalog: &Catalog, kind: Kind, query: &str) -> Resp {
    let mut limit = DEFAULT_LIMIT;
    let mut cursor = 0u64;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => limit = n,
                _ => {
                    return json_error(
                        StatusCode::BAD_REQUEST,
                        "invalid",
                        "must be a whole number from 1 to 1000",
                        Some("limit"),
                    )
                }
            },
            "cursor" => match v.parse::<u64>() {
                Ok(n) => cursor = n,
                Err(_) => {
                    return json_error(
                        StatusCode::BAD_REQUEST,
                        "invalid",
                        "must be a next_cursor value from an earlier page",
                        Some("cursor"),
                    )
                }
            },
            _ => {}
        }
    }
    async fn page<T: Entity>(app: &App, catalog: &Catalog, cursor: u64, limit: usize) -> Resp {
        match catalog.list::<T>(cursor, limit).await {
            Ok(p) => json(
                StatusCode::OK,
                &PageView {
                    items: p.items.iter().map(|e| view(app, e)).collect(),
                    next_cursor: p.next_cursor,
                },
            ),
            Err(e) => store_error(e),
        }
    }
    match kind {
        Kind::Partner => page::<Partner>(app, catalog, cursor, limit).await,
        Kind::Offer => page::<Offer>(app, catalog, cursor, limit).await,
        Kind::Link => page::<Link>(app, catalog, cursor, limit).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    fn error_field(body: &str) -> (String, Option<String>) {
        let resp = parse::<NewPartner>(body.as_bytes()).unwrap_err();
        let bytes = futures_util::FutureExt::now_or_never(resp.into_body().collect())
            .unwrap()
            .unwrap()
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        (
            v["error"]["code"].as_str().unwrap().to_string(),
            v["error"]["field"].as_str().map(str::to_string),
        )
    }

    #[test]
    fn json_errors_name_the_field() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("{", "malformed_json", None),
            ("not json", "malformed_json", None),
            (r#"{"kind":"affiliate"}"#, "invalid", Some("name")),
            (r#"{"name":"a","kind":"vendor"}"#, "invalid", Some("kind")),
            (
                r#"{"name":"a","kind":"affiliate","extra":1}"#,
                "invalid",
                Some("extra"),
            ),
            (r#"{"name":5,"kind":"affiliate"}"#, "invalid", Some("name")),
        ];
        for (body, code, field) in cases {
            let (c, f) = error_field(body);
            assert_eq!(c, *code, "{body}");
            assert_eq!(f.as_deref(), *field, "{body}");
        }
    }
}
