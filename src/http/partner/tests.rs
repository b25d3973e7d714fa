//! The partner router in-process: the key check's answers before any
//! lookup, and the OpenAPI document. No Redis: the catalog slot stays
//! empty (`503` for anything that needs it). Keys, access and every
//! route's answers run against real servers in `tests/partner_api.rs`.

use axum::body::Body;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;
use crate::metrics::Metrics;

/// Something that refuses connections (port 1).
fn unreachable() -> clickhouse::Client {
    clickhouse::Client::default()
        .with_url("http://127.0.0.1:1")
        .with_validation(false)
}

fn state() -> Arc<PartnerState> {
    use crate::events::log::{EventLog, LogConfig};
    use crate::events::EventSink;
    static SINK: OnceLock<(tempfile::TempDir, Arc<EventSink>)> = OnceLock::new();
    let (_, sink) = SINK.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path(), LogConfig::new(1 << 20, 4 << 20).unwrap()).unwrap();
        let sink = Arc::new(EventSink::new(Arc::new(log), Arc::new(Metrics::new())));
        (dir, sink)
    });
    Arc::new(PartnerState {
        catalog: CatalogSlot::default(),
        stats: Stats::new(unreachable(), "trackedge", Default::default()),
        conversions: Ledger::new(unreachable(), "trackedge", sink.clone()),
        payouts: crate::payments::PaymentStore::new(unreachable(), "trackedge"),
        limiter: KeyLimiter::new(60, 10),
        public_base: "http://t.example".into(),
        max_body_bytes: 1024,
    })
}

/// `method path` with `authorization` → (status, error code or "").
async fn check(method: Method, path: &str, authorization: Option<&str>, expected: (u16, &str)) {
    let mut req = Request::builder().method(method.clone()).uri(path);
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let resp = router(state())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let challenge = resp.headers().get("www-authenticate").cloned();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let code = v["error"]["code"].as_str().unwrap_or("");
    assert_eq!(
        (status, code),
        expected,
        "{method} {path} {authorization:?}: {v}"
    );
    if status == 401 {
        assert_eq!(challenge.unwrap(), "Bearer");
    }
}

#[tokio::test]
async fn keys_are_checked_before_anything_else() {
    let key = "Bearer tep_0123456789abcdefghijABCDEFGHIJ0123456789ab";
    for path in [
        "/partner/v1/me",
        "/partner/v1/links",
        "/partner/v1/deals",
        "/partner/v1/payouts",
        "/partner/v1/nonsense",
        "/partner/",
    ] {
        check(Method::GET, path, None, (401, "unauthorized")).await;
        // The admin token is no partner key.
        check(
            Method::GET,
            path,
            Some("Bearer admin-secret"),
            (401, "unauthorized"),
        )
        .await;
        check(
            Method::GET,
            path,
            Some("Basic dXNlcjpwYXNz"),
            (401, "unauthorized"),
        )
        .await;
        // A key of the right shape needs the catalog's Redis to be checked.
        check(Method::GET, path, Some(key), (503, "unavailable")).await;
    }
    check(
        Method::POST,
        "/partner/v1/links",
        None,
        (401, "unauthorized"),
    )
    .await;
    check(Method::GET, OPENAPI_PATH, None, (200, "")).await;
}

/// The portal's page and files need no key (they hold no data); what is
/// not one of them still does.
#[tokio::test]
async fn the_portal_is_served_without_a_key() {
    check(Method::GET, "/partner/portal", None, (200, "")).await;
    check(Method::GET, "/partner/portal/app.js", None, (200, "")).await;
    check(Method::GET, "/partner/portal/uplot.min.js", None, (200, "")).await;
    check(Method::HEAD, "/partner/portal", None, (200, "")).await;
    check(
        Method::GET,
        "/partner/portal/secrets.json",
        None,
        (404, "not_found"),
    )
    .await;
    check(
        Method::GET,
        "/partner/portal/a/b",
        None,
        (401, "unauthorized"),
    )
    .await;
    check(Method::GET, "/partner/portalx", None, (401, "unauthorized")).await;
    let resp = router(state())
        .oneshot(
            Request::builder()
                .uri("/partner/portal")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let page = std::str::from_utf8(&body).unwrap();
    assert!(page.contains("/partner/portal/app.js?v="), "{page}");
}

/// Every route the router serves is in the document, with its method.
#[test]
fn the_document_lists_every_route() {
    let doc = serde_json::to_value(openapi()).unwrap();
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    documented.sort();
    let mut expected = vec![
        "GET /partner/v1/openapi.json",
        "GET /partner/v1/me",
        "PATCH /partner/v1/me",
        "GET /partner/v1/offers",
        "GET /partner/v1/offers/{id}",
        "POST /partner/v1/offers/{id}/access-requests",
        "GET /partner/v1/links",
        "POST /partner/v1/links",
        "GET /partner/v1/links/{id}",
        "GET /partner/v1/stats",
        "GET /partner/v1/conversions",
        "GET /partner/v1/conversions/{conversion_id}",
        "GET /partner/v1/deals",
        "POST /partner/v1/deals",
        "GET /partner/v1/deals/{id}",
        "GET /partner/v1/payouts",
    ];
    expected.sort();
    assert_eq!(documented, expected);
    assert!(doc["components"]["securitySchemes"]["partner_key"].is_object());
}

/// `docs/partner-openapi.json` is the generated document; regenerate it
/// with `cargo run -- openapi --partner > docs/partner-openapi.json`.
#[test]
fn the_committed_document_is_current() {
    let generated = openapi().to_pretty_json().unwrap() + "\n";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/partner-openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/partner-openapi.json differs from the generated document: run `cargo run -- openapi --partner > docs/partner-openapi.json`"
    );
}
