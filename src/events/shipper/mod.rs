//! The shipper: the segment log's only reader. It reads events in order,
//! inserts them into ClickHouse in batches (by size or age), and
//! acknowledges them in the log only once ClickHouse has taken them, so the
//! log deletes nothing ClickHouse does not hold.
//!
//! Exactly once: a batch whose INSERT failed may still have landed (the
//! answer was lost, or the process died before acknowledging). Before such a
//! batch is sent again — after any failed attempt, and for everything read
//! before the first empty read after start (the backlog a previous process
//! may have shipped) — the shipper asks ClickHouse which of the batch's click
//! ids it already holds, by the batch's time and id range (ids sort by
//! time), and sends only the rest. Conversions are keyed by
//! `(conversion_id, version)` (a status change is a new version, never a
//! duplicate) and asked about before EVERY batch, repeats within a batch
//! dropped too: one version can reach the log twice (a claim taken over),
//! and the `conversions_15m` rollup would count it twice ([`versions`]). `orphan_hits` and `postback_deliveries` rows carry no
//! id and are at least once.
//!
//! Each click is enriched before its INSERT (country, device, OS, browser,
//! the daily visitor hash; see [`crate::enrich`]): the log keeps the click
//! as the redirect recorded it.
//!
//! Retry classification lives in [`classify`]: only a data error
//! (ClickHouse refusing the rows themselves, `Code: 53`, `117`, ...) is not
//! retried: the batch goes to a rejected file and is acknowledged. Anything
//! else, a network or TLS error, a timeout, another server error or an error
//! this build does not know, is transient and retried with capped backoff
//! ([`Backoff`]): a misconfiguration must stall shipping, with the events
//! safe in the log, rather than divert every event into rejected files.
//!
//! The shipper runs on a thread and a current-thread runtime of its own
//! (see `app.rs`), shared only with the tasks of its ClickHouse connections,
//! the drain's deadline timer and a blocking pool for disk I/O.

mod insert;
mod retry;
mod versions;

pub use retry::{classify, ErrorKind};

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clickhouse::Client;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::log::{EventLog, LogReader, Record};
use super::rejected::Rejected;
use super::Event;
use crate::backoff::Backoff;
use crate::enrich::Enricher;
use crate::metrics::Metrics;

/// The query that finds which click ids of a batch ClickHouse holds.
pub const EXISTING_CLICK_IDS_SQL: &str = include_str!("../../sql/existing_click_ids.sql");

/// The query that finds which `(conversion_id, version)` pairs of a batch
/// ClickHouse holds.
pub const EXISTING_CONVERSIONS_SQL: &str =
    include_str!("../../sql/existing_conversion_versions.sql");

/// Longest stretch of the shipper's own CPU work between two yields to
/// the scheduler.
///
/// Where the shipper shares the request worker's runtime (one CPU, see
/// `app.rs`), the redirects due meanwhile wait for the rest of a slice, so
/// a slice is a few times a redirect's cost and far below the 1 ms latency
/// target. On a thread of its own a yield costs one poll of its runtime's
/// driver, well under 1 % of a slice.
pub const SLICE: Duration = Duration::from_micros(50);

/// Items between two looks at the clock (a row takes about 1 µs to decode,
/// enrich and encode).
const CHECK_EVERY: usize = 16;

