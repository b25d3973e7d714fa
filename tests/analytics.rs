//! Every query of `docs/analytics.md`, run on seeded data against a real
//! ClickHouse with its answer checked, so the documented SQL never rots;
//! and the packaged read-only user can read and not write.

mod common;

use common::*;

/// The queries of the document: `(number, SQL)`, in order.
fn documented_queries() -> Vec<(u32, String)> {
    let doc = include_str!("../docs/analytics.md");
    let mut out = Vec::new();
    let mut number = None;
    let mut sql: Option<String> = None;
    for line in doc.lines() {
        if let Some(title) = line.strip_prefix("### ") {
            number = title.split('.').next().and_then(|n| n.parse::<u32>().ok());
        } else if line == "```sql" {
            sql = Some(String::new());
        } else if line == "```" {
            if let (Some(n), Some(q)) = (number, sql.take()) {
                out.push((n, q));
            }
        } else if let Some(q) = &mut sql {
            q.push_str(line);
            q.push('\n');
        }
    }
    out
}

/// One seeded conversion version: (id, click, partner, offer, status,
/// reason, payout, currency, hours from click to conversion, version).
type Seeded = (
    &'static str,
    &'static str,
    u64,
    u64,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    u32,
    u64,
);

/// The seeded data, times relative to now (see the expected answers).
fn seed(ch: &ClickHouse, db: &str) {
    let day = 86_400;
    // Partner 1, offer 1: 100 billable clicks (sub1 fb 60 / tw 40, US 70 /
    // DE 30) spread over the last 20 days, 10 bots, 5 rate limited.
    ch.query(&format!(
        "INSERT INTO {db}.clicks (click_id, ts, partner_id, offer_id, link_id, sub1, country, device, is_bot, is_rate_limited) \
         SELECT concat('p1-', toString(number)), \
                now() - (number % 20) * {day} - 3600, 1, 1, 1, \
                if(number < 60, 'fb', if(number < 100, 'tw', if(number < 110, 'fb', 'tw'))), \
                if(number < 70, 'US', if(number < 100, 'DE', if(number < 110, 'US', 'DE'))), \
                if(number % 2 = 0, 'desktop', 'mobile'), \
                number >= 100 AND number < 110, number >= 110 \
         FROM system.numbers LIMIT 115"
    ));
    // Partner 2, offer 1: 50 clicks 100 days ago, nothing since.
    ch.query(&format!(
        "INSERT INTO {db}.clicks (click_id, ts, partner_id, offer_id, link_id, sub1, country) \
         SELECT concat('p2-', toString(number)), now() - 100 * {day}, 2, 1, 2, 'mail', 'FR' \
         FROM system.numbers LIMIT 50"
    ));
    // Partner 3, offer 2: 20 clicks two days ago.
    ch.query(&format!(
        "INSERT INTO {db}.clicks (click_id, ts, partner_id, offer_id, link_id, country) \
         SELECT concat('p3-', toString(number)), now() - 2 * {day}, 3, 2, 3, 'US' \
         FROM system.numbers LIMIT 20"
    ));
    let conversions: [Seeded; 13] = [
        ("a1", "p1-0", 1, 1, "approved", "ok", "5", "USD", 1, 1),
        ("a2", "p1-1", 1, 1, "approved", "ok", "5", "USD", 2, 1),
        ("a3", "p1-2", 1, 1, "approved", "ok", "5", "USD", 3, 1),
        ("a4", "p1-60", 1, 1, "approved", "ok", "5", "USD", 4, 1),
        ("a5", "p1-3", 1, 1, "approved", "ok", "5", "USD", 5, 1),
        (
            "a5",
            "p1-3",
            1,
            1,
            "reversed",
            "chargeback",
            "5",
            "USD",
            5,
            2,
        ),
        (
            "pe",
            "p1-61",
            1,
            1,
            "pending",
            "pixel_untrusted",
            "5",
            "USD",
            1,
            1,
        ),
        (
            "r1",
            "p1-100",
            1,
            1,
            "rejected",
            "bot_click",
            "0",
            "USD",
            1,
            1,
        ),
        ("r2", "p1-4", 1, 1, "rejected", "expired", "0", "USD", 1, 1),
        (
            "r3",
            "",
            0,
            1,
            "rejected",
            "invalid_click_id",
            "0",
            "USD",
            0,
            1,
        ),
        (
            "d1",
            "",
            0,
            1,
            "duplicate",
            "duplicate_order",
            "0",
            "USD",
            0,
            1,
        ),
        ("b1", "p3-0", 3, 2, "approved", "ok", "10", "EUR", 0, 1),
        ("b2", "p3-1", 3, 2, "approved", "ok", "10", "EUR", 0, 1),
    ];
    for (id, click, partner, offer, status, reason, payout, currency, hours, version) in conversions
    {
        // b1, b2: ten minutes after their click; others `hours` after.
        let lag = if offer == 2 { 600 } else { hours * 3600 };
        ch.query(&format!(
            "INSERT INTO {db}.conversions (conversion_id, ts, click_id, click_ts, partner_id, offer_id, \
             status, reason, payout, payout_currency, amount, currency, version) \
             VALUES ('{id}', now() - {day}, '{click}', now() - {day} - {lag}, {partner}, {offer}, \
             '{status}', '{reason}', toDecimal64('{payout}', 4), '{currency}', toDecimal64('50', 4), '{currency}', {version})"
        ));
    }
    ch.query(&format!(
        "INSERT INTO {db}.partner_payments (payment_id, partner_id, currency, paid_through, amount, payable, paid_before, ts) VALUES \
         ('pay1', 3, 'EUR', toDate(now(), 'UTC') - 1, toDecimal64('5', 4), toDecimal64('5', 4), toDecimal64('0', 4), now())"
    ));
    // Partner 3's bonuses: 50.00 EUR earned yesterday, its row written
    // twice; 7.00 EUR earned as of an hour from now (its day is not over).
    ch.query(&format!(
        "INSERT INTO {db}.partner_bonuses (bonus_id, partner_id, rule, period_start, amount, currency, reason, earned_at, ts) VALUES \
         ('big:3:2026-01-01', 3, 'big', toDate('2026-01-01'), toDecimal64('50', 4), 'EUR', 'r', now() - {day}, now()), \
         ('big:3:2026-01-01', 3, 'big', toDate('2026-01-01'), toDecimal64('50', 4), 'EUR', 'r', now() - {day}, now()), \
         ('big:3:2026-02-01', 3, 'big', toDate('2026-02-01'), toDecimal64('7', 4), 'EUR', 'r', now() + 3600, now())"
    ));
    ch.query(&format!(
        "INSERT INTO {db}.postback_deliveries (conversion_id, partner_id, attempt, ts, url, http_status, error, duration_ms) VALUES \
         ('a1', 1, 1, now() - 300, 'https://p1/', 200, '', 12), \
         ('a2', 1, 1, now() - 200, 'https://p1/', 500, 'http 500', 30), \
         ('a2', 1, 2, now() - 100, 'https://p1/', 200, '', 11), \
         ('b1', 3, 1, now() - 50, 'https://p3/', 0, 'timeout', 10000)"
    ));
}

