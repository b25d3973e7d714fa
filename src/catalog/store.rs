//! The store: partners, offers and links as JSON in Redis hashes, written
//! together with their numbered change (see [`super::message`]) and
//! applied to this node's [`RouteCache`] as soon as Redis has them.
//!
//! Layout, under the configured prefix: `{kind}s` (hash: id → JSON),
//! `idx:{kind}s` (sorted set of ids, for paging), `seq:{kind}` (id counter),
//! `codes` (hash: link code → link id, which reserves codes), `version` (the
//! change counter) and `changes` (the channel).
//!
//! Every admin-side call is bounded by `redis.timeout_ms`, so a Redis outage
//! answers `503` quickly; the redirect path never comes here.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::change::Change;
use super::message::publish_lua;
use super::routes::RouteCache;
use crate::backoff::Backoff;
use crate::click_id::MAX_LINK_ID;
use crate::config::RedisConfig;
use crate::metrics::Metrics;
use crate::model::{
    check_code, random_code, random_token, FieldError, GeneratedSecrets, Link, LinkPatch, NewLink,
    NewOffer, NewPartner, Offer, OfferPatch, Partner,
};

/// The three kinds of entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Partners.
    Partner,
    /// Offers.
    Offer,
    /// Links.
    Link,
}

impl Kind {
    /// The plural name used in keys and routes.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Partner => "partners",
            Kind::Offer => "offers",
            Kind::Link => "links",
        }
    }

    /// The singular name used in messages.
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Partner => "partner",
            Kind::Offer => "offer",
            Kind::Link => "link",
        }
    }
}

/// An entity stored as JSON in a Redis hash.
pub trait Entity: Serialize + DeserializeOwned + Clone {
    /// Which kind.
    const KIND: Kind;
    /// Its id.
    fn id(&self) -> u64;
    /// The change message announcing it (or its deletion).
    fn change(id: u64, data: Option<Self>) -> Change;
}

impl Entity for Partner {
    const KIND: Kind = Kind::Partner;
    fn id(&self) -> u64 {
        self.id
    }
    fn change(id: u64, data: Option<Self>) -> Change {
        Change::Partner { id, data }
    }
}

impl Entity for Offer {
    const KIND: Kind = Kind::Offer;
    fn id(&self) -> u64 {
        self.id
    }
    fn change(id: u64, data: Option<Self>) -> Change {
        Change::Offer { id, data }
    }
}

impl Entity for Link {
    const KIND: Kind = Kind::Link;
    fn id(&self) -> u64 {
        self.id
    }
    fn change(id: u64, data: Option<Self>) -> Change {
        Change::Link { id, data }
    }
}

/// Why a catalog operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis did not answer in time or refused: retry later (503).
    #[error("redis is unavailable: {0}")]
    Unavailable(String),
    /// No such entity (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A field is invalid (400), or names an unknown entity (422).
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// A field names something that does not exist (422).
    #[error("{0}")]
    UnknownReference(FieldError),
    /// A unique field is taken (409).
    #[error("{0}")]
    Conflict(FieldError),
    /// A partner status move the table does not allow (409).
    #[error(transparent)]
    Move(#[from] crate::model::MoveError),
    /// A stored entity is not valid JSON of its kind (500): someone wrote
    /// the key behind the API's back, or a release changed the format.
    #[error("stored {kind} {id} (key {key}, field {id}) does not decode: {error}")]
    Corrupt {
        /// The kind, singular.
        kind: &'static str,
        /// The entity's id, its field in the hash.
        id: u64,
        /// The Redis hash holding it.
        key: String,
        /// What the decoder said.
        error: String,
    },
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// Reserves a link's code and stores the link, numbered and published, as
/// one step: returns the change number, or 0 (nothing written) when the
/// code is taken. Redis runs a script with no other command in between,
/// and this one either does every write or undoes the ones it did (a write
/// can be refused, say by a key of the wrong type): so no lost connection,
/// timeout or refusal leaves a code reserved for a link never stored.
///
/// KEYS: codes, links hash, links index, change counter, channel.
/// ARGV: code, link id, link JSON, change JSON.
const INSERT_LINK_SCRIPT: &str = concat!(
    publish_lua!(),
    r#"
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local ok, res = pcall(function()
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[2])
  return publish(KEYS[4], KEYS[5], ARGV[4])
end)
if ok then return res end
redis.pcall('HDEL', KEYS[1], ARGV[1])
redis.pcall('HDEL', KEYS[2], ARGV[2])
redis.pcall('ZREM', KEYS[3], ARGV[2])
if type(res) == 'table' and res.err then return redis.error_reply(res.err) end
return redis.error_reply(tostring(res))
"#
);

