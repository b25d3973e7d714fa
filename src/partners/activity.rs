//! The facts partner health is judged on, read from ClickHouse: each
//! partner's billable clicks and counted conversions (see
//! `src/sql/partner_clicks.sql` and `src/sql/partner_conversions.sql`).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use clickhouse::Row;
use serde::Deserialize;

use rust_decimal::Decimal;

use super::health::{judge, Activity, HealthReason, HealthStatus};

/// The clicks query, compiled in.
pub const CLICKS_SQL: &str = include_str!("../sql/partner_clicks.sql");
/// The conversions query, compiled in.
pub const CONVERSIONS_SQL: &str = include_str!("../sql/partner_conversions.sql");

const DAY: u32 = 86_400;

/// One partner's activity; zero and `None` where it has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartnerActivity {
    /// Unix seconds of its last billable click.
    pub last_click_s: Option<u32>,
    /// Billable clicks in the last 30 days.
    pub clicks_30d: u64,
    /// Billable clicks in the 30 days before those.
    pub clicks_prev_30d: u64,
    /// Unix seconds of its last approved or pending conversion.
    pub last_conversion_s: Option<u32>,
    /// Approved conversions in the last 30 days, in their latest state.
    pub conversions_30d: u64,
    /// Their payout, summed in the offers' payout currency.
    pub payout_30d: Decimal,
}

impl PartnerActivity {
    /// The health of a partner created at `created_at` (RFC 3339) with
    /// this activity: [`judge`] over these facts.
    pub fn judge(
        &self,
        created_at: &str,
        now_s: u32,
        inactive_days: u32,
    ) -> (HealthStatus, HealthReason) {
        judge(
            &Activity {
                created_s: unix_seconds(created_at),
                last_click_s: self.last_click_s,
                clicks_30d: self.clicks_30d,
                clicks_prev_30d: self.clicks_prev_30d,
            },
            now_s,
            inactive_days,
        )
    }
}

/// Unix seconds of an RFC 3339 time; 0 when it does not parse (then a
/// partner counts as old, never as new).
pub fn unix_seconds(rfc3339: &str) -> u32 {
    humantime::parse_rfc3339_weak(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs().min(u64::from(u32::MAX)) as u32)
}

/// Now, in Unix seconds.
pub fn now_s() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

#[derive(Debug, Row, Deserialize)]
struct ClickFacts {
    partner_id: u64,
    last_click: u32,
    clicks_30d: u64,
    clicks_prev_30d: u64,
}

#[derive(Debug, Row, Deserialize)]
struct ConversionFacts {
    partner_id: u64,
    last_conversion: u32,
    conversions_30d: u64,
    payout_30d: i64,
}

/// Reads partner activity from one database.
#[derive(Clone)]
pub struct ActivityReader {
    client: clickhouse::Client,
    clicks_sql: String,
    conversions_sql: String,
}

impl ActivityReader {
    /// A reader of `database` through `client`.
    pub fn new(client: clickhouse::Client, database: &str) -> ActivityReader {
        let prepare = |sql: &str| crate::schema::query_text(sql, database);
        ActivityReader {
            client,
            clicks_sql: prepare(CLICKS_SQL),
            conversions_sql: prepare(CONVERSIONS_SQL),
        }
    }

    /// Every partner's activity as of `now_s`, by partner id (partners with
    /// none are absent).
    pub async fn read(
        &self,
        now_s: u32,
    ) -> clickhouse::error::Result<HashMap<u64, PartnerActivity>> {
        let month_ago = now_s.saturating_sub(30 * DAY);
        let two_months_ago = now_s.saturating_sub(60 * DAY);
        let clicks = self
            .client
            .query(&self.clicks_sql)
            .bind(month_ago)
            .bind(two_months_ago)
            .bind(month_ago)
            .fetch_all::<ClickFacts>()
            .await?;
        let conversions = self
            .client
            .query(&self.conversions_sql)
            .bind(month_ago)
            .bind(month_ago)
            .fetch_all::<ConversionFacts>()
            .await?;
        let mut out: HashMap<u64, PartnerActivity> = HashMap::new();
        for c in clicks {
            let a = out.entry(c.partner_id).or_default();
            a.last_click_s = Some(c.last_click);
            a.clicks_30d = c.clicks_30d;
            a.clicks_prev_30d = c.clicks_prev_30d;
        }
        for c in conversions {
            let a = out.entry(c.partner_id).or_default();
            a.last_conversion_s = Some(c.last_conversion);
            a.conversions_30d = c.conversions_30d;
            a.payout_30d = Decimal::new(c.payout_30d, 4);
        }
        Ok(out)
    }
}
