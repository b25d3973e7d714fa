//! Enrichment end to end: clicks in ClickHouse carry country, device, OS,
//! browser and the daily visitor hash; `privacy.store_ip` off keeps no IP
//! in any table; a Redis outage or an expired day key ships clicks with an
//! unknown visitor rather than holding them; retention on ClickHouse 18.16.
//!
//! The country database is the one `scripts/services.sh geoip` fetches
//! (scripts/test.sh runs it first); 8.8.8.8 is in it as `US`.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::Value;

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36";

/// The country database, which must be there: a test that silently
/// skipped countries would prove nothing.
fn geoip_path() -> String {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/geoip/geo-whois-asn-country.mmdb");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/services.sh geoip",
        path.display()
    );
    path.display().to_string()
}

/// A server config whose clients are who X-Forwarded-For says (the test
/// talks from loopback), with the country database.
fn config(tag: &str) -> ServerConfig {
    ServerConfig::new(tag)
        .with("TRACKEDGE_TRUSTED_PROXIES", "127.0.0.0/8")
        .with("TRACKEDGE_ENRICH_GEOIP_PATH", &geoip_path())
}

/// Clicks `link` as `user_agent` from `ip`, with `extra` headers; answers
/// the click id.
async fn click_as(
    server: &Server,
    link: &Value,
    user_agent: &str,
    ip: &str,
    extra: &[(&str, &str)],
) -> String {
    let url = format!("{}/{}", server.public, link["code"].as_str().unwrap());
    let mut req = client()
        .get(url)
        .header("user-agent", user_agent)
        .header("x-forwarded-for", ip);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    click_id_of(&resp)
}

/// One enriched click as ClickHouse holds it.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    ip: String,
    country: String,
    device: String,
    os: String,
    browser: String,
    visitor: u64,
}

/// The clicks of `db` by click id, once there are `n` of them.
fn rows(db: &str, n: usize) -> HashMap<String, Row> {
    let ch = &services().clickhouse;
    wait_for(&format!("{n} clicks in {db}"), || {
        let text = ch.query(&format!(
            "SELECT click_id, ip, country, device, os, browser, visitor FROM {db}.clicks"
        ));
        let rows: HashMap<String, Row> = text
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                let row = Row {
                    ip: f[1].into(),
                    country: f[2].into(),
                    device: f[3].into(),
                    os: f[4].into(),
                    browser: f[5].into(),
                    visitor: f[6].parse().unwrap(),
                };
                (f[0].to_string(), row)
            })
            .collect();
        (rows.len() >= n).then_some(rows)
    })
}

/// Today's `yyyymmdd` in UTC, from the test's own clock (the one the
/// servers use).
fn today() -> u32 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    trackedge::enrich::visitor::yyyymmdd((now.as_secs() / 86_400) as u32)
}

#[tokio::test]
async fn clicks_carry_country_device_os_browser_and_one_visitor_across_nodes() {
    let a = Server::start(config("enrich"));
    let link = seed_link(&a, "https://shop.example.com/?cid={click_id}", None).await;
    let iphone = click_as(&a, &link, IPHONE, "8.8.8.8", &[]).await;
    let iphone_again = click_as(&a, &link, IPHONE, "8.8.8.8", &[]).await;
    let chrome = click_as(&a, &link, CHROME, "8.8.8.8", &[]).await;
    // A trusted proxy's country header beats the database.
    let from_cdn = click_as(&a, &link, CHROME, "8.8.8.8", &[("cf-ipcountry", "de")]).await;
    // A private address is in no country database.
    let private = click_as(&a, &link, CHROME, "10.1.2.3", &[]).await;
    // A second node, same Redis: the same person is the same visitor.
    let b = Server::start(a.config.other_node());
    let on_b = click_as(&b, &link, IPHONE, "8.8.8.8", &[]).await;

    let db = &a.config.database;
    let rows = rows(db, 6);
    let r = |cid: &String| rows[cid].clone();
    let expected = Row {
        ip: "8.8.8.8".into(),
        country: "US".into(),
        device: "mobile".into(),
        os: "iOS".into(),
        browser: "Mobile Safari".into(),
        visitor: r(&iphone).visitor,
    };
    assert_eq!(r(&iphone), expected);
    assert_ne!(expected.visitor, 0, "a visitor hash");
    assert_eq!(r(&iphone_again), expected, "one person, one visitor");
    assert_eq!(r(&on_b), expected, "both nodes hash with the day's one key");
    let chrome = r(&chrome);
    assert_eq!(
        (
            &*chrome.os,
            &*chrome.browser,
            &*chrome.device,
            &*chrome.country
        ),
        ("Windows", "Chrome", "desktop", "US")
    );
    assert_ne!(chrome.visitor, 0);
    assert_ne!(
        chrome.visitor, expected.visitor,
        "another browser, another visitor"
    );
    assert_eq!(r(&from_cdn).country, "DE");
    assert_eq!(r(&from_cdn).visitor, chrome.visitor);
    assert_eq!(r(&private).country, "");
    assert_ne!(r(&private).visitor, chrome.visitor);

    // The day's key: in Redis under the prefix, expiring within two days.
    let mut redis = services().redis.connection();
    let key = format!("{}visitor-key:{}", a.config.prefix, today());
    let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut redis).unwrap();
    assert!(ttl > 0 && ttl <= 172_800, "TTL of {key}: {ttl}");
    let lookups = metric(&a, "trackedge_enrich_agent_lookups_total{result=\"hit\"}");
    assert!(lookups >= 1.0, "repeated user agents come from the cache");
}

