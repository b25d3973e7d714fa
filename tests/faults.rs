//! Zero-loss fault tests: every click that got a 302 ends up in ClickHouse
//! exactly once, through ClickHouse outages, lost INSERT answers, SIGKILL
//! and SIGTERM of trackedge, a damaged spool, Redis restarts and a full
//! spool; and every postback answered for is one conversion through
//! `kill -9` mid-flight and Redis outages.
//!
//! Each test drives the built server under load from clients that keep
//! every click id they were redirected with, then compares with ClickHouse:
//! `lost = answered − distinct recorded`, `duplicated = rows − distinct`.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::json;

const OFFER_URL: &str = "https://m.example.com/land?cid={click_id}";

/// Clients hammering one tracking URL, keeping each click id they got.
struct Load {
    answered: Arc<Mutex<HashSet<String>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts `workers` clients on `url`; requests that fail (server down)
    /// are not counted.
    fn start(url: &str, workers: usize) -> Load {
        let answered = Arc::new(Mutex::new(HashSet::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..workers)
            .map(|w| {
                let (answered, stop, url) = (answered.clone(), stop.clone(), url.to_string());
                tokio::spawn(async move {
                    let c = client();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let Ok(resp) = c.get(format!("{url}?sub1=w{w}&sub2={i}")).send().await
                        else {
                            continue;
                        };
                        if resp.status() != 302 {
                            continue;
                        }
                        let loc = resp.headers()["location"].to_str().unwrap().to_string();
                        let cid = reqwest::Url::parse(&loc)
                            .unwrap()
                            .query_pairs()
                            .find(|(k, _)| k == "cid")
                            .map(|(_, v)| v.into_owned())
                            .unwrap();
                        assert!(
                            answered.lock().unwrap().insert(cid),
                            "click id handed out twice"
                        );
                    }
                })
            })
            .collect();
        Load {
            answered,
            stop,
            tasks,
        }
    }

    fn count(&self) -> usize {
        self.answered.lock().unwrap().len()
    }

    /// Waits until at least `n` clicks were answered.
    async fn until(&self, n: usize) {
        wait_for_async(&format!("{n} answered clicks"), || async {
            (self.count() >= n).then_some(())
        })
        .await
    }

    async fn finish(self) -> HashSet<String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        Arc::try_unwrap(self.answered)
            .unwrap()
            .into_inner()
            .unwrap()
    }
}

/// Waits until every answered id is in ClickHouse.
fn wait_all_recorded(ch: &ClickHouse, db: &str, answered: &HashSet<String>) {
    wait_for("every answered click in clickhouse", || {
        let n = ch.count(&format!("SELECT uniqExact(click_id) FROM {db}.clicks"));
        (n as usize >= answered.len()).then_some(())
    });
}

/// The zero-loss check, once nothing more can arrive.
fn check_exactly_once(ch: &ClickHouse, db: &str, answered: &HashSet<String>) {
    let recorded: Vec<String> = ch
        .query(&format!("SELECT click_id FROM {db}.clicks FORMAT TSV"))
        .lines()
        .map(str::to_string)
        .collect();
    let distinct: HashSet<&String> = recorded.iter().collect();
    let lost = answered.iter().filter(|id| !distinct.contains(id)).count();
    let duplicated = recorded.len() - distinct.len();
    assert!(!answered.is_empty());
    assert_eq!(
        (lost, duplicated),
        (0, 0),
        "lost, duplicated of {} answered",
        answered.len()
    );
}

