//! `GET /api/v1/stats` end to end: clicks and conversions inserted straight
//! into a migrated ClickHouse database (bots, rate-limited clicks, clicks on
//! both sides of a Kathmandu midnight and across daylight saving changes,
//! conversions with new versions, pending → approved and approved →
//! reversed, each later version carrying the state it replaces as the
//! admin API writes it), then the API's answers, from the rollups and from
//! the raw tables, compared with SQL on the raw tables written here,
//! independently of the service's: `FINAL` and a join for conversions,
//! one query per metric. A version written twice is the raw path's own
//! test (the shipper keeps copies from the rollup: tests/faults.rs).

mod common;
mod stats_support;

use std::collections::BTreeMap;

use common::*;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;
use stats_support::*;

/// A migrated database holding the seeded clicks and conversions.
fn seeded_server(tag: &str) -> Server {
    let server = Server::start(ServerConfig::new(tag));
    let db = &server.config.database;
    let clicks = seed_clicks(1, 400);
    insert_clicks(db, &clicks);
    let (first, later, _) = seed_conversions(&clicks);
    insert_conversions(db, &first);
    insert_changes(db, &later, &first);
    server
}

/// A row of the API as a key (the same text as [`key_sql`]) and metrics;
/// checks `cr` and `epc` against the row's own counts on the way.
fn api_row(row: &Value, group_by: &[&str]) -> (String, Metrics) {
    let field = |k: &str| match k {
        "partner" | "offer" | "link" => format!("{k}_id"),
        other => other.to_string(),
    };
    let parts: Vec<String> = group_by
        .iter()
        .map(|k| match &row[field(k)] {
            Value::Number(n) => n.to_string(),
            Value::String(s) if *k == "hour" => chrono::DateTime::parse_from_rfc3339(s)
                .unwrap_or_else(|e| panic!("hour {s}: {e}"))
                .timestamp()
                .to_string(),
            Value::String(s) => s.clone(),
            other => panic!("key {k} is {other} in {row}"),
        })
        .collect();
    let money = |name: &str| -> Decimal {
        let s = row[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} in {row}"));
        assert_eq!(s.split('.').nth(1).map(str::len), Some(4), "{name} {s}");
        s.parse().unwrap()
    };
    let mut m = Metrics {
        revenue: money("revenue"),
        payout: money("payout"),
        ..Metrics::default()
    };
    for (i, name) in COUNTS.iter().enumerate() {
        m.counts[i] = match row.get(name) {
            // Not asked for.
            None if *name == "unique_clicks" => 0,
            v => v
                .and_then(Value::as_u64)
                .unwrap_or_else(|| panic!("{name} in {row}")),
        };
    }
    let clicks = Decimal::from(m.counts[0]);
    let ratio = |x: Decimal| {
        x.checked_div(clicks).map(|r| {
            format!(
                "{:.4}",
                r.round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero)
            )
        })
    };
    assert_eq!(
        row["cr"].as_str().map(String::from),
        ratio(Decimal::from(m.counts[4])),
        "cr of {row}"
    );
    assert_eq!(
        row["epc"].as_str().map(String::from),
        ratio(m.payout),
        "epc of {row}"
    );
    (parts.join("|"), m)
}

/// Every metric but `unique_clicks`.
const COUNTED_METRICS: [&str; 11] = [
    "clicks",
    "bot_clicks",
    "rate_limited_clicks",
    "conversions",
    "pending",
    "rejected",
    "reversed",
    "revenue",
    "payout",
    "cr",
    "epc",
];

/// `GET /api/v1/stats?{query}`, asserted `200`.
async fn stats(server: &Server, query: &str) -> Value {
    let (s, v) = admin(server, "GET", &format!("/api/v1/stats?{query}"), None).await;
    assert_eq!(s, 200, "{query}: {v}");
    v
}

/// Every row of `query`, following cursors.
async fn all_rows(server: &Server, query: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut page = stats(server, query).await;
    loop {
        rows.extend(page["rows"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => page = stats(server, &format!("{query}&cursor={c}")).await,
            None => return rows,
        }
    }
}

/// One comparison: group keys, zone, range, the API's filters and the same
/// filters as SQL.
struct Case {
    group_by: &'static [&'static str],
    tz: &'static str,
    from: &'static str,
    to: &'static str,
    api_filters: &'static str,
    sql_filters: &'static str,
}

