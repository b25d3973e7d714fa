//! The facts partner health is judged on, read from ClickHouse: each
//! partner's billable clicks and counted conversions (see
//! `src/sql/partner_clicks.sql` and `src/sql/partner_conversions.sql`).

use std::collections::HashMap;

use clickhouse::Row;
use serde::Deserialize;

use rust_decimal::Decimal;

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
        let prepare = |sql: &str| {
            sql.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
                .replace("{database}", database)
        };
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