async fn tracking_url(server: &Server) -> String {
    let link = seed_link(server, OFFER_URL, None).await;
    format!("{}/{}", server.public, link["code"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_killed_under_load_loses_nothing() {
    let mut ch = ClickHouse::start();
    let mut cfg = ServerConfig::new("chkill");
    cfg.clickhouse_url = ch.url();
    let mut server = Server::start(cfg.clone());
    let url = tracking_url(&server).await;
    let load = Load::start(&url, 2);
    load.until(300).await;
    ch.kill();
    // The outage: redirects go on while ClickHouse is gone, and the spool
    // shows events waiting.
    load.until(load.count() + 300).await;
    wait_for("the spool to report an event waiting a second", || {
        (metric(&server, "trackedge_spool_oldest_event_age_seconds") >= 1.0).then_some(())
    });
    ch.restart();
    load.until(load.count() + 300).await;
    let answered = load.finish().await;
    wait_all_recorded(&ch, &cfg.database, &answered);
    assert_eq!(server.terminate().code(), Some(0));
    check_exactly_once(&ch, &cfg.database, &answered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trackedge_sigkill_under_load_loses_nothing() {
    let cfg = ServerConfig::new("kill9").with("TRACKEDGE_CLICKHOUSE_FLUSH_INTERVAL_MS", "300");
    let first = Server::start(cfg.clone());
    killed_under_load_then_restarted(cfg, first, 1).await;
}

/// Kills `first` under load, starts a second server on `cfg` with the
/// same spool, loads it with `workers` clients, and checks every answered
/// click is in ClickHouse exactly once after its SIGTERM.
async fn killed_under_load_then_restarted(cfg: ServerConfig, mut first: Server, workers: usize) {
    let url = tracking_url(&first).await;
    let load = Load::start(&url, 2);
    load.until(500).await;
    first.kill();
    let mut answered = load.finish().await;

    let mut second = Server::start(cfg.clone());
    let url2 = url.replace(&first.public, &second.public);
    let load = Load::start(&url2, workers);
    load.until(100).await;
    answered.extend(load.finish().await);
    let ch = &services().clickhouse;
    wait_all_recorded(ch, &cfg.database, &answered);
    assert_eq!(second.terminate().code(), Some(0));
    assert!(second.log_text().contains("every event is in clickhouse"));
    check_exactly_once(ch, &cfg.database, &answered);
}

/// On one CPU the shipper is a task of the request runtime, its work cut
/// into slices (see `app.rs`): killed under load and restarted, that
/// server too ships every answered click once, then drains on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_one_cpu_sigkill_under_load_loses_nothing() {
    let cfg = ServerConfig::new("onecpu")
        .with("TRACKEDGE_CLICKHOUSE_FLUSH_INTERVAL_MS", "300")
        .on_cpus("0");
    let first = Server::start(cfg.clone());
    assert!(
        first
            .log_text()
            .contains("the shipper runs on the request runtime"),
        "{}",
        first.log_text()
    );
    killed_under_load_then_restarted(cfg, first, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_clickhouse_is_down_then_restart() {
    let mut ch = ClickHouse::start();
    let mut cfg = ServerConfig::new("termdown").with("TRACKEDGE_HTTP_SHUTDOWN_GRACE_SECS", "2");
    cfg.clickhouse_url = ch.url();
    let mut first = Server::start(cfg.clone());
    let url = tracking_url(&first).await;
    let load = Load::start(&url, 2);
    load.until(200).await;
    ch.kill();
    load.until(load.count() + 300).await;
    let answered = load.finish().await;
    assert_eq!(first.terminate().code(), Some(0), "{}", first.log_text());
    assert!(first.log_text().contains("stays in the spool"));

    ch.restart();
    let mut second = Server::start(cfg.clone());
    wait_all_recorded(&ch, &cfg.database, &answered);
    assert_eq!(second.terminate().code(), Some(0));
    check_exactly_once(&ch, &cfg.database, &answered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_insert_answers_are_not_inserted_twice() {
    let ch = &services().clickhouse;
    let proxy = DroppingProxy::start(ch.http_port);
    // ClickHouse stores the next two INSERTs but their answers never come.
    proxy.drops.store(2, Ordering::SeqCst);
    let mut cfg = ServerConfig::new("lostack");
    cfg.clickhouse_url = proxy.url();
    let mut server = Server::start(cfg.clone());
    let url = tracking_url(&server).await;
    let load = Load::start(&url, 2);
    load.until(600).await;
    // Clicking goes on until both INSERTs whose answers are lost were
    // sent: how many batches the first 600 clicks make depends on how
    // fast they came (a quick machine answers them all within one flush
    // interval, and a lost answer checked and found whole leaves nothing
    // for a second INSERT).
    wait_for_async("the proxy to swallow two INSERT answers", || async {
        (proxy.dropped.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    let answered = load.finish().await;
    wait_all_recorded(ch, &cfg.database, &answered);
    assert_eq!(server.terminate().code(), Some(0));
    assert_eq!(
        proxy.dropped.load(Ordering::SeqCst),
        2,
        "the proxy swallowed two answers, no more"
    );
    check_exactly_once(ch, &cfg.database, &answered);
    assert!(
        server
            .log_text()
            .contains("skipped clicks clickhouse already holds"),
        "{}",
        server.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_spool_record_is_counted_and_the_rest_arrive() {
    let mut cfg = ServerConfig::new("corrupt");
    let good = cfg.clickhouse_url.clone();
    let dead = RefusingPort::new();
    cfg.clickhouse_url = dead.url();
    let mut first = Server::start_with_clickhouse_down(cfg.clone());
    let url = tracking_url(&first).await;
    let c = client();
    let mut answered = Vec::new();
    for i in 0..100 {
        let r = c.get(format!("{url}?sub1={i}")).send().await.unwrap();
        assert_eq!(r.status(), 302);
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        answered.push(loc.split("cid=").nth(1).unwrap().to_string());
    }
    first.kill();

    // Flip one payload byte of the 50th record of the segment.
    let log_dir = cfg.spool_dir.join("log");
    let mut damaged = false;
    for entry in std::fs::read_dir(&log_dir).unwrap() {
        let path = entry.unwrap().path();
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("seg-")
        {
            continue;
        }
        let mut bytes = std::fs::read(&path).unwrap();
        let starts: Vec<usize> = (0..bytes.len().saturating_sub(4))
            .step_by(8)
            .filter(|&i| bytes[i..i + 4] == 0x5445_4C47u32.to_le_bytes())
            .collect();
        if starts.len() >= 100 {
            bytes[starts[49] + 16 + 20] ^= 0xFF;
            std::fs::write(&path, bytes).unwrap();
            damaged = true;
        }
    }
    assert!(damaged, "found the segment holding the 100 clicks");

    cfg.clickhouse_url = good;
    let mut second = Server::start(cfg.clone());
    let ch = &services().clickhouse;
    let db = &cfg.database;
    wait_for("99 clicks in clickhouse", || {
        (ch.count(&format!("SELECT uniqExact(click_id) FROM {db}.clicks")) >= 99).then_some(())
    });
    assert_eq!(metric(&second, "trackedge_spool_corrupt_records"), 1.0);
    assert_eq!(second.terminate().code(), Some(0));
    let recorded: HashSet<String> = ch
        .query(&format!("SELECT click_id FROM {db}.clicks FORMAT TSV"))
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(ch.count(&format!("SELECT count() FROM {db}.clicks")), 99);
    let missing: Vec<&String> = answered
        .iter()
        .filter(|id| !recorded.contains(*id))
        .collect();
    assert_eq!(
        missing,
        vec![&answered[49]],
        "only the damaged record is missing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_under_load_leaves_redirects_alone() {
    let redis = Redis::start();
    let mut cfg = ServerConfig::new("redisrestart");
    cfg.redis_url = redis.url();
    let mut server = Server::start(cfg.clone());
    let url = tracking_url(&server).await;
    let link: serde_json::Value =
        admin(&server, "GET", "/api/v1/links?limit=1", None).await.1["items"][0].clone();
    let load = Load::start(&url, 2);
    load.until(200).await;

    let (port, dir) = redis.save_and_kill();
    let before = load.count();
    let (s, v) = admin(
        &server,
        "POST",
        "/api/v1/partners",
        Some(json!({"name": "gap", "kind": "affiliate"})),
    )
    .await;
    assert_eq!((s, v["error"]["code"].clone()), (503, json!("unavailable")));
    load.until(before + 300).await;

    let _redis = Redis::start_in(port, dir);
    // Admin writes succeed again once the connection is back.
    let c = client();
    let created = wait_for_async("admin writes to work after redis is back", || async {
        let (s, v) = admin(
            &server,
            "POST",
            "/api/v1/links",
            Some(json!({"partner_id": link["partner_id"], "offer_id": link["offer_id"]})),
        )
        .await;
        assert!(s == 201 || s == 503, "{s} {v}");
        (s == 201).then_some(v)
    })
    .await;
    let new_url = format!("{}/{}", server.public, created["code"].as_str().unwrap());
    assert_eq!(c.get(&new_url).send().await.unwrap().status(), 302);
    // A change made on another node after the restart reaches this node's
    // cache through the re-established subscription.
    let other = Server::start(cfg.other_node());
    let (s, _) = admin(
        &other,
        "PATCH",
        &format!("/api/v1/links/{}", created["id"]),
        Some(json!({"status": "paused"})),
    )
    .await;
    assert_eq!(s, 200);
    wait_for("the pause to reach the first node", || {
        (http_get_blocking(&new_url).map(|(s, _)| s) == Some(404)).then_some(())
    });

    load.until(load.count() + 100).await;
    let answered = load.finish().await;
    let ch = &services().clickhouse;
    wait_all_recorded(ch, &cfg.database, &answered);
    assert_eq!(server.terminate().code(), Some(0));
    drop(other);
    check_exactly_once(ch, &cfg.database, &answered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_keeps_redirecting_and_counts_every_drop() {
    let mut cfg = ServerConfig::new("full")
        .with("TRACKEDGE_SPOOL_SEGMENT_BYTES", "65536")
        .with("TRACKEDGE_SPOOL_MAX_BYTES", "196608");
    let good = cfg.clickhouse_url.clone();
    let dead = RefusingPort::new();
    cfg.clickhouse_url = dead.url();
    let mut first = Server::start_with_clickhouse_down(cfg.clone());
    let url = tracking_url(&first).await;
    let load = Load::start(&url, 2);
    load.until(3000).await;
    let answered = load.finish().await;
    let dropped = metric(&first, "trackedge_clicks_dropped_total") as usize;
    let recorded = metric(&first, "trackedge_clicks_recorded_total") as usize;
    assert!(dropped > 0, "the spool filled up");
    assert_eq!(
        recorded + dropped,
        answered.len(),
        "every redirect is recorded or counted as dropped"
    );
    assert_eq!(first.terminate().code(), Some(0));
    assert!(first.log_text().contains("the spool cannot take it"));

    cfg.clickhouse_url = good;
    let mut second = Server::start(cfg.clone());
    let ch = &services().clickhouse;
    let db = &cfg.database;
    wait_for("the recorded clicks in clickhouse", || {
        (ch.count(&format!("SELECT uniqExact(click_id) FROM {db}.clicks")) as usize >= recorded)
            .then_some(())
    });
    assert_eq!(second.terminate().code(), Some(0));
    assert_eq!(
        ch.count(&format!("SELECT count() FROM {db}.clicks")) as usize,
        recorded
    );
    assert_eq!(
        ch.count(&format!("SELECT uniqExact(click_id) FROM {db}.clicks")) as usize,
        recorded
    );
    let ids: Vec<String> = ch
        .query(&format!("SELECT click_id FROM {db}.clicks FORMAT TSV"))
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        ids.iter().all(|id| answered.contains(id)),
        "only answered clicks are recorded"
    );
}

/// Merchants reporting one order after another, each order retried until
/// it gets a verdict (through kills and restarts, as a merchant's retry
/// queue would), keeping every verdict.
struct Merchants {
    /// The current server's public URL; swapped on restart.
    base: Arc<Mutex<String>>,
    /// Per order: the `(status, conversion_id)` it was finally answered.
    answers: Arc<Mutex<std::collections::HashMap<String, (String, String)>>>,
    /// Requests that got no answer (connection refused or cut by a kill).
    unanswered: Arc<std::sync::atomic::AtomicU64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Merchants {
    fn start(base: &str, token: &str, click_id: &str, workers: usize) -> Merchants {
        let m = Merchants {
            base: Arc::new(Mutex::new(base.to_string())),
            answers: Arc::default(),
            unanswered: Arc::default(),
            stop: Arc::default(),
            tasks: Vec::new(),
        };
        let tasks = (0..workers)
            .map(|w| {
                let (base, answers, unanswered, stop) = (
                    m.base.clone(),
                    m.answers.clone(),
                    m.unanswered.clone(),
                    m.stop.clone(),
                );
                let (token, click_id) = (token.to_string(), click_id.to_string());
                tokio::spawn(async move {
                    let c = client();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let order = format!("w{w}-{i}");
                        loop {
                            let url = format!(
                                "{}/postback?token={token}&click_id={click_id}&order_id={order}&amount=10.00",
                                base.lock().unwrap()
                            );
                            let Ok(resp) = c.get(url).send().await else {
                                unanswered.fetch_add(1, Ordering::Relaxed);
                                continue;
                            };
                            if resp.status() != 200 {
                                // 503 while the catalog loads or Redis
                                // waits: the merchant retries.
                                continue;
                            }
                            let Ok(v) = resp.json::<serde_json::Value>().await else {
                                unanswered.fetch_add(1, Ordering::Relaxed);
                                continue;
                            };
                            let answer = (
                                v["status"].as_str().unwrap().to_string(),
                                v["conversion_id"].as_str().unwrap().to_string(),
                            );
                            answers.lock().unwrap().insert(order, answer);
                            break;
                        }
                    }
                })
            })
            .collect();
        Merchants { tasks, ..m }
    }

    fn answered(&self) -> usize {
        self.answers.lock().unwrap().len()
    }

    async fn until(&self, n: usize) {
        wait_for_async(&format!("{n} answered orders"), || async {
            (self.answered() >= n).then_some(())
        })
        .await
    }

    async fn finish(self) -> (std::collections::HashMap<String, (String, String)>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        let answers = std::mem::take(&mut *self.answers.lock().unwrap());
        (answers, self.unanswered.load(Ordering::Relaxed))
    }
}

/// `kill -9` of the server at random instants while postbacks are in
/// flight, restarted on the same log each time, merchants retrying every
/// unanswered order: every order ends as exactly one approved conversion,
/// every conversion answered `approved` is in ClickHouse, and every retry
/// of an order whose first attempt was counted is told `duplicate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postbacks_killed_mid_flight_count_each_order_once() {
    let cfg = ServerConfig::new("convkill9")
        .with("TRACKEDGE_CLICKHOUSE_FLUSH_INTERVAL_MS", "200")
        .with("TRACKEDGE_CONVERSIONS_CLAIM_LEASE_MS", "300")
        .with("TRACKEDGE_CONVERSIONS_POSTBACKS_PER_OFFER_PER_SECOND", "0");
    let mut server = Server::start(cfg.clone());
    let link = seed_link(&server, OFFER_URL, None).await;
    let (_, offer) = admin(
        &server,
        "GET",
        &format!("/api/v1/offers/{}", link["offer_id"]),
        None,
    )
    .await;
    let token = offer["postback_token"].as_str().unwrap().to_string();
    let click_id = click(&server, &link).await;

    let merchants = Merchants::start(&server.public, &token, &click_id, 4);
    let mut target = 0;
    for round in 0..3u64 {
        // A different instant in each round's stream of requests.
        target += 150 + (std::process::id() as usize * 7919 + round as usize * 104_729) % 200;
        merchants.until(target).await;
        server.kill();
        server = Server::start(cfg.clone());
        *merchants.base.lock().unwrap() = server.public.clone();
    }
    merchants.until(target + 100).await;
    let (answers, unanswered) = merchants.finish().await;
    let taken_over = metric_if_any(
        &server,
        "trackedge_conversion_claims_total{outcome=\"taken_over\"}",
    );
    assert!(unanswered > 0, "no request was cut by a kill");

    // Latest version of each conversion, raw rows included: a takeover may
    // have written the same (conversion_id, version) twice, one conversion.
    let ch = &services().clickhouse;
    let db = &cfg.database;
    let approved_by_order = || -> std::collections::HashMap<String, Vec<String>> {
        let mut m: std::collections::HashMap<String, Vec<String>> = Default::default();
        for line in ch
            .query(&format!(
                "SELECT order_id, conversion_id FROM (SELECT conversion_id, \
                 argMax(order_id, version) AS order_id, argMax(status, version) AS status \
                 FROM {db}.conversions GROUP BY conversion_id) WHERE status = 'approved' \
                 ORDER BY order_id, conversion_id FORMAT TSV"
            ))
            .lines()
        {
            let (order, id) = line.split_once('\t').unwrap();
            m.entry(order.into()).or_default().push(id.into());
        }
        m
    };
    wait_for("every answered order's conversion in clickhouse", || {
        let held = approved_by_order();
        answers
            .keys()
            .all(|order| held.contains_key(order))
            .then_some(())
    });
    assert_eq!(server.terminate().code(), Some(0));

    let held = approved_by_order();
    let mut duplicates_told = 0;
    for (order, (status, id)) in &answers {
        let ids = &held[order];
        assert_eq!(ids.len(), 1, "order {order} is {ids:?}");
        match status.as_str() {
            "approved" => assert_eq!(&ids[0], id, "order {order} answered {id}"),
            // Its first attempt was recorded and confirmed, then its answer
            // was cut: the retry must not count it again.
            "duplicate" => duplicates_told += 1,
            other => panic!("order {order} answered {other}"),
        }
    }
    // Only orders the merchants reported are there.
    assert!(held.keys().all(|o| answers.contains_key(o)), "{held:?}");
    eprintln!(
        "{} orders, {unanswered} requests cut, {duplicates_told} retries told duplicate, \
         {taken_over:?} claims taken over after the last kill",
        answers.len()
    );
}

/// With Redis gone a postback cannot be deduplicated, so it is never
/// answered `2xx`: `503`, and the merchant's retry once Redis is back is
/// the order's one conversion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postback_without_redis_is_503_and_its_retry_counts_once() {
    let redis = Redis::start();
    let mut cfg = ServerConfig::new("convnoredis").with("TRACKEDGE_REDIS_TIMEOUT_MS", "300");
    cfg.redis_url = redis.url();
    let mut server = Server::start(cfg.clone());
    let link = seed_link(&server, OFFER_URL, None).await;
    let (_, offer) = admin(
        &server,
        "GET",
        &format!("/api/v1/offers/{}", link["offer_id"]),
        None,
    )
    .await;
    let token = offer["postback_token"].as_str().unwrap().to_string();
    let cid = click(&server, &link).await;
    let url = format!(
        "{}/postback?token={token}&click_id={cid}&order_id=R-1&amount=10.00",
        server.public
    );
    let get = |url: String| async move {
        let resp = client().get(url).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<serde_json::Value>().await.unwrap())
    };

    let (port, dir) = redis.save_and_kill();
    let (s, v) = get(url.clone()).await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (503, json!("unavailable")),
        "{v}"
    );

    let _redis = Redis::start_in(port, dir);
    let v = wait_for_async("redis back for postbacks", || async {
        let (s, v) = get(url.clone()).await;
        (s == 200).then_some(v)
    })
    .await;
    assert_eq!(v["status"], "approved", "{v}");
    let (s, again) = get(url.clone()).await;
    assert_eq!((s, again["status"].as_str()), (200, Some("duplicate")));

    let ch = &services().clickhouse;
    let db = &cfg.database;
    wait_for("both verdicts in clickhouse", || {
        (ch.count(&format!("SELECT count() FROM {db}.conversions")) >= 2).then_some(())
    });
    assert_eq!(server.terminate().code(), Some(0));
    assert_eq!(
        ch.query(&format!(
            "SELECT status, conversion_id FROM {db}.conversions ORDER BY status FORMAT TSV"
        )),
        format!(
            "approved\t{}\nduplicate\t{}\n",
            v["conversion_id"].as_str().unwrap(),
            again["conversion_id"].as_str().unwrap()
        )
    );
}
