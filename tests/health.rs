//! Partner health against real Redis and ClickHouse: clicks and
//! conversions seeded straight into the tables at chosen times, the
//! verdicts read through `GET /api/v1/partners/health`, and the links of
//! an inactive partner paused (and noted in its record) when configured.

mod common;

use common::*;
use serde_json::{json, Value};

const DAY: u64 = 86_400;

/// Inserts `n` clicks of `partner`, `days_ago` days back (bot ones when
/// `bot`).
fn clicks(ch: &ClickHouse, db: &str, partner: u64, days_ago: u64, n: u64, bot: bool) {
    let ts = now_secs() - days_ago * DAY;
    ch.query(&format!(
        "INSERT INTO {db}.clicks (click_id, ts, partner_id, link_id, is_bot) \
         SELECT concat('p{partner}-{days_ago}-{bot}-', toString(number)), toDateTime({ts}), \
         {partner}, 1, {} FROM system.numbers LIMIT {n}",
        u8::from(bot)
    ));
}

/// Inserts one version of a conversion: `(id, partner, days ago, status,
/// payout, version)`.
fn conversion(ch: &ClickHouse, db: &str, row: (&str, u64, u64, &str, &str, u64)) {
    let (id, partner, days_ago, status, payout, version) = row;
    let ts = now_secs() - days_ago * DAY;
    ch.query(&format!(
        "INSERT INTO {db}.conversions (conversion_id, ts, partner_id, offer_id, status, reason, payout, version) \
         VALUES ('{id}', toDateTime({ts}), {partner}, 1, '{status}', 'ok', toDecimal64('{payout}', 4), {version})"
    ));
}

async fn partner(server: &Server, name: &str) -> (u64, u64) {
    let partner = json!({"name": name, "kind": "affiliate"});
    let (l, _, p) =
        seed_partner_link(server, partner, "https://m.example.com/?c={click_id}", None).await;
    (p["id"].as_u64().unwrap(), l["id"].as_u64().unwrap())
}

#[tokio::test]
async fn partners_are_judged_and_the_silent_ones_paused() {
    let server = Server::start(
        ServerConfig::new("health")
            .with("TRACKEDGE_HEALTH_PAUSE_INACTIVE_LINKS", "true")
            .with("TRACKEDGE_HEALTH_CHECK_INTERVAL_SECS", "1"),
    );
    server.wait_migrated();
    let (active, active_link) = partner(&server, "steady").await;
    let (declining, _) = partner(&server, "fading").await;
    let (silent, silent_link) = partner(&server, "gone").await;
    let (new, new_link) = partner(&server, "fresh").await;
    let ch = &services().clickhouse;
    let db = &server.config.database;

    clicks(ch, db, active, 3, 10, false);
    clicks(ch, db, active, 40, 10, false);
    // Bots do not count: without them the fading partner halved.
    clicks(ch, db, declining, 2, 4, false);
    clicks(ch, db, declining, 2, 50, true);
    clicks(ch, db, declining, 45, 10, false);
    clicks(ch, db, silent, 120, 30, false);
    clicks(ch, db, silent, 1, 5, true);
    // Two approved sales, one reversed later; a pending one; an old one.
    conversion(ch, db, ("c1", active, 2, "approved", "5.00", 1));
    conversion(ch, db, ("c2", active, 1, "approved", "7.50", 1));
    conversion(ch, db, ("c2", active, 1, "reversed", "7.50", 2));
    conversion(ch, db, ("c3", active, 0, "pending", "5.00", 1));
    conversion(ch, db, ("c4", silent, 100, "approved", "9.00", 1));

    // An applicant waiting for approval is not judged.
    let resp = client()
        .post(format!("{}/apply", server.public))
        .header("content-type", "application/json")
        .body(
            json!({"name": "Hopeful", "email": "hope@example.com", "kind": "affiliate",
                   "website": "https://hope.example.com", "promotion": "a blog"})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let applicant = resp.json::<Value>().await.unwrap()["id"].as_u64().unwrap();

    let (s, v) = admin(&server, "GET", "/api/v1/partners/health", None).await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["partner_id"] != applicant),
        "{v}"
    );
    let row = |id: u64| -> Value {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["partner_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("partner {id} in {v}"))
    };
    let facts = |id: u64| {
        let r = row(id);
        (
            r["status"].as_str().unwrap().to_string(),
            r["reason"].as_str().unwrap().to_string(),
            r["clicks_30d"].as_u64().unwrap(),
            r["clicks_prev_30d"].as_u64().unwrap(),
            r["conversions_30d"].as_u64().unwrap(),
            r["payout_30d"].as_str().unwrap().to_string(),
        )
    };
    let own = |s: &str, r: &str, c: u64, p: u64, n: u64, pay: &str| {
        (s.to_string(), r.to_string(), c, p, n, pay.to_string())
    };
    assert_eq!(facts(active), own("active", "ok", 10, 10, 1, "5.00"));
    assert_eq!(
        facts(declining),
        own("declining", "clicks_halved", 4, 10, 0, "0.00")
    );
    assert_eq!(
        facts(silent),
        own("inactive", "no_recent_click", 0, 0, 0, "0.00")
    );
    assert_eq!(facts(new), own("active", "new", 0, 0, 0, "0.00"));
    // The pending sale is the active partner's last conversion.
    assert!(row(active)["last_conversion_at"].as_str().is_some());
    assert!(row(new)["last_click_at"].is_null());
    assert!(row(silent)["last_conversion_at"].as_str().is_some());

    // The pauser's next round pauses the silent partner's link only.
    let link_status = |id: u64| {
        let server = &server;
        async move {
            let (s, l) = admin(server, "GET", &format!("/api/v1/links/{id}"), None).await;
            assert_eq!(s, 200, "{l}");
            l["status"].as_str().unwrap().to_string()
        }
    };
    wait_for_async("the silent partner's link paused", || async {
        (link_status(silent_link).await == "paused").then_some(())
    })
    .await;
    let (_, p) = admin(&server, "GET", &format!("/api/v1/partners/{silent}"), None).await;
    let pauses = p["link_pauses"].as_array().unwrap();
    assert_eq!(pauses.len(), 1, "{p}");
    assert_eq!(pauses[0]["link_ids"], json!([silent_link]));
    assert_eq!(pauses[0]["reason"], "inactive: no_recent_click (90 days)");
    for link in [active_link, new_link] {
        assert_eq!(link_status(link).await, "active");
    }
    let (_, p) = admin(&server, "GET", &format!("/api/v1/partners/{active}"), None).await;
    assert_eq!(p["link_pauses"], json!([]));
}
