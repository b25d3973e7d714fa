//! Events on their way to ClickHouse: the rows, how they are encoded into
//! the crash-safe segment log, and the shipper that moves them from the log
//! into ClickHouse exactly once.
//!
//! A request records an event with [`EventSink::record`]: one encode into a
//! thread-local buffer and one lock-free append into a shared, file-backed
//! mapping ([`log`]). Once that returns, the event survives the death of the
//! process; the 302 or 2xx is sent after it. The [`shipper`] is the log's
//! only reader; rows ClickHouse refuses as bad data go to [`rejected`] files.

mod legacy;
pub mod log;
pub mod money;
pub mod rejected;
pub mod shipped;
pub mod shipper;

pub use self::shipped::ShippedClick;

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use tracing::error;

use self::log::{AppendError, EventLog};
pub use self::money::{Money, MoneyError};
use crate::metrics::Metrics;

/// Leading byte of every encoded event: bump it when a row changes shape,
/// and keep decoding the old version ([`legacy`]). (A new kind of event
/// needs no bump: it is a new variant tag, appended to [`Event`], and
/// records written before it existed keep their tags and meaning.)
///
/// 2: conversions gained `deal_id` and `displaced_partner_id`.
/// 3: conversions gained `prev_status`, `prev_amount` and `prev_payout`.
pub const FORMAT_VERSION: u8 = 3;

/// One recorded click, as the redirect wrote it to the log; shipped as a
/// [`ShippedClick`] (this plus columns derived off the redirect path). Borrowed, so recording a click copies request
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

/// One row of the `conversions` table: one version of one conversion. A
/// status change records the same `conversion_id` again with a higher
/// `version` and every other column carried over (the table keeps the
/// highest version of each `(offer_id, conversion_id)` within a month of
/// `ts`, so `ts` and `offer_id` must not change between versions).
/// Field order is the table's column order.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ConversionRow<'a> {
    /// The conversion's id, the same in every version.
    pub conversion_id: &'a str,
    /// Unix seconds when the conversion was first recorded.
    pub ts: u32,
    /// The attributed click's id, or empty.
    pub click_id: &'a str,
    /// Unix seconds of that click, or 0.
    pub click_ts: u32,
    /// The click's link id, or 0.
    pub link_id: u64,
    /// Partner credited, or 0.
    pub partner_id: u64,
    /// Offer converted.
    pub offer_id: u64,
    /// The merchant's order id, or empty.
    pub order_id: &'a str,
    /// The merchant's event name (`sale`, `lead`, ...).
    pub event: &'a str,
    /// The order amount as sent, in `currency`.
    pub amount: Money,
    /// ISO 4217 code of `amount`, as sent.
    pub currency: &'a str,
    /// What the partner earns, in `payout_currency`.
    pub payout: Money,
    /// ISO 4217 code of `payout`: the offer's currency.
    pub payout_currency: &'a str,
    /// approved, pending, rejected or reversed.
    pub status: &'a str,
    /// Why that status (the interface's reasons table).
    pub reason: &'a str,
    /// The merchant's customer id, or empty.
    pub customer_id: &'a str,
    /// How the partner was found: `click`, `customer` or `deal`.
    pub attribution: &'a str,
    /// Which payout rule set `payout` (e.g. `offer`, `tier:gold`,
    /// `partner_override`), so a partner asking "why 12.50?" gets an answer.
    pub payout_rule: &'a str,
    /// The deal credited (`attribution` = `deal`), or 0.
    pub deal_id: u64,
    /// The partner whose click lost the conversion to a deal, or 0.
    pub displaced_partner_id: u64,
    /// `pixel` or `postback`.
    pub source: &'a str,
    /// Client IP of the hit as text.
    pub ip: &'a str,
    /// 1 for the first record, one more for every status change.
    pub version: u64,
    /// The status of the version this one replaces; empty in version 1
    /// (and in later versions recorded before format 3: see [`legacy`]).
    /// The `conversions_15m` rollup takes that state back as it counts
    /// this one.
    pub prev_status: &'a str,
    /// The `amount` of the version this one replaces, or 0.
    pub prev_amount: Money,
    /// The `payout` of the version this one replaces, or 0.
    pub prev_payout: Money,
}

