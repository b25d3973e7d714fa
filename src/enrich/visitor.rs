//! Unique clicks: `visitor` is a keyed hash (HMAC-SHA256, first 8 bytes)
//! of the client IP and user agent under a key that belongs to one UTC day.
//!
//! The day's key is 32 random bytes, not derived from anything kept: once
//! it is gone, nobody (this service, an operator, whoever copies the
//! database) can tell which IP a visitor hash stood for, nor link one
//! person across days. Every node must hash one day with one key, or a
//! visitor seen by two nodes counts twice, so the key lives in Redis:
//! `SET {prefix}visitor-key:{yyyymmdd} <hex> NX EX 172800` (the first node
//! to ask creates it), then `GET` (every node reads the winner). It expires
//! two days after its creation, which covers a click's own day and the
//! next; this process forgets its copy when Redis would.
//!
//! A click is hashed under the key of its own day (`ts`), so a backlog
//! shipped after midnight still counts with its day's clicks. A day too old
//! for its key to be created any more (more than one day before today) is
//! only read; if the key is gone, or Redis does not answer, the click's
//! `visitor` is 0 (unknown) and the shipper counts it in
//! `trackedge_clicks_visitor_unknown_total`: shipping never waits on Redis
//! for longer than one call's timeout, and after a failure it does not ask
//! again for [`RETRY_AFTER`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::Sha256;
use tracing::warn;

/// Seconds a day's key lives in Redis after its creation.
pub const KEY_TTL_SECS: u64 = 172_800;

/// How long the keys are not asked for again after Redis failed.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The UTC day (days since 1970-01-01) of Unix second `ts`.
pub fn day_of(ts: u32) -> u32 {
    ts / 86_400
}

/// The calendar date of `day` (days since 1970-01-01) as `yyyymmdd`.
pub fn yyyymmdd(day: u32) -> u32 {
    use chrono::Datelike;
    // A u32 day count is at most year 11,761,191, past chrono's range
    // only for days no clock reaches.
    let date = chrono::DateTime::from_timestamp(i64::from(day) * 86_400, 0)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
        .date_naive();
    date.year() as u32 * 10_000 + date.month() * 100 + date.day()
}

/// Whether a node may create `day`'s key on `today`: only for the days
/// whose key a node shipping on time would still have. An older day's key
/// was either made then or never: making it now would hash that day's
/// late clicks under a key the on-time ones never saw.
pub fn may_create(day: u32, today: u32) -> bool {
    day.saturating_add(1) >= today
}

/// Whether this process may still hold `day`'s key on `today`: Redis has
/// dropped it by then at the latest (see [`KEY_TTL_SECS`]).
pub fn still_kept(day: u32, today: u32) -> bool {
    day.saturating_add(2) >= today
}

/// One day's key, ready to hash with.
#[derive(Clone)]
pub struct DayKey(Hmac<Sha256>);

impl DayKey {
    /// A new random key, as stored in Redis (64 hex digits).
    pub fn random_hex() -> String {
        let bytes: [u8; 32] = rand::random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The key stored as `hex`, if it is 64 hex digits.
    pub fn from_hex(hex: &str) -> Option<DayKey> {
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
            .collect::<Result<_, _>>()
            .ok()?;
        Some(DayKey(
            Hmac::new_from_slice(&bytes).expect("HMAC takes keys of any length"),
        ))
    }

    /// The visitor hash of one click: never 0, which means unknown.
    pub fn visitor(&self, ip: &str, user_agent: &str) -> u64 {
        let mut mac = self.0.clone();
        mac.update(ip.as_bytes());
        // A separator no IP text holds: ("1.2.3.4", "5x") and
        // ("1.2.3.45", "x") must differ.
        mac.update(b"\n");
        mac.update(user_agent.as_bytes());
        let out = mac.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&out[..8]);
        u64::from_le_bytes(first).max(1)
    }
}

/// What is known of one day's key.
#[derive(Clone)]
enum Known {
    /// The key.
    Key(DayKey),
    /// Redis no longer has it, and nobody may make it again.
    Gone,
}

/// The key of a click's day, as [`DayKeys::get`] answers.
pub enum Lookup<'a> {
    /// Hash with this.
    Key(&'a DayKey),
    /// The key expired: the click is too old to hash.
    Gone,
    /// Redis did not answer (or there is none): unknown for now.
    Unavailable,
}

