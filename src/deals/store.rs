//! Deals in Redis, beside the catalog and under its prefix: `deals` (hash:
//! id → JSON), `idx:deals` and `idx:deals:partner:{id}` (sorted sets of
//! ids, for paging), `seq:deal` (id counter), and one
//! `deal-prospect:{offer}:{c|d}:...` key per customer id or domain an
//! approved deal protects, holding `{deal}:{partner}:{end ms}` and expiring
//! when the protection ends.
//!
//! The prospect keys make "first approved wins" atomic on every node: the
//! approval script checks every key of the deal and sets them all, with
//! the deal's new state, in one step that no other command interleaves;
//! of two competing approvals, on any nodes, the second finds the first's
//! keys. They also make the conversion's lookup one `MGET`. Deals survive
//! restarts through Redis persistence, like the catalog.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;

use super::model::{check_reason, Deal, DealRequest, DealStatus, ProspectKey};
use crate::catalog::{now_rfc3339, Catalog, Page, StoreError};
use crate::model::{Offer, Partner};
use crate::validation::FieldError;

/// Who is asking: an admin sees every deal, a partner only its own (any
/// other is `NotFound`, as if it did not exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// The admin API.
    Admin,
    /// The partner API, for this partner.
    Partner(u64),
}

/// Why a deal operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DealError {
    /// Redis did not answer in time or refused: retry (503).
    #[error("redis is unavailable: {0}")]
    Unavailable(String),
    /// No such deal, or not this partner's (404).
    #[error("deal not found")]
    NotFound,
    /// A field names a partner or offer that does not exist (404).
    #[error("{0}")]
    UnknownReference(FieldError),
    /// A field is invalid (400).
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The prospect is protected by another approved deal until
    /// `protected_until` (409).
    #[error("{message}")]
    Protected {
        /// The prospect's field: `customer_id` or `domain`.
        field: &'static str,
        /// For people, with the date.
        message: String,
        /// RFC 3339 end of the other deal's protection.
        protected_until: String,
    },
    /// The deal is not pending, so it cannot be approved or rejected (409).
    #[error("the deal is {0}: only a pending deal can be approved or rejected")]
    NotPending(&'static str),
    /// A stored deal is not valid JSON of a deal (500).
    #[error("stored deal {id} (key {key}) does not decode: {error}")]
    Corrupt {
        /// The deal's id.
        id: u64,
        /// The hash holding it.
        key: String,
        /// What the decoder said.
        error: String,
    },
}

impl From<redis::RedisError> for DealError {
    fn from(e: redis::RedisError) -> Self {
        DealError::Unavailable(e.to_string())
    }
}

impl From<StoreError> for DealError {
    fn from(e: StoreError) -> Self {
        DealError::Unavailable(e.to_string())
    }
}

/// An approved deal's hold on a prospect, as a conversion finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protection {
    /// The deal.
    pub deal_id: u64,
    /// Its partner.
    pub partner_id: u64,
    /// Unix milliseconds when it ends.
    pub until_ms: u64,
}

/// A listing's filters and page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DealFilter {
    /// Only this partner's (the partner API forces its own).
    pub partner_id: Option<u64>,
    /// Only this offer's.
    pub offer_id: Option<u64>,
    /// Only deals in this status (as of now: `expired` included).
    pub status: Option<DealStatus>,
    /// Ids above this one.
    pub cursor: u64,
    /// Page size.
    pub limit: usize,
}

/// Stores the new deal ARGV[1] (JSON ARGV[2]) in hash KEYS[1] and the
/// indexes KEYS[2] (all) and KEYS[3] (its partner's), all or none.
const CREATE_SCRIPT: &str = "
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[1])
return 1";

/// Approves deal ARGV[1] of hash KEYS[1] if it still holds JSON ARGV[2]
/// and no prospect key KEYS[2..] is held by an unexpired deal: then the
/// deal becomes ARGV[3] and every prospect key holds ARGV[4] until Unix
/// ms ARGV[5]. Answers `{2}` approved, `{1, i, holder}` when prospect key
/// i (1-based among the prospects) is held, `{0}` when the deal changed
/// since it was read (the caller reads it again). Redis's clock decides
/// expiry, so nodes' clocks do not matter.
const APPROVE_SCRIPT: &str = "
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return {0} end
for i = 2, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if v then
    local ends = string.match(v, '^%d+:%d+:(%d+)$')
    if ends and tonumber(ends) >= now then return {1, i - 1, v} end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], ARGV[4])
  redis.call('PEXPIREAT', KEYS[i], ARGV[5])
end
return {2}";