/// A case without filters.
fn case(
    group_by: &'static [&'static str],
    tz: &'static str,
    from: &'static str,
    to: &'static str,
) -> Case {
    Case {
        group_by,
        tz,
        from,
        to,
        api_filters: "",
        sql_filters: "",
    }
}

impl Case {
    /// The same case with filters, as API parameters and as SQL.
    fn filtered(self, api_filters: &'static str, sql_filters: &'static str) -> Case {
        Case {
            api_filters,
            sql_filters,
            ..self
        }
    }
}

fn bound(s: &str, tz: &str, end: bool) -> i64 {
    if s.len() == 10 {
        let tz: chrono_tz::Tz = tz.parse().unwrap();
        let mut day = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        if end {
            day = day.succ_opt().unwrap();
        }
        use chrono::TimeZone;
        tz.from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
            .earliest()
            .unwrap()
            .timestamp()
    } else {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp()
    }
}

async fn check(server: &Server, case: &Case) {
    let db = &server.config.database;
    let (from, to) = (
        bound(case.from, case.tz, false),
        bound(case.to, case.tz, true),
    );
    let want = expected(db, case.group_by, case.tz, from, to, case.sql_filters);
    assert!(
        !want.is_empty(),
        "the seed has rows for {}",
        case.group_by.join(",")
    );
    let query = format!(
        "group_by={}&tz={}&from={}&to={}{}&limit=7",
        case.group_by.join(","),
        case.tz,
        case.from.replace('+', "%2B"),
        case.to.replace('+', "%2B"),
        case.api_filters
    );
    let whole = from % 900 == 0 && to % 900 == 0;
    let rollup_can = case
        .group_by
        .iter()
        .all(|k| !matches!(*k, "sub2" | "sub3" | "sub4" | "sub5"))
        && whole;
    // conversions_15m holds partners, offers, links and times only.
    let conversions_rollup_can = case.group_by.iter().all(|k| {
        matches!(
            *k,
            "partner" | "offer" | "link" | "day" | "hour" | "week" | "month"
        )
    }) && !case.api_filters.contains("country=")
        && whole;
    let conversions_source = |q: &str| {
        if conversions_rollup_can && !q.contains("source=raw") {
            "rollup"
        } else {
            "raw"
        }
    };
    // Every metric but distinct visitors, which no rollup keeps.
    let counted = format!("{query}&metrics={}", COUNTED_METRICS.join(","));
    let refused = |q: String| async move {
        let (s, v) = admin(server, "GET", &format!("/api/v1/stats?{q}"), None).await;
        assert_eq!(
            (s, v["error"]["field"].as_str()),
            (400, Some("source")),
            "{q}: {v}"
        );
    };
    let with_unique = stats(server, &query).await;
    assert_eq!(with_unique["source"], "raw", "{query}");
    assert_eq!(
        with_unique["conversions_source"],
        conversions_source(&query),
        "{query}"
    );
    refused(format!("{query}&source=rollup")).await;
    let auto = stats(server, &counted).await;
    assert_eq!(
        auto["source"],
        if rollup_can { "rollup" } else { "raw" },
        "{counted}"
    );
    assert_eq!(
        auto["conversions_source"],
        conversions_source(&counted),
        "{counted}"
    );
    // Each source on its own, and auto (raw clicks for distinct visitors
    // with the conversions' rollup when it can answer).
    let mut answers = vec![
        (query.clone(), "raw"),
        (counted.clone(), "raw"),
        (query.clone(), "auto"),
    ];
    if rollup_can {
        answers.push((counted, "rollup"));
    } else {
        refused(format!("{counted}&source=rollup")).await;
    }
    for (q, source) in answers {
        let q = format!("{q}&source={source}");
        assert_eq!(
            stats(server, &q).await["conversions_source"],
            conversions_source(&q),
            "{q}"
        );
        let rows = all_rows(server, &q).await;
        let got: BTreeMap<String, Metrics> =
            rows.iter().map(|r| api_row(r, case.group_by)).collect();
        assert_eq!(got.len(), rows.len(), "{q}: a key answered twice");
        let mut want = want.clone();
        if q.contains("&metrics=") {
            want.values_mut().for_each(|m| m.counts[1] = 0);
        }
        let differing: Vec<(&String, Option<&Metrics>, Option<&Metrics>)> = got
            .keys()
            .chain(want.keys())
            .filter(|k| got.get(*k) != want.get(*k))
            .map(|k| (k, got.get(k), want.get(k)))
            .collect();
        assert!(
            differing.is_empty(),
            "{q}: (key, answered, expected) differ: {differing:?}"
        );
    }
}

