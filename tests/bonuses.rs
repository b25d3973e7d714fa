//! Bonuses end to end, against real Redis and ClickHouse and the built
//! binary: approved conversions seeded into ClickHouse in past calendar
//! months, rounds run as of instants along that history (`POST
//! /api/v1/tiers/evaluate` with `at`) and now; the bonus each round
//! answers, the partner's bonuses, the raw `partner_bonuses` rows and the
//! payouts report read back. Rounds at once, on one node and on two, pay
//! a bonus once.

mod common;

use chrono::{DateTime, Datelike, Months, NaiveDate};
use common::*;
use serde_json::{json, Value};

const RULE: &str = "big_month:conversions:3:month:500.00:USD";

/// Midnight UTC of the first day of the month `back` months before now's.
fn month_start(back: u32) -> i64 {
    let today = today();
    let first = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap();
    (first - Months::new(back))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp()
}

fn today() -> NaiveDate {
    DateTime::from_timestamp(now_secs() as i64, 0)
        .unwrap()
        .date_naive()
}

fn rfc3339(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn date_of(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0)
        .unwrap()
        .date_naive()
        .to_string()
}

/// `n` conversions of `partner` in `status`, one an hour from `first`,
/// paying nothing (so the report's figures are the bonuses alone).
fn seed(server: &Server, partner: u64, first: i64, n: usize, status: &str, tag: &str) {
    let db = &server.config.database;
    let rows: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "('{tag}{i}', toDateTime({}), {partner}, 1, '{status}', 'ok', toDecimal64('20', 4), \
                 'USD', toDecimal64('0', 4), 'USD', 1)",
                first + i as i64 * 3600
            )
        })
        .collect();
    services().clickhouse.query(&format!(
        "INSERT INTO {db}.conversions (conversion_id, ts, partner_id, offer_id, status, reason, \
         amount, currency, payout, payout_currency, version) VALUES {}",
        rows.join(", ")
    ));
}

/// Starts a node with the bonus rule and waits for its first, automatic
/// round (run, or left to another node) to be over, so that no round
/// but the test's own sees what the test seeds next.
fn start(config: ServerConfig) -> Server {
    let server = Server::start(config);
    wait_for("the first tier round", || {
        let log = server.log_text();
        (log.contains("tiers evaluated") || log.contains("taken by another node")).then_some(())
    });
    server
}

