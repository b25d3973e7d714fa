//! The catalog of partners, offers and links: stored in Redis, mirrored in
//! every node's memory, kept current by a change channel.
//!
//! Writes go to Redis in one MULTI that also numbers the change (a counter
//! in Redis) and publishes it on `{prefix}changes`; every node applies
//! published changes to its [`RouteCache`], and the writing node applies its
//! own at once, so a deleted link stops redirecting on this node before the
//! admin call answers and on every other node when the message arrives. A
//! full reload runs after every (re)subscription, and when the numbers show
//! a missed message (a gap, or a counter ahead of what was applied for a
//! whole `resync_interval_secs`); a quiet catalog is never reloaded.
//!
//! The redirect path reads only [`RouteCache::lookup`]: a `DashMap` read,
//! no I/O. Redis being down leaves the cache as it was.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use rustc_hash::FxBuildHasher;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::click_id::MAX_LINK_ID;
use crate::config::RedisConfig;
use crate::metrics::Metrics;
use crate::model::{
    check_code, random_code, random_token, FieldError, Link, LinkPatch, NewLink, NewOffer,
    NewPartner, Offer, OfferPatch, Partner, PartnerPatch, Status,
};
use crate::template::{is_valid_code, Template, MAX_CODE_LEN};

/// A link code held inline: up to [`MAX_CODE_LEN`] ASCII alphanumerics,
/// zero-padded (no code byte is zero, so the padding is unambiguous).
///
/// The route map is keyed by it so a lookup hashes and compares 32 bytes in
/// place instead of following a pointer to a string on the heap: with a
/// million links that pointer is a cache miss on every click.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C, align(8))]
pub struct CodeKey([u8; MAX_CODE_LEN]);

impl CodeKey {
    /// The key of `code`, or `None` when it is not a valid code.
    #[inline]
    pub fn new(code: &str) -> Option<CodeKey> {
        if !is_valid_code(code) {
            return None;
        }
        let mut bytes = [0u8; MAX_CODE_LEN];
        bytes[..code.len()].copy_from_slice(code.as_bytes());
        Some(CodeKey(bytes))
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        let len = self.0.iter().position(|&b| b == 0).unwrap_or(MAX_CODE_LEN);
        // Built from a `&str` of ASCII bytes only.
        std::str::from_utf8(&self.0[..len]).expect("codes are ASCII")
    }

    fn words(&self) -> [u64; 4] {
        std::array::from_fn(|i| {
            u64::from_ne_bytes(self.0[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
        })
    }
}

impl std::hash::Hash for CodeKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for w in self.words() {
            state.write_u64(w);
        }
    }
}

impl std::fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for CodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A route borrowed from the cache (see [`RouteCache::lookup`]).
pub type RouteRef<'a> = dashmap::mapref::one::Ref<'a, CodeKey, Route>;

/// What the redirect path needs of one active link, prepared ahead.
#[derive(Debug)]
pub struct Route {
    /// Link id, carried in click ids. (The code is the route's key.)
    pub link_id: u64,
    /// The partner.
    pub partner_id: u64,
    /// The offer.
    pub offer_id: u64,
    /// The offer's landing URL, parsed once per offer and shared by all its
    /// links (a million links cost no million URL copies), with a
    /// `click_id` parameter added when the URL had no macro for it. Render
    /// with [`crate::template::OFFER_MACROS`]' values.
    pub destination: Arc<Template>,
}

/// What the cache keeps of a link: enough to build its route.
#[derive(Debug, Clone)]
struct CachedLink {
    code: CodeKey,
    partner_id: u64,
    offer_id: u64,
    active: bool,
}

impl CachedLink {
    /// `None`, with a warning, for a stored code that is not a valid code
    /// (the API never writes one): such a link cannot be routed.
    fn of(l: &Link) -> Option<Self> {
        let Some(code) = CodeKey::new(&l.code) else {
            warn!(link = l.id, code = %l.code, "stored link has an invalid code; not routed");
            return None;
        };
        Some(CachedLink {
            code,
            partner_id: l.partner_id,
            offer_id: l.offer_id,
            active: l.status == Status::Active,
        })
    }
}

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

