//! The ledger's ClickHouse side: reading a page of latest versions or one
//! conversion's history, recording a new version through the event sink,
//! and announcing it to the partner.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::http::StatusCode;
use clickhouse::Row;
use serde::Deserialize;

use super::models::ConversionView;
use super::params::{plausible_id, ListFilter};
use crate::attribution::Status;
use crate::events::{ConversionRow, Event, EventSink, Money};
use crate::http::admin::error::ApiError;

/// The listing's query: a page of latest versions.
pub const LATEST_SQL: &str = include_str!("../../../sql/conversions_latest.sql");

/// One conversion's every version, oldest first.
pub const VERSIONS_SQL: &str = include_str!("../../../sql/conversion_versions.sql");

/// How long an admin query may take before it answers `503`.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads conversions from ClickHouse and records their new versions.
pub struct Ledger {
    /// Reads the `conversions` table.
    client: clickhouse::Client,
    /// Makes a new version durable, for the shipper to insert.
    sink: Arc<EventSink>,
    /// [`LATEST_SQL`] for this database, comments removed.
    latest_sql: String,
    /// [`VERSIONS_SQL`] for this database, comments removed.
    versions_sql: String,
    /// Tells the credited partner of every change it can see (approval,
    /// reversal); `None` tells no one.
    postbacks: Option<Arc<crate::conversions::deliver::Postbacks>>,
}

impl Ledger {
    /// The same ledger, queueing a partner postback for each change the
    /// partner can see.
    pub fn with_postbacks(
        mut self,
        postbacks: Arc<crate::conversions::deliver::Postbacks>,
    ) -> Ledger {
        self.postbacks = Some(postbacks);
        self
    }

    /// Queues the partner's postback for a recorded change. The change
    /// stands either way: a queue failure is logged, not answered.
    pub(crate) async fn announce(&self, v: &Stored) {
        use crate::attribution::Status;
        let (Some(postbacks), Some(status)) = (
            &self.postbacks,
            match v.status.as_str() {
                "approved" => Some(Status::Approved),
                "reversed" => Some(Status::Reversed),
                _ => None,
            },
        ) else {
            return;
        };
        if v.partner_id == 0 {
            return;
        }
        let queued = postbacks
            .enqueue(&crate::conversions::deliver::Announcement {
                conversion_id: &v.conversion_id,
                partner_id: v.partner_id,
                offer_id: v.offer_id,
                click_id: &v.click_id,
                order_id: &v.order_id,
                event: &v.event,
                payout: v.payout.to_decimal(),
                currency: &v.payout_currency,
                status,
                reason: &v.reason,
                subs: [""; 5],
            })
            .await;
        if let Err(e) = queued {
            tracing::error!(conversion_id = %v.conversion_id, error = %e, "partner postback of a status change not queued");
        }
    }

    /// A ledger reading `database` through `client` and recording into
    /// `sink`.
    pub fn new(client: clickhouse::Client, database: &str, sink: Arc<EventSink>) -> Ledger {
        let prepare = |sql: &str| crate::schema::query_text(sql, database);
        Ledger {
            client,
            sink,
            latest_sql: prepare(LATEST_SQL),
            versions_sql: prepare(VERSIONS_SQL),
            postbacks: None,
        }
    }

    /// One page of latest versions, with one row more than `limit` when
    /// there is a next page.
    pub(crate) async fn page(&self, f: &ListFilter) -> Result<Vec<Stored>, ApiError> {
        let query = self
            .client
            .query(&self.latest_sql)
            .bind(f.from)
            .bind(f.to)
            .bind(u8::from(f.partner_id.is_some()))
            .bind(f.partner_id.unwrap_or(0))
            .bind(u8::from(f.offer_id.is_some()))
            .bind(f.offer_id.unwrap_or(0))
            .bind(f.cursor.as_str())
            .bind(f.status.map_or("", Status::as_str))
            .bind(f.status.map_or("", Status::as_str))
            .bind(f.limit + 1);
        fetch(query.fetch_all::<Stored>()).await
    }

    /// Every version of conversion `id`, oldest first; empty when unknown.
    pub(crate) async fn versions(&self, id: &str) -> Result<Vec<Stored>, ApiError> {
        if !plausible_id(id) {
            return Ok(Vec::new());
        }
        let query = self.client.query(&self.versions_sql).bind(id);
        fetch(query.fetch_all::<Stored>()).await
    }

