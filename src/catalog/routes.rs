//! The route cache: every node's in-memory mirror of the catalog and the
//! routes built from it, the only part of the catalog the redirect path
//! reads.
//!
//! Pure memory: nothing here knows Redis. The store fills the cache with
//! [`RouteCache::load`] and both the store and the change channel feed it
//! [`Change`]s through [`RouteCache::apply`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use rustc_hash::FxBuildHasher;
use tracing::warn;

use super::change::Change;
use crate::metrics::Metrics;
use crate::model::{Link, Offer, Partner, Status};
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
    /// The link's default sub-ids, when it has any (most links: none, and
    /// no allocation).
    pub default_subs: Option<Arc<[Box<str>; 5]>>,
}

/// A link's id and owners, as [`RouteCache::links_where`] finds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkOwners {
    /// The link.
    pub link_id: u64,
    /// Its partner.
    pub partner_id: u64,
    /// Its offer.
    pub offer_id: u64,
}

/// What the cache keeps of a link: enough to build its route.
#[derive(Debug, Clone)]
struct CachedLink {
    code: CodeKey,
    partner_id: u64,
    offer_id: u64,
    active: bool,
    default_subs: Option<Arc<[Box<str>; 5]>>,
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
            default_subs: (!l.default_subs.is_empty())
                .then(|| Arc::new(l.default_subs.values().map(Box::<str>::from))),
        })
    }

    /// What a routed link was cached from.
    fn of_route(code: CodeKey, r: &Route) -> Self {
        CachedLink {
            code,
            partner_id: r.partner_id,
            offer_id: r.offer_id,
            // Only a link active in its own right is ever routed.
            active: true,
            default_subs: r.default_subs.clone(),
        }
    }
}

