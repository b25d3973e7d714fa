//! Events on their way to ClickHouse: the rows, the lock-free buffer that
//! requests push into, the flusher that drains it in batches, and the disk
//! spool that keeps what ClickHouse could not take.
//!
//! Requests never wait: [`EventBuffer::push`] is one lock-free queue push.
//! The flusher is the only consumer.

pub mod flusher;
pub mod log;
pub mod spool;

use std::borrow::Cow;
use std::sync::Arc;

use clickhouse::Row;
use crossbeam_queue::ArrayQueue;
use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;

/// One row of the `clicks` table. Field order is the table's column order
/// (RowBinary is positional).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ClickRow {
    /// Signed click id.
    pub click_id: String,
    /// Unix seconds.
    pub ts: u32,
    /// Link code.
    pub code: Arc<str>,
    /// Link id.
    pub link_id: u64,
    /// Partner id.
    pub partner_id: u64,
    /// Offer id.
    pub offer_id: u64,
    /// Affiliate sub-id 1.
    pub sub1: String,
    /// Affiliate sub-id 2.
    pub sub2: String,
    /// Affiliate sub-id 3.
    pub sub3: String,
    /// Affiliate sub-id 4.
    pub sub4: String,
    /// Affiliate sub-id 5.
    pub sub5: String,
    /// Client IP as text.
    pub ip: String,
    /// User agent.
    pub user_agent: String,
    /// Referer.
    pub referer: String,
    /// 1 for a bot or preview.
    pub is_bot: u8,
    /// 1 when over the per-IP rate limit.
    pub is_rate_limited: u8,
    /// ISO 3166 country code from a trusted proxy header, or empty.
    pub country: String,
    /// mobile, tablet, desktop, bot or unknown.
    pub device: Cow<'static, str>,
    /// The node that took the click.
    pub node: Arc<str>,
}

/// One row of the `orphan_hits` table.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct OrphanRow {
    /// Unix seconds.
    pub ts: u32,
    /// The requested code (at most 64 bytes of it).
    pub code: String,
    /// Client IP as text.
    pub ip: String,
    /// User agent.
    pub user_agent: String,
    /// Referer.
    pub referer: String,
    /// 1 for a bot or preview.
    pub is_bot: u8,
    /// The node that took the hit.
    pub node: Arc<str>,
}

/// Anything bound for ClickHouse.
// Clicks are nearly every event; boxing them would add an allocation per
// redirect to save space only on the rare orphan hit.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Event {
    /// A tracked redirect.
    Click(ClickRow),
    /// A request for an unknown or disabled code.
    Orphan(OrphanRow),
}

impl Event {
    /// The ClickHouse table this event goes to.
    pub fn table(&self) -> &'static str {
        match self {
            Event::Click(_) => "clicks",
            Event::Orphan(_) => "orphan_hits",
        }
    }
}

/// The bounded, lock-free buffer between request handlers and the flusher.
pub struct EventBuffer {
    /// Bounded so a long ClickHouse outage cannot exhaust memory; what does
    /// not fit is counted in `events_dropped_total`.
    queue: ArrayQueue<Event>,
    metrics: Arc<Metrics>,
}

impl EventBuffer {
    /// A buffer holding at most `capacity` events.
    pub fn new(capacity: usize, metrics: Arc<Metrics>) -> Self {
        EventBuffer {
            queue: ArrayQueue::new(capacity),
            metrics,
        }
    }

    /// Adds an event; false (and counted) when the buffer is full.
    pub fn push(&self, event: Event) -> bool {
        match self.queue.push(event) {
            Ok(()) => true,
            Err(_) => {
                self.metrics.events_dropped.inc();
                false
            }
        }
    }

    /// Takes the oldest event.
    pub fn pop(&self) -> Option<Event> {
        self.queue.pop()
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}
