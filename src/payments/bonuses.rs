//! Bonuses in the payout ledger: the `partner_bonuses` table, read once
//! per bonus id (`src/sql/partner_bonuses.sql`) and as the decision's
//! earnings, the ids already recorded for some periods
//! (`src/sql/recorded_bonuses.sql`), and recording one. What earns a
//! bonus, and the Redis claim that keeps two rounds from both recording
//! it, are [`crate::partners::bonuses`] and [`crate::partners::award`].

use chrono::{DateTime, NaiveDate};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::balance::{Earning, Source, Standing};
use super::store::{day_of, PaymentStore, QUERY_TIMEOUT};
use crate::events::Money;

/// The bonuses query, compiled in.
pub const BONUSES_SQL: &str = include_str!("../sql/partner_bonuses.sql");
/// The recorded ids query, compiled in.
pub const RECORDED_BONUSES_SQL: &str = include_str!("../sql/recorded_bonuses.sql");

/// The table bonuses are recorded in.
pub const BONUSES_TABLE: &str = "partner_bonuses";

/// One `partner_bonuses` row, as inserted and as read (the columns in
/// table order).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct BonusRow {
    /// `{rule}:{partner}:{period start}`: the same whoever records it.
    pub bonus_id: String,
    /// Who earned it.
    pub partner_id: u64,
    /// The rule's name.
    pub rule: String,
    /// The period's first day, as days since 1970-01-01 (a `Date`).
    pub period_start: u16,
    /// What it pays.
    pub amount: Money,
    /// ISO 4217.
    pub currency: String,
    /// Why: the facts and the rule.
    pub reason: String,
    /// The instant the facts were counted up to, Unix seconds: the
    /// round's (`at`), or the period's end once it was over.
    pub earned_at: u32,
    /// When it was recorded, Unix seconds.
    pub ts: u32,
}

impl BonusRow {
    /// `period_start` as a date.
    pub fn period_start_date(&self) -> NaiveDate {
        day_of(self.period_start)
    }

    /// The UTC day it was earned: it is payable once that day is over.
    pub fn earned_on(&self) -> NaiveDate {
        // The last second counted is the day's, not `earned_at` itself
        // (exclusive): a period ending at midnight was earned the day
        // before.
        let last = i64::from(self.earned_at.saturating_sub(1));
        DateTime::from_timestamp(last, 0).map_or(NaiveDate::MIN, |t| t.date_naive())
    }

    /// The bonus as the money decision reads it, `from..to` (Unix
    /// seconds) being the report's range.
    pub fn earning(&self, from: u32, to: u32) -> Earning {
        let at = self.earned_at.saturating_sub(1);
        Earning {
            source: Source::Bonus,
            partner_id: self.partner_id,
            currency: self.currency.clone(),
            standing: Standing::Approved,
            day: self.earned_on(),
            hold_days: 0,
            in_range: from <= at && at < to,
            payout: self.amount.to_decimal(),
        }
    }
}

impl PaymentStore {
    /// Every partner's (or one partner's) bonuses, one row per bonus id,
    /// by period, then rule.
    pub async fn bonuses(&self, partner: Option<u64>) -> clickhouse::error::Result<Vec<BonusRow>> {
        let mut rows = self
            .client
            .query(&self.bonuses_sql)
            .bind(u8::from(partner.is_some()))
            .bind(partner.unwrap_or(0))
            .fetch_all::<BonusRow>()
            .await?;
        rows.sort_by(|a, b| {
            (a.period_start, &a.rule, a.partner_id).cmp(&(b.period_start, &b.rule, b.partner_id))
        });
        Ok(rows)
    }

    /// The ids of the bonuses recorded for periods starting from `first`
    /// to `last` (Unix seconds, midnights UTC, both included).
    pub async fn recorded_bonus_ids(
        &self,
        first: u32,
        last: u32,
    ) -> clickhouse::error::Result<Vec<String>> {
        self.client
            .query(&self.recorded_bonuses_sql)
            .bind(first)
            .bind(last)
            .fetch_all::<String>()
            .await
    }

    /// Inserts one bonus; visible to the next read once this returns.
    pub async fn record_bonus(&self, row: &BonusRow) -> clickhouse::error::Result<()> {
        let mut insert = self
            .client
            .insert::<BonusRow>(BONUSES_TABLE)
            .await?
            .with_timeouts(Some(QUERY_TIMEOUT), Some(QUERY_TIMEOUT));
        insert.write(row).await?;
        insert.end().await
    }
}
