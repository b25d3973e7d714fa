//! The stats query builder's tables: which source answers, what the SQL
//! holds, and the committed examples that CI runs on both ClickHouses.

use super::*;
use crate::config::StatsConfig;
use crate::stats::TimingRequest;

/// 2026-01-10 12:00 UTC.
const NOW: i64 = 1_768_046_400;

fn request(query: &str) -> StatsRequest {
    StatsRequest::parse(query, &StatsConfig::default(), NOW).unwrap()
}

/// `query` is answered from `expected` (`Err(field)`: refused, naming it).
fn check_plan(query: &str, expected: Result<Plan, &str>) {
    let got = plan(&request(query)).map_err(|e| e.field);
    assert_eq!(got, expected.map_err(str::to_string), "{query}");
}

/// Every metric but `unique_clicks`, which no rollup keeps.
const COUNTED: &str = "metrics=clicks,bot_clicks,rate_limited_clicks,conversions,pending,rejected,reversed,revenue,payout,cr,epc";

#[test]
fn the_narrowest_rollup_answers_whenever_one_can() {
    use Plan::*;
    let check = |query: &str, expected| check_plan(&format!("{COUNTED}&{query}"), expected);
    check("", Ok(Links));
    check("group_by=partner,offer,link,day,hour,week,month", Ok(Links));
    check(
        "group_by=partner,offer,link,day,hour,week,month,country,device,os,browser,sub1",
        Ok(Attributes),
    );
    check(
        "group_by=day&tz=Asia/Kathmandu&from=2026-01-01&to=2026-01-31",
        Ok(Links),
    );
    check(
        "group_by=hour&tz=America/St_Johns&from=2026-01-01",
        Ok(Links),
    );
    check(
        "partner_id=1,2&offer_id=3&link_id=4&from=2026-01-01T10:15:00%2B05:45",
        Ok(Links),
    );
    check("group_by=day&country=de", Ok(Attributes));
    check("group_by=sub1", Ok(Attributes));
    check("group_by=sub2", Ok(Raw));
    check("group_by=day,sub5", Ok(Raw));
    check("from=2026-01-01T10:07:00Z", Ok(Raw));
    check("to=2026-01-01T10:00:01Z&from=2026-01-01", Ok(Raw));
    check("source=raw", Ok(Raw));
    check("source=rollup&group_by=sub1", Ok(Attributes));
    check("source=rollup&group_by=sub3", Err("source"));
    check("source=rollup&from=2026-01-01T00:00:30Z", Err("source"));
    // Distinct visitors, shown (the default) or sorted by, come from the
    // clicks themselves.
    check_plan("", Ok(Raw));
    check_plan("group_by=partner,day", Ok(Raw));
    check_plan("source=rollup", Err("source"));
    check_plan("metrics=clicks&sort=-unique_clicks", Ok(Raw));
    check_plan("metrics=clicks,cr", Ok(Links));
}

/// The SQL for `query` from `plan` holds every one of `present` and none
/// of `absent`.
fn check_sql(query: &str, plan: Plan, present: &[&str], absent: &[&str]) {
    let req = request(query);
    let sql = build(&req, plan, conversions_plan(&req), "db", 30);
    for p in present {
        assert!(sql.contains(p), "{query}: no {p:?} in\n{sql}");
    }
    for a in absent {
        assert!(!sql.contains(a), "{query}: {a:?} in\n{sql}");
    }
    assert!(!sql.contains('?'), "{sql}");
}

