//! The stats tests' seed and their own reading of the raw tables: clicks
//! and conversions made up deterministically, inserted straight into
//! ClickHouse, and what SQL written here (not the service's) says they add
//! up to.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::common::services;

/// 2026-01-01T00:00:00Z.
pub const JAN_1: i64 = 1_767_225_600;
/// 2026-01-15T00:00:00+05:45, Kathmandu's midnight: 2026-01-14T18:15:00Z.
pub const KTM_MIDNIGHT: i64 = 1_768_414_500;
/// 2026-03-08T07:00:00Z: New York springs forward (02:00 EST → 03:00 EDT).
pub const NY_DST: i64 = 1_772_953_200;
/// 2026-03-08T05:30:00Z: St. John's springs forward (02:00 NST).
pub const STJ_DST: i64 = 1_772_947_800;
/// 2026-11-01T06:00:00Z: New York falls back (02:00 EDT → 01:00 EST).
pub const NY_FALL: i64 = 1_793_512_800;

/// A small deterministic generator (xorshift), so a failure reproduces.
pub struct Rng(u64);

impl Rng {
    pub fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.next(items.len() as u64) as usize]
    }
}

/// One row of `clicks`, as inserted.
pub struct Click {
    pub id: String,
    pub ts: i64,
    pub partner: u64,
    pub offer: u64,
    pub country: &'static str,
    pub device: &'static str,
    pub os: &'static str,
    pub browser: &'static str,
    pub subs: [&'static str; 5],
    pub bot: u8,
    pub rate_limited: u8,
    pub visitor: u64,
}

impl Click {
    pub fn link(&self) -> u64 {
        self.partner * 100 + self.offer
    }
}

/// Clicks at the edges (a second and a bucket either side of a Kathmandu
/// midnight and of daylight saving changes) and spread over the quarter.
pub fn seed_clicks(seed: u64, count: usize) -> Vec<Click> {
    let mut rng = Rng(seed);
    let mut times: Vec<i64> = Vec::new();
    for anchor in [KTM_MIDNIGHT, NY_DST, STJ_DST, NY_FALL] {
        for offset in [-3600, -900, -1, 0, 1, 899, 900, 3599, 3600] {
            times.push(anchor + offset);
        }
    }
    while times.len() < count {
        times.push(JAN_1 + rng.next(90 * 86_400) as i64);
    }
    times
        .into_iter()
        .enumerate()
        .map(|(n, ts)| Click {
            id: format!("{seed:x}c{n:05}"),
            ts,
            partner: 1 + rng.next(3),
            offer: 10 + rng.next(2),
            country: rng.pick(&["DE", "NP", "US", ""]),
            device: rng.pick(&["desktop", "mobile", "tablet"]),
            os: rng.pick(&["Windows", "iOS", "Android", ""]),
            browser: rng.pick(&["Chrome", "Safari", "Firefox"]),
            subs: [
                rng.pick(&["", "news", "a,b", "=cmd", "fb"]),
                rng.pick(&["", "x", "y"]),
                rng.pick(&["", "p", "q"]),
                rng.pick(&["", "r"]),
                rng.pick(&["", "s", "t"]),
            ],
            bot: u8::from(rng.next(8) == 0),
            rate_limited: u8::from(rng.next(10) == 0),
            visitor: if rng.next(6) == 0 {
                0
            } else {
                1 + rng.next(25)
            },
        })
        .collect()
}

/// A ClickHouse string literal.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Inserts `clicks` in three INSERTs, so the rollup holds several partial
/// states per key until its parts merge.
pub fn insert_clicks(db: &str, clicks: &[Click]) {
    let ch = &services().clickhouse;
    for chunk in clicks.chunks(clicks.len().div_ceil(3)) {
        let values: Vec<String> = chunk
            .iter()
            .map(|c| {
                format!(
                    "({}, {}, 'code', {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
                    quote(&c.id),
                    c.ts,
                    c.link(),
                    c.partner,
                    c.offer,
                    quote(c.subs[0]),
                    quote(c.subs[1]),
                    quote(c.subs[2]),
                    quote(c.subs[3]),
                    quote(c.subs[4]),
                    c.bot,
                    c.rate_limited,
                    quote(c.country),
                    quote(c.device),
                    quote(c.os),
                    quote(c.browser),
                    c.visitor
                )
            })
            .collect();
        ch.query(&format!(
            "INSERT INTO {db}.clicks (click_id, ts, code, link_id, partner_id, offer_id, \
             sub1, sub2, sub3, sub4, sub5, is_bot, is_rate_limited, country, device, os, browser, visitor) \
             VALUES {}",
            values.join(", ")
        ));
    }
}

/// One version of a conversion.
pub struct Version {
    pub id: String,
    pub ts: i64,
    pub click: Option<(String, i64)>,
    pub partner: u64,
    pub offer: u64,
    pub link: u64,
    /// Ten-thousandths.
    pub amount: i64,
    pub payout: i64,
    pub status: &'static str,
    pub version: u64,
}

/// Conversions of some of `clicks`, in every life a conversion has:
/// approved; pending → approved; approved → reversed; pending; rejected;
/// duplicate; approved with its version written twice. Some credit
/// another partner than the click's (a deal), one has no click. Returns
/// (first versions, later versions, second copies of first versions).
/// Written straight into ClickHouse, the copies are what the shipper
/// drops (`conversions_15m` would count them twice): only tests of the
/// raw path insert them.
pub fn seed_conversions(clicks: &[Click]) -> (Vec<Version>, Vec<Version>, Vec<Version>) {
    let mut rng = Rng(77);
    let (mut first, mut later, mut repeated) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..120usize {
        let c = &clicks[(i * 37) % clicks.len()];
        let ts = if i % 10 == 0 {
            // Either side of the Kathmandu midnight.
            KTM_MIDNIGHT - 1 + (i as i64 / 10) % 2
        } else {
            c.ts + rng.next(2 * 86_400) as i64
        };
        let amount = 1 + rng.next(2_000_000) as i64;
        let v = |status, version| Version {
            id: format!("v{i:04}"),
            ts,
            click: (i != 119).then(|| (c.id.clone(), c.ts)),
            partner: if i % 13 == 0 { 4 } else { c.partner },
            offer: c.offer,
            link: c.link(),
            amount,
            payout: amount / 10,
            status,
            version,
        };
        match i % 7 {
            0 => first.push(v("approved", 1)),
            1 => {
                first.push(v("pending", 1));
                later.push(v("approved", 2));
            }
            2 => {
                first.push(v("approved", 1));
                later.push(v("reversed", 2));
            }
            3 => first.push(v("pending", 1)),
            4 => first.push(v("rejected", 1)),
            5 => first.push(v("duplicate", 1)),
            _ => {
                first.push(v("approved", 1));
                repeated.push(v("approved", 1));
            }
        }
    }
    (first, later, repeated)
}

/// Inserts `rows`, each first of its conversion (nothing to take back).
pub fn insert_conversions(db: &str, rows: &[Version]) {
    insert_changes(db, rows, &[]);
}

/// Inserts `rows`, each later version carrying the state it replaces (its
/// conversion's previous version in `before`), as a status change writes
/// it.
pub fn insert_changes(db: &str, rows: &[Version], before: &[Version]) {
    insert_versions(db, rows, Some(before));
}

/// Inserts `rows` as releases before `prev_*` wrote them: later versions
/// without the state they replace.
pub fn insert_old_versions(db: &str, rows: &[Version]) {
    insert_versions(db, rows, None);
}

fn insert_versions(db: &str, rows: &[Version], before: Option<&[Version]>) {
    let money = |scaled: i64| format!("{}.{:04}", scaled / 10_000, scaled % 10_000);
    let values: Vec<String> = rows
        .iter()
        .map(|v| {
            let (click_id, click_ts) = v.click.clone().unwrap_or_default();
            let prev = before.and_then(|before| {
                before
                    .iter()
                    .find(|b| b.id == v.id && b.version + 1 == v.version)
            });
            assert!(
                v.version == 1 || before.is_none() || prev.is_some(),
                "{} version {}: no previous version given",
                v.id,
                v.version
            );
            let (prev_status, prev_amount, prev_payout) =
                prev.map_or(("", 0, 0), |p| (p.status, p.amount, p.payout));
            format!(
                "({}, {}, {}, {}, {}, {}, {}, toDecimal64('{}', 4), toDecimal64('{}', 4), {}, {}, \
                 {}, toDecimal64('{}', 4), toDecimal64('{}', 4))",
                quote(&v.id),
                v.ts,
                quote(&click_id),
                click_ts,
                v.link,
                v.partner,
                v.offer,
                money(v.amount),
                money(v.payout),
                quote(v.status),
                v.version,
                quote(prev_status),
                money(prev_amount),
                money(prev_payout)
            )
        })
        .collect();
    services().clickhouse.query(&format!(
        "INSERT INTO {db}.conversions (conversion_id, ts, click_id, click_ts, link_id, \
         partner_id, offer_id, amount, payout, status, version, prev_status, prev_amount, \
         prev_payout) VALUES {}",
        values.join(", ")
    ));
}

/// One row's metrics, as compared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    pub counts: [u64; 8],
    pub revenue: Decimal,
    pub payout: Decimal,
}

