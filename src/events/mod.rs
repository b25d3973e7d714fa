//! Events on their way to ClickHouse: the rows, how they are encoded into
//! the crash-safe segment log, and the shipper that moves them from the log
//! into ClickHouse exactly once.
//!
//! A request records an event with [`EventSink::record`]: one encode into a
//! thread-local buffer and one lock-free append into a shared, file-backed
//! mapping ([`log`]). Once that returns, the event survives the death of the
//! process; the 302 or 2xx is sent after it. The [`shipper`] is the log's
//! only reader; rows ClickHouse refuses as bad data go to [`rejected`] files.

pub mod log;
pub mod rejected;
pub mod shipper;

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use tracing::error;

use self::log::{AppendError, EventLog};
use crate::metrics::Metrics;

/// Leading byte of every encoded event: bump it when a row changes shape,
/// and keep decoding the old version.
pub const FORMAT_VERSION: u8 = 1;

/// One row of the `clicks` table. Field order is the table's column order
/// (RowBinary is positional). Borrowed, so recording a click copies request
/// bytes only into the log, and shipping decodes without allocating.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ClickRow<'a> {
    /// Signed click id.
    pub click_id: &'a str,
    /// Unix seconds.
    pub ts: u32,
    /// Link code.
    pub code: &'a str,
    /// Link id.
    pub link_id: u64,
    /// Partner id.
    pub partner_id: u64,
    /// Offer id.
    pub offer_id: u64,
    /// Affiliate sub-id 1.
    pub sub1: &'a str,
    /// Affiliate sub-id 2.
    pub sub2: &'a str,
    /// Affiliate sub-id 3.
    pub sub3: &'a str,
    /// Affiliate sub-id 4.
    pub sub4: &'a str,
    /// Affiliate sub-id 5.
    pub sub5: &'a str,
    /// Client IP as text.
    pub ip: &'a str,
    /// User agent.
    pub user_agent: &'a str,
    /// Referer.
    pub referer: &'a str,
    /// 1 for a bot or preview.
    pub is_bot: u8,
    /// 1 when over the per-IP rate limit.
    pub is_rate_limited: u8,
    /// ISO 3166 country code from a trusted proxy header, or empty.
    pub country: &'a str,
    /// mobile, tablet, desktop, bot or unknown.
    pub device: &'a str,
    /// The node that took the click.
    pub node: &'a str,
}

/// One row of the `orphan_hits` table.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct OrphanRow<'a> {
    /// Unix seconds.
    pub ts: u32,
    /// The requested code (at most 64 bytes of it).
    pub code: &'a str,
    /// Client IP as text.
    pub ip: &'a str,
    /// User agent.
    pub user_agent: &'a str,
    /// Referer.
    pub referer: &'a str,
    /// 1 for a bot or preview.
    pub is_bot: u8,
    /// The node that took the hit.
    pub node: &'a str,
}

/// Anything bound for ClickHouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event<'a> {
    /// A tracked redirect.
    #[serde(borrow)]
    Click(ClickRow<'a>),
    /// A request for an unknown or disabled code.
    #[serde(borrow)]
    Orphan(OrphanRow<'a>),
}

/// The kinds of [`Event`], as [`Event::kind`] reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// [`Event::Click`].
    Click,
    /// [`Event::Orphan`].
    Orphan,
}

/// Why a log record did not decode.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Written by a format this build does not know.
    #[error("unknown event format version {0}")]
    Version(u8),
    /// Empty or malformed.
    #[error("malformed event: {0}")]
    Malformed(String),
}

