//! Partner applications and partner statuses end to end, against real
//! Redis and ClickHouse and the built binary: `POST /apply` on the public
//! listener, the admin's approve, reject and suspend, and what each
//! status does to a partner's links and conversions.

mod common;

use common::*;
use serde_json::{json, Value};

const OFFER_URL: &str = "https://shop.example.com/?cid={click_id}";

/// `POST /apply` from client address `ip` (the test client is a trusted
/// proxy, so `X-Forwarded-For` names the client); answers status and
/// JSON body.
async fn apply(server: &Server, ip: &str, content_type: &str, body: String) -> (u16, Value) {
    let resp = client()
        .post(format!("{}/apply", server.public))
        .header("content-type", content_type)
        .header("x-forwarded-for", ip)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn apply_json(server: &Server, ip: &str, body: Value) -> (u16, Value) {
    apply(server, ip, "application/json", body.to_string()).await
}

fn applicant(email: &str) -> Value {
    json!({
        "name": "Ann's Recipes",
        "email": email,
        "kind": "affiliate",
        "website": "https://recipes.example.com",
        "promotion": "a cooking blog with 40k monthly readers"
    })
}

/// The ids of the partners `GET /api/v1/partners?status=...` lists.
async fn listed(server: &Server, status: &str) -> Vec<u64> {
    let (s, v) = admin(
        server,
        "GET",
        &format!("/api/v1/partners?status={status}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect()
}

/// A CPA offer and a link of partner `partner_id` to it; answers the
/// link and the offer.
async fn link_for(server: &Server, partner_id: u64) -> (Value, Value) {
    let (s, o) = admin(
        server,
        "POST",
        "/api/v1/offers",
        Some(json!({"name": "Offer", "url": OFFER_URL, "payout": {"model": "cpa", "amount": "5.00"}})),
    )
    .await;
    assert_eq!(s, 201, "{o}");
    let (s, l) = admin(
        server,
        "POST",
        "/api/v1/links",
        Some(json!({"partner_id": partner_id, "offer_id": o["id"]})),
    )
    .await;
    assert_eq!(s, 201, "{l}");
    (l, o)
}

/// The status a `GET /{code}` answers.
async fn redirect_status(server: &Server, link: &Value) -> u16 {
    client()
        .get(format!(
            "{}/{}",
            server.public,
            link["code"].as_str().unwrap()
        ))
        .header("user-agent", BROWSER_UA)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn set_status(server: &Server, id: u64, body: Value) -> (u16, Value) {
    admin(
        server,
        "PATCH",
        &format!("/api/v1/partners/{id}"),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn an_applicant_is_listed_approved_and_then_redirects() {
    let server = Server::start(ServerConfig::new("apply"));
    let (s, v) = apply_json(&server, "198.51.100.1", applicant("ann@example.com")).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["status"], "applied");
    let id = v["id"].as_u64().unwrap();

    // The admin sees it waiting, with everything the form said.
    assert_eq!(listed(&server, "applied").await, [id]);
    assert!(listed(&server, "active").await.is_empty());
    let (_, p) = admin(&server, "GET", &format!("/api/v1/partners/{id}"), None).await;
    assert_eq!(p["email"], "ann@example.com");
    assert_eq!(p["website"], "https://recipes.example.com");
    assert_eq!(p["promotion"], "a cooking blog with 40k monthly readers");
    assert_eq!(p["kind"], "affiliate");

    // An applicant's link does not redirect yet.
    let (link, _) = link_for(&server, id).await;
    assert_eq!(redirect_status(&server, &link).await, 404);

    let (s, p) = admin(
        &server,
        "POST",
        &format!("/api/v1/partners/{id}/approve"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["status"], "active");
    let changes = p["status_changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{p}");
    assert_eq!(
        (&changes[0]["from"], &changes[0]["to"]),
        (&json!("applied"), &json!("active"))
    );
    assert!(changes[0]["at"].as_str().unwrap().ends_with('Z'), "{p}");

    assert_eq!(redirect_status(&server, &link).await, 302);
    assert!(listed(&server, "applied").await.is_empty());
    assert_eq!(listed(&server, "active").await, [id]);

    // Approving again changes nothing; rejecting an active partner is
    // not a move.
    let (s, p) = admin(
        &server,
        "POST",
        &format!("/api/v1/partners/{id}/approve"),
        Some(json!({"reason": "again"})),
    )
    .await;
    assert_eq!((s, p["status_changes"].as_array().unwrap().len()), (200, 1));
    let (s, e) = admin(
        &server,
        "POST",
        &format!("/api/v1/partners/{id}/reject"),
        Some(json!({"reason": "too late"})),
    )
    .await;
    assert_eq!(s, 409, "{e}");
    assert_eq!(e["error"]["code"], "invalid_transition");
    assert_eq!(e["error"]["field"], "status");

    // `apply` can never be a link code.
    let (s, e) = admin(
        &server,
        "POST",
        "/api/v1/links",
        Some(json!({"partner_id": id, "offer_id": link["offer_id"], "code": "apply"})),
    )
    .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (400, Some("code")),
        "{e}"
    );
}

#[tokio::test]
async fn a_rejected_applicant_keeps_its_email_until_deleted() {
    let server = Server::start(ServerConfig::new("reject"));
    let (s, v) = apply_json(&server, "198.51.100.2", applicant("bob@example.com")).await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_u64().unwrap();
    let reject = format!("/api/v1/partners/{id}/reject");

    let (s, e) = admin(&server, "POST", &reject, None).await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (400, Some("reason")),
        "{e}"
    );
    let (s, p) = admin(
        &server,
        "POST",
        &reject,
        Some(json!({"reason": "no audience in our markets"})),
    )
    .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["status"], "rejected");
    assert_eq!(
        p["status_changes"][0]["reason"],
        "no audience in our markets"
    );
    assert!(listed(&server, "applied").await.is_empty());
    assert_eq!(listed(&server, "rejected").await, [id]);

    // A rejected partner cannot be suspended.
    let (s, e) = set_status(&server, id, json!({"status": "suspended"})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("invalid_transition"))
    );

    // The same address, however capitalised, cannot apply again ...
    let (s, e) = apply_json(&server, "198.51.100.3", applicant(" Bob@Example.COM ")).await;
    assert_eq!(s, 409, "{e}");
    assert_eq!(e["error"]["field"], "email");

    // ... until the partner is deleted.
    let (s, _) = admin(&server, "DELETE", &format!("/api/v1/partners/{id}"), None).await;
    assert_eq!(s, 204);
    let (s, v) = apply_json(&server, "198.51.100.3", applicant("bob@example.com")).await;
    assert_eq!(s, 201, "{v}");
    assert_ne!(v["id"].as_u64(), Some(id));
}

#[tokio::test]
async fn a_suspended_partner_stops_redirecting_and_earning() {
    let server = Server::start(ServerConfig::new("suspend"));
    let db = server.config.database.clone();
    let partner = json!({"name": "Partner", "kind": "affiliate"});
    let (link, offer, p) = seed_partner_link(&server, partner, OFFER_URL, None).await;
    let id = p["id"].as_u64().unwrap();
    let token = offer["postback_token"].as_str().unwrap().to_string();
    let cid = click(&server, &link).await;

    let (s, p) = set_status(
        &server,
        id,
        json!({"status": "suspended", "reason": "incentivised traffic"}),
    )
    .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["status"], "suspended");
    assert_eq!(p["status_changes"][0]["reason"], "incentivised traffic");
    assert_eq!(redirect_status(&server, &link).await, 404);

    // Its conversions are recorded, rejected.
    let resp = client()
        .get(format!(
            "{}/postback?click_id={cid}&order_id=S-1&token={token}",
            server.public
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        (&v["status"], &v["reason"]),
        (&json!("rejected"), &json!("partner_inactive"))
    );
    let ch = &services().clickhouse;
    wait_for("the rejected conversion in clickhouse", || {
        let n = ch.count(&format!(
            "SELECT count() FROM {db}.conversions WHERE order_id = 'S-1' \
             AND status = 'rejected' AND reason = 'partner_inactive' AND partner_id = {id}"
        ));
        (n == 1).then_some(())
    });

    // `paused`, the old word, means suspended: no change. An active
    // partner cannot go back to applied.
    let (s, p) = set_status(&server, id, json!({"status": "paused"})).await;
    assert_eq!((s, p["status_changes"].as_array().unwrap().len()), (200, 1));
    let (s, e) = set_status(&server, id, json!({"status": "applied"})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("invalid_transition"))
    );

    let (s, p) = set_status(
        &server,
        id,
        json!({"status": "active", "reason": "cleared"}),
    )
    .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["status_changes"].as_array().unwrap().len(), 2);
    assert_eq!(redirect_status(&server, &link).await, 302);
}