async fn create_partner(server: &Server, name: &str) -> u64 {
    let (s, v) = admin(
        server,
        "POST",
        "/api/v1/partners",
        Some(json!({"name": name, "kind": "affiliate"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    v["id"].as_u64().unwrap()
}

/// A round as of `at` (now when `None`); answers its JSON.
async fn evaluate(server: &Server, at: Option<i64>) -> Value {
    let body = at.map_or(json!({}), |t| json!({"at": rfc3339(t)}));
    let (s, v) = admin(server, "POST", "/api/v1/tiers/evaluate", Some(body)).await;
    assert_eq!(s, 200, "{v}");
    v
}

/// The ids of the bonuses a round answered.
fn awarded(round: &Value) -> Vec<String> {
    round["bonuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["bonus_id"].as_str().unwrap().to_string())
        .collect()
}

async fn bonuses_of(server: &Server, partner: u64) -> Vec<Value> {
    let (s, v) = admin(
        server,
        "GET",
        &format!("/api/v1/partners/{partner}/bonuses"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["items"].as_array().unwrap().clone()
}

/// Raw `partner_bonuses` rows of `partner` (not grouped: every INSERT).
fn raw_rows(server: &Server, partner: u64) -> u64 {
    services().clickhouse.count(&format!(
        "SELECT count() FROM {}.partner_bonuses WHERE partner_id = {partner}",
        server.config.database
    ))
}

/// The payouts report's row of `partner` as `bonuses on_hold payable
/// paid owed`.
async fn report(server: &Server, partner: u64, from: &str) -> Vec<String> {
    let (s, v) = admin(
        server,
        "GET",
        &format!("/api/v1/reports/payouts?partner_id={partner}&from={from}"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let m = |k: &str| r[k].as_str().unwrap().to_string();
            format!(
                "{}: {} {} {} {} {}",
                m("currency"),
                m("bonuses"),
                m("on_hold"),
                m("payable"),
                m("paid"),
                m("owed")
            )
        })
        .collect()
}

#[tokio::test]
async fn a_bonus_is_earned_once_per_period_and_paid_through_the_ledger() {
    let server = start(ServerConfig::new("bonus").with("TRACKEDGE_TIERS_BONUSES", RULE));
    let (s, rules) = admin(&server, "GET", "/api/v1/tiers", None).await;
    assert_eq!(s, 200);
    assert_eq!(
        rules["bonuses"],
        json!([{"name": "big_month", "metric": "conversions", "threshold": "3",
                "period": "month", "amount": "500.00", "currency": "USD"}])
    );
    let (a, b, c) = (
        create_partner(&server, "A").await,
        create_partner(&server, "B").await,
        create_partner(&server, "C").await,
    );
    let (s, v) = admin(
        &server,
        "PATCH",
        &format!("/api/v1/partners/{c}"),
        Some(json!({"status": "suspended", "reason": "review"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (m2, m1, m0) = (month_start(2), month_start(1), month_start(0));
    let day = 86_400;
    // Two months ago: A reaches 3 approved; B has 2 approved, one pending
    // and one reversed (3 only if those counted); C reaches 3 but is
    // suspended.
    seed(&server, a, m2 + day, 3, "approved", "a");
    seed(&server, b, m2 + day, 2, "approved", "b");
    seed(&server, b, m2 + 2 * day, 1, "pending", "bp");
    seed(&server, b, m2 + 2 * day + 7200, 1, "reversed", "br");
    seed(&server, c, m2 + day, 3, "approved", "c");

    // As of that month's last hour: A's bonus, no other.
    let at = m1 - 3600;
    let r = evaluate(&server, Some(at)).await;
    let a_id = format!("big_month:{a}:{}", date_of(m2));
    assert_eq!(awarded(&r), [a_id.as_str()], "{r}");
    assert_eq!(r["evaluated"], 3);
    let month = &date_of(m2)[..7];
    assert_eq!(
        r["bonuses"][0]["reason"],
        format!("3 conversions in {month} >= 3 (big_month)")
    );
    assert_eq!(
        (&r["bonuses"][0]["amount"], &r["bonuses"][0]["currency"]),
        (&json!("500.00"), &json!("USD"))
    );
    // The same round again, and a round in the next month (which counts
    // the month before whole): nothing more.
    assert_eq!(
        awarded(&evaluate(&server, Some(at)).await),
        Vec::<String>::new()
    );
    assert_eq!(
        awarded(&evaluate(&server, Some(m1 + 3600)).await),
        Vec::<String>::new()
    );
    let mine = bonuses_of(&server, a).await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["bonus_id"], a_id);
    assert_eq!(mine[0]["period_start"], date_of(m2));
    assert_eq!(mine[0]["earned_at"], rfc3339(at));
    assert_eq!(bonuses_of(&server, b).await, Vec::<Value>::new());
    assert_eq!(bonuses_of(&server, c).await, Vec::<Value>::new());
    assert_eq!(raw_rows(&server, a), 1);

    // The next month: 3 more for A make a new bonus, counted by a round
    // as of that month's last minute.
    seed(&server, a, m1 + day, 3, "approved", "a1_");
    let r = evaluate(&server, Some(m0 - 60)).await;
    let a_next = format!("big_month:{a}:{}", date_of(m1));
    assert_eq!(awarded(&r), [a_next.as_str()], "{r}");
    let ids: Vec<Value> = bonuses_of(&server, a)
        .await
        .iter()
        .map(|b| b["bonus_id"].clone())
        .collect();
    assert_eq!(ids, [json!(a_id), json!(a_next)]);

    // Both earned on days that are over: payable and owed, once each.
    let from = date_of(m2);
    assert_eq!(
        report(&server, a, &from).await,
        ["USD: 1000.00 0.00 1000.00 0.00 1000.00"]
    );
    // A second row of one bonus id (as two INSERTs would leave) is
    // still one bonus to every reader.
    services().clickhouse.query(&format!(
        "INSERT INTO {}.partner_bonuses SELECT * FROM {}.partner_bonuses WHERE bonus_id = '{a_id}'",
        server.config.database, server.config.database
    ));
    assert_eq!(raw_rows(&server, a), 3);
    assert_eq!(bonuses_of(&server, a).await.len(), 2);
    assert_eq!(
        report(&server, a, &from).await,
        ["USD: 1000.00 0.00 1000.00 0.00 1000.00"]
    );
    // Only the range's bonuses are in `bonuses`; balances are all time.
    assert_eq!(
        report(&server, a, &date_of(m0)).await,
        ["USD: 0.00 0.00 1000.00 0.00 1000.00"]
    );

    // A payment pays them, once.
    let yesterday = today().pred_opt().unwrap().to_string();
    let (s, v) = admin(
        &server,
        "POST",
        &format!("/api/v1/partners/{a}/payouts"),
        Some(json!({"paid_through": yesterday, "currency": "USD"})),
    )
    .await;
    assert_eq!((s, &v["amount"]), (201, &json!("1000.00")), "{v}");
    assert_eq!(
        report(&server, a, &from).await,
        ["USD: 1000.00 0.00 1000.00 1000.00 0.00"]
    );
    assert_eq!(
        awarded(&evaluate(&server, None).await),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn concurrent_rounds_on_one_node_and_on_two_award_a_bonus_once() {
    let config = ServerConfig::new("bonus2").with("TRACKEDGE_TIERS_BONUSES", RULE);
    let one = start(config.clone());
    let two = start(config.other_node());
    let (a, b) = (
        create_partner(&one, "A").await,
        create_partner(&one, "B").await,
    );
    let last_month = month_start(1);

    // A reached the threshold last month: four rounds now at once on one
    // node (each counts last month whole).
    seed(&one, a, last_month + 86_400, 4, "approved", "a");
    let rounds: Vec<Value> =
        futures_util::future::join_all((0..4).map(|_| evaluate(&one, None))).await;
    let all: Vec<String> = rounds.iter().flat_map(awarded).collect();
    let a_id = format!("big_month:{a}:{}", date_of(last_month));
    assert_eq!(all, [a_id.as_str()], "{rounds:?}");
    assert_eq!(raw_rows(&one, a), 1);
    assert_eq!(bonuses_of(&one, a).await.len(), 1);

    // B too: two rounds on each node at once.
    seed(&one, b, last_month + 86_400, 3, "approved", "b");
    let rounds: Vec<Value> = futures_util::future::join_all(
        [&one, &two, &one, &two]
            .into_iter()
            .map(|node| evaluate(node, None)),
    )
    .await;
    let all: Vec<String> = rounds.iter().flat_map(awarded).collect();
    let b_id = format!("big_month:{b}:{}", date_of(last_month));
    assert_eq!(all, [b_id.as_str()], "{rounds:?}");
    assert_eq!(raw_rows(&two, b), 1);
    assert_eq!(bonuses_of(&two, b).await.len(), 1);
    assert_eq!(bonuses_of(&one, a).await.len(), 1);
}