#[tokio::test]
async fn stats_equal_direct_sql_from_the_rollup_and_from_raw() {
    let server = seeded_server("stats");
    let cases = [
        case(&["partner", "day"], "UTC", "2026-01-01", "2026-03-31"),
        case(
            &["partner", "day"],
            "Asia/Kathmandu",
            "2026-01-01",
            "2026-03-31",
        ),
        case(&["hour"], "Asia/Kathmandu", "2026-01-14", "2026-01-15"),
        case(
            &["day", "hour"],
            "America/New_York",
            "2026-03-07",
            "2026-03-09",
        ),
        case(&["hour"], "America/New_York", "2026-10-31", "2026-11-02"),
        case(
            &["week", "month", "offer"],
            "America/St_Johns",
            "2026-01-01",
            "2026-12-31",
        ),
        case(
            &["country", "device", "os", "browser", "sub1"],
            "UTC",
            "2026-01-01",
            "2026-03-31",
        )
        .filtered("&partner_id=1,2", " AND partner_id IN (1, 2)"),
        case(
            &["link", "day"],
            "Asia/Kathmandu",
            "2026-01-01",
            "2026-02-28",
        )
        .filtered(
            "&offer_id=10&country=np,de",
            " AND offer_id = 10 AND country IN ('NP', 'DE')",
        ),
        case(
            &["sub2", "sub5", "partner"],
            "UTC",
            "2026-01-01",
            "2026-03-31",
        ),
        case(&[], "UTC", "2026-01-01", "2026-12-31").filtered("&country=US", " AND country = 'US'"),
        // Bounds off the quarter hours: the raw tables answer.
        case(
            &["day"],
            "Asia/Kathmandu",
            "2026-01-14T10:07:00Z",
            "2026-01-20T23:59:59+05:45",
        ),
    ];
    for case in &cases {
        check(&server, case).await;
    }
}

/// A version written twice straight into ClickHouse (as a claim taken
/// over could write it, were it not for the shipper, which drops the
/// copy: tests/faults.rs) is one version to the raw path, which reads
/// each conversion's latest version; `conversions_15m` would count it
/// twice, which is why the shipper must drop it.
#[tokio::test]
async fn a_version_written_twice_counts_once_from_the_raw_tables() {
    let server = Server::start(ServerConfig::new("stats_twice"));
    let db = &server.config.database;
    let clicks = seed_clicks(1, 400);
    insert_clicks(db, &clicks);
    let (first, later, repeated) = seed_conversions(&clicks);
    assert!(!repeated.is_empty());
    insert_conversions(db, &first);
    insert_changes(db, &later, &first);
    insert_conversions(db, &repeated);
    let query = "group_by=partner,day&tz=Asia/Kathmandu&from=2026-01-01&to=2026-12-31\
                 &metrics=conversions,pending,rejected,reversed,revenue,payout";
    let (from, to) = (
        bound("2026-01-01", "Asia/Kathmandu", false),
        bound("2026-12-31", "Asia/Kathmandu", true),
    );
    let want: BTreeMap<String, (u64, Decimal)> =
        expected(db, &["partner", "day"], "Asia/Kathmandu", from, to, "")
            .into_iter()
            .filter(|(_, m)| m.counts[4..].iter().any(|n| *n > 0))
            .map(|(k, m)| (k, (m.counts[4], m.revenue)))
            .collect();
    let answered = |rows: Vec<Value>| -> BTreeMap<String, (u64, Decimal)> {
        rows.iter()
            .filter(|r| {
                ["conversions", "pending", "rejected", "reversed"]
                    .iter()
                    .any(|m| r[m].as_u64() != Some(0))
            })
            .map(|r| {
                (
                    format!("{}|{}", r["partner_id"], r["day"].as_str().unwrap()),
                    (
                        r["conversions"].as_u64().unwrap(),
                        r["revenue"].as_str().unwrap().parse().unwrap(),
                    ),
                )
            })
            .collect()
    };
    let raw = answered(all_rows(&server, &format!("{query}&source=raw")).await);
    assert_eq!(raw, want);
    let rollup = all_rows(&server, query).await;
    assert_eq!(stats(&server, query).await["conversions_source"], "rollup");
    let approved = |m: &BTreeMap<String, (u64, Decimal)>| m.values().map(|v| v.0).sum::<u64>();
    assert_eq!(
        approved(&answered(rollup)),
        approved(&want) + repeated.len() as u64,
        "the rollup counts each copy"
    );
}

