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
//! time), and sends only the rest. Conversions are shipped the same way,
//! keyed by `(conversion_id, version)`: a status change is a new version,
//! never a duplicate. `orphan_hits` and `postback_deliveries` rows carry no
//! id and are at least once.
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

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clickhouse::{Client, Row, RowWrite};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::log::{EventLog, LogReader, Pos, Record};
use super::rejected::Rejected;
use super::{ClickRow, ConversionRow, Event, EventKind, OrphanRow, PostbackDeliveryRow};
use crate::backoff::{Backoff, Stopped};
use crate::metrics::Metrics;

/// The query that finds which click ids of a batch ClickHouse holds.
pub const EXISTING_CLICK_IDS_SQL: &str = include_str!("../sql/existing_click_ids.sql");

/// The query that finds which `(conversion_id, version)` pairs of a batch
/// ClickHouse holds.
pub const EXISTING_CONVERSIONS_SQL: &str = include_str!("../sql/existing_conversion_versions.sql");

/// One answer row of [`EXISTING_CONVERSIONS_SQL`].
#[derive(Debug, Row, Deserialize)]
struct HeldVersion {
    conversion_id: String,
    version: u64,
}

/// The versions ClickHouse holds, by conversion id.
type HeldVersions = HashMap<String, HashSet<u64>>;

/// How an INSERT failure is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Worth retrying: the server may take the same rows later.
    Transient,
    /// The rows themselves were refused; retrying cannot help.
    Data,
}

/// ClickHouse error codes that mean "these rows are bad", not "try later":
/// parse failures, type mismatches, incorrect data, too-large values.
const DATA_ERROR_CODES: &[u32] = &[6, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 131];

/// Classifies an INSERT error for retry: [`ErrorKind::Data`] only for a
/// ClickHouse server error whose code is one of `DATA_ERROR_CODES`, every
/// other error transient. Rows go to a rejected file only when the server
/// has said they are bad; an error on our side (a TLS or URL problem, a
/// client bug, a variant a newer client adds) is retried, leaving the
/// events in the log.
pub fn classify(e: &clickhouse::error::Error) -> ErrorKind {
    match e {
        clickhouse::error::Error::BadResponse(msg) => match server_code(msg) {
            Some(code) if DATA_ERROR_CODES.contains(&code) => ErrorKind::Data,
            _ => ErrorKind::Transient,
        },
        _ => ErrorKind::Transient,
    }
}

