//! A partner's whole journey through the product, against real Redis and
//! ClickHouse and the built binary, each step through the API its actor
//! uses: the applicant applies (`POST /apply`), the admin approves it and
//! creates its key, the partner lists offers and asks for one that needs
//! approval, the admin approves the request, the partner makes a link, a
//! browser clicks it, the merchant's postback converts it; the partner
//! then sees the conversion in its conversions, stats and payouts. Then
//! the partner registers a deal, the admin approves it, and the
//! prospect's next sale (no click) is credited to the partner.

mod common;
#[allow(dead_code)] // each test binary uses part of the helpers
mod partner_support;

use chrono::{DateTime, NaiveDate};
use common::*;
use partner_support::*;
use serde_json::{json, Value};

/// The UTC day of `secs`.
fn utc_day(secs: u64) -> NaiveDate {
    DateTime::from_timestamp(secs as i64, 0)
        .expect("now is a valid time")
        .date_naive()
}

/// Creates an offer through the admin API; answers it.
async fn new_offer(server: &Server, body: Value) -> Value {
    let (s, o) = admin(server, "POST", "/api/v1/offers", Some(body)).await;
    assert_eq!(s, 201, "{o}");
    o
}

/// The partner's conversions, once `id` is among them (shipped to
/// ClickHouse).
async fn partner_sees(server: &Server, key: &str, id: &str) -> Value {
    wait_for_async(
        &format!("conversion {id} in the partner's list"),
        || async {
            let (s, page) = papi(server, key, "GET", "/partner/v1/conversions", None).await;
            assert_eq!(s, 200, "{page}");
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["conversion_id"] == id)
                .cloned()
        },
    )
    .await
}

/// A balance row as `currency: approved pending reversed on_hold payable
/// paid owed, paid_through`.
fn balance(r: &Value) -> String {
    let m = |k: &str| r[k].as_str().unwrap_or("?").to_string();
    format!(
        "{}: {} {} {} {} {} {} {}, {}",
        m("currency"),
        m("approved"),
        m("pending"),
        m("reversed"),
        m("on_hold"),
        m("payable"),
        m("paid"),
        m("owed"),
        r["paid_through"].as_str().unwrap_or("-"),
    )
}

/// `GET /partner/v1/payouts` as balance lines, checked against the admin
/// report's rows for the partner (the same figures, without partner_id).
async fn payouts(server: &Server, key: &str, partner: u64) -> (Vec<String>, Value) {
    let (s, mine) = papi(server, key, "GET", "/partner/v1/payouts", None).await;
    assert_eq!(s, 200, "{mine}");
    let (s, report) = admin(
        server,
        "GET",
        &format!("/api/v1/reports/payouts?partner_id={partner}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{report}");
    let theirs: Vec<Value> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.as_object_mut().unwrap().remove("partner_id");
            r
        })
        .collect();
    assert_eq!(mine["balances"], json!(theirs), "{mine} vs {report}");
    assert_eq!(mine["payable_through"], report["payable_through"]);
    let lines = mine["balances"]
        .as_array()
        .unwrap()
        .iter()
        .map(balance)
        .collect();
    (lines, mine)
}

