//! Deal registration end to end: register, approve, then postbacks
//! credited through the deal (by customer id and by email domain), a deal
//! against another partner's click under both conflict rules, an expired
//! deal, and "first approved wins" (in turn and racing), against real
//! Redis and ClickHouse and the built binary.

mod common;

use common::*;
use serde_json::{json, Value};

/// `POST /postback` with a JSON body; answers status and body.
async fn postback(server: &Server, body: Value) -> (u16, Value) {
    let resp = client()
        .post(format!("{}/postback", server.public))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn verdict(v: &Value) -> (&str, &str) {
    (
        v["status"].as_str().unwrap_or("?"),
        v["reason"].as_str().unwrap_or("?"),
    )
}

/// Waits until the admin API shows conversion `id` (shipped to
/// ClickHouse); answers it with its history.
async fn shipped(server: &Server, id: &str) -> Value {
    wait_for_async(&format!("conversion {id} in clickhouse"), || async {
        let (s, v) = admin(server, "GET", &format!("/api/v1/conversions/{id}"), None).await;
        (s == 200).then_some(v)
    })
    .await
}

/// (attribution, partner, deal, displaced partner) of a conversion.
fn credit(v: &Value) -> (&str, u64, u64, u64) {
    (
        v["attribution"].as_str().unwrap_or("?"),
        v["partner_id"].as_u64().unwrap_or(u64::MAX),
        v["deal_id"].as_u64().unwrap_or(u64::MAX),
        v["displaced_partner_id"].as_u64().unwrap_or(u64::MAX),
    )
}

async fn new_partner(server: &Server, name: &str) -> u64 {
    let (s, p) = admin(
        server,
        "POST",
        "/api/v1/partners",
        Some(json!({"name": name, "kind": "reseller"})),
    )
    .await;
    assert_eq!(s, 201, "{p}");
    p["id"].as_u64().unwrap()
}

async fn register(server: &Server, body: Value) -> (u16, Value) {
    admin(server, "POST", "/api/v1/deals", Some(body)).await
}

async fn approve(server: &Server, id: u64) -> (u16, Value) {
    admin(server, "POST", &format!("/api/v1/deals/{id}/approve"), None).await
}

fn id_of(v: &Value) -> u64 {
    v["id"].as_u64().unwrap_or_else(|| panic!("no id in {v}"))
}

#[tokio::test]
async fn an_approved_deal_is_credited_with_its_prospect_s_conversions() {
    let server = Server::start(ServerConfig::new("deals"));
    let (link, offer, partner_a) = seed_partner_link(
        &server,
        json!({"name": "Clicker", "kind": "affiliate"}),
        "https://shop.example.com/?cid={click_id}",
        None,
    )
    .await;
    let a = partner_a["id"].as_u64().unwrap();
    let b = new_partner(&server, "Reseller").await;
    let offer_id = offer["id"].as_u64().unwrap();
    let token = offer["postback_token"].as_str().unwrap();

    let (s, deal) = register(
        &server,
        json!({"partner_id": b, "offer_id": offer_id, "company": "Acme Corp",
               "customer_id": "cust-1", "contact_email": "jane.doe@acme.com",
               "expected_value": "12000.00", "notes": "renewal in May"}),
    )
    .await;
    assert_eq!(s, 201, "{deal}");
    assert_eq!(
        (
            &deal["status"],
            &deal["domain"],
            &deal["expected_value"],
            &deal["currency"]
        ),
        (
            &json!("pending"),
            &json!("acme.com"),
            &json!("12000.00"),
            &json!("USD")
        )
    );
    assert!(
        !deal.to_string().contains("jane"),
        "only the contact's domain is kept: {deal}"
    );
    let deal_id = id_of(&deal);

    // Pending: no credit yet. A customer bound to no click is unknown.
    let (s, v) = postback(
        &server,
        json!({"customer_id": "cust-1", "order_id": "D-0", "amount": "10.00", "token": token}),
    )
    .await;
    assert_eq!(
        (s, verdict(&v)),
        (200, ("rejected", "unknown_customer")),
        "{v}"
    );

    let (s, approved) = approve(&server, deal_id).await;
    assert_eq!(s, 200, "{approved}");
    assert_eq!(approved["status"], "approved");
    let until = approved["protected_until"].as_str().unwrap();
    let until_secs = humantime::parse_rfc3339(until)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ninety_days = 90 * 86_400;
    assert!(
        (now_secs() + ninety_days - 5..=now_secs() + ninety_days).contains(&until_secs),
        "the default protection is 90 days: {until}"
    );

    // By customer id, and by email domain alone.
    let (s, v) = postback(
        &server,
        json!({"customer_id": "cust-1", "order_id": "D-1", "amount": "10.00", "token": token}),
    )
    .await;
    assert_eq!(
        (s, verdict(&v)),
        (200, ("approved", "deal_registration")),
        "{v}"
    );
    let by_customer = shipped(&server, v["conversion_id"].as_str().unwrap()).await;
    assert_eq!(
        credit(&by_customer),
        ("deal", b, deal_id, 0),
        "{by_customer}"
    );

    let (s, v) = postback(
        &server,
        json!({"customer_email": "Bob@ACME.com", "order_id": "D-2", "token": token}),
    )
    .await;
    assert_eq!(
        (s, verdict(&v)),
        (200, ("approved", "deal_registration")),
        "{v}"
    );
    let by_domain = shipped(&server, v["conversion_id"].as_str().unwrap()).await;
    assert_eq!(credit(&by_domain), ("deal", b, deal_id, 0), "{by_domain}");
    let db = &server.config.database;
    let stored = services().clickhouse.query(&format!(
        "SELECT count() FROM {db}.conversions WHERE positionCaseInsensitive(concat(customer_id, order_id, ip), 'bob') > 0 FORMAT TSV"
    ));
    assert_eq!(stored.trim(), "0", "the customer's address is not recorded");

    // Partner A's click against B's deal: the deal wins by default, and the
    // conversion names A.
    let cid = click(&server, &link).await;
    let (s, v) = postback(
        &server,
        json!({"click_id": cid, "customer_id": "cust-1", "order_id": "D-3", "token": token}),
    )
    .await;
    assert_eq!(
        (s, verdict(&v)),
        (200, ("approved", "deal_registration")),
        "{v}"
    );
    let contested = shipped(&server, v["conversion_id"].as_str().unwrap()).await;
    assert_eq!(credit(&contested), ("deal", b, deal_id, a), "{contested}");
    assert_eq!(credit(&contested["history"][0]), ("deal", b, deal_id, a));
    assert_eq!(contested["click_id"], "", "the row names no click of A's");

    // With click_wins, A's click takes it.
    let (s, o) = admin(
        &server,
        "PATCH",
        &format!("/api/v1/offers/{offer_id}"),
        Some(json!({"deal_conflict": "click_wins"})),
    )
    .await;
    assert_eq!((s, &o["deal_conflict"]), (200, &json!("click_wins")), "{o}");
    let cid = click(&server, &link).await;
    let (s, v) = postback(
        &server,
        json!({"click_id": cid, "customer_id": "cust-1", "order_id": "D-4", "token": token}),
    )
    .await;
    assert_eq!((s, verdict(&v)), (200, ("approved", "ok")), "{v}");
    let clicked = shipped(&server, v["conversion_id"].as_str().unwrap()).await;
    assert_eq!(credit(&clicked), ("click", a, 0, 0), "{clicked}");
    assert_eq!(clicked["click_id"], cid.as_str());

    // Back to deal_wins, but the deal's protection has ended: the click
    // wins. (Time is moved by rewriting the deal's stored end, as the
    // passing of 90 days would.)
    let (s, _) = admin(
        &server,
        "PATCH",
        &format!("/api/v1/offers/{offer_id}"),
        Some(json!({"deal_conflict": "deal_wins"})),
    )
    .await;
    assert_eq!(s, 200);
    let prefix = &server.config.prefix;
    let mut conn = redis_conn(&server);
    let past_ms = (now_secs() - 60) * 1000;
    let key = format!("{prefix}deal-prospect:{offer_id}:c:6:cust-1");
    let held: String = redis::cmd("GET").arg(&key).query(&mut conn).unwrap();
    assert_eq!(held, format!("{deal_id}:{b}:{}", until_secs * 1000));
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(format!("{deal_id}:{b}:{past_ms}"))
        .query(&mut conn)
        .unwrap();
    let raw: String = redis::cmd("HGET")
        .arg(format!("{prefix}deals"))
        .arg(deal_id)
        .query(&mut conn)
        .unwrap();
    let mut stored: Value = serde_json::from_str(&raw).unwrap();
    stored["protected_until"] = json!("2020-01-01T00:00:00Z");
    let _: () = redis::cmd("HSET")
        .arg(format!("{prefix}deals"))
        .arg(deal_id)
        .arg(stored.to_string())
        .query(&mut conn)
        .unwrap();
    let cid = click(&server, &link).await;
    let (s, v) = postback(
        &server,
        json!({"click_id": cid, "customer_id": "cust-1", "order_id": "D-5", "token": token}),
    )
    .await;
    assert_eq!((s, verdict(&v)), (200, ("approved", "ok")), "{v}");
    let after = shipped(&server, v["conversion_id"].as_str().unwrap()).await;
    assert_eq!(credit(&after), ("click", a, 0, 0), "{after}");
    let (s, d) = admin(&server, "GET", &format!("/api/v1/deals/{deal_id}"), None).await;
    assert_eq!((s, &d["status"]), (200, &json!("expired")), "{d}");
    let (s, page) = admin(&server, "GET", "/api/v1/deals?status=expired", None).await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["items"][0]["id"], deal_id, "{page}");
}

