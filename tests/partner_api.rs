//! The partner API end to end against real Redis and ClickHouse and the
//! built binary: keys (creation, listing, revocation on every node, rate,
//! inactive partners), cross-partner isolation of every route (links,
//! conversions, offers, stats, deals, payouts; fixed cases and a property
//! over generated ids), offer visibility and access, and the partner's
//! stats and conversions against the admin's.

mod common;
mod partner_support;

use common::*;
use partner_support::*;
use proptest::prelude::*;
use serde_json::{json, Value};

#[tokio::test]
async fn another_partners_ids_answer_404_on_every_route() {
    let server = Server::start(ServerConfig::new("papi_cross"));
    let t = two_partners(&server).await;
    let (a, b) = (t.a, t.b);
    let (lb, pv) = (&t.b_link["id"], &t.private["id"]);
    let conv = &t.b_conversion;
    let deal = t.b_deal;
    // Every route that takes an id, with B's ids and A's key.
    let cases: Vec<(&str, String, Option<Value>, &str)> = vec![
        ("GET", format!("/partner/v1/links/{lb}"), None, "id"),
        (
            "GET",
            format!("/partner/v1/conversions/{conv}"),
            None,
            "conversion_id",
        ),
        ("GET", format!("/partner/v1/offers/{pv}"), None, "id"),
        (
            "POST",
            format!("/partner/v1/offers/{pv}/access-requests"),
            None,
            "id",
        ),
        (
            "POST",
            "/partner/v1/links".into(),
            Some(json!({"offer_id": pv})),
            "offer_id",
        ),
        (
            "GET",
            format!("/partner/v1/stats?partner_id={b}"),
            None,
            "partner_id",
        ),
        (
            "GET",
            format!("/partner/v1/stats?partner_id={a},{b}"),
            None,
            "partner_id",
        ),
        (
            "GET",
            format!("/partner/v1/stats?link_id={lb}"),
            None,
            "link_id",
        ),
        (
            "GET",
            format!("/partner/v1/conversions?partner_id={b}"),
            None,
            "partner_id",
        ),
        ("GET", format!("/partner/v1/deals/{deal}"), None, "id"),
        (
            "GET",
            format!("/partner/v1/deals?partner_id={b}"),
            None,
            "partner_id",
        ),
        (
            "POST",
            "/partner/v1/deals".into(),
            Some(json!({"offer_id": pv, "company": "X", "customer_id": "x-1"})),
            "offer_id",
        ),
        (
            "GET",
            format!("/partner/v1/payouts?partner_id={b}"),
            None,
            "partner_id",
        ),
    ];
    for (method, path, body, named) in &cases {
        let (s, v) = papi(&server, &t.a_key, method, path, body.clone()).await;
        assert_eq!(
            (s, code(&v), field(&v)),
            (404, "not_found", *named),
            "{method} {path}: {v}"
        );
    }
    // The same requests with B's own key succeed: the 404s are about
    // whose ids they are, not broken routes.
    for (method, path) in [
        ("GET", format!("/partner/v1/links/{lb}")),
        ("GET", format!("/partner/v1/conversions/{conv}")),
        ("GET", format!("/partner/v1/offers/{pv}")),
        ("GET", format!("/partner/v1/stats?partner_id={b}")),
        ("GET", format!("/partner/v1/stats?link_id={lb}")),
        ("GET", format!("/partner/v1/conversions?partner_id={b}")),
        ("GET", format!("/partner/v1/deals/{deal}")),
        ("GET", format!("/partner/v1/deals?partner_id={b}")),
        ("GET", format!("/partner/v1/payouts?partner_id={b}")),
    ] {
        let (s, v) = papi(&server, &t.b_key, method, &path, None).await;
        assert_eq!(s, 200, "{method} {path}: {v}");
    }
    // And the other way round.
    let (s, _) = papi(
        &server,
        &t.b_key,
        "GET",
        &format!("/partner/v1/links/{}", t.a_link["id"]),
        None,
    )
    .await;
    assert_eq!(s, 404);
    // Listings hold only the caller's own.
    let (s, links) = papi(&server, &t.a_key, "GET", "/partner/v1/links", None).await;
    assert_eq!(s, 200, "{links}");
    let ids: Vec<&Value> = links["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["id"])
        .collect();
    assert_eq!(ids, vec![&t.a_link["id"]], "{links}");
    let (s, convs) = papi(&server, &t.a_key, "GET", "/partner/v1/conversions", None).await;
    assert_eq!(
        (s, convs["items"].as_array().unwrap().len()),
        (200, 0),
        "{convs}"
    );
    let (s, offers) = papi(
        &server,
        &t.a_key,
        "GET",
        "/partner/v1/offers?scope=visible",
        None,
    )
    .await;
    assert_eq!(s, 200, "{offers}");
    assert!(
        offers["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["id"] != *pv),
        "{offers}"
    );
    let (s, deals) = papi(&server, &t.a_key, "GET", "/partner/v1/deals", None).await;
    assert_eq!((s, &deals["items"]), (200, &json!([])), "{deals}");
    let (s, deals) = papi(&server, &t.b_key, "GET", "/partner/v1/deals", None).await;
    assert_eq!(s, 200, "{deals}");
    assert_eq!(deals["items"][0]["id"], deal, "{deals}");

    // Payouts: B is paid (a conversion old enough to be out of its hold,
    // paid through yesterday); A sees none of B's balances or payments.
    let db = &server.config.database;
    let old = now_secs() - 40 * 86_400;
    services().clickhouse.query(&format!(
        "INSERT INTO {db}.conversions (conversion_id, ts, partner_id, offer_id, status, reason, \
         amount, currency, payout, payout_currency, version) VALUES ('b-old', toDateTime({old}), \
         {b}, {}, 'approved', 'ok', toDecimal64('20', 4), 'USD', toDecimal64('5', 4), 'USD', 1)",
        t.public["id"]
    ));
    let (_, report) = admin(&server, "GET", "/api/v1/reports/payouts", None).await;
    let through = report["payable_through"].clone();
    let (s, paid) = admin(
        &server,
        "POST",
        &format!("/api/v1/partners/{b}/payouts"),
        Some(json!({"paid_through": through, "currency": "USD"})),
    )
    .await;
    assert_eq!((s, &paid["amount"]), (201, &json!("5.00")), "{paid}");
    let (s, mine) = papi(&server, &t.a_key, "GET", "/partner/v1/payouts", None).await;
    assert_eq!(s, 200, "{mine}");
    assert_eq!(
        (&mine["balances"], &mine["payments"]),
        (&json!([]), &json!([])),
        "{mine}"
    );
    let (s, theirs) = papi(&server, &t.b_key, "GET", "/partner/v1/payouts", None).await;
    assert_eq!(s, 200, "{theirs}");
    assert_eq!(
        (
            &theirs["balances"][0]["paid"],
            &theirs["payments"][0]["payment_id"]
        ),
        (&json!("5.00"), &paid["payment_id"]),
        "{theirs}"
    );

    // A partner key opens nothing of the admin API.
    let resp = client()
        .get(format!("{}/api/v1/partners", server.admin))
        .header("Authorization", format!("Bearer {}", t.a_key))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[test]
fn no_generated_id_of_another_partner_answers_200() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Every case makes eight calls: far above the default rate per key.
    let config = ServerConfig::new("papi_prop")
        .with("TRACKEDGE_PARTNER_API_REQUESTS_PER_MINUTE", "1000000")
        .with("TRACKEDGE_PARTNER_API_BURST", "100000");
    let server = Server::start(config);
    let t = runtime.block_on(two_partners(&server));
    drop(runtime);
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap();
    let get = |path: String| {
        let resp = http
            .get(format!("{}{path}", server.public))
            .header("Authorization", format!("Bearer {}", t.a_key))
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().unwrap_or(Value::Null))
    };
    let b_link = t.b_link["id"].as_u64().unwrap();
    let private = t.private["id"].as_u64().unwrap();
    let ids = prop_oneof![
        Just(b_link),
        Just(private),
        Just(t.b),
        Just(t.b_deal),
        0..20u64,
        any::<u64>()
    ];
    let conversion_ids = prop_oneof![
        Just(t.b_conversion.clone()),
        "[0-9A-Za-z]{22}",
        "[0-9A-Za-z_-]{1,64}",
    ];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(64));
    runner
        .run(&(ids, conversion_ids), |(id, conv)| {
            // A link answers 200 only when it is A's own.
            let (s, v) = get(format!("/partner/v1/links/{id}"));
            prop_assert!(s != 200 || v["partner_id"] == t.a, "link {id}: {s} {v}");
            prop_assert!(s == 200 || s == 404, "link {id}: {s} {v}");
            // The private offer never shows; others are no one's.
            let (s, v) = get(format!("/partner/v1/offers/{id}"));
            prop_assert!(s != 200 || id != private, "offer {id}: {s} {v}");
            // Stats of another partner or of its link: never.
            let (s, v) = get(format!(
                "/partner/v1/stats?partner_id={id}&from=2026-01-01&to=2026-01-02"
            ));
            prop_assert!(s != 200 || id == t.a, "stats partner {id}: {s} {v}");
            let (s, v) = get(format!(
                "/partner/v1/stats?link_id={id}&from=2026-01-01&to=2026-01-02"
            ));
            prop_assert!(s != 200 || id == t.a_link["id"], "stats link {id}: {s} {v}");
            // A deal answers 200 only when it is A's; another partner's
            // deals and payouts never show.
            let (s, v) = get(format!("/partner/v1/deals/{id}"));
            prop_assert!(s != 200 || v["partner_id"] == t.a, "deal {id}: {s} {v}");
            prop_assert!(s == 200 || s == 404, "deal {id}: {s} {v}");
            let (s, v) = get(format!("/partner/v1/deals?partner_id={id}"));
            prop_assert!(s != 200 || id == t.a, "deals of partner {id}: {s} {v}");
            let (s, v) = get(format!("/partner/v1/payouts?partner_id={id}"));
            prop_assert!(s != 200 || id == t.a, "payouts of partner {id}: {s} {v}");
            // A conversion answers 200 only when it is A's.
            let (s, v) = get(format!("/partner/v1/conversions/{conv}"));
            prop_assert!(
                s != 200 || v["partner_id"] == t.a,
                "conversion {conv}: {s} {v}"
            );
            Ok(())
        })
        .unwrap();
}

