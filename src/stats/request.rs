//! A stats request, read from the query string and checked, pure: every
//! bad value is a [`FieldError`] naming the parameter.
//!
//! Parameters: `group_by`, `metrics`, `partner_id`, `offer_id`, `link_id`,
//! `country` (filters; each a comma list), `from`, `to`, `tz`, `sort`,
//! `limit`, `cursor`, `source`, `format`. Any other parameter, or one given
//! twice, is refused: a misspelt filter must not silently widen the answer.

use chrono_tz::Tz;
use sha2::{Digest, Sha256};

use super::cursor;
use super::params::{Params, Range};
use crate::config::StatsConfig;
use crate::validation::FieldError;

/// What rows can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    /// `partner_id`.
    Partner,
    /// `offer_id`.
    Offer,
    /// `link_id`.
    Link,
    /// The local date in `tz`.
    Day,
    /// The local hour in `tz`.
    Hour,
    /// The local week in `tz`, named by its Monday.
    Week,
    /// The local month in `tz`.
    Month,
    /// The click's country.
    Country,
    /// The click's device type.
    Device,
    /// The click's operating system.
    Os,
    /// The click's browser.
    Browser,
    /// The click's sub-id 1 to 5.
    Sub(u8),
}

impl Dimension {
    /// Every dimension, in the order the documentation lists them.
    pub const ALL: [Dimension; 16] = [
        Dimension::Partner,
        Dimension::Offer,
        Dimension::Link,
        Dimension::Day,
        Dimension::Hour,
        Dimension::Week,
        Dimension::Month,
        Dimension::Country,
        Dimension::Device,
        Dimension::Os,
        Dimension::Browser,
        Dimension::Sub(1),
        Dimension::Sub(2),
        Dimension::Sub(3),
        Dimension::Sub(4),
        Dimension::Sub(5),
    ];

    /// Its `group_by` value.
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Partner => "partner",
            Dimension::Offer => "offer",
            Dimension::Link => "link",
            Dimension::Day => "day",
            Dimension::Hour => "hour",
            Dimension::Week => "week",
            Dimension::Month => "month",
            Dimension::Country => "country",
            Dimension::Device => "device",
            Dimension::Os => "os",
            Dimension::Browser => "browser",
            Dimension::Sub(n) => ["sub1", "sub2", "sub3", "sub4", "sub5"][usize::from(n - 1)],
        }
    }

    /// Its field in an answer row (ids keep their `_id`).
    pub fn field(self) -> &'static str {
        match self {
            Dimension::Partner => "partner_id",
            Dimension::Offer => "offer_id",
            Dimension::Link => "link_id",
            other => other.name(),
        }
    }

    /// Whether a rollup keeps it (`clicks_15m` keeps every key but
    /// `sub2`..`sub5`; `clicks_15m_links` ids and times only).
    pub fn in_rollup(self) -> bool {
        !matches!(self, Dimension::Sub(2..=5))
    }

    /// Whether it is an id (partner, offer, link), which a conversion
    /// carries itself.
    pub fn is_id(self) -> bool {
        matches!(
            self,
            Dimension::Partner | Dimension::Offer | Dimension::Link
        )
    }

    /// Whether it is a time of the row rather than an attribute.
    pub fn is_time(self) -> bool {
        matches!(
            self,
            Dimension::Day | Dimension::Hour | Dimension::Week | Dimension::Month
        )
    }

    fn parse(s: &str) -> Option<Dimension> {
        Dimension::ALL
            .into_iter()
            .find(|d| d.name() == s || d.field() == s)
    }
}

/// What is counted per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Billable clicks: neither bot nor rate limited.
    Clicks,
    /// Distinct visitors among billable clicks.
    UniqueClicks,
    /// Clicks flagged as bots.
    BotClicks,
    /// Clicks over their client's rate (not bots).
    RateLimitedClicks,
    /// Conversions whose latest state is approved.
    Conversions,
    /// ... pending.
    Pending,
    /// ... rejected.
    Rejected,
    /// ... reversed.
    Reversed,
    /// Sum of approved conversions' amounts.
    Revenue,
    /// Sum of approved conversions' payouts.
    Payout,
    /// conversions / clicks.
    Cr,
    /// payout / clicks.
    Epc,
}

