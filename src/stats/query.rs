//! The stats query, built as SQL text from a checked request, pure.
//!
//! One statement, valid on ClickHouse 18.16 and current releases: the
//! clicks side (a rollup, `clicks_15m_links` or `clicks_15m`, or the raw
//! `clicks` table) and the conversions side (the `conversions_15m` rollup
//! or the raw `conversions` table joined to its clicks: see the module
//! doc of `stats`), each grouped by the request's keys, `UNION ALL`,
//! summed by key, ordered and cut to one page (one row more than the page,
//! to know there is a next).
//!
//! Every value from the request is either a number Rust formatted or a
//! string checked to letters, digits and `/_+-` (zone names, countries),
//! quoted all the same; none can hold a `?`, which the `clickhouse` crate
//! would read as a bind placeholder.

use super::request::{Dimension, Metric, SortKey, Source, StatsRequest};
use super::time::BUCKET_SECS;
use crate::validation::FieldError;

/// Where the click counts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// `clicks_15m_links`: 15-minute buckets by partner, offer and link.
    Links,
    /// `clicks_15m`: 15-minute buckets by those and the click's
    /// attributes (country, device, os, browser, sub1).
    Attributes,
    /// `clicks`, one row per click.
    Raw,
}

impl Plan {
    /// `rollup` or `raw`, as answers name their source.
    pub fn name(self) -> &'static str {
        match self {
            Plan::Links | Plan::Attributes => "rollup",
            Plan::Raw => "raw",
        }
    }

    /// The table the click counts are read from.
    pub fn table(self) -> &'static str {
        match self {
            Plan::Links => "clicks_15m_links",
            Plan::Attributes => "clicks_15m",
            Plan::Raw => "clicks",
        }
    }
}

/// Where the conversion counts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversionsPlan {
    /// `conversions_15m`: 15-minute buckets by partner, offer and link,
    /// each conversion counted in its latest state.
    Rollup,
    /// `conversions`, each conversion's latest version, joined to its
    /// click when a click attribute is asked for.
    Raw,
}

impl ConversionsPlan {
    /// `rollup` or `raw`, as answers name their source.
    pub fn name(self) -> &'static str {
        match self {
            ConversionsPlan::Rollup => "rollup",
            ConversionsPlan::Raw => "raw",
        }
    }
}

/// Where `req`'s conversion counts come from: `conversions_15m` when its
/// keys and filters are partners, offers, links and times only and its
/// bounds are whole buckets (unless `source=raw`); else the raw table.
/// Independent of the clicks' plan: `source=rollup` asks it of the clicks
/// side, and the conversions side follows whenever it can.
pub fn conversions_plan(req: &StatsRequest) -> ConversionsPlan {
    let by_ids =
        req.group_by.iter().all(|d| d.is_id() || d.is_time()) && req.filters.countries.is_empty();
    let whole = req.from % BUCKET_SECS == 0 && req.to % BUCKET_SECS == 0;
    if req.source != Source::Raw && by_ids && whole {
        ConversionsPlan::Rollup
    } else {
        ConversionsPlan::Raw
    }
}

/// Why no rollup can answer `req`, or `None` when one can: they keep every
/// filter's column but not `sub2`..`sub5`, no distinct visitors, and only
/// whole 15-minute buckets.
pub fn rollup_obstacle(req: &StatsRequest) -> Option<String> {
    if let Some(d) = req.group_by.iter().find(|d| !d.in_rollup()) {
        return Some(format!("group_by {} is not kept in the rollups", d.name()));
    }
    if req.needs(Metric::UniqueClicks) {
        return Some(
            "unique_clicks are counted from the clicks themselves (exact distinct visitors \
             need every visitor); leave it out of metrics and sort"
                .to_string(),
        );
    }
    for (field, t) in [("from", req.from), ("to", req.to)] {
        if t % BUCKET_SECS != 0 {
            return Some(format!(
                "{field} is not on a 15-minute boundary (a date in any zone is)"
            ));
        }
    }
    None
}

