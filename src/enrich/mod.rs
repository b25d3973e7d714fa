//! Enrichment: what the shipper derives from each click before the INSERT,
//! on its own thread, so the redirect pays nothing for it (the redirect
//! records the raw click; see README, Enrichment, for the cost per click).
//!
//! - `country`: a trusted proxy's header, as the redirect recorded it, else
//!   the IP database ([`geo`]);
//! - `device`, `os`, `browser`: uap-core's rules over the user agent,
//!   remembered per user agent ([`agent`]);
//! - `visitor`: the daily keyed hash of IP and user agent ([`visitor`]);
//! - `ip`: emptied when `privacy.store_ip` is off, after the above used it.
//!
//! Per batch, [`Enricher::prepare`] makes sure the keys of the batch's days
//! are at hand (the only I/O, one Redis round trip per new day), then
//! [`Enricher::enrich`] derives each click's columns without I/O. This
//! module knows clicks only by the fields it reads: `events::shipped`
//! builds the row from a click and its [`Enriched`], so neither the rows
//! nor the config are imported here (`app` hands over [`EnrichSettings`]).

pub mod agent;
pub mod geo;
pub mod visitor;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::IntCounter;
use tracing::{info, warn};

use self::agent::{refine_device, Agent, AgentCache, AgentParser};
use self::geo::{pick_country, Country, GeoDb};
use self::visitor::{day_of, DayKeys, Lookup};
use crate::metrics::Metrics;

/// How the shipper enriches: the `enrich.*` and `privacy.*` keys of the
/// config, and where the day keys live (`redis.*`), which `app` hands
/// over.
#[derive(Debug, Clone)]
pub struct EnrichSettings {
    /// The IP country database; empty: none.
    pub geoip_path: PathBuf,
    /// Distinct user agents whose parse is kept.
    pub agent_cache_entries: usize,
    /// Whether raw IPs are stored.
    pub store_ip: bool,
    /// The Redis holding the day keys.
    pub redis_url: String,
    /// The prefix of every Redis key.
    pub redis_prefix: String,
    /// The longest one Redis call may take.
    pub redis_timeout: Duration,
}

/// What enrichment adds to one click.
#[derive(Debug, Clone, Default)]
pub struct Enriched {
    agent: Option<Arc<Agent>>,
    country: Option<Country>,
    visitor: u64,
}

impl Enriched {
    /// The `country` column: `from_proxy` (the trusted proxy's header the
    /// redirect recorded) if any, else the IP database's answer.
    pub fn country<'a>(&'a self, from_proxy: &'a str) -> &'a str {
        pick_country(from_proxy, self.country.as_ref())
    }

    /// The `device` column: the redirect's class, refined (see [`agent`]).
    pub fn device<'a>(&self, redirect: &'a str) -> &'a str {
        match &self.agent {
            Some(a) => refine_device(redirect, a),
            None => redirect,
        }
    }

    /// The `os` column, empty when unknown.
    pub fn os(&self) -> &str {
        self.agent.as_deref().map_or("", |a| &a.os)
    }

    /// The `browser` column, empty when unknown.
    pub fn browser(&self) -> &str {
        self.agent.as_deref().map_or("", |a| &a.browser)
    }

    /// The `visitor` column: 0 when unknown.
    pub fn visitor(&self) -> u64 {
        self.visitor
    }
}

/// The fields of a click that enrichment reads.
#[derive(Debug, Clone, Copy)]
pub struct ClickFacts<'a> {
    /// Unix seconds: the day whose key hashes the visitor.
    pub ts: u32,
    /// Client IP as text.
    pub ip: &'a str,
    /// User agent.
    pub user_agent: &'a str,
    /// A trusted proxy's country, or empty (then the database is asked).
    pub country: &'a str,
}

/// Counters of what enrichment could not do, resolved once.
struct Counters {
    visitor_expired: IntCounter,
    visitor_unavailable: IntCounter,
    agent_hit: IntCounter,
    agent_miss: IntCounter,
}

impl Counters {
    fn new(metrics: &Metrics) -> Counters {
        Counters {
            visitor_expired: metrics.visitor_unknown.with_label_values(&["expired"]),
            visitor_unavailable: metrics.visitor_unknown.with_label_values(&["redis"]),
            agent_hit: metrics.agent_lookups.with_label_values(&["hit"]),
            agent_miss: metrics.agent_lookups.with_label_values(&["miss"]),
        }
    }
}