impl Metric {
    /// Every metric, in answer order.
    pub const ALL: [Metric; 12] = [
        Metric::Clicks,
        Metric::UniqueClicks,
        Metric::BotClicks,
        Metric::RateLimitedClicks,
        Metric::Conversions,
        Metric::Pending,
        Metric::Rejected,
        Metric::Reversed,
        Metric::Revenue,
        Metric::Payout,
        Metric::Cr,
        Metric::Epc,
    ];

    /// Its name in `metrics`, `sort` and answer rows.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Clicks => "clicks",
            Metric::UniqueClicks => "unique_clicks",
            Metric::BotClicks => "bot_clicks",
            Metric::RateLimitedClicks => "rate_limited_clicks",
            Metric::Conversions => "conversions",
            Metric::Pending => "pending",
            Metric::Rejected => "rejected",
            Metric::Reversed => "reversed",
            Metric::Revenue => "revenue",
            Metric::Payout => "payout",
            Metric::Cr => "cr",
            Metric::Epc => "epc",
        }
    }

    fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// What rows are ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// A metric.
    Metric(Metric),
    /// A grouped dimension.
    Dimension(Dimension),
}

/// The order of the rows: one key, then every group key ascending, so the
/// order is total and pages never overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    /// What is compared first.
    pub key: SortKey,
    /// Largest first.
    pub descending: bool,
}

/// Where the click counts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The rollup when it can answer, else the raw table.
    Auto,
    /// The rollup, or `400` when it cannot answer.
    Rollup,
    /// The raw `clicks` table.
    Raw,
}

/// The answer's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"rows": [...]}`.
    Json,
    /// A header line and a line per row.
    Csv,
}

/// Rows kept: each list empty means any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// `partner_id` in these.
    pub partners: Vec<u64>,
    /// `offer_id` in these.
    pub offers: Vec<u64>,
    /// `link_id` in these.
    pub links: Vec<u64>,
    /// The click's country in these (upper-case ASCII letters and digits).
    pub countries: Vec<String>,
}

/// A checked stats request.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsRequest {
    /// Group keys, in the order asked; each at most once.
    pub group_by: Vec<Dimension>,
    /// Metrics answered, in answer order.
    pub metrics: Vec<Metric>,
    /// Filters.
    pub filters: Filters,
    /// First instant, Unix seconds, inclusive.
    pub from: i64,
    /// Last instant, Unix seconds, exclusive; `from <= to`.
    pub to: i64,
    /// The zone of dates given and of day, hour, week and month keys.
    pub tz: Tz,
    /// The order, if asked; else the group keys ascending.
    pub sort: Option<Sort>,
    /// Rows per page.
    pub limit: u64,
    /// Rows skipped (from the cursor).
    pub offset: u64,
    /// Rollup, raw or either.
    pub source: Source,
    /// JSON or CSV; `None` leaves it to the `Accept` header.
    pub format: Option<Format>,
}

/// Every parameter the stats API reads.
const PARAMETERS: [&str; 14] = [
    "group_by",
    "metrics",
    "partner_id",
    "offer_id",
    "link_id",
    "country",
    "from",
    "to",
    "tz",
    "sort",
    "limit",
    "cursor",
    "source",
    "format",
];