/// Replaces deal ARGV[1] of hash KEYS[1] by ARGV[3] if it still holds
/// ARGV[2]; 0 when it changed since it was read.
const SWAP_SCRIPT: &str = "
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1";

/// Most deals one listing request reads while filtering: a page of a rare
/// filter may come back short, with a cursor to go on from.
const MAX_SCANNED: usize = 5000;
/// Deals read per round trip while listing.
const SCAN_BATCH: usize = 200;
/// Reads-and-retries of a deal that changed under an approval.
const SWAP_ATTEMPTS: usize = 5;

/// The deals, over the catalog's Redis connection.
#[derive(Clone)]
pub struct DealStore {
    conn: ConnectionManager,
    prefix: String,
    /// Bounds every call: an outage answers `503` instead of hanging.
    timeout: Duration,
}

impl DealStore {
    /// The deals beside `catalog`, under its prefix.
    pub fn new(catalog: &Catalog) -> DealStore {
        let (conn, prefix, timeout) = catalog.redis();
        DealStore {
            conn,
            prefix: prefix.to_string(),
            timeout,
        }
    }

    fn hash(&self) -> String {
        format!("{}deals", self.prefix)
    }

    fn index(&self, partner_id: Option<u64>) -> String {
        match partner_id {
            Some(p) => format!("{}idx:deals:partner:{p}", self.prefix),
            None => format!("{}idx:deals", self.prefix),
        }
    }