#[tokio::test]
async fn the_first_approved_deal_of_a_prospect_wins() {
    let server = Server::start(ServerConfig::new("deals_race"));
    let (_, offer, partner_a) = seed_partner_link(
        &server,
        json!({"name": "A", "kind": "reseller"}),
        "https://shop.example.com/?cid={click_id}",
        None,
    )
    .await;
    let a = partner_a["id"].as_u64().unwrap();
    let b = new_partner(&server, "B").await;
    let offer_id = offer["id"].as_u64().unwrap();
    let deal = |partner: u64, prospect: Value| {
        let mut body = json!({"partner_id": partner, "offer_id": offer_id, "company": "Globex"});
        body.as_object_mut()
            .unwrap()
            .extend(prospect.as_object().unwrap().clone());
        body
    };

    // Both register while nothing is approved; B is approved first.
    let (s, deal_a) = register(&server, deal(a, json!({"domain": "globex.com"}))).await;
    assert_eq!(s, 201, "{deal_a}");
    let (s, deal_b) = register(
        &server,
        deal(b, json!({"domain": "GLOBEX.com", "customer_id": "g-1"})),
    )
    .await;
    assert_eq!(s, 201, "{deal_b}");
    let (s, approved_b) = approve(&server, id_of(&deal_b)).await;
    assert_eq!(s, 200, "{approved_b}");
    let until = approved_b["protected_until"].as_str().unwrap();

    let (s, e) = approve(&server, id_of(&deal_a)).await;
    assert_eq!(
        (s, &e["error"]["code"], &e["error"]["field"]),
        (409, &json!("conflict"), &json!("domain")),
        "{e}"
    );
    assert!(
        e["error"]["message"].as_str().unwrap().contains(until),
        "{e}"
    );
    // A new registration of the protected prospect is told at once.
    let (s, e) = register(&server, deal(a, json!({"customer_id": "g-1"}))).await;
    assert_eq!(
        (s, &e["error"]["field"]),
        (409, &json!("customer_id")),
        "{e}"
    );
    assert!(
        e["error"]["message"].as_str().unwrap().contains(until),
        "{e}"
    );

    // B's approval cannot be repeated; A's deal can still be rejected.
    let (s, e) = approve(&server, id_of(&deal_b)).await;
    assert_eq!(
        (s, &e["error"]["code"]),
        (409, &json!("invalid_transition")),
        "{e}"
    );
    let reject = |id: u64, body: Value| {
        let server = &server;
        async move {
            admin(
                server,
                "POST",
                &format!("/api/v1/deals/{id}/reject"),
                Some(body),
            )
            .await
        }
    };
    let (s, e) = reject(id_of(&deal_a), json!({})).await;
    assert_eq!((s, &e["error"]["field"]), (400, &json!("reason")), "{e}");
    let (s, r) = reject(id_of(&deal_a), json!({"reason": "B registered it first"})).await;
    assert_eq!(
        (s, &r["status"], &r["rejection_reason"]),
        (200, &json!("rejected"), &json!("B registered it first")),
        "{r}"
    );
    let (s, e) = reject(id_of(&deal_a), json!({"reason": "again"})).await;
    assert_eq!(
        (s, &e["error"]["code"]),
        (409, &json!("invalid_transition")),
        "{e}"
    );

    // Two competing deals approved at the same moment: exactly one wins,
    // every time.
    // Which partner wins a round is up to the race; B's wins are counted
    // for the listing below.
    let mut b_wins = 0;
    for round in 0..8 {
        let prospect = json!({"customer_id": format!("race-{round}")});
        let (_, d1) = register(&server, deal(a, prospect.clone())).await;
        let (_, d2) = register(&server, deal(b, prospect)).await;
        let (r1, r2) = tokio::join!(approve(&server, id_of(&d1)), approve(&server, id_of(&d2)));
        let mut statuses = [r1.0, r2.0];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "round {round}: {r1:?} {r2:?}");
        b_wins += usize::from(r2.0 == 200);
    }

    // Listings filter by status, partner and offer.
    let ids = |page: &Value| -> Vec<u64> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(id_of)
            .collect()
    };
    let (s, rejected) = admin(&server, "GET", "/api/v1/deals?status=rejected", None).await;
    assert_eq!(
        (s, ids(&rejected)),
        (200, vec![id_of(&deal_a)]),
        "{rejected}"
    );
    let (_, of_b) = admin(
        &server,
        "GET",
        &format!("/api/v1/deals?partner_id={b}&status=approved&limit=2"),
        None,
    )
    .await;
    // B's approved deals: Globex, then one per round it won.
    assert_eq!(
        of_b["items"].as_array().unwrap().len(),
        (1 + b_wins).min(2),
        "{of_b}"
    );
    assert!(of_b["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["partner_id"] == b));
    let mut all: Vec<u64> = ids(&of_b);
    let mut page = of_b;
    while let Some(cursor) = page["next_cursor"].as_str() {
        let (_, next) = admin(
            &server,
            "GET",
            &format!("/api/v1/deals?partner_id={b}&status=approved&limit=2&cursor={cursor}"),
            None,
        )
        .await;
        all.extend(ids(&next));
        page = next;
    }
    let before = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), before, "pages do not overlap");
    assert_eq!(all.len(), 1 + b_wins, "every approved deal of B, once");
    let (_, none) = admin(
        &server,
        "GET",
        &format!("/api/v1/deals?offer_id={}", offer_id + 100),
        None,
    )
    .await;
    assert_eq!(ids(&none), Vec::<u64>::new());
    let (s, e) = admin(&server, "GET", "/api/v1/deals?status=won", None).await;
    assert_eq!((s, &e["error"]["field"]), (400, &json!("status")), "{e}");
}