/// Where the day keys live.
struct RedisKeys {
    client: redis::Client,
    /// Made on first use, on the shipper's runtime (its own driver task
    /// runs there), and kept: it reconnects by itself.
    conn: Option<ConnectionManager>,
    prefix: String,
    timeout: Duration,
}

impl RedisKeys {
    /// `day`'s key as Redis holds it, created first when `create`.
    async fn fetch(&mut self, day: u32, create: bool) -> redis::RedisResult<Option<String>> {
        let conn = match &self.conn {
            Some(c) => c.clone(),
            None => {
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_secs(1));
                let c = self.client.get_connection_manager_with_config(cfg).await?;
                self.conn = Some(c.clone());
                c
            }
        };
        let key = format!("{}visitor-key:{}", self.prefix, yyyymmdd(day));
        let mut conn = conn;
        if create {
            let (value,): (Option<String>,) = redis::pipe()
                .cmd("SET")
                .arg(&key)
                .arg(DayKey::random_hex())
                .arg("NX")
                .arg("EX")
                .arg(KEY_TTL_SECS)
                .ignore()
                .cmd("GET")
                .arg(&key)
                .query_async(&mut conn)
                .await?;
            Ok(value)
        } else {
            redis::cmd("GET").arg(&key).query_async(&mut conn).await
        }
    }
}

/// The day keys of the clicks being shipped.
pub struct DayKeys {
    /// `None`: no Redis (unit tests, benchmarks): every visitor is unknown.
    redis: Option<RedisKeys>,
    known: BTreeMap<u32, Known>,
    /// No call to Redis before this, after a failure.
    quiet_until: Option<Instant>,
}

