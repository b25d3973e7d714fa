//! Wiring: builds the stores, the segment log, the shipper, the limiter and
//! each listener's state, and owns the shutdown order.
//!
//! Shutdown order: stop accepting → finish in-flight requests (grace) →
//! stop the postback worker, which finishes its calls in flight (each
//! bounded by its timeout) and records them → stop the shipper, which
//! ships what it can within the grace period → msync the log → return. Every recorded event is in ClickHouse or in the
//! log, which the next start ships.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{error, info, warn};

use crate::backoff::Backoff;
use crate::catalog::{Catalog, RouteCache};
use crate::click_id::ClickIdCodec;
use crate::client_ip::TrustedProxies;
use crate::config::Config;
use crate::conversions::deliver::{self, Deliverer, Postbacks};
use crate::conversions::intake::Intake;
use crate::enrich::{EnrichSettings, Enricher};
use crate::events::log::EventLog;
use crate::events::rejected::Rejected;
use crate::events::shipper::{Shipper, ShipperSettings};
use crate::events::EventSink;
use crate::http::admin::{
    AdminState, AdminToken, CatalogSlot, HealthSettings, Ledger, TierSettings,
};
use crate::http::apply::Applications;
use crate::http::partner::PartnerState;
use crate::http::public::PublicState;
use crate::http::{self, Readiness};
use crate::metrics::{Metrics, RequestCounters};
use crate::partners::activity::ActivityReader;
use crate::partners::standing::StandingReader;
use crate::ratelimit::{ClickLimiter, KeyLimiter};
use crate::redirect::Redirector;
use crate::stats::Stats;
use crate::{retention, schema};

/// A ClickHouse client for `cfg`, optionally bound to its database.
pub fn clickhouse_client(cfg: &Config, with_database: bool) -> clickhouse::Client {
    let c = &cfg.clickhouse;
    let mut client = clickhouse::Client::default()
        .with_url(&c.url)
        .with_user(&c.user)
        // 18.16 lacks RowBinaryWithNamesAndTypes, which validation needs.
        .with_validation(false)
        .with_compression(match c.compression.as_str() {
            "none" => clickhouse::Compression::None,
            _ => clickhouse::Compression::Lz4,
        });
    if !c.password.is_empty() {
        client = client.with_password(&c.password);
    }
    if with_database {
        client = client.with_database(&c.database);
    }
    client
}

/// Where the shipper runs: on the request runtime when the process may use
/// one CPU only (the process's one runtime, see `main`), else on a thread
/// of its own.
///
/// Shipping a batch is tens of milliseconds of CPU: decoding, enriching,
/// encoding, compressing, and the kernel's loopback or NIC work for the
/// megabytes sent. On a thread of its own, on a CPU the requests share,
/// the kernel schedules it against the request worker in whole time
/// slices: kernel traces of the fixed-rate load test caught the worker,
/// preempted in the middle of a `writev`, waiting runnable for a 4 ms tick
/// while the shipper compressed (loadtests/README.md, Stalls). On one CPU
/// it is therefore a task of the request runtime, its work cut into
/// [`crate::events::shipper::SLICE`]s with the redirects due served between them. With a
/// CPU to spare it keeps its own thread (at nice 5), which the kernel can
/// run beside the workers.
fn shipper_shares_the_request_runtime() -> bool {
    http::cores::request_threads() == 1
}

