//! One batch into ClickHouse: split by table, clicks exactly once (after
//! any doubt, only what ClickHouse lacks), conversions exactly once per
//! version (always only what ClickHouse lacks, each once), the other rows
//! at least once, and rows ClickHouse refuses kept in a rejected file.

use std::collections::HashSet;
use std::time::Instant;

use clickhouse::{Row, RowWrite};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::retry::{classify, ErrorKind};
use super::versions::{to_send, Held, HeldState};
use super::{yield_every, Shipper};
use crate::backoff::{Backoff, Stopped};
use crate::enrich::{ClickFacts, Enriched};
use crate::events::log::{Pos, Record};
use crate::events::{
    ClickRow, ConversionRow, Event, EventKind, Money, OrphanRow, PostbackDeliveryRow, ShippedClick,
};

/// One answer row of [`EXISTING_CONVERSIONS_SQL`].
///
/// [`EXISTING_CONVERSIONS_SQL`]: super::EXISTING_CONVERSIONS_SQL
#[derive(Debug, Row, Deserialize)]
struct HeldVersion {
    conversion_id: String,
    version: u64,
    status: String,
    amount: Money,
    payout: Money,
}

/// Most conversion ids in one query for the versions ClickHouse holds:
/// about 30 KB of SQL, far below ClickHouse's `max_query_size` (256 KiB),
/// which bounds the text of a SELECT with its bound values.
const HELD_IDS_PER_QUERY: usize = 1_000;

/// Conversion ids bound as a tuple, `('a', 'b')`, for `conversion_id IN ?`
/// (a slice binds as an array, `['a', 'b']`; IN is written with a tuple).
struct IdTuple<'a>(&'a [(&'a str, u32)]);

impl serde::Serialize for IdTuple<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(self.0.len())?;
        for (id, _) in self.0 {
            t.serialize_element(id)?;
        }
        t.end()
    }
}

/// The clicks among `records` (all tagged as clicks) that decode.
fn decode_clicks<'r>(records: &'r [&'r [u8]]) -> impl Iterator<Item = ClickRow<'r>> + 'r {
    records.iter().filter_map(|r| match Event::decode(r) {
        Ok(Event::Click(c)) => Some(c),
        _ => None,
    })
}