    /// Makes `v`, the version after `replaced`, durable with the state it
    /// replaces (which `conversions_15m` takes back as it counts `v`);
    /// false when the spool cannot take it.
    pub(crate) fn record(&self, v: &Stored, replaced: &Stored) -> bool {
        self.sink.record(&Event::Conversion(ConversionRow {
            conversion_id: &v.conversion_id,
            ts: v.ts,
            click_id: &v.click_id,
            click_ts: v.click_ts,
            link_id: v.link_id,
            partner_id: v.partner_id,
            offer_id: v.offer_id,
            order_id: &v.order_id,
            event: &v.event,
            amount: v.amount,
            currency: &v.currency,
            payout: v.payout,
            payout_currency: &v.payout_currency,
            status: &v.status,
            reason: &v.reason,
            customer_id: &v.customer_id,
            attribution: &v.attribution,
            payout_rule: &v.payout_rule,
            deal_id: v.deal_id,
            displaced_partner_id: v.displaced_partner_id,
            source: &v.source,
            ip: &v.ip,
            version: v.version,
            prev_status: &replaced.status,
            prev_amount: replaced.amount,
            prev_payout: replaced.payout,
        }))
    }
}

/// A ClickHouse read with the admin timeout; a network failure or timeout
/// is `503`, anything else (a query this build got wrong) `500`.
async fn fetch<T>(
    f: impl std::future::Future<Output = clickhouse::error::Result<T>>,
) -> Result<T, ApiError> {
    use clickhouse::error::Error as E;
    match tokio::time::timeout(QUERY_TIMEOUT, f).await {
        Ok(Ok(rows)) => Ok(rows),
        Ok(Err(e @ (E::Network(_) | E::TimedOut))) => Err(ApiError::unavailable(format!(
            "clickhouse cannot be reached: {e}"
        ))),
        Ok(Err(e)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("clickhouse query failed: {e}"),
            None,
        )),
        Err(_) => Err(ApiError::unavailable(format!(
            "clickhouse did not answer within {}s",
            QUERY_TIMEOUT.as_secs()
        ))),
    }
}

/// One version of a conversion as ClickHouse returns it: the columns of
/// `conversions` in table order (both queries select them so).
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub(crate) struct Stored {
    pub(crate) conversion_id: String,
    pub(crate) ts: u32,
    pub(crate) click_id: String,
    pub(crate) click_ts: u32,
    pub(crate) link_id: u64,
    pub(crate) partner_id: u64,
    pub(crate) offer_id: u64,
    pub(crate) order_id: String,
    pub(crate) event: String,
    pub(crate) amount: Money,
    pub(crate) currency: String,
    pub(crate) payout: Money,
    pub(crate) payout_currency: String,
    pub(crate) status: String,
    pub(crate) reason: String,
    pub(crate) customer_id: String,
    pub(crate) attribution: String,
    pub(crate) payout_rule: String,
    pub(crate) deal_id: u64,
    pub(crate) displaced_partner_id: u64,
    pub(crate) source: String,
    /// Carried into new versions, never shown: the client IP of the hit.
    pub(crate) ip: String,
    pub(crate) version: u64,
}

impl Stored {
    pub(crate) fn view(self) -> ConversionView {
        ConversionView {
            ts: rfc3339(self.ts),
            click_ts: (self.click_ts != 0).then(|| rfc3339(self.click_ts)),
            conversion_id: self.conversion_id,
            click_id: self.click_id,
            partner_id: self.partner_id,
            offer_id: self.offer_id,
            link_id: self.link_id,
            order_id: self.order_id,
            event: self.event,
            amount: self.amount,
            currency: self.currency,
            payout: self.payout,
            payout_currency: self.payout_currency,
            status: self.status,
            reason: self.reason,
            customer_id: self.customer_id,
            attribution: self.attribution,
            payout_rule: self.payout_rule,
            deal_id: self.deal_id,
            displaced_partner_id: self.displaced_partner_id,
            source: self.source,
            version: self.version,
        }
    }
}

fn rfc3339(secs: u32) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs.into())).to_string()
}