impl StatsRequest {
    /// Reads `query` (the raw query string) under `limits`; `now` (Unix
    /// seconds) sets the default range: the last 30 days in `tz`, today
    /// included.
    pub fn parse(query: &str, limits: &StatsConfig, now: i64) -> Result<StatsRequest, FieldError> {
        let params = Params::read(query, &PARAMETERS, "stats")?;
        let get = |k: &str| params.get(k);
        let Range { tz, from, to } = params.range(now, Some(limits.max_range_days))?;
        let group_by = list("group_by", get("group_by"), |s| {
            Dimension::parse(s).ok_or_else(|| {
                let names: Vec<&str> = Dimension::ALL.iter().map(|d| d.name()).collect();
                format!("unknown group key {s:?} (known: {})", names.join(", "))
            })
        })?;
        let metrics = match get("metrics") {
            None => Metric::ALL.to_vec(),
            Some(v) => {
                let mut m = list("metrics", Some(v), |s| {
                    Metric::parse(s).ok_or_else(|| {
                        let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
                        format!("unknown metric {s:?} (known: {})", names.join(", "))
                    })
                })?;
                if m.is_empty() {
                    return Err(FieldError::new("metrics", "must name at least one metric"));
                }
                m.sort_by_key(|x| Metric::ALL.iter().position(|a| a == x));
                m
            }
        };
        let id = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("{s:?} is not a whole number"))
        };
        let filters = Filters {
            partners: list("partner_id", get("partner_id"), id)?,
            offers: list("offer_id", get("offer_id"), id)?,
            links: list("link_id", get("link_id"), id)?,
            countries: list("country", get("country"), |s| {
                if (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    Ok(s.to_ascii_uppercase())
                } else {
                    Err(format!(
                        "{s:?} is not a country code (letters and digits, at most 8)"
                    ))
                }
            })?,
        };

        let sort = get("sort").map(|s| parse_sort(s, &group_by)).transpose()?;
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
        let source = match get("source").unwrap_or("auto") {
            "auto" => Source::Auto,
            "rollup" => Source::Rollup,
            "raw" => Source::Raw,
            _ => return Err(FieldError::new("source", "must be auto, rollup or raw")),
        };
        let format = match get("format") {
            None => None,
            Some("json") => Some(Format::Json),
            Some("csv") => Some(Format::Csv),
            Some(_) => return Err(FieldError::new("format", "must be json or csv")),
        };
        let mut req = StatsRequest {
            group_by,
            metrics,
            filters,
            from,
            to,
            tz,
            sort,
            limit,
            offset: 0,
            source,
            format,
        };
        if let Some(c) = get("cursor") {
            req.offset = cursor::decode(c, req.fingerprint()).ok_or_else(|| {
                FieldError::new(
                    "cursor",
                    "must be a next_cursor value from an earlier page of the same query",
                )
            })?;
        }
        Ok(req)
    }

    /// What makes two requests the same query for paging: everything that
    /// decides the rows and their order (not the page size, the metrics
    /// shown, the source or the format).
    pub fn fingerprint(&self) -> [u8; 8] {
        let canonical = format!(
            "{:?}|{:?}|{}|{}|{}|{:?}",
            self.group_by,
            self.filters,
            self.from,
            self.to,
            self.tz.name(),
            self.sort
        );
        let digest = Sha256::digest(canonical.as_bytes());
        let mut out = [0u8; 8];
        out.copy_from_slice(&digest[..8]);
        out
    }

    /// Whether metric `m` must be computed: shown, or sorted by.
    pub fn needs(&self, m: Metric) -> bool {
        self.metrics.contains(&m) || self.sort.is_some_and(|s| s.key == SortKey::Metric(m))
    }

    /// The cursor of the page after this one's `rows_seen` rows.
    pub fn next_cursor(&self, rows_seen: u64) -> String {
        cursor::encode(self.offset + rows_seen, self.fingerprint())
    }
}

/// `[-]name`: a metric, or a dimension among `group_by`.
fn parse_sort(s: &str, group_by: &[Dimension]) -> Result<Sort, FieldError> {
    let (descending, name) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let key = if let Some(m) = Metric::parse(name) {
        SortKey::Metric(m)
    } else if let Some(d) = Dimension::parse(name).filter(|d| group_by.contains(d)) {
        SortKey::Dimension(d)
    } else {
        return Err(FieldError::new(
            "sort",
            format!("{name:?} is neither a metric nor a group_by key of this request"),
        ));
    };
    Ok(Sort { key, descending })
}

/// A comma list of `field`, each item read by `item`; no item twice.
pub(crate) fn list<T: PartialEq>(
    field: &str,
    value: Option<&str>,
    item: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, FieldError> {
    let mut out = Vec::new();
    for s in value.unwrap_or("").split(',').map(str::trim) {
        if s.is_empty() {
            continue;
        }
        let v = item(s).map_err(|m| FieldError::new(field, m))?;
        if out.contains(&v) {
            return Err(FieldError::new(field, format!("names {s:?} twice")));
        }
        out.push(v);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