/// One row of the `postback_deliveries` table: one attempt to call a
/// partner's postback URL.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct PostbackDeliveryRow<'a> {
    /// The conversion the postback announces.
    pub conversion_id: &'a str,
    /// The partner called.
    pub partner_id: u64,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Unix seconds when the attempt started.
    pub ts: u32,
    /// The URL called, secrets masked.
    pub url: &'a str,
    /// The answer's status, 0 when none came.
    pub http_status: u16,
    /// Why the attempt failed, or empty.
    pub error: &'a str,
    /// How long the attempt took.
    pub duration_ms: u32,
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
    // New variants go last: the variant's index is its tag in the log.
    /// One version of a conversion.
    #[serde(borrow)]
    Conversion(ConversionRow<'a>),
    /// One attempt at a partner postback.
    #[serde(borrow)]
    Delivery(PostbackDeliveryRow<'a>),
}

/// The kinds of [`Event`], as [`Event::kind`] reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// [`Event::Click`].
    Click,
    /// [`Event::Orphan`].
    Orphan,
    /// [`Event::Conversion`].
    Conversion,
    /// [`Event::Delivery`].
    Delivery,
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
            Event::Conversion(_) => "conversions",
            Event::Delivery(_) => "postback_deliveries",
        }
    }

    /// When it happened, in Unix seconds.
    pub fn ts(&self) -> u32 {
        match self {
            Event::Click(c) => c.ts,
            Event::Orphan(o) => o.ts,
            Event::Conversion(c) => c.ts,
            Event::Delivery(d) => d.ts,
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
        // Variant tags mean the same in every version.
        match bytes {
            [legacy::V1 | legacy::V2 | FORMAT_VERSION, tag, ..] => match tag {
                0 => Ok(EventKind::Click),
                1 => Ok(EventKind::Orphan),
                2 => Ok(EventKind::Conversion),
                3 => Ok(EventKind::Delivery),
                v => Err(DecodeError::Malformed(format!("unknown event kind {v}"))),
            },
            [legacy::V1 | legacy::V2 | FORMAT_VERSION] | [] => {
                Err(DecodeError::Malformed("empty record".into()))
            }
            [v, ..] => Err(DecodeError::Version(*v)),
        }
    }

    /// Decodes a record written by [`Event::encode`], borrowing its strings.
    pub fn decode(bytes: &'a [u8]) -> Result<Event<'a>, DecodeError> {
        match bytes.split_first() {
            Some((&FORMAT_VERSION, rest)) => {
                postcard::from_bytes(rest).map_err(|e| DecodeError::Malformed(e.to_string()))
            }
            Some((&legacy::V1, rest)) => legacy::decode_v1(rest),
            Some((&legacy::V2, rest)) => legacy::decode_v2(rest),
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

    /// Makes `event` durable; false when the spool is full or the record
    /// could not be written. Dropped clicks and orphan hits are counted
    /// here; a conversion's caller must refuse the request (`503`), so it
    /// is never answered for without being recorded.
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
                    Event::Conversion(_) | Event::Delivery(_) => {}
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

    /// A conversion with every field set, for tests that need one.
    pub(crate) fn conversion() -> ConversionRow<'static> {
        ConversionRow {
            conversion_id: "cv_0A2b5nkX12I0sfAI8Qi4Oy2LGb50Bi",
            ts: 1_790_000_100,
            click_id: "0A2b5nkX12I0sfAI8Qi4Oy2LGb50BiqH",
            click_ts: 1_790_000_000,
            link_id: 7,
            partner_id: 1,
            offer_id: 2,
            order_id: "order-1",
            event: "sale",
            amount: Money::from_scaled(1_999_900).unwrap(),
            currency: "EUR",
            payout: Money::from_scaled(20_000).unwrap(),
            payout_currency: "USD",
            status: "approved",
            reason: "ok",
            customer_id: "cust-9",
            attribution: "click",
            payout_rule: "tier:gold",
            deal_id: 0,
            displaced_partner_id: 0,
            source: "postback",
            ip: "2001:db8::1",
            version: 1,
            prev_status: "",
            prev_amount: Money::ZERO,
            prev_payout: Money::ZERO,
        }
    }

    fn delivery() -> PostbackDeliveryRow<'static> {
        PostbackDeliveryRow {
            conversion_id: "cv_1",
            partner_id: 1,
            attempt: 3,
            ts: 1_790_000_200,
            url: "https://partner.example/pb?token=***&cid=x",
            http_status: 503,
            error: "server answered 503",
            duration_ms: 120,
        }
    }

    fn check_round_trip(e: Event<'_>) {
        let mut buf = Vec::new();
        e.encode(&mut buf);
        assert_eq!(buf[0], FORMAT_VERSION);
        assert_eq!(Event::decode(&buf).unwrap(), e);
        let kind = match e {
            Event::Click(_) => EventKind::Click,
            Event::Orphan(_) => EventKind::Orphan,
            Event::Conversion(_) => EventKind::Conversion,
            Event::Delivery(_) => EventKind::Delivery,
        };
        assert_eq!(Event::kind(&buf).unwrap(), kind, "{e:?}");
    }

    #[test]
    fn conversions_and_deliveries_round_trip() {
        let long = "x".repeat(128);
        let huge = "é".repeat(4096);
        let max = Money::from_scaled(999_999_999_999_999_999).unwrap();
        let min = Money::from_scaled(-999_999_999_999_999_999).unwrap();
        let cases = [
            conversion(),
            // Empty strings and zeros everywhere.
            ConversionRow {
                conversion_id: "",
                ts: 0,
                click_id: "",
                click_ts: 0,
                link_id: 0,
                partner_id: 0,
                offer_id: 0,
                order_id: "",
                event: "",
                amount: Money::ZERO,
                currency: "",
                payout: Money::ZERO,
                payout_currency: "",
                status: "",
                reason: "",
                customer_id: "",
                attribution: "",
                payout_rule: "",
                deal_id: 0,
                displaced_partner_id: 0,
                source: "",
                ip: "",
                version: 0,
                prev_status: "",
                prev_amount: Money::ZERO,
                prev_payout: Money::ZERO,
            },
            // Limits: the longest ids the intake takes, unicode, extreme
            // amounts and integers.
            ConversionRow {
                order_id: &long,
                customer_id: &long,
                event: "verkauf_ü_✓_😀",
                reason: &huge,
                amount: max,
                payout: min,
                ts: u32::MAX,
                click_ts: u32::MAX,
                link_id: u64::MAX,
                partner_id: u64::MAX,
                offer_id: u64::MAX,
                deal_id: u64::MAX,
                displaced_partner_id: u64::MAX,
                version: u64::MAX,
                prev_status: &huge,
                prev_amount: min,
                prev_payout: max,
                ..conversion()
            },
        ];
        for c in cases {
            check_round_trip(Event::Conversion(c));
        }
        check_round_trip(Event::Delivery(delivery()));
        check_round_trip(Event::Delivery(PostbackDeliveryRow {
            conversion_id: "",
            url: "",
            error: &huge,
            http_status: 0,
            attempt: u32::MAX,
            duration_ms: u32::MAX,
            ..delivery()
        }));
    }

    /// A click record as this format wrote it before conversions existed:
    /// logs written before an upgrade must keep decoding after it.
    #[test]
    fn records_written_before_conversions_existed_still_decode() {
        let hex = "01002030413262356e6b583132493073664149385169344f79324c476235304269714880f7c4d5060673756d6d657207010203612062020d0a02c3a90001780b323030313a6462383a3a310b4d6f7a696c6c612f352e30000001024445066d6f62696c65026e31";
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(Event::kind(&bytes).unwrap(), EventKind::Click);
        assert_eq!(Event::decode(&bytes).unwrap(), Event::Click(click()));
    }

    /// A conversion's money in a rejected file reads as a decimal.
    #[test]
    fn conversions_in_json_show_decimal_amounts() {
        let json = serde_json::to_value(Event::Conversion(conversion())).unwrap();
        assert_eq!(json["Conversion"]["amount"], "199.9900");
        assert_eq!(json["Conversion"]["payout"], "2.0000");
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
            vec![FORMAT_VERSION, 4, 0],
        ];
        for c in cases {
            assert!(Event::decode(&c).is_err(), "{c:?}");
        }
        let mut v4 = buf.clone();
        v4[0] = 4;
        assert!(matches!(Event::decode(&v4), Err(DecodeError::Version(4))));
    }
}