/// Starts the shipper (see [`shipper_shares_the_request_runtime`] for
/// where). The task returned ends when the shipper has (after `stop`,
/// within `grace`).
///
/// `enricher` is built before shipping starts (compiling the user agent
/// rules takes 0.2 s, more in a debug build), off the request workers,
/// while the catalog loads; `enriched` is told when it is done, and the
/// public listener opens only then.
///
/// It ships nothing before `migrated` is cancelled: a migration that
/// creates a rollup fills it from the rows already stored and only then
/// attaches its view, and a batch landing in between would be counted
/// twice or not at all. Stopped before that, it syncs the spool and leaves
/// everything in it for the next start.
fn spawn_shipper(
    shipper: Shipper,
    enricher: impl FnOnce() -> Enricher + Send + 'static,
    enriched: tokio::sync::oneshot::Sender<()>,
    migrated: CancellationToken,
    stop: CancellationToken,
    grace: Duration,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let run = move |shipper: Shipper| async move {
        tokio::select! {
            _ = migrated.cancelled() => shipper.run(stop, grace).await,
            _ = stop.cancelled() => shipper.stop_unshipped().await,
        }
    };
    if shipper_shares_the_request_runtime() {
        info!("one cpu: the shipper runs on the request runtime, in slices");
        return Ok(tokio::spawn(async move {
            let Ok(enricher) = tokio::task::spawn_blocking(enricher).await else {
                error!("building the enricher panicked; unshipped events stay in the spool");
                return;
            };
            let _ = enriched.send(());
            run(shipper.with_enricher(enricher)).await;
        }));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("shipper-blocking")
        .build()?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("shipper".into())
        .spawn(move || {
            lower_thread_priority("shipper", 5);
            crate::sched::shorten_slice();
            let shipper = shipper.with_enricher(enricher());
            let _ = enriched.send(());
            runtime.block_on(run(shipper));
            let _ = done_tx.send(());
        })?;
    Ok(tokio::spawn(async move {
        if done_rx.await.is_err() {
            error!("the shipper thread panicked; unshipped events stay in the spool");
        }
    }))
}

/// Sets the calling thread's nice value (Linux keeps one per thread, and
/// threads it starts inherit it).
fn lower_thread_priority(what: &str, nice: i32) {
    // SAFETY: setpriority only changes the scheduling weight of one thread.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) } != 0 {
        warn!(thread = what, error = %std::io::Error::last_os_error(), "cannot lower the thread's priority");
    }
}

/// Pauses the links of inactive partners every `check_interval_secs`,
/// first at start (every node may: pausing twice pauses nothing more).
async fn pause_inactive_partners(
    catalog: Arc<Catalog>,
    reader: ActivityReader,
    cfg: crate::config::HealthConfig,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(cfg.check_interval_secs));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = crate::partners::pause::pause_inactive(&catalog, &reader, cfg.inactive_days).await {
                    warn!(error = %e, "inactive partners not checked; next round later");
                }
            }
            _ = stop.cancelled() => return,
        }
    }
}

/// Spool upkeep (msync every `every`, the spare segment) on a thread of its
/// own at nice 10, off the request workers' runtime and its blocking pool.
/// Its bursts of page writeback and prefaulting take milliseconds of CPU; at
/// nice 10 they get far more of a busy core than they need, and a worker
/// competes with them for the core only where they share one. The task ends
/// once `stop` is cancelled and the thread has finished.
fn spawn_spool_upkeep(
    log: Arc<EventLog>,
    every: Duration,
    stop: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("spool-upkeep".into())
        .spawn(move || {
            lower_thread_priority("spool upkeep", 10);
            if crate::sched::shorten_slice() {
                info!(slice_us = crate::sched::SLICE.as_micros() as u64, "threads run in short kernel time slices");
            } else {
                info!("the kernel refused short time slices (Linux 6.12 or later grants them); threads keep its default");
            }
            loop {
                if let Err(e) = log.maintain() {
                    error!(error = %e, "spool maintenance (msync, spare segment) failed");
                }
                match stop_rx.recv_timeout(every) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            }
        })?;
    Ok(tokio::spawn(async move {
        stop.cancelled().await;
        drop(stop_tx);
        if tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_or(true, |joined| joined.is_err())
        {
            error!("the spool upkeep thread panicked");
        }
    }))
}

/// The schema migration, then the retention TTLs: what `migrate` does.
/// Returns how many statements ran.
pub async fn migrate(cfg: &Config) -> clickhouse::error::Result<usize> {
    let client = clickhouse_client(cfg, false);
    let database = &cfg.clickhouse.database;
    let ran = schema::migrate(&client, database).await?;
    Ok(ran + retention::apply(&client, database, &cfg.retention).await?)
}

/// Runs [`migrate`] until it succeeds or `stop`, logging each failure.
pub async fn migrate_until_done(cfg: &Config, stop: &CancellationToken) -> bool {
    let mut backoff = Backoff::new(
        Duration::from_millis(cfg.clickhouse.retry_initial_ms),
        Duration::from_millis(cfg.clickhouse.retry_max_ms),
    );
    loop {
        match migrate(cfg).await {
            Ok(n) => {
                info!(database = %cfg.clickhouse.database, statements = n, "clickhouse schema is up to date");
                return true;
            }
            Err(e) => {
                warn!(url = %cfg.clickhouse.url, error = %e, retry_ms = backoff.current().as_millis() as u64, "clickhouse migration failed; retrying")
            }
        }
        if backoff.wait(stop).await.is_err() {
            return false;
        }
    }
}