/// A change published on the channel: the entity's new state, or `None`
/// when it was deleted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Change {
    /// A partner changed.
    Partner {
        /// Its id.
        id: u64,
        /// Its new state.
        data: Option<Partner>,
    },
    /// An offer changed.
    Offer {
        /// Its id.
        id: u64,
        /// Its new state.
        data: Option<Offer>,
    },
    /// A link changed.
    Link {
        /// Its id.
        id: u64,
        /// Its new state.
        data: Option<Link>,
    },
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
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// The in-memory mirror of the catalog and the routes built from it.
pub struct RouteCache {
    /// Active links by code: the only structure the redirect path reads.
    /// Routes sit in the map itself, next to their key, so a lookup touches
    /// one entry and no further allocation. Fx hashing: keys come from the admin API, not from clients, and a
    /// lookup of an absent key costs the same as any other.
    routes: DashMap<CodeKey, Route, FxBuildHasher>,
    /// Everything else, touched only by writers; the mutex serializes them
    /// so a route is always built from one consistent state.
    state: Mutex<CacheState>,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct CacheState {
    partners: HashMap<u64, Partner>,
    offers: HashMap<u64, (Offer, Arc<Template>)>,
    /// Links that do not route (paused, or their partner or offer is
    /// inactive or missing), kept to route them again when that changes.
    /// Routable links live only in `routes`: a million of them cost one map.
    dormant: HashMap<u64, CachedLink>,
}

impl RouteCache {
    /// An empty cache.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        RouteCache {
            routes: DashMap::with_hasher(FxBuildHasher),
            state: Mutex::new(CacheState::default()),
            metrics,
        }
    }

    /// The route of an active link.
    #[inline]
    ///
    /// The guard holds a read lock on one shard of the map: drop it before
    /// anything that could wait, since writers of that shard wait for it.
    pub fn lookup(&self, code: &str) -> Option<RouteRef<'_>> {
        let key = CodeKey::new(code)?;
        self.routes.get(&key)
    }

    /// Active links cached.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when no link is active.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        // A panic while holding the lock leaves plain maps behind, still
        // usable: recover rather than poison every later writer.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies one change.
    pub fn apply(&self, change: Change) {
        let mut st = self.lock();
        match change {
            Change::Partner { id, data } => {
                match data {
                    Some(p) => st.partners.insert(id, p),
                    None => st.partners.remove(&id),
                };
                self.replace_where(&mut st, |l| l.partner_id == id);
            }
            Change::Offer { id, data } => {
                match data.and_then(|o| offer_template(&o).map(|t| (o, t))) {
                    Some(pair) => st.offers.insert(id, pair),
                    None => st.offers.remove(&id),
                };
                self.replace_where(&mut st, |l| l.offer_id == id);
            }
            Change::Link { id, data } => {
                if st.dormant.remove(&id).is_none() {
                    match data.as_ref().and_then(|l| CodeKey::new(&l.code)) {
                        // A link's code never changes: its route, if any,
                        // is under the same code.
                        Some(code) => {
                            self.routes.remove_if(&code, |_, r| r.link_id == id);
                        }
                        // Deletions are rare: finding the code by a scan
                        // beats keeping an id index for a million links.
                        None => self.routes.retain(|_, r| r.link_id != id),
                    }
                }
                if let Some(l) = data.as_ref().and_then(CachedLink::of) {
                    self.place(&mut st, id, l);
                }
            }
        }
        self.metrics.links_cached.set(self.routes.len() as i64);
    }

    /// Replaces the whole catalog, e.g. after a reload from Redis.
    pub fn load(&self, partners: Vec<Partner>, offers: Vec<Offer>, links: Vec<Link>) {
        let mut st = self.lock();
        st.partners = partners.into_iter().map(|p| (p.id, p)).collect();
        st.offers = offers
            .into_iter()
            .filter_map(|o| offer_template(&o).map(|t| (o.id, (o, t))))
            .collect();
        st.dormant = HashMap::new();
        let mut live: HashSet<u64> = HashSet::with_capacity(links.len());
        for l in &links {
            if let Some(cached) = CachedLink::of(l) {
                if self.place(&mut st, l.id, cached) {
                    live.insert(l.id);
                }
            }
        }
        drop(links);
        self.routes.retain(|_, r| live.contains(&r.link_id));
        self.metrics.links_cached.set(self.routes.len() as i64);
    }

    /// Re-places every link matching `pick`, routed or dormant.
    fn replace_where(&self, st: &mut CacheState, pick: impl Fn(&CachedLink) -> bool) {
        let mut affected: Vec<(u64, CachedLink)> = self
            .routes
            .iter()
            .map(|r| (r.link_id, CachedLink::of_route(*r.key(), r.value())))
            .filter(|(_, l)| pick(l))
            .collect();
        let dormant: Vec<u64> = st
            .dormant
            .iter()
            .filter(|(_, l)| pick(l))
            .map(|(id, _)| *id)
            .collect();
        for id in dormant {
            if let Some(l) = st.dormant.remove(&id) {
                affected.push((id, l));
            }
        }
        for (id, l) in affected {
            self.place(st, id, l);
        }
    }

    /// Routes a link when it can, else keeps it dormant; true when routed.
    fn place(&self, st: &mut CacheState, id: u64, link: CachedLink) -> bool {
        match route_for(st, id, &link) {
            Some(route) => {
                let same = self
                    .routes
                    .get(&link.code)
                    .is_some_and(|r| same_route(&r, &route));
                if !same {
                    self.routes.insert(link.code, route);
                }
                true
            }
            None => {
                self.routes.remove_if(&link.code, |_, r| r.link_id == id);
                st.dormant.insert(id, link);
                false
            }
        }
    }
}

