//! Performance tiers end to end: conversions seeded into ClickHouse at
//! past times, rounds run as of instants along that history
//! (`POST /api/v1/tiers/evaluate` with `at`), and the partner's record,
//! its tier history and the payout of a live postback read back.

mod common;
#[allow(dead_code)]
mod stats_support;

use common::*;
use serde_json::{json, Value};
use stats_support::{insert_conversions, Version};

const DAY: i64 = 86_400;

/// `n` approved conversions of `partner` on offer `offer`, one an hour
/// from `first` (Unix seconds).
fn approved(partner: u64, offer: u64, first: i64, n: usize, tag: &str) -> Vec<Version> {
    (0..n)
        .map(|i| Version {
            id: format!("{tag}{i:04}"),
            ts: first + i as i64 * 3600,
            click: Some((format!("c{tag}{i}"), first + i as i64 * 3600 - 60)),
            partner,
            offer,
            link: 1,
            amount: 1_000_000,
            payout: 50_000,
            status: "approved",
            version: 1,
        })
        .collect()
}

async fn evaluate(server: &Server, at: Option<i64>) -> Value {
    let body = match at {
        Some(t) => json!({"at": humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(t as u64)).to_string()}),
        None => json!({}),
    };
    let (s, v) = admin(server, "POST", "/api/v1/tiers/evaluate", Some(body)).await;
    assert_eq!(s, 200, "{v}");
    v
}

async fn partner(server: &Server, id: u64) -> Value {
    let (s, p) = admin(server, "GET", &format!("/api/v1/partners/{id}"), None).await;
    assert_eq!(s, 200, "{p}");
    p
}

/// A `sale` postback of `amount` for a fresh click on `link`; answers the
/// payout.
async fn sale_payout(server: &Server, link: &Value, offer: &Value, order: &str) -> String {
    let click_id = click(server, link).await;
    let resp = client()
        .post(format!("{}/postback", server.public))
        .header("content-type", "application/json")
        .body(
            json!({"click_id": click_id, "order_id": order, "amount": "100.00",
                   "token": offer["postback_token"]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "approved", "{v}");
    v["payout"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn partners_rise_at_once_fall_after_grace_and_are_paid_at_their_tier() {
    let mut server = Server::start(
        ServerConfig::new("tiers")
            .with(
                "TRACKEDGE_TIERS_LEVELS",
                "silver:conversions:10:30,gold:conversions:50:90",
            )
            .with("TRACKEDGE_TIERS_GRACE_DAYS", "30"),
    );
    server.wait_ready();
    let (link, offer, a) = seed_partner_link(
        &server,
        json!({"name": "A", "kind": "affiliate"}),
        "https://shop.example/?cid={click_id}",
        None,
    )
    .await;
    let (s, offer) = admin(
        &server,
        "PATCH",
        &format!("/api/v1/offers/{}", offer["id"]),
        Some(json!({"payout_by_tier": [{"tier": "gold", "payout": {"model": "cpa", "amount": "9.00"}}]})),
    )
    .await;
    assert_eq!(s, 200, "{offer}");
    let (s, b) = admin(
        &server,
        "POST",
        "/api/v1/partners",
        Some(json!({"name": "B", "kind": "affiliate"})),
    )
    .await;
    assert_eq!(s, 201);
    let (a_id, b_id, offer_id) = (
        a["id"].as_u64().unwrap(),
        b["id"].as_u64().unwrap(),
        offer["id"].as_u64().unwrap(),
    );
    let now = now_secs() as i64;
    let db = &server.config.database;
    // A: 60 sales from 200 days ago (gold by 150 days ago); B: 12 sales
    // from 160 days ago (silver 150 days ago).
    insert_conversions(db, &approved(a_id, offer_id, now - 200 * DAY, 60, "a"));
    insert_conversions(db, &approved(b_id, offer_id, now - 160 * DAY, 12, "b"));

    // 150 days ago: both promoted at once.
    let r = evaluate(&server, Some(now - 150 * DAY)).await;
    let mut changes: Vec<(u64, String, String)> = r["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["partner_id"].as_u64().unwrap(),
                c["to"].as_str().unwrap_or("").to_string(),
                c["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    changes.sort();
    assert_eq!(
        changes,
        vec![
            (a_id, "gold".into(), "promotion".into()),
            (b_id, "silver".into(), "promotion".into())
        ],
        "{r}"
    );
    assert_eq!(r["evaluated"], 2);
    let pa = partner(&server, a_id).await;
    assert_eq!(pa["tier"], "gold");
    assert!(
        pa["tier_history"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("promotion: 60 conversions in 90 days >= 50 (gold)"),
        "{pa}"
    );
    // The same round again changes nothing.
    let again = evaluate(&server, Some(now - 150 * DAY)).await;
    assert_eq!(again["changes"], json!([]), "{again}");

    // A sale now pays A the gold rate: the tier in force now.
    assert_eq!(sale_payout(&server, &link, &offer, "o-gold").await, "9.00");

    // 100 days ago A's sales have left its window: grace starts, no change.
    let r = evaluate(&server, Some(now - 100 * DAY)).await;
    assert!(
        r["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["partner_id"] != a_id),
        "{r}"
    );
    let pa = partner(&server, a_id).await;
    assert_eq!(pa["tier"], "gold");
    assert!(pa["tier_below_since"].is_string(), "{pa}");

    // 31 days later the grace is over: A falls to the base tier.
    let r = evaluate(&server, Some(now - 69 * DAY)).await;
    let fall: Vec<&Value> = r["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["partner_id"] == a_id)
        .collect();
    assert_eq!(fall.len(), 1, "{r}");
    assert_eq!(fall[0]["kind"], "demotion");
    assert_eq!(fall[0]["from"], "gold");
    assert!(fall[0]["to"].is_null(), "{r}");
    let pa = partner(&server, a_id).await;
    assert!(pa["tier"].is_null(), "{pa}");
    assert!(
        pa.get("tier_below_since").is_none_or(Value::is_null),
        "{pa}"
    );
    assert_eq!(pa["tier_history"].as_array().unwrap().len(), 2, "{pa}");

    // And a sale now pays the offer's base rate.
    assert_eq!(sale_payout(&server, &link, &offer, "o-base").await, "5.00");

    // A future instant is refused, naming `at`.
    let (s, v) = admin(
        &server,
        "POST",
        "/api/v1/tiers/evaluate",
        Some(json!({"at": "2999-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("at")), "{v}");
}