pub const COUNTS: [&str; 8] = [
    "clicks",
    "unique_clicks",
    "bot_clicks",
    "rate_limited_clicks",
    "conversions",
    "pending",
    "rejected",
    "reversed",
];

/// The raw tables' SQL for one key, on clicks (`ts`, its columns) or on
/// conversions joined to their clicks (`ts` the conversion's).
pub fn key_sql(key: &str, tz: &str) -> String {
    let tz = quote(tz);
    match key {
        "partner" | "offer" | "link" => format!("toString({key}_id)"),
        "day" => format!("toString(toDate(ts, {tz}))"),
        "hour" => format!("toString(toUInt32(toStartOfHour(ts, {tz})))"),
        "week" => format!("toString(toMonday(ts, {tz}))"),
        "month" => format!("substring(toString(toStartOfMonth(ts, {tz})), 1, 7)"),
        column => column.to_string(),
    }
}

/// What direct SQL on the raw tables says for `group_by` in `tz` over
/// `[from, to)` (Unix seconds) with extra conditions `filters` (on
/// columns both tables' rows have once joined).
pub fn expected(
    db: &str,
    group_by: &[&str],
    tz: &str,
    from: i64,
    to: i64,
    filters: &str,
) -> BTreeMap<String, Metrics> {
    let ch = &services().clickhouse;
    let key = if group_by.is_empty() {
        "''".to_string()
    } else {
        let parts: Vec<String> = group_by.iter().map(|k| key_sql(k, tz)).collect();
        format!("arrayStringConcat([{}], '|')", parts.join(", "))
    };
    let range = format!("ts >= {from} AND ts < {to}");
    let mut out: BTreeMap<String, Metrics> = BTreeMap::new();
    let click_metrics = [
        ("count()", "is_bot = 0 AND is_rate_limited = 0"),
        (
            "uniqExact(visitor)",
            "is_bot = 0 AND is_rate_limited = 0 AND visitor != 0",
        ),
        ("count()", "is_bot = 1"),
        ("count()", "is_bot = 0 AND is_rate_limited = 1"),
    ];
    for (i, (aggregate, condition)) in click_metrics.iter().enumerate() {
        let sql = format!(
            "SELECT {key}, {aggregate} FROM {db}.clicks WHERE {range} AND {condition}{filters} GROUP BY {key}"
        );
        for line in ch.query(&sql).lines() {
            let (k, n) = line.rsplit_once('\t').unwrap();
            out.entry(k.to_string()).or_default().counts[i] = n.parse().unwrap();
        }
    }
    for (i, status) in ["approved", "pending", "rejected", "reversed"]
        .iter()
        .enumerate()
    {
        let sql = format!(
            "SELECT {key}, count(), toString(sum(amount)), toString(sum(payout)) \
             FROM (SELECT conversion_id, ts, click_id, partner_id, offer_id, link_id, status, amount, payout \
                   FROM {db}.conversions FINAL WHERE {range}) \
             ALL LEFT JOIN (SELECT click_id, country, device, os, browser, sub1, sub2, sub3, sub4, sub5 \
                   FROM {db}.clicks) USING click_id \
             WHERE status = '{status}'{filters} GROUP BY {key}"
        );
        for line in ch.query(&sql).lines() {
            let mut f = line.rsplitn(4, '\t');
            let payout: Decimal = f.next().unwrap().parse().unwrap();
            let revenue: Decimal = f.next().unwrap().parse().unwrap();
            let n: u64 = f.next().unwrap().parse().unwrap();
            let m = out.entry(f.next().unwrap().to_string()).or_default();
            m.counts[4 + i] = n;
            if *status == "approved" {
                m.revenue = revenue;
                m.payout = payout;
            }
        }
    }
    out
}

/// The statements of a file in `schema.sql`'s layout, for `db`.
pub fn statements(path: &str, db: &str) -> Vec<String> {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let mut out = vec![String::new()];
    for line in text.lines() {
        if line.trim() == ";" {
            out.push(String::new());
        } else if !line.trim_start().starts_with("--") {
            let last = out.last_mut().unwrap();
            last.push_str(line);
            last.push('\n');
        }
    }
    out.into_iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.replace("{database}", db))
        .collect()
}
