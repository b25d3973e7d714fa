//! `GET /api/v1/stats`: clicks and conversions grouped, filtered, sorted
//! and paged, from the rollup where it can answer and from the raw tables
//! where it cannot.
//!
//! Bottom up: [`time`] (zones, local midnights), [`cursor`] (the opaque
//! page cursor), [`request`] (the query string, checked), [`query`] (the
//! SQL, pure), [`render`] (JSON and CSV), and here the run: build, ask
//! ClickHouse under a timeout, decode.
//!
//! # Exact in every time zone
//!
//! Two rollups hold click counts per 15-minute UTC bucket:
//! `clicks_15m_links` by partner, offer and link, and `clicks_15m` by those
//! and the click's country, device, os, browser and sub1. Every UTC offset
//! in use is a whole number of quarter hours (Kathmandu +05:45, St John's
//! −03:30, the daylight saving changes too), so every local midnight and
//! every local hour start is a bucket boundary: a day, hour, week or month
//! in any zone is a union of whole buckets, and grouping the buckets by
//! `toDate(bucket, tz)` (and `toStartOfHour`, `toMonday`,
//! `toStartOfMonth`) gives the same numbers as grouping the raw clicks by
//! their own times. A request's clicks are answered from the narrowest
//! rollup holding its keys and filters, when its bounds are whole buckets
//! and it does not need distinct visitors; else from `clicks`.
//!
//! # Distinct visitors are counted raw
//!
//! `unique_clicks` is exact: distinct `visitor` values. A rollup that could
//! merge them over any union of buckets must keep every visitor of every
//! bucket, which is about one entry per click; merging such
//! `uniqExact` states was measured 1.5 to 3 times slower than counting
//! the clicks themselves (README, "Stats"). So they come from `clicks`,
//! and only when shown or sorted by: `metrics` without `unique_clicks`
//! lets a rollup answer.
//!
//! # Conversions from their rollup, in their latest state
//!
//! A conversion changes state by new versions of its row (pending →
//! approved → reversed). A rollup fed by a materialized view sees each
//! inserted row alone, so every version carries the state it replaces
//! (`prev_status`, `prev_amount`, `prev_payout`, filled by the admin API
//! from the version it changes), and `conversions_15m` adds the new state
//! and takes the old one back, per 15-minute bucket of the conversion's
//! own `ts`, partner, offer and link: summed over any union of buckets,
//! each conversion counts once, in its latest state. That holds while
//! each `(conversion_id, version)` is inserted once, which the shipper
//! sees to (`events::shipper`, README "Stats" for the residual). A request
//! whose keys and filters are partners, offers, links and times, with
//! whole-bucket bounds, reads it; any other reads the `conversions` table
//! itself: each conversion's latest version by `argMax(..., version)`,
//! counted by that status, joined to its click (by id, only the
//! conversions' clicks) for the click's attributes.
//!
//! # Metrics
//!
//! `clicks`: billable clicks (neither bot nor rate limited);
//! `unique_clicks`: distinct `visitor` values among them (0, unknown, not
//! counted); `bot_clicks`; `rate_limited_clicks` (not bots); `conversions`,
//! `pending`, `rejected`, `reversed`: conversions by their latest status,
//! at the conversion's time (duplicates are none of them); `revenue` and
//! `payout`: sums of approved conversions' `amount` and `payout`, exact
//! decimals; `cr` = conversions / clicks and `epc` = payout / clicks, each
//! rounded half away from zero to 4 places, null when there are no clicks.

pub mod cursor;
pub mod params;
pub mod query;
pub mod render;
pub mod request;
pub mod time;
pub mod timing;

use std::time::Duration;

use clickhouse::Row;
use serde::Deserialize;

use crate::config::StatsConfig;
use crate::validation::FieldError;
pub use query::{ConversionsPlan, Plan};
pub use request::StatsRequest;
pub use timing::TimingRequest;

/// Why a stats request was not answered.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// A parameter is wrong: `400`.
    #[error("{0}")]
    Invalid(#[from] FieldError),
    /// ClickHouse cannot be reached, or did not answer in time: `503`.
    #[error("{0}")]
    Unavailable(String),
    /// ClickHouse refused the query: a bug of this build, `500`.
    #[error("{0}")]
    Failed(String),
}

/// One row of the answer as ClickHouse sends it: the group keys as text,
/// then every metric; money, `cr` and `epc` in ten-thousandths.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct StatsRow {
    /// One text per group key, in `group_by` order.
    pub keys: Vec<String>,
    /// Billable clicks.
    pub clicks: u64,
    /// Distinct visitors among billable clicks.
    pub unique_clicks: u64,
    /// Bot clicks.
    pub bot_clicks: u64,
    /// Rate-limited clicks that are not bots.
    pub rate_limited_clicks: u64,
    /// Approved conversions.
    pub conversions: u64,
    /// Pending conversions.
    pub pending: u64,
    /// Rejected conversions.
    pub rejected: u64,
    /// Reversed conversions.
    pub reversed: u64,
    /// Approved amounts, ten-thousandths.
    pub revenue: i64,
    /// Approved payouts, ten-thousandths.
    pub payout: i64,
    /// conversions / clicks, ten-thousandths.
    pub cr: u64,
    /// payout / clicks, ten-thousandths of the money unit.
    pub epc: i64,
}

