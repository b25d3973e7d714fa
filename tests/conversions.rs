//! Conversions end to end: a real click, then pixels and postbacks in
//! every form, against real Redis and ClickHouse and the built binary.

mod common;

use common::*;
use serde_json::{json, Value};
use trackedge::conversions::auth::sign;

/// A server with one partner, one offer (CPA 5.00) and one link; answers
/// the server, the link and the offer.
async fn setup(tag: &str) -> (Server, Value, Value) {
    let server = Server::start(ServerConfig::new(tag));
    let link = seed_link(&server, "https://shop.example.com/?cid={click_id}", None).await;
    let (s, offer) = admin(
        &server,
        "GET",
        &format!("/api/v1/offers/{}", link["offer_id"]),
        None,
    )
    .await;
    assert_eq!(s, 200, "{offer}");
    (server, link, offer)
}

/// `POST /postback` with a JSON body; answers status and body.
async fn postback(server: &Server, body: Value, signature: Option<String>) -> (u16, Value) {
    let mut req = client()
        .post(format!("{}/postback", server.public))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(s) = signature {
        req = req.header("x-trackedge-signature", s);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn verdict(v: &Value) -> (&str, &str) {
    (
        v["status"].as_str().unwrap_or("?"),
        v["reason"].as_str().unwrap_or("?"),
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn postbacks_are_decided_deduplicated_and_recorded() {
    let (server, link, offer) = setup("conv").await;
    let token = offer["postback_token"].as_str().unwrap();
    let cid = click(&server, &link).await;

    let (s, v) = postback(
        &server,
        json!({"click_id": cid, "order_id": "A-1", "amount": "20.00", "token": token}),
        None,
    )
    .await;
    assert_eq!((s, verdict(&v)), (200, ("approved", "ok")), "{v}");
    assert_eq!(v["payout"], "5.00");
    assert_eq!(v["currency"], "USD");
    let first_id = v["conversion_id"].as_str().unwrap().to_string();

    // The same order again, in another form: a duplicate.
    let resp = client()
        .get(format!(
            "{}/postback?click_id={cid}&order_id=A-1&token={token}",
            server.public
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(verdict(&v), ("duplicate", "duplicate_order"), "{v}");
    assert_ne!(v["conversion_id"], first_id.as_str());

    // Bad input and bad credentials answer errors and count nothing.
    let (s, v) = postback(
        &server,
        json!({"click_id": cid, "amount": "-1", "token": token}),
        None,
    )
    .await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (400, Some("amount")),
        "{v}"
    );
    let (s, v) = postback(
        &server,
        json!({"click_id": cid, "order_id": "A-2", "token": "nope"}),
        None,
    )
    .await;
    assert_eq!(s, 401, "{v}");
    let (s, v) = postback(
        &server,
        json!({"click_id": cid, "order_id": "A-2"}),
        Some("t=1,v1=00".into()),
    )
    .await;
    assert_eq!(s, 401, "{v}");

    // A forged click id is rejected with no lookup.
    let mut forged = cid.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'a' { 'b' } else { 'a' });
    let (s, v) = postback(
        &server,
        json!({"click_id": forged, "order_id": "A-3", "token": token}),
        None,
    )
    .await;
    assert_eq!(
        (s, verdict(&v)),
        (200, ("rejected", "invalid_click_id")),
        "{v}"
    );

    // Signed instead of a token: the same verdicts.
    let secret = offer["signing_secret"].as_str().unwrap();
    let body = json!({"click_id": cid, "order_id": "A-4", "amount": "7.5"});
    let sig = sign(secret, now(), body.to_string().as_bytes());
    let (s, v) = postback(&server, body, Some(sig)).await;
    assert_eq!((s, verdict(&v)), (200, ("approved", "ok")), "{v}");

    // A bot's click (HEAD) is never billed.
    let bot = click_with(&server, &link, true).await;
    let (s, v) = postback(
        &server,
        json!({"click_id": bot, "order_id": "B-1", "token": token}),
        None,
    )
    .await;
    assert_eq!((s, verdict(&v)), (200, ("rejected", "bot_click")), "{v}");

    // Metrics count verdicts and refusals (blocking client: off the runtime).
    let counts = tokio::task::spawn_blocking(move || {
        let m = |name: &str| metric_if_any(&server, name).unwrap_or(0.0);
        let counts = [
            m(r#"trackedge_conversions_total{reason="ok",status="approved"}"#),
            m(r#"trackedge_conversions_total{reason="duplicate_order",status="duplicate"}"#),
            m(r#"trackedge_conversions_total{reason="bot_click",status="rejected"}"#),
            m(r#"trackedge_conversion_errors_total{kind="bad_input"}"#),
            m(r#"trackedge_conversion_errors_total{kind="unauthorized"}"#),
            m(r#"trackedge_conversion_payout_ten_thousandths_total{status="approved"}"#),
        ];
        (counts, server)
    })
    .await
    .unwrap();
    let (counts, server) = counts;
    assert_eq!(counts, [2.0, 1.0, 1.0, 1.0, 2.0, 100_000.0]);

    // Every answered conversion is in ClickHouse once.
    let ch = &services().clickhouse;
    let db = &server.config.database;
    let rows = wait_for("the conversions in clickhouse", || {
        let text = ch
            .try_query(&format!(
                "SELECT status, reason, order_id, toInt64(payout * 10000) FROM {db}.conversions ORDER BY order_id, status FORMAT TSV"
            ))
            .ok()?;
        (text.lines().count() >= 5).then_some(text)
    });
    assert_eq!(
        rows.lines().collect::<Vec<_>>(),
        [
            "approved\tok\tA-1\t50000",
            "duplicate\tduplicate_order\tA-1\t0",
            "rejected\tinvalid_click_id\tA-3\t0",
            "approved\tok\tA-4\t50000",
            "rejected\tbot_click\tB-1\t0",
        ]
    );
}

#[tokio::test]
async fn twenty_identical_postbacks_count_once() {
    let (server, link, offer) = setup("conv20").await;
    let token = offer["postback_token"].as_str().unwrap().to_string();
    let cid = click(&server, &link).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let body =
                json!({"click_id": cid, "order_id": "same", "amount": "9.99", "token": token});
            let url = format!("{}/postback", server.public);
            tokio::spawn(async move {
                let resp = client()
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap();
                let v: Value = resp.json().await.unwrap();
                v["status"].as_str().unwrap().to_string()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort();
    let approved = statuses.iter().filter(|s| *s == "approved").count();
    let duplicate = statuses.iter().filter(|s| *s == "duplicate").count();
    assert_eq!((approved, duplicate), (1, 19), "{statuses:?}");
}

#[tokio::test]
async fn pixels_land_as_the_offer_chooses_and_customers_carry_their_click() {
    let (server, link, offer) = setup("pixel").await;
    let cid = click(&server, &link).await;
    let resp = client()
        .get(format!(
            "{}/pixel?click_id={cid}&order_id=P-1&amount=3",
            server.public
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/gif");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    // Even nonsense gets the GIF.
    let resp = client()
        .get(format!("{}/pixel?amount=lots", server.public))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // A lead binds the customer; the later sale names only the customer.
    let token = offer["postback_token"].as_str().unwrap();
    let (_, v) = postback(
        &server,
        json!({"click_id": cid, "customer_id": "cust-9", "event": "lead", "token": token}),
        None,
    )
    .await;
    assert_eq!(verdict(&v), ("approved", "ok"), "{v}");
    let (_, v) = postback(
        &server,
        json!({"customer_id": "cust-9", "order_id": "S-1", "amount": "50", "token": token}),
        None,
    )
    .await;
    assert_eq!(verdict(&v), ("approved", "ok"), "{v}");
    // The customer's first sale pays; the offer pays on the first sale only.
    assert_eq!(v["payout"], "5.00", "{v}");
    let (_, v) = postback(
        &server,
        json!({"customer_id": "nobody", "order_id": "S-2", "token": token}),
        None,
    )
    .await;
    assert_eq!(verdict(&v), ("rejected", "unknown_customer"), "{v}");

    let ch = &services().clickhouse;
    let db = &server.config.database;
    let rows = wait_for("the pixel and customer rows", || {
        let text = ch
            .try_query(&format!(
                "SELECT order_id, status, reason, source, attribution, click_id = '{cid}' FROM {db}.conversions ORDER BY order_id FORMAT TSV"
            ))
            .ok()?;
        (text.lines().count() >= 4).then_some(text)
    });
    assert_eq!(
        rows.lines().collect::<Vec<_>>(),
        [
            "\tapproved\tok\tpostback\tclick\t1",
            "P-1\tpending\tpixel_untrusted\tpixel\tclick\t1",
            "S-1\tapproved\tok\tpostback\tcustomer\t1",
            "S-2\trejected\tunknown_customer\tpostback\tcustomer\t0",
        ]
    );
}

#[tokio::test]
async fn the_most_specific_payout_rule_wins_and_is_recorded() {
    let server = Server::start(ServerConfig::new("rules"));
    let (_, gold) = admin(
        &server,
        "POST",
        "/api/v1/partners",
        Some(json!({"name": "Gold", "kind": "affiliate", "tier": "gold"})),
    )
    .await;
    let (s, offer) = admin(
        &server,
        "POST",
        "/api/v1/offers",
        Some(json!({
            "name": "SaaS", "url": "https://saas.example.com/?cid={click_id}",
            "payout": {"model": "cps", "percent": "10"},
            "payout_by_event": [{"event": "lead", "payout": {"model": "cpl", "amount": "1.00"}}],
            "payout_by_tier": [{"tier": "gold", "event": "sale", "payout": {"model": "cps", "percent": "15"}}],
        })),
    )
    .await;
    assert_eq!(s, 201, "{offer}");
    let (_, link) = admin(
        &server,
        "POST",
        "/api/v1/links",
        Some(json!({"partner_id": gold["id"], "offer_id": offer["id"]})),
    )
    .await;
    let token = offer["postback_token"].as_str().unwrap();
    let cid = click(&server, &link).await;
    let cases = [
        (
            json!({"click_id": cid, "event": "lead", "token": token}),
            "1.00",
        ),
        (
            json!({"click_id": cid, "order_id": "O-1", "amount": "80.00", "token": token}),
            "12.00",
        ),
    ];
    for (body, payout) in cases {
        let (_, v) = postback(&server, body.clone(), None).await;
        assert_eq!(
            (verdict(&v), v["payout"].as_str()),
            (("approved", "ok"), Some(payout)),
            "{body}"
        );
    }
    let ch = &services().clickhouse;
    let db = &server.config.database;
    let rules = wait_for("the rules in clickhouse", || {
        let text = ch
            .try_query(&format!(
                "SELECT event, payout_rule FROM {db}.conversions ORDER BY event FORMAT TSV"
            ))
            .ok()?;
        (text.lines().count() >= 2).then_some(text)
    });
    assert_eq!(
        rules.lines().collect::<Vec<_>>(),
        ["lead\toffer_event:lead", "sale\ttier:gold/event:sale"]
    );
}

#[tokio::test]
async fn caps_hold_across_concurrent_postbacks() {
    let (server, link, offer) = setup("caps").await;
    let (s, v) = admin(
        &server,
        "PATCH",
        &format!("/api/v1/offers/{}", offer["id"]),
        Some(json!({"caps": {"daily": 3, "over": "pending"}})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let token = offer["postback_token"].as_str().unwrap().to_string();
    let cid = click(&server, &link).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let body = json!({"click_id": cid, "order_id": format!("C-{i}"), "token": token});
            let url = format!("{}/postback", server.public);
            tokio::spawn(async move {
                let v: Value = client()
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                format!(
                    "{}/{}",
                    v["status"].as_str().unwrap(),
                    v["reason"].as_str().unwrap()
                )
            })
        })
        .collect();
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    got.sort();
    assert_eq!(
        got,
        [
            "approved/ok",
            "approved/ok",
            "approved/ok",
            "pending/cap_reached",
            "pending/cap_reached",
            "pending/cap_reached",
            "pending/cap_reached",
            "pending/cap_reached",
        ]
    );
}

/// The claim protocol on real Redis, step by step: a holder that never
/// confirms (it died between claim and row) is taken over under its own
/// conversion id once its lease ends; a confirmed claim makes repeats
/// duplicates of it; a released claim is claimed afresh.
#[tokio::test]
async fn an_unconfirmed_claim_is_taken_over_under_its_own_id() {
    use std::time::Duration;
    use trackedge::conversions::state::{Claim, ConversionState, DedupKey};

    let redis = redis::Client::open(services().redis.url()).unwrap();
    let conn = redis::aio::ConnectionManager::new(redis).await.unwrap();
    let prefix = format!("{}:", unique_name("claims"));
    let state = ConversionState::new(
        conn,
        &prefix,
        Duration::from_secs(5),
        3600,
        Duration::from_millis(200),
    );
    let order = |o: &'static str| DedupKey::Order {
        offer_id: 1,
        order_id: o,
    };
    let fresh = |c: Claim| match c {
        Claim::Fresh(l) => l,
        other => panic!("expected a fresh claim, got {other:?}"),
    };

    // The first attempt claims and dies: no confirm, no release.
    let dead = fresh(state.claim(&order("A"), "first").await.unwrap());
    assert_eq!(dead.conversion_id, "first");
    // Its retry waits out the lease and records under the same id.
    let retry = match state.claim(&order("A"), "second").await.unwrap() {
        Claim::TakenOver(l) => l,
        other => panic!("expected a takeover, got {other:?}"),
    };
    assert_eq!(retry.conversion_id, "first");
    // The dead holder's lease is gone: a late confirm of it changes nothing.
    assert!(!state.confirm(&order("A"), &dead).await.unwrap());
    assert!(state.confirm(&order("A"), &retry).await.unwrap());
    assert_eq!(
        state.claim(&order("A"), "third").await.unwrap(),
        Claim::Duplicate("first".into())
    );

    // A repeat arriving while the holder is still writing waits for it.
    let holder = fresh(state.claim(&order("B"), "b1").await.unwrap());
    let waiting = {
        let state = state.clone();
        tokio::spawn(async move {
            state
                .claim(
                    &DedupKey::Order {
                        offer_id: 1,
                        order_id: "B",
                    },
                    "b2",
                )
                .await
                .unwrap()
        })
    };
    assert!(state.confirm(&order("B"), &holder).await.unwrap());
    assert_eq!(waiting.await.unwrap(), Claim::Duplicate("b1".into()));

    // A released claim (its row was refused) is claimed afresh.
    let refused = fresh(state.claim(&order("C"), "c1").await.unwrap());
    state.release(&order("C"), &refused).await.unwrap();
    assert_eq!(
        fresh(state.claim(&order("C"), "c2").await.unwrap()).conversion_id,
        "c2"
    );
}

/// A client firing pixels past its rate still gets the GIF every time; the
/// hits over the rate are recorded as `rejected` / `rate_limited`, paying
/// nothing, and a repeat of the counted order stays a duplicate.
#[tokio::test]
async fn pixels_over_the_client_rate_are_recorded_as_rejected() {
    // One pixel a minute, a burst of one: the second hit is over.
    let server = Server::start(
        ServerConfig::new("pixelflood").with("TRACKEDGE_CONVERSIONS_PIXELS_PER_IP_PER_MINUTE", "1"),
    );
    let link = seed_link(&server, "https://shop.example.com/?cid={click_id}", None).await;
    let cid = click(&server, &link).await;
    for order in ["F-1", "F-2", "F-3"] {
        let resp = client()
            .get(format!(
                "{}/pixel?click_id={cid}&order_id={order}&amount=3",
                server.public
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "image/gif");
    }
    let ch = &services().clickhouse;
    let db = &server.config.database;
    let rows = wait_for("the three pixel rows", || {
        let text = ch
            .try_query(&format!(
                "SELECT order_id, status, reason, toInt64(payout * 10000), link_id = {}, \
                 click_id = '{cid}' FROM {db}.conversions ORDER BY order_id FORMAT TSV",
                link["id"]
            ))
            .ok()?;
        (text.lines().count() >= 3).then_some(text)
    });
    assert_eq!(
        rows.lines().collect::<Vec<_>>(),
        [
            "F-1\tpending\tpixel_untrusted\t50000\t1\t1",
            "F-2\trejected\trate_limited\t0\t1\t1",
            "F-3\trejected\trate_limited\t0\t1\t1",
        ]
    );
    assert_eq!(
        metric(
            &server,
            "trackedge_conversions_total{reason=\"rate_limited\",status=\"rejected\"}"
        ),
        2.0
    );
}