#[tokio::test]
async fn days_split_at_the_zones_own_midnight() {
    let server = Server::start(ServerConfig::new("stats_ktm"));
    let db = &server.config.database;
    let mut clicks: Vec<Click> = seed_clicks(2, 0).into_iter().take(2).collect();
    // 23:59:59 and 00:00:00 in Kathmandu; both on 2026-01-14 in UTC.
    for (c, ts) in clicks.iter_mut().zip([KTM_MIDNIGHT - 1, KTM_MIDNIGHT]) {
        (c.ts, c.partner, c.bot, c.rate_limited) = (ts, 9, 0, 0);
    }
    insert_clicks(db, &clicks);
    for (tz, days) in [
        ("Asia/Kathmandu", vec![("2026-01-14", 1), ("2026-01-15", 1)]),
        ("UTC", vec![("2026-01-14", 2)]),
    ] {
        for source in ["rollup", "raw"] {
            let v = stats(
                &server,
                &format!("group_by=day&tz={tz}&from=2026-01-10&to=2026-01-20&metrics=clicks&source={source}"),
            )
            .await;
            let got: Vec<(String, u64)> = v["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["day"].as_str().unwrap().to_string(),
                        r["clicks"].as_u64().unwrap(),
                    )
                })
                .collect();
            let want: Vec<(String, u64)> = days.iter().map(|(d, n)| (d.to_string(), *n)).collect();
            assert_eq!(got, want, "{tz} {source}");
        }
    }
}

/// An install from before the rollups: clicks and conversions already
/// stored when `migrate` first creates `clicks_15m` and `conversions_15m`
/// are in them (backfill; conversions in their latest state, though their
/// later versions were written before `prev_*` existed), and rows
/// inserted afterwards come through the views; the rollups then answer
/// what the raw tables do.
#[tokio::test]
async fn the_rollups_are_filled_from_rows_stored_before_them() {
    let config = ServerConfig::new("stats_backfill");
    let db = config.database.clone();
    let ch = &services().clickhouse;
    // The CREATE TABLEs already hold the columns later releases added.
    for s in statements("deploy/clickhouse/schema.sql", &db) {
        if !s.contains("_15m") && !s.starts_with("ALTER TABLE") {
            ch.query(&s);
        }
    }
    let before = seed_clicks(3, 300);
    insert_clicks(&db, &before);
    let (first, later, _) = seed_conversions(&before);
    // Approvals of pending conversions come before the upgrade, written
    // as an old release wrote them; reversals after it.
    let (approvals, reversals): (Vec<Version>, Vec<Version>) =
        later.into_iter().partition(|v| v.status == "approved");
    assert!(!approvals.is_empty() && !reversals.is_empty());
    insert_conversions(&db, &first);
    insert_old_versions(&db, &approvals);
    for rollup in ["clicks_15m", "conversions_15m"] {
        assert_eq!(
            ch.count(&format!(
                "SELECT count() FROM system.tables WHERE database = '{db}' AND name = '{rollup}'"
            )),
            0
        );
    }

    let server = Server::start(config);
    let log = server.log_text();
    for rollup in ["clicks_15m", "conversions_15m"] {
        assert!(
            log.lines()
                .any(|l| l.contains("rollup filled from the rows already stored")
                    && l.contains(&format!(".{rollup}"))),
            "{rollup} backfilled: {log}"
        );
    }
    insert_clicks(&db, &seed_clicks(4, 100)[36..]);
    insert_changes(&db, &reversals, &first);

    for case in [
        case(
            &["partner", "day"],
            "Asia/Kathmandu",
            "2026-01-01",
            "2026-03-31",
        ),
        case(
            &["country", "device", "os", "browser", "sub1"],
            "UTC",
            "2026-01-01",
            "2026-12-31",
        ),
    ] {
        check(&server, &case).await;
    }
    let totals = "from=2026-01-01&to=2026-12-31&source=rollup\
        &metrics=clicks,bot_clicks,rate_limited_clicks,conversions,pending,rejected,reversed,revenue,payout";
    let total = stats(&server, totals).await;
    assert_eq!(total["conversions_source"], "rollup", "{total}");
    let row = &total["rows"][0];
    let sum: u64 = ["clicks", "bot_clicks", "rate_limited_clicks"]
        .iter()
        .map(|m| row[m].as_u64().unwrap())
        .sum();
    assert_eq!(sum, 300 + 64, "{total}");

    // A second migration finds the view and fills nothing twice.
    let mut again = Server::start(server.config.clone().other_node());
    again.terminate();
    let again_total = stats(&server, totals).await;
    assert_eq!(again_total["rows"], total["rows"]);
}