/// One row of `GET /api/v1/stats/conversion-times` as ClickHouse sends it.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct TimingRow {
    /// One text per group key, in `group_by` order.
    pub keys: Vec<String>,
    /// Conversions counted.
    pub conversions: u64,
    /// Conversions per bucket of [`timing::BUCKETS`], in its order.
    pub buckets: Vec<u64>,
    /// 10th percentile of the seconds from click to conversion.
    pub p10: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
}

/// One page of rows and how to get the next.
#[derive(Debug, Clone)]
pub struct StatsPage {
    /// The request answered.
    pub request: StatsRequest,
    /// Where the click counts came from.
    pub plan: Plan,
    /// Where the conversion counts came from.
    pub conversions_plan: ConversionsPlan,
    /// At most `limit` rows.
    pub rows: Vec<StatsRow>,
    /// The next page's cursor, when there is one.
    pub next_cursor: Option<String>,
}

/// Answers stats requests from one ClickHouse database.
pub struct Stats {
    /// Reads the tables; queries name the database themselves.
    client: clickhouse::Client,
    /// The database holding `clicks`, `clicks_15m` and `conversions`.
    database: String,
    /// Limits of every request.
    limits: StatsConfig,
}

impl Stats {
    /// Stats over `database` through `client`, held to `limits`.
    pub fn new(client: clickhouse::Client, database: &str, limits: StatsConfig) -> Stats {
        Stats {
            client,
            database: database.to_string(),
            limits,
        }
    }

    /// Reads and checks a raw query string; `now` is Unix seconds.
    pub fn parse(&self, query: &str, now: i64) -> Result<StatsRequest, StatsError> {
        Ok(StatsRequest::parse(query, &self.limits, now)?)
    }

    /// Answers one page of `request`.
    pub async fn answer(&self, request: StatsRequest) -> Result<StatsPage, StatsError> {
        let plan = query::plan(&request)?;
        let conversions_plan = query::conversions_plan(&request);
        let sql = query::build(
            &request,
            plan,
            conversions_plan,
            &self.database,
            self.limits.query_timeout_secs,
        );
        // ClickHouse stops the query at the timeout.
        let mut rows = self.fetch::<StatsRow>(&sql).await?;
        let next_cursor = (rows.len() as u64 > request.limit).then(|| {
            rows.truncate(request.limit as usize);
            request.next_cursor(request.limit)
        });
        Ok(StatsPage {
            request,
            plan,
            conversions_plan,
            rows,
            next_cursor,
        })
    }
}

impl Stats {
    /// Reads and checks a conversion-times query string; `now` is Unix
    /// seconds.
    pub fn parse_timing(&self, query: &str, now: i64) -> Result<TimingRequest, StatsError> {
        Ok(TimingRequest::parse(query, &self.limits, now)?)
    }

    /// The rows of `request`, and whether more were left off by its limit.
    pub async fn answer_timing(
        &self,
        request: &TimingRequest,
    ) -> Result<(Vec<TimingRow>, bool), StatsError> {
        let sql = request.sql(&self.database, self.limits.query_timeout_secs);
        let mut rows = self.fetch::<TimingRow>(&sql).await?;
        let more = rows.len() as u64 > request.limit;
        rows.truncate(request.limit as usize);
        Ok((rows, more))
    }

    /// The rows of `sql`, under the query timeout (and a little more for
    /// the network and the error itself).
    async fn fetch<T>(&self, sql: &str) -> Result<Vec<T>, StatsError>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        let wait = Duration::from_secs(self.limits.query_timeout_secs + 5);
        tokio::time::timeout(wait, self.client.query(sql).fetch_all::<T>())
            .await
            .map_err(|_| {
                StatsError::Unavailable(format!(
                    "clickhouse did not answer within {}s",
                    wait.as_secs()
                ))
            })?
            .map_err(classify)
    }
}

/// A ClickHouse failure as the API answers it: unreachable, timed out or
/// overloaded is `503` with the reason; anything else `500`.
fn classify(e: clickhouse::error::Error) -> StatsError {
    use clickhouse::error::Error as E;
    let text = e.to_string();
    match e {
        E::Network(_) | E::TimedOut => {
            StatsError::Unavailable(format!("clickhouse cannot be reached: {text}"))
        }
        // 159: TIMEOUT_EXCEEDED (max_execution_time); 202: too many
        // simultaneous queries; 241: memory limit exceeded.
        E::BadResponse(_)
            if ["Code: 159", "Code: 202", "Code: 241"]
                .iter()
                .any(|c| text.contains(c)) =>
        {
            StatsError::Unavailable(format!(
                "clickhouse could not answer this query now (stats.query_timeout_secs or server limits): {text}"
            ))
        }
        _ => StatsError::Failed(format!("clickhouse refused the stats query: {text}")),
    }
}