impl Shipper {
    /// Inserts one batch of records, each table exactly once where it can.
    pub(super) async fn ship(
        &mut self,
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
        let store_ip = self.enricher.store_ip();
        if !store_ip {
            // `privacy.store_ip` off: no raw IP reaches ClickHouse (nor a
            // rejected file). Clicks lose theirs once enriched, below.
            orphans.iter_mut().for_each(|o| o.ip = "");
            conversions.iter_mut().for_each(|c| c.ip = "");
        }
        if !clicks.is_empty() {
            let enriched = self.enrich(&clicks).await;
            self.ship_clicks(&clicks, &enriched, store_ip, verify, stop)
                .await?;
        }
        if !conversions.is_empty() {
            self.ship_conversions(&conversions, stop).await?;
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

    /// What enrichment adds to each click that decodes, in
    /// [`decode_clicks`] order: the clicks decoded once for the facts it
    /// reads, the day keys first (the one await on Redis), then each click
    /// on this thread, yielding as decoding does.
    async fn enrich(&mut self, records: &[&[u8]]) -> Vec<Enriched> {
        let mut facts: Vec<ClickFacts<'_>> = Vec::with_capacity(records.len());
        for (i, c) in decode_clicks(records).enumerate() {
            yield_every(i).await;
            facts.push(ClickFacts::from(&c));
        }
        self.enricher.prepare(facts.iter().map(|f| f.ts)).await;
        let mut enriched = Vec::with_capacity(facts.len());
        for (i, f) in facts.into_iter().enumerate() {
            yield_every(i).await;
            enriched.push(self.enricher.enrich(f));
        }
        enriched
    }

    fn undecodable(&self, pos: Pos, why: &str) {
        self.metrics.events_undecodable.inc();
        error!(error = why, pos = ?pos, "undecodable event in the spool; skipped");
    }

    /// Clicks, exactly once: after any doubt, only the ids ClickHouse lacks.
    /// `enriched` holds what enrichment adds to each, in decoding order.
    async fn ship_clicks(
        &self,
        records: &[&[u8]],
        enriched: &[Enriched],
        store_ip: bool,
        mut verify: bool,
        stop: &CancellationToken,
    ) -> Result<(), Stopped> {
        let rows = || decode_clicks(records).zip(enriched);
        let mut backoff = self.retry.clone();
        loop {
            let attempt = async {
                let held = if verify {
                    self.existing_click_ids(rows().map(|(r, _)| r))
                        .await
                        .map_err(|e| self.count_error(&e, "clicks", records.len()))?
                } else {
                    HashSet::new()
                };
                let send = || rows().filter(|(r, _)| held.is_empty() || !held.contains(r.click_id));
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
                match self
                    .insert::<ShippedClick<'static>, _>(
                        "clicks",
                        send().map(|(r, e)| ShippedClick::enriched(r, e, store_ip)),
                    )
                    .await
                {
                    Ok(written) => {
                        if held.is_empty() && written < records.len() {
                            let bad = records.len() - written;
                            self.metrics.events_undecodable.inc_by(bad as u64);
                            error!(records = bad, "undecodable clicks in the spool; skipped");
                        }
                        Ok(())
                    }
                    Err(ErrorKind::Data) => {
                        let kept = send()
                            .map(|(mut r, _)| {
                                if !store_ip {
                                    r.ip = "";
                                }
                                Event::Click(r)
                            })
                            .collect();
                        self.reject("clicks", kept);
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

    /// Conversions, exactly once per `(conversion_id, version)`: before
    /// every attempt, not only after a doubt, the pairs ClickHouse holds
    /// are asked for and left out, and so are repeats within the batch
    /// (see [`super::versions`]).
    async fn ship_conversions(
        &self,
        rows: &[ConversionRow<'_>],
        stop: &CancellationToken,
    ) -> Result<(), Stopped> {
        let mut backoff = self.retry.clone();
        loop {
            let attempt = async {
                let held = self
                    .existing_conversions(rows)
                    .await
                    .map_err(|e| self.count_error(&e, "conversions", rows.len()))?;
                let (send, orphans) = to_send(rows, &held);
                if send.len() < rows.len() {
                    info!(
                        already_there = rows.len() - send.len(),
                        "skipped conversion versions clickhouse already holds or the batch repeats"
                    );
                }
                if orphans > 0 {
                    warn!(
                        rows = orphans,
                        "status changes recorded before event format 3 whose previous version \
                         clickhouse lacks: conversions_15m counts their new state without taking \
                         the old one back (README, \"Stats\": rebuilding the rollup)"
                    );
                }
                if send.is_empty() {
                    return Ok(());
                }
                match self
                    .insert::<ConversionRow<'static>, _>("conversions", send.iter().cloned())
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(ErrorKind::Data) => {
                        self.reject(
                            "conversions",
                            send.into_iter().map(Event::Conversion).collect(),
                        );
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            };
            match attempt.await {
                Ok(()) => return Ok(()),
                Err(_) => self.wait(&mut backoff, stop).await?,
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

    /// The versions ClickHouse already holds of the conversions among
    /// `rows`, with their states: one query per [`HELD_IDS_PER_QUERY`]
    /// conversions, in id order, so each query's time and id range is as
    /// narrow as the batch allows.
    async fn existing_conversions(
        &self,
        rows: &[ConversionRow<'_>],
    ) -> clickhouse::error::Result<Held> {
        let mut ids: Vec<(&str, u32)> = rows.iter().map(|r| (r.conversion_id, r.ts)).collect();
        ids.sort_unstable();
        ids.dedup_by_key(|(id, _)| *id);
        let mut held = Held::new();
        for chunk in ids.chunks(HELD_IDS_PER_QUERY) {
            let (min_ts, max_ts) = chunk.iter().fold((u32::MAX, 0), |(lo, hi), (_, ts)| {
                (lo.min(*ts), hi.max(*ts))
            });
            // Sorted and non-empty: chunks() yields no empty slice.
            let (min_id, max_id) = (chunk[0].0, chunk[chunk.len() - 1].0);
            let found = self
                .client
                .query(&self.existing_conversions_sql)
                .bind(min_ts)
                .bind(max_ts)
                .bind(min_id)
                .bind(max_id)
                .bind(IdTuple(chunk))
                .fetch_all::<HeldVersion>()
                .await?;
            for h in found {
                held.entry(h.conversion_id).or_default().insert(
                    h.version,
                    HeldState {
                        status: h.status,
                        amount: h.amount,
                        payout: h.payout,
                    },
                );
            }
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
