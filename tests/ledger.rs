//! The conversions ledger end to end: real clicks, a postback and pixels,
//! then `GET` and `PATCH /api/v1/conversions` against real Redis and
//! ClickHouse and the built binary.

mod common;

use std::collections::HashMap;

use common::*;
use serde_json::{json, Value};

/// A pixel hit: lands `pending` / `pixel_untrusted` on a default offer.
async fn pixel(server: &Server, cid: &str, order_id: &str) {
    let resp = client()
        .get(format!(
            "{}/pixel?click_id={cid}&order_id={order_id}&amount=3",
            server.public
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// `GET /api/v1/conversions?{query}`: the page, asserted `200`.
async fn list(server: &Server, query: &str) -> Value {
    let (s, v) = admin(server, "GET", &format!("/api/v1/conversions?{query}"), None).await;
    assert_eq!(s, 200, "{query}: {v}");
    v
}

/// The order ids of a page, in its order.
fn orders(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["order_id"].as_str().unwrap())
        .collect()
}

/// `PATCH` a conversion: status and body.
async fn change(server: &Server, id: &str, body: Value) -> (u16, Value) {
    admin(
        server,
        "PATCH",
        &format!("/api/v1/conversions/{id}"),
        Some(body),
    )
    .await
}

/// Waits until ClickHouse shows `version` of conversion `id`; answers it.
async fn shipped(server: &Server, id: &str, version: u64) -> Value {
    wait_for_async(
        &format!("version {version} of {id} in clickhouse"),
        || async {
            let (s, v) = admin(server, "GET", &format!("/api/v1/conversions/{id}"), None).await;
            (s == 200 && v["version"] == version).then_some(v)
        },
    )
    .await
}

fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("?")
}

#[tokio::test]
async fn status_changes_append_versions_and_reads_show_the_latest() {
    let server = Server::start(ServerConfig::new("ledger"));
    let db = &server.config.database;
    let ch = &services().clickhouse;

    let link = seed_link(&server, "https://shop.example.com/?cid={click_id}", None).await;
    let (s, offer) = admin(
        &server,
        "GET",
        &format!("/api/v1/offers/{}", link["offer_id"]),
        None,
    )
    .await;
    assert_eq!(s, 200, "{offer}");
    let token = offer["postback_token"].as_str().unwrap();
    let (c1, c2) = (click(&server, &link).await, click(&server, &link).await);

    let resp = client()
        .post(format!("{}/postback", server.public))
        .json(&json!({"click_id": c1, "order_id": "L-1", "amount": "20.00", "token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "approved", "{v}");
    pixel(&server, &c2, "L-2").await;
    pixel(&server, &c2, "L-3").await;
    pixel(&server, &c2, "L-4").await;

    // All four in ClickHouse, oldest first.
    let page = wait_for_async("the four conversions in clickhouse", || async {
        let page = list(&server, "").await;
        (page["items"].as_array().unwrap().len() == 4).then_some(page)
    })
    .await;
    assert_eq!(orders(&page), ["L-1", "L-2", "L-3", "L-4"], "{page}");
    assert_eq!(page["next_cursor"], Value::Null);
    let first = &page["items"][0];
    for (field, expected) in [
        ("status", json!("approved")),
        ("reason", json!("ok")),
        ("amount", json!("20.0000")),
        ("currency", json!("USD")),
        ("payout", json!("5.0000")),
        ("payout_currency", json!("USD")),
        ("click_id", json!(c1)),
        ("partner_id", link["partner_id"].clone()),
        ("offer_id", link["offer_id"].clone()),
        ("link_id", link["id"].clone()),
        ("event", json!("sale")),
        ("attribution", json!("click")),
        ("source", json!("postback")),
        ("version", json!(1)),
    ] {
        assert_eq!(first[field], expected, "{field} of {first}");
    }
    assert!(first["ts"].as_str().unwrap().ends_with('Z'), "{first}");
    assert!(
        first["click_ts"].as_str().unwrap().ends_with('Z'),
        "{first}"
    );
    let ids: HashMap<String, String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["order_id"].as_str().unwrap().to_string(),
                i["conversion_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let (approved, pending, to_reject, left_pending) =
        (&ids["L-1"], &ids["L-2"], &ids["L-3"], &ids["L-4"]);
    // The list reads `conversions`; one conversion's reads and changes
    // read `conversion_history`, which its materialized view fills within
    // the same INSERT but visibly a moment later: wait for each there too.
    for id in ids.values() {
        shipped(&server, id, 1).await;
    }

    // Filters and paging.
    let (partner, offer_id) = (&link["partner_id"], &link["offer_id"]);
    for (query, expected) in [
        ("status=pending".to_string(), vec!["L-2", "L-3", "L-4"]),
        ("status=approved".to_string(), vec!["L-1"]),
        ("status=reversed".to_string(), vec![]),
        (
            format!("partner_id={partner}&offer_id={offer_id}"),
            vec!["L-1", "L-2", "L-3", "L-4"],
        ),
        (
            format!("partner_id={}", partner.as_u64().unwrap() + 1000),
            vec![],
        ),
        (
            format!("offer_id={}", offer_id.as_u64().unwrap() + 1000),
            vec![],
        ),
        (
            "from=2000-01-01&to=2100-01-01".to_string(),
            vec!["L-1", "L-2", "L-3", "L-4"],
        ),
        ("from=2100-01-01".to_string(), vec![]),
        ("to=2000-01-01T00:00:00%2B02:00".to_string(), vec![]),
    ] {
        assert_eq!(orders(&list(&server, &query).await), expected, "{query}");
    }
    let page1 = list(&server, "limit=3").await;
    assert_eq!(orders(&page1), ["L-1", "L-2", "L-3"]);
    let cursor = page1["next_cursor"].as_str().expect("a next page");
    let page2 = list(&server, &format!("limit=3&cursor={cursor}")).await;
    assert_eq!(orders(&page2), ["L-4"]);
    assert_eq!(page2["next_cursor"], Value::Null);
    let (s, v) = admin(&server, "GET", "/api/v1/conversions?limit=1001", None).await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (400, Some("limit")),
        "{v}"
    );

    // pending → approved: version 2, the payout kept.
    let (s, v) = change(&server, pending, json!({"status": "approved"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["status"], &v["reason"], &v["payout"], &v["version"]),
        (
            &json!("approved"),
            &json!("ok"),
            &json!("5.0000"),
            &json!(2)
        ),
        "{v}"
    );
    assert_eq!(v["conversion_id"], pending.as_str());
    shipped(&server, pending, 2).await;

    // approved → reversed: version 3, the payout it claws back.
    let (s, v) = change(
        &server,
        pending,
        json!({"status": "reversed", "reason": "refund #42"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["status"], &v["reason"], &v["payout"], &v["version"]),
        (
            &json!("reversed"),
            &json!("refund #42"),
            &json!("5.0000"),
            &json!(3)
        ),
        "{v}"
    );
    // Merging collapses `conversions` to the latest version of each; the
    // history must not depend on when that happens.
    ch.query(&format!("OPTIMIZE TABLE {db}.conversions FINAL"));
    let detail = shipped(&server, pending, 3).await;
    let history: Vec<_> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["version"].as_u64().unwrap(),
                h["status"].as_str().unwrap(),
                h["reason"].as_str().unwrap(),
                h["payout"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        history,
        [
            (1, "pending", "pixel_untrusted", "5.0000"),
            (2, "approved", "ok", "5.0000"),
            (3, "reversed", "refund #42", "5.0000"),
        ],
        "{detail}"
    );
    // Everything but status, reason and version is the first version's.
    let (h1, h3) = (&detail["history"][0], &detail["history"][2]);
    for field in [
        "conversion_id",
        "ts",
        "click_id",
        "click_ts",
        "order_id",
        "amount",
        "offer_id",
    ] {
        assert_eq!(h1[field], h3[field], "{field}");
    }
    assert_eq!(detail["status"], "reversed");

    // Twenty concurrent rejections of one pending conversion: one wins.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let url = format!("{}/api/v1/conversions/{to_reject}", server.admin);
            tokio::spawn(async move {
                let resp = client()
                    .patch(url)
                    .header("authorization", format!("Bearer {TOKEN}"))
                    .json(&json!({"status": "rejected"}))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                (status, resp.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut wins = Vec::new();
    for t in tasks {
        let (s, v) = t.await.unwrap();
        match s {
            200 => wins.push(v),
            409 => assert!(
                ["conflict", "not_yet_shipped", "invalid_transition"].contains(&error_code(&v)),
                "{v}"
            ),
            _ => panic!("a concurrent change answered {s}: {v}"),
        }
    }
    assert_eq!(wins.len(), 1, "{wins:?}");
    assert_eq!(
        (
            &wins[0]["status"],
            &wins[0]["reason"],
            &wins[0]["payout"],
            &wins[0]["version"]
        ),
        (
            &json!("rejected"),
            &json!("manual_review"),
            &json!("0.0000"),
            &json!(2)
        ),
    );
    shipped(&server, to_reject, 2).await;

    // Moves the table does not allow.
    let (s, v) = change(&server, to_reject, json!({"status": "approved"})).await;
    assert_eq!((s, error_code(&v)), (409, "invalid_transition"), "{v}");
    let (s, v) = change(
        &server,
        left_pending,
        json!({"status": "reversed", "reason": "no"}),
    )
    .await;
    assert_eq!((s, error_code(&v)), (409, "invalid_transition"), "{v}");
    let (s, v) = change(&server, approved, json!({"status": "approved"})).await;
    assert_eq!((s, error_code(&v)), (409, "invalid_transition"), "{v}");
    let (s, v) = change(
        &server,
        "0000000000000000000000",
        json!({"status": "approved"}),
    )
    .await;
    assert_eq!((s, error_code(&v)), (404, "not_found"), "{v}");
    let (s, v) = admin(&server, "GET", "/api/v1/conversions/nope", None).await;
    assert_eq!((s, error_code(&v)), (404, "not_found"), "{v}");

    // A change another node wrote and ClickHouse does not show yet, or one
    // in flight, holds further changes back; they go through once it is
    // shipped or given up.
    let prefix = &server.config.prefix;
    let mut redis = services().redis.connection();
    let latest_key = format!("{prefix}conv-version:{left_pending}");
    let claim_key = format!("{prefix}conv-version:{left_pending}:2");
    let _: () = redis::cmd("SET")
        .arg(&latest_key)
        .arg(2)
        .query(&mut redis)
        .unwrap();
    let (s, v) = change(&server, left_pending, json!({"status": "approved"})).await;
    assert_eq!((s, error_code(&v)), (409, "not_yet_shipped"), "{v}");
    let _: () = redis::cmd("DEL")
        .arg(&latest_key)
        .query(&mut redis)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(&claim_key)
        .arg(1)
        .query(&mut redis)
        .unwrap();
    let (s, v) = change(&server, left_pending, json!({"status": "approved"})).await;
    assert_eq!((s, error_code(&v)), (409, "conflict"), "{v}");
    let _: () = redis::cmd("DEL").arg(&claim_key).query(&mut redis).unwrap();
    let (s, v) = change(&server, left_pending, json!({"status": "approved"})).await;
    assert_eq!((s, &v["version"]), (200, &json!(2)), "{v}");
    // Until it is shipped, the next change waits.
    let before: Option<u64> = redis::cmd("GET")
        .arg(&latest_key)
        .query(&mut redis)
        .unwrap();
    assert_eq!(before, Some(2));
    shipped(&server, left_pending, 2).await;

    // The listing shows each conversion once, in its latest state.
    let page = list(&server, "").await;
    let latest: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["order_id"].as_str().unwrap(),
                i["status"].as_str().unwrap(),
                i["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        latest,
        [
            ("L-1", "approved", 1),
            ("L-2", "reversed", 3),
            ("L-3", "rejected", 2),
            ("L-4", "approved", 2),
        ],
        "{page}"
    );
    assert_eq!(
        orders(&list(&server, "status=pending").await),
        Vec::<&str>::new()
    );
    assert_eq!(orders(&list(&server, "status=reversed").await), ["L-2"]);
    // The history holds every version, though `conversions` was merged
    // down to the latest ones: nothing was rewritten or lost.
    assert_eq!(
        ch.count(&format!("SELECT count() FROM {db}.conversion_history")),
        4 + 2 + 1 + 1
    );
    // Each version carries the state it replaced, so conversions_15m
    // counts every conversion once, in its latest state: its totals are
    // the raw table's.
    let chain = ch.query(&format!(
        "SELECT version, prev_status, toString(prev_payout) FROM {db}.conversion_history \
         WHERE order_id = 'L-2' ORDER BY version FORMAT TSV"
    ));
    assert_eq!(
        chain,
        "1\t\t0.0000\n2\tpending\t5.0000\n3\tapproved\t5.0000\n"
    );
    let totals = "metrics=conversions,pending,rejected,reversed,revenue,payout";
    let (s, rollup) = admin(&server, "GET", &format!("/api/v1/stats?{totals}"), None).await;
    assert_eq!(
        (s, &rollup["conversions_source"]),
        (200, &json!("rollup")),
        "{rollup}"
    );
    let (s, raw) = admin(
        &server,
        "GET",
        &format!("/api/v1/stats?{totals}&source=raw"),
        None,
    )
    .await;
    assert_eq!(
        (s, &raw["conversions_source"]),
        (200, &json!("raw")),
        "{raw}"
    );
    assert_eq!(rollup["rows"], raw["rows"]);
    let row = &rollup["rows"][0];
    assert_eq!(
        (
            &row["conversions"],
            &row["pending"],
            &row["rejected"],
            &row["reversed"],
            &row["payout"]
        ),
        (
            &json!(2),
            &json!(0),
            &json!(1),
            &json!(1),
            &json!("10.0000")
        ),
        "{rollup}"
    );
}
