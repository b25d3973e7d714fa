//! What conversions share across nodes, in Redis: which orders and events
//! were already counted (so a repeat is `duplicate`, atomically, on every
//! node at once) and which click each customer is bound to.
//!
//! A claim is taken in two steps around the durable write of its row:
//!
//! 1. **Claim**: one script sets the key to a *provisional* value, the new
//!    conversion's id and a lease deadline (Redis's clock, so nodes' clocks
//!    do not matter). Of twenty identical postbacks racing on any number of
//!    nodes, exactly one sets it; the others wait for its outcome.
//! 2. **Confirm**, once the row is in the log: the key becomes the bare id,
//!    and the waiting repeats answer `duplicate`.
//!
//! A holder that dies between the two (`kill -9`, a lost node) leaves a
//! provisional claim. Once its lease is over, the next repeat *takes it
//! over* under the same conversion id and records the row itself: if the
//! dead holder had written its row after all, both rows carry one id and
//! one version, so they are one conversion to every reader (`FINAL`,
//! `argMax`) and the table's merges keep one. So a merchant's retry after
//! an unanswered request is counted once, whether or not the first attempt
//! reached the log, and no order is ever two conversions. A claim whose row
//! the log refused is released (compare-and-delete, only its own), and the
//! retry is not a duplicate.

use std::time::Duration;

use redis::aio::ConnectionManager;

/// Redis state of the conversion side.
#[derive(Clone)]
pub struct ConversionState {
    conn: ConnectionManager,
    prefix: String,
    /// Bounds every call: an outage answers `503` (the merchant retries)
    /// instead of holding the request.
    timeout: Duration,
    /// How long a claim is remembered: later repeats are new conversions.
    dedup_ttl_secs: u64,
    /// How long a provisional claim's holder has to confirm it before a
    /// repeat may take it over: longer than the holder's worst path
    /// between claim and confirm (a few Redis calls and one append).
    lease_ms: u64,
}

/// What makes two conversions the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupKey<'a> {
    /// `(offer, order_id)`.
    Order {
        /// The offer.
        offer_id: u64,
        /// The merchant's order id.
        order_id: &'a str,
    },
    /// With no order id: `(offer, click or customer, event)`.
    Event {
        /// The offer.
        offer_id: u64,
        /// The click id, or `customer:` and the customer id.
        subject: Subject<'a>,
        /// The event name.
        event: &'a str,
    },
}

/// Who an event without an order id is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    /// A click id.
    Click(&'a str),
    /// A customer id.
    Customer(&'a str),
}

/// The outcome of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First of its kind: this conversion counts, under the lease's id.
    Fresh(Lease),
    /// An earlier attempt claimed it and never confirmed within its lease:
    /// this one records the conversion under that attempt's id.
    TakenOver(Lease),
    /// Already counted, by the conversion named.
    Duplicate(String),
}

/// A provisional claim held by this request, until confirmed or released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The conversion the claim is for: the new one's id, or on a takeover
    /// the id of the attempt that claimed first.
    pub conversion_id: String,
    /// The key's provisional value, `?<id>:<deadline ms>`: confirm and
    /// release act only while the key still holds exactly this.
    value: String,
}

/// Redis did not answer in time, or refused.
#[derive(Debug, thiserror::Error)]
#[error("redis is unavailable: {0}")]
pub struct StateError(String);

impl From<redis::RedisError> for StateError {
    fn from(e: redis::RedisError) -> Self {
        StateError(e.to_string())
    }
}