/// Stores entity ARGV[1] as JSON ARGV[2] in hash KEYS[1] and index
/// KEYS[2], then numbers and publishes change ARGV[3] (KEYS[3] counter,
/// KEYS[4] channel). A write Redis refuses (a key of the wrong type, out
/// of memory) puts back what was there and publishes nothing: other nodes
/// never apply a change that is not stored. (A transaction would not do:
/// MULTI runs the commands after a failed one, the publish included.)
const PUT_SCRIPT: &str = concat!(
    publish_lua!(),
    r#"
local old = redis.call('HGET', KEYS[1], ARGV[1])
local ok, res = pcall(function()
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
  return publish(KEYS[3], KEYS[4], ARGV[3])
end)
if ok then return res end
if old then
  redis.pcall('HSET', KEYS[1], ARGV[1], old)
else
  redis.pcall('HDEL', KEYS[1], ARGV[1])
  redis.pcall('ZREM', KEYS[2], ARGV[1])
end
if type(res) == 'table' and res.err then return redis.error_reply(res.err) end
return redis.error_reply(tostring(res))
"#
);

/// Deletes entity ARGV[1] from hash KEYS[1] and index KEYS[2] (and, with
/// KEYS[5], field ARGV[3] of that hash: a link's code), then numbers and
/// publishes change ARGV[2]; on a refused write, puts everything back and
/// publishes nothing, like [`PUT_SCRIPT`].
const REMOVE_SCRIPT: &str = concat!(
    publish_lua!(),
    r#"
local old = redis.call('HGET', KEYS[1], ARGV[1])
local extra = nil
if KEYS[5] then extra = redis.call('HGET', KEYS[5], ARGV[3]) end
local ok, res = pcall(function()
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  if KEYS[5] then redis.call('HDEL', KEYS[5], ARGV[3]) end
  return publish(KEYS[3], KEYS[4], ARGV[2])
end)
if ok then return res end
if old then
  redis.pcall('HSET', KEYS[1], ARGV[1], old)
  redis.pcall('ZADD', KEYS[2], ARGV[1], ARGV[1])
end
if extra then redis.pcall('HSET', KEYS[5], ARGV[3], extra) end
if type(res) == 'table' and res.err then return redis.error_reply(res.err) end
return redis.error_reply(tostring(res))
"#
);

/// Redis key names, all under the configured prefix.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    pub(super) prefix: String,
    /// Where changes are published.
    pub(super) channel: String,
    /// Link codes → link ids: a code is taken once it is here.
    codes: String,
    /// Counts changes; every change message carries its number.
    pub(super) version: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_string(),
            channel: format!("{prefix}changes"),
            version: format!("{prefix}version"),
            codes: format!("{prefix}codes"),
        }
    }
    pub(super) fn hash(&self, k: Kind) -> String {
        format!("{}{}", self.prefix, k.plural())
    }
    pub(super) fn index(&self, k: Kind) -> String {
        format!("{}idx:{}", self.prefix, k.plural())
    }
    fn seq(&self, k: Kind) -> String {
        format!("{}seq:{}", self.prefix, k.singular())
    }
}

/// A page of a listing.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    /// The entities, by ascending id.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// The catalog: Redis-backed store plus the local route cache.
pub struct Catalog {
    /// For the change channel's own subscription connection.
    pub(super) client: redis::Client,
    /// Shared by every admin call; reconnects by itself.
    pub(super) conn: ConnectionManager,
    pub(super) keys: Keys,
    /// Bounds every admin-side Redis call, so an outage answers 503
    /// quickly instead of hanging the request.
    pub(super) timeout: Duration,
    /// How often the change channel compares the counter with what it
    /// applied.
    pub(super) resync: Duration,
    /// The wait between attempts to reach Redis.
    pub(super) retry: Duration,
    /// This node's cache: every write is applied to it once Redis has it.
    pub(super) cache: Arc<RouteCache>,
    pub(super) metrics: Arc<Metrics>,
}

impl Catalog {
    /// The Redis connection (a cheap handle onto the shared one), the key
    /// prefix and the call timeout, for other state kept beside the
    /// catalog's (conversion claims, customer bindings).
    pub fn redis(&self) -> (ConnectionManager, &str, Duration) {
        (self.conn.clone(), &self.keys.prefix, self.timeout)
    }

