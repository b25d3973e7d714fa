//! The decision's facts in ClickHouse: conversions summed by day
//! (`src/sql/payout_earnings.sql`) and bonuses ([`super::bonuses`]), the
//! payments made (`src/sql/partner_payments.sql`), and recording a new
//! payment into `partner_payments`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{Days, NaiveDate};
use clickhouse::Row;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::balance::{Earning, Payment, Source, Standing};
use super::bonuses::{BONUSES_SQL, RECORDED_BONUSES_SQL};
use crate::events::money::MONEY_SCALE;
use crate::events::Money;
use crate::model::DEFAULT_HOLD_DAYS;

/// The earnings query, compiled in.
pub const EARNINGS_SQL: &str = include_str!("../sql/payout_earnings.sql");
/// The payments query, compiled in.
pub const PAYMENTS_SQL: &str = include_str!("../sql/partner_payments.sql");

/// The table payments are recorded in.
pub const PAYMENTS_TABLE: &str = "partner_payments";

/// The longest a read or the INSERT may take: past it, the caller answers
/// `503` and, for a payment, releases its lock well before it expires.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// One `partner_payments` row, as inserted and as read (the columns in
/// table order).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct PaymentRow {
    /// Unique; ids sort by the time they were made.
    pub payment_id: String,
    /// Who was paid.
    pub partner_id: u64,
    /// ISO 4217.
    pub currency: String,
    /// The last UTC day paid for, as days since 1970-01-01 (a `Date`).
    pub paid_through: u16,
    /// `payable - paid_before`.
    pub amount: Money,
    /// Approved payout whose hold was over by `paid_through`, when paid.
    pub payable: Money,
    /// The partner's earlier payments in this currency.
    pub paid_before: Money,
    /// When it was recorded, Unix seconds.
    pub ts: u32,
    /// The admin's note (a bank reference, say).
    pub note: String,
}

impl PaymentRow {
    /// `paid_through` as a date.
    pub fn paid_through_date(&self) -> NaiveDate {
        day_of(self.paid_through)
    }

    /// The row as the decision reads it.
    pub fn payment(&self) -> Payment {
        Payment {
            partner_id: self.partner_id,
            currency: self.currency.clone(),
            paid_through: self.paid_through_date(),
            amount: self.amount.to_decimal(),
        }
    }
}

/// A ClickHouse `Date` (days since 1970-01-01) as a date.
pub fn day_of(days: u16) -> NaiveDate {
    NaiveDate::default()
        .checked_add_days(Days::new(u64::from(days)))
        .unwrap_or(NaiveDate::MAX)
}

/// A date as a ClickHouse `Date`; `None` outside its range (1970–2149).
pub fn date_days(date: NaiveDate) -> Option<u16> {
    u16::try_from(date.signed_duration_since(NaiveDate::default()).num_days()).ok()
}

/// One row of the earnings query.
#[derive(Debug, Row, Deserialize)]
struct EarningRow {
    partner: u64,
    offer: u64,
    currency: String,
    status: String,
    day: u16,
    in_range: u8,
    payout: i64,
}

/// Reads earnings and payments from one database and records payments.
pub struct PaymentStore {
    /// Names the database: the INSERT's table name cannot carry it (the
    /// crate quotes it as one identifier); the queries name it too.
    pub(super) client: clickhouse::Client,
    /// [`EARNINGS_SQL`] for this database, comments removed.
    earnings_sql: String,
    /// [`PAYMENTS_SQL`] for this database, comments removed.
    payments_sql: String,
    /// [`BONUSES_SQL`] for this database, comments removed.
    pub(super) bonuses_sql: String,
    /// [`RECORDED_BONUSES_SQL`] for this database, comments removed.
    pub(super) recorded_bonuses_sql: String,
}

impl PaymentStore {
    /// A store over `database` through `client`, which must name the
    /// same database (`with_database`).
    pub fn new(client: clickhouse::Client, database: &str) -> PaymentStore {
        let prepare = |sql: &str| crate::schema::query_text(sql, database);
        PaymentStore {
            client,
            earnings_sql: prepare(EARNINGS_SQL),
            payments_sql: prepare(PAYMENTS_SQL),
            bonuses_sql: prepare(BONUSES_SQL),
            recorded_bonuses_sql: prepare(RECORDED_BONUSES_SQL),
        }
    }

    /// Every partner's (or one partner's) conversions that carry money,
    /// summed by day, with each offer's hold from `holds` (offers not in
    /// it, deleted ones, hold [`DEFAULT_HOLD_DAYS`]), then its bonuses
    /// (held 0 days); `from..to` (Unix seconds) is the report's range.
    pub async fn earnings(
        &self,
        partner: Option<u64>,
        from: u32,
        to: u32,
        holds: &HashMap<u64, u32>,
    ) -> clickhouse::error::Result<Vec<Earning>> {
        let conversions = self
            .client
            .query(&self.earnings_sql)
            .bind(from)
            .bind(to)
            .bind(u8::from(partner.is_some()))
            .bind(partner.unwrap_or(0))
            .fetch_all::<EarningRow>();
        let (rows, bonuses) = tokio::try_join!(conversions, self.bonuses(partner))?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some(Earning {
                    source: Source::Conversion,
                    standing: Standing::parse(&r.status)?,
                    partner_id: r.partner,
                    currency: r.currency,
                    day: day_of(r.day),
                    hold_days: holds.get(&r.offer).copied().unwrap_or(DEFAULT_HOLD_DAYS),
                    in_range: r.in_range != 0,
                    // A sum may exceed Decimal(18, 4); a Decimal holds it.
                    payout: Decimal::new(r.payout, MONEY_SCALE),
                })
            })
            .chain(bonuses.iter().map(|b| b.earning(from, to)))
            .collect())
    }

    /// Every partner's (or one partner's) payments, oldest first.
    pub async fn payments(
        &self,
        partner: Option<u64>,
    ) -> clickhouse::error::Result<Vec<PaymentRow>> {
        let mut rows = self
            .client
            .query(&self.payments_sql)
            .bind(u8::from(partner.is_some()))
            .bind(partner.unwrap_or(0))
            .fetch_all::<PaymentRow>()
            .await?;
        rows.sort_by(|a, b| a.payment_id.cmp(&b.payment_id));
        Ok(rows)
    }

    /// Inserts one payment; visible to the next read once this returns
    /// (a plain MergeTree INSERT is acknowledged when its part is
    /// written).
    pub async fn record(&self, row: &PaymentRow) -> clickhouse::error::Result<()> {
        let mut insert = self
            .client
            .insert::<PaymentRow>(PAYMENTS_TABLE)
            .await?
            .with_timeouts(Some(QUERY_TIMEOUT), Some(QUERY_TIMEOUT));
        insert.write(row).await?;
        insert.end().await
    }
}