/// The in-memory mirror of the catalog and the routes built from it.
pub struct RouteCache {
    /// Active links by code: the only structure the redirect path reads.
    /// Routes sit in the map itself, next to their key, so a lookup touches
    /// one entry and no further allocation. Fx hashing: keys come from the admin API, not from clients, and a
    /// lookup of an absent key costs the same as any other.
    routes: DashMap<CodeKey, Route, FxBuildHasher>,
    /// Partners and offers as the conversion side reads them (a postback
    /// must not wait for a writer's mutex, held through a whole reload).
    /// Few entries, written where `state` is.
    partners: DashMap<u64, Arc<Partner>>,
    offers: DashMap<u64, Arc<Offer>>,
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
            partners: DashMap::new(),
            offers: DashMap::new(),
            state: Mutex::new(CacheState::default()),
            metrics,
        }
    }

    /// The route of an active link.
    ///
    /// The guard holds a read lock on one shard of the map: copy out what
    /// you need and drop it before anything that could block or take long
    /// (the click's log append may fault a page in or wait for a segment
    /// rotation). A change to any link of that shard waits until no reader
    /// holds it, and readers keep coming: long holds on a busy shard keep
    /// changes, and the admin call that made them, waiting.
    #[inline]
    pub fn lookup(&self, code: &str) -> Option<RouteRef<'_>> {
        let key = CodeKey::new(code)?;
        self.routes.get(&key)
    }

    /// The partner `id`, active or not.
    pub fn partner(&self, id: u64) -> Option<Arc<Partner>> {
        self.partners.get(&id).map(|p| Arc::clone(&p))
    }

    /// The offer `id`, active or not.
    pub fn offer(&self, id: u64) -> Option<Arc<Offer>> {
        self.offers.get(&id).map(|o| Arc::clone(&o))
    }

    /// The offer whose postback token is `token`. Every offer's token is
    /// compared in constant time, so the answer's timing tells nothing
    /// about how close a guess came.
    pub fn offer_by_token(&self, token: &str) -> Option<Arc<Offer>> {
        let mut found = None;
        for o in self.offers.iter() {
            if crate::secret::matches(token, &o.postback_token) {
                found = Some(Arc::clone(o.value()));
            }
        }
        found
    }

    /// Active links cached.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when no link is active.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Every cached link, routed or not, whose (partner id, offer id)
    /// `pick` keeps, by ascending link id. A scan of the whole cache: for
    /// the partner API's listings and access changes, never the redirect.
    /// There is no index by partner on purpose: a million links would pay
    /// for it in memory on every node, for calls made now and then.
    pub fn links_where(&self, pick: impl Fn(u64, u64) -> bool) -> Vec<LinkOwners> {
        let st = self.lock();
        let mut out: Vec<LinkOwners> = self
            .routes
            .iter()
            .filter(|r| pick(r.partner_id, r.offer_id))
            .map(|r| LinkOwners {
                link_id: r.link_id,
                partner_id: r.partner_id,
                offer_id: r.offer_id,
            })
            .chain(
                st.dormant
                    .iter()
                    .filter(|(_, l)| pick(l.partner_id, l.offer_id))
                    .map(|(id, l)| LinkOwners {
                        link_id: *id,
                        partner_id: l.partner_id,
                        offer_id: l.offer_id,
                    }),
            )
            .collect();
        drop(st);
        out.sort_unstable_by_key(|l| l.link_id);
        out.dedup_by_key(|l| l.link_id);
        out
    }

    /// True when a change to `code`'s route could take its shard's write
    /// lock right now, i.e. no route guard of that shard is alive: lets
    /// tests prove a caller released its guard.
    #[cfg(test)]
    pub(crate) fn writable(&self, code: &str) -> bool {
        let key = CodeKey::new(code).expect("a valid code");
        !self.routes.try_get_mut(&key).is_locked()
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
                    Some(p) => {
                        self.partners.insert(id, Arc::new(p.clone()));
                        st.partners.insert(id, p)
                    }
                    None => {
                        self.partners.remove(&id);
                        st.partners.remove(&id)
                    }
                };
                self.replace_where(&mut st, |l| l.partner_id == id);
            }
            Change::Offer { id, data } => {
                match &data {
                    Some(o) => self.offers.insert(id, Arc::new(o.clone())),
                    None => self.offers.remove(&id).map(|(_, o)| o),
                };
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
        let partner_ids: HashSet<u64> = partners.iter().map(|p| p.id).collect();
        self.partners.retain(|id, _| partner_ids.contains(id));
        for p in &partners {
            self.partners.insert(p.id, Arc::new(p.clone()));
        }
        let offer_ids: HashSet<u64> = offers.iter().map(|o| o.id).collect();
        self.offers.retain(|id, _| offer_ids.contains(id));
        for o in &offers {
            self.offers.insert(o.id, Arc::new(o.clone()));
        }
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
    if !partner.is_active() || offer.status != Status::Active {
        return None;
    }
    Some(Route {
        link_id: id,
        partner_id: link.partner_id,
        offer_id: link.offer_id,
        destination: template.clone(),
        default_subs: link.default_subs.clone(),
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

/// Entities for tests of the cache and of its readers.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::model::{Link, Offer, Partner, PartnerKind, PartnerStatus, Payout, Status};

    /// A partner `active` (`Status::Active`) or `suspended` (`Paused`).
    pub(crate) fn partner(id: u64, status: Status) -> Partner {
        let status = match status {
            Status::Active => PartnerStatus::Active,
            Status::Paused => PartnerStatus::Suspended,
        };
        Partner {
            id,
            name: "p".into(),
            kind: PartnerKind::Affiliate,
            tier: None,
            postback_url: None,
            postback_format: Default::default(),
            webhook_secret: String::new(),
            status,
            created_at: "t".into(),
            link_pauses: Vec::new(),
            tier_history: Vec::new(),
            tier_below_since: None,
            email: None,
            website: None,
            promotion: None,
            status_changes: Vec::new(),
        }
    }

    pub(crate) fn offer(id: u64, url: &str, status: Status) -> Offer {
        Offer {
            id,
            name: "o".into(),
            url: url.into(),
            payout: Payout::Cpa {
                amount: "1".parse().unwrap(),
            },
            currency: "USD".into(),
            attribution_window_days: 30,
            hold_days: 30,
            postback_token: "tok".into(),
            signing_secret: String::new(),
            payout_by_event: Vec::new(),
            payout_by_tier: Vec::new(),
            payout_by_partner: Vec::new(),
            recurring: Default::default(),
            pixel_status: Default::default(),
            min_click_seconds: 0,
            manual_review: false,
            caps: Default::default(),
            postback_allowlist: Vec::new(),
            visibility: Default::default(),
            status,
            created_at: "t".into(),
            deal_protection_days: None,
            deal_conflict: Default::default(),
        }
    }

    pub(crate) fn link(id: u64, code: &str, p: u64, o: u64, status: Status) -> Link {
        Link {
            id,
            code: code.into(),
            partner_id: p,
            offer_id: o,
            status,
            created_at: "t".into(),
            default_subs: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{link, offer, partner};
    use super::*;

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
    fn links_where_covers_routed_and_dormant_links() {
        let c = cache();
        let ids = |pick: &dyn Fn(u64, u64) -> bool| -> Vec<u64> {
            c.links_where(pick).iter().map(|l| l.link_id).collect()
        };
        // 100 routes; 101 (paused partner), 102 (paused), 103 (no offer)
        // are dormant: every one is listed.
        assert_eq!(ids(&|p, _| p == 1), vec![100, 102, 103]);
        assert_eq!(ids(&|p, _| p == 2), vec![101]);
        assert_eq!(ids(&|_, o| o == 10), vec![100, 101, 102]);
        assert!(ids(&|p, _| p == 3).is_empty());
        assert_eq!(
            c.links_where(|_, o| o == 99),
            vec![LinkOwners {
                link_id: 103,
                partner_id: 1,
                offer_id: 99
            }]
        );
    }

    #[test]
    fn partners_and_offers_are_readable_without_the_writers_lock() {
        let c = cache();
        let tokens: Vec<(u64, String)> = [10u64, 11, 12]
            .iter()
            .filter_map(|id| c.offer(*id).map(|o| (*id, o.postback_token.clone())))
            .collect();
        assert!(!tokens.is_empty());
        for (id, token) in &tokens {
            assert_eq!(c.offer_by_token(token).map(|o| o.id), Some(*id));
        }
        assert!(c.offer_by_token("no-such-token").is_none());
        assert!(c.offer_by_token("").is_none());
        assert_eq!(c.partner(1).map(|p| p.id), Some(1));
        // Changes and reloads keep them in step.
        c.apply(Change::Partner { id: 1, data: None });
        assert!(c.partner(1).is_none());
        let (id, token) = tokens[0].clone();
        c.apply(Change::Offer { id, data: None });
        assert!(c.offer(id).is_none());
        assert!(c.offer_by_token(&token).is_none());
        c.load(vec![], vec![], vec![]);
        assert!(tokens.iter().all(|(id, _)| c.offer(*id).is_none()));
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
    fn a_live_route_guard_blocks_changes_to_its_shard() {
        let c = cache();
        let guard = c.lookup("aaa").unwrap();
        assert!(!c.writable("aaa"), "the guard holds the shard");
        drop(guard);
        assert!(c.writable("aaa"));
    }
}