    /// This node's in-memory mirror of the catalog.
    pub fn cache(&self) -> &Arc<RouteCache> {
        &self.cache
    }

    /// Connects to Redis, retrying (with a log line each time) until it
    /// answers or `stop` is cancelled, then loads the whole catalog.
    pub async fn connect(
        cfg: &RedisConfig,
        cache: Arc<RouteCache>,
        metrics: Arc<Metrics>,
        stop: &CancellationToken,
    ) -> anyhow::Result<Catalog> {
        let client =
            redis::Client::open(cfg.url.as_str()).map_err(|e| anyhow::anyhow!("redis.url: {e}"))?;
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let retry = Duration::from_secs(cfg.connect_retry_secs);
        let mgr_cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        // Constant: at start Redis is usually a sibling service coming up,
        // expected back at a steady pace.
        let mut backoff = Backoff::constant(retry);
        loop {
            let attempt = async {
                let conn = client
                    .get_connection_manager_with_config(mgr_cfg.clone())
                    .await?;
                let catalog = Catalog {
                    client: client.clone(),
                    conn,
                    keys: Keys::new(&cfg.prefix),
                    timeout,
                    resync: Duration::from_secs(cfg.resync_interval_secs),
                    retry,
                    cache: cache.clone(),
                    metrics: metrics.clone(),
                };
                catalog.reload().await?;
                Ok::<_, StoreError>(catalog)
            };
            match tokio::time::timeout(timeout * 4, attempt).await {
                Ok(Ok(c)) => {
                    info!(links = c.cache.len(), "catalog loaded from redis");
                    return Ok(c);
                }
                Ok(Err(e)) => {
                    warn!(url = %cfg.url, error = %e, retry_secs = backoff.current().as_secs(), "redis unreachable at start; retrying")
                }
                Err(_) => {
                    warn!(url = %cfg.url, retry_secs = backoff.current().as_secs(), "redis did not answer at start; retrying")
                }
            }
            if backoff.wait(stop).await.is_err() {
                anyhow::bail!("stopped while waiting for redis");
            }
        }
    }

