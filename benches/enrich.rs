//! What enrichment costs per click, on the shipper's thread (never the
//! redirect's): the user agent parse uncached and cached, the IP database
//! lookup, the visitor hash, and a whole click both ways.
//!
//! `cargo bench --bench enrich`. The IP database benchmarks need
//! `data/geoip/geo-whois-asn-country.mmdb` (`scripts/services.sh geoip`);
//! without it they are left out, with a note. These measure; no test
//! asserts a time.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use trackedge::enrich::agent::{AgentCache, AgentParser};
use trackedge::enrich::geo::GeoDb;
use trackedge::enrich::visitor::{day_of, DayKey, DayKeys};
use trackedge::enrich::{ClickFacts, Enricher};
use trackedge::events::{ClickRow, ShippedClick};
use trackedge::metrics::Metrics;

const GEOIP: &str = "data/geoip/geo-whois-asn-country.mmdb";

/// A day's timestamp (2026-01-15 12:00 UTC) and key.
const TS: u32 = 1_768_478_400;

/// Real browsers' user agents, as a mix of traffic brings them.
const AGENTS: [&str; 8] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36",
];

/// Public addresses across registries and families.
const IPS: [&str; 8] = [
    "8.8.8.8",
    "1.1.1.1",
    "81.2.69.142",
    "203.0.113.7",
    "185.60.216.35",
    "2a00:1450:4001:80b::200e",
    "200.160.2.3",
    "41.203.64.1",
];

fn click<'a>(ip: &'a str, ua: &'a str) -> ClickRow<'a> {
    ClickRow {
        click_id: "0A2b5nkX12I0sfAI8Qi4Oy2LGb50BiqH",
        ts: TS,
        code: "summer",
        link_id: 7,
        partner_id: 1,
        offer_id: 2,
        sub1: "",
        sub2: "",
        sub3: "",
        sub4: "",
        sub5: "",
        ip,
        user_agent: ua,
        referer: "",
        is_bot: 0,
        is_rate_limited: 0,
        country: "",
        device: "desktop",
        node: "n1",
    }
}

fn key() -> DayKey {
    DayKey::from_hex(&"5a".repeat(32)).expect("64 hex digits")
}

fn geo() -> Option<GeoDb> {
    match GeoDb::open(Path::new(GEOIP)) {
        Ok(db) => Some(db),
        Err(e) => {
            eprintln!("note: {e}; IP database benchmarks left out (scripts/services.sh geoip)");
            None
        }
    }
}

fn enricher(parser: &Arc<AgentParser>, geo: Option<GeoDb>, metrics: &Metrics) -> Enricher {
    Enricher::with_parts(
        geo,
        Some(AgentCache::new(parser.clone(), 20_000)),
        DayKeys::fixed([(day_of(TS), key())]),
        false,
        metrics,
    )
}

fn benches(c: &mut Criterion) {
    let started = Instant::now();
    let parser = Arc::new(AgentParser::new().expect("the vendored rules compile"));
    eprintln!(
        "note: compiling uap-core's rules took {:.0} ms (once, at start)",
        started.elapsed().as_secs_f64() * 1000.0
    );
    let metrics = Metrics::new();

    let mut g = c.benchmark_group("agent");
    let mut i = 0;
    g.bench_function("parse_uncached", |b| {
        b.iter(|| {
            i = (i + 1) % AGENTS.len();
            black_box(parser.parse(black_box(AGENTS[i])))
        })
    });
    let mut cache = AgentCache::new(parser.clone(), 20_000);
    g.bench_function("cached", |b| {
        b.iter(|| {
            i = (i + 1) % AGENTS.len();
            black_box(cache.get(black_box(AGENTS[i])))
        })
    });
    g.finish();

    let db = geo();
    if let Some(db) = &db {
        let mut i = 0;
        c.bench_function("geo/lookup", |b| {
            b.iter(|| {
                i = (i + 1) % IPS.len();
                black_box(db.country_of(black_box(IPS[i])))
            })
        });
    }

    let k = key();
    c.bench_function("visitor/hash", |b| {
        b.iter(|| black_box(k.visitor(black_box(IPS[0]), black_box(AGENTS[0]))))
    });

    // A whole click: enrich, then build the row the INSERT writes.
    let mut g = c.benchmark_group("click");
    let mut e = enricher(&parser, geo(), &metrics);
    let mut i = 0;
    g.bench_function("cached_agent", |b| {
        b.iter(|| {
            i = (i + 1) % AGENTS.len();
            let row = click(IPS[i], AGENTS[i]);
            let with = e.enrich(ClickFacts::from(&row));
            black_box(ShippedClick::enriched(row, &with, e.store_ip()).visitor)
        })
    });
    // Every click a user agent never seen: a made-up version number each
    // time, so each parse misses the cache.
    let mut n = 0u64;
    g.bench_function("uncached_agent", |b| {
        b.iter_batched(
            || {
                n += 1;
                format!("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.{n}.0 Safari/537.36")
            },
            |ua| {
                let row = click(IPS[0], &ua);
                let with = e.enrich(ClickFacts::from(&row));
                black_box(ShippedClick::enriched(row, &with, e.store_ip()).visitor)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(enrich, benches);
criterion_main!(enrich);