#[tokio::test]
async fn bad_registrations_name_the_field() {
    let server = Server::start(ServerConfig::new("deals_bad"));
    let (_, offer, partner) = seed_partner_link(
        &server,
        json!({"name": "A", "kind": "reseller"}),
        "https://shop.example.com/?cid={click_id}",
        None,
    )
    .await;
    let good = json!({"partner_id": partner["id"], "offer_id": offer["id"], "company": "Initech", "domain": "initech.com"});
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let cases = [
        (with("offer_id", json!(999)), 404, "offer_id"),
        (with("partner_id", json!(999)), 404, "partner_id"),
        (
            with("expected_value", json!(12000.5)),
            400,
            "expected_value",
        ),
        (with("expected_value", json!("-3")), 400, "expected_value"),
        (with("company", json!("x".repeat(201))), 400, "company"),
        (with("domain", json!("gmail.com")), 400, "domain"),
        (with("domain", json!("not a domain")), 400, "domain"),
        (with("contact_email", json!("nobody")), 400, "contact_email"),
        (with("notes", json!("n".repeat(2001))), 400, "notes"),
        (
            with("customer_id", json!("c".repeat(129))),
            400,
            "customer_id",
        ),
        (with("extra", json!(1)), 400, "extra"),
    ];
    for (body, status, field) in cases {
        let (s, e) = register(&server, body.clone()).await;
        assert_eq!(
            (s, &e["error"]["field"]),
            (status, &json!(field)),
            "{body}: {e}"
        );
    }
    let (s, e) = admin(&server, "GET", "/api/v1/deals/12345", None).await;
    assert_eq!((s, &e["error"]["code"]), (404, &json!("not_found")), "{e}");
    let (s, e) = admin(
        &server,
        "PATCH",
        &format!("/api/v1/offers/{}", offer["id"]),
        Some(json!({"deal_protection_days": 0})),
    )
    .await;
    assert_eq!(
        (s, &e["error"]["field"]),
        (400, &json!("deal_protection_days")),
        "{e}"
    );
    let (s, d) = register(&server, good).await;
    assert_eq!(s, 201, "{d}");
    // A postback's customer_email must be an address.
    let (s, v) = postback(
        &server,
        json!({"customer_email": "nobody", "token": offer["postback_token"]}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("customer_email"), "{v}");
}

/// The store's calls the partner API makes, with the partner forced:
/// another partner's deal does not exist for it.
#[tokio::test]
async fn a_partner_sees_only_its_own_deals() {
    use std::sync::Arc;
    use trackedge::catalog::{Catalog, RouteCache};
    use trackedge::config::RedisConfig;
    use trackedge::deals::{DealError, DealFilter, DealRequest, DealStore, Viewer};

    let server = Server::start(ServerConfig::new("deals_partner"));
    let (_, offer, partner) = seed_partner_link(
        &server,
        json!({"name": "A", "kind": "reseller"}),
        "https://shop.example.com/?cid={click_id}",
        None,
    )
    .await;
    let a = partner["id"].as_u64().unwrap();
    let b = new_partner(&server, "B").await;
    let metrics = Arc::new(trackedge::metrics::Metrics::new());
    let catalog = Catalog::connect(
        &RedisConfig {
            url: server.config.redis_url.clone(),
            prefix: server.config.prefix.clone(),
            ..RedisConfig::default()
        },
        Arc::new(RouteCache::new(metrics.clone())),
        metrics,
        &tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap();
    let store = DealStore::new(&catalog);
    let request = |customer: &str| -> DealRequest {
        serde_json::from_value(
            json!({"offer_id": offer["id"], "company": "Hooli", "customer_id": customer}),
        )
        .unwrap()
    };
    let of_a = store.register(&catalog, a, request("h-1")).await.unwrap();
    let of_b = store.register(&catalog, b, request("h-2")).await.unwrap();
    assert_eq!((of_a.partner_id, of_b.partner_id), (a, b));

    assert_eq!(
        store.get(of_a.id, Viewer::Partner(a)).await.unwrap().id,
        of_a.id
    );
    assert!(matches!(
        store.get(of_b.id, Viewer::Partner(a)).await,
        Err(DealError::NotFound)
    ));
    assert_eq!(store.get(of_b.id, Viewer::Admin).await.unwrap().id, of_b.id);
    // A partner's listing is its own, whatever filter it asks for.
    let filter = DealFilter {
        partner_id: Some(b),
        limit: 100,
        ..DealFilter::default()
    };
    let page = store.list(&filter, Viewer::Partner(a)).await.unwrap();
    let ids: Vec<u64> = page.items.iter().map(|d| d.id).collect();
    assert_eq!(ids, vec![of_a.id]);
    let page = store.list(&filter, Viewer::Admin).await.unwrap();
    let ids: Vec<u64> = page.items.iter().map(|d| d.id).collect();
    assert_eq!(ids, vec![of_b.id]);
    // The admin sees a partner's deal through the API too.
    let (s, d) = admin(&server, "GET", &format!("/api/v1/deals/{}", of_a.id), None).await;
    assert_eq!((s, &d["partner_id"]), (200, &json!(a)), "{d}");
}