impl CachedLink {
    fn of_route(code: CodeKey, r: &Route) -> Self {
        CachedLink {
            code,
            partner_id: r.partner_id,
            offer_id: r.offer_id,
            // Only a link active in its own right is ever routed.
            active: true,
        }
    }
}

/// An offer's destination template, `click_id` ensured; `None` (and the
/// offer's links unroutable) if a stored URL no longer parses.
fn offer_template(o: &Offer) -> Option<Arc<Template>> {
    o.template()
        .ok()
        .map(|t| Arc::new(t.ensure_query_param("click_id", 0)))
}

fn same_route(a: &Route, b: &Route) -> bool {
    a.link_id == b.link_id
        && a.partner_id == b.partner_id
        && a.offer_id == b.offer_id
        && Arc::ptr_eq(&a.destination, &b.destination)
}

/// A link's route when it, its partner and its offer are all active.
fn route_for(st: &CacheState, id: u64, link: &CachedLink) -> Option<Route> {
    if !link.active {
        return None;
    }
    let partner = st.partners.get(&link.partner_id)?;
    let (offer, template) = st.offers.get(&link.offer_id)?;
    if partner.status != Status::Active || offer.status != Status::Active {
        return None;
    }
    Some(Route {
        link_id: id,
        partner_id: link.partner_id,
        offer_id: link.offer_id,
        destination: template.clone(),
    })
}

impl Route {
    /// Appends the destination URL of the link `code` (this route's key)
    /// for `click_id` and the sub-ids to `out`.
    pub fn render_into(&self, code: &str, click_id: &str, subs: [&str; 5], out: &mut String) {
        let mut pid = itoa::Buffer::new();
        let mut oid = itoa::Buffer::new();
        let [s1, s2, s3, s4, s5] = subs;
        self.destination.render_into(
            &[
                click_id,
                pid.format(self.partner_id),
                oid.format(self.offer_id),
                code,
                s1,
                s2,
                s3,
                s4,
                s5,
            ],
            out,
        );
    }

    /// The destination URL of the link `code` for `click_id` and the sub-ids.
    pub fn render(&self, code: &str, click_id: &str, subs: [&str; 5]) -> String {
        let mut out = String::with_capacity(self.destination.len_hint() + 96);
        self.render_into(code, click_id, subs, &mut out);
        out
    }
}

/// Numbers a change and publishes it as `{number}|{json}`, atomically.
const PUBLISH_SCRIPT: &str =
    "local v = redis.call('INCR', KEYS[1]) redis.call('PUBLISH', KEYS[2], v .. '|' .. ARGV[1]) return v";

/// Splits a change message into its number and change.
fn parse_message(bytes: &[u8]) -> Option<(u64, Change)> {
    let bar = bytes.iter().position(|&b| b == b'|')?;
    let v = std::str::from_utf8(&bytes[..bar]).ok()?.parse().ok()?;
    let change = serde_json::from_slice(&bytes[bar + 1..]).ok()?;
    Some((v, change))
}

