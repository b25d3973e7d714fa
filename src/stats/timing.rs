//! `GET /api/v1/stats/conversion-times`: how long after their click
//! conversions came, per partner and offer. Everflow's fraud signal: most
//! sales within seconds of the click (click injection, cookie stuffing) or
//! most of them weeks later (a partner harvesting organic buyers) both
//! mean something, and a median hides either.
//!
//! Pure: the query string read and checked, and the SQL built. Each
//! conversion counts once, in its latest state (argMax by version, as the
//! stats do), at its own time, with the seconds from its click's time
//! (`ts - click_ts`; a click a few seconds later on another node's clock
//! counts as 0). Conversions without a click (`invalid_click_id`) have no
//! such time and are left out.

use super::params::{Params, Range};
use super::request::list;
use crate::config::StatsConfig;
use crate::validation::FieldError;

/// The buckets' names and their lower bounds in seconds; each ends where
/// the next begins, the last is open.
pub const BUCKETS: &[(&str, u64)] = &[
    ("under_10s", 0),
    ("10s_to_1m", 10),
    ("1m_to_10m", 60),
    ("10m_to_1h", 600),
    ("1h_to_1d", 3_600),
    ("1d_to_7d", 86_400),
    ("7d_to_30d", 604_800),
    ("30d_and_over", 2_592_000),
];

/// What rows are per.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimingKey {
    /// `partner_id`.
    Partner,
    /// `offer_id`.
    Offer,
}

impl TimingKey {
    /// Its name in `group_by` and the column it reads.
    pub fn name(self) -> &'static str {
        match self {
            TimingKey::Partner => "partner",
            TimingKey::Offer => "offer",
        }
    }

    /// The column holding it.
    pub fn column(self) -> &'static str {
        match self {
            TimingKey::Partner => "partner_id",
            TimingKey::Offer => "offer_id",
        }
    }
}

/// The latest statuses a conversion may have to be counted.
pub const STATUSES: &[&str] = &["approved", "pending", "rejected", "reversed"];

/// Statuses counted when `status` is not given: those that credited a
/// partner at some point.
pub const DEFAULT_STATUSES: &[&str] = &["approved", "pending", "reversed"];

/// Parameters `GET /api/v1/stats/conversion-times` knows.
const PARAMETERS: &[&str] = &[
    "group_by",
    "partner_id",
    "offer_id",
    "status",
    "from",
    "to",
    "tz",
    "limit",
];

/// A checked request.
#[derive(Debug, Clone, PartialEq)]
pub struct TimingRequest {
    /// Row keys, in the order given (default partner then offer; none: one
    /// row of totals).
    pub group_by: Vec<TimingKey>,
    /// Partners to keep (none: all).
    pub partners: Vec<u64>,
    /// Offers to keep (none: all).
    pub offers: Vec<u64>,
    /// Latest statuses counted.
    pub statuses: Vec<&'static str>,
    /// First conversion instant, inclusive, Unix seconds.
    pub from: i64,
    /// End, exclusive.
    pub to: i64,
    /// At most this many rows (most conversions first).
    pub limit: u64,
}