#[tokio::test]
async fn a_partner_applies_is_approved_promotes_and_is_paid() {
    let server = Server::start(ServerConfig::new("journey"));

    // The applicant applies on the public listener.
    let resp = client()
        .post(format!("{}/apply", server.public))
        .header("x-forwarded-for", "198.51.100.7")
        .json(
            &json!({"name": "Ann's Recipes", "email": "ann@recipes.example.com",
                      "kind": "affiliate", "website": "https://recipes.example.com",
                      "promotion": "a cooking blog with 40k monthly readers"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let applied: Value = resp.json().await.unwrap();
    assert_eq!(applied["status"], "applied", "{applied}");
    let me = applied["id"].as_u64().unwrap();

    // The admin approves it and creates its key.
    let (s, p) = admin(
        &server,
        "POST",
        &format!("/api/v1/partners/{me}/approve"),
        None,
    )
    .await;
    assert_eq!((s, &p["status"]), (200, &json!("active")), "{p}");
    let k = key(&server, me).await;
    let (s, profile) = papi(&server, &k, "GET", "/partner/v1/me", None).await;
    assert_eq!((s, &profile["id"]), (200, &json!(me)), "{profile}");
    assert_eq!(
        (&profile["tier_history"], &profile["tier_below_since"]),
        (&json!([]), &Value::Null),
        "{profile}"
    );

    // Two offers: one needs approval (the default 30-day hold), one is
    // public, in euros, with no hold.
    let url = "https://shop.example.com/?cid={click_id}";
    let gated = new_offer(
        &server,
        json!({"name": "Cookware", "url": url, "visibility": "approval",
               "payout": {"model": "cpa", "amount": "5.00"}}),
    )
    .await;
    assert_eq!(gated["hold_days"], 30);
    let open = new_offer(
        &server,
        json!({"name": "Spices", "url": url, "currency": "EUR", "hold_days": 0,
               "payout": {"model": "cpa", "amount": "2.00"}}),
    )
    .await;
    let (gated_id, open_id) = (gated["id"].as_u64().unwrap(), open["id"].as_u64().unwrap());

    // The partner lists offers: the public one to promote, the gated one
    // to ask for.
    let (s, offers) = papi(&server, &k, "GET", "/partner/v1/offers", None).await;
    assert_eq!(s, 200, "{offers}");
    let ids: Vec<&Value> = offers["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["id"])
        .collect();
    assert_eq!(ids, [&json!(open_id)], "{offers}");
    let (_, visible) = papi(&server, &k, "GET", "/partner/v1/offers?scope=visible", None).await;
    let gated_view = visible["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == gated_id)
        .cloned()
        .unwrap_or_else(|| panic!("the gated offer is visible: {visible}"));
    assert_eq!(gated_view["access"], "requestable", "{gated_view}");
    let link_body = json!({"offer_id": gated_id});
    let (s, v) = papi(
        &server,
        &k,
        "POST",
        "/partner/v1/links",
        Some(link_body.clone()),
    )
    .await;
    assert_eq!((s, code(&v)), (403, "access_required"), "{v}");

    // It asks; the admin finds the request in its inbox and approves it.
    let (s, g) = papi(
        &server,
        &k,
        "POST",
        &format!("/partner/v1/offers/{gated_id}/access-requests"),
        Some(json!({"note": "a recipe series using the pans"})),
    )
    .await;
    assert_eq!((s, &g["status"]), (201, &json!("requested")), "{g}");
    let (s, inbox) = admin(&server, "GET", "/api/v1/access-requests", None).await;
    assert_eq!(s, 200, "{inbox}");
    assert_eq!(
        inbox["items"],
        json!([g]),
        "the one waiting request is the partner's"
    );
    let (s, g) = admin(
        &server,
        "PUT",
        &format!("/api/v1/offers/{gated_id}/access/{me}"),
        Some(json!({"status": "approved"})),
    )
    .await;
    assert_eq!((s, &g["status"]), (200, &json!("approved")), "{g}");

    // The partner makes its link; a browser follows it.
    let (s, link) = papi(&server, &k, "POST", "/partner/v1/links", Some(link_body)).await;
    assert_eq!(s, 201, "{link}");
    let tracking_url = link["tracking_url"].as_str().unwrap();
    assert_eq!(
        tracking_url,
        format!("{}/{}", server.public, link["code"].as_str().unwrap())
    );
    let resp = client()
        .get(tracking_url)
        .header("user-agent", BROWSER_UA)
        .send()
        .await
        .unwrap();
    let cid = click_id_of(&resp);

    // The merchant's postback with the click id converts it.
    let conversion = convert(&server, &gated, &cid, "ORDER-1", "cust-1").await;
    let seen = partner_sees(&server, &k, &conversion).await;
    assert_eq!(
        (
            &seen["partner_id"],
            &seen["offer_id"],
            &seen["link_id"],
            &seen["click_id"],
            &seen["status"],
            &seen["attribution"],
            &seen["payout"],
            &seen["payout_currency"],
        ),
        (
            &json!(me),
            &json!(gated_id),
            &link["id"],
            &json!(cid),
            &json!("approved"),
            &json!("click"),
            &json!("5.0000"),
            &json!("USD"),
        ),
        "{seen}"
    );

    // Its stats: the click and the conversion, once both are shipped.
    let stats = wait_for_async("the click and the conversion in the stats", || async {
        let (s, v) = papi(&server, &k, "GET", "/partner/v1/stats", None).await;
        assert_eq!(s, 200, "{v}");
        (v["rows"][0]["clicks"] == 1 && v["rows"][0]["conversions"] == 1).then_some(v)
    })
    .await;
    assert_eq!(stats["rows"][0]["payout"], "5.0000", "{stats}");

    // Its payouts: approved, and on hold for the offer's 30 days.
    let (lines, full) = payouts(&server, &k, me).await;
    assert_eq!(
        lines,
        ["USD: 5.00 0.00 0.00 5.00 0.00 0.00 0.00, -"],
        "{full}"
    );
    assert_eq!(full["payments"], json!([]));

    // The no-hold offer: a conversion of today is still held through the
    // end of today (balances are through yesterday, the last day over).
    let open_link = plink(&server, &k, &json!(open_id)).await;
    let cid = click(&server, &open_link).await;
    let today_conv = convert(&server, &open, &cid, "ORDER-2", "cust-2").await;
    partner_sees(&server, &k, &today_conv).await;
    let (lines, _) = payouts(&server, &k, me).await;
    assert_eq!(
        lines,
        [
            "EUR: 2.00 0.00 0.00 2.00 0.00 0.00 0.00, -",
            "USD: 5.00 0.00 0.00 5.00 0.00 0.00 0.00, -",
        ]
    );
    // A day later it is payable: a conversion of yesterday on that offer,
    // written as the shipper writes rows (time cannot be moved forward).
    let yesterday_secs = now_secs() - 86_400;
    let db = &server.config.database;
    services().clickhouse.query(&format!(
        "INSERT INTO {db}.conversions (conversion_id, ts, partner_id, offer_id, status, reason, \
         amount, currency, payout, payout_currency, version) VALUES ('journey-yesterday', \
         toDateTime({yesterday_secs}), {me}, {open_id}, 'approved', 'ok', toDecimal64('30', 4), \
         'EUR', toDecimal64('3', 4), 'EUR', 1)"
    ));
    let (lines, full) = payouts(&server, &k, me).await;
    assert_eq!(
        lines,
        [
            "EUR: 5.00 0.00 0.00 2.00 3.00 0.00 3.00, -",
            "USD: 5.00 0.00 0.00 5.00 0.00 0.00 0.00, -",
        ]
    );
    let yesterday = utc_day(yesterday_secs).to_string();
    assert_eq!(full["payable_through"], yesterday);

    // The admin pays it; the partner sees the payment and nothing owed.
    let (s, paid) = admin(
        &server,
        "POST",
        &format!("/api/v1/partners/{me}/payouts"),
        Some(json!({"paid_through": yesterday, "currency": "EUR", "note": "wire 17"})),
    )
    .await;
    assert_eq!((s, &paid["amount"]), (201, &json!("3.00")), "{paid}");
    let (lines, full) = payouts(&server, &k, me).await;
    assert_eq!(
        lines,
        [
            format!("EUR: 5.00 0.00 0.00 2.00 3.00 3.00 0.00, {yesterday}"),
            "USD: 5.00 0.00 0.00 5.00 0.00 0.00 0.00, -".to_string(),
        ]
    );
    assert_eq!(
        full["payments"],
        json!([{"payment_id": paid["payment_id"], "currency": "EUR", "paid_through": yesterday,
                "amount": "3.00", "paid_at": paid["paid_at"], "note": "wire 17"}])
    );

    // A deal: the partner registers its prospect for the gated offer
    // (granted), on its own behalf only.
    let deal_body = json!({"offer_id": gated_id, "company": "Acme Kitchens",
                           "customer_id": "acme-42", "contact_email": "chef@acme-kitchens.com",
                           "expected_value": "1200.00", "notes": "catering, 12 sites"});
    let mut with_partner = deal_body.clone();
    with_partner["partner_id"] = json!(me);
    let (s, v) = papi(&server, &k, "POST", "/partner/v1/deals", Some(with_partner)).await;
    assert_eq!((s, field(&v)), (400, "partner_id"), "{v}");
    let (s, deal) = papi(
        &server,
        &k,
        "POST",
        "/partner/v1/deals",
        Some(deal_body.clone()),
    )
    .await;
    assert_eq!(s, 201, "{deal}");
    assert_eq!(
        (
            &deal["partner_id"],
            &deal["status"],
            &deal["domain"],
            &deal["currency"]
        ),
        (
            &json!(me),
            &json!("pending"),
            &json!("acme-kitchens.com"),
            &json!("USD")
        ),
        "{deal}"
    );
    let deal_id = deal["id"].as_u64().unwrap();
    let (s, listed) = papi(&server, &k, "GET", "/partner/v1/deals?status=pending", None).await;
    assert_eq!((s, &listed["items"]), (200, &json!([deal])), "{listed}");
    let (s, admins) = admin(&server, "GET", &format!("/api/v1/deals/{deal_id}"), None).await;
    assert_eq!((s, &admins), (200, &deal), "the admin sees the same deal");

    // The admin approves it; the partner sees it approved.
    let (s, approved) = admin(
        &server,
        "POST",
        &format!("/api/v1/deals/{deal_id}/approve"),
        None,
    )
    .await;
    assert_eq!(
        (s, &approved["status"]),
        (200, &json!("approved")),
        "{approved}"
    );
    let (s, mine) = papi(
        &server,
        &k,
        "GET",
        &format!("/partner/v1/deals/{deal_id}"),
        None,
    )
    .await;
    assert_eq!((s, &mine), (200, &approved), "{mine}");
    // The prospect is protected now: registering it again is a conflict
    // that names the day the protection ends.
    let until = approved["protected_until"].as_str().unwrap();
    let (s, v) = papi(&server, &k, "POST", "/partner/v1/deals", Some(deal_body)).await;
    assert_eq!((s, code(&v)), (409, "conflict"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&until[..10]),
        "{v} names {until}"
    );

    // The prospect buys, with no click: the merchant's postback names the
    // customer, and the deal credits the partner.
    let resp = client()
        .post(format!("{}/postback", server.public))
        .json(
            &json!({"customer_id": "acme-42", "order_id": "ACME-1", "amount": "400.00",
                      "token": gated["postback_token"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        (&v["status"], &v["reason"]),
        (&json!("approved"), &json!("deal_registration")),
        "{v}"
    );
    let by_deal = partner_sees(&server, &k, v["conversion_id"].as_str().unwrap()).await;
    assert_eq!(
        (
            &by_deal["partner_id"],
            &by_deal["attribution"],
            &by_deal["deal_id"],
            &by_deal["click_id"],
            &by_deal["order_id"],
        ),
        (
            &json!(me),
            &json!("deal"),
            &json!(deal_id),
            &json!(""),
            &json!("ACME-1")
        ),
        "{by_deal}"
    );
}