/// The `Code: N` of a ClickHouse error message.
fn server_code(msg: &str) -> Option<u32> {
    let rest = &msg[msg.find("Code: ")? + 6..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// `sql` without its `--` comment lines: the files document themselves,
/// the server needs none of it.
fn sql_without_comments(sql: &str) -> String {
    sql.lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Rows handled between two yields to the scheduler.
const YIELD_EVERY: usize = 512;

/// Yields to the runtime every [`YIELD_EVERY`] items: decoding and encoding
/// a 50,000-row batch takes milliseconds of CPU, and the runtime's one
/// thread also drives the ClickHouse connections and the drain's deadline.
async fn yield_every(i: usize) {
    if i % YIELD_EVERY == YIELD_EVERY - 1 {
        tokio::task::yield_now().await;
    }
}

/// The clicks among `records` (all tagged as clicks) that decode.
fn decode_clicks<'r>(records: &'r [&'r [u8]]) -> impl Iterator<Item = ClickRow<'r>> + 'r {
    records.iter().filter_map(|r| match Event::decode(r) {
        Ok(Event::Click(c)) => Some(c),
        _ => None,
    })
}

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
            existing_sql: sql_without_comments(EXISTING_CLICK_IDS_SQL)
                .replace("{database}", &settings.database),
            existing_conversions_sql: sql_without_comments(EXISTING_CONVERSIONS_SQL)
                .replace("{database}", &settings.database),
            rejected,
            metrics,
            batch_rows: settings.batch_rows,
            interval: settings.flush_interval,
            retry: settings.retry,
            insert_timeout: settings.insert_timeout,
            oldest_ts: AtomicU32::new(0),
        }
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
    /// Reads [`YIELD_EVERY`] records at a time and yields between reads:
    /// checking and copying a whole batch at once would keep the runtime's
    /// other tasks (see [`yield_every`]) waiting for milliseconds.
    async fn fill(&mut self, pending: &mut Vec<Record>) -> usize {
        let mut got = 0;
        loop {
            let room = self.batch_rows.saturating_sub(pending.len());
            if room == 0 {
                return got;
            }
            let read = lock(&self.reader).read(room.min(YIELD_EVERY));
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
            tokio::task::yield_now().await;
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

    /// Inserts one batch of records, each table exactly once where it can.
    async fn ship(
        &self,
        records: &[Record],
        verify: bool,
        stop: &CancellationToken,
    ) -> Result<(), Stopped> {
        // Clicks stay encoded until the INSERT writes them, so a batch costs
        // its log bytes and not a second, decoded copy of every row.
        let mut clicks: Vec<&[u8]> = Vec::with_capacity(records.len());
        let mut orphans: Vec<OrphanRow<'_>> = Vec::new();
        let mut conversions: Vec<ConversionRow<'_>> = Vec::new();
        let mut deliveries: Vec<PostbackDeliveryRow<'_>> = Vec::new();
        for (i, r) in records.iter().enumerate() {
            yield_every(i).await;
            match Event::kind(&r.payload) {
                Ok(EventKind::Click) => clicks.push(&r.payload),
                Ok(EventKind::Orphan) => match Event::decode(&r.payload) {
                    Ok(Event::Orphan(o)) => orphans.push(o),
                    _ => self.undecodable(r.pos, "orphan hit does not decode"),
                },
                Ok(EventKind::Conversion) => match Event::decode(&r.payload) {
                    Ok(Event::Conversion(c)) => conversions.push(c),
                    _ => self.undecodable(r.pos, "conversion does not decode"),
                },
                Ok(EventKind::Delivery) => match Event::decode(&r.payload) {
                    Ok(Event::Delivery(d)) => deliveries.push(d),
                    _ => self.undecodable(r.pos, "postback delivery does not decode"),
                },
                Err(e) => self.undecodable(r.pos, &e.to_string()),
            }
        }
        if !clicks.is_empty() {
            self.ship_clicks(&clicks, verify, stop).await?;
        }
        if !conversions.is_empty() {
            self.ship_conversions(&conversions, verify, stop).await?;
        }
        if !orphans.is_empty() {
            self.ship_at_least_once::<OrphanRow<'static>, _>(
                "orphan_hits",
                &orphans,
                Event::Orphan,
                stop,
            )
            .await?;
        }
        if !deliveries.is_empty() {
            self.ship_at_least_once::<PostbackDeliveryRow<'static>, _>(
                "postback_deliveries",
                &deliveries,
                Event::Delivery,
                stop,
            )
            .await?;
        }
        Ok(())
    }

    fn undecodable(&self, pos: Pos, why: &str) {
        self.metrics.events_undecodable.inc();
        error!(error = why, pos = ?pos, "undecodable event in the spool; skipped");
    }

    /// Clicks, exactly once: after any doubt, only the ids ClickHouse lacks.
    async fn ship_clicks(
        &self,
        records: &[&[u8]],
        mut verify: bool,
        stop: &CancellationToken,
    ) -> Result<(), Stopped> {
        let rows = || decode_clicks(records);
        let mut backoff = self.retry.clone();
        loop {
            let attempt = async {
                let held = if verify {
                    self.existing_click_ids(rows())
                        .await
                        .map_err(|e| self.count_error(&e, "clicks", records.len()))?
                } else {
                    HashSet::new()
                };
                let send = || rows().filter(|r| held.is_empty() || !held.contains(r.click_id));
                if !held.is_empty() {
                    let count = send().count();
                    info!(
                        already_there = records.len() - count,
                        "skipped clicks clickhouse already holds"
                    );
                    if count == 0 {
                        return Ok(());
                    }
                }
                match self.insert::<ClickRow<'static>, _>("clicks", send()).await {
                    Ok(written) => {
                        if held.is_empty() && written < records.len() {
                            let bad = records.len() - written;
                            self.metrics.events_undecodable.inc_by(bad as u64);
                            error!(records = bad, "undecodable clicks in the spool; skipped");
                        }
                        Ok(())
                    }
                    Err(ErrorKind::Data) => {
                        self.reject("clicks", send().map(Event::Click).collect());
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            };
            match attempt.await {
                Ok(()) => return Ok(()),
                Err(_) => {
                    verify = true;
                    self.wait(&mut backoff, stop).await?;
                }
            }
        }
    }

    /// Conversions, exactly once per `(conversion_id, version)`: after any
    /// doubt, only the pairs ClickHouse lacks.
    async fn ship_conversions(
        &self,
        rows: &[ConversionRow<'_>],
        mut verify: bool,
        stop: &CancellationToken,
    ) -> Result<(), Stopped> {
        let mut backoff = self.retry.clone();
        loop {
            let attempt = async {
                let held = if verify {
                    self.existing_conversions(rows)
                        .await
                        .map_err(|e| self.count_error(&e, "conversions", rows.len()))?
                } else {
                    HeldVersions::new()
                };
                let send = || {
                    rows.iter().filter(|r| {
                        !held
                            .get(r.conversion_id)
                            .is_some_and(|v| v.contains(&r.version))
                    })
                };
                if !held.is_empty() {
                    let count = send().count();
                    info!(
                        already_there = rows.len() - count,
                        "skipped conversions clickhouse already holds"
                    );
                    if count == 0 {
                        return Ok(());
                    }
                }
                match self
                    .insert::<ConversionRow<'static>, _>("conversions", send().cloned())
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(ErrorKind::Data) => {
                        self.reject(
                            "conversions",
                            send().cloned().map(Event::Conversion).collect(),
                        );
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            };
            match attempt.await {
                Ok(()) => return Ok(()),
                Err(_) => {
                    verify = true;
                    self.wait(&mut backoff, stop).await?;
                }
            }
        }
    }

    /// Rows that carry no id (orphan hits, postback deliveries): retried
    /// until taken, so at least once.
    async fn ship_at_least_once<'r, T: RowWrite, R>(
        &self,
        table: &'static str,
        rows: &[R],
        to_event: fn(R) -> Event<'r>,
        stop: &CancellationToken,
    ) -> Result<(), Stopped>
    where
        R: Clone + Into<T::Value<'r>>,
    {
        let mut backoff = self.retry.clone();
        loop {
            match self
                .insert::<T, _>(table, rows.iter().cloned().map(Into::into))
                .await
            {
                Ok(_) => return Ok(()),
                Err(ErrorKind::Data) => {
                    self.reject(table, rows.iter().cloned().map(to_event).collect());
                    return Ok(());
                }
                Err(ErrorKind::Transient) => self.wait(&mut backoff, stop).await?,
            }
        }
    }

    /// Waits before the next attempt at a batch, unless `stop` comes
    /// first (the rows then stay in the log). The gauges are refreshed
    /// first, so the spool's age keeps moving while an outage lasts.
    async fn wait(&self, backoff: &mut Backoff, stop: &CancellationToken) -> Result<(), Stopped> {
        self.refresh_gauges();
        backoff.wait(stop).await
    }

    /// The click ids among `rows` that ClickHouse already holds.
    async fn existing_click_ids<'r>(
        &self,
        rows: impl Iterator<Item = ClickRow<'r>>,
    ) -> clickhouse::error::Result<HashSet<String>> {
        let (mut min_ts, mut max_ts) = (u32::MAX, 0);
        let (mut min_id, mut max_id) = ("", "");
        for (i, r) in rows.enumerate() {
            min_ts = min_ts.min(r.ts);
            max_ts = max_ts.max(r.ts);
            if i == 0 || r.click_id < min_id {
                min_id = r.click_id;
            }
            max_id = max_id.max(r.click_id);
        }
        if min_ts > max_ts {
            return Ok(HashSet::new());
        }
        let ids = self
            .client
            .query(&self.existing_sql)
            .bind(min_ts)
            .bind(max_ts)
            .bind(min_id)
            .bind(max_id)
            .fetch_all::<String>()
            .await?;
        Ok(ids.into_iter().collect())
    }

    /// The `(conversion_id, version)` pairs among `rows` that ClickHouse
    /// already holds.
    async fn existing_conversions(
        &self,
        rows: &[ConversionRow<'_>],
    ) -> clickhouse::error::Result<HeldVersions> {
        let Some(first) = rows.first() else {
            return Ok(HeldVersions::new());
        };
        let (mut min_ts, mut max_ts) = (first.ts, first.ts);
        let (mut min_id, mut max_id) = (first.conversion_id, first.conversion_id);
        for r in rows {
            min_ts = min_ts.min(r.ts);
            max_ts = max_ts.max(r.ts);
            min_id = min_id.min(r.conversion_id);
            max_id = max_id.max(r.conversion_id);
        }
        let found = self
            .client
            .query(&self.existing_conversions_sql)
            .bind(min_ts)
            .bind(max_ts)
            .bind(min_id)
            .bind(max_id)
            .fetch_all::<HeldVersion>()
            .await?;
        let mut held = HeldVersions::new();
        for h in found {
            held.entry(h.conversion_id).or_default().insert(h.version);
        }
        Ok(held)
    }

    /// One INSERT attempt, measured and counted: the rows it wrote.
    async fn insert<'r, T: RowWrite, I: Iterator<Item = T::Value<'r>>>(
        &self,
        table: &'static str,
        rows: I,
    ) -> Result<usize, ErrorKind> {
        let started = Instant::now();
        let mut written = 0;
        let result = async {
            let mut insert = self
                .client
                .insert::<T>(table)
                .await?
                .with_timeouts(Some(self.insert_timeout), Some(self.insert_timeout));
            for row in rows {
                yield_every(written).await;
                insert.write(&row).await?;
                written += 1;
            }
            insert.end().await
        }
        .await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.metrics
            .flush_seconds
            .with_label_values(&[outcome])
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(()) => {
                self.metrics.batch_rows.observe(written as f64);
                self.metrics
                    .events_flushed
                    .with_label_values(&[table])
                    .inc_by(written as u64);
                Ok(written)
            }
            Err(e) => Err(self.count_error(&e, table, written)),
        }
    }

    fn count_error(
        &self,
        e: &clickhouse::error::Error,
        table: &'static str,
        rows: usize,
    ) -> ErrorKind {
        let kind = classify(e);
        let label = match kind {
            ErrorKind::Transient => "transient",
            ErrorKind::Data => "data",
        };
        self.metrics
            .clickhouse_errors
            .with_label_values(&[label])
            .inc();
        warn!(table, rows, kind = label, error = %e, "clickhouse request failed");
        kind
    }

    /// Keeps refused rows in a rejected file for an operator.
    fn reject(&self, table: &'static str, events: Vec<Event<'_>>) {
        self.metrics
            .events_failed
            .with_label_values(&[table])
            .inc_by(events.len() as u64);
        match self.rejected.write(&events) {
            Ok(path) => {
                error!(table, rows = events.len(), file = %path.display(), "clickhouse refused rows as bad data; kept in a rejected file")
            }
            Err(e) => {
                error!(table, rows = events.len(), error = %e, "clickhouse refused rows and they could not be kept; rows lost")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(e: &clickhouse::error::Error, expected: ErrorKind) {
        assert_eq!(classify(e), expected, "{e}");
    }

    #[test]
    fn classification() {
        use clickhouse::error::Error as E;
        let cases: Vec<(E, ErrorKind)> = vec![
            (
                E::BadResponse("Code: 53, e.displayText() = DB::Exception: Type mismatch".into()),
                ErrorKind::Data,
            ),
            (
                E::BadResponse("Code: 117. DB::Exception: Incorrect data".into()),
                ErrorKind::Data,
            ),
            (
                E::BadResponse("Code: 60. DB::Exception: Table x doesn't exist".into()),
                ErrorKind::Transient,
            ),
            (
                E::BadResponse("Code: 241. Memory limit exceeded".into()),
                ErrorKind::Transient,
            ),
            (
                E::BadResponse("502 Bad Gateway".into()),
                ErrorKind::Transient,
            ),
            (E::TimedOut, ErrorKind::Transient),
            (
                E::Network("invalid peer certificate: UnknownIssuer".into()),
                ErrorKind::Transient,
            ),
            (
                E::Unsupported("invalid URL, scheme is not http".into()),
                ErrorKind::Transient,
            ),
            // Errors of our own making are not the rows' fault.
            (E::Custom("bad serde".into()), ErrorKind::Transient),
            (E::NotEnoughData, ErrorKind::Transient),
            (E::SchemaMismatch("clicks".into()), ErrorKind::Transient),
            (E::Other("unknown".into()), ErrorKind::Transient),
        ];
        for (e, kind) in cases {
            check(&e, kind);
        }
    }

    /// A ClickHouse URL that cannot work (here `https://` to a server that
    /// speaks plain HTTP) is transient: the batch waits in the log, retried,
    /// and nothing goes to the rejected files.
    #[tokio::test]
    async fn a_tls_failure_is_retried_and_rejects_nothing() {
        use std::io::{Read, Write};

        use crate::events::log::LogConfig;

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = CancellationToken::new();
        // Each attempt connects anew: a second connection means the first
        // attempt failed and was retried, so the test may stop there.
        let server = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut first_bytes = Vec::new();
                for attempt in 1..=2 {
                    let (mut conn, _) = listener.accept().unwrap();
                    let mut byte = [0u8; 1];
                    first_bytes.push(conn.read_exact(&mut byte).map(|()| byte[0]).ok());
                    // What a ClickHouse without TLS answers a ClientHello with.
                    let _ =
                        conn.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
                    if attempt == 2 {
                        stop.cancel();
                    }
                }
                first_bytes
            })
        };

        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(
            EventLog::open(&dir.path().join("log"), LogConfig::new(4096, 8192).unwrap()).unwrap(),
        );
        let reader = log.reader();
        let client = Client::default().with_url(format!("https://127.0.0.1:{port}"));
        let rejected_dir = dir.path().join("rejected");
        let metrics = Arc::new(Metrics::new());
        let shipper = Shipper::new(
            Arc::clone(&log),
            reader,
            client,
            Rejected::open(&rejected_dir).unwrap(),
            Arc::clone(&metrics),
            ShipperSettings {
                database: "trackedge".into(),
                batch_rows: 1000,
                flush_interval: Duration::from_millis(10),
                retry: Backoff::constant(Duration::from_millis(1)),
                insert_timeout: Duration::from_secs(5),
            },
        );
        let mut event = Vec::new();
        Event::Click(crate::events::tests::click()).encode(&mut event);
        log.append(&event).unwrap();
        let records = lock(&shipper.reader).read(10).unwrap();
        assert_eq!(records.len(), 1);

        let shipped = shipper.ship(&records, false, &stop).await;
        assert!(
            shipped.is_err(),
            "shipping must wait for a working clickhouse"
        );
        // 0x16: a TLS handshake record, so the client does speak TLS.
        assert_eq!(server.join().unwrap(), vec![Some(0x16); 2]);
        let errors = |kind: &str| metrics.clickhouse_errors.with_label_values(&[kind]).get();
        assert!(errors("transient") >= 1);
        assert_eq!(errors("data"), 0);
        assert_eq!(
            metrics.events_failed.with_label_values(&["clicks"]).get(),
            0
        );
        let kept: Vec<_> = std::fs::read_dir(&rejected_dir).unwrap().collect();
        assert!(kept.is_empty(), "rejected files: {kept:?}");
    }

    #[test]
    fn server_codes() {
        assert_eq!(server_code("Code: 53, e.displayText()"), Some(53));
        assert_eq!(server_code("Code: 117."), Some(117));
        assert_eq!(server_code("no code"), None);
    }
}