thread_local! {
    /// When the current slice of shipper work on this thread began.
    static SLICE_START: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// Called for each item `i` of a CPU-bound loop: yields to the runtime once
/// the slice has lasted [`SLICE`], so that decoding, enriching and encoding
/// a 50,000-row batch (tens of milliseconds) comes in slices other tasks
/// run between: the redirects where the shipper shares their runtime, the
/// ClickHouse connections and the drain's deadline everywhere.
async fn yield_every(i: usize) {
    if i % CHECK_EVERY != CHECK_EVERY - 1 {
        return;
    }
    let now = Instant::now();
    let start = SLICE_START.with(|s| match s.get() {
        Some(start) => start,
        None => {
            s.set(Some(now));
            now
        }
    });
    if now.duration_since(start) >= SLICE {
        tokio::task::yield_now().await;
        // Possibly on another worker thread now: start its slice afresh.
        SLICE_START.with(|s| s.set(Some(Instant::now())));
    }
}

/// Starts a fresh slice after the shipper waited (a timer, the network):
/// the time spent waiting was nobody's CPU.
fn new_slice() {
    SLICE_START.with(|s| s.set(Some(Instant::now())));
}

/// Most records read from the log at once (see [`Shipper::fill`]).
const READ_CHUNK: usize = 64;

/// The reader, whichever thread holds it. A panic while holding it ends the
/// shipper anyway (it is resumed there), so poisoning carries no news.
fn lock(reader: &Mutex<LogReader>) -> MutexGuard<'_, LogReader> {
    reader.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Moves events from the log into ClickHouse.
pub struct Shipper {
    /// Shared only with the blocking-pool closures that acknowledge and
    /// release (disk I/O): the shipper is still the log's one reader.
    reader: Arc<Mutex<LogReader>>,
    log: Arc<EventLog>,
    client: Client,
    existing_sql: String,
    existing_conversions_sql: String,
    rejected: Rejected,
    metrics: Arc<Metrics>,
    batch_rows: usize,
    interval: Duration,
    /// The waits between attempts at one batch; each batch starts afresh.
    retry: Backoff,
    insert_timeout: Duration,
    /// Unix second of the oldest event not yet shipped (0: none), kept so
    /// the age gauge moves on while a batch waits out an outage.
    oldest_ts: AtomicU32,
    /// Derives each click's country, device, OS, browser and visitor, and
    /// drops raw IPs when told to: here, off the redirect path.
    enricher: Enricher,
}

/// How the shipper batches and retries: the `clickhouse.*` keys of the
/// config, which `app` hands over (the shipper does not read the config).
#[derive(Debug, Clone)]
pub struct ShipperSettings {
    /// The database holding the tables.
    pub database: String,
    /// Most rows in one INSERT.
    pub batch_rows: usize,
    /// Longest a row waits for its batch to fill.
    pub flush_interval: Duration,
    /// Waits between attempts at one batch.
    pub retry: Backoff,
    /// Longest one INSERT may take before its fate counts as unknown.
    pub insert_timeout: Duration,
}

impl Shipper {
    /// A shipper reading `reader` (of `log`) into `client`.
    pub fn new(
        log: Arc<EventLog>,
        reader: LogReader,
        client: Client,
        rejected: Rejected,
        metrics: Arc<Metrics>,
        settings: ShipperSettings,
    ) -> Self {
        Shipper {
            reader: Arc::new(Mutex::new(reader)),
            log,
            client,
            existing_sql: crate::schema::query_text(EXISTING_CLICK_IDS_SQL, &settings.database),
            existing_conversions_sql: crate::schema::query_text(
                EXISTING_CONVERSIONS_SQL,
                &settings.database,
            ),
            rejected,
            metrics,
            batch_rows: settings.batch_rows,
            interval: settings.flush_interval,
            retry: settings.retry,
            insert_timeout: settings.insert_timeout,
            oldest_ts: AtomicU32::new(0),
            enricher: Enricher::off(),
        }
    }

    /// The shipper with `enricher` (without, each click ships as recorded).
    pub fn with_enricher(mut self, enricher: Enricher) -> Self {
        self.enricher = enricher;
        self
    }

    /// Ships until `stop`, then keeps shipping for at most `grace`; what is
    /// left stays in the log for the next start.
    pub async fn run(mut self, stop: CancellationToken, grace: Duration) {
        let tick = (self.interval / 4).clamp(Duration::from_millis(5), Duration::from_millis(100));
        let mut pending: Vec<Record> = Vec::new();
        let mut since: Option<Instant> = None;
        // The backlog found at start may already be in ClickHouse.
        let mut verify = true;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = stop.cancelled() => break,
            }
            new_slice();
            let got = self.fill(&mut pending).await;
            if got == 0 && pending.is_empty() {
                verify = false;
                self.release().await;
            }
            if !pending.is_empty() {
                since.get_or_insert_with(Instant::now);
            }
            self.update_gauges(&pending);
            let due = since.is_some_and(|t| t.elapsed() >= self.interval);
            if pending.len() >= self.batch_rows || (due && !pending.is_empty()) {
                if self.ship(&pending, verify, &stop).await.is_err() {
                    break;
                }
                self.ack(&pending).await;
                // Under sustained load reading never comes up empty: free
                // the shipped segments now, not only when idle.
                self.release().await;
                pending.clear();
                since = None;
            }
        }
        // A batch cut off by the stop may have landed: check before resending.
        self.drain(pending, grace).await;
    }

    /// Stopped before it was allowed to ship (the schema was never
    /// migrated: ClickHouse unreachable since the start): the final msync,
    /// so the log survives a power loss as after a drain, and a warning.
    pub async fn stop_unshipped(self) {
        let log = self.log.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || log.sync())
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        {
            error!(error = %e, "final msync of the spool failed");
        }
        warn!(
            unshipped_bytes = self.log.disk_bytes(),
            "the clickhouse schema was not migrated before shutdown, so nothing was shipped; the rest stays in the spool for the next start"
        );
    }

    /// Final shipping after stop, bounded by `grace`.
    async fn drain(&mut self, mut pending: Vec<Record>, grace: Duration) {
        let give_up = CancellationToken::new();
        let timer = {
            let give_up = give_up.clone();
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                give_up.cancel();
            })
        };
        loop {
            self.fill(&mut pending).await;
            if pending.is_empty() || give_up.is_cancelled() {
                break;
            }
            if self.ship(&pending, true, &give_up).await.is_err() {
                break;
            }
            self.ack(&pending).await;
            pending.clear();
        }
        timer.abort();
        let log = self.log.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || log.sync())
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        {
            error!(error = %e, "final msync of the spool failed");
        }
        self.update_gauges(&pending);
        if pending.is_empty() {
            info!("every event is in clickhouse");
        } else {
            warn!(
                unshipped_bytes = self.log.disk_bytes(),
                "clickhouse did not take every event within the grace period; the rest stays in the spool for the next start"
            );
        }
    }

    /// Reads from the log until `pending` holds a batch; returns how many.
    /// Reads [`READ_CHUNK`] records at a time and yields between reads once
    /// a slice is used up: checking and copying a whole batch at once would
    /// keep the runtime's other tasks (see [`yield_every`]) waiting for
    /// milliseconds.
    async fn fill(&mut self, pending: &mut Vec<Record>) -> usize {
        let mut got = 0;
        loop {
            let room = self.batch_rows.saturating_sub(pending.len());
            if room == 0 {
                return got;
            }
            let read = lock(&self.reader).read(room.min(READ_CHUNK));
            match read {
                Ok(records) if records.is_empty() => return got,
                Ok(records) => {
                    got += records.len();
                    pending.extend(records);
                }
                Err(e) => {
                    error!(error = %e, "reading the spool failed");
                    return got;
                }
            }
            yield_every(CHECK_EVERY - 1).await;
        }
    }

    /// Acknowledges everything in `shipped`: a durable cursor write and
    /// segment deletes, disk I/O done on the runtime's blocking pool so that
    /// an fsync never stalls the runtime's one thread and the other tasks
    /// it drives.
    async fn ack(&mut self, shipped: &[Record]) {
        let Some(last) = shipped.last().map(|r| r.pos) else {
            return;
        };
        if let Err(e) = self.on_blocking_pool(move |r| r.ack(last)).await {
            // The rows are in ClickHouse; a failed cursor write only means
            // they are read again (and found present) after a restart.
            error!(error = %e, pos = ?last, "acknowledging shipped events failed");
        }
    }

    /// Lets the log delete segments shipped in full.
    async fn release(&mut self) {
        if let Err(e) = self.on_blocking_pool(LogReader::release).await {
            error!(error = %e, "releasing shipped spool segments failed");
        }
    }

    /// Runs `f` on the reader in Tokio's blocking pool.
    async fn on_blocking_pool(
        &self,
        f: impl FnOnce(&mut LogReader) -> std::io::Result<()> + Send + 'static,
    ) -> std::io::Result<()> {
        let reader = Arc::clone(&self.reader);
        match tokio::task::spawn_blocking(move || f(&mut lock(&reader))).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(std::io::Error::other(e)),
        }
    }

    fn update_gauges(&self, pending: &[Record]) {
        let oldest = pending
            .first()
            .and_then(|r| Event::decode(&r.payload).ok())
            .map_or(0, |e| e.ts());
        self.oldest_ts.store(oldest, Ordering::Relaxed);
        self.refresh_gauges();
    }

    fn refresh_gauges(&self) {
        self.metrics.spool_bytes.set(self.log.disk_bytes() as i64);
        self.metrics
            .spool_corrupt_records
            .set(self.log.corrupt_records() as i64);
        let oldest = self.oldest_ts.load(Ordering::Relaxed) as i64;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let age = if oldest == 0 {
            0
        } else {
            (now - oldest).max(0)
        };
        self.metrics.spool_oldest_age_seconds.set(age);
    }
}

#[cfg(test)]
mod tests;