impl<'a> Event<'a> {
    /// The ClickHouse table this event goes to.
    pub fn table(&self) -> &'static str {
        match self {
            Event::Click(_) => "clicks",
            Event::Orphan(_) => "orphan_hits",
        }
    }

    /// When it happened, in Unix seconds.
    pub fn ts(&self) -> u32 {
        match self {
            Event::Click(c) => c.ts,
            Event::Orphan(o) => o.ts,
        }
    }

    /// Appends the versioned binary form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(FORMAT_VERSION);
        // Serializing plain structs into a Vec cannot fail.
        postcard::to_io(self, &mut *out).expect("events encode");
    }

    /// Which kind of event a record holds, read from its first two bytes
    /// (version, then postcard's variant index) without decoding the rest.
    pub fn kind(bytes: &[u8]) -> Result<EventKind, DecodeError> {
        match bytes {
            [FORMAT_VERSION, 0, ..] => Ok(EventKind::Click),
            [FORMAT_VERSION, 1, ..] => Ok(EventKind::Orphan),
            [FORMAT_VERSION, v, ..] => {
                Err(DecodeError::Malformed(format!("unknown event kind {v}")))
            }
            [FORMAT_VERSION] | [] => Err(DecodeError::Malformed("empty record".into())),
            [v, ..] => Err(DecodeError::Version(*v)),
        }
    }

    /// Decodes a record written by [`Event::encode`], borrowing its strings.
    pub fn decode(bytes: &'a [u8]) -> Result<Event<'a>, DecodeError> {
        match bytes.split_first() {
            Some((&FORMAT_VERSION, rest)) => {
                postcard::from_bytes(rest).map_err(|e| DecodeError::Malformed(e.to_string()))
            }
            Some((&v, _)) => Err(DecodeError::Version(v)),
            None => Err(DecodeError::Malformed("empty record".into())),
        }
    }
}

/// The recording side: encodes events and appends them to the log.
pub struct EventSink {
    log: Arc<EventLog>,
    metrics: Arc<Metrics>,
    /// Unix second of the last "spool full" error line, so a long outage
    /// logs once a second, not once a click.
    last_full_log: AtomicU64,
}

thread_local! {
    /// Encoding scratch space, reused so recording allocates nothing.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
}

impl EventSink {
    /// A sink appending to `log`.
    pub fn new(log: Arc<EventLog>, metrics: Arc<Metrics>) -> Self {
        EventSink {
            log,
            metrics,
            last_full_log: AtomicU64::new(0),
        }
    }

    /// Makes `event` durable; false (counted as dropped) when the spool is
    /// full or the record could not be written.
    pub fn record(&self, event: &Event<'_>) -> bool {
        let result = SCRATCH.with(|s| {
            let mut buf = s.borrow_mut();
            buf.clear();
            event.encode(&mut buf);
            self.log.append(&buf)
        });
        match result {
            Ok(()) => true,
            Err(e) => {
                match event {
                    Event::Click(_) => self.metrics.clicks_dropped.inc(),
                    Event::Orphan(_) => self.metrics.orphans_dropped.inc(),
                }
                self.log_drop(&e);
                false
            }
        }
    }

    fn log_drop(&self, e: &AppendError) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let last = self.last_full_log.load(Ordering::Relaxed);
        if now > last
            && self
                .last_full_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            error!(error = %e, dropped_total = self.metrics.clicks_dropped.get(), "event not recorded: the spool cannot take it; redirects continue");
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A click with awkward sub-ids, for tests that need one.
    pub(crate) fn click() -> ClickRow<'static> {
        ClickRow {
            click_id: "0A2b5nkX12I0sfAI8Qi4Oy2LGb50BiqH",
            ts: 1_790_000_000,
            code: "summer",
            link_id: 7,
            partner_id: 1,
            offer_id: 2,
            sub1: "a b",
            sub2: "\r\n",
            sub3: "é",
            sub4: "",
            sub5: "x",
            ip: "2001:db8::1",
            user_agent: "Mozilla/5.0",
            referer: "",
            is_bot: 0,
            is_rate_limited: 1,
            country: "DE",
            device: "mobile",
            node: "n1",
        }
    }

    #[test]
    fn events_round_trip() {
        let events = [
            Event::Click(click()),
            Event::Orphan(OrphanRow {
                ts: 5,
                code: "nope",
                ip: "1.2.3.4",
                user_agent: "",
                referer: "r",
                is_bot: 1,
                node: "n",
            }),
        ];
        for e in events {
            let mut buf = Vec::new();
            e.encode(&mut buf);
            assert_eq!(buf[0], FORMAT_VERSION);
            assert_eq!(Event::decode(&buf).unwrap(), e);
        }
    }

    #[test]
    fn bad_records_are_refused() {
        let mut buf = Vec::new();
        Event::Click(click()).encode(&mut buf);
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![9, 1, 2],
            buf[..buf.len() / 2].to_vec(),
            vec![FORMAT_VERSION, 7],
        ];
        for c in cases {
            assert!(Event::decode(&c).is_err(), "{c:?}");
        }
        let mut v2 = buf.clone();
        v2[0] = 2;
        assert!(matches!(Event::decode(&v2), Err(DecodeError::Version(2))));
    }
}