/// The plan for `req`: what its `source` asks; for `auto`, the narrowest
/// rollup holding its keys and filters whenever a rollup can answer.
/// `source=rollup` where none can answer is an error naming `source`.
pub fn plan(req: &StatsRequest) -> Result<Plan, FieldError> {
    let narrow =
        req.group_by.iter().all(|d| d.is_id() || d.is_time()) && req.filters.countries.is_empty();
    let rollup = if narrow {
        Plan::Links
    } else {
        Plan::Attributes
    };
    match (req.source, rollup_obstacle(req)) {
        (Source::Raw, _) | (Source::Auto, Some(_)) => Ok(Plan::Raw),
        (Source::Auto | Source::Rollup, None) => Ok(rollup),
        (Source::Rollup, Some(why)) => Err(FieldError::new(
            "source",
            format!("no rollup can answer this request: {why}"),
        )),
    }
}

/// Which subquery a key expression is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Rollup,
    Clicks,
    Conversions,
}

/// The statement answering one page of `req` from `plan`, in `database`,
/// stopped by ClickHouse after `timeout_secs`. Its columns: `keys`
/// (Array(String), one per group key in order), then every metric of
/// [`Metric::ALL`] (money and ratios as Int64 / UInt64 ten-thousandths).
pub fn build(
    req: &StatsRequest,
    plan: Plan,
    conversions: ConversionsPlan,
    database: &str,
    timeout_secs: u64,
) -> String {
    let clicks = clicks_side(req, plan, database);
    let conversions = match conversions {
        ConversionsPlan::Rollup => conversions_rollup_side(req, database),
        ConversionsPlan::Raw => conversions_side(req, database),
    };
    let keys = if req.group_by.is_empty() {
        "emptyArrayString()".to_string()
    } else {
        let parts: Vec<String> = req.group_by.iter().map(|d| key_as_text(*d)).collect();
        format!("[{}]", parts.join(", "))
    };
    // cr and epc in ten-thousandths, rounded half away from zero in integer
    // arithmetic: exact, and rows sorted by them are in the order shown.
    let mut sql = format!(
        "SELECT\n    {keys} AS keys,\n\
         \x20   sum(a_clicks) AS m_clicks,\n\
         \x20   sum(a_unique_clicks) AS m_unique_clicks,\n\
         \x20   sum(a_bot_clicks) AS m_bot_clicks,\n\
         \x20   sum(a_rate_limited_clicks) AS m_rate_limited_clicks,\n\
         \x20   sum(a_conversions) AS m_conversions,\n\
         \x20   sum(a_pending) AS m_pending,\n\
         \x20   sum(a_rejected) AS m_rejected,\n\
         \x20   sum(a_reversed) AS m_reversed,\n\
         \x20   sum(a_revenue) AS m_revenue,\n\
         \x20   sum(a_payout) AS m_payout,\n\
         \x20   if(m_clicks = 0, toUInt64(0), intDiv(m_conversions * 20000 + m_clicks, greatest(m_clicks, 1) * 2)) AS m_cr,\n\
         \x20   if(m_clicks = 0, toInt64(0), intDiv(m_payout * 2 + if(m_payout < 0, -1, 1) * toInt64(m_clicks), toInt64(greatest(m_clicks, 1)) * 2)) AS m_epc\n\
         FROM\n(\n{clicks}    UNION ALL\n{conversions})\n"
    );
    if !req.group_by.is_empty() {
        sql.push_str(&format!("GROUP BY {}\n", key_aliases(&req.group_by)));
    }
    let mut order: Vec<String> = Vec::new();
    if let Some(sort) = req.sort {
        let dir = if sort.descending { " DESC" } else { "" };
        order.push(match sort.key {
            SortKey::Metric(m) => format!("m_{}{dir}", m.name()),
            SortKey::Dimension(d) => format!("k_{}{dir}", d.name()),
        });
    }
    for d in &req.group_by {
        if req.sort.map(|s| s.key) != Some(SortKey::Dimension(*d)) {
            order.push(format!("k_{}", d.name()));
        }
    }
    if !order.is_empty() {
        sql.push_str(&format!("ORDER BY {}\n", order.join(", ")));
    }
    sql.push_str(&format!(
        "LIMIT {}, {}\nSETTINGS max_execution_time = {timeout_secs}",
        req.offset,
        req.limit + 1
    ));
    debug_assert!(
        !sql.contains('?'),
        "a ? would be read as a bind placeholder"
    );
    sql
}