/// CSV: the same rows as JSON, with a header, RFC 4180 quoting, a guard
/// against spreadsheet formulas, and the next cursor in a header.
#[tokio::test]
async fn csv_answers_hold_the_json_rows() {
    let server = seeded_server("stats_csv");
    let query =
        "group_by=partner,sub1&from=2026-01-01&to=2026-03-31&sort=-clicks&metrics=clicks,payout,cr";
    let json = all_rows(&server, query).await;
    let get = |q: String, accept: &'static str| {
        let url = format!("{}/api/v1/stats?{q}", server.admin);
        async move {
            let resp = client()
                .get(url)
                .header("Authorization", format!("Bearer {TOKEN}"))
                .header("Accept", accept)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
            let next = resp
                .headers()
                .get("x-next-cursor")
                .map(|v| v.to_str().unwrap().to_string());
            (resp.text().await.unwrap(), next)
        }
    };
    let (by_format, none) = get(format!("{query}&format=csv"), "*/*").await;
    assert_eq!(none, None);
    let (by_accept, _) = get(query.to_string(), "text/csv").await;
    assert_eq!(by_format, by_accept);
    let lines: Vec<&str> = by_format.split_terminator("\r\n").collect();
    assert_eq!(lines[0], "partner_id,sub1,clicks,payout,cr");
    assert_eq!(lines.len(), json.len() + 1);
    for (line, row) in lines[1..].iter().zip(&json) {
        let sub1 = row["sub1"].as_str().unwrap();
        let shown = match sub1 {
            "a,b" => "\"a,b\"".to_string(),
            "=cmd" => "'=cmd".to_string(),
            other => other.to_string(),
        };
        let cr = row["cr"].as_str().unwrap_or("");
        let want = format!(
            "{},{shown},{},{},{cr}",
            row["partner_id"],
            row["clicks"],
            row["payout"].as_str().unwrap()
        );
        assert_eq!(*line, want);
    }
    assert!(
        lines.iter().any(|l| l.contains("\"a,b\"")) && lines.iter().any(|l| l.contains(",'=cmd,"))
    );

    // Paged: each page a header and its rows; together, every row.
    let (mut text, mut next) = get(format!("{query}&format=csv&limit=4"), "*/*").await;
    let mut paged: Vec<String> = Vec::new();
    loop {
        let page: Vec<&str> = text.split_terminator("\r\n").collect();
        assert_eq!(page[0], lines[0]);
        paged.extend(page[1..].iter().map(|l| l.to_string()));
        let Some(c) = next else { break };
        (text, next) = get(format!("{query}&format=csv&limit=4&cursor={c}"), "*/*").await;
    }
    assert_eq!(paged, lines[1..].to_vec());
}

/// Bad input is `400` naming the parameter.
#[tokio::test]
async fn bad_input_is_400_naming_the_parameter() {
    let server = Server::start(ServerConfig::new("stats_bad"));
    for (query, field) in [
        ("group_by=partner,campaign", "group_by"),
        ("metrics=clicks,profit", "metrics"),
        ("from=2026-02-01&to=2026-01-01", "from"),
        ("from=2024-01-01&to=2026-01-01", "to"),
        ("tz=Europe/Atlantis", "tz"),
        ("cursor=not-a-cursor", "cursor"),
        ("sort=-revenue_per_click", "sort"),
        ("limit=1000000", "limit"),
        ("source=rollup&group_by=sub4", "source"),
        ("format=xlsx", "format"),
        ("partner=1", "partner"),
    ] {
        let (s, v) = admin(&server, "GET", &format!("/api/v1/stats?{query}"), None).await;
        assert_eq!(s, 400, "{query}: {v}");
        assert_eq!(v["error"]["code"], "invalid", "{query}: {v}");
        assert_eq!(v["error"]["field"], field, "{query}: {v}");
    }
}

