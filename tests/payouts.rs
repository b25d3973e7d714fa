//! The payouts report and partner payments against real Redis and
//! ClickHouse and the built binary: conversions seeded straight into
//! `conversions` at times relative to now (pending; approved inside and
//! outside the offer's hold; a version written twice; reversals before
//! and after a payment; two currencies), then `GET
//! /api/v1/reports/payouts`, concurrent `POST
//! /api/v1/partners/{id}/payouts` of which exactly one pays, and the
//! negative balance a reversal after payment leaves.

mod common;

use chrono::{DateTime, Days, NaiveDate};
use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const DAY: u64 = 86_400;

/// A read-only token: reads the report, records no payment.
const READER: &str = "payouts-reader-token";

async fn create(server: &Server, kind: &str, body: Value) -> u64 {
    let (s, v) = admin(server, "POST", &format!("/api/v1/{kind}"), Some(body)).await;
    assert_eq!(s, 201, "{v}");
    v["id"].as_u64().unwrap()
}

/// One conversion version, `days_ago` days before `now`, paid in
/// `currency`.
#[allow(clippy::too_many_arguments)]
fn insert_conversion(
    server: &Server,
    id: &str,
    partner: u64,
    offer: u64,
    at: u64,
    status: &str,
    payout: &str,
    currency: &str,
    version: u64,
) {
    let db = &server.config.database;
    services().clickhouse.query(&format!(
        "INSERT INTO {db}.conversions (conversion_id, ts, partner_id, offer_id, status, reason, \
         amount, currency, payout, payout_currency, version) VALUES ('{id}', toDateTime({at}), \
         {partner}, {offer}, '{status}', 'ok', toDecimal64('50', 4), '{currency}', \
         toDecimal64('{payout}', 4), '{currency}', {version})"
    ));
}