/// Takes one unit of every cap, or none: all counters are checked against
/// their limits first (KEYS[i] against ARGV[i]); ARGV[#KEYS + i] is the
/// counter's lifetime in seconds.
const TAKE_CAPS_SCRIPT: &str = "
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i]) then return 0 end
end
for i, key in ipairs(KEYS) do
  redis.call('INCR', key)
  redis.call('EXPIRE', key, ARGV[#KEYS + i])
end
return 1";

/// One cap to take from: a counter's key suffix, its limit and lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapCounter {
    /// After the prefix, e.g. `cap:7:d:20261130` or `cap:7:p3:m:202611`.
    pub key: String,
    /// Most conversions it admits.
    pub limit: u32,
    /// Seconds the counter lives (past its period, then it goes).
    pub ttl_secs: u64,
}

/// Claims KEYS[1] for conversion ARGV[1] with a lease of ARGV[2] ms and a
/// key lifetime of ARGV[3] s. Answers `{0, value}` fresh, `{1, value}`
/// taken over (an expired provisional claim, its id kept), `{2, id}`
/// confirmed by another conversion, `{3, value}` provisional and in its
/// lease. Deadlines are on Redis's clock.
const CLAIM_SCRIPT: &str = "
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function lease(id)
  local v = '?' .. id .. ':' .. string.format('%.0f', now + tonumber(ARGV[2]))
  redis.call('SET', KEYS[1], v, 'EX', ARGV[3])
  return v
end
local v = redis.call('GET', KEYS[1])
if not v then return {0, lease(ARGV[1])} end
if string.sub(v, 1, 1) ~= '?' then return {2, v} end
local id, deadline = string.match(v, '^%?([^:]+):(%d+)$')
if id and tonumber(deadline) >= now then return {3, v} end
return {1, lease(id or ARGV[1])}";

/// Turns the provisional value ARGV[1] into the bare id ARGV[2] for ARGV[3]
/// seconds; 0 when the key no longer holds ARGV[1].
const CONFIRM_SCRIPT: &str = "
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1";

const RELEASE_SCRIPT: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// The longest pause between two looks at a claim another request holds.
const MAX_CLAIM_POLL: Duration = Duration::from_millis(50);

impl DedupKey<'_> {
    /// The Redis key, under `prefix`. Values are length-prefixed so no
    /// order id can forge another key's shape.
    pub fn redis_key(&self, prefix: &str) -> String {
        match self {
            DedupKey::Order { offer_id, order_id } => {
                format!("{prefix}dedup:{offer_id}:o:{}:{order_id}", order_id.len())
            }
            DedupKey::Event {
                offer_id,
                subject,
                event,
            } => {
                let (kind, who) = match subject {
                    Subject::Click(c) => ("c", c),
                    Subject::Customer(c) => ("u", c),
                };
                format!(
                    "{prefix}dedup:{offer_id}:{kind}:{}:{who}:{event}",
                    who.len()
                )
            }
        }
    }
}

fn customer_key(prefix: &str, offer_id: u64, customer_id: &str) -> String {
    format!("{prefix}customer:{offer_id}:{customer_id}")
}

fn sales_key(prefix: &str, offer_id: u64, customer_id: &str) -> String {
    format!("{prefix}customer-sales:{offer_id}:{customer_id}")
}

impl ConversionState {
    /// State over `conn`, keys under `prefix`.
    pub fn new(
        conn: ConnectionManager,
        prefix: &str,
        timeout: Duration,
        dedup_ttl_secs: u64,
        lease: Duration,
    ) -> Self {
        ConversionState {
            conn,
            prefix: prefix.to_string(),
            timeout,
            dedup_ttl_secs,
            lease_ms: lease.as_millis().max(1) as u64,
        }
    }

