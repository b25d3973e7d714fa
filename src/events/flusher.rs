//! The flusher: drains the event buffer into ClickHouse in batches, by size
//! or age, retrying transient errors with capped exponential backoff.
//!
//! Retry classification lives in [`classify`]: a network error, a timeout or
//! a server-side error is transient and retried; a data error (ClickHouse
//! refusing the rows themselves) is not, and the batch goes to the spool's
//! rejected files instead of being retried forever. On shutdown, whatever
//! cannot be inserted within the grace period goes to the replay spool.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clickhouse::{Client, RowOwned, RowWrite};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::spool::{Spool, REJECTED_PREFIX, REPLAY_PREFIX};
use super::{ClickRow, Event, EventBuffer, OrphanRow};
use crate::config::ClickHouseConfig;
use crate::metrics::Metrics;

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

/// Classifies an INSERT error for retry.
pub fn classify(e: &clickhouse::error::Error) -> ErrorKind {
    use clickhouse::error::Error as E;
    match e {
        E::BadResponse(msg) => match server_code(msg) {
            Some(code) if DATA_ERROR_CODES.contains(&code) => ErrorKind::Data,
            _ => ErrorKind::Transient,
        },
        E::Network(_) | E::TimedOut | E::Compression(_) | E::Decompression(_) | E::Other(_) => {
            ErrorKind::Transient
        }
        _ => ErrorKind::Data,
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

/// Drains the buffer into ClickHouse.
pub struct Flusher {
    buffer: Arc<EventBuffer>,
    client: Client,
    spool: Spool,
    metrics: Arc<Metrics>,
    batch_rows: usize,
    interval: Duration,
    retry_initial: Duration,
    retry_max: Duration,
    insert_timeout: Duration,
}

/// The pending batch of each table.
#[derive(Default)]
struct Batches {
    clicks: Vec<ClickRow>,
    orphans: Vec<OrphanRow>,
    /// When the oldest pending event arrived.
    oldest: Option<Instant>,
}

impl Batches {
    fn len(&self) -> usize {
        self.clicks.len() + self.orphans.len()
    }

    fn add(&mut self, e: Event) {
        self.oldest.get_or_insert_with(Instant::now);
        match e {
            Event::Click(c) => self.clicks.push(c),
            Event::Orphan(o) => self.orphans.push(o),
        }
    }

    fn events(&self) -> impl Iterator<Item = Event> + '_ {
        let clicks = self.clicks.iter().cloned().map(Event::Click);
        clicks.chain(self.orphans.iter().cloned().map(Event::Orphan))
    }
}

/// Why an insert with retries gave up.
enum GiveUp {
    /// Shutdown came before ClickHouse took the rows.
    Stopped,
}

impl Flusher {
    /// A flusher from `buffer` to `client`, spooling into `spool`.
    pub fn new(
        buffer: Arc<EventBuffer>,
        client: Client,
        spool: Spool,
        metrics: Arc<Metrics>,
        cfg: &ClickHouseConfig,
    ) -> Self {
        Flusher {
            buffer,
            client,
            spool,
            metrics,
            batch_rows: cfg.batch_rows,
            interval: Duration::from_millis(cfg.flush_interval_ms),
            retry_initial: Duration::from_millis(cfg.retry_initial_ms),
            retry_max: Duration::from_millis(cfg.retry_max_ms),
            insert_timeout: Duration::from_secs(cfg.insert_timeout_secs),
        }
    }

    /// Runs until `stop` is cancelled, then drains everything: into
    /// ClickHouse when it answers within `grace`, else into the spool.
    pub async fn run(self, stop: CancellationToken, grace: Duration) {
        self.replay_spool(&stop).await;
        let tick = (self.interval / 4).clamp(Duration::from_millis(5), Duration::from_millis(100));
        let mut batches = Batches::default();
        loop {
            let stopping = tokio::select! {
                _ = tokio::time::sleep(tick) => false,
                _ = stop.cancelled() => true,
            };
            if stopping {
                break;
            }
            self.fill(&mut batches, self.batch_rows);
            self.metrics.buffer_len.set(self.buffer.len() as i64);
            let due = batches.oldest.is_some_and(|t| t.elapsed() >= self.interval);
            if batches.len() >= self.batch_rows || due {
                if let Err(GiveUp::Stopped) = self.flush(&mut batches, &stop).await {
                    break;
                }
            }
        }
        self.drain_at_shutdown(batches, grace).await;
    }

    /// Moves events from the buffer into `batches` up to `limit` in all.
    fn fill(&self, batches: &mut Batches, limit: usize) {
        while batches.len() < limit {
            match self.buffer.pop() {
                Some(e) => batches.add(e),
                None => break,
            }
        }
    }

    /// Inserts both batches, retrying transient errors until `stop`.
    async fn flush(&self, b: &mut Batches, stop: &CancellationToken) -> Result<(), GiveUp> {
        if !b.clicks.is_empty() {
            self.insert_retrying("clicks", &b.clicks, stop).await?;
            b.clicks.clear();
        }
        if !b.orphans.is_empty() {
            self.insert_retrying("orphan_hits", &b.orphans, stop)
                .await?;
            b.orphans.clear();
        }
        b.oldest = None;
        Ok(())
    }

    /// One table's batch, retried with capped backoff. A data error sends
    /// the batch to the rejected spool and counts as done.
    async fn insert_retrying<T>(
        &self,
        table: &'static str,
        rows: &[T],
        stop: &CancellationToken,
    ) -> Result<(), GiveUp>
    where
        T: RowOwned + RowWrite + Serialize + Clone,
        Event: From<T>,
    {
        let mut delay = self.retry_initial;
        loop {
            match self.insert(table, rows).await {
                Ok(()) => return Ok(()),
                Err(ErrorKind::Data) => {
                    self.reject(table, rows);
                    return Ok(());
                }
                Err(ErrorKind::Transient) => {
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.cancelled() => return Err(GiveUp::Stopped),
                    }
                    delay = (delay * 2).min(self.retry_max);
                }
            }
        }
    }

    /// One INSERT attempt, measured and counted.
    async fn insert<T>(&self, table: &'static str, rows: &[T]) -> Result<(), ErrorKind>
    where
        T: RowOwned + RowWrite,
    {
        let started = Instant::now();
        let result = async {
            let mut insert = self
                .client
                .insert::<T>(table)
                .await?
                .with_timeouts(Some(self.insert_timeout), Some(self.insert_timeout));
            for row in rows {
                insert.write(row).await?;
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
                self.metrics.batch_rows.observe(rows.len() as f64);
                self.metrics
                    .events_flushed
                    .with_label_values(&[table])
                    .inc_by(rows.len() as u64);
                Ok(())
            }
            Err(e) => {
                let kind = classify(&e);
                let label = match kind {
                    ErrorKind::Transient => "transient",
                    ErrorKind::Data => "data",
                };
                self.metrics
                    .clickhouse_errors
                    .with_label_values(&[label])
                    .inc();
                warn!(table, rows = rows.len(), kind = label, error = %e, "clickhouse insert failed");
                Err(kind)
            }
        }
    }

    /// Keeps refused rows in a rejected file for an operator.
    fn reject<T: Clone>(&self, table: &'static str, rows: &[T])
    where
        Event: From<T>,
    {
        let events: Vec<Event> = rows.iter().cloned().map(Event::from).collect();
        self.metrics
            .events_failed
            .with_label_values(&[table])
            .inc_by(rows.len() as u64);
        match self.spool.write(REJECTED_PREFIX, &events) {
            Ok(path) => {
                error!(table, rows = rows.len(), file = %path.display(), "clickhouse refused rows as bad data; kept in the spool")
            }
            Err(e) => {
                error!(table, rows = rows.len(), error = %e, "clickhouse refused rows and the spool could not keep them; rows lost")
            }
        }
    }

    /// Final drain: every buffered event into ClickHouse within `grace`, or
    /// into the replay spool.
    async fn drain_at_shutdown(&self, mut batches: Batches, grace: Duration) {
        let deadline = Instant::now() + grace;
        let give_up = CancellationToken::new();
        let timer = {
            let give_up = give_up.clone();
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                give_up.cancel();
            })
        };
        loop {
            self.fill(&mut batches, self.batch_rows);
            if batches.len() == 0 {
                break;
            }
            if self.flush(&mut batches, &give_up).await.is_err() || Instant::now() >= deadline {
                break;
            }
        }
        timer.abort();
        // Whatever is left (the current batches and the rest of the buffer)
        // goes to the spool in one file.
        let mut rest: Vec<Event> = batches.events().collect();
        while let Some(e) = self.buffer.pop() {
            rest.push(e);
        }
        self.metrics.buffer_len.set(0);
        if rest.is_empty() {
            info!("flusher drained every event into clickhouse");
            return;
        }
        self.spool_events(&rest);
    }

    fn spool_events(&self, events: &[Event]) {
        match self.spool.write(REPLAY_PREFIX, events) {
            Ok(path) => {
                for e in events {
                    self.metrics
                        .events_spooled
                        .with_label_values(&[e.table()])
                        .inc();
                }
                warn!(events = events.len(), file = %path.display(), "clickhouse unreachable; events kept in the spool for the next start");
            }
            Err(e) => {
                error!(events = events.len(), error = %e, "could not write the spool; events lost")
            }
        }
    }

    /// Inserts every spool file left by an earlier run, oldest first,
    /// deleting each once ClickHouse has taken all of it.
    async fn replay_spool(&self, stop: &CancellationToken) {
        let files = match self.spool.pending() {
            Ok(f) => f,
            Err(e) => {
                error!(dir = %self.spool.dir().display(), error = %e, "cannot list the spool");
                return;
            }
        };
        for path in files {
            let (events, bad) = match Spool::read(&path) {
                Ok(x) => x,
                Err(e) => {
                    error!(file = %path.display(), error = %e, "cannot read spool file; left in place");
                    continue;
                }
            };
            if bad > 0 {
                error!(file = %path.display(), lines = bad, "spool file had undecodable lines; they are skipped");
            }
            let mut batches = Batches::default();
            let mut done = true;
            for e in events {
                batches.add(e);
                if batches.len() >= self.batch_rows && self.flush(&mut batches, stop).await.is_err()
                {
                    done = false;
                    break;
                }
            }
            if done && self.flush(&mut batches, stop).await.is_err() {
                done = false;
            }
            if !done {
                // Stopped mid-file: the file stays and is replayed in full
                // next time; rows already inserted collapse in the
                // ReplacingMergeTree tables and reports count distinct ids.
                return;
            }
            if let Err(e) = self.spool.remove(&path) {
                error!(file = %path.display(), error = %e, "replayed spool file could not be deleted");
            } else {
                info!(file = %path.display(), "replayed spool file");
            }
        }
    }
}

impl From<ClickRow> for Event {
    fn from(c: ClickRow) -> Self {
        Event::Click(c)
    }
}

impl From<OrphanRow> for Event {
    fn from(o: OrphanRow) -> Self {
        Event::Orphan(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            (E::Custom("bad serde".into()), ErrorKind::Data),
        ];
        for (e, kind) in cases {
            assert_eq!(classify(&e), kind, "{e}");
        }
    }

    #[test]
    fn server_codes() {
        assert_eq!(server_code("Code: 53, e.displayText()"), Some(53));
        assert_eq!(server_code("Code: 117."), Some(117));
        assert_eq!(server_code("no code"), None);
    }
}
