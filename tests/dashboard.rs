//! The admin dashboard in a real browser: clicks and conversions seeded
//! straight into the server's ClickHouse tables at chosen times, the page
//! opened in Debian's headless Chromium with a read-only token, and the
//! figures it rendered (totals, the days of the chart, top partners and
//! offers, payouts owed from the payouts report after a payment and a
//! reversal, partner health) checked against the seeded data,
//! in UTC and in the browser's own zone (Asia/Kathmandu, +05:45, where
//! some clicks fall on the next day). A screenshot is saved as
//! `target/dashboard.png`.
//!
//! The page sets `<body data-ready="1" data-failed="N">` once every panel
//! has settled (`"login"` while it waits for a token); Chromium prints the
//! DOM only once the page is idle (`common::chromium`), and the test reads
//! that marker.

mod common;

use std::str::FromStr;

use common::chromium::Browser;
use common::dom::*;
use common::*;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The read-only token the browser is given: the dashboard needs no more.
const READER: &str = "dashboard-reader-token";

/// A partner name that would be markup if the page parsed it as HTML.
const ACME: &str = "Acme <b>Media</b> & Co";

const DAY: u64 = 86_400;

// ------------------------------------------------------------------ seeding

async fn create(server: &Server, kind: &str, body: Value) -> u64 {
    let (s, v) = admin(server, "POST", &format!("/api/v1/{kind}"), Some(body)).await;
    assert_eq!(s, 201, "{v}");
    v["id"].as_u64().unwrap()
}

async fn partner(server: &Server, name: &str) -> u64 {
    create(
        server,
        "partners",
        json!({"name": name, "kind": "affiliate"}),
    )
    .await
}

async fn offer(server: &Server, name: &str) -> u64 {
    create(
        server,
        "offers",
        json!({"name": name, "url": "https://m.example.com/?c={click_id}",
               "payout": {"model": "cpa", "amount": "5"}}),
    )
    .await
}

/// The time `at` as ClickHouse SQL: `YYYY-MM-DD hh:mm:ss` in UTC, or Unix
/// seconds.
enum At<'a> {
    Utc(&'a str),
    Unix(u64),
}

impl At<'_> {
    fn sql(&self) -> String {
        match self {
            At::Utc(t) => format!("toDateTime('{t}', 'UTC')"),
            At::Unix(s) => format!("toDateTime({s})"),
        }
    }
}

/// Billable (or, with `bot`, bot) clicks on one table of the server.
struct Clicks<'a> {
    tag: &'a str,
    partner: u64,
    offer: u64,
    at: At<'a>,
    n: u64,
    bot: bool,
    /// Visitors are `first_visitor`, `first_visitor + 1`, …, `n` clicks
    /// spread over `visitors` of them.
    first_visitor: u64,
    visitors: u64,
}

fn insert_clicks(server: &Server, c: Clicks) {
    let db = &server.config.database;
    services().clickhouse.query(&format!(
        "INSERT INTO {db}.clicks (click_id, ts, partner_id, offer_id, link_id, is_bot, visitor) \
         SELECT concat('{tag}-', toString(number)), {at}, {p}, {o}, 1, {bot}, \
         {first} + number % {visitors} FROM system.numbers LIMIT {n}",
        tag = c.tag,
        at = c.at.sql(),
        p = c.partner,
        o = c.offer,
        bot = u8::from(c.bot),
        first = c.first_visitor,
        visitors = c.visitors,
        n = c.n,
    ));
}

/// One version of a conversion: `(id, partner, offer, at, status, amount,
/// payout, version)`.
type Conversion<'a> = (&'a str, u64, u64, &'a str, &'a str, &'a str, &'a str, u64);

fn insert_conversion(server: &Server, row: Conversion) {
    let (id, partner, offer, at, status, amount, payout, version) = row;
    // A later version carries the state it replaces, as the admin API
    // writes it (conversions_15m takes that state back): the only change
    // made here is a reversal of an approval, at the same amounts.
    let prev_status = match (version, status) {
        (1, _) => "",
        (_, "reversed") => "approved",
        _ => panic!("{id}: only reversals are seeded as later versions"),
    };
    let (prev_amount, prev_payout) = if version == 1 {
        ("0", "0")
    } else {
        (amount, payout)
    };
    let db = &server.config.database;
    services().clickhouse.query(&format!(
        "INSERT INTO {db}.conversions (conversion_id, ts, partner_id, offer_id, status, reason, \
         amount, currency, payout, payout_currency, version, prev_status, prev_amount, prev_payout) \
         VALUES ('{id}', {ts}, {partner}, \
         {offer}, '{status}', 'ok', toDecimal64('{amount}', 4), 'USD', toDecimal64('{payout}', 4), \
         'USD', {version}, '{prev_status}', toDecimal64('{prev_amount}', 4), \
         toDecimal64('{prev_payout}', 4))",
        ts = At::Utc(at).sql(),
    ));
}

