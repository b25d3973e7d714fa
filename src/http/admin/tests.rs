//! The admin router in-process: routing, auth, error shapes and the
//! OpenAPI document. No Redis: the catalog slot stays empty, which is
//! itself a state the API must answer well (`503` while loading).

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;

const TOKEN: &str = "admin-secret";

/// A ledger whose ClickHouse refuses connections (port 1), recording into
/// one log shared by every test of the process (a log's directory is
/// locked by the one process-wide opener).
fn ledger(metrics: &Arc<Metrics>) -> Ledger {
    use crate::events::log::{EventLog, LogConfig};
    use crate::events::EventSink;
    static SINK: OnceLock<(tempfile::TempDir, Arc<EventSink>)> = OnceLock::new();
    let (_, sink) = SINK.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path(), LogConfig::new(1 << 20, 4 << 20).unwrap()).unwrap();
        let sink = Arc::new(EventSink::new(Arc::new(log), metrics.clone()));
        (dir, sink)
    });
    let client = clickhouse::Client::default()
        .with_url("http://127.0.0.1:1")
        .with_validation(false);
    Ledger::new(client, "trackedge", sink.clone())
}

/// Partner health over a ClickHouse that refuses connections.
fn health_settings() -> HealthSettings {
    let client = clickhouse::Client::default()
        .with_url("http://127.0.0.1:1")
        .with_validation(false);
    HealthSettings {
        reader: crate::partners::activity::ActivityReader::new(client, "trackedge"),
        inactive_days: 90,
    }
}

/// Tier rules over a ClickHouse that refuses connections.
fn tier_settings() -> super::TierSettings {
    let client = clickhouse::Client::default()
        .with_url("http://127.0.0.1:1")
        .with_validation(false);
    super::TierSettings {
        reader: crate::partners::standing::StandingReader::new(client, "trackedge"),
        rules: crate::config::TiersConfig::default(),
    }
}

/// Payouts over a ClickHouse that refuses connections.
fn unreachable_payouts() -> crate::payments::PaymentStore {
    crate::payments::PaymentStore::new(
        clickhouse::Client::default()
            .with_url("http://127.0.0.1:1")
            .with_validation(false),
        "trackedge",
    )
}

/// Stats over a ClickHouse that refuses connections.
fn unreachable_stats() -> crate::stats::Stats {
    crate::stats::Stats::new(
        clickhouse::Client::default()
            .with_url("http://127.0.0.1:1")
            .with_validation(false),
        "trackedge",
        crate::config::StatsConfig::default(),
    )
}

fn state(token: &str) -> Arc<AdminState> {
    let metrics = Arc::new(Metrics::new());
    Arc::new(AdminState {
        catalog: CatalogSlot::default(),
        conversions: ledger(&metrics),
        stats: unreachable_stats(),
        token: AdminToken::new(token),
        public_base: "http://t.example".into(),
        requests: RequestCounters::new(&metrics, "admin"),
        metrics,
        ready: Readiness::new(),
        max_body_bytes: 1024,
        health: health_settings(),
        tiers: tier_settings(),
        payouts: unreachable_payouts(),
    })
}

/// One request → (status, body as JSON, or as a string when not JSON).
async fn call(
    state: &Arc<AdminState>,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = router(state.clone())
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).to_string().into());
    (status, v)
}