    pub(super) async fn run<T>(
        &self,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(r) => {
                if r.is_err() {
                    self.metrics
                        .catalog_events
                        .with_label_values(&["redis_error"])
                        .inc();
                }
                Ok(r?)
            }
            Err(_) => {
                self.metrics
                    .catalog_events
                    .with_label_values(&["redis_error"])
                    .inc();
                Err(StoreError::Unavailable("timed out".into()))
            }
        }
    }

    /// Reloads everything from Redis into the cache.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let partners = self.all::<Partner>().await?;
        let offers = self.all::<Offer>().await?;
        let links = self.all::<Link>().await?;
        self.cache.load(partners, offers, links);
        self.metrics
            .catalog_events
            .with_label_values(&["reload"])
            .inc();
        Ok(())
    }

    async fn all<T: Entity>(&self) -> Result<Vec<T>, StoreError> {
        let mut conn = self.conn.clone();
        let key = self.keys.hash(T::KIND);
        let mut out = Vec::new();
        let mut cursor: u64 = 0;
        // HSCAN in chunks rather than one HGETALL: a million links would
        // otherwise arrive as one reply of a few hundred MB.
        loop {
            let (next, chunk): (u64, Vec<(String, String)>) = self
                .run(
                    redis::cmd("HSCAN")
                        .arg(&key)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(10_000)
                        .query_async(&mut conn),
                )
                .await?;
            out.extend(chunk.into_iter().filter_map(|(id, json)| match serde_json::from_str(&json) {
                Ok(v) => Some(v),
                Err(e) => {
                    warn!(kind = T::KIND.singular(), key = %key, field = %id, error = %e, "stored entity does not decode; skipped, the rest of the catalog loads");
                    None
                }
            }));
            if next == 0 {
                return Ok(out);
            }
            cursor = next;
        }
    }

    /// One entity.
    pub async fn get<T: Entity>(&self, id: u64) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        let key = self.keys.hash(T::KIND);
        let raw: Option<String> = self
            .run(redis::cmd("HGET").arg(&key).arg(id).query_async(&mut conn))
            .await?;
        let raw = raw.ok_or(StoreError::NotFound(T::KIND.singular()))?;
        serde_json::from_str(&raw).map_err(|e| StoreError::Corrupt {
            kind: T::KIND.singular(),
            id,
            key,
            error: e.to_string(),
        })
    }

    /// A page of entities with ids above `cursor`.
    pub async fn list<T: Entity>(&self, cursor: u64, limit: usize) -> Result<Page<T>, StoreError> {
        let mut conn = self.conn.clone();
        let ids: Vec<u64> = self
            .run(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(self.keys.index(T::KIND))
                    .arg(format!("({cursor}"))
                    .arg("+inf")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit + 1)
                    .query_async(&mut conn),
            )
            .await?;
        let more = ids.len() > limit;
        let ids = &ids[..ids.len().min(limit)];
        let mut items = Vec::with_capacity(ids.len());
        if !ids.is_empty() {
            let raws: Vec<Option<String>> = self
                .run(
                    redis::cmd("HMGET")
                        .arg(self.keys.hash(T::KIND))
                        .arg(ids)
                        .query_async(&mut conn),
                )
                .await?;
            let key = self.keys.hash(T::KIND);
            // A listing answers with what decodes; GET of the broken id
            // names the problem.
            items.extend(ids.iter().zip(raws).filter_map(|(id, raw)| {
                serde_json::from_str(&raw?)
                    .inspect_err(|e| {
                        warn!(kind = T::KIND.singular(), key = %key, field = *id, error = %e, "stored entity does not decode; left out of the listing");
                    })
                    .ok()
            }));
        }
        let next_cursor = if more {
            ids.last().map(|i| i.to_string())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    pub(super) async fn next_id(&self, kind: Kind) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        self.run(
            redis::cmd("INCR")
                .arg(self.keys.seq(kind))
                .query_async(&mut conn),
        )
        .await
    }

    /// The change counter now.
    pub(super) async fn version(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let v: Option<u64> = self
            .run(
                redis::cmd("GET")
                    .arg(&self.keys.version)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(v.unwrap_or(0))
    }

    /// Stores `entity` and publishes the change, in one script (nothing is
    /// published unless it is stored), then applies it locally.
    async fn put<T: Entity>(&self, entity: &T) -> Result<(), StoreError> {
        let id = entity.id();
        let json = serde_json::to_string(entity).expect("entities serialize");
        let change =
            serde_json::to_string(&T::change(id, Some(entity.clone()))).expect("changes serialize");
        let mut conn = self.conn.clone();
        let _: u64 = self
            .run(
                redis::cmd("EVAL")
                    .arg(PUT_SCRIPT)
                    .arg(4)
                    .arg(self.keys.hash(T::KIND))
                    .arg(self.keys.index(T::KIND))
                    .arg(&self.keys.version)
                    .arg(&self.keys.channel)
                    .arg(id)
                    .arg(json)
                    .arg(change)
                    .query_async(&mut conn),
            )
            .await?;
        self.cache.apply(T::change(id, Some(entity.clone())));
        Ok(())
    }

    /// Deletes entity `id` (and `extra` hash field: a link's code) and
    /// publishes it, in one script, then applies it locally.
    async fn remove<T: Entity>(
        &self,
        id: u64,
        extra: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        let change = serde_json::to_string(&T::change(id, None)).expect("changes serialize");
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(REMOVE_SCRIPT)
            .arg(if extra.is_some() { 5 } else { 4 })
            .arg(self.keys.hash(T::KIND))
            .arg(self.keys.index(T::KIND))
            .arg(&self.keys.version)
            .arg(&self.keys.channel);
        if let Some((key, _)) = extra {
            cmd.arg(key);
        }
        cmd.arg(id).arg(change);
        if let Some((_, field)) = extra {
            cmd.arg(field);
        }
        let _: u64 = self.run(cmd.query_async(&mut conn)).await?;
        self.cache.apply(T::change(id, None));
        Ok(())
    }

    /// Creates a partner with a fresh webhook secret.
    pub async fn create_partner(&self, req: NewPartner) -> Result<Partner, StoreError> {
        let id = self.next_id(Kind::Partner).await?;
        let p = Partner::create(id, req, random_token(), now_rfc3339())?;
        self.put(&p).await?;
        Ok(p)
    }

    /// Creates an offer with a fresh postback token.
    pub async fn create_offer(&self, req: NewOffer) -> Result<Offer, StoreError> {
        let id = self.next_id(Kind::Offer).await?;
        let secrets = GeneratedSecrets {
            postback_token: random_token(),
            signing_secret: random_token(),
        };
        let o = Offer::create(id, req, secrets, now_rfc3339())?;
        self.put(&o).await?;
        Ok(o)
    }

    /// Creates a link, reserving its code.
    pub async fn create_link(&self, req: NewLink) -> Result<Link, StoreError> {
        if let Some(code) = &req.code {
            check_code(code)?;
        }
        self.exists(Kind::Partner, req.partner_id, "partner_id")
            .await?;
        self.exists(Kind::Offer, req.offer_id, "offer_id").await?;
        req.default_subs.validate()?;
        let id = self.next_id(Kind::Link).await?;
        if id > MAX_LINK_ID {
            return Err(StoreError::Unavailable("link ids are exhausted".into()));
        }
        let mut link = Link {
            id,
            code: String::new(),
            partner_id: req.partner_id,
            offer_id: req.offer_id,
            status: req.status,
            created_at: now_rfc3339(),
            default_subs: req.default_subs,
        };
        match req.code {
            Some(code) => {
                link.code = code;
                if !self.insert_link(&link).await? {
                    return Err(StoreError::Conflict(FieldError::new(
                        "code",
                        "is already taken",
                    )));
                }
            }
            None => self.insert_with_random_code(&mut link).await?,
        }
        self.cache.apply(Link::change(id, Some(link.clone())));
        Ok(link)
    }

    async fn exists(&self, kind: Kind, id: u64, field: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let found: bool = self
            .run(
                redis::cmd("HEXISTS")
                    .arg(self.keys.hash(kind))
                    .arg(id)
                    .query_async(&mut conn),
            )
            .await?;
        if found {
            Ok(())
        } else {
            Err(StoreError::UnknownReference(FieldError::new(
                field,
                format!("no {} with id {id}", kind.singular()),
            )))
        }
    }

    /// Reserves `link`'s code and stores the link, numbered and published,
    /// in one script; false, with nothing written, when the code is taken.
    async fn insert_link(&self, link: &Link) -> Result<bool, StoreError> {
        let json = serde_json::to_string(link).expect("entities serialize");
        let change = serde_json::to_string(&Link::change(link.id, Some(link.clone())))
            .expect("changes serialize");
        let mut conn = self.conn.clone();
        let number: u64 = self
            .run(
                redis::cmd("EVAL")
                    .arg(INSERT_LINK_SCRIPT)
                    .arg(5)
                    .arg(&self.keys.codes)
                    .arg(self.keys.hash(Kind::Link))
                    .arg(self.keys.index(Kind::Link))
                    .arg(&self.keys.version)
                    .arg(&self.keys.channel)
                    .arg(&link.code)
                    .arg(link.id)
                    .arg(json)
                    .arg(change)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(number != 0)
    }

    /// Stores `link` under a fresh random code.
    async fn insert_with_random_code(&self, link: &mut Link) -> Result<(), StoreError> {
        // 47 random bits: a clash is rare, eight in a row is impossible in
        // practice.
        for _ in 0..8 {
            link.code = random_code();
            if self.insert_link(link).await? {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(
            "could not find a free link code".into(),
        ))
    }

    /// Changes an offer.
    pub async fn patch_offer(&self, id: u64, patch: OfferPatch) -> Result<Offer, StoreError> {
        let o = self.get::<Offer>(id).await?.patched(patch)?;
        self.put(&o).await?;
        Ok(o)
    }

    /// Changes a link.
    pub async fn patch_link(&self, id: u64, patch: LinkPatch) -> Result<Link, StoreError> {
        let l = self.get::<Link>(id).await?.patched(patch);
        self.put(&l).await?;
        Ok(l)
    }

    /// Deletes an entity; a deleted partner or offer leaves its links in
    /// place but unroutable.
    pub async fn delete(&self, kind: Kind, id: u64) -> Result<(), StoreError> {
        match kind {
            Kind::Partner => {
                self.get::<Partner>(id).await?;
                self.remove::<Partner>(id, None).await
            }
            Kind::Offer => {
                self.get::<Offer>(id).await?;
                self.remove::<Offer>(id, None).await
            }
            Kind::Link => {
                let link = self.get::<Link>(id).await?;
                let codes = self.keys.codes.clone();
                self.remove::<Link>(id, Some((&codes, &link.code))).await
            }
        }
    }
}

/// The current time as RFC 3339, to the second.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
