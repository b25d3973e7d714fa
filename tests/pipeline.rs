//! The tracked redirect and click pipeline, end to end, against real Redis
//! and ClickHouse processes and the built `trackedge` binary.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};

use common::*;
use serde_json::json;
use trackedge::click_id::ClickIdCodec;

/// Waits until `sql` returns at least `expected`, then returns it.
fn wait_count(ch: &ClickHouse, sql: &str, expected: u64) -> u64 {
    wait_for(&format!("{sql} to reach {expected}"), || {
        let n = ch.count(sql);
        (n >= expected).then_some(n)
    })
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn every_redirect_lands_in_clickhouse_exactly_once() {
    // The public listener binds port 0, so the tracking URL comes from the
    // public URL setting (trailing slash and all).
    let server = Server::start(
        ServerConfig::new("e2e").with("TRACKEDGE_PUBLIC_URL", "https://go.example.com/"),
    );
    let link = seed_link(
        &server,
        "https://shop.example.com/l?cid={click_id}&p={partner_id}&s1={sub1}&s2={sub2}",
        None,
    )
    .await;
    let code = link["code"].as_str().unwrap();
    assert_eq!(
        link["tracking_url"],
        format!("https://go.example.com/{code}")
    );
    let partner_id = link["partner_id"].as_u64().unwrap();

    // Sub-ids with characters that must never split a header or a query.
    let nasty = [
        "plain",
        "a b",
        "x\r\nSet-Cookie: evil=1",
        "quote\"'",
        "é中",
        "a&b=c#d",
        "%41",
    ];
    let codec = ClickIdCodec::new(SECRET.as_bytes(), &[], 0);
    let c = client();
    let n = 300;
    let mut ids = HashSet::new();
    for i in 0..n {
        let sub1 = nasty[i % nasty.len()];
        let url = reqwest::Url::parse_with_params(
            &format!("{}/{}", server.public, code),
            &[("sub1", sub1), ("sub2", &format!("n{i}"))],
        )
        .unwrap();
        let resp = c
            .get(url)
            .header(
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        assert_eq!(
            resp.headers()["referrer-policy"],
            "no-referrer-when-downgrade"
        );
        let loc = location(&resp);
        let parsed = reqwest::Url::parse(&loc).unwrap();
        assert_eq!(parsed.host_str(), Some("shop.example.com"));
        let q: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        let get = |k: &str| {
            q.iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(q.len(), 4, "no value may add parameters: {loc}");
        assert_eq!(get("p"), partner_id.to_string());
        assert_eq!(get("s1"), sub1, "{loc}");
        assert_eq!(get("s2"), format!("n{i}"));
        let cid = get("cid");
        let info = codec
            .verify(&cid)
            .expect("click id verifies with the secret");
        assert_eq!(info.link_id, link["id"].as_u64().unwrap());
        assert!(ids.insert(cid), "duplicate click id");
    }

    let ch = &services().clickhouse;
    let db = &server.config.database;
    wait_count(ch, &format!("SELECT count() FROM {db}.clicks"), n as u64);
    assert_eq!(
        ch.count(&format!("SELECT count() FROM {db}.clicks")),
        n as u64
    );
    assert_eq!(
        ch.count(&format!("SELECT uniqExact(click_id) FROM {db}.clicks")),
        n as u64
    );
    let stored: HashSet<String> = ch
        .query(&format!("SELECT click_id FROM {db}.clicks FORMAT TSV"))
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(stored, ids, "stored click ids are the ones handed out");
    // Sub-ids are stored decoded, byte for byte.
    let crlf = ch.count(&format!(
        "SELECT count() FROM {db}.clicks WHERE sub1 = 'x\\r\\nSet-Cookie: evil=1'"
    ));
    assert_eq!(crlf, (0..n).filter(|i| i % nasty.len() == 2).count() as u64);
    let row = ch.query(&format!(
        "SELECT code, partner_id, is_bot, is_rate_limited, device, ip FROM {db}.clicks WHERE sub2 = 'n0' FORMAT TSV"
    ));
    assert_eq!(
        row.trim(),
        format!("{code}\t{partner_id}\t0\t0\tdesktop\t127.0.0.1")
    );
}

#[tokio::test]
async fn bots_heads_and_floods_are_redirected_and_flagged() {
    let server = Server::start(
        ServerConfig::new("bots")
            .with("TRACKEDGE_LIMITS_CLICKS_PER_IP_PER_MINUTE", "1")
            .with("TRACKEDGE_LIMITS_CLICKS_BURST", "5")
            // Only the loopback peer is trusted, so X-Forwarded-For picks
            // the client each request pretends to be.
            .with("TRACKEDGE_TRUSTED_PROXIES", "127.0.0.0/8"),
    );
    let link = seed_link(&server, "https://m.example.com/", Some("flood1")).await;
    let url = format!("{}/{}", server.public, link["code"].as_str().unwrap());
    let c = client();
    let browser =
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148 Safari/604.1";
    // One client makes 10 clicks: 5 fit the burst, 5 are over the limit.
    for _ in 0..10 {
        let r = c
            .get(&url)
            .header("user-agent", browser)
            .header("x-forwarded-for", "198.51.100.7")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302);
    }
    // A bot and a HEAD request from other clients.
    let r = c
        .get(&url)
        .header("user-agent", "Googlebot/2.1")
        .header("x-forwarded-for", "198.51.100.8")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let r = c
        .head(&url)
        .header("user-agent", browser)
        .header("x-forwarded-for", "198.51.100.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(location(&r).contains("click_id="));

    let ch = &services().clickhouse;
    let db = &server.config.database;
    wait_count(ch, &format!("SELECT count() FROM {db}.clicks"), 12);
    assert_eq!(
        ch.count(&format!(
            "SELECT count() FROM {db}.clicks WHERE is_rate_limited = 1"
        )),
        5
    );
    assert_eq!(
        ch.count(&format!(
            "SELECT count() FROM {db}.clicks WHERE is_rate_limited = 1 AND ip = '198.51.100.7'"
        )),
        5
    );
    assert_eq!(
        ch.count(&format!("SELECT count() FROM {db}.clicks WHERE is_bot = 1")),
        2
    );
    assert_eq!(
        ch.count(&format!(
            "SELECT count() FROM {db}.clicks WHERE device = 'mobile'"
        )),
        10
    );
}

#[tokio::test]
async fn unknown_codes_and_bad_requests_get_clear_errors() {
    let mut server = Server::start(
        ServerConfig::new("bad")
            .with("TRACKEDGE_HTTP_HEADER_READ_TIMEOUT_MS", "300")
            .with("TRACKEDGE_HTTP_MAX_HEADER_BYTES", "8192"),
    );
    let link = seed_link(&server, "https://m.example.com/", Some("good1")).await;
    let c = client();
    let cases: &[(&str, &str, u16)] = &[
        ("GET", "/nosuchcode", 404),
        ("GET", "/bad-code!", 404),
        ("GET", "/a/b", 404),
        ("GET", "/", 404),
        ("POST", "/good1", 405),
        ("DELETE", "/good1", 405),
        ("GET", &format!("/{}", "x".repeat(40)), 404),
    ];
    for (method, path, status) in cases {
        let r = c
            .request(
                method.parse().unwrap(),
                format!("{}{}", server.public, path),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), *status, "{method} {path}");
    }
    let r = c
        .get(format!("{}/nosuchcode", server.public))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    assert!(r.text().await.unwrap().contains("Link not found"));

    // Oversized head: hyper answers 431.
    let r = c
        .get(format!("{}/good1", server.public))
        .header("x-big", "a".repeat(20_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 431);

    // A slow client that never finishes its head is cut off: the server
    // closes the connection (end of stream), the read does not time out.
    let addr = server.public.trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(b"GET /good1 HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut buf = Vec::new();
    let read = s.read_to_end(&mut buf);
    assert!(read.is_ok(), "slow client was not cut off: {read:?}");
    assert!(
        !String::from_utf8_lossy(&buf).contains("302"),
        "an incomplete request must not be served"
    );

    // Still serving.
    let r = c
        .get(format!(
            "{}/{}",
            server.public,
            link["code"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);

    // Orphan hits are recorded, with the code cut to 64 bytes.
    let ch = &services().clickhouse;
    let db = server.config.database.clone();
    wait_count(
        ch,
        &format!("SELECT count() FROM {db}.orphan_hits WHERE code = 'nosuchcode'"),
        2,
    );
    assert_eq!(server.terminate().code(), Some(0));
}

#[tokio::test]
async fn fallback_url_takes_unknown_codes() {
    let server = Server::start(
        ServerConfig::new("fb").with("TRACKEDGE_FALLBACK_URL", "https://www.example.com/partners"),
    );
    let r = client()
        .get(format!("{}/missing", server.public))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "https://www.example.com/partners");
}

#[tokio::test]
async fn admin_api_validates_and_manages_the_catalog() {
    let server = Server::start(ServerConfig::new("admin"));
    let c = client();
    // Auth.
    let r = c
        .get(format!("{}/api/v1/partners", server.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(format!("{}/api/v1/partners", server.admin))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    // Malformed JSON.
    let r = c
        .post(format!("{}/api/v1/partners", server.admin))
        .bearer_auth(TOKEN)
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "malformed_json"
    );

    let cases: Vec<(&str, serde_json::Value, u16, &str)> = vec![
        (
            "/api/v1/partners",
            json!({"kind": "affiliate"}),
            400,
            "name",
        ),
        (
            "/api/v1/partners",
            json!({"name": "x", "kind": "vendor"}),
            400,
            "kind",
        ),
        (
            "/api/v1/partners",
            json!({"name": "x", "kind": "affiliate", "postback_url": "https://p.com/?x={nope}"}),
            400,
            "postback_url",
        ),
        (
            "/api/v1/offers",
            json!({"name": "o", "url": "javascript:alert(1)", "payout": {"model": "cpa", "amount": "1"}}),
            400,
            "url",
        ),
        (
            "/api/v1/offers",
            json!({"name": "o", "url": "https://m.com/a b", "payout": {"model": "cpa", "amount": "1"}}),
            400,
            "url",
        ),
        (
            "/api/v1/offers",
            json!({"name": "o", "url": "https://m.com/", "payout": {"model": "cpa", "amount": 1.5}}),
            400,
            "payout",
        ),
        (
            "/api/v1/offers",
            json!({"name": "o", "url": "https://m.com/", "payout": {"model": "cpa", "amount": "1"}, "currency": "dollars"}),
            400,
            "currency",
        ),
        (
            "/api/v1/links",
            json!({"partner_id": 999, "offer_id": 1}),
            422,
            "partner_id",
        ),
    ];
    for (path, body, status, field) in cases {
        let (s, v) = admin(&server, "POST", path, Some(body.clone())).await;
        assert_eq!(s, status, "{path} {body}: {v}");
        assert_eq!(v["error"]["field"], field, "{path} {body}: {v}");
    }

    let link = seed_link(
        &server,
        "https://m.example.com/?c={click_id}",
        Some("Vanity9"),
    )
    .await;
    assert_eq!(link["code"], "Vanity9");
    let (s, v) = admin(&server, "POST", "/api/v1/links", Some(json!({"partner_id": link["partner_id"], "offer_id": link["offer_id"], "code": "Vanity9"}))).await;
    assert_eq!((s, v["error"]["field"].clone()), (409, json!("code")));
    let (s, v) = admin(
        &server,
        "POST",
        "/api/v1/links",
        Some(json!({"partner_id": link["partner_id"], "offer_id": 12345, "code": "x"})),
    )
    .await;
    assert_eq!((s, v["error"]["field"].clone()), (422, json!("offer_id")));
    for bad in ["a-b", "pixel", "", &"x".repeat(33)] {
        let (s, v) = admin(&server, "POST", "/api/v1/links", Some(json!({"partner_id": link["partner_id"], "offer_id": link["offer_id"], "code": bad}))).await;
        assert_eq!(
            (s, v["error"]["field"].clone()),
            (400, json!("code")),
            "{bad}"
        );
    }

    // Generated codes: base62, distinct, not sequential.
    let mut codes = Vec::new();
    for _ in 0..5 {
        let (s, v) = admin(
            &server,
            "POST",
            "/api/v1/links",
            Some(json!({"partner_id": link["partner_id"], "offer_id": link["offer_id"]})),
        )
        .await;
        assert_eq!(s, 201);
        codes.push(v["code"].as_str().unwrap().to_string());
    }
    assert!(codes
        .iter()
        .all(|c| c.len() == 8 && c.bytes().all(|b| b.is_ascii_alphanumeric())));
    assert_eq!(codes.iter().collect::<HashSet<_>>().len(), 5);

    // Paging through six links two at a time.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/links?limit=2&cursor={c}"),
            None => "/api/v1/links?limit=2".into(),
        };
        let (s, v) = admin(&server, "GET", &path, None).await;
        assert_eq!(s, 200);
        seen.extend(
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_u64().unwrap()),
        );
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    let (s, _) = admin(&server, "GET", "/api/v1/links?limit=0", None).await;
    assert_eq!(s, 400);

    // Get, pause, resume, delete.
    let id = link["id"].as_u64().unwrap();
    let url = format!("{}/Vanity9", server.public);
    let (s, v) = admin(&server, "GET", &format!("/api/v1/links/{id}"), None).await;
    assert_eq!((s, v["code"].clone()), (200, json!("Vanity9")));
    assert_eq!(c.get(&url).send().await.unwrap().status(), 302);
    patch(
        &server,
        &format!("/api/v1/links/{id}"),
        json!({"status": "paused"}),
    )
    .await;
    assert_eq!(c.get(&url).send().await.unwrap().status(), 404);
    patch(
        &server,
        &format!("/api/v1/links/{id}"),
        json!({"status": "active"}),
    )
    .await;
    assert_eq!(c.get(&url).send().await.unwrap().status(), 302);
    // Pausing the offer stops its links; changing its URL changes them.
    let oid = link["offer_id"].as_u64().unwrap();
    patch(
        &server,
        &format!("/api/v1/offers/{oid}"),
        json!({"url": "https://new.example.com/x"}),
    )
    .await;
    let r = c.get(&url).send().await.unwrap();
    assert!(location(&r).starts_with("https://new.example.com/x?click_id="));
    patch(
        &server,
        &format!("/api/v1/offers/{oid}"),
        json!({"status": "paused"}),
    )
    .await;
    assert_eq!(c.get(&url).send().await.unwrap().status(), 404);
    patch(
        &server,
        &format!("/api/v1/offers/{oid}"),
        json!({"status": "active"}),
    )
    .await;
    let (s, _) = admin(&server, "DELETE", &format!("/api/v1/links/{id}"), None).await;
    assert_eq!(s, 204);
    assert_eq!(
        c.get(&url).send().await.unwrap().status(),
        404,
        "deleted link stops at once"
    );
    let (s, _) = admin(&server, "GET", &format!("/api/v1/links/{id}"), None).await;
    assert_eq!(s, 404);
    let (s, _) = admin(&server, "DELETE", &format!("/api/v1/links/{id}"), None).await;
    assert_eq!(s, 404);
}

/// PATCHes `path` with `body` and expects 200.
async fn patch(server: &Server, path: &str, body: serde_json::Value) {
    let (s, v) = admin(server, "PATCH", path, Some(body)).await;
    assert_eq!(s, 200, "PATCH {path}: {v}");
}

#[tokio::test]
async fn link_changes_reach_every_node_through_the_change_channel() {
    // The counter check, the other way a change can arrive, waits a day: a
    // change that reaches node B came through the change channel.
    let a = Server::start(
        ServerConfig::new("nodes").with("TRACKEDGE_REDIS_RESYNC_INTERVAL_SECS", "86400"),
    );
    let b = Server::start(a.config.other_node());
    let link = seed_link(&a, "https://m.example.com/", None).await;
    let code = link["code"].as_str().unwrap();
    let on_b = format!("{}/{}", b.public, code);
    let status_on_b = || http_get_blocking(&on_b).map(|(s, _)| s);
    let changes_on_b =
        || metric_if_any(&b, "trackedge_catalog_events_total{event=\"change\"}").unwrap_or(0.0);
    wait_for("node B to learn the new link", || {
        (status_on_b() == Some(302)).then_some(())
    });
    let before = changes_on_b();
    let (s, _) = admin(&a, "DELETE", &format!("/api/v1/links/{}", link["id"]), None).await;
    assert_eq!(s, 204);
    wait_for("node B to drop the deleted link", || {
        (status_on_b() == Some(404)).then_some(())
    });
    assert_eq!(
        changes_on_b(),
        before + 1.0,
        "node B applied the deletion as one change message"
    );
}

#[tokio::test]
async fn sigterm_flushes_every_buffered_click() {
    // A flush interval far beyond the test: only shutdown can flush.
    let mut server = Server::start(
        ServerConfig::new("term")
            .with("TRACKEDGE_CLICKHOUSE_FLUSH_INTERVAL_MS", "600000")
            .with("TRACKEDGE_CLICKHOUSE_BATCH_ROWS", "1000000"),
    );
    let link = seed_link(&server, "https://m.example.com/", None).await;
    let url = format!("{}/{}", server.public, link["code"].as_str().unwrap());
    let c = client();
    for _ in 0..200 {
        assert_eq!(c.get(&url).send().await.unwrap().status(), 302);
    }
    let ch = &services().clickhouse;
    let db = server.config.database.clone();
    assert_eq!(server.terminate().code(), Some(0), "{}", server.log_text());
    assert_eq!(ch.count(&format!("SELECT count() FROM {db}.clicks")), 200);
}

#[tokio::test]
async fn clicks_survive_clickhouse_being_unreachable_at_shutdown() {
    // ClickHouse at a port that refuses connections: the flusher cannot insert,
    // so SIGTERM must spool; the next start (with ClickHouse) replays.
    let dead = RefusingPort::new();
    let mut cfg = ServerConfig::new("spool").with("TRACKEDGE_HTTP_SHUTDOWN_GRACE_SECS", "1");
    let good_url = cfg.clickhouse_url.clone();
    cfg.clickhouse_url = dead.url();
    let mut first = Server::start_with_clickhouse_down(cfg.clone());
    let link = seed_link(&first, "https://m.example.com/", None).await;
    let url = format!("{}/{}", first.public, link["code"].as_str().unwrap());
    let c = client();
    for _ in 0..50 {
        assert_eq!(c.get(&url).send().await.unwrap().status(), 302);
    }
    assert_eq!(first.terminate().code(), Some(0), "{}", first.log_text());
    assert!(
        first.log_text().contains("the rest stays in the spool"),
        "{}",
        first.log_text()
    );

    cfg.clickhouse_url = good_url;
    let second = Server::start(cfg.clone());
    let ch = &services().clickhouse;
    let db = &cfg.database;
    wait_count(ch, &format!("SELECT count() FROM {db}.clicks"), 50);
    assert_eq!(
        ch.count(&format!("SELECT uniqExact(click_id) FROM {db}.clicks")),
        50
    );
    wait_for("the shipped segments to be deleted", || {
        let segments = std::fs::read_dir(cfg.spool_dir.join("log"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("seg-"))
            .count();
        // Only the segment being written and the spare remain.
        (segments <= 2).then_some(())
    });
    drop(second);
}

#[tokio::test]
async fn serve_waits_for_redis_and_keeps_redirecting_without_it() {
    let mut redis = Redis::start();
    let mut cfg = ServerConfig::new("redis");
    cfg.redis_url = redis.url();
    let server = Server::start(cfg.clone());
    let link = seed_link(&server, "https://m.example.com/", None).await;
    let url = format!("{}/{}", server.public, link["code"].as_str().unwrap());
    let c = client();
    assert_eq!(c.get(&url).send().await.unwrap().status(), 302);

    // Redis goes away: redirects keep working from the cache; admin writes
    // answer 503.
    let port = redis.port;
    redis.kill();
    for _ in 0..20 {
        assert_eq!(c.get(&url).send().await.unwrap().status(), 302);
    }
    let (s, v) = admin(
        &server,
        "POST",
        "/api/v1/partners",
        Some(json!({"name": "p", "kind": "affiliate"})),
    )
    .await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["error"]["code"], "unavailable");

    // A server started while Redis is down waits, then serves once it is up.
    let mut late = Server::spawn(cfg.other_node());
    wait_for("the late server to report redis down", || {
        late.log_text()
            .contains("redis unreachable at start; retrying")
            .then_some(())
    });
    let readyz = format!("{}/readyz", late.admin);
    assert_eq!(
        http_get_blocking(&readyz).map(|(s, _)| s),
        Some(503),
        "not ready without the catalog"
    );
    let (s, v) = admin(&late, "GET", "/api/v1/links", None).await;
    assert_eq!((s, v["error"]["code"].clone()), (503, json!("unavailable")));
    // Back on the port the servers know.
    let _redis2 = Redis::start_in(port, tempfile::tempdir().unwrap());
    late.wait_ready();

    let ch = &services().clickhouse;
    wait_count(
        ch,
        &format!("SELECT count() FROM {}.clicks", cfg.database),
        21,
    );
}

#[test]
fn bad_config_exits_64_naming_the_key() {
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_trackedge"));
        cmd.args(args).env_clear();
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(Env, &[&str], &str)] = &[
        (
            &[
                ("TRACKEDGE_CLICKHOUSE_BATCH_ROWS", "lots"),
                ("TRACKEDGE_SECRET", SECRET),
            ],
            &["serve"],
            "clickhouse.batch_rows",
        ),
        (
            &[
                ("TRACKEDGE_LISTEN", "nowhere"),
                ("TRACKEDGE_SECRET", SECRET),
            ],
            &["serve"],
            "listen",
        ),
        (&[], &["serve"], "secret"),
        // The URL parser would drop the newline; the Location header that
        // unknown codes get cannot hold it (this used to panic at start).
        (
            &[
                ("TRACKEDGE_FALLBACK_URL", "https://example.com/\nx"),
                ("TRACKEDGE_SECRET", SECRET),
            ],
            &["serve"],
            "fallback_url",
        ),
        (
            &[("TRACKEDGE_SECRET", SECRET)],
            &["--config", "/nonexistent/trackedge.toml", "serve"],
            "/nonexistent/trackedge.toml",
        ),
    ];
    for (env, args, key) in cases {
        let out = run(env, args);
        assert_eq!(out.status.code(), Some(64), "{args:?} {env:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(&format!("config error: {key}:")), "{err}");
    }
    let out = run(
        &[
            ("TRACKEDGE_SECRET", SECRET),
            ("TRACKEDGE_ADMIN_TOKEN", "tok-123"),
        ],
        &["check-config"],
    );
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(SECRET) && !text.contains("tok-123"));
    assert!(text.contains("listen = \"127.0.0.1:8080\""), "{text}");
}

/// A link's default sub-ids reach the destination and the click's row when
/// the tracking URL carries none; a sub-id the URL carries wins.
#[tokio::test]
async fn default_sub_ids_are_recorded_where_the_url_carries_none() {
    let server = Server::start(ServerConfig::new("defsubs"));
    let (_, offer, partner) = seed_partner_link(
        &server,
        json!({"name": "P", "kind": "affiliate"}),
        "https://shop.example/?cid={click_id}&s1={sub1}&s2={sub2}",
        None,
    )
    .await;
    let (s, link) = admin(
        &server,
        "POST",
        "/api/v1/links",
        Some(json!({"partner_id": partner["id"], "offer_id": offer["id"],
                    "default_subs": {"sub1": "newsletter", "sub2": "may"}})),
    )
    .await;
    assert_eq!(s, 201, "{link}");
    assert_eq!(link["default_subs"]["sub1"], "newsletter", "{link}");
    let (s, bad) = admin(
        &server,
        "POST",
        "/api/v1/links",
        Some(json!({"partner_id": partner["id"], "offer_id": offer["id"],
                    "default_subs": {"sub2": "x".repeat(300)}})),
    )
    .await;
    assert_eq!(
        (s, &bad["error"]["field"]),
        (400, &json!("default_subs.sub2")),
        "{bad}"
    );

    let url = format!("{}/{}", server.public, link["code"].as_str().unwrap());
    let c = client();
    let plain = c
        .get(&url)
        .header("user-agent", BROWSER_UA)
        .send()
        .await
        .unwrap();
    assert!(
        location(&plain).contains("&s1=newsletter&s2=may"),
        "{}",
        location(&plain)
    );
    let own = c
        .get(format!("{url}?sub1=own"))
        .header("user-agent", BROWSER_UA)
        .send()
        .await
        .unwrap();
    assert!(
        location(&own).contains("&s1=own&s2=may"),
        "{}",
        location(&own)
    );

    let db = &server.config.database;
    let ch = &services().clickhouse;
    let sql = format!(
        "SELECT count() FROM {db}.clicks WHERE link_id = {} AND sub2 = 'may'",
        link["id"]
    );
    wait_count(ch, &sql, 2);
    let subs = ch.query(&format!(
        "SELECT sub1 FROM {db}.clicks WHERE link_id = {} ORDER BY sub1 FORMAT TSV",
        link["id"]
    ));
    assert_eq!(
        subs.split_whitespace().collect::<Vec<_>>(),
        ["newsletter", "own"]
    );
}
