//! Micro-benchmarks of the redirect hot path, piece by piece and whole.
//!
//! `cargo bench --bench hot_path`. These measure; no test asserts a time.

use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use hyper::header::{HeaderMap, HeaderValue};
use trackedge::bot::BotDetector;
use trackedge::catalog::{Change, RouteCache};
use trackedge::click_id::{ClickFlags, ClickIdCodec};
use trackedge::client_ip::TrustedProxies;
use trackedge::config::LimitsConfig;
use trackedge::events::log::{EventLog, LogConfig};
use trackedge::events::{Event, EventSink, OrphanRow};
use trackedge::metrics::Metrics;
use trackedge::model::{Link, Offer, Partner, PartnerKind, Payout, Status};
use trackedge::ratelimit::ClickLimiter;
use trackedge::redirect::{ClickRequest, Heads, Redirector};

const LINKS: u64 = 100_000;
const UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36";

fn cache(metrics: &Arc<Metrics>) -> Arc<RouteCache> {
    let cache = Arc::new(RouteCache::new(metrics.clone()));
    let partner = Partner {
        id: 1,
        name: "p".into(),
        kind: PartnerKind::Affiliate,
        tier: None,
        postback_url: None,
        postback_format: Default::default(),
        webhook_secret: String::new(),
        status: Default::default(),
        created_at: "t".into(),
        link_pauses: Vec::new(),
        tier_history: Vec::new(),
        tier_below_since: None,
        email: None,
        website: None,
        promotion: None,
        status_changes: Vec::new(),
    };
    let offer = Offer {
        id: 1,
        name: "o".into(),
        url: "https://shop.example.com/landing?aff={partner_id}&cid={click_id}&s1={sub1}".into(),
        payout: Payout::Cpa {
            amount: "5".parse().unwrap(),
        },
        currency: "USD".into(),
        attribution_window_days: 30,
        hold_days: 30,
        postback_token: "t".into(),
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
        status: Status::Active,
        created_at: "t".into(),
        deal_protection_days: None,
        deal_conflict: Default::default(),
    };
    let links = (1..=LINKS)
        .map(|id| Link {
            id,
            code: format!("c{id}"),
            partner_id: 1,
            offer_id: 1,
            status: Status::Active,
            created_at: "t".into(),
            default_subs: Default::default(),
        })
        .collect();
    cache.load(vec![partner], vec![offer], links);
    cache.apply(Change::Link { id: 0, data: None });
    cache
}

fn pieces(c: &mut Criterion) {
    let metrics = Arc::new(Metrics::new());
    let cache = cache(&metrics);
    let codec = ClickIdCodec::new(b"bench-secret-0123456789", &[], 1);
    let id = codec.issue(42, 1_790_000_000_000, ClickFlags::default());

    c.bench_function("cache_lookup_100k", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = i % LINKS + 1;
            black_box(cache.lookup(&format!("c{i}")))
        })
    });
    c.bench_function("click_id_issue", |b| {
        b.iter(|| black_box(codec.issue(black_box(42), 1_790_000_000_000, ClickFlags::default())))
    });
    c.bench_function("click_id_verify", |b| {
        b.iter(|| black_box(codec.verify(black_box(id.as_str()))))
    });

    // What a redirect renders: the cached route's shared offer template,
    // with the click id, the link's ids and code, and the sub-ids.
    let route = cache.lookup("c42").expect("c42 is cached");
    c.bench_function("route_render", |b| {
        let mut out = String::with_capacity(256);
        b.iter(|| {
            out.clear();
            route.render_into(
                "c42",
                id.as_str(),
                ["news letter", "", "", "", ""],
                &mut out,
            );
            black_box(out.len())
        })
    });
    drop(route);

    let bots = BotDetector::default();
    c.bench_function("bot_verdict_cached", |b| {
        b.iter(|| black_box(bots.classify_cached(false, black_box(UA))))
    });
    c.bench_function("bot_verdict_browser", |b| {
        b.iter(|| black_box(bots.classify(false, black_box(UA))))
    });

    let limiter = ClickLimiter::new(&LimitsConfig {
        clicks_per_ip_per_minute: 120,
        clicks_burst: 30,
        max_tracked_ips: 1_000_000,
    });
    c.bench_function("rate_limit_check", |b| {
        let mut i = 0u32;
        b.iter(|| {
            i = i.wrapping_add(1);
            black_box(limiter.over_limit(IpAddr::from((i % 10_000).to_be_bytes())))
        })
    });

    let (sink, _drain) = sink(&metrics);
    let event = Event::Orphan(OrphanRow {
        ts: 1,
        code: "x",
        ip: "1.2.3.4",
        user_agent: UA,
        referer: "",
        is_bot: 0,
        node: "n",
    });
    c.bench_function("spool_record", |b| {
        b.iter(|| black_box(sink.record(&event)))
    });
}