#[tokio::test]
async fn store_ip_off_keeps_no_ip_in_any_table() {
    let server = Server::start(
        config("noip")
            .with("TRACKEDGE_PRIVACY_STORE_IP", "false")
            .with("TRACKEDGE_RETENTION_CLICKS_DAYS", "30"),
    );
    let link = seed_link(&server, "https://shop.example.com/?cid={click_id}", None).await;
    let cid = click_as(&server, &link, IPHONE, "8.8.8.8", &[]).await;
    let orphan = client()
        .get(format!("{}/no-such-code", server.public))
        .header("x-forwarded-for", "8.8.4.4")
        .send()
        .await
        .unwrap();
    assert_eq!(orphan.status(), 404);
    let pixel = client()
        .get(format!(
            "{}/pixel?click_id={cid}&order_id=NOIP-1&amount=3",
            server.public
        ))
        .header("x-forwarded-for", "8.8.4.4")
        .send()
        .await
        .unwrap();
    assert_eq!(pixel.status(), 200);

    let db = &server.config.database;
    let row = rows(db, 1).remove(&cid).expect("the click");
    assert_eq!(row.ip, "", "no IP stored");
    assert_eq!(row.country, "US", "the country was looked up first");
    assert_ne!(row.visitor, 0, "the visitor was hashed first");
    let ch = &services().clickhouse;
    for table in ["orphan_hits", "conversions"] {
        let ips = wait_for(&format!("a row in {db}.{table}"), || {
            let text = ch.query(&format!("SELECT ip FROM {db}.{table}"));
            (!text.is_empty()).then_some(text)
        });
        assert!(ips.lines().all(str::is_empty), "{table}: {ips:?}");
    }

    // Retention: a TTL where the server has them, else one warning.
    let version = ch.query("SELECT version()");
    if trackedge::retention::supports_ttl(&version) {
        let engine = ch.query(&format!(
            "SELECT engine_full FROM system.tables WHERE database = '{db}' AND name = 'clicks'"
        ));
        assert!(engine.contains("TTL ts + toIntervalDay(30)"), "{engine}");
    } else {
        let warned = server
            .log_text()
            .lines()
            .filter(|l| l.contains("retention is configured but this clickhouse has no TTL"))
            .count();
        assert_eq!(warned, 1, "{version}: one warning");
    }
}

#[tokio::test]
async fn a_redis_outage_ships_clicks_with_unknown_visitors() {
    let mut redis = Redis::start();
    let mut cfg = config("outage");
    cfg.redis_url = redis.url();
    let server = Server::start(cfg);
    let link = seed_link(&server, "https://shop.example.com/?cid={click_id}", None).await;
    // Routes are in memory: the redirect does not need Redis, nor does
    // shipping.
    redis.kill();
    let cid = click_as(&server, &link, IPHONE, "8.8.8.8", &[]).await;
    let row = rows(&server.config.database, 1).remove(&cid).unwrap();
    assert_eq!(row.visitor, 0, "unknown");
    assert_eq!(
        (&*row.os, &*row.country),
        ("iOS", "US"),
        "the rest is there"
    );
    let unknown = metric(
        &server,
        "trackedge_clicks_visitor_unknown_total{reason=\"redis\"}",
    );
    assert_eq!(unknown, 1.0);
}