/// The clicks side from the rollup or the raw table: click metrics by key,
/// zeros for the conversion metrics.
fn clicks_side(req: &StatsRequest, plan: Plan, db: &str) -> String {
    let (side, time, [clicks, unique, bots, rate_limited]) = match plan {
        Plan::Links | Plan::Attributes => (
            Side::Rollup,
            "bucket",
            [
                "sum(clicks)",
                // No rollup keeps visitors: plans asking for them are raw.
                "toUInt64(0)",
                "sum(bot_clicks)",
                "sum(rate_limited_clicks)",
            ],
        ),
        Plan::Raw => (
            Side::Clicks,
            "ts",
            [
                "countIf(is_bot = 0 AND is_rate_limited = 0)",
                // Costs as much as all the other metrics together (every
                // visitor hashed): counted only when shown or sorted by.
                if req.needs(Metric::UniqueClicks) {
                    "uniqExactIf(visitor, is_bot = 0 AND is_rate_limited = 0 AND visitor != 0)"
                } else {
                    "toUInt64(0)"
                },
                "countIf(is_bot != 0)",
                "countIf(is_bot = 0 AND is_rate_limited != 0)",
            ],
        ),
    };
    let table = plan.table();
    // The same columns in the same order as the conversions side: UNION
    // ALL matches columns by position.
    let metrics = format!(
        "{clicks} AS a_clicks,\n\
         \x20       {unique} AS a_unique_clicks,\n\
         \x20       {bots} AS a_bot_clicks,\n\
         \x20       {rate_limited} AS a_rate_limited_clicks"
    );
    let mut filters = id_filters(req);
    if !req.filters.countries.is_empty() {
        filters.push(format!("country IN ({})", quoted(&req.filters.countries)));
    }
    let mut sql = format!(
        "    SELECT\n{keys}        {metrics},\n\
         \x20       toUInt64(0) AS a_conversions, toUInt64(0) AS a_pending,\n\
         \x20       toUInt64(0) AS a_rejected, toUInt64(0) AS a_reversed,\n\
         \x20       toInt64(0) AS a_revenue, toInt64(0) AS a_payout\n\
         \x20   FROM {db}.{table}\n\
         \x20   WHERE {time} >= toDateTime({from}) AND {time} < toDateTime({to}){filters}\n",
        keys = key_columns(req, side),
        from = req.from,
        to = req.to,
        filters = and_all(&filters),
    );
    if !req.group_by.is_empty() {
        sql.push_str(&format!("    GROUP BY {}\n", key_aliases(&req.group_by)));
    }
    sql
}

/// The conversions side from `conversions_15m`: signed changes of state
/// summed by key, which leaves each conversion counted once, in its latest
/// state. Clicks' metrics are zeros.
fn conversions_rollup_side(req: &StatsRequest, db: &str) -> String {
    // A sum below zero would mean a version stored twice or a status
    // change without its previous state (README, "Stats"): shown as 0,
    // not as a wrapped-around count.
    let count = |c: &str| format!("toUInt64(greatest(sum({c}), 0))");
    let mut sql = format!(
        "    SELECT\n{keys}        toUInt64(0) AS a_clicks, toUInt64(0) AS a_unique_clicks,\n\
         \x20       toUInt64(0) AS a_bot_clicks, toUInt64(0) AS a_rate_limited_clicks,\n\
         \x20       {approved} AS a_conversions,\n\
         \x20       {pending} AS a_pending,\n\
         \x20       {rejected} AS a_rejected,\n\
         \x20       {reversed} AS a_reversed,\n\
         \x20       sum(revenue) AS a_revenue,\n\
         \x20       sum(payout) AS a_payout\n\
         \x20   FROM {db}.conversions_15m\n\
         \x20   WHERE bucket >= toDateTime({from}) AND bucket < toDateTime({to}){filters}\n",
        keys = key_columns(req, Side::Rollup),
        approved = count("approved"),
        pending = count("pending"),
        rejected = count("rejected"),
        reversed = count("reversed"),
        from = req.from,
        to = req.to,
        filters = and_all(&id_filters(req)),
    );
    if !req.group_by.is_empty() {
        sql.push_str(&format!("    GROUP BY {}\n", key_aliases(&req.group_by)));
    }
    sql
}