    async fn run<T>(
        &self,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, DealError> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(DealError::Unavailable("timed out".into())),
        }
    }

    /// Registers a pending deal for `partner_id`, checking that the
    /// partner and offer exist and that no approved deal protects the
    /// prospect already (then `Protected`, with the date it ends).
    pub async fn register(
        &self,
        catalog: &Catalog,
        partner_id: u64,
        req: DealRequest,
    ) -> Result<Deal, DealError> {
        match catalog.get::<Partner>(partner_id).await {
            Ok(_) => {}
            Err(StoreError::NotFound(_)) => {
                return Err(DealError::UnknownReference(FieldError::new(
                    "partner_id",
                    format!("no partner with id {partner_id}"),
                )))
            }
            Err(e) => return Err(e.into()),
        }
        let offer = self.offer(catalog, req.offer_id).await?;
        let mut conn = self.conn.clone();
        // Validated before an id is spent on it.
        Deal::create(0, partner_id, req.clone(), &offer.currency, now_rfc3339())?;
        let id: u64 = self
            .run(
                redis::cmd("INCR")
                    .arg(format!("{}seq:deal", self.prefix))
                    .query_async(&mut conn),
            )
            .await?;
        let deal = Deal::create(id, partner_id, req, &offer.currency, now_rfc3339())?;
        if let Some((key, holder)) = self.held(&deal).await? {
            return Err(protected(&key, holder));
        }
        let json = serde_json::to_string(&deal).expect("deals serialize");
        let _: i64 = self
            .run(
                redis::cmd("EVAL")
                    .arg(CREATE_SCRIPT)
                    .arg(3)
                    .arg(self.hash())
                    .arg(self.index(None))
                    .arg(self.index(Some(partner_id)))
                    .arg(id)
                    .arg(json)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(deal)
    }

    /// Deal `id` as it stands now, if `viewer` may see it.
    pub async fn get(&self, id: u64, viewer: Viewer) -> Result<Deal, DealError> {
        let (deal, _) = self.read(id).await?;
        match viewer {
            Viewer::Partner(p) if p != deal.partner_id => Err(DealError::NotFound),
            _ => Ok(deal.as_of(now_ms())),
        }
    }

    /// A page of deals matching `f`, by ascending id, as they stand now.
    /// A partner viewer sees only its own, whatever `f.partner_id` says.
    pub async fn list(&self, f: &DealFilter, viewer: Viewer) -> Result<Page<Deal>, DealError> {
        let partner_id = match viewer {
            Viewer::Partner(p) => Some(p),
            Viewer::Admin => f.partner_id,
        };
        let now = now_ms();
        let mut conn = self.conn.clone();
        let mut items = Vec::with_capacity(f.limit.min(SCAN_BATCH));
        let mut cursor = f.cursor;
        let mut scanned = 0;
        loop {
            let ids: Vec<u64> = self
                .run(
                    redis::cmd("ZRANGEBYSCORE")
                        .arg(self.index(partner_id))
                        .arg(format!("({cursor}"))
                        .arg("+inf")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(SCAN_BATCH)
                        .query_async(&mut conn),
                )
                .await?;
            if ids.is_empty() {
                return Ok(Page {
                    items,
                    next_cursor: None,
                });
            }
            let raws: Vec<Option<String>> = self
                .run(
                    redis::cmd("HMGET")
                        .arg(self.hash())
                        .arg(&ids)
                        .query_async(&mut conn),
                )
                .await?;
            for (id, raw) in ids.into_iter().zip(raws) {
                scanned += 1;
                // A listing answers with what decodes; GET of the broken
                // id names the problem.
                let Some(deal) = raw.and_then(|r| serde_json::from_str::<Deal>(&r).ok()) else {
                    continue;
                };
                let deal = deal.as_of(now);
                let wanted = partner_id.is_none_or(|p| deal.partner_id == p)
                    && f.offer_id.is_none_or(|o| deal.offer_id == o)
                    && f.status.is_none_or(|s| deal.status == s);
                if wanted {
                    if items.len() == f.limit {
                        let next_cursor = items.last().map(|d: &Deal| d.id.to_string());
                        return Ok(Page { items, next_cursor });
                    }
                    items.push(deal);
                }
                cursor = id;
                if scanned >= MAX_SCANNED {
                    return Ok(Page {
                        items,
                        next_cursor: Some(cursor.to_string()),
                    });
                }
            }
        }
    }

    /// Approves pending deal `id`: its partner holds the prospect for the
    /// offer's `deal_protection_days` from now. The first approved deal of
    /// a prospect wins, atomically across nodes; a later one is
    /// `Protected`, naming the date the first one's protection ends.
    pub async fn approve(&self, catalog: &Catalog, id: u64) -> Result<Deal, DealError> {
        for _ in 0..SWAP_ATTEMPTS {
            let (deal, raw) = self.read(id).await?;
            if deal.status != DealStatus::Pending {
                return Err(DealError::NotPending(deal.as_of(now_ms()).status.as_str()));
            }
            let offer = self.offer(catalog, deal.offer_id).await?;
            let now = SystemTime::now();
            let until = now + Duration::from_secs(u64::from(offer.deal_protection_days()) * 86_400);
            // Whole seconds, as `protected_until` shows it.
            let until_ms = ms_of(until) / 1000 * 1000;
            let approved = Deal {
                status: DealStatus::Approved,
                decided_at: Some(humantime::format_rfc3339_seconds(now).to_string()),
                protected_until: Some(humantime::format_rfc3339_seconds(until).to_string()),
                ..deal.clone()
            };
            let keys = deal.keys();
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(APPROVE_SCRIPT).arg(1 + keys.len()).arg(self.hash());
            for k in &keys {
                cmd.arg(k.redis_key(&self.prefix, deal.offer_id));
            }
            cmd.arg(id)
                .arg(&raw)
                .arg(serde_json::to_string(&approved).expect("deals serialize"))
                .arg(format!("{id}:{}:{until_ms}", deal.partner_id))
                .arg(until_ms);
            let mut conn = self.conn.clone();
            let answer: Vec<redis::Value> = self.run(cmd.query_async(&mut conn)).await?;
            match answer.as_slice() {
                [redis::Value::Int(2)] => return Ok(approved),
                [redis::Value::Int(1), redis::Value::Int(i), holder] => {
                    let holder = match holder {
                        redis::Value::BulkString(b) => parse_holder(&String::from_utf8_lossy(b)),
                        _ => None,
                    };
                    // The script names a key it was given; the first is a
                    // safe stand-in should it ever not.
                    let key = usize::try_from(*i - 1).ok().and_then(|i| keys.get(i));
                    let key = key.unwrap_or(&keys[0]);
                    return Err(protected(key, holder));
                }
                // The deal changed since it was read: read it again.
                _ => continue,
            }
        }
        Err(DealError::Unavailable(
            "the deal kept changing during its approval; retry".into(),
        ))
    }

    /// Rejects pending deal `id` with `reason`.
    pub async fn reject(&self, id: u64, reason: &str) -> Result<Deal, DealError> {
        let reason = check_reason(reason)?;
        for _ in 0..SWAP_ATTEMPTS {
            let (deal, raw) = self.read(id).await?;
            if deal.status != DealStatus::Pending {
                return Err(DealError::NotPending(deal.as_of(now_ms()).status.as_str()));
            }
            let rejected = Deal {
                status: DealStatus::Rejected,
                decided_at: Some(now_rfc3339()),
                rejection_reason: Some(reason.clone()),
                ..deal
            };
            let mut conn = self.conn.clone();
            let swapped: i64 = self
                .run(
                    redis::cmd("EVAL")
                        .arg(SWAP_SCRIPT)
                        .arg(1)
                        .arg(self.hash())
                        .arg(id)
                        .arg(&raw)
                        .arg(serde_json::to_string(&rejected).expect("deals serialize"))
                        .query_async(&mut conn),
                )
                .await?;
            if swapped == 1 {
                return Ok(rejected);
            }
        }
        Err(DealError::Unavailable(
            "the deal kept changing during its rejection; retry".into(),
        ))
    }

    /// The approved deal protecting a conversion's customer on `offer_id`,
    /// by its customer id (checked first: it names one customer) or its
    /// email domain: one `MGET`. Its end is the caller's to compare with
    /// the conversion's time.
    pub async fn protecting(
        &self,
        offer_id: u64,
        customer_id: Option<&str>,
        domain: Option<&str>,
    ) -> Result<Option<Protection>, DealError> {
        let keys: Vec<String> = [
            customer_id
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(ProspectKey::Customer),
            domain.map(ProspectKey::Domain),
        ]
        .into_iter()
        .flatten()
        .map(|k| k.redis_key(&self.prefix, offer_id))
        .collect();
        if keys.is_empty() {
            return Ok(None);
        }
        let mut conn = self.conn.clone();
        let values: Vec<Option<String>> = self
            .run(redis::cmd("MGET").arg(&keys).query_async(&mut conn))
            .await?;
        Ok(values.iter().flatten().find_map(|v| parse_holder(v)))
    }

    /// Deal `id` and its stored JSON.
    async fn read(&self, id: u64) -> Result<(Deal, String), DealError> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = self
            .run(
                redis::cmd("HGET")
                    .arg(self.hash())
                    .arg(id)
                    .query_async(&mut conn),
            )
            .await?;
        let raw = raw.ok_or(DealError::NotFound)?;
        let deal = serde_json::from_str(&raw).map_err(|e| DealError::Corrupt {
            id,
            key: self.hash(),
            error: e.to_string(),
        })?;
        Ok((deal, raw))
    }

    /// The first prospect key of `deal` held by an unexpired approved
    /// deal, with its holder.
    async fn held<'d>(
        &self,
        deal: &'d Deal,
    ) -> Result<Option<(ProspectKey<'d>, Option<Protection>)>, DealError> {
        let keys = deal.keys();
        let names: Vec<String> = keys
            .iter()
            .map(|k| k.redis_key(&self.prefix, deal.offer_id))
            .collect();
        let mut conn = self.conn.clone();
        let values: Vec<Option<String>> = self
            .run(redis::cmd("MGET").arg(&names).query_async(&mut conn))
            .await?;
        let now = now_ms();
        Ok(keys.into_iter().zip(values).find_map(|(k, v)| {
            let p = parse_holder(v.as_deref()?)?;
            (p.until_ms >= now).then_some((k, Some(p)))
        }))
    }

    async fn offer(&self, catalog: &Catalog, id: u64) -> Result<Offer, DealError> {
        match catalog.get::<Offer>(id).await {
            Ok(o) => Ok(o),
            Err(StoreError::NotFound(_)) => Err(DealError::UnknownReference(FieldError::new(
                "offer_id",
                format!("no offer with id {id}"),
            ))),
            Err(e) => Err(e.into()),
        }
    }
}

