//! The partner portal in a real browser: a partner with a key, links made
//! through the partner API, clicks and conversions seeded straight into
//! the server's ClickHouse tables at chosen times (and another partner's,
//! which must not show), a payment, a tier promotion and a deal through
//! the admin API; the page opened in Debian's headless Chromium with the
//! key in its URL fragment, and what it rendered (the partner and its tier
//! history, totals, the days of the chart, each link's tracking URL and
//! counts, the offers a new link may be on, conversions latest first,
//! balances and payments, deals) checked against the seeded data, in UTC
//! and in the browser's own zone (Asia/Kathmandu, +05:45, where some
//! clicks and a conversion fall on the next day). A screenshot is saved as
//! `target/portal.png`.
//!
//! The page sets `<body data-ready="1" data-failed="N"
//! data-unavailable="...">` once every panel has settled (`"login"` while
//! it waits for a key; data-unavailable names panels whose routes the
//! server lacks, none here); Chromium prints the DOM only once the page is
//! idle (`common::chromium`), and the test reads that marker.

mod common;
// Partners, offers, keys and partner API calls; this test needs only some.
#[allow(dead_code)]
mod partner_support;

use std::str::FromStr;

use common::chromium::Browser;
use common::dom::*;
use common::*;
use partner_support::{key, offer, papi, plink};
use rust_decimal::Decimal;
use serde_json::{json, Value};

/// A partner name that would be markup if the page parsed it as HTML.
const ACME: &str = "Acme <b>Media</b> & Co";

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

// ------------------------------------------------------------------ seeding

/// `n` billable (or bot) clicks on `link` at `at` (UTC), straight into the
/// clicks table.
fn insert_clicks(server: &Server, tag: &str, link: &Value, at: &str, n: u64, bot: bool) {
    let db = &server.config.database;
    services().clickhouse.query(&format!(
        "INSERT INTO {db}.clicks (click_id, ts, partner_id, offer_id, link_id, is_bot, visitor) \
         SELECT concat('{tag}-', toString(number)), toDateTime('{at}', 'UTC'), {p}, {o}, {l}, \
         {bot}, number FROM system.numbers LIMIT {n}",
        p = link["partner_id"],
        o = link["offer_id"],
        l = link["id"],
        bot = u8::from(bot),
    ));
}

/// One version of a conversion on `link`: `(id, at, status, amount,
/// payout, version)`.
fn insert_conversion(server: &Server, link: &Value, row: (&str, &str, &str, &str, &str, u64)) {
    let (id, at, status, amount, payout, version) = row;
    // A later version carries the state it replaces, as the admin API
    // writes it (conversions_15m takes that state back): the only later
    // version seeded here reverses an approval at the same amounts.
    let (prev_status, prev_amount, prev_payout) = match (version, status) {
        (1, _) => ("", "0", "0"),
        (_, "reversed") => ("approved", amount, payout),
        _ => panic!("{id}: only reversals are seeded as later versions"),
    };
    let db = &server.config.database;
    services().clickhouse.query(&format!(
        "INSERT INTO {db}.conversions (conversion_id, ts, link_id, partner_id, offer_id, event, \
         status, reason, amount, currency, payout, payout_currency, attribution, source, version, \
         prev_status, prev_amount, prev_payout) \
         VALUES ('{id}', toDateTime('{at}', 'UTC'), {l}, {p}, {o}, 'sale', '{status}', 'ok', \
         toDecimal64('{amount}', 4), 'USD', toDecimal64('{payout}', 4), 'USD', 'click', \
         'postback', {version}, '{prev_status}', toDecimal64('{prev_amount}', 4), \
         toDecimal64('{prev_payout}', 4))",
        l = link["id"],
        p = link["partner_id"],
        o = link["offer_id"],
    ));
}

/// What the seeding made.
struct Seeded {
    acme: u64,
    key: String,
    shoes: Value,
    hats: Value,
    vip: Value,
    /// Acme's vanity link to Shoes.
    shoes_link: Value,
    /// Acme's link to Hats, its code generated.
    hats_link: Value,
    deal: u64,
}