/// The error `(code, field)` of an error body.
fn error_of(v: &serde_json::Value) -> (&str, Option<&str>) {
    let e = &v["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    (e["code"].as_str().unwrap_or("?"), e["field"].as_str())
}

async fn check(
    method: Method,
    path: &str,
    token: Option<&str>,
    body: &str,
    expected: (u16, &str, Option<&str>),
) {
    let s = state(TOKEN);
    let (status, v) = call(&s, method.clone(), path, token, body).await;
    let (code, field) = error_of(&v);
    assert_eq!(
        (status.as_u16(), code, field),
        expected,
        "{method} {path} {body}: {v}"
    );
}

#[tokio::test]
async fn errors_have_one_shape_and_the_right_status() {
    let t = Some(TOKEN);
    use Method as M;
    // Auth comes first, on every /api/v1 path but the document.
    check(
        M::GET,
        "/api/v1/partners",
        None,
        "",
        (401, "unauthorized", None),
    )
    .await;
    check(
        M::GET,
        "/api/v1/conversions",
        None,
        "",
        (401, "unauthorized", None),
    )
    .await;
    check(
        M::PATCH,
        "/api/v1/conversions/0000AbC",
        Some("nope"),
        r#"{"status":"approved"}"#,
        (401, "unauthorized", None),
    )
    .await;
    check(
        M::GET,
        "/api/v1/partners",
        Some("nope"),
        "",
        (401, "unauthorized", None),
    )
    .await;
    check(
        M::GET,
        "/api/v1/nothing",
        None,
        "",
        (401, "unauthorized", None),
    )
    .await;
    // Routing.
    check(M::GET, "/api/v1/nothing", t, "", (404, "not_found", None)).await;
    check(M::GET, "/nothing", None, "", (404, "not_found", None)).await;
    check(
        M::PUT,
        "/api/v1/partners",
        t,
        "",
        (405, "method_not_allowed", None),
    )
    .await;
    check(
        M::POST,
        "/api/v1/partners/1",
        t,
        "",
        (405, "method_not_allowed", None),
    )
    .await;
    check(
        M::GET,
        "/api/v1/partners/abc",
        t,
        "",
        (404, "not_found", Some("id")),
    )
    .await;
    // Bodies are read and checked before the catalog is needed.
    check(
        M::POST,
        "/api/v1/partners",
        t,
        "{",
        (400, "malformed_json", None),
    )
    .await;
    check(
        M::POST,
        "/api/v1/partners",
        t,
        r#"{"name":"a"}"#,
        (400, "invalid", Some("kind")),
    )
    .await;
    check(
        M::POST,
        "/api/v1/offers",
        t,
        r#"{"name":"a","url":"http://x","payout":{"model":"cpa","amount":5}}"#,
        (400, "invalid", Some("payout")),
    )
    .await;
    check(
        M::PATCH,
        "/api/v1/links/1",
        t,
        r#"{"code":"x"}"#,
        (400, "invalid", Some("code")),
    )
    .await;
    let big = format!(r#"{{"name":"{}","kind":"affiliate"}}"#, "a".repeat(2000));
    check(
        M::POST,
        "/api/v1/partners",
        t,
        &big,
        (413, "too_large", None),
    )
    .await;
    check(
        M::GET,
        "/api/v1/links?limit=0",
        t,
        "",
        (400, "invalid", Some("limit")),
    )
    .await;
    // Conversions: the query and the body are checked before ClickHouse
    // or Redis is asked.
    for (query, field) in [
        ("limit=0", "limit"),
        ("cursor=%27", "cursor"),
        ("partner_id=x", "partner_id"),
        ("status=paid", "status"),
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
    ] {
        check(
            M::GET,
            &format!("/api/v1/conversions?{query}"),
            t,
            "",
            (400, "invalid", Some(field)),
        )
        .await;
    }
    for (body, expected) in [
        ("{", (400, "malformed_json", None)),
        (r#"{"status":"pending"}"#, (400, "invalid", Some("status"))),
        (r#"{"status":"reversed"}"#, (400, "invalid", Some("reason"))),
        (
            r#"{"status":"approved","reason":"because"}"#,
            (400, "invalid", Some("reason")),
        ),
        (
            r#"{"status":"rejected","reason":"ok"}"#,
            (400, "invalid", Some("reason")),
        ),
        // Well-formed, while Redis has not answered yet.
        (r#"{"status":"approved"}"#, (503, "unavailable", None)),
    ] {
        check(M::PATCH, "/api/v1/conversions/0000AbC", t, body, expected).await;
    }
    check(
        M::GET,
        "/api/v1/conversions/a%27b",
        t,
        "",
        (404, "not_found", Some("conversion_id")),
    )
    .await;
    // ClickHouse does not answer.
    check(
        M::GET,
        "/api/v1/conversions?status=pending",
        t,
        "",
        (503, "unavailable", None),
    )
    .await;
    check(
        M::GET,
        "/api/v1/conversions/0000AbC",
        t,
        "",
        (503, "unavailable", None),
    )
    .await;
    // A well-formed request while Redis has not answered yet.
    check(
        M::POST,
        "/api/v1/partners",
        t,
        r#"{"name":"a","kind":"affiliate"}"#,
        (503, "unavailable", None),
    )
    .await;
    check(
        M::GET,
        "/api/v1/offers/7",
        t,
        "",
        (503, "unavailable", None),
    )
    .await;
    check(
        M::DELETE,
        "/api/v1/links/7",
        t,
        "",
        (503, "unavailable", None),
    )
    .await;
}

#[tokio::test]
async fn an_empty_token_refuses_everything() {
    let s = state("");
    for token in [None, Some(""), Some("anything")] {
        let (status, v) = call(&s, Method::GET, "/api/v1/partners", token, "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("disabled"),
            "{v}"
        );
    }
}

#[tokio::test]
async fn unauthorized_answers_name_the_scheme() {
    let resp = router(state(TOKEN))
        .oneshot(Request::get("/api/v1/links").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    assert_eq!(resp.headers()["content-type"], "application/json");
}

#[tokio::test]
async fn operations_routes_need_no_token_and_are_counted() {
    let s = state(TOKEN);
    assert_eq!(
        call(&s, Method::GET, "/healthz", None, "").await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&s, Method::GET, "/readyz", None, "").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    s.ready.set(true);
    assert_eq!(
        call(&s, Method::GET, "/readyz", None, "").await.0,
        StatusCode::OK
    );
    let (status, doc) = call(&s, Method::GET, OPENAPI_PATH, None, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    call(&s, Method::GET, "/api/v1/partners", None, "").await;
    let (status, text) = call(&s, Method::GET, "/metrics", None, "").await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap().to_string();
    for line in [
        r#"trackedge_http_requests_total{class="2xx",listener="admin",route="health"} 2"#,
        r#"trackedge_http_requests_total{class="5xx",listener="admin",route="health"} 1"#,
        r#"trackedge_http_requests_total{class="2xx",listener="admin",route="admin"} 1"#,
        r#"trackedge_http_requests_total{class="4xx",listener="admin",route="admin"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
}

/// Every route the router serves is in the document, with the method it
/// serves, and every documented route is served.
#[tokio::test]
async fn the_document_lists_every_route() {
    let doc = serde_json::to_value(openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            documented.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    documented.sort();
    let mut expected = vec![
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /api/v1/openapi.json",
        "GET /dashboard",
        "GET /dashboard/{asset}",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    for kind in ["partners", "offers", "links"] {
        expected.push(format!("POST /api/v1/{kind}"));
        expected.push(format!("GET /api/v1/{kind}"));
        for m in ["GET", "PATCH", "DELETE"] {
            expected.push(format!("{m} /api/v1/{kind}/{{id}}"));
        }
    }
    for route in [
        "GET /api/v1/conversions",
        "GET /api/v1/conversions/{conversion_id}",
        "PATCH /api/v1/conversions/{conversion_id}",
        "GET /api/v1/partners/health",
        "POST /api/v1/partners/{id}/approve",
        "POST /api/v1/partners/{id}/reject",
        "GET /api/v1/stats",
        "GET /api/v1/stats/conversion-times",
        "GET /api/v1/tiers",
        "POST /api/v1/tiers/evaluate",
        "POST /api/v1/partners/{id}/keys",
        "GET /api/v1/partners/{id}/keys",
        "DELETE /api/v1/partners/{id}/keys/{key_id}",
        "GET /api/v1/offers/{id}/access",
        "PUT /api/v1/offers/{id}/access/{partner_id}",
        "DELETE /api/v1/offers/{id}/access/{partner_id}",
        "GET /api/v1/access-requests",
        "GET /api/v1/reports/payouts",
        "GET /api/v1/partners/{id}/payouts",
        "POST /api/v1/partners/{id}/payouts",
        "GET /api/v1/partners/{id}/bonuses",
        "POST /api/v1/deals",
        "GET /api/v1/deals",
        "GET /api/v1/deals/{id}",
        "POST /api/v1/deals/{id}/approve",
        "POST /api/v1/deals/{id}/reject",
    ] {
        expected.push(route.to_string());
    }
    expected.sort();
    assert_eq!(documented, expected);
    // And each documented route answers something other than the
    // unknown-route or wrong-method error.
    let s = state(TOKEN);
    for route in &documented {
        let (method, path) = route.split_once(' ').unwrap();
        let path = path
            .replace("{id}", "1")
            .replace("{conversion_id}", "1")
            .replace("{key_id}", "1")
            .replace("{partner_id}", "1")
            .replace("{asset}", "app.js");
        let (status, v) = call(&s, method.parse().unwrap(), &path, Some(TOKEN), "{}").await;
        let code = v["error"]["code"].as_str().unwrap_or("");
        assert!(
            code != "method_not_allowed"
                && !(status == StatusCode::NOT_FOUND
                    && code == "not_found"
                    && v["error"]["field"].is_null()),
            "{route} is documented but not routed: {status} {v}"
        );
    }
}

/// `docs/openapi.json` is the generated document; regenerate it with
/// `cargo run -- openapi > docs/openapi.json`.
#[test]
fn the_committed_document_is_current() {
    let generated = openapi().to_pretty_json().unwrap() + "\n";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json differs from the generated document: run `cargo run -- openapi > docs/openapi.json`"
    );
}

#[tokio::test]
async fn read_only_tokens_read_and_never_write() {
    const READER: &str = "analyst-token";
    let digest: String = Sha256::digest(READER.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let with_reader = |admin: &str| {
        let metrics = Arc::new(Metrics::new());
        Arc::new(AdminState {
            catalog: CatalogSlot::default(),
            conversions: ledger(&metrics),
            stats: unreachable_stats(),
            token: AdminToken::new(admin).with_read_only(std::slice::from_ref(&digest)),
            public_base: "http://t.example".into(),
            requests: RequestCounters::new(&metrics, "admin"),
            metrics,
            ready: Readiness::new(),
            max_body_bytes: 1024,
            health: health_settings(),
            tiers: tier_settings(),
            payouts: unreachable_payouts(),
        })
    };
    let s = with_reader(TOKEN);
    // (method, path, token, body) → (status, error code or "" when past auth)
    let cases: [(Method, &str, &str, &str, u16, &str); 11] = [
        // A read passes auth (then 503: the catalog is not loaded here).
        (
            Method::GET,
            "/api/v1/partners",
            READER,
            "",
            503,
            "unavailable",
        ),
        (Method::GET, "/api/v1/links", TOKEN, "", 503, "unavailable"),
        // Every write is refused to the reader before anything else.
        (
            Method::POST,
            "/api/v1/partners",
            READER,
            "{}",
            403,
            "forbidden",
        ),
        (
            Method::PATCH,
            "/api/v1/links/1",
            READER,
            "{}",
            403,
            "forbidden",
        ),
        (
            Method::DELETE,
            "/api/v1/links/1",
            READER,
            "",
            403,
            "forbidden",
        ),
        (
            Method::PATCH,
            "/api/v1/conversions/0000AbC",
            READER,
            "{}",
            403,
            "forbidden",
        ),
        (
            Method::POST,
            "/api/v1/partners/1/payouts",
            READER,
            r#"{"paid_through":"2026-01-31","currency":"USD"}"#,
            403,
            "forbidden",
        ),
        // The payouts report is a read (then 503: no catalog here).
        (
            Method::GET,
            "/api/v1/reports/payouts",
            READER,
            "",
            503,
            "unavailable",
        ),
        (
            Method::GET,
            "/api/v1/reports/payouts?bogus=1",
            READER,
            "",
            400,
            "invalid",
        ),
        // The admin token still writes (past auth: invalid body).
        (
            Method::POST,
            "/api/v1/partners",
            TOKEN,
            "{}",
            400,
            "invalid",
        ),
        // A token that is neither.
        (
            Method::GET,
            "/api/v1/partners",
            "analyst-token2",
            "",
            401,
            "unauthorized",
        ),
    ];
    for (method, path, token, body, status, code) in cases {
        let (got, v) = call(&s, method.clone(), path, Some(token), body).await;
        assert_eq!(
            (got.as_u16(), v["error"]["code"].as_str().unwrap_or("")),
            (status, code),
            "{method} {path} with {token}: {v}"
        );
        if status == 403 {
            assert_eq!(v["error"]["field"], "authorization", "{v}");
        }
    }
    // Read-only tokens alone open reads, with no admin token configured.
    let s = with_reader("");
    let (got, _) = call(&s, Method::GET, "/api/v1/partners", Some(READER), "").await;
    assert_eq!(got, StatusCode::SERVICE_UNAVAILABLE);
    let (got, _) = call(&s, Method::GET, "/api/v1/partners", Some(""), "").await;
    assert_eq!(got, StatusCode::UNAUTHORIZED);
}

/// The dashboard's page and files: no token needed, only this origin
/// allowed, versioned files cached for good, the rest revalidated.
#[tokio::test]
async fn the_dashboard_is_served_without_a_token() {
    let s = state(TOKEN);
    let get = |path: &str, etag: Option<&str>| {
        let mut req = Request::builder().uri(path);
        if let Some(e) = etag {
            req = req.header("if-none-match", e);
        }
        router(s.clone()).oneshot(req.body(Body::empty()).unwrap())
    };
    let header = |r: &axum::response::Response, name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };

    let page = get("/dashboard", None).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&page, "cache-control"), "no-cache");
    let csp = header(&page, "content-security-policy");
    assert!(csp.starts_with("default-src 'self';"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    let etag = header(&page, "etag");
    let html = page.into_body().collect().await.unwrap().to_bytes();
    let html = String::from_utf8(html.to_vec()).unwrap();
    assert!(html.contains("id=\"chart-traffic\""), "{html}");

    // The client's copy is current: 304, no body.
    let again = get("/dashboard", Some(&etag)).await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    // Each file the page loads, by the URL the page gives it.
    for name in ["uplot.min.js", "uplot.min.css", "app.js", "app.css"] {
        let at = html.find(&format!("/dashboard/{name}?v=")).unwrap();
        let url = &html[at..at + html[at..].find('"').unwrap()];
        let r = get(url, None).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{url}");
        assert_eq!(
            header(&r, "cache-control"),
            "public, max-age=31536000, immutable",
            "{url}"
        );
        let kind = if name.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert_eq!(header(&r, "content-type"), format!("{kind}; charset=utf-8"));
        // Without its version tag (or with an old one): revalidated.
        let r = get(&format!("/dashboard/{name}?v=0"), None).await.unwrap();
        assert_eq!(header(&r, "cache-control"), "no-cache", "{name}");
    }
    let licence = get("/dashboard/uplot-LICENSE.txt", None).await.unwrap();
    assert_eq!(licence.status(), StatusCode::OK);

    let (status, v) = call(&s, Method::GET, "/dashboard/secrets.txt", None, "").await;
    assert_eq!(
        (status, error_of(&v)),
        (StatusCode::NOT_FOUND, ("not_found", Some("asset")))
    );
}

/// Stats: bad input is named before any query; an unreachable ClickHouse
/// is `503` with the reason, not a hang.
#[tokio::test]
async fn stats_refuse_bad_input_and_answer_503_without_clickhouse() {
    let s = state(TOKEN);
    for (query, field) in [
        ("group_by=campaign", "group_by"),
        ("metrics=profit", "metrics"),
        ("from=2026-02-01&to=2026-01-01", "from"),
        ("from=2020-01-01&to=2026-01-01", "to"),
        ("tz=Nowhere/Land", "tz"),
        ("cursor=zz", "cursor"),
        ("source=rollup&group_by=sub2", "source"),
    ] {
        let (status, v) = call(
            &s,
            Method::GET,
            &format!("/api/v1/stats?{query}"),
            Some(TOKEN),
            "",
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {v}");
        assert_eq!(error_of(&v), ("invalid", Some(field)), "{query}");
    }
    let (status, _) = call(&s, Method::GET, "/api/v1/stats", None, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, v) = call(
        &s,
        Method::GET,
        "/api/v1/stats?group_by=day",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(error_of(&v).0, "unavailable");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("clickhouse"),
        "{v}"
    );
}
