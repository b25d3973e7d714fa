//! The click's side of a postback: its sub-ids, read from ClickHouse's
//! `clicks` table when the postback is sent (the conversion's answer never
//! waits for ClickHouse; the worker may).

use std::time::Duration;

use serde::Deserialize;

use super::job::Subs;

/// The query of [`ClickLookup`].
pub const CLICK_SUBS_SQL: &str = include_str!("../../sql/click_subs.sql");

/// Reads a click's sub-ids from ClickHouse's `clicks` table.
pub struct ClickLookup {
    client: clickhouse::Client,
    /// [`CLICK_SUBS_SQL`] for the configured database.
    sql: String,
    /// Bounds every query, so a hung ClickHouse delays a postback but does
    /// not hold a delivery slot.
    timeout: Duration,
}

/// Why a click could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// ClickHouse answered with an error, or not at all.
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    /// ClickHouse did not answer in time.
    #[error("clickhouse timed out")]
    TimedOut,
}

/// One answer row of [`CLICK_SUBS_SQL`].
#[derive(Debug, clickhouse::Row, Deserialize)]
struct ClickSubsRow {
    partner_id: u64,
    sub1: String,
    sub2: String,
    sub3: String,
    sub4: String,
    sub5: String,
}

impl ClickLookup {
    /// Reads from `database` through `client`, each query bounded by
    /// `timeout`.
    pub fn new(client: clickhouse::Client, database: &str, timeout: Duration) -> ClickLookup {
        let sql = crate::schema::query_text(CLICK_SUBS_SQL, database);
        ClickLookup {
            client,
            sql,
            timeout,
        }
    }

    /// The sub-ids of click `click_id` as `partner_id` may see them:
    /// `None` while the click is not in ClickHouse; empty when `click_id`
    /// is not one of ours or its click is another partner's (a deal's
    /// partner is credited over it), whose sub-ids are not this partner's
    /// to see.
    pub(super) async fn subs(
        &self,
        click_id: &str,
        partner_id: u64,
    ) -> Result<Option<Subs>, LookupError> {
        let Some(ms) = crate::click_id::issued_ms(click_id) else {
            return Ok(Some(Subs::default()));
        };
        let second = (ms / 1000).min(u64::from(u32::MAX)) as u32;
        let query = self
            .client
            .query(&self.sql)
            // One second either way costs nothing and keeps the row found
            // should the row's time and the id's ever be taken apart.
            .bind(second.saturating_sub(1))
            .bind(second.saturating_add(1))
            .bind(click_id)
            .fetch_optional::<ClickSubsRow>();
        let row = tokio::time::timeout(self.timeout, query)
            .await
            .map_err(|_| LookupError::TimedOut)??;
        Ok(row.map(|r| {
            if r.partner_id == partner_id {
                [r.sub1, r.sub2, r.sub3, r.sub4, r.sub5]
            } else {
                Subs::default()
            }
        }))
    }
}