#[test]
fn every_documented_query_answers_as_expected() {
    let ch = &services().clickhouse;
    let db = unique_name("analytics");
    ch.query(&format!("CREATE DATABASE {db}"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = clickhouse::Client::default()
        .with_url(ch.url())
        .with_validation(false);
    runtime
        .block_on(trackedge::schema::migrate(&client, &db))
        .unwrap();
    seed(ch, &db);

    let queries = documented_queries();
    let numbers: Vec<u32> = queries.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        numbers,
        (1..=15).collect::<Vec<_>>(),
        "the document's queries"
    );
    for (n, sql) in &queries {
        let sql = sql.replace("trackedge.", &format!("{db}."));
        let got = ch.query(&format!("{sql} FORMAT TSV"));
        match n {
            11 => {
                // Days depend on today's date: the counts must add up to the
                // billable clicks of the last 7 days (35 of partner 1, whose
                // clicks are 0–19 days old, 5 per day; 20 of partner 3).
                let total: u64 = got
                    .lines()
                    .map(|l| l.split('\t').nth(1).unwrap().parse::<u64>().unwrap())
                    .sum();
                assert_eq!(total, 55, "query {n}: {got}");
            }
            14 => {
                // The rollup agrees with the raw table, day by day, in a
                // zone half an hour off the hour. (Its window starts on a
                // bucket, so it is compared with the raw clicks of the
                // same buckets.)
                let raw = ch.query(&format!(
                    "SELECT partner_id, toDate(ts, 'America/St_Johns') AS day, count() \
                     FROM {db}.clicks WHERE is_bot = 0 AND is_rate_limited = 0 \
                     AND toDateTime(intDiv(toUInt32(ts), 900) * 900) >= now() - INTERVAL 7 DAY \
                     GROUP BY partner_id, day ORDER BY partner_id, day FORMAT TSV"
                ));
                assert_eq!(got, raw, "query {n}");
                assert!(got.lines().count() >= 2, "query {n}: {got}");
            }
            7 => {
                let fields: Vec<&str> = got.trim().split('\t').collect();
                assert_eq!((fields[0], fields[2]), ("2", "100"), "query {n}: {got}");
            }
            _ => assert_eq!(got, expected(*n), "query {n}:\n{sql}"),
        }
    }
}

/// The answer to query `n` on the seeded data, worked out by hand.
fn expected(n: u32) -> &'static str {
    match n {
        // Partner 1: 100 billable, 10 bots, 5 rate limited; partner 3: 20;
        // partner 2's clicks are 100 days old.
        1 => "1\t100\t10\t5\n3\t20\t0\t0\n",
        // Four approved (a5 reversed) at 5.00 over 100 clicks; two at
        // 10.00 EUR over 20.
        2 => "1\t100\t4\t20.0000\tUSD\t0.2000\n3\t20\t2\t20.0000\tEUR\t1.0000\n",
        // Offer 1: partner 1's 100 billable clicks (partner 2's are old), 4
        // approved; offer 2: 20 and 2.
        3 => "1\t100\t4\t0.04\n2\t20\t2\t0.1\n",
        // Offer 1: a1..a4 at 1..4 hours (a5 is reversed); offer 2: 10 min.
        4 => "1\t4\t3600\t10800\t14400\n2\t2\t600\t600\t600\n",
        // fb: 60 clicks, a1..a3 (a5 reversed, r2 rejected); tw: 40 clicks,
        // a4 and the pending one.
        5 => "fb\t60\t3\t0\ntw\t40\t1\t1\n",
        6 => "duplicate\tduplicate_order\t1\nrejected\tbot_click\t1\nrejected\texpired\t1\nrejected\tinvalid_click_id\t1\n",
        8 => "1\tUSD\t4\t20.0000\n3\tEUR\t2\t20.0000\n",
        9 => "1\t1\t5.0000\t['chargeback']\n",
        10 => "1\t3\t2\t1\thttp 500\n3\t1\t0\t1\ttimeout\n",
        // US: partner 1's 70 and partner 3's 20; DE 30.
        12 => "US\t90\nDE\t30\n",
        13 => "1\tduplicate_order\t1\n",
        // Offer 2 holds 0 days: partner 3's two sales of yesterday are
        // payable, and its bonus of yesterday once (not today's), less the
        // 5.00 paid; offer 1's are in their 30-day hold.
        15 => "3\tEUR\t70.0000\t5.0000\t65.0000\n",
        _ => unreachable!("query {n} is checked on its own"),
    }
}

/// Analysts' read-only user (the packaged `readonly` one): reads, and
/// every write refused with Code 164.
#[test]
fn a_read_only_user_reads_and_cannot_write() {
    let ch = &services().clickhouse;
    let db = unique_name("analyst");
    ch.query(&format!("CREATE DATABASE {db}"));
    ch.query(&format!("CREATE TABLE {db}.t (x UInt8) ENGINE = Memory"));
    ch.query(&format!("INSERT INTO {db}.t VALUES (7)"));
    let as_reader = |sql: &str| {
        http_post_blocking(&format!("{}/?user=readonly", ch.url()), sql)
            .expect("clickhouse answers")
    };
    assert_eq!(
        as_reader(&format!("SELECT x FROM {db}.t")),
        (200, "7\n".to_string())
    );
    for write in [
        format!("INSERT INTO {db}.t VALUES (8)"),
        format!("DROP TABLE {db}.t"),
        format!("CREATE TABLE {db}.u (x UInt8) ENGINE = Memory"),
    ] {
        let (status, body) = as_reader(&write);
        assert!(
            status != 200 && body.contains("Code: 164"),
            "{write}: {status} {body}"
        );
    }
    assert_eq!(ch.count(&format!("SELECT count() FROM {db}.t")), 1);
}