/// Asserts the page settled with every panel loaded.
fn assert_loaded(dom: &str) {
    assert_eq!(
        (
            body(dom, "data-ready").as_str(),
            body(dom, "data-failed").as_str()
        ),
        ("1", "0"),
        "the dashboard did not load every panel: {}\n{dom}",
        element(dom, "status").text
    );
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// Asserts the page settled with the stats panels refused by a server
/// without `GET /api/v1/stats`, and the rest (payouts, health) loaded.
fn assert_stats_missing(dom: &str) {
    assert_eq!(
        (
            body(dom, "data-ready").as_str(),
            body(dom, "data-failed").as_str()
        ),
        ("1", "4"),
        "{dom}"
    );
    for id in ["totals", "daily", "top-partners", "top-offers"] {
        let from = dom.find(&format!(" id=\"{id}\"")).unwrap();
        let section = &dom[from..from + dom[from..].find("</section>").unwrap()];
        assert!(
            section.contains("Could not load: no such route"),
            "#{id}: {section}"
        );
    }
    let from = dom.find(" id=\"health\"").unwrap();
    assert!(!dom[from..].contains("Could not load"), "{dom}");
}

/// The ids the seeding gave.
struct Seeded {
    acme: u64,
    beta: u64,
    fading: u64,
    fresh: u64,
    shoes: u64,
    hats: u64,
}

/// Partners, offers, and their clicks and conversions, straight into the
/// tables.
async fn seed(server: &Server) -> Seeded {
    let ids = Seeded {
        acme: partner(server, ACME).await,
        beta: partner(server, "Beta Deals").await,
        fading: partner(server, "Fading Ltd").await,
        fresh: partner(server, "Fresh Start").await,
        shoes: offer(server, "Shoes").await,
        hats: offer(server, "Hats").await,
    };
    let Seeded {
        acme,
        beta,
        fading,
        shoes,
        hats,
        ..
    } = ids;
    let clicks = |tag, partner, offer, at, n, bot, first_visitor, visitors| {
        insert_clicks(
            server,
            Clicks {
                tag,
                partner,
                offer,
                at,
                n,
                bot,
                first_visitor,
                visitors,
            },
        )
    };
    // March 2024. 2024-03-10 20:00 UTC is already 2024-03-11 01:45 in
    // Kathmandu.
    clicks(
        "a10",
        acme,
        shoes,
        At::Utc("2024-03-10 12:00:00"),
        6,
        false,
        100,
        3,
    );
    clicks(
        "a10bot",
        acme,
        shoes,
        At::Utc("2024-03-10 12:05:00"),
        2,
        true,
        900,
        2,
    );
    clicks(
        "b10",
        beta,
        hats,
        At::Utc("2024-03-10 20:00:00"),
        3,
        false,
        200,
        3,
    );
    clicks(
        "a11",
        acme,
        hats,
        At::Utc("2024-03-11 10:00:00"),
        1,
        false,
        100,
        1,
    );
    // Sales: one reversed after Acme was paid for it (owed back), one
    // pending, the others approved; Beta's falls on the 11th in
    // Kathmandu.
    for row in [
        (
            "c1",
            acme,
            shoes,
            "2024-03-10 12:30:00",
            "approved",
            "50.00",
            "5.00",
            1,
        ),
        (
            "c2",
            acme,
            shoes,
            "2024-03-10 13:00:00",
            "approved",
            "75.00",
            "7.50",
            1,
        ),
        (
            "c3",
            beta,
            hats,
            "2024-03-10 20:30:00",
            "approved",
            "20.00",
            "2.25",
            1,
        ),
        (
            "c4",
            beta,
            hats,
            "2024-03-11 09:00:00",
            "pending",
            "10.00",
            "1.00",
            1,
        ),
    ] {
        insert_conversion(server, row);
    }
    // Acme is paid through April (the 30-day holds of its March sales
    // are over by then), then c2 is reversed.
    let (s, paid) = admin(
        server,
        "POST",
        &format!("/api/v1/partners/{acme}/payouts"),
        Some(json!({"paid_through": "2024-04-30", "currency": "USD"})),
    )
    .await;
    assert_eq!((s, &paid["amount"]), (201, &json!("12.50")), "{paid}");
    insert_conversion(
        server,
        (
            "c2",
            acme,
            shoes,
            "2024-03-10 13:00:00",
            "reversed",
            "75.00",
            "7.50",
            2,
        ),
    );
    // Health looks at the last 60 days: Acme clicked yesterday, Fading
    // far less than the month before, Beta not since 2024, Fresh never.
    let t = now_secs();
    clicks("ah", acme, shoes, At::Unix(t - DAY), 1, false, 300, 1);
    clicks(
        "f-now",
        fading,
        shoes,
        At::Unix(t - 2 * DAY),
        2,
        false,
        400,
        2,
    );
    clicks(
        "f-then",
        fading,
        shoes,
        At::Unix(t - 40 * DAY),
        10,
        false,
        400,
        2,
    );
    ids
}

/// `(day, clicks, conversions, payout)` of every row of the days' table.
fn days(dom: &str) -> Vec<(String, u64, u64, Decimal)> {
    rows(dom, "daily-table")
        .into_iter()
        .map(|r| {
            (
                r[0].value().to_string(),
                r[1].value().parse().unwrap(),
                r[2].value().parse().unwrap(),
                r[3].decimal(),
            )
        })
        .collect()
}

/// The days of `days` with a click or a conversion.
fn busy(days: &[(String, u64, u64, Decimal)]) -> Vec<(String, u64, u64, Decimal)> {
    days.iter().filter(|d| d.1 + d.2 > 0).cloned().collect()
}

/// The stats panels of March 2024 in UTC.
fn check_stats_in_utc(dom: &str, ids: &Seeded) {
    let total = |id: &str| element(dom, &format!("total-{id}"));
    assert_eq!(total("clicks").value(), "10");
    assert_eq!(total("clicks").text, "10");
    assert_eq!(total("unique_clicks").value(), "6");
    assert_eq!(total("conversions").value(), "2");
    assert_eq!(total("pending").value(), "1");
    assert_eq!(total("revenue").decimal(), dec("70"));
    assert_eq!(total("revenue").text, "70.00");
    assert_eq!(total("payout").decimal(), dec("7.25"));
    assert_eq!(total("payout").text, "7.25");
    assert_eq!(total("cr").decimal(), dec("0.2"));
    assert_eq!(total("cr").text, "20.00 %");
    assert_eq!(total("epc").decimal(), dec("0.725"));

    // Every day of March, in order; the seeded ones carry the figures.
    let all = days(dom);
    assert_eq!(all.len(), 31);
    assert_eq!(
        (all[0].0.as_str(), all[30].0.as_str()),
        ("2024-03-01", "2024-03-31")
    );
    assert_eq!(
        busy(&all),
        [
            ("2024-03-10".to_string(), 9, 2, dec("7.25")),
            ("2024-03-11".to_string(), 1, 0, dec("0")),
        ]
    );
    // Both charts were drawn (uPlot's canvases).
    assert_eq!(dom.matches("<canvas").count(), 2, "{dom}");

    // Top partners and offers by payout, names as text, not markup:
    // (name, id, clicks, conversions, payout).
    let named = |id: &str| -> Vec<(String, String, u64, u64, Decimal)> {
        rows(dom, id)
            .into_iter()
            .map(|r| {
                (
                    r[0].text.clone(),
                    r[0].value().to_string(),
                    r[1].value().parse().unwrap(),
                    r[2].value().parse().unwrap(),
                    r[4].decimal(),
                )
            })
            .collect()
    };
    let row = |name: &str, id: u64, clicks, conversions, payout| {
        (
            name.to_string(),
            id.to_string(),
            clicks,
            conversions,
            dec(payout),
        )
    };
    assert_eq!(
        named("top-partners"),
        [
            row(ACME, ids.acme, 7, 1, "5"),
            row("Beta Deals", ids.beta, 3, 1, "2.25"),
        ]
    );
    assert!(!dom.contains("<b>Media"), "a name was parsed as HTML");
    assert_eq!(
        named("top-offers"),
        [
            row("Shoes", ids.shoes, 6, 1, "5"),
            row("Hats", ids.hats, 4, 1, "2.25"),
        ]
    );

    // Payouts owed, from the payouts report: (partner, currency, approved,
    // pending, reversed, on hold, paid, owed, paid through). Acme was
    // paid 12.50 for c1 and c2, then c2 was reversed: 7.50 owed back.
    let owed: Vec<Vec<String>> = rows(dom, "payouts")
        .into_iter()
        .map(|r| {
            let mut out = vec![r[0].text.clone(), r[1].value().to_string()];
            out.extend(r[2..8].iter().map(|c| c.decimal().normalize().to_string()));
            out.push(r[8].text.clone());
            out
        })
        .collect();
    let row = |cells: [&str; 9]| cells.map(String::from).to_vec();
    assert_eq!(
        owed,
        [
            row([
                ACME,
                "USD",
                "5",
                "0",
                "7.5",
                "0",
                "12.5",
                "-7.5",
                "2024-04-30"
            ]),
            row([
                "Beta Deals",
                "USD",
                "2.25",
                "1",
                "0",
                "0",
                "0",
                "2.25",
                "never"
            ]),
        ]
    );
    let acme_owed = &rows(dom, "payouts")[0][7];
    assert_eq!(acme_owed.text, "-7.50");
    assert_eq!(element(dom, "payouts-owed-USD").decimal(), dec("-5.25"));
    assert_eq!(element(dom, "payouts-owed-USD").text, "-5.25");
    assert_eq!(element(dom, "payouts-approved-USD").decimal(), dec("7.25"));
}

/// Partner health as the API judges it, every partner shown.
async fn check_health(dom: &str, server: &Server, ids: &Seeded) {
    let (s, api) = admin(server, "GET", "/api/v1/partners/health", None).await;
    assert_eq!(s, 200, "{api}");
    let shown: Vec<(u64, String, String, String, u64)> = rows(dom, "health")
        .into_iter()
        .map(|r| {
            (
                r[0].value().parse().unwrap(),
                r[0].text.clone(),
                r[1].value().to_string(),
                r[2].value().to_string(),
                r[3].value().parse().unwrap(),
            )
        })
        .collect();
    let judged: Vec<(u64, String, String, String, u64)> = api["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["partner_id"].as_u64().unwrap(),
                i["name"].as_str().unwrap().to_string(),
                i["status"].as_str().unwrap().to_string(),
                i["reason"].as_str().unwrap().to_string(),
                i["clicks_30d"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(shown, judged);
    let status = |id: u64| shown.iter().find(|r| r.0 == id).unwrap().2.clone();
    assert_eq!(
        [
            status(ids.acme),
            status(ids.beta),
            status(ids.fading),
            status(ids.fresh)
        ],
        ["active", "inactive", "declining", "active"]
    );
}

// -------------------------------------------------------------------- test

#[tokio::test]
async fn the_dashboard_renders_the_seeded_figures_in_chromium() {
    let digest: String = Sha256::digest(READER.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let server = Server::start(
        ServerConfig::new("dashboard").with("TRACKEDGE_READ_ONLY_TOKEN_SHA256", &digest),
    );
    let ids = seed(&server).await;
    // The stats API is built apart from the dashboard: until a build has
    // it, its five panels must say so, and the rest must still work.
    let (s, doc) = admin(&server, "GET", "/api/v1/openapi.json", None).await;
    assert_eq!(s, 200);
    let has_stats = doc["paths"].get("/api/v1/stats").is_some();

    let page = format!("{}/dashboard", server.admin);
    let march = "from=2024-03-01&to=2024-03-31";

    // No token: the page asks for one, and shows nothing else.
    let dom = Browser::new().open(&page);
    assert_eq!(body(&dom, "data-ready"), "login", "{dom}");

    // A wrong token (and the default range, the last 30 days): refused,
    // asked again.
    let dom = Browser::new().open(&format!("{page}#token=wrong"));
    assert_eq!(body(&dom, "data-ready"), "login", "{dom}");
    assert!(element(&dom, "status").text.contains("refused"), "{dom}");

    // The read-only token, in UTC; a tall window for the screenshot.
    let png = target_dir().join("dashboard.png");
    let _ = std::fs::remove_file(&png);
    let mut browser = Browser::new().window(1280, 2000);
    let dom = browser.open_and_screenshot(&format!("{page}#token={READER}&tz=UTC&{march}"), &png);
    if has_stats {
        assert_loaded(&dom);
        check_stats_in_utc(&dom, &ids);
    } else {
        assert_stats_missing(&dom);
    }
    check_health(&dom, &server, &ids).await;
    assert!(
        element(&dom, "status")
            .text
            .starts_with("2024-03-01 to 2024-03-31, UTC."),
        "{dom}"
    );
    // The token never lands in the page.
    assert!(!dom.contains(READER), "{dom}");

    // The screenshot, as the window was when the DOM was taken.
    let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert_eq!(png_size(&bytes), (1280, 2000));

    // The token was in session storage: a new browser session in the same
    // profile has to ask again.
    let dom = browser.open(&page);
    assert_eq!(body(&dom, "data-ready"), "login", "{dom}");

    // A browser in Kathmandu, no zone asked for: the picker takes the
    // browser's zone, and the days are Kathmandu's.
    let dom = Browser::new()
        .env("TZ", "Asia/Kathmandu")
        .open(&format!("{page}#token={READER}&{march}"));
    // ICU may name the zone by its older spelling (Asia/Katmandu).
    let status = element(&dom, "status").text;
    assert!(status.contains(", Asia/Kat"), "{status}");
    if has_stats {
        assert_loaded(&dom);
        assert_eq!(
            busy(&days(&dom)),
            [
                ("2024-03-10".to_string(), 6, 1, dec("5")),
                ("2024-03-11".to_string(), 4, 1, dec("2.25")),
            ]
        );
        assert_eq!(element(&dom, "total-clicks").value(), "10");
    } else {
        assert_stats_missing(&dom);
    }
}