#[test]
fn the_sql_groups_filters_and_orders_as_asked() {
    use Plan::*;
    check_sql(
        "group_by=partner,day&tz=Asia/Kathmandu&from=2026-01-01&to=2026-01-31",
        Links,
        &[
            "FROM db.clicks_15m_links",
            "sum(clicks) AS a_clicks",
            "toUInt64(0) AS a_unique_clicks",
            "toDate(bucket, 'Asia/Kathmandu') AS k_day",
            "FROM db.conversions_15m\n",
            "toUInt64(greatest(sum(approved), 0)) AS a_conversions",
            "sum(revenue) AS a_revenue",
            // Kathmandu's midnights: 18:15 UTC the day before.
            "bucket >= toDateTime(1767204900) AND bucket < toDateTime(1769883300)",
            "GROUP BY k_partner, k_day",
            "ORDER BY k_partner, k_day",
            "LIMIT 0, 1001",
            "max_execution_time = 30",
        ],
        &[
            "FROM db.clicks\n",
            "FROM db.clicks_15m\n",
            "ANY LEFT JOIN",
            "FROM db.conversions\n",
            "c_ts",
        ],
    );
    check_sql(
        "group_by=sub2,hour&tz=America/St_Johns&sort=-clicks",
        Raw,
        &[
            "FROM db.clicks\n",
            "toStartOfHour(ts, 'America/St_Johns') AS k_hour",
            "c_sub2 AS k_sub2",
            "ANY LEFT JOIN",
            "sub2 AS c_sub2",
            "toString(toUInt32(k_hour))",
            "ORDER BY m_clicks DESC, k_sub2, k_hour",
        ],
        &["clicks_15m", "c_country"],
    );
    check_sql(
        "partner_id=7,8&country=de,FR&sort=day&group_by=week,day&limit=5",
        Attributes,
        &[
            "partner_id IN (7, 8)",
            "country IN ('DE', 'FR')",
            "c_country IN ('DE', 'FR')",
            "country AS c_country",
            "toMonday(bucket, 'UTC') AS k_week",
            "ORDER BY k_day, k_week",
            "LIMIT 0, 6",
        ],
        &["GROUP BY \n"],
    );
    // Distinct visitors only when shown or sorted by.
    check_sql(
        "metrics=clicks,payout",
        Raw,
        &["toUInt64(0) AS a_unique_clicks"],
        &["uniqExact"],
    );
    check_sql(
        "metrics=clicks&sort=-unique_clicks",
        Raw,
        &["uniqExactIf(visitor"],
        &[],
    );
    check_sql(
        "",
        Raw,
        &["emptyArrayString() AS keys", "LIMIT 0, 1001"],
        &["GROUP BY k_", "ORDER BY", "ANY LEFT JOIN"],
    );
    check_sql(
        "group_by=month,offer,link&offer_id=3",
        Links,
        &[
            "toStartOfMonth(bucket, 'UTC') AS k_month",
            "FROM db.conversions_15m\n",
            "offer_id IN (3)",
        ],
        &["ANY LEFT JOIN", "partner_id IN", "c_offer_id"],
    );
    // The raw conversions, for the same keys, when asked.
    check_sql(
        "group_by=month,offer,link&offer_id=3&source=raw",
        Raw,
        &[
            "FROM db.conversions\n",
            "c_offer_id AS k_offer",
            "argMax(status, version)",
        ],
        &["conversions_15m"],
    );
}

/// `query`'s conversions are counted from `expected`.
fn check_conversions(query: &str, expected: ConversionsPlan) {
    assert_eq!(conversions_plan(&request(query)), expected, "{query}");
}

#[test]
fn conversions_come_from_their_rollup_when_it_holds_the_keys() {
    use ConversionsPlan::*;
    let cases = [
        ("", Rollup),
        ("group_by=partner,offer,link,day,hour,week,month", Rollup),
        (
            "group_by=partner,day&tz=Asia/Kathmandu&from=2026-01-01&to=2026-01-31",
            Rollup,
        ),
        ("partner_id=1,2&offer_id=3&link_id=4", Rollup),
        // unique_clicks is the clicks side's business.
        ("metrics=unique_clicks", Rollup),
        // source=rollup is asked of the clicks; the conversions follow.
        ("source=rollup&metrics=clicks&group_by=sub1", Raw),
        ("source=raw", Raw),
        // Click attributes: the conversions' clicks must be joined.
        ("group_by=country", Raw),
        ("group_by=day,sub1", Raw),
        ("country=de", Raw),
        // Bounds off the quarter hour.
        ("from=2026-01-01T10:07:00Z", Raw),
        ("to=2026-01-01T10:00:01Z&from=2026-01-01", Raw),
    ];
    for (query, expected) in cases {
        check_conversions(query, expected);
    }
}

