//! The facts performance tiers are decided on, read from ClickHouse: each
//! partner's approved conversions, revenue and payout over each window the
//! rules use, or over a bonus's calendar period
//! (`src/sql/partner_standing.sql`).

use std::collections::HashMap;

use clickhouse::Row;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::tiers::{Facts, TierMetric};

/// The query, compiled in.
pub const STANDING_SQL: &str = include_str!("../sql/partner_standing.sql");

#[derive(Debug, Row, Deserialize)]
struct WindowRow {
    partner_id: u64,
    conversions: u64,
    revenue: i64,
    payout: i64,
}

/// One partner's results in one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowTotals {
    /// Approved conversions.
    pub conversions: u64,
    /// Their amounts.
    pub revenue: Decimal,
    /// Their payouts.
    pub payout: Decimal,
}

/// Every partner's results, by partner id, then by window in days.
#[derive(Debug, Clone, Default)]
pub struct Standings(pub HashMap<u64, HashMap<u32, WindowTotals>>);

/// One partner's view of [`Standings`]: zero where it has nothing.
pub struct PartnerFacts<'a>(pub Option<&'a HashMap<u32, WindowTotals>>);

impl Facts for PartnerFacts<'_> {
    fn value(&self, metric: TierMetric, window_days: u32) -> Decimal {
        let t = self
            .0
            .and_then(|w| w.get(&window_days))
            .copied()
            .unwrap_or_default();
        t.value(metric)
    }
}

impl WindowTotals {
    /// The figure `metric` counts.
    pub fn value(&self, metric: TierMetric) -> Decimal {
        match metric {
            TierMetric::Conversions => Decimal::from(self.conversions),
            TierMetric::Revenue => self.revenue,
            TierMetric::Payout => self.payout,
        }
    }
}

impl Standings {
    /// The facts of partner `id`.
    pub fn of(&self, id: u64) -> PartnerFacts<'_> {
        PartnerFacts(self.0.get(&id))
    }
}

/// Reads standings from one database.
#[derive(Clone)]
pub struct StandingReader {
    client: clickhouse::Client,
    sql: String,
}

impl StandingReader {
    /// A reader of `database` through `client`.
    pub fn new(client: clickhouse::Client, database: &str) -> StandingReader {
        StandingReader {
            client,
            sql: crate::schema::query_text(STANDING_SQL, database),
        }
    }

    /// Every partner's results over each of `windows` (days) ending at
    /// `at` (Unix seconds, exclusive).
    pub async fn read(&self, at: u32, windows: &[u32]) -> clickhouse::error::Result<Standings> {
        let mut out = Standings::default();
        for &w in windows {
            let from = at.saturating_sub(w.saturating_mul(86_400));
            for (partner, totals) in self.read_range(from, at).await? {
                out.0.entry(partner).or_default().insert(w, totals);
            }
        }
        Ok(out)
    }

    /// Every partner's results from `from` to `until` (Unix seconds,
    /// `until` exclusive), by partner id; partners with none are absent.
    pub async fn read_range(
        &self,
        from: u32,
        until: u32,
    ) -> clickhouse::error::Result<HashMap<u64, WindowTotals>> {
        let rows = self
            .client
            .query(&self.sql)
            .bind(from)
            .bind(until)
            .fetch_all::<WindowRow>()
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    r.partner_id,
                    WindowTotals {
                        conversions: r.conversions,
                        revenue: Decimal::new(r.revenue, 4),
                        payout: Decimal::new(r.payout, 4),
                    },
                )
            })
            .collect())
    }
}