/// The conversions side: each conversion in its latest version (argMax by
/// version: exact before merges, and a `(conversion_id, version)` written
/// twice is one version), counted by status, with its click's attributes
/// when a key or filter needs them.
fn conversions_side(req: &StatsRequest, db: &str) -> String {
    let mut conv_filters = vec![format!(
        "ts >= toDateTime({}) AND ts < toDateTime({})",
        req.from, req.to
    )];
    conv_filters.extend(id_filters(req));
    let conv_where = conv_filters.join(" AND ");
    // Ids are the conversion's own (a deal may credit another partner
    // than the click's); the other attributes are its click's.
    let mut click_columns: Vec<&str> = req
        .group_by
        .iter()
        .filter(|d| !d.is_time() && !d.is_id())
        .filter_map(|d| click_column(*d))
        .collect();
    if !req.filters.countries.is_empty() && !click_columns.contains(&"country") {
        click_columns.push("country");
    }
    let join = if click_columns.is_empty() {
        String::new()
    } else {
        let columns: Vec<String> = click_columns
            .iter()
            .map(|c| format!("{c} AS c_{c}"))
            .collect();
        // Only the conversions' clicks, found by id; the lower time bound
        // (their earliest click, less an hour for clock skew between
        // nodes) lets ClickHouse skip older partitions.
        format!(
            "    ANY LEFT JOIN\n    (\n\
             \x20       SELECT click_id AS c_click_id, {columns}\n\
             \x20       FROM {db}.clicks\n\
             \x20       WHERE click_id IN (SELECT click_id FROM {db}.conversions WHERE {conv_where})\n\
             \x20         AND ts >= toDateTime(greatest(toUInt32((SELECT min(click_ts) FROM {db}.conversions \
             WHERE {conv_where} AND click_ts > toDateTime(0))), 3600) - 3600)\n\
             \x20   ) AS clk USING c_click_id\n",
            columns = columns.join(", "),
        )
    };
    let mut outer_filters =
        vec!["c_status IN ('approved', 'pending', 'rejected', 'reversed')".to_string()];
    if !req.filters.countries.is_empty() {
        outer_filters.push(format!("c_country IN ({})", quoted(&req.filters.countries)));
    }
    let mut sql = format!(
        "    SELECT\n{keys}        toUInt64(0) AS a_clicks, toUInt64(0) AS a_unique_clicks,\n\
         \x20       toUInt64(0) AS a_bot_clicks, toUInt64(0) AS a_rate_limited_clicks,\n\
         \x20       countIf(c_status = 'approved') AS a_conversions,\n\
         \x20       countIf(c_status = 'pending') AS a_pending,\n\
         \x20       countIf(c_status = 'rejected') AS a_rejected,\n\
         \x20       countIf(c_status = 'reversed') AS a_reversed,\n\
         \x20       sumIf(c_amount, c_status = 'approved') AS a_revenue,\n\
         \x20       sumIf(c_payout, c_status = 'approved') AS a_payout\n\
         \x20   FROM\n    (\n\
         \x20       SELECT\n\
         \x20           conversion_id,\n\
         \x20           any(ts) AS c_ts,\n\
         \x20           any(partner_id) AS c_partner_id,\n\
         \x20           any(offer_id) AS c_offer_id,\n\
         \x20           any(link_id) AS c_link_id,\n\
         \x20           any(click_id) AS c_click_id,\n\
         \x20           argMax(status, version) AS c_status,\n\
         \x20           toInt64(toDecimal128(argMax(amount, version), 4) * 10000) AS c_amount,\n\
         \x20           toInt64(toDecimal128(argMax(payout, version), 4) * 10000) AS c_payout\n\
         \x20       FROM {db}.conversions\n\
         \x20       WHERE {conv_where}\n\
         \x20       GROUP BY conversion_id\n\
         \x20   ) AS conv\n{join}\
         \x20   WHERE {outer}\n",
        keys = key_columns(req, Side::Conversions),
        outer = outer_filters.join(" AND "),
    );
    if !req.group_by.is_empty() {
        sql.push_str(&format!("    GROUP BY {}\n", key_aliases(&req.group_by)));
    }
    sql
}