impl DayKeys {
    /// Keys kept in the Redis at `url` under `prefix`, each call bounded by
    /// `timeout`. A bad URL is caught by the config's validation; should one
    /// get here, it makes every visitor unknown, with a warning.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> DayKeys {
        let redis = match redis::Client::open(url) {
            Ok(client) => Some(RedisKeys {
                client,
                conn: None,
                prefix: prefix.to_string(),
                timeout,
            }),
            Err(e) => {
                warn!(error = %e, "redis.url does not open: every click's visitor is unknown");
                None
            }
        };
        DayKeys {
            redis,
            known: BTreeMap::new(),
            quiet_until: None,
        }
    }

    /// Keys from nowhere: every visitor is unknown.
    pub fn none() -> DayKeys {
        DayKeys {
            redis: None,
            known: BTreeMap::new(),
            quiet_until: None,
        }
    }

    /// Keys given directly (tests and benchmarks).
    pub fn fixed(keys: impl IntoIterator<Item = (u32, DayKey)>) -> DayKeys {
        DayKeys {
            redis: None,
            known: keys.into_iter().map(|(d, k)| (d, Known::Key(k))).collect(),
            quiet_until: None,
        }
    }

    /// Makes sure the keys of `days` are known where Redis can tell, and
    /// forgets those of days past keeping. Returns whether Redis failed.
    pub async fn prepare(&mut self, days: &BTreeSet<u32>, today: u32) -> bool {
        if self.redis.is_some() {
            self.known.retain(|day, _| still_kept(*day, today));
        }
        let Some(redis) = self.redis.as_mut() else {
            return false;
        };
        if self.quiet_until.is_some_and(|t| Instant::now() < t) {
            return true;
        }
        for &day in days {
            if self.known.contains_key(&day) {
                continue;
            }
            let timeout = redis.timeout;
            let answer =
                tokio::time::timeout(timeout, redis.fetch(day, may_create(day, today))).await;
            match answer {
                Ok(Ok(Some(hex))) => match DayKey::from_hex(&hex) {
                    Some(key) => {
                        self.known.insert(day, Known::Key(key));
                    }
                    None => {
                        warn!(day = yyyymmdd(day), "the visitor key in redis is not 64 hex digits; that day's visitors are unknown");
                        self.known.insert(day, Known::Gone);
                    }
                },
                Ok(Ok(None)) => {
                    self.known.insert(day, Known::Gone);
                }
                Ok(Err(e)) => {
                    warn!(error = %e, "redis refused the visitor key; visitors are unknown for now");
                    self.quiet_until = Some(Instant::now() + RETRY_AFTER);
                    return true;
                }
                Err(_) => {
                    warn!(
                        timeout_ms = timeout.as_millis() as u64,
                        "redis did not answer for the visitor key; visitors are unknown for now"
                    );
                    self.quiet_until = Some(Instant::now() + RETRY_AFTER);
                    return true;
                }
            }
        }
        self.quiet_until = None;
        false
    }

    /// The key of `day`, as far as it is known.
    pub fn get(&self, day: u32) -> Lookup<'_> {
        match self.known.get(&day) {
            Some(Known::Key(k)) => Lookup::Key(k),
            Some(Known::Gone) => Lookup::Gone,
            None => Lookup::Unavailable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_dates() {
        let cases = [
            (0, 19700101),
            (59, 19700301),
            (10_957, 20000101),
            (11_016, 20000229),
            (11_017, 20000301),
            (19_782, 20240229),
            (19_783, 20240301),
            (20_088, 20241231),
            (20_089, 20250101),
            (47_540, 21000228),
            (47_541, 21000301),
        ];
        for (day, date) in cases {
            assert_eq!(yyyymmdd(day), date, "day {day}");
        }
    }

    #[test]
    fn days_of_timestamps() {
        let cases = [
            (0, 0),
            (86_399, 0),
            (86_400, 1),
            // 2024-03-10 23:59:59 and 2024-03-11 00:00:00 UTC.
            (1_710_115_199, 19_792),
            (1_710_115_200, 19_793),
        ];
        for (ts, day) in cases {
            assert_eq!(day_of(ts), day, "ts {ts}");
        }
        assert_eq!(yyyymmdd(19_793), 20240311);
    }

    #[test]
    fn which_days_may_be_created_and_kept() {
        let today = 20_000;
        let cases = [
            (today + 1, true, true),
            (today, true, true),
            (today - 1, true, true),
            (today - 2, false, true),
            (today - 3, false, false),
            (0, false, false),
        ];
        for (day, create, kept) in cases {
            assert_eq!(may_create(day, today), create, "create {day}");
            assert_eq!(still_kept(day, today), kept, "kept {day}");
        }
    }

    #[test]
    fn keys_parse_from_hex_only() {
        let hex = DayKey::random_hex();
        assert_eq!(hex.len(), 64);
        assert!(DayKey::from_hex(&hex).is_some());
        assert_ne!(hex, DayKey::random_hex(), "each key is new");
        for bad in ["", "00", &"g".repeat(64), &"0".repeat(63), &"0".repeat(65)] {
            assert!(DayKey::from_hex(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn visitors_hash_ip_and_agent_under_the_key() {
        let k1 = DayKey::from_hex(&"01".repeat(32)).unwrap();
        let k2 = DayKey::from_hex(&"02".repeat(32)).unwrap();
        let v = k1.visitor("203.0.113.7", "UA");
        assert_ne!(v, 0);
        assert_eq!(v, k1.visitor("203.0.113.7", "UA"), "stable within a key");
        assert_ne!(
            v,
            k2.visitor("203.0.113.7", "UA"),
            "another day, another hash"
        );
        assert_ne!(v, k1.visitor("203.0.113.8", "UA"));
        assert_ne!(v, k1.visitor("203.0.113.7", "UA2"));
        assert_ne!(k1.visitor("1.2.3.4", "5x"), k1.visitor("1.2.3.45", "x"));
    }

    #[tokio::test]
    async fn without_redis_every_day_is_unavailable() {
        let mut keys = DayKeys::none();
        let failed = keys.prepare(&BTreeSet::from([20_000]), 20_000).await;
        assert!(!failed);
        assert!(matches!(keys.get(20_000), Lookup::Unavailable));
        let fixed = DayKeys::fixed([(7, DayKey::from_hex(&"01".repeat(32)).unwrap())]);
        assert!(matches!(fixed.get(7), Lookup::Key(_)));
        assert!(matches!(fixed.get(8), Lookup::Unavailable));
    }

    /// A Redis that refuses connections: the visitor is unknown at once,
    /// and Redis is left alone for a while rather than asked per batch.
    #[tokio::test]
    async fn a_dead_redis_answers_unavailable_and_is_left_alone() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut keys = DayKeys::new(
            &format!("redis://127.0.0.1:{port}"),
            "t:",
            Duration::from_millis(500),
        );
        let days = BTreeSet::from([20_000]);
        assert!(keys.prepare(&days, 20_000).await, "redis failed");
        assert!(matches!(keys.get(20_000), Lookup::Unavailable));
        assert!(keys.quiet_until.is_some());
        // Within the quiet time: no call, still a failure.
        assert!(keys.prepare(&days, 20_000).await);
    }
}