async fn create_offer(server: &Server, name: &str, visibility: &str) -> Value {
    let o = offer(server, visibility).await;
    let (s, o) = admin(
        server,
        "PATCH",
        &format!("/api/v1/offers/{}", o["id"]),
        Some(json!({ "name": name })),
    )
    .await;
    assert_eq!(s, 200, "{o}");
    o
}

async fn seed(server: &Server) -> Seeded {
    let acme = partner_support::partner(server, ACME).await;
    let beta = partner_support::partner(server, "Beta Deals").await;
    let beta_key = key(server, beta).await;
    let key = key(server, acme).await;
    let shoes = create_offer(server, "Shoes", "public").await;
    let hats = create_offer(server, "Hats", "public").await;
    // Needs an admin's approval: visible, not promotable.
    let vip = create_offer(server, "VIP", "approval").await;
    let (s, shoes_link) = papi(
        server,
        &key,
        "POST",
        "/partner/v1/links",
        Some(json!({"offer_id": shoes["id"], "code": "acmeshoes"})),
    )
    .await;
    assert_eq!(s, 201, "{shoes_link}");
    let hats_link = plink(server, &key, &hats["id"]).await;
    let beta_link = plink(server, &beta_key, &shoes["id"]).await;

    // March 2024. 2024-03-10 20:00 UTC is already 2024-03-11 01:45 in
    // Kathmandu.
    insert_clicks(server, "s10", &shoes_link, "2024-03-10 12:00:00", 6, false);
    insert_clicks(
        server,
        "s10bot",
        &shoes_link,
        "2024-03-10 12:05:00",
        2,
        true,
    );
    insert_clicks(server, "h10", &hats_link, "2024-03-10 20:00:00", 3, false);
    insert_clicks(server, "h11", &hats_link, "2024-03-11 10:00:00", 1, false);
    insert_clicks(server, "b10", &beta_link, "2024-03-10 12:00:00", 5, false);
    for (link, row) in [
        (
            &shoes_link,
            ("c1", "2024-03-10 12:30:00", "approved", "50.00", "5.00", 1),
        ),
        (
            &shoes_link,
            ("c2", "2024-03-10 13:00:00", "approved", "75.00", "7.50", 1),
        ),
        (
            &hats_link,
            ("c3", "2024-03-10 20:30:00", "approved", "20.00", "2.25", 1),
        ),
        (
            &hats_link,
            ("c4", "2024-03-11 09:00:00", "pending", "10.00", "1.00", 1),
        ),
        (
            &beta_link,
            ("b1", "2024-03-10 12:40:00", "approved", "99.00", "9.90", 1),
        ),
    ] {
        insert_conversion(server, link, row);
    }
    // Acme is paid through April (the 30-day holds of its March sales are
    // over by then), then c2 is reversed: 7.50 owed back.
    let (s, paid) = admin(
        server,
        "POST",
        &format!("/api/v1/partners/{acme}/payouts"),
        Some(json!({"paid_through": "2024-04-30", "currency": "USD", "note": "March"})),
    )
    .await;
    assert_eq!((s, &paid["amount"]), (201, &json!("14.75")), "{paid}");
    insert_conversion(
        server,
        &shoes_link,
        ("c2", "2024-03-10 13:00:00", "reversed", "75.00", "7.50", 2),
    );
    // Two approved sales in the 30 days before 2024-03-20 make Acme silver
    // (Beta's one sale does not).
    let (s, round) = admin(
        server,
        "POST",
        "/api/v1/tiers/evaluate",
        Some(json!({"at": "2024-03-20T00:00:00Z"})),
    )
    .await;
    assert_eq!(
        (s, round["changes"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{round}"
    );
    let (s, deal) = admin(
        server,
        "POST",
        "/api/v1/deals",
        Some(
            json!({"partner_id": acme, "offer_id": shoes["id"], "company": "Initech <i>",
                    "customer_id": "cust-9", "expected_value": "12000.00"}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{deal}");
    Seeded {
        acme,
        key,
        deal: deal["id"].as_u64().unwrap(),
        shoes,
        hats,
        vip,
        shoes_link,
        hats_link,
    }
}

// ------------------------------------------------------------- checking

/// Asserts the page settled with every panel loaded.
fn assert_loaded(dom: &str) {
    assert_eq!(
        (
            body(dom, "data-ready").as_str(),
            body(dom, "data-failed").as_str(),
            body(dom, "data-unavailable").as_str(),
        ),
        ("1", "0", ""),
        "the portal did not load: {}\n{dom}",
        element(dom, "status").text
    );
}

/// `(day, clicks, conversions, payout)` of the days with a click or a
/// conversion, and how many days the table has.
fn busy_days(dom: &str) -> (usize, Vec<(String, u64, u64, Decimal)>) {
    let all: Vec<(String, u64, u64, Decimal)> = rows(dom, "daily-table")
        .into_iter()
        .map(|r| {
            (
                r[0].value().to_string(),
                r[1].value().parse().unwrap(),
                r[2].value().parse().unwrap(),
                r[3].decimal(),
            )
        })
        .collect();
    let busy = all.iter().filter(|d| d.1 + d.2 > 0).cloned().collect();
    (all.len(), busy)
}

fn day(d: &str, clicks: u64, conversions: u64, payout: &str) -> (String, u64, u64, Decimal) {
    (d.to_string(), clicks, conversions, dec(payout))
}

/// `(id, status)` of the conversions shown, in order.
fn conversions(dom: &str) -> Vec<(String, String)> {
    rows(dom, "conversions-table")
        .into_iter()
        .map(|r| (r[1].value().to_string(), r[4].value().to_string()))
        .collect()
}

/// The `value`s of the options of select `#id`.
fn options(dom: &str, id: &str) -> Vec<String> {
    let from = dom.find(&format!(" id=\"{id}\"")).unwrap();
    let select = &dom[from..from + dom[from..].find("</select>").unwrap()];
    select
        .split("<option")
        .skip(1)
        .map(|o| attr(o, "value").unwrap())
        .collect()
}

/// The partner, totals, days, links and conversions of March 2024 in UTC.
fn check_march_in_utc(dom: &str, s: &Seeded) {
    assert_eq!(element(dom, "partner-name").text, ACME);
    assert!(!dom.contains("<b>Media"), "a name was parsed as HTML");
    assert_eq!(element(dom, "partner-id").value(), s.acme.to_string());
    assert_eq!(element(dom, "partner-status").value(), "active");
    assert_eq!(element(dom, "partner-tier").text, "silver");

    let total = |id: &str| element(dom, &format!("total-{id}"));
    assert_eq!(total("clicks").value(), "10");
    assert_eq!(total("conversions").value(), "2");
    assert_eq!(total("pending").value(), "1");
    assert_eq!(total("payout").decimal(), dec("7.25"));
    assert_eq!(total("payout").text, "7.25");
    assert_eq!(total("cr").text, "20.00 %");

    // Every day of March, the seeded ones with their figures; the other
    // partner's clicks and sale nowhere.
    let (n, busy) = busy_days(dom);
    assert_eq!(n, 31);
    assert_eq!(
        busy,
        [
            day("2024-03-10", 9, 2, "7.25"),
            day("2024-03-11", 1, 0, "0")
        ]
    );
    // The chart was drawn (uPlot's canvas).
    assert_eq!(dom.matches("<canvas").count(), 1, "{dom}");

    // Each link: its tracking URL (shown, and on its copy button) and its
    // clicks and conversions.
    for (link, clicks, converted) in [(&s.shoes_link, "6", "1"), (&s.hats_link, "4", "1")] {
        let code = link["code"].as_str().unwrap();
        let url = link["tracking_url"].as_str().unwrap();
        assert!(url.ends_with(&format!("/{code}")), "{url}");
        let shown = element(dom, &format!("link-{code}-url"));
        assert_eq!(shown.value(), url);
        assert!(
            shown.text.contains(&format!("<code>{url}</code>")),
            "{shown:?}"
        );
        assert!(
            shown.text.contains(&format!("data-copy=\"{url}\"")),
            "{shown:?}"
        );
        assert_eq!(element(dom, &format!("link-{code}-clicks")).value(), clicks);
        assert_eq!(
            element(dom, &format!("link-{code}-conversions")).value(),
            converted
        );
    }
    let links = rows(dom, "links-table");
    assert_eq!(links.len(), 2, "only Acme's links: {links:?}");
    assert_eq!(
        (links[0][0].text.as_str(), links[0][1].text.as_str()),
        ("acmeshoes", "Shoes")
    );
    // New links only to the offers Acme may promote (not VIP, which needs
    // approval).
    let promotable = vec![s.shoes["id"].to_string(), s.hats["id"].to_string()];
    assert_eq!(options(dom, "link-offer"), promotable);
    assert!(!options(dom, "link-offer").contains(&s.vip["id"].to_string()));

    // Latest first, the reversal shown; Beta's sale absent.
    assert_eq!(
        conversions(dom),
        [
            ("c4".to_string(), "pending".to_string()),
            ("c3".to_string(), "approved".to_string()),
            ("c2".to_string(), "reversed".to_string()),
            ("c1".to_string(), "approved".to_string()),
        ]
    );
    let c1 = &rows(dom, "conversions-table")[3];
    assert_eq!(
        (c1[2].text.as_str(), c1[6].text.as_str()),
        ("Shoes", "5.00 USD")
    );
}

/// Balances and payments as the partner API answers them, and the
/// figures the seeding makes: 14.75 paid through April, then a paid 7.50
/// reversed.
async fn check_payouts(dom: &str, server: &Server, s: &Seeded) {
    let (status, api) = papi(
        server,
        &s.key,
        "GET",
        "/partner/v1/payouts?from=2024-03-01&to=2024-03-31&tz=UTC",
        None,
    )
    .await;
    assert_eq!(status, 200, "{api}");
    let fields = [
        "approved", "pending", "reversed", "on_hold", "payable", "paid", "owed",
    ];
    let balances = api["balances"].as_array().unwrap();
    assert_eq!(balances.len(), 1, "{api}");
    for f in fields {
        let shown = element(dom, &format!("balance-{f}-USD"));
        assert_eq!(
            shown.decimal(),
            dec(balances[0][f].as_str().unwrap()),
            "{f}: {api}"
        );
    }
    // March's approved (c1, c3), pending (c4) and reversed (c2) payout;
    // c1 and c3 payable; 14.75 paid for c1, c2 and c3, so 7.50 owed back.
    let shown: Vec<Decimal> = fields
        .iter()
        .map(|f| element(dom, &format!("balance-{f}-USD")).decimal())
        .collect();
    let expected: Vec<Decimal> = ["7.25", "1", "7.5", "0", "7.25", "14.75", "-7.5"]
        .into_iter()
        .map(dec)
        .collect();
    assert_eq!(shown, expected);
    assert_eq!(element(dom, "balance-owed-USD").text, "-7.50");
    let payments = rows(dom, "payments");
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert_eq!(
        (
            payments[0][1].value(),
            payments[0][2].decimal(),
            payments[0][3].value(),
            payments[0][4].text.as_str()
        ),
        ("USD", dec("14.75"), "2024-04-30", "March")
    );
}

/// Acme's promotion, from `/partner/v1/me`'s tier history.
fn check_tier_history(dom: &str) {
    let shown = rows(dom, "tier-history");
    assert_eq!(shown.len(), 1, "{shown:?}");
    let row: Vec<&str> = shown[0].iter().map(|c| c.value()).collect();
    assert_eq!(row, ["2024-03-20T00:00:00Z", "", "silver", "promotion"]);
    assert!(
        shown[0][3].text.starts_with("promotion: 2 conversions"),
        "{shown:?}"
    );
}

/// The deal registered for Acme, as text.
fn check_deals(dom: &str, s: &Seeded) {
    let deals = rows(dom, "deals-table");
    assert_eq!(deals.len(), 1, "{deals:?}");
    let d = &deals[0];
    assert_eq!(d[0].value(), s.deal.to_string());
    assert_eq!(d[1].text, "Initech <i>");
    assert_eq!(d[2].text, "Shoes");
    assert_eq!(d[3].text, "cust-9");
    assert_eq!(d[4].text, "12000.00 USD");
    assert_eq!(
        element(dom, &format!("deal-{}-status", s.deal)).value(),
        "pending"
    );
    assert!(!dom.contains("<i>"), "a company was parsed as HTML");
    assert_eq!(
        options(dom, "deal-offer"),
        [s.shoes["id"].to_string(), s.hats["id"].to_string()]
    );
}

// -------------------------------------------------------------------- test

#[tokio::test]
async fn the_portal_renders_the_partners_own_figures_in_chromium() {
    let server = Server::start(
        ServerConfig::new("portal").with("TRACKEDGE_TIERS_LEVELS", "silver:conversions:2:30"),
    );
    let s = seed(&server).await;
    let page = format!("{}/partner/portal", server.public);
    let march = "from=2024-03-01&to=2024-03-31";

    // No key: the page asks for one, and shows nothing else.
    let dom = Browser::new().open(&page);
    assert_eq!(body(&dom, "data-ready"), "login", "{dom}");

    // A wrong key: refused, asked again.
    let dom = Browser::new().open(&format!("{page}#key=tep_wrong&tz=UTC&{march}"));
    assert_eq!(body(&dom, "data-ready"), "login", "{dom}");
    assert!(element(&dom, "status").text.contains("refused"), "{dom}");

    // Acme's key, in UTC; a tall window for the screenshot.
    let png = target_dir().join("portal.png");
    let _ = std::fs::remove_file(&png);
    let mut browser = Browser::new().window(1280, 2600);
    let dom = browser.open_and_screenshot(&format!("{page}#key={}&tz=UTC&{march}", s.key), &png);
    assert_loaded(&dom);
    check_march_in_utc(&dom, &s);
    check_tier_history(&dom);
    check_payouts(&dom, &server, &s).await;
    check_deals(&dom, &s);
    assert!(
        element(&dom, "status")
            .text
            .starts_with("2024-03-01 to 2024-03-31, UTC."),
        "{dom}"
    );
    // The key never lands in the page.
    assert!(!dom.contains(&s.key), "{dom}");
    let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert_eq!(png_size(&bytes), (1280, 2600));

    // The key was in session storage: a new browser session in the same
    // profile has to ask again.
    let dom = browser.open(&page);
    assert_eq!(body(&dom, "data-ready"), "login", "{dom}");

    // A browser in Kathmandu, no zone asked for: the picker takes the
    // browser's zone, and the days are Kathmandu's. On the 11th there, the
    // Hats clicks of the 10th's evening in UTC and its sale; no Shoes.
    let dom = Browser::new()
        .env("TZ", "Asia/Kathmandu")
        .open(&format!("{page}#key={}&{march}", s.key));
    // ICU may name the zone by its older spelling (Asia/Katmandu).
    let status = element(&dom, "status").text;
    assert!(status.contains(", Asia/Kat"), "{status}");
    assert_loaded(&dom);
    assert_eq!(
        busy_days(&dom).1,
        [
            day("2024-03-10", 6, 1, "5"),
            day("2024-03-11", 4, 1, "2.25")
        ]
    );
    let dom = Browser::new().env("TZ", "Asia/Kathmandu").open(&format!(
        "{page}#key={}&from=2024-03-11&to=2024-03-11",
        s.key
    ));
    assert_loaded(&dom);
    assert_eq!(element(&dom, "total-clicks").value(), "4");
    assert_eq!(
        element(
            &dom,
            &format!("link-{}-clicks", s.shoes_link["code"].as_str().unwrap())
        )
        .value(),
        "0"
    );
    assert_eq!(
        conversions(&dom),
        [
            ("c4".to_string(), "pending".to_string()),
            ("c3".to_string(), "approved".to_string()),
        ]
    );
    // The same day in UTC: only c4.
    let dom = Browser::new().open(&format!(
        "{page}#key={}&tz=UTC&from=2024-03-11&to=2024-03-11",
        s.key
    ));
    assert_loaded(&dom);
    assert_eq!(
        conversions(&dom),
        [("c4".to_string(), "pending".to_string())]
    );
}