/// A sink over a fresh log, and a thread that reads and acknowledges
/// everything (the shipper's part) so the log never fills.
fn sink(metrics: &Arc<Metrics>) -> (Arc<EventSink>, Drain) {
    let dir = tempfile::tempdir().unwrap();
    let log =
        Arc::new(EventLog::open(dir.path(), LogConfig::new(16 << 20, 256 << 20).unwrap()).unwrap());
    let mut reader = log.reader();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stop2, log2) = (stop.clone(), log.clone());
    let thread = std::thread::spawn(move || {
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let records = reader.read(50_000).unwrap();
            match records.last() {
                Some(r) => reader.ack(r.pos).unwrap(),
                None => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
            log2.maintain().unwrap();
        }
    });
    (
        Arc::new(EventSink::new(log, metrics.clone())),
        Drain {
            stop,
            thread: Some(thread),
            _dir: dir,
        },
    )
}

struct Drain {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Drain {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn whole_redirect(c: &mut Criterion) {
    let metrics = Arc::new(Metrics::new());
    let cache = cache(&metrics);
    let (sink, _drain) = sink(&metrics);
    let redirector = Redirector::new(
        cache,
        ClickIdCodec::new(b"bench-secret-0123456789", &[], 1),
        sink,
        TrustedProxies::new(vec!["127.0.0.0/8".parse().unwrap()]),
        Arc::new(ClickLimiter::new(&LimitsConfig {
            clicks_per_ip_per_minute: 0,
            clicks_burst: 1,
            max_tracked_ips: 1000,
        })),
        "bench".into(),
        None,
        metrics,
    );
    let mut headers = HeaderMap::new();
    headers.insert("user-agent", HeaderValue::from_static(UA));
    headers.insert(
        "referer",
        HeaderValue::from_static("https://blog.example.org/post/123"),
    );
    let peer: SocketAddr = "203.0.113.9:50000".parse().unwrap();
    c.bench_function("redirect_handle", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = i % LINKS + 1;
            let code = format!("c{i}");
            let resp = redirector.handle(&ClickRequest {
                code: &code,
                query: Some("sub1=newsletter&sub2=top"),
                is_head: false,
                headers: Heads::Map(&headers),
                peer,
            });
            black_box(resp)
        })
    });
}

/// The bot verdict per user agent, uncached:
/// `cargo bench --bench hot_path -- bot/`. (The hand-written detector the
/// crawler list replaced measured against it at the switch; its figures are
/// in README, Performance.)
fn bot_verdicts(c: &mut Criterion) {
    const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/26.6.1 Mobile/15E148 Safari/604.1";
    const GOOGLEBOT: &str = "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/41.0.2272.96 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    const SLACK: &str = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)";
    let browsers: Vec<&str> = include_str!("../tests/fixtures/browser-user-agents/user-agents.txt")
        .lines()
        .collect();
    let detector = BotDetector::default();
    for (name, ua) in [
        ("chrome", UA),
        ("iphone", IPHONE),
        ("googlebot", GOOGLEBOT),
        ("slackbot", SLACK),
        ("empty", ""),
    ] {
        c.bench_function(&format!("bot/{name}"), |b| {
            b.iter(|| black_box(detector.classify(false, black_box(ua))))
        });
    }
    // 981 distinct real browsers in turn: what a cache miss costs on
    // average, with no single user agent warm in the CPU's caches.
    let mut i = 0;
    c.bench_function("bot/browser_corpus", |b| {
        b.iter(|| {
            i = (i + 1) % browsers.len();
            black_box(detector.classify(false, black_box(browsers[i])))
        })
    });

    let mut group = c.benchmark_group("bot");
    group.sample_size(10);
    group.bench_function("compile", |b| b.iter(BotDetector::compile));
    group.finish();
}

criterion_group!(benches, pieces, bot_verdicts, whole_redirect);
criterion_main!(benches);