/// `POST /api/v1/partners/{partner}/payouts` with `body`, by `token`.
async fn pay(server: &Server, partner: u64, body: Value, token: &str) -> (u16, Value) {
    let resp = client()
        .post(format!(
            "{}/api/v1/partners/{partner}/payouts",
            server.admin
        ))
        .header("Authorization", format!("Bearer {token}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// `GET /api/v1/reports/payouts?{query}` by `token`: status, content type
/// and body text.
async fn report_raw(
    server: &Server,
    query: &str,
    token: &str,
    accept: &str,
) -> (u16, String, String) {
    let resp = client()
        .get(format!("{}/api/v1/reports/payouts?{query}", server.admin))
        .header("Authorization", format!("Bearer {token}"))
        .header("Accept", accept)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let kind = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, kind, resp.text().await.unwrap())
}

/// The report's rows as `partner currency: approved pending reversed
/// on_hold payable paid owed, paid_through`.
async fn report(server: &Server, query: &str) -> Vec<String> {
    let (s, _, text) = report_raw(server, query, TOKEN, "application/json").await;
    assert_eq!(s, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let m = |k: &str| r[k].as_str().unwrap().to_string();
            format!(
                "{} {}: {} {} {} {} {} {} {}, {}",
                r["partner_id"],
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
        })
        .collect()
}

fn error(v: &Value) -> (&str, &str) {
    (
        v["error"]["code"].as_str().unwrap_or("?"),
        v["error"]["field"].as_str().unwrap_or("-"),
    )
}

fn utc_day(secs: u64) -> NaiveDate {
    DateTime::from_timestamp(secs as i64, 0)
        .unwrap()
        .date_naive()
}

#[tokio::test]
async fn payouts_report_and_payments() {
    let digest: String = Sha256::digest(READER.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let server = Server::start(
        ServerConfig::new("payouts").with("TRACKEDGE_READ_ONLY_TOKEN_SHA256", &digest),
    );
    let url = "https://m.example.com/?c={click_id}";
    let (a, b) = (
        create(
            &server,
            "partners",
            json!({"name": "Ann", "kind": "affiliate"}),
        )
        .await,
        create(
            &server,
            "partners",
            json!({"name": "Bo", "kind": "affiliate"}),
        )
        .await,
    );
    // Shoes: USD, the default 30-day hold. Hats: EUR, a 2-day hold.
    let shoes = create(
        &server,
        "offers",
        json!({"name": "Shoes", "url": url, "payout": {"model": "cpa", "amount": "5"}}),
    )
    .await;
    let hats = create(
        &server,
        "offers",
        json!({"name": "Hats", "url": url, "currency": "EUR", "hold_days": 2,
               "payout": {"model": "cpa", "amount": "10"}}),
    )
    .await;
    let (s, offer) = admin(&server, "GET", &format!("/api/v1/offers/{shoes}"), None).await;
    assert_eq!((s, &offer["hold_days"]), (200, &json!(30)), "{offer}");
    // hold_days is checked, naming the field.
    for body in [
        json!({"name": "X", "url": url, "hold_days": 366, "payout": {"model": "cpa", "amount": "1"}}),
        json!({"name": "X", "url": url, "hold_days": -1, "payout": {"model": "cpa", "amount": "1"}}),
    ] {
        let (s, v) = admin(&server, "POST", "/api/v1/offers", Some(body)).await;
        assert_eq!((s, error(&v)), (400, ("invalid", "hold_days")), "{v}");
    }
    let (s, v) = admin(
        &server,
        "PATCH",
        &format!("/api/v1/offers/{hats}"),
        Some(json!({"hold_days": 400})),
    )
    .await;
    assert_eq!((s, error(&v)), (400, ("invalid", "hold_days")), "{v}");

    let t = now_secs();
    let ago = |days: u64| t - days * DAY;
    let yesterday = utc_day(t).pred_opt().unwrap().to_string();
    for (id, partner, offer, at, status, payout, currency, version) in [
        // Ann, USD: payable (40 and 35 days old; a4 written twice), on
        // hold (10 days), pending, reversed before any payment, and a6,
        // reversed after the payment below.
        ("a1", a, shoes, ago(40), "approved", "5", "USD", 1),
        ("a2", a, shoes, ago(10), "approved", "7", "USD", 1),
        ("a3", a, shoes, ago(40), "pending", "1", "USD", 1),
        ("a4", a, shoes, ago(35), "approved", "2.5", "USD", 1),
        ("a4", a, shoes, ago(35), "approved", "2.5", "USD", 1),
        ("a5", a, shoes, ago(45), "approved", "8", "USD", 1),
        ("a5", a, shoes, ago(45), "reversed", "8", "USD", 2),
        ("a6", a, shoes, ago(50), "approved", "4", "USD", 1),
        ("ar", a, shoes, ago(40), "rejected", "0", "USD", 1),
        // Ann, EUR: three days old with a two-day hold is payable through
        // yesterday; two days old is not.
        ("e1", a, hats, ago(3), "approved", "10", "EUR", 1),
        ("e2", a, hats, ago(2), "approved", "6", "EUR", 1),
        // Bo.
        ("b1", b, shoes, ago(40), "approved", "3", "USD", 1),
    ] {
        insert_conversion(
            &server, id, partner, offer, at, status, payout, currency, version,
        );
    }

    let range = format!("from={}&to={}", utc_day(ago(60)), utc_day(t));
    let before = [
        format!("{a} EUR: 16.00 0.00 0.00 6.00 10.00 0.00 10.00, -"),
        format!("{a} USD: 18.50 1.00 8.00 7.00 11.50 0.00 11.50, -"),
        format!("{b} USD: 3.00 0.00 0.00 0.00 3.00 0.00 3.00, -"),
    ];
    assert_eq!(report(&server, &range).await, before);
    // The range bounds the activity, never the balances.
    let day = utc_day(ago(10));
    assert_eq!(
        report(&server, &format!("from={day}&to={day}&partner_id={a}")).await,
        [
            format!("{a} EUR: 0.00 0.00 0.00 6.00 10.00 0.00 10.00, -"),
            format!("{a} USD: 7.00 0.00 0.00 7.00 11.50 0.00 11.50, -"),
        ]
    );
    let (s, _, text) = report_raw(&server, "partner_id=x", TOKEN, "").await;
    assert_eq!(s, 400, "{text}");
    assert!(text.contains("\"field\":\"partner_id\""), "{text}");

    // A read-only token reads the report and cannot pay.
    let (s, _, text) = report_raw(&server, &range, READER, "").await;
    assert_eq!(s, 200, "{text}");
    let usd = json!({"paid_through": yesterday, "currency": "USD"});
    let (s, v) = pay(&server, a, usd.clone(), READER).await;
    assert_eq!((s, error(&v)), (403, ("forbidden", "authorization")), "{v}");

    // Bad payments, each naming its field.
    let today = utc_day(t).to_string();
    for (body, expected) in [
        (
            json!({"paid_through": "2026-13-01", "currency": "USD"}),
            (400, ("invalid", "paid_through")),
        ),
        (
            json!({"paid_through": today, "currency": "USD"}),
            (400, ("invalid", "paid_through")),
        ),
        (
            json!({"paid_through": yesterday, "currency": "usd"}),
            (400, ("invalid", "currency")),
        ),
        (
            json!({"paid_through": yesterday}),
            (400, ("invalid", "currency")),
        ),
        (
            json!({"paid_through": yesterday, "currency": "USD", "amount": "5"}),
            (400, ("invalid", "amount")),
        ),
        (
            json!({"paid_through": yesterday, "currency": "USD", "note": "x".repeat(1001)}),
            (400, ("invalid", "note")),
        ),
        // Through a day before any hold was over: nothing owed.
        (
            json!({"paid_through": utc_day(ago(30)).to_string(), "currency": "USD"}),
            (409, ("nothing_owed", "paid_through")),
        ),
    ] {
        let (s, v) = pay(&server, a, body.clone(), TOKEN).await;
        assert_eq!((s, error(&v)), expected, "{body}: {v}");
    }
    let (s, v) = admin(&server, "GET", "/api/v1/partners/x/payouts", None).await;
    assert_eq!((s, error(&v)), (404, ("not_found", "id")), "{v}");

    // Five payments of the same money at once: exactly one pays.
    let mut body = usd.clone();
    body["note"] = json!("wire 2026-04");
    let answers =
        futures_util::future::join_all((0..5).map(|_| pay(&server, a, body.clone(), TOKEN))).await;
    let paid: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(paid.len(), 1, "{answers:?}");
    for (s, v) in answers.iter().filter(|(s, _)| *s != 201) {
        assert_eq!(*s, 409, "{v}");
        assert!(["conflict", "nothing_owed"].contains(&error(v).0), "{v}");
    }
    let p = paid[0];
    for (field, expected) in [
        ("partner_id", json!(a)),
        ("currency", json!("USD")),
        ("paid_through", json!(yesterday)),
        ("amount", json!("11.50")),
        ("payable", json!("11.50")),
        ("paid_before", json!("0.00")),
        ("note", json!("wire 2026-04")),
    ] {
        assert_eq!(p[field], expected, "{field} of {p}");
    }
    let db = &server.config.database;
    let ch = &services().clickhouse;
    assert_eq!(
        ch.query(&format!(
            "SELECT partner_id, currency, toString(paid_through), amount, payable, paid_before \
             FROM {db}.partner_payments FORMAT TSV"
        )),
        format!("{a}\tUSD\t{yesterday}\t11.5000\t11.5000\t0.0000\n")
    );
    // Paid in full: nothing more through the same day.
    let (s, v) = pay(&server, a, usd.clone(), TOKEN).await;
    assert_eq!(
        (s, error(&v)),
        (409, ("nothing_owed", "paid_through")),
        "{v}"
    );

    // a6, paid, is reversed: its 4.00 is owed back, carried forward.
    insert_conversion(&server, "a6", a, shoes, ago(50), "reversed", "4", "USD", 2);
    let after = [
        format!("{a} EUR: 16.00 0.00 0.00 6.00 10.00 0.00 10.00, -"),
        format!("{a} USD: 14.50 1.00 12.00 7.00 7.50 11.50 -4.00, {yesterday}"),
        format!("{b} USD: 3.00 0.00 0.00 0.00 3.00 0.00 3.00, -"),
    ];
    assert_eq!(report(&server, &range).await, after);
    let (s, v) = pay(&server, a, usd.clone(), TOKEN).await;
    assert_eq!(
        (s, error(&v)),
        (409, ("nothing_owed", "paid_through")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already paid 11.5"),
        "{v}"
    );

    // The other currency is paid on its own; not through an earlier day
    // afterwards.
    let (s, v) = pay(
        &server,
        a,
        json!({"paid_through": yesterday, "currency": "EUR"}),
        TOKEN,
    )
    .await;
    assert_eq!((s, &v["amount"]), (201, &json!("10.00")), "{v}");
    let earlier = utc_day(t)
        .checked_sub_days(Days::new(2))
        .unwrap()
        .to_string();
    let (s, v) = pay(
        &server,
        a,
        json!({"paid_through": earlier, "currency": "EUR"}),
        TOKEN,
    )
    .await;
    assert_eq!(
        (s, error(&v)),
        (409, ("already_paid", "paid_through")),
        "{v}"
    );

    // The partner's payments, oldest first; Bo has none.
    let (s, v) = admin(
        &server,
        "GET",
        &format!("/api/v1/partners/{a}/payouts"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let items: Vec<(String, String)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["currency"].as_str().unwrap().into(),
                i["amount"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        items,
        [
            ("USD".into(), "11.50".into()),
            ("EUR".into(), "10.00".into())
        ]
    );
    let (s, v) = admin(
        &server,
        "GET",
        &format!("/api/v1/partners/{b}/payouts"),
        None,
    )
    .await;
    assert_eq!((s, v), (200, json!({"items": []})));

    // CSV, by format=csv or by Accept.
    let expected_csv = format!(
        "partner_id,currency,approved,pending,reversed,bonuses,on_hold,payable,paid,owed,paid_through\n\
         {a},EUR,16.00,0.00,0.00,0.00,6.00,10.00,10.00,0.00,{yesterday}\n\
         {a},USD,14.50,1.00,12.00,0.00,7.00,7.50,11.50,-4.00,{yesterday}\n\
         {b},USD,3.00,0.00,0.00,0.00,0.00,3.00,0.00,3.00,\n"
    );
    for (query, accept) in [
        (format!("{range}&format=csv"), "application/json"),
        (range.clone(), "text/csv"),
    ] {
        let (s, kind, text) = report_raw(&server, &query, READER, accept).await;
        assert_eq!(
            (s, kind.as_str()),
            (200, "text/csv; charset=utf-8"),
            "{text}"
        );
        assert_eq!(text, expected_csv, "{query} {accept}");
    }
}