fn node_name(cfg: &Config) -> String {
    if !cfg.node_name.is_empty() {
        return cfg.node_name.clone();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "trackedge".into())
}

/// Serves until `stop`, then shuts down in order. `migrate` runs the schema
/// migration in the background (ClickHouse being down does not stop
/// redirects); the shipper starts shipping once it has finished, and
/// events wait in the spool until then.
pub async fn run(config: Config, migrate: bool, stop: CancellationToken) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let public = http::cores::bind(config.listen, http::cores::request_threads())
        .with_context(|| format!("cannot listen on {} (listen)", config.listen))?;
    let admin = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin_listen)", config.admin_listen))?;
    // Bound addresses, logged before anything waits on Redis: with port 0
    // configured, this line is how a supervisor or test learns them.
    let listen: SocketAddr = public[0].local_addr()?;
    let admin_addr: SocketAddr = admin.local_addr()?;
    info!(listen = %listen, admin = %admin_addr, "listening");
    std::fs::create_dir_all(&config.spool.dir).with_context(|| {
        format!(
            "cannot create the spool directory {}",
            config.spool.dir.display()
        )
    })?;
    config.check_spool_volume()?;
    let rejected = Rejected::open(&config.spool.dir.join("rejected"))
        .with_context(|| format!("cannot open {}/rejected", config.spool.dir.display()))?;
    let log_dir = config.spool.dir.join("log");
    let log = EventLog::open(&log_dir, config.spool.log_config()?)
        .with_context(|| format!("cannot open the spool at {}", log_dir.display()))?;
    let log = Arc::new(log);
    if log.corrupt_records() > 0 {
        warn!(
            records = log.corrupt_records(),
            "damaged spool records were skipped at start"
        );
    }
    let reader = log.reader();
    let deliver_settings = deliver::Settings::from(&config.postbacks);
    let deliver_client = deliver::client(&deliver_settings)?;

    let background = CancellationToken::new();
    let mut tasks = Vec::new();
    // Cancelled once the schema is up to date (at once with --no-migrate):
    // the shipper waits for it.
    let migrated = CancellationToken::new();
    if migrate {
        let (cfg, stop, done) = (config.clone(), background.clone(), migrated.clone());
        tasks.push(tokio::spawn(async move {
            if migrate_until_done(&cfg, &stop).await {
                done.cancel();
            }
        }));
    } else {
        migrated.cancel();
    }
    let maintain_task = spawn_spool_upkeep(
        log.clone(),
        Duration::from_millis(config.spool.sync_interval_ms),
        background.clone(),
    )
    .context("cannot start the spool upkeep thread")?;

    let sink = Arc::new(EventSink::new(log.clone(), metrics.clone()));
    let ship_stop = CancellationToken::new();
    let shipper = Shipper::new(
        log.clone(),
        reader,
        clickhouse_client(&config, true),
        rejected,
        metrics.clone(),
        ShipperSettings {
            database: config.clickhouse.database.clone(),
            batch_rows: config.clickhouse.batch_rows,
            flush_interval: Duration::from_millis(config.clickhouse.flush_interval_ms),
            retry: Backoff::new(
                Duration::from_millis(config.clickhouse.retry_initial_ms),
                Duration::from_millis(config.clickhouse.retry_max_ms),
            ),
            insert_timeout: Duration::from_secs(config.clickhouse.insert_timeout_secs),
        },
    );
    let grace = Duration::from_secs(config.http.shutdown_grace_secs);
    let enricher = {
        let settings = EnrichSettings {
            geoip_path: config.enrich.geoip_path.clone(),
            agent_cache_entries: config.enrich.agent_cache_entries,
            store_ip: config.privacy.store_ip,
            redis_url: config.redis.url.clone(),
            redis_prefix: config.redis.prefix.clone(),
            redis_timeout: Duration::from_millis(config.redis.timeout_ms),
        };
        let metrics = metrics.clone();
        move || Enricher::new(&settings, &metrics)
    };
    let (enriched_tx, enriched) = tokio::sync::oneshot::channel();
    let shipper_task = spawn_shipper(
        shipper,
        enricher,
        enriched_tx,
        migrated,
        ship_stop.clone(),
        grace,
    )
    .context("cannot start the shipper thread")?;

    let cache = Arc::new(RouteCache::new(metrics.clone()));
    let limiter = Arc::new(ClickLimiter::new(&config.limits));
    let secret = config.secret.as_bytes();
    let previous: Vec<&[u8]> = config
        .previous_secrets
        .iter()
        .map(|s| s.as_bytes())
        .collect();
    let node: Arc<str> = node_name(&config).into();
    let redirector = Redirector::new(
        cache.clone(),
        ClickIdCodec::new(secret, &previous, rand::random()),
        sink.clone(),
        TrustedProxies::new(config.trusted_proxies.clone()),
        limiter.clone(),
        node,
        config.fallback_location()?,
        metrics.clone(),
    );
    let ready = Readiness::new();
    let catalog_slot = CatalogSlot::default();
    let postbacks = Arc::new(Postbacks::new(
        cache.clone(),
        catalog_slot.clone(),
        metrics.clone(),
    ));
    let intake = Intake::new(
        cache.clone(),
        catalog_slot.clone(),
        ClickIdCodec::new(secret, &previous, 0),
        sink.clone(),
        &config.conversions,
        config.limits.max_tracked_ips,
        metrics.clone(),
    )
    .with_postbacks(postbacks.clone());
    let partner_router = http::partner::router(Arc::new(PartnerState {
        catalog: catalog_slot.clone(),
        stats: Stats::new(
            clickhouse_client(&config, false),
            &config.clickhouse.database,
            config.stats.clone(),
        ),
        // The admin ledger's reader; it never records from here.
        conversions: Ledger::new(
            clickhouse_client(&config, true),
            &config.clickhouse.database,
            sink.clone(),
        ),
        payouts: crate::payments::PaymentStore::new(
            clickhouse_client(&config, true),
            &config.clickhouse.database,
        ),
        limiter: KeyLimiter::new(
            config.partner_api.requests_per_minute,
            config.partner_api.burst,
        ),
        public_base: config.public_base(listen),
        max_body_bytes: config.http.max_body_bytes,
    }));
    let public_state = Arc::new(PublicState {
        clicks: redirector,
        conversions: Some(intake),
        applications: config.partners.accept_applications.then(|| {
            Applications::new(
                &config.partners,
                catalog_slot.clone(),
                config.limits.max_tracked_ips,
            )
        }),
        ready: ready.clone(),
        requests: RequestCounters::new(&metrics, "public"),
        redirect_seconds: metrics.redirect_seconds.clone(),
        partner: Some(partner_router),
    });
    let admin_router = http::admin::router(Arc::new(AdminState {
        catalog: catalog_slot.clone(),
        conversions: Ledger::new(
            clickhouse_client(&config, true),
            &config.clickhouse.database,
            sink.clone(),
        )
        .with_postbacks(postbacks.clone()),
        stats: Stats::new(
            clickhouse_client(&config, false),
            &config.clickhouse.database,
            config.stats.clone(),
        ),
        token: AdminToken::new(&config.admin_token).with_read_only(&config.read_only_token_sha256),
        public_base: config.public_base(listen),
        metrics: metrics.clone(),
        requests: RequestCounters::new(&metrics, "admin"),
        ready: ready.clone(),
        max_body_bytes: config.http.max_body_bytes,
        health: HealthSettings {
            reader: ActivityReader::new(
                clickhouse_client(&config, true),
                &config.clickhouse.database,
            ),
            inactive_days: config.health.inactive_days,
        },
        tiers: TierSettings {
            reader: StandingReader::new(
                clickhouse_client(&config, true),
                &config.clickhouse.database,
            ),
            rules: config.tiers.clone(),
        },
        payouts: crate::payments::PaymentStore::new(
            clickhouse_client(&config, true),
            &config.clickhouse.database,
        ),
    }));
    let http_cfg = config.http.clone();

    // The admin listener answers at once (healthz, readyz 503, metrics)
    // while the catalog loads; the public one only once links are known
    // (so no valid link is ever answered 404 during start) and the shipper
    // runs.
    let admin_task = {
        let handler = move |req: hyper::Request<hyper::body::Incoming>, _peer| {
            let router = admin_router.clone();
            async move {
                match router.oneshot(req).await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                }
            }
        };
        tokio::spawn(http::serve(
            "admin",
            admin,
            http_cfg.clone(),
            handler,
            None,
            stop.clone(),
        ))
    };

    let catalog = match Catalog::connect(&config.redis, cache, metrics.clone(), &stop).await {
        Ok(c) => Arc::new(c),
        Err(e) => {
            // Stopped before Redis answered: nothing was served; let the
            // shipper stop cleanly.
            stop.cancel();
            let _ = admin_task.await;
            ship_stop.cancel();
            background.cancel();
            let _ = shipper_task.await;
            let _ = maintain_task.await;
            return Err(e);
        }
    };
    let _ = catalog_slot.set(catalog.clone());
    // Loading a large catalog leaves its parse garbage in malloc's free
    // lists; hand it back so RSS reflects what the cache holds.
    // SAFETY: malloc_trim only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
    let deliver_stop = CancellationToken::new();
    let click_lookup = deliver::ClickLookup::new(
        clickhouse_client(&config, true),
        &config.clickhouse.database,
        deliver_settings.timeout,
    );
    let deliverer = Deliverer::new(
        deliver_settings,
        deliver_client,
        click_lookup,
        &catalog,
        sink,
        metrics.clone(),
        postbacks.waker(),
    );
    let deliver_task = tokio::spawn(deliverer.run(deliver_stop.clone()));
    if config.health.pause_inactive_links {
        tasks.push(tokio::spawn(pause_inactive_partners(
            catalog.clone(),
            ActivityReader::new(
                clickhouse_client(&config, true),
                &config.clickhouse.database,
            ),
            config.health.clone(),
            background.clone(),
        )));
    }
    if config.tiers.any_rules() {
        tasks.push(tokio::spawn(crate::partners::promote::run(
            catalog.clone(),
            StandingReader::new(
                clickhouse_client(&config, true),
                &config.clickhouse.database,
            ),
            crate::payments::PaymentStore::new(
                clickhouse_client(&config, true),
                &config.clickhouse.database,
            ),
            config.tiers.clone(),
            background.clone(),
        )));
    }
    tasks.push(tokio::spawn(catalog.sync(background.clone())));
    {
        let stop = background.clone();
        let upkeep_state = public_state.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        limiter.maintain();
                        if let Some(intake) = &upkeep_state.conversions {
                            intake.maintain();
                        }
                    }
                    _ = stop.cancelled() => return,
                }
            }
        }));
    }

    // Ready means every stage of a click's way runs, the shipper included
    // (it starts once its enricher is built, beside the catalog load, so
    // this rarely waits): the first clicks do not sit in the spool behind
    // the rules' compilation.
    tokio::select! {
        built = enriched => if built.is_err() {
            error!("the shipper thread ended before enrichment was ready");
        },
        _ = stop.cancelled() => {}
    }

    let public_task = {
        let front: Arc<dyn http::front::Front> = public_state.clone();
        let handler = move |req, peer| http::public::handle(public_state.clone(), req, peer);
        tokio::spawn(http::cores::serve(
            "public",
            public,
            http_cfg,
            handler,
            Some(front),
            stop.clone(),
        )?)
    };
    ready.set(true);
    info!(listen = %listen, admin = %admin_addr, "trackedge serving");

    stop.cancelled().await;
    info!("shutting down: draining connections");
    ready.set(false);
    for t in [public_task, admin_task] {
        if let Err(e) = t.await {
            error!(error = %e, "listener task failed");
        }
    }
    // After the listeners (nothing queues any more), before the shipper
    // (which ships the attempts it records).
    deliver_stop.cancel();
    if let Err(e) = deliver_task.await {
        error!(error = %e, "postback worker failed; its jobs stay queued in redis");
    }
    info!("connections drained; shipping what is left");
    ship_stop.cancel();
    if let Err(e) = shipper_task.await {
        error!(error = %e, "shipper task failed; unshipped events stay in the spool");
    }
    background.cancel();
    let _ = maintain_task.await;
    for t in tasks {
        let _ = t.await;
    }
    info!("shutdown complete");
    Ok(())
}