/// Redis key names, all under the configured prefix.
#[derive(Debug, Clone)]
struct Keys {
    prefix: String,
    channel: String,
    codes: String,
    /// Counts changes; every change message carries its number.
    version: String,
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
    fn hash(&self, k: Kind) -> String {
        format!("{}{}", self.prefix, k.plural())
    }
    fn index(&self, k: Kind) -> String {
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
    client: redis::Client,
    conn: ConnectionManager,
    keys: Keys,
    /// Bounds every admin-side Redis call, so an outage answers 503
    /// quickly instead of hanging the request.
    timeout: Duration,
    resync: Duration,
    retry: Duration,
    cache: Arc<RouteCache>,
    metrics: Arc<Metrics>,
}

impl Catalog {
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
                    warn!(url = %cfg.url, error = %e, retry_secs = retry.as_secs(), "redis unreachable at start; retrying")
                }
                Err(_) => {
                    warn!(url = %cfg.url, retry_secs = retry.as_secs(), "redis did not answer at start; retrying")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(retry) => {}
                _ = stop.cancelled() => anyhow::bail!("stopped while waiting for redis"),
            }
        }
    }

    async fn run<T>(
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
                    warn!(kind = T::KIND.singular(), id, error = %e, "undecodable catalog entry skipped");
                    None
                }
            }));
            if next == 0 {
                return Ok(out);
            }
            cursor = next;
        }
    }

    /// Follows the change channel until `stop`: applies every change,
    /// reloads after each (re)subscription and every resync interval.
    pub async fn sync(self: Arc<Self>, stop: CancellationToken) {
        loop {
            match self.follow(&stop).await {
                Ok(()) => return,
                Err(e) => {
                    self.metrics
                        .catalog_events
                        .with_label_values(&["redis_error"])
                        .inc();
                    warn!(error = %e, retry_secs = self.retry.as_secs(), "redis change channel lost; serving from the cache and reconnecting");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.retry) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// One subscription's life; `Ok` only when stopped.
    ///
    /// Every change message carries the change counter's value. A message
    /// at or below the last applied number is already reflected (it
    /// predates a reload) and is skipped; one that skips a number means a
    /// message was missed, and so does a counter that stays ahead of the
    /// applied number for a whole check interval: either triggers a full
    /// reload. So a quiet catalog is never reloaded for nothing.
    async fn follow(&self, stop: &CancellationToken) -> Result<(), StoreError> {
        let mut pubsub = tokio::time::timeout(self.timeout, self.client.get_async_pubsub())
            .await
            .map_err(|_| StoreError::Unavailable("timed out subscribing".into()))??;
        pubsub.subscribe(&self.keys.channel).await?;
        // Subscribed first, then reloaded: nothing changed in between is lost.
        let mut applied = self.reload_versioned().await?;
        let mut messages = pubsub.on_message();
        let mut check = tokio::time::interval(self.resync);
        check.tick().await;
        // The counter seen at the previous check.
        let mut seen_before: Option<u64> = None;
        loop {
            tokio::select! {
                msg = messages.next() => {
                    let Some(msg) = msg else {
                        return Err(StoreError::Unavailable("subscription closed".into()));
                    };
                    match parse_message(msg.get_payload_bytes()) {
                        Some((v, _)) if v <= applied => {}
                        Some((v, change)) => {
                            if v > applied + 1 {
                                warn!(applied, received = v, "change messages were missed; reloading the catalog");
                                applied = self.reload_versioned().await?;
                            } else {
                                self.cache.apply(change);
                                applied = v;
                                self.metrics.catalog_events.with_label_values(&["change"]).inc();
                            }
                        }
                        None => warn!("undecodable change message ignored"),
                    }
                }
                _ = check.tick() => {
                    let now = match self.version().await {
                        Ok(v) => v,
                        Err(e) => {
                            warn!(error = %e, "catalog version check failed");
                            continue;
                        }
                    };
                    if seen_before.is_some_and(|prev| prev > applied) {
                        warn!(applied, counter = now, "a change message never arrived; reloading the catalog");
                        applied = self.reload_versioned().await?;
                    }
                    seen_before = Some(now);
                }
                _ = stop.cancelled() => return Ok(()),
            }
        }
    }

    /// Reloads and returns the change counter read before the reload: every
    /// change up to it is in the cache (later ones may be too).
    async fn reload_versioned(&self) -> Result<u64, StoreError> {
        let v = self.version().await?;
        self.reload().await?;
        Ok(v)
    }

    /// One entity.
    pub async fn get<T: Entity>(&self, id: u64) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        let key = self.keys.hash(T::KIND);
        let raw: Option<String> = self
            .run(redis::cmd("HGET").arg(&key).arg(id).query_async(&mut conn))
            .await?;
        let raw = raw.ok_or(StoreError::NotFound(T::KIND.singular()))?;
        serde_json::from_str(&raw).map_err(|e| {
            StoreError::Unavailable(format!(
                "stored {} {id} is undecodable: {e}",
                T::KIND.singular()
            ))
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
            items.extend(
                raws.into_iter()
                    .flatten()
                    .filter_map(|r| serde_json::from_str(&r).ok()),
            );
        }
        let next_cursor = if more {
            ids.last().map(|i| i.to_string())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn next_id(&self, kind: Kind) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        self.run(
            redis::cmd("INCR")
                .arg(self.keys.seq(kind))
                .query_async(&mut conn),
        )
        .await
    }

    /// Adds "number the change and publish it as `{version}|{json}`" to a
    /// transaction: one script, so the number and the message cannot part.
    fn publish(&self, pipe: &mut redis::Pipeline, change: String) {
        pipe.cmd("EVAL")
            .arg(PUBLISH_SCRIPT)
            .arg(2)
            .arg(&self.keys.version)
            .arg(&self.keys.channel)
            .arg(change)
            .ignore();
    }

    /// The change counter now.
    async fn version(&self) -> Result<u64, StoreError> {
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

    /// Stores `entity` and publishes the change, in one transaction, then
    /// applies it locally.
    async fn put<T: Entity>(&self, entity: &T) -> Result<(), StoreError> {
        let id = entity.id();
        let json = serde_json::to_string(entity).expect("entities serialize");
        let change =
            serde_json::to_string(&T::change(id, Some(entity.clone()))).expect("changes serialize");
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset(self.keys.hash(T::KIND), id, json)
            .ignore()
            .zadd(self.keys.index(T::KIND), id, id)
            .ignore();
        self.publish(&mut pipe, change);
        self.run(pipe.query_async::<()>(&mut conn)).await?;
        self.cache.apply(T::change(id, Some(entity.clone())));
        Ok(())
    }

    /// Deletes entity `id` (and `extra` hash fields) and publishes it.
    async fn remove<T: Entity>(
        &self,
        id: u64,
        extra: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        let change = serde_json::to_string(&T::change(id, None)).expect("changes serialize");
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hdel(self.keys.hash(T::KIND), id)
            .ignore()
            .zrem(self.keys.index(T::KIND), id)
            .ignore();
        if let Some((key, field)) = extra {
            pipe.hdel(key, field).ignore();
        }
        self.publish(&mut pipe, change);
        self.run(pipe.query_async::<()>(&mut conn)).await?;
        self.cache.apply(T::change(id, None));
        Ok(())
    }

    /// Creates a partner.
    pub async fn create_partner(&self, req: NewPartner) -> Result<Partner, StoreError> {
        let id = self.next_id(Kind::Partner).await?;
        let p = Partner::create(id, req, now_rfc3339())?;
        self.put(&p).await?;
        Ok(p)
    }

    /// Creates an offer with a fresh postback token.
    pub async fn create_offer(&self, req: NewOffer) -> Result<Offer, StoreError> {
        let id = self.next_id(Kind::Offer).await?;
        let o = Offer::create(id, req, random_token(), now_rfc3339())?;
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
        let id = self.next_id(Kind::Link).await?;
        if id > MAX_LINK_ID {
            return Err(StoreError::Unavailable("link ids are exhausted".into()));
        }
        let code = match req.code {
            Some(code) => {
                if !self.reserve_code(&code, id).await? {
                    return Err(StoreError::Conflict(FieldError::new(
                        "code",
                        "is already taken",
                    )));
                }
                code
            }
            None => self.generate_code(id).await?,
        };
        let link = Link {
            id,
            code,
            partner_id: req.partner_id,
            offer_id: req.offer_id,
            status: req.status,
            created_at: now_rfc3339(),
        };
        self.put(&link).await?;
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

    async fn reserve_code(&self, code: &str, id: u64) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        self.run(
            redis::cmd("HSETNX")
                .arg(&self.keys.codes)
                .arg(code)
                .arg(id)
                .query_async(&mut conn),
        )
        .await
    }

    async fn generate_code(&self, id: u64) -> Result<String, StoreError> {
        // 47 random bits: a clash is rare, eight in a row is impossible in
        // practice.
        for _ in 0..8 {
            let code = random_code();
            if self.reserve_code(&code, id).await? {
                return Ok(code);
            }
        }
        Err(StoreError::Unavailable(
            "could not find a free link code".into(),
        ))
    }

    /// Changes a partner.
    pub async fn patch_partner(&self, id: u64, patch: PartnerPatch) -> Result<Partner, StoreError> {
        let p = self.get::<Partner>(id).await?.patched(patch)?;
        self.put(&p).await?;
        Ok(p)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PartnerKind, Payout};

    fn partner(id: u64, status: Status) -> Partner {
        Partner {
            id,
            name: "p".into(),
            kind: PartnerKind::Affiliate,
            tier: None,
            postback_url: None,
            status,
            created_at: "t".into(),
        }
    }

    fn offer(id: u64, url: &str, status: Status) -> Offer {
        Offer {
            id,
            name: "o".into(),
            url: url.into(),
            payout: Payout::Cpa {
                amount: "1".parse().unwrap(),
            },
            currency: "USD".into(),
            attribution_window_days: 30,
            postback_token: "tok".into(),
            status,
            created_at: "t".into(),
        }
    }

    fn link(id: u64, code: &str, p: u64, o: u64, status: Status) -> Link {
        Link {
            id,
            code: code.into(),
            partner_id: p,
            offer_id: o,
            status,
            created_at: "t".into(),
        }
    }

    fn cache() -> RouteCache {
        let c = RouteCache::new(Arc::new(Metrics::new()));
        c.load(
            vec![partner(1, Status::Active), partner(2, Status::Paused)],
            vec![offer(
                10,
                "https://m.com/?c={click_id}&p={partner_id}",
                Status::Active,
            )],
            vec![
                link(100, "aaa", 1, 10, Status::Active),
                link(101, "bbb", 2, 10, Status::Active),
                link(102, "ccc", 1, 10, Status::Paused),
                link(103, "ddd", 1, 99, Status::Active),
            ],
        );
        c
    }

    fn routed(c: &RouteCache) -> Vec<String> {
        let mut v: Vec<String> = ["aaa", "bbb", "ccc", "ddd", "eee"]
            .iter()
            .filter(|code| c.lookup(code).is_some())
            .map(|s| s.to_string())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn only_fully_active_links_route() {
        let c = cache();
        assert_eq!(routed(&c), vec!["aaa"]);
        let r = c.lookup("aaa").unwrap();
        assert_eq!(r.render("aaa", "X", [""; 5]), "https://m.com/?c=X&p=1");
    }

    #[test]
    fn changes_update_routes() {
        let c = cache();
        c.apply(Change::Partner {
            id: 2,
            data: Some(partner(2, Status::Active)),
        });
        assert_eq!(routed(&c), vec!["aaa", "bbb"]);
        c.apply(Change::Link {
            id: 100,
            data: None,
        });
        assert_eq!(routed(&c), vec!["bbb"]);
        c.apply(Change::Link {
            id: 104,
            data: Some(link(104, "eee", 1, 10, Status::Active)),
        });
        assert_eq!(routed(&c), vec!["bbb", "eee"]);
        c.apply(Change::Offer {
            id: 10,
            data: Some(offer(10, "https://n.com/x", Status::Active)),
        });
        assert_eq!(
            c.lookup("eee").unwrap().render("eee", "Y", [""; 5]),
            "https://n.com/x?click_id=Y"
        );
        c.apply(Change::Offer {
            id: 10,
            data: Some(offer(10, "https://n.com/x", Status::Paused)),
        });
        assert!(routed(&c).is_empty());
        c.apply(Change::Offer {
            id: 10,
            data: Some(offer(10, "https://n.com/x", Status::Active)),
        });
        c.apply(Change::Partner { id: 1, data: None });
        assert_eq!(routed(&c), vec!["bbb"]);
    }

    #[test]
    fn reload_removes_vanished_links() {
        let c = cache();
        c.load(
            vec![partner(1, Status::Active)],
            vec![offer(10, "https://m.com/", Status::Active)],
            vec![],
        );
        assert!(c.is_empty());
    }

    #[test]
    fn numbered_messages_parse() {
        let (v, ch) = parse_message(br#"42|{"kind":"link","id":5,"data":null}"#).unwrap();
        assert_eq!(v, 42);
        assert!(matches!(ch, Change::Link { id: 5, data: None }));
        for bad in [&b"{}"[..], b"x|{}", b"7|not json", b"", b"|"] {
            assert!(parse_message(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn change_messages_round_trip() {
        let ch = Change::Link { id: 5, data: None };
        let text = serde_json::to_string(&ch).unwrap();
        assert_eq!(text, r#"{"kind":"link","id":5,"data":null}"#);
        assert!(matches!(
            serde_json::from_str::<Change>(&text).unwrap(),
            Change::Link { id: 5, data: None }
        ));
    }
}