impl TimingRequest {
    /// Reads `query` under the stats `limits`; `now` (Unix seconds) sets
    /// the default range, the last 30 days in `tz` as the stats have it.
    pub fn parse(query: &str, limits: &StatsConfig, now: i64) -> Result<TimingRequest, FieldError> {
        let params = Params::read(query, PARAMETERS, "conversion-times")?;
        let get = |k: &str| params.get(k);
        let group_by = list(
            "group_by",
            Some(get("group_by").unwrap_or("partner,offer")),
            |s| match s {
                "partner" => Ok(TimingKey::Partner),
                "offer" => Ok(TimingKey::Offer),
                _ => Err(format!("unknown group key {s:?} (known: partner, offer)")),
            },
        )?;
        let id = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("{s:?} is not a whole number"))
        };
        let partners = list("partner_id", get("partner_id"), id)?;
        let offers = list("offer_id", get("offer_id"), id)?;
        let statuses = match get("status") {
            None => DEFAULT_STATUSES.to_vec(),
            Some(v) => {
                let named = list("status", Some(v), |s| {
                    STATUSES.iter().copied().find(|k| *k == s).ok_or_else(|| {
                        format!("unknown status {s:?} (known: {})", STATUSES.join(", "))
                    })
                })?;
                if named.is_empty() {
                    return Err(FieldError::new("status", "must name at least one status"));
                }
                named
            }
        };

        let Range { from, to, .. } = params.range(now, Some(limits.max_range_days))?;
        let limit = match get("limit") {
            None => limits.default_limit,
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (1..=limits.max_limit).contains(&n) => n,
                _ => {
                    return Err(FieldError::new(
                        "limit",
                        format!("must be a whole number from 1 to {}", limits.max_limit),
                    ))
                }
            },
        };
        Ok(TimingRequest {
            group_by,
            partners,
            offers,
            statuses,
            from,
            to,
            limit,
        })
    }

    /// The query answering this request, in `database`, stopped by
    /// ClickHouse after `timeout_secs`. Its rows: the keys as text, the
    /// count, one count per bucket, then the 10th, 50th and 90th
    /// percentiles in whole seconds (exact); one row more than `limit`
    /// tells that rows were left off.
    pub fn sql(&self, database: &str, timeout_secs: u64) -> String {
        let mut filters = vec![
            format!(
                "ts >= toDateTime({}) AND ts < toDateTime({})",
                self.from, self.to
            ),
            "click_ts > toDateTime(0)".to_string(),
        ];
        if !self.partners.is_empty() {
            filters.push(format!("partner_id IN ({})", join_ids(&self.partners)));
        }
        if !self.offers.is_empty() {
            filters.push(format!("offer_id IN ({})", join_ids(&self.offers)));
        }
        let keys: Vec<String> = self
            .group_by
            .iter()
            .map(|k| format!("toString(t_{})", k.column()))
            .collect();
        let buckets: Vec<String> = BUCKETS
            .iter()
            .enumerate()
            .map(|(i, (_, low))| match BUCKETS.get(i + 1) {
                Some((_, high)) => format!("countIf(t_secs >= {low} AND t_secs < {high})"),
                None => format!("countIf(t_secs >= {low})"),
            })
            .collect();
        let statuses: Vec<String> = self.statuses.iter().map(|s| format!("'{s}'")).collect();
        let group = if self.group_by.is_empty() {
            String::new()
        } else {
            let cols: Vec<String> = self
                .group_by
                .iter()
                .map(|k| format!("t_{}", k.column()))
                .collect();
            format!("GROUP BY {}\n", cols.join(", "))
        };
        let order_keys: String = self
            .group_by
            .iter()
            .map(|k| format!(", t_{}", k.column()))
            .collect();
        format!(
            "SELECT [{keys}] AS keys, count() AS conversions, [{buckets}] AS buckets,\n\
             \x20   toUInt64(quantileExact(0.1)(t_secs)) AS p10,\n\
             \x20   toUInt64(quantileExact(0.5)(t_secs)) AS p50,\n\
             \x20   toUInt64(quantileExact(0.9)(t_secs)) AS p90\n\
             FROM\n(\n\
             \x20   SELECT\n\
             \x20       conversion_id,\n\
             \x20       any(partner_id) AS t_partner_id,\n\
             \x20       any(offer_id) AS t_offer_id,\n\
             \x20       argMax(status, version) AS t_status,\n\
             \x20       toUInt64(greatest(toInt64(any(ts)) - toInt64(any(click_ts)), 0)) AS t_secs\n\
             \x20   FROM {database}.conversions\n\
             \x20   WHERE {filters}\n\
             \x20   GROUP BY conversion_id\n\
             ) AS t\n\
             WHERE t_status IN ({statuses})\n\
             {group}\
             ORDER BY conversions DESC{order_keys}\n\
             LIMIT {limit}\n\
             SETTINGS max_execution_time = {timeout_secs}",
            keys = keys.join(", "),
            buckets = buckets.join(", "),
            filters = filters.join(" AND "),
            statuses = statuses.join(", "),
            limit = self.limit + 1,
        )
    }
}

/// Ids as a SQL list.
fn join_ids(ids: &[u64]) -> String {
    ids.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> StatsConfig {
        StatsConfig::default()
    }

    /// 2026-03-01T00:00:00Z.
    const NOW: i64 = 1_772_323_200;

    #[test]
    fn bad_input_names_its_parameter() {
        let cases: &[(&str, &str)] = &[
            ("group_by=day", "group_by"),
            ("group_by=partner,partner", "group_by"),
            ("partner_id=x", "partner_id"),
            ("offer_id=-1", "offer_id"),
            ("status=duplicate", "status"),
            ("status=", "status"),
            ("tz=Mars/Olympus", "tz"),
            ("from=2026-02-10&to=2026-02-01", "from"),
            ("from=yesterday", "from"),
            ("to=2026-13-01", "to"),
            ("from=2020-01-01&to=2026-01-01", "to"),
            ("limit=0", "limit"),
            ("metric=clicks", "metric"),
            ("tz=UTC&tz=UTC", "tz"),
        ];
        for (query, field) in cases {
            let e = TimingRequest::parse(query, &limits(), NOW).expect_err(query);
            assert_eq!(e.field, *field, "{query}: {}", e.message);
        }
    }

    #[test]
    fn defaults_are_partner_and_offer_over_the_last_thirty_days() {
        let r = TimingRequest::parse("", &limits(), NOW).unwrap();
        assert_eq!(r.group_by, vec![TimingKey::Partner, TimingKey::Offer]);
        assert_eq!(r.statuses, DEFAULT_STATUSES.to_vec());
        assert_eq!(r.to, NOW + 86_400, "today included");
        assert_eq!(r.from, NOW + 86_400 - 30 * 86_400);
        let r = TimingRequest::parse(
            "group_by=&tz=Asia/Kathmandu&from=2026-02-01&to=2026-02-01",
            &limits(),
            NOW,
        )
        .unwrap();
        assert!(r.group_by.is_empty());
        // Midnight in Kathmandu is 18:15 UTC the day before.
        assert_eq!(r.from, 1_769_904_000 - 5 * 3600 - 45 * 60);
        assert_eq!(r.to - r.from, 86_400);
    }

    #[test]
    fn buckets_cover_every_second_once() {
        for w in BUCKETS.windows(2) {
            assert!(w[0].1 < w[1].1, "{:?} then {:?}", w[0], w[1]);
        }
        assert_eq!(BUCKETS[0].1, 0);
        let sql = TimingRequest::parse("partner_id=3,4&status=rejected", &limits(), NOW)
            .unwrap()
            .sql("db", 9);
        assert!(
            sql.contains("countIf(t_secs >= 0 AND t_secs < 10)"),
            "{sql}"
        );
        assert!(sql.contains("countIf(t_secs >= 2592000)"), "{sql}");
        assert!(sql.contains("partner_id IN (3, 4)"), "{sql}");
        assert!(sql.contains("t_status IN ('rejected')"), "{sql}");
        assert!(sql.contains("max_execution_time = 9"), "{sql}");
    }
}