/// Requests whose SQL `src/sql/stats_examples.sql` holds: every key, both
/// sources, filters, sorts, zones. CI runs that file on ClickHouse 18.16
/// (tests/stats.rs) and on a current release (scripts/chdb-check.sh).
const EXAMPLES: [(&str, Plan); 9] = [
    ("group_by=partner,day&tz=Asia/Kathmandu&from=2026-01-01&to=2026-01-31", Plan::Raw),
    (
        "group_by=partner,day&tz=Asia/Kathmandu&from=2026-01-01&to=2026-01-31&metrics=clicks,conversions,payout,cr,epc",
        Plan::Links,
    ),
    (
        "group_by=offer,link,hour,week,month,country,device,os,browser,sub1&tz=America/St_Johns&sort=-epc&metrics=clicks,epc",
        Plan::Attributes,
    ),
    (
        "group_by=sub1,sub2,sub3,sub4,sub5,hour&tz=America/New_York&sort=-cr&limit=10",
        Plan::Raw,
    ),
    (
        "partner_id=1,2&offer_id=1&link_id=1&country=X&group_by=day&sort=-payout&metrics=payout",
        Plan::Attributes,
    ),
    ("partner_id=1&country=X&group_by=partner,country&sort=country", Plan::Raw),
    ("metrics=clicks,bot_clicks", Plan::Links),
    ("", Plan::Raw),
    ("group_by=month&sort=-month&from=2026-01-01T00:00:00Z&to=2026-01-01T10:07:00Z", Plan::Raw),
];

fn examples() -> String {
    let mut out = String::from(
        "-- Generated by `TRACKEDGE_BLESS=1 cargo test --lib stats::query`: the\n\
         -- stats API's SQL for a few requests (src/stats/query.rs builds it for\n\
         -- each request). Checked on ClickHouse 18.16 by tests/stats.rs and on a\n\
         -- current release by scripts/chdb-check.sh; do not edit by hand.\n",
    );
    for (i, (query, plan)) in EXAMPLES.iter().enumerate() {
        if i > 0 {
            out.push_str(";\n");
        }
        let req = request(query);
        let conversions = conversions_plan(&req);
        out.push_str(&format!(
            "-- {} and {} conversions ?{query}\n",
            plan.table(),
            conversions.name()
        ));
        out.push_str(&build(&req, *plan, conversions, "{database}", 30));
        out.push('\n');
    }
    for query in TIMING_EXAMPLES {
        out.push_str(&format!(";\n-- conversion-times ?{query}\n"));
        let r = TimingRequest::parse(query, &StatsConfig::default(), NOW)
            .expect("the examples are valid");
        out.push_str(&r.sql("{database}", 30));
        out.push('\n');
    }
    out
}

/// `GET /api/v1/stats/conversion-times` requests whose SQL the examples
/// file holds as well.
const TIMING_EXAMPLES: [&str; 2] = [
    "from=2026-01-01&to=2026-01-31&tz=Asia/Kathmandu",
    "group_by=offer&partner_id=1,2&status=approved,rejected",
];

#[test]
fn the_committed_examples_are_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/sql/stats_examples.sql");
    let generated = examples();
    if std::env::var_os("TRACKEDGE_BLESS").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "src/sql/stats_examples.sql is not what the builder writes: run \
         `TRACKEDGE_BLESS=1 cargo test --lib stats::query` and commit it"
    );
}