#[tokio::test]
async fn keys_are_shown_once_listed_without_secrets_and_revoked_on_every_node() {
    let server = Server::start(ServerConfig::new("papi_keys"));
    let other = Server::start(server.config.other_node());
    let a = partner(&server, "Ann").await;
    let (k1, k2) = (key(&server, a).await, key(&server, a).await);
    assert_ne!(k1, k2);
    for node in [&server, &other] {
        for k in [&k1, &k2] {
            let (s, me) = papi(node, k, "GET", "/partner/v1/me", None).await;
            assert_eq!(s, 200, "{me}");
            assert_eq!(
                (
                    me["id"].as_u64(),
                    me["name"].as_str(),
                    me["kind"].as_str(),
                    me["status"].as_str()
                ),
                (Some(a), Some("Ann"), Some("affiliate"), Some("active")),
                "{me}"
            );
            assert!(me.get("tier").is_some(), "{me}");
        }
    }
    let (s, list) = admin(&server, "GET", &format!("/api/v1/partners/{a}/keys"), None).await;
    assert_eq!(s, 200, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    let text = list.to_string();
    assert!(
        !text.contains(&k1) && !text.contains(&k2),
        "a listing shows a secret: {text}"
    );
    assert!(items
        .iter()
        .all(|k| k.get("key").is_none() && k["hint"].as_str().unwrap().starts_with("tep_")));
    // Redis holds digests, not secrets.
    let mut redis = redis_conn(&server);
    let stored: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("{}pkeys", server.config.prefix))
        .query(&mut redis)
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored
        .iter()
        .all(|(d, r)| d.len() == 64 && !r.contains(&k1) && !r.contains(&k2)));

    // Revoked on one node: refused on both from the answer on.
    let k1_id = &items[0]["id"];
    let (s, _) = admin(
        &server,
        "DELETE",
        &format!("/api/v1/partners/{a}/keys/{k1_id}"),
        None,
    )
    .await;
    assert_eq!(s, 204);
    for node in [&other, &server] {
        let (s, v) = papi(node, &k1, "GET", "/partner/v1/me", None).await;
        assert_eq!((s, code(&v)), (401, "unauthorized"), "{v}");
        let (s, _) = papi(node, &k2, "GET", "/partner/v1/me", None).await;
        assert_eq!(s, 200, "the other key still works");
    }
    let (s, v) = admin(
        &server,
        "DELETE",
        &format!("/api/v1/partners/{a}/keys/{k1_id}"),
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (404, "not_found"));
    // Another partner's key id is not this partner's to revoke.
    let b = partner(&server, "Bob").await;
    let k2_id = &items[1]["id"];
    let (s, _) = admin(
        &server,
        "DELETE",
        &format!("/api/v1/partners/{b}/keys/{k2_id}"),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = papi(&server, &k2, "GET", "/partner/v1/me", None).await;
    assert_eq!(s, 200);

    // Unknown and missing keys: 401; a paused partner's key: 403.
    let (s, v) = papi(
        &server,
        "tep_0000000000000000000000000000000000000000000a",
        "GET",
        "/partner/v1/me",
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (401, "unauthorized"));
    let resp = client()
        .get(format!("{}/partner/v1/me", server.public))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let (s, _) = admin(
        &server,
        "PATCH",
        &format!("/api/v1/partners/{a}"),
        Some(json!({"status": "suspended"})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, v) = papi(&server, &k2, "GET", "/partner/v1/me", None).await;
    assert_eq!(
        (s, code(&v), field(&v)),
        (403, "partner_inactive", "authorization"),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("suspended"),
        "{v}"
    );
    let (s, _) = admin(
        &server,
        "PATCH",
        &format!("/api/v1/partners/{a}"),
        Some(json!({"status": "active"})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = papi(&server, &k2, "GET", "/partner/v1/me", None).await;
    assert_eq!(s, 200);

    // The partner edits its postback URL, validated as the admin's is.
    let (s, v) = papi(
        &server,
        &k2,
        "PATCH",
        "/partner/v1/me",
        Some(json!({"postback_url": "https://p.example/pb?c={click_id}"})),
    )
    .await;
    assert_eq!(
        (s, v["postback_url"].as_str()),
        (200, Some("https://p.example/pb?c={click_id}")),
        "{v}"
    );
    let (s, v) = papi(
        &server,
        &k2,
        "PATCH",
        "/partner/v1/me",
        Some(json!({"postback_url": "https://p.example/pb?c={nope}"})),
    )
    .await;
    assert_eq!(
        (s, code(&v), field(&v)),
        (400, "invalid", "postback_url"),
        "{v}"
    );
    let (s, v) = papi(
        &server,
        &k2,
        "PATCH",
        "/partner/v1/me",
        Some(json!({"name": "Mallory"})),
    )
    .await;
    assert_eq!((s, field(&v)), (400, "name"), "{v}");
    let (_, p) = admin(&server, "GET", &format!("/api/v1/partners/{a}"), None).await;
    assert_eq!(
        (p["name"].as_str(), p["postback_url"].as_str()),
        (Some("Ann"), Some("https://p.example/pb?c={click_id}"))
    );
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429() {
    let config = ServerConfig::new("papi_rate")
        .with("TRACKEDGE_PARTNER_API_REQUESTS_PER_MINUTE", "1")
        .with("TRACKEDGE_PARTNER_API_BURST", "2");
    let server = Server::start(config);
    let a = partner(&server, "Ann").await;
    let (k1, k2) = (key(&server, a).await, key(&server, a).await);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(papi(&server, &k1, "GET", "/partner/v1/me", None).await.0);
    }
    assert_eq!(statuses, [200, 200, 429]);
    let resp = client()
        .get(format!("{}/partner/v1/me", server.public))
        .header("Authorization", format!("Bearer {k1}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(code(&v), "rate_limited");
    // Per key: the partner's other key has its own budget.
    assert_eq!(
        papi(&server, &k2, "GET", "/partner/v1/me", None).await.0,
        200
    );
}

#[tokio::test]
async fn visibility_decides_who_may_promote_and_losing_access_pauses_links() {
    let server = Server::start(ServerConfig::new("papi_access"));
    let a = partner(&server, "Ann").await;
    let b = partner(&server, "Bob").await;
    let (ka, kb) = (key(&server, a).await, key(&server, b).await);
    let public = offer(&server, "public").await;
    let approval = offer(&server, "approval").await;
    let private = offer(&server, "private").await;
    let ids = |v: &Value| -> Vec<Value> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].clone())
            .collect()
    };

    let (s, promotable) = papi(&server, &ka, "GET", "/partner/v1/offers", None).await;
    assert_eq!(s, 200, "{promotable}");
    assert_eq!(ids(&promotable), vec![public["id"].clone()]);
    assert!(
        promotable["items"][0].get("postback_token").is_none(),
        "merchant secrets leak: {promotable}"
    );
    let (_, visible) = papi(
        &server,
        &ka,
        "GET",
        "/partner/v1/offers?scope=visible",
        None,
    )
    .await;
    assert_eq!(
        ids(&visible),
        vec![public["id"].clone(), approval["id"].clone()]
    );
    assert_eq!(visible["items"][1]["access"], "requestable");

    // Approval: refused until requested and approved.
    let (s, v) = papi(
        &server,
        &ka,
        "POST",
        "/partner/v1/links",
        Some(json!({"offer_id": approval["id"]})),
    )
    .await;
    assert_eq!(
        (s, code(&v), field(&v)),
        (403, "access_required", "offer_id"),
        "{v}"
    );
    let (s, v) = papi(
        &server,
        &ka,
        "POST",
        "/partner/v1/links",
        Some(json!({"offer_id": private["id"]})),
    )
    .await;
    assert_eq!((s, field(&v)), (404, "offer_id"), "{v}");
    let request = format!("/partner/v1/offers/{}/access-requests", approval["id"]);
    let (s, g) = papi(
        &server,
        &ka,
        "POST",
        &request,
        Some(json!({"note": "newsletter"})),
    )
    .await;
    assert_eq!((s, g["status"].as_str()), (201, Some("requested")), "{g}");
    let (s, g) = papi(&server, &ka, "POST", &request, None).await;
    assert_eq!((s, g["note"].as_str()), (200, Some("newsletter")), "{g}");
    let (s, v) = papi(
        &server,
        &ka,
        "POST",
        &format!("/partner/v1/offers/{}/access-requests", public["id"]),
        None,
    )
    .await;
    assert_eq!(s, 409, "{v}");
    let (s, inbox) = admin(&server, "GET", "/api/v1/access-requests", None).await;
    assert_eq!(s, 200, "{inbox}");
    assert_eq!(inbox["items"].as_array().unwrap().len(), 1, "{inbox}");
    assert_eq!(
        (
            inbox["items"][0]["partner_id"].as_u64(),
            &inbox["items"][0]["offer_id"]
        ),
        (Some(a), &approval["id"])
    );
    let grant_path = format!("/api/v1/offers/{}/access/{a}", approval["id"]);
    let (s, g) = admin(
        &server,
        "PUT",
        &grant_path,
        Some(json!({"status": "approved"})),
    )
    .await;
    assert_eq!((s, g["status"].as_str()), (200, Some("approved")), "{g}");
    let link = plink(&server, &ka, &approval["id"]).await;
    assert_eq!(link["status"], "active");
    click(&server, &link).await;

    // Revoked: the link is paused (no redirect) and the partner told why.
    let (s, g) = admin(&server, "DELETE", &grant_path, None).await;
    assert_eq!((s, g["status"].as_str()), (200, Some("revoked")), "{g}");
    assert_eq!(g["paused_link_ids"], json!([link["id"]]), "{g}");
    let (_, l) = papi(
        &server,
        &ka,
        "GET",
        &format!("/partner/v1/links/{}", link["id"]),
        None,
    )
    .await;
    assert_eq!(l["status"], "paused", "{l}");
    let resp = client()
        .get(format!(
            "{}/{}",
            server.public,
            link["code"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let (_, me) = papi(&server, &ka, "GET", "/partner/v1/me", None).await;
    let pause = me["link_pauses"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(pause["link_ids"], json!([link["id"]]), "{me}");
    assert!(
        pause["reason"].as_str().unwrap().contains("revoked"),
        "{pause}"
    );
    let (s, v) = papi(
        &server,
        &ka,
        "POST",
        "/partner/v1/links",
        Some(json!({"offer_id": approval["id"]})),
    )
    .await;
    assert_eq!((s, code(&v)), (403, "access_required"), "{v}");
    let (s, _) = papi(&server, &ka, "POST", &request, None).await;
    assert_eq!(s, 409, "a revoked partner cannot ask again");

    // Private: only a grant shows it.
    let (s, _) = admin(
        &server,
        "PUT",
        &format!("/api/v1/offers/{}/access/{b}", private["id"]),
        Some(json!({"status": "approved"})),
    )
    .await;
    assert_eq!(s, 200);
    let (_, bo) = papi(&server, &kb, "GET", "/partner/v1/offers", None).await;
    assert_eq!(ids(&bo), vec![public["id"].clone(), private["id"].clone()]);
    plink(&server, &kb, &private["id"]).await;

    // A visibility change that removes access pauses the links of those
    // who lost it, and only theirs.
    let a_public = plink(&server, &ka, &public["id"]).await;
    let b_public = plink(&server, &kb, &public["id"]).await;
    let (s, _) = admin(
        &server,
        "PUT",
        &format!("/api/v1/offers/{}/access/{b}", public["id"]),
        Some(json!({"status": "approved"})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, o) = admin(
        &server,
        "PATCH",
        &format!("/api/v1/offers/{}", public["id"]),
        Some(json!({"visibility": "private"})),
    )
    .await;
    assert_eq!((s, o["visibility"].as_str()), (200, Some("private")), "{o}");
    let (_, la) = papi(
        &server,
        &ka,
        "GET",
        &format!("/partner/v1/links/{}", a_public["id"]),
        None,
    )
    .await;
    assert_eq!(la["status"], "paused", "{la}");
    let (_, lb) = papi(
        &server,
        &kb,
        "GET",
        &format!("/partner/v1/links/{}", b_public["id"]),
        None,
    )
    .await;
    assert_eq!(lb["status"], "active", "{lb}");
    let (_, me) = papi(&server, &ka, "GET", "/partner/v1/me", None).await;
    let reason = me["link_pauses"].as_array().unwrap().last().unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("visibility changed from public to private"),
        "{reason}"
    );
    let (s, _) = papi(
        &server,
        &ka,
        "GET",
        &format!("/partner/v1/offers/{}", public["id"]),
        None,
    )
    .await;
    assert_eq!(s, 404, "now private and not granted");
    // `partner` is no link code.
    let (s, v) = admin(
        &server,
        "POST",
        "/api/v1/links",
        Some(json!({"partner_id": b, "offer_id": private["id"], "code": "partner"})),
    )
    .await;
    assert_eq!((s, field(&v)), (400, "code"), "{v}");
}

#[tokio::test]
async fn a_partners_stats_and_conversions_are_the_admins_for_that_partner() {
    let server = Server::start(ServerConfig::new("papi_reports"));
    let a = partner(&server, "Ann").await;
    let b = partner(&server, "Bob").await;
    let (ka, kb) = (key(&server, a).await, key(&server, b).await);
    let public = offer(&server, "public").await;
    let la = plink(&server, &ka, &public["id"]).await;
    let lb = plink(&server, &kb, &public["id"]).await;
    let mut a_clicks = Vec::new();
    for _ in 0..3 {
        a_clicks.push(click(&server, &la).await);
    }
    for _ in 0..2 {
        click(&server, &lb).await;
    }
    convert(&server, &public, &a_clicks[0], "A-1", "cust-1").await;
    convert(&server, &public, &a_clicks[1], "A-2", "cust-2").await;
    let b_click = click(&server, &lb).await;
    convert(&server, &public, &b_click, "B-1", "cust-3").await;
    wait_for_async("every click and conversion in clickhouse", || async {
        let (s, v) = admin(&server, "GET", "/api/v1/stats", None).await;
        (s == 200 && v["rows"][0]["clicks"] == 6 && v["rows"][0]["conversions"] == 3).then_some(())
    })
    .await;

    for query in [
        "",
        "group_by=day,offer",
        "group_by=link&sort=-clicks",
        "group_by=partner&metrics=clicks,payout",
    ] {
        let sep = if query.is_empty() { "" } else { "&" };
        let (s, mine) = papi(
            &server,
            &ka,
            "GET",
            &format!("/partner/v1/stats?{query}"),
            None,
        )
        .await;
        assert_eq!(s, 200, "{query}: {mine}");
        let (s, theirs) = admin(
            &server,
            "GET",
            &format!("/api/v1/stats?{query}{sep}partner_id={a}"),
            None,
        )
        .await;
        assert_eq!(s, 200, "{query}: {theirs}");
        assert_eq!(mine["rows"], theirs["rows"], "{query}");
    }
    let (_, mine) = papi(&server, &ka, "GET", "/partner/v1/stats", None).await;
    assert_eq!(
        (&mine["rows"][0]["clicks"], &mine["rows"][0]["conversions"]),
        (&json!(3), &json!(2)),
        "{mine}"
    );
    // CSV too.
    let resp = client()
        .get(format!(
            "{}/partner/v1/stats?format=csv&group_by=partner",
            server.public
        ))
        .header("Authorization", format!("Bearer {ka}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let csv = resp.text().await.unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(
        csv.lines().nth(1).unwrap().starts_with(&format!("{a},")),
        "{csv}"
    );

    // Conversions: A's two, without the merchant's customer ids.
    let (s, page) = papi(&server, &ka, "GET", "/partner/v1/conversions", None).await;
    assert_eq!(s, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    let orders: Vec<&str> = items
        .iter()
        .map(|c| c["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(orders, ["A-1", "A-2"], "{page}");
    assert!(
        items
            .iter()
            .all(|c| c.get("customer_id").is_none() && c["partner_id"] == a),
        "{page}"
    );
    assert!(!page.to_string().contains("cust-"), "{page}");
    // One conversion is read from `conversion_history`, which its
    // materialized view fills within the INSERT the list saw, but visibly
    // a moment later.
    let one = wait_for_async("the conversion's history in clickhouse", || async {
        let (s, one) = papi(
            &server,
            &ka,
            "GET",
            &format!(
                "/partner/v1/conversions/{}",
                items[0]["conversion_id"].as_str().unwrap()
            ),
            None,
        )
        .await;
        (s == 200).then_some(one)
    })
    .await;
    assert!(
        one.get("customer_id").is_none() && !one.to_string().contains("cust-"),
        "{one}"
    );
    assert_eq!(one["history"].as_array().unwrap().len(), 1);
    // The admin's view of the same has them.
    let (_, theirs) = admin(
        &server,
        "GET",
        &format!("/api/v1/conversions?partner_id={a}"),
        None,
    )
    .await;
    assert_eq!(theirs["items"][0]["customer_id"], "cust-1");
    let (s, _) = papi(&server, &ka, "GET", "/partner/v1/conversions?limit=1", None).await;
    assert_eq!(s, 200);
    let (s, v) = papi(
        &server,
        &ka,
        "GET",
        "/partner/v1/stats?group_by=nonsense",
        None,
    )
    .await;
    assert_eq!((s, field(&v)), (400, "group_by"), "{v}");
}