#[tokio::test]
async fn one_email_wins_a_race_between_two_nodes() {
    let first = Server::start(ServerConfig::new("race"));
    let second = Server::start(first.config.other_node());
    let mut tries = Vec::new();
    for i in 0..8 {
        let node = if i % 2 == 0 { &first } else { &second };
        let ip = format!("203.0.113.{}", i + 1);
        tries.push(async move { apply_json(node, &ip, applicant("race@example.com")).await });
    }
    let answers = futures_util::future::join_all(tries).await;
    let mut statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [201, 409, 409, 409, 409, 409, 409, 409],
        "{answers:?}"
    );
    for (s, v) in &answers {
        if *s == 409 {
            assert_eq!(v["error"]["field"], "email", "{v}");
        }
    }
    // Exactly one partner holds the address, on both nodes' listings.
    let (_, page) = admin(&second, "GET", "/api/v1/partners", None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
}

#[tokio::test]
async fn bad_input_abuse_and_auto_approval() {
    let server = Server::start(
        ServerConfig::new("applyin")
            .with("TRACKEDGE_PARTNERS_AUTO_APPROVE", "referral")
            .with("TRACKEDGE_PARTNERS_APPLICATIONS_PER_IP_PER_HOUR", "1")
            .with("TRACKEDGE_PARTNERS_APPLICATIONS_BURST", "4"),
    );
    let field_of = |v: &Value| v["error"]["field"].as_str().map(str::to_string);

    // Each malformed or oversized field is named.
    let ip = "192.0.2.10";
    let mut long = applicant("long@example.com");
    long["promotion"] = json!("x".repeat(4001));
    let (s, v) = apply_json(&server, ip, long).await;
    assert_eq!((s, field_of(&v)), (400, Some("promotion".into())), "{v}");
    let (s, v) = apply_json(&server, ip, applicant("not-an-address")).await;
    assert_eq!((s, field_of(&v)), (400, Some("email".into())), "{v}");
    let (s, v) = apply(&server, ip, "application/json", "{\"name\":".into()).await;
    assert_eq!((s, field_of(&v)), (400, Some("body".into())), "{v}");
    let (s, v) = apply(&server, ip, "application/json", "x".repeat(40_000)).await;
    assert_eq!((s, field_of(&v)), (413, Some("body".into())), "{v}");

    // Every attempt counts: this address is over its burst now.
    let (s, v) = apply_json(&server, ip, applicant("late@example.com")).await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["error"]["code"], "rate_limited");

    // Another address may still apply, by form; a referral is approved
    // at once, an affiliate waits.
    let form = "name=Cara&email=cara%40example.com&kind=referral";
    let (s, v) = apply(
        &server,
        "192.0.2.11",
        "application/x-www-form-urlencoded",
        form.into(),
    )
    .await;
    assert_eq!((s, &v["status"]), (201, &json!("active")), "{v}");
    let cara = v["id"].as_u64().unwrap();
    let (_, p) = admin(&server, "GET", &format!("/api/v1/partners/{cara}"), None).await;
    assert_eq!(p["status_changes"][0]["reason"], "auto_approve: referral");
    let (s, v) = apply_json(&server, "192.0.2.11", applicant("dan@example.com")).await;
    assert_eq!((s, &v["status"]), (201, &json!("applied")), "{v}");

    // Nothing refused was stored.
    let (_, page) = admin(&server, "GET", "/api/v1/partners", None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2, "{page}");
    assert_eq!(
        metric(
            &server,
            "trackedge_http_requests_total{class=\"4xx\",listener=\"public\",route=\"apply\"}"
        ),
        5.0
    );
}