/// `{deal}:{partner}:{end ms}` → the protection it records.
fn parse_holder(v: &str) -> Option<Protection> {
    let mut parts = v.splitn(3, ':');
    Some(Protection {
        deal_id: parts.next()?.parse().ok()?,
        partner_id: parts.next()?.parse().ok()?,
        until_ms: parts.next()?.parse().ok()?,
    })
}

/// The conflict answered for a prospect `key` held by `holder`.
fn protected(key: &ProspectKey<'_>, holder: Option<Protection>) -> DealError {
    let (field, what) = key.describe();
    let until = holder.map_or_else(String::new, |h| {
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(h.until_ms))
            .to_string()
    });
    DealError::Protected {
        field,
        message: format!(
            "{what} is already protected by another approved deal until {until}: the first approved deal wins"
        ),
        protected_until: until,
    }
}

fn ms_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn now_ms() -> u64 {
    ms_of(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_parse() {
        assert_eq!(
            parse_holder("5:7:1790000000000"),
            Some(Protection {
                deal_id: 5,
                partner_id: 7,
                until_ms: 1_790_000_000_000
            })
        );
        for bad in ["", "5:7", "a:7:1", "5:7:x", "5:7:1:2"] {
            assert_eq!(parse_holder(bad), None, "{bad}");
        }
    }
}