/// Derives the enriched columns of clicks; owned by the shipper.
pub struct Enricher {
    /// `None`: no database (none configured, or it did not open).
    geo: Option<GeoDb>,
    /// `None`: no user agent rules (enrichment off).
    agents: Option<AgentCache>,
    keys: DayKeys,
    store_ip: bool,
    /// `None`: enrichment off; nothing derived, nothing counted.
    counters: Option<Counters>,
}

impl Enricher {
    /// Derives nothing and keeps the IP: each click ships as recorded.
    pub fn off() -> Enricher {
        Enricher {
            geo: None,
            agents: None,
            keys: DayKeys::none(),
            store_ip: true,
            counters: None,
        }
    }

    /// Enrichment as `settings` say: the IP database read, uap-core's
    /// rules compiled (a few hundred milliseconds: call this on the
    /// shipper's thread), and the day keys in Redis. A missing or
    /// unreadable IP database is one warning, not an error.
    pub fn new(settings: &EnrichSettings, metrics: &Metrics) -> Enricher {
        let keys = DayKeys::new(
            &settings.redis_url,
            &settings.redis_prefix,
            settings.redis_timeout,
        );
        let agents = match AgentParser::new() {
            Ok(p) => Some(AgentCache::new(Arc::new(p), settings.agent_cache_entries)),
            Err(e) => {
                // Unit tests compile these rules: reaching this is a bug,
                // and shipping clicks matters more than their OS column.
                tracing::error!(error = %e, "user agent rules did not load; os and browser stay empty");
                None
            }
        };
        Enricher::with_parts(
            open_geo(&settings.geoip_path),
            agents,
            keys,
            settings.store_ip,
            metrics,
        )
    }

    /// Enrichment from its parts (tests and benchmarks bring their own
    /// keys and database, and compile the rules once).
    pub fn with_parts(
        geo: Option<GeoDb>,
        agents: Option<AgentCache>,
        keys: DayKeys,
        store_ip: bool,
        metrics: &Metrics,
    ) -> Enricher {
        Enricher {
            geo,
            agents,
            keys,
            store_ip,
            counters: Some(Counters::new(metrics)),
        }
    }

    /// Whether raw IPs are stored (`privacy.store_ip`).
    pub fn store_ip(&self) -> bool {
        self.store_ip
    }

    /// Fetches the day keys of clicks at `timestamps` (from Redis, for
    /// days not seen yet), bounded by Redis's timeout; never fails: a day
    /// without its key ships with unknown visitors.
    pub async fn prepare(&mut self, timestamps: impl Iterator<Item = u32>) {
        if self.counters.is_none() {
            return;
        }
        let days: BTreeSet<u32> = timestamps.map(day_of).collect();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let today = day_of(u32::try_from(now).unwrap_or(u32::MAX));
        self.keys.prepare(&days, today).await;
    }

    /// What enrichment adds to `click` (no I/O: [`Enricher::prepare`] has
    /// fetched what it needs).
    pub fn enrich(&mut self, click: ClickFacts<'_>) -> Enriched {
        let Some(counters) = &self.counters else {
            return Enriched::default();
        };
        let agent = self.agents.as_mut().map(|cache| {
            let (agent, hit) = cache.get(click.user_agent);
            if hit {
                counters.agent_hit.inc();
            } else {
                counters.agent_miss.inc();
            }
            agent
        });
        let country = match (&self.geo, click.country.is_empty()) {
            (Some(db), true) => db.country_of(click.ip),
            _ => None,
        };
        let visitor = match self.keys.get(day_of(click.ts)) {
            Lookup::Key(k) => k.visitor(click.ip, click.user_agent),
            Lookup::Gone => {
                counters.visitor_expired.inc();
                0
            }
            Lookup::Unavailable => {
                counters.visitor_unavailable.inc();
                0
            }
        };
        Enriched {
            agent,
            country,
            visitor,
        }
    }
}

/// The IP database at `path`, or `None` with one warning (at start, the
/// only time it is opened).
fn open_geo(path: &Path) -> Option<GeoDb> {
    if path.as_os_str().is_empty() {
        return None;
    }
    match GeoDb::open(path) {
        Ok(db) => {
            info!(path = %path.display(), built = db.built(), "ip country database loaded");
            Some(db)
        }
        Err(e) => {
            warn!(path = %path.display(), error = %e, "no ip country database: country comes only from a trusted proxy's header (scripts/services.sh geoip fetches one)");
            None
        }
    }
}

#[cfg(test)]
mod tests;