/// The committed SQL the chdb check runs on a current ClickHouse also runs
/// here, on 18.16: the builder's example queries and the assertions on the
/// zone functions the rollup relies on.
#[tokio::test]
async fn committed_stats_sql_runs_on_this_clickhouse() {
    let server = seeded_server("stats_sql");
    let ch = &services().clickhouse;
    let examples = statements("src/sql/stats_examples.sql", &server.config.database);
    assert!(examples.len() >= 8);
    let mut answered = 0;
    for s in examples
        .iter()
        .chain(&statements("src/sql/stats_zone_checks.sql", ""))
    {
        answered += usize::from(!ch.query(s).trim().is_empty());
    }
    assert!(
        answered > examples.len() / 2,
        "most examples have rows on the seed"
    );
}

/// `GET /api/v1/stats/conversion-times` counts each conversion once, in its
/// latest state, in the bucket of its seconds from click (a conversion
/// stamped before its click, as across nodes' clocks, in the first), and
/// its percentiles are the sorted seconds' (ClickHouse's `quantileExact`
/// takes the element at `level * n`): all computed here from the seed
/// itself, not from SQL.
#[tokio::test]
async fn conversion_times_follow_the_seed() {
    let server = seeded_server("stats_times");
    let clicks = seed_clicks(1, 400);
    let (first, later, _) = seed_conversions(&clicks);
    let bounds: [u64; 8] = [0, 10, 60, 600, 3600, 86_400, 604_800, 2_592_000];
    let mut latest: BTreeMap<&str, &Version> = BTreeMap::new();
    for v in first.iter().chain(&later) {
        if latest
            .get(v.id.as_str())
            .is_none_or(|l| l.version <= v.version)
        {
            latest.insert(&v.id, v);
        }
    }
    for (statuses, query) in [
        (&["approved", "pending", "reversed"][..], ""),
        (&["rejected"][..], "&status=rejected"),
    ] {
        let mut expected: BTreeMap<(u64, u64), Vec<u64>> = BTreeMap::new();
        for v in latest.values() {
            let Some((_, click_ts)) = &v.click else {
                continue;
            };
            if statuses.contains(&v.status) {
                let secs = (v.ts - click_ts).max(0) as u64;
                expected.entry((v.partner, v.offer)).or_default().push(secs);
            }
        }
        assert!(
            expected.len() > 2,
            "the seed spreads over partners and offers"
        );
        let (s, got) = admin(
            &server,
            "GET",
            &format!("/api/v1/stats/conversion-times?from=2026-01-01&to=2026-12-31{query}"),
            None,
        )
        .await;
        assert_eq!(s, 200, "{got}");
        assert_eq!(got["truncated"], false);
        let rows = got["rows"].as_array().unwrap();
        assert_eq!(rows.len(), expected.len(), "{got}");
        for row in rows {
            let key = (
                row["partner_id"].as_u64().unwrap(),
                row["offer_id"].as_u64().unwrap(),
            );
            let mut secs = expected[&key].clone();
            secs.sort_unstable();
            assert_eq!(row["conversions"], secs.len() as u64, "{key:?}");
            let names = [
                "under_10s",
                "10s_to_1m",
                "1m_to_10m",
                "10m_to_1h",
                "1h_to_1d",
                "1d_to_7d",
                "7d_to_30d",
                "30d_and_over",
            ];
            for (i, name) in names.iter().enumerate() {
                let high = bounds.get(i + 1).copied().unwrap_or(u64::MAX);
                let n = secs
                    .iter()
                    .filter(|s| **s >= bounds[i] && **s < high)
                    .count();
                assert_eq!(row["buckets"][name], n as u64, "{key:?} {name}");
            }
            let at = |level: f64| secs[((level * secs.len() as f64) as usize).min(secs.len() - 1)];
            assert_eq!(row["p10_seconds"], at(0.1), "{key:?}");
            assert_eq!(row["median_seconds"], at(0.5), "{key:?}");
            assert_eq!(row["p90_seconds"], at(0.9), "{key:?}");
        }
        let counts: Vec<u64> = rows
            .iter()
            .map(|r| r["conversions"].as_u64().unwrap())
            .collect();
        assert!(
            counts.windows(2).all(|w| w[0] >= w[1]),
            "most first: {counts:?}"
        );
    }
    let (s, v) = admin(
        &server,
        "GET",
        "/api/v1/stats/conversion-times?group_by=day",
        None,
    )
    .await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (400, Some("group_by")),
        "{v}"
    );
}