/// A backlog shipped late hashes each click under its own day's key; a
/// day whose key has expired (older than two days) is unknown, and its key
/// is not made again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_uses_each_clicks_own_day() {
    use trackedge::backoff::Backoff;
    use trackedge::enrich::{EnrichSettings, Enricher};
    use trackedge::events::log::{EventLog, LogConfig};
    use trackedge::events::rejected::Rejected;
    use trackedge::events::shipper::{Shipper, ShipperSettings};
    use trackedge::events::{ClickRow, Event};

    let s = services();
    let db = unique_name("backlog");
    let prefix = format!("{db}:");
    let direct = clickhouse::Client::default()
        .with_url(s.clickhouse.url())
        .with_validation(false);
    trackedge::schema::migrate(&direct, &db).await.unwrap();

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let day = 86_400;
    let clicks = [
        ("today", now),
        ("yesterday", now - day),
        ("three-days-ago", now - 3 * day),
    ];
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(
        EventLog::open(
            &dir.path().join("log"),
            LogConfig::new(1 << 20, 1 << 22).unwrap(),
        )
        .unwrap(),
    );
    for (id, ts) in clicks {
        let mut buf = Vec::new();
        Event::Click(ClickRow {
            click_id: id,
            ts,
            code: "c",
            link_id: 1,
            partner_id: 1,
            offer_id: 1,
            sub1: "",
            sub2: "",
            sub3: "",
            sub4: "",
            sub5: "",
            ip: "198.51.100.7",
            user_agent: CHROME,
            referer: "",
            is_bot: 0,
            is_rate_limited: 0,
            country: "",
            device: "desktop",
            node: "n",
        })
        .encode(&mut buf);
        log.append(&buf).unwrap();
    }
    let settings = EnrichSettings {
        geoip_path: PathBuf::new(),
        agent_cache_entries: 100,
        store_ip: true,
        redis_url: s.redis.url(),
        redis_prefix: prefix.clone(),
        redis_timeout: Duration::from_secs(2),
    };
    let metrics = Arc::new(trackedge::metrics::Metrics::new());
    let shipper = Shipper::new(
        Arc::clone(&log),
        log.reader(),
        clickhouse::Client::default()
            .with_url(s.clickhouse.url())
            .with_database(&db)
            .with_validation(false),
        Rejected::open(&dir.path().join("rejected")).unwrap(),
        Arc::clone(&metrics),
        ShipperSettings {
            database: db.clone(),
            batch_rows: 1000,
            flush_interval: Duration::from_millis(10),
            retry: Backoff::constant(Duration::from_millis(10)),
            insert_timeout: Duration::from_secs(5),
        },
    )
    .with_enricher(Enricher::new(&settings, &metrics));
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(shipper.run(stop.clone(), Duration::from_secs(30)));
    let rows = rows(&db, 3);
    stop.cancel();
    running.await.unwrap();

    let visitor = |id: &str| rows[id].visitor;
    assert_ne!(visitor("today"), 0);
    assert_ne!(visitor("yesterday"), 0);
    assert_ne!(
        visitor("today"),
        visitor("yesterday"),
        "one person, two days: two unrelated hashes"
    );
    assert_eq!(visitor("three-days-ago"), 0, "its key is gone");
    assert_eq!(
        metrics
            .visitor_unknown
            .with_label_values(&["expired"])
            .get(),
        1
    );
    let mut redis = s.redis.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}visitor-key:*"))
        .query(&mut redis)
        .unwrap();
    let date = |ts: u32| trackedge::enrich::visitor::yyyymmdd(ts / day);
    let mut expected = vec![
        format!("{prefix}visitor-key:{}", date(now)),
        format!("{prefix}visitor-key:{}", date(now - day)),
    ];
    let mut keys = keys;
    keys.sort();
    expected.sort();
    assert_eq!(keys, expected, "no key is made for an expired day");
}