/// `partner_id IN (...)` and the like, for the id filters given.
fn id_filters(req: &StatsRequest) -> Vec<String> {
    let f = &req.filters;
    [
        ("partner_id", &f.partners),
        ("offer_id", &f.offers),
        ("link_id", &f.links),
    ]
    .into_iter()
    .filter(|(_, ids)| !ids.is_empty())
    .map(|(column, ids)| {
        let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
        format!("{column} IN ({})", ids.join(", "))
    })
    .collect()
}

/// ` AND a AND b`, or nothing.
fn and_all(filters: &[String]) -> String {
    filters.iter().map(|f| format!(" AND {f}")).collect()
}

/// The `clicks` column of a key that is an attribute (ids and click
/// attributes), `None` for times.
fn click_column(d: Dimension) -> Option<&'static str> {
    Some(match d {
        Dimension::Partner => "partner_id",
        Dimension::Offer => "offer_id",
        Dimension::Link => "link_id",
        Dimension::Country => "country",
        Dimension::Device => "device",
        Dimension::Os => "os",
        Dimension::Browser => "browser",
        Dimension::Sub(n) => ["sub1", "sub2", "sub3", "sub4", "sub5"][usize::from(n - 1)],
        Dimension::Day | Dimension::Hour | Dimension::Week | Dimension::Month => return None,
    })
}

/// `expr AS k_name,` lines for every key of `req` on `side`.
fn key_columns(req: &StatsRequest, side: Side) -> String {
    let tz = quote(req.tz.name());
    req.group_by
        .iter()
        .map(|d| format!("        {} AS k_{},\n", key_expr(*d, side, &tz), d.name()))
        .collect()
}

/// A key's expression on `side`; `tz` is the quoted zone.
fn key_expr(d: Dimension, side: Side, tz: &str) -> String {
    let time = match side {
        Side::Rollup => "bucket",
        Side::Clicks => "ts",
        Side::Conversions => "c_ts",
    };
    let function = match d {
        Dimension::Day => "toDate",
        Dimension::Hour => "toStartOfHour",
        Dimension::Week => "toMonday",
        Dimension::Month => "toStartOfMonth",
        _ => {
            // An attribute: the conversions side reads it as c_<column>,
            // from its own row (ids) or its click's (the rest).
            let column = click_column(d).expect("every non-time key has a column");
            return match side {
                Side::Conversions => format!("c_{column}"),
                _ => column.to_string(),
            };
        }
    };
    format!("{function}({time}, {tz})")
}

/// A key as the text the answer decodes: ids and dates as ClickHouse
/// prints them, an hour as Unix seconds (shown in the zone by Rust).
fn key_as_text(d: Dimension) -> String {
    let alias = format!("k_{}", d.name());
    match d {
        Dimension::Hour => format!("toString(toUInt32({alias}))"),
        Dimension::Partner
        | Dimension::Offer
        | Dimension::Link
        | Dimension::Day
        | Dimension::Week
        | Dimension::Month => format!("toString({alias})"),
        _ => alias,
    }
}

/// `k_a, k_b`.
fn key_aliases(keys: &[Dimension]) -> String {
    let aliases: Vec<String> = keys.iter().map(|d| format!("k_{}", d.name())).collect();
    aliases.join(", ")
}

/// A ClickHouse string literal.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `'a', 'b'`.
fn quoted(values: &[String]) -> String {
    let q: Vec<String> = values.iter().map(|v| quote(v)).collect();
    q.join(", ")
}

#[cfg(test)]
#[path = "query_tests.rs"]
mod tests;