    async fn run<T>(
        &self,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StateError> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(StateError("timed out".into())),
        }
    }

    /// Claims `key` for `conversion_id`, atomically across nodes. While
    /// another request holds it provisionally, waits (polling, at most the
    /// lease) for that one to confirm (then `Duplicate`), release (then
    /// claims afresh) or outlive its lease (then takes it over).
    pub async fn claim(
        &self,
        key: &DedupKey<'_>,
        conversion_id: &str,
    ) -> Result<Claim, StateError> {
        let k = key.redis_key(&self.prefix);
        let mut pause = Duration::from_millis(1);
        loop {
            let mut conn = self.conn.clone();
            let (kind, value): (u8, String) = self
                .run(
                    redis::cmd("EVAL")
                        .arg(CLAIM_SCRIPT)
                        .arg(1)
                        .arg(&k)
                        .arg(conversion_id)
                        .arg(self.lease_ms)
                        .arg(self.dedup_ttl_secs)
                        .query_async(&mut conn),
                )
                .await?;
            match kind {
                0 | 1 => {
                    let lease = Lease {
                        conversion_id: lease_id(&value).unwrap_or(conversion_id).to_string(),
                        value,
                    };
                    return Ok(if kind == 0 {
                        Claim::Fresh(lease)
                    } else {
                        Claim::TakenOver(lease)
                    });
                }
                2 => return Ok(Claim::Duplicate(value)),
                _ => {
                    // The holder is writing its row: it confirms within
                    // milliseconds, or its lease ends and the script takes
                    // the claim over. Either ends this loop.
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_CLAIM_POLL);
                }
            }
        }
    }

    /// Marks a claim's conversion as recorded: repeats are `duplicate` from
    /// now on. False when the lease had ended and another request took the
    /// claim over (it records the same conversion id, so nothing is lost or
    /// doubled).
    pub async fn confirm(&self, key: &DedupKey<'_>, lease: &Lease) -> Result<bool, StateError> {
        let mut conn = self.conn.clone();
        let done: i64 = self
            .run(
                redis::cmd("EVAL")
                    .arg(CONFIRM_SCRIPT)
                    .arg(1)
                    .arg(key.redis_key(&self.prefix))
                    .arg(&lease.value)
                    .arg(&lease.conversion_id)
                    .arg(self.dedup_ttl_secs)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(done == 1)
    }

    /// Gives back a claim this conversion could not make durable.
    pub async fn release(&self, key: &DedupKey<'_>, lease: &Lease) -> Result<(), StateError> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .run(
                redis::cmd("EVAL")
                    .arg(RELEASE_SCRIPT)
                    .arg(1)
                    .arg(key.redis_key(&self.prefix))
                    .arg(&lease.value)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(())
    }

    /// Binds `customer_id` of `offer_id` to `click_id` unless it is bound
    /// already; answers the click it is bound to (the first one wins).
    pub async fn bind_customer(
        &self,
        offer_id: u64,
        customer_id: &str,
        click_id: &str,
    ) -> Result<String, StateError> {
        let k = customer_key(&self.prefix, offer_id, customer_id);
        let mut conn = self.conn.clone();
        let set: Option<String> = self
            .run(
                redis::cmd("SET")
                    .arg(&k)
                    .arg(click_id)
                    .arg("NX")
                    .query_async(&mut conn),
            )
            .await?;
        if set.is_some() {
            return Ok(click_id.to_string());
        }
        let bound: Option<String> = self
            .run(redis::cmd("GET").arg(&k).query_async(&mut conn))
            .await?;
        Ok(bound.unwrap_or_else(|| click_id.to_string()))
    }

    /// How many counted sales `customer_id` of `offer_id` has made through
    /// the binding (recurring commissions pay on the first, or for a time).
    pub async fn customer_sales(
        &self,
        offer_id: u64,
        customer_id: &str,
    ) -> Result<u64, StateError> {
        let mut conn = self.conn.clone();
        let n: Option<u64> = self
            .run(
                redis::cmd("GET")
                    .arg(sales_key(&self.prefix, offer_id, customer_id))
                    .query_async(&mut conn),
            )
            .await?;
        Ok(n.unwrap_or(0))
    }

    /// Counts one more sale of `customer_id`.
    pub async fn count_customer_sale(
        &self,
        offer_id: u64,
        customer_id: &str,
    ) -> Result<(), StateError> {
        let mut conn = self.conn.clone();
        let _: u64 = self
            .run(
                redis::cmd("INCR")
                    .arg(sales_key(&self.prefix, offer_id, customer_id))
                    .query_async(&mut conn),
            )
            .await?;
        Ok(())
    }

    /// Takes one conversion from every counter, atomically, unless one is
    /// at its limit (then none changes): true when within every cap.
    pub async fn take_caps(&self, counters: &[CapCounter]) -> Result<bool, StateError> {
        if counters.is_empty() {
            return Ok(true);
        }
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(TAKE_CAPS_SCRIPT).arg(counters.len());
        for c in counters {
            cmd.arg(format!("{}{}", self.prefix, c.key));
        }
        for c in counters {
            cmd.arg(c.limit);
        }
        for c in counters {
            cmd.arg(c.ttl_secs);
        }
        let mut conn = self.conn.clone();
        let taken: i64 = self.run(cmd.query_async(&mut conn)).await?;
        Ok(taken == 1)
    }

    /// The click `customer_id` of `offer_id` is bound to, if any.
    pub async fn bound_click(
        &self,
        offer_id: u64,
        customer_id: &str,
    ) -> Result<Option<String>, StateError> {
        let mut conn = self.conn.clone();
        self.run(
            redis::cmd("GET")
                .arg(customer_key(&self.prefix, offer_id, customer_id))
                .query_async(&mut conn),
        )
        .await
    }
}

/// The conversion id in a provisional value `?<id>:<deadline>`.
fn lease_id(value: &str) -> Option<&str> {
    value.strip_prefix('?')?.split(':').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provisional_value_names_its_conversion() {
        assert_eq!(lease_id("?0abc:1790000000000"), Some("0abc"));
        assert_eq!(lease_id("0abc"), None);
    }

    #[test]
    fn keys_cannot_be_confused() {
        let order = |o: &'static str| DedupKey::Order {
            offer_id: 7,
            order_id: o,
        };
        let event = |s: Subject<'static>, e: &'static str| DedupKey::Event {
            offer_id: 7,
            subject: s,
            event: e,
        };
        let keys = [
            order("A1").redis_key("te:"),
            order("A1:x").redis_key("te:"),
            DedupKey::Order {
                offer_id: 8,
                order_id: "A1",
            }
            .redis_key("te:"),
            event(Subject::Click("c1"), "sale").redis_key("te:"),
            event(Subject::Customer("c1"), "sale").redis_key("te:"),
            event(Subject::Click("c1"), "lead").redis_key("te:"),
            // A customer id holding what looks like the rest of a key.
            event(Subject::Customer("c1:sale"), "x").redis_key("te:"),
            event(Subject::Customer("c1"), "sale:x").redis_key("te:"),
        ];
        let unique: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len(), "{keys:#?}");
        assert_eq!(keys[0], "te:dedup:7:o:2:A1");
    }
}
