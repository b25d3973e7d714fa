//! Following the numbered change channel: how each node keeps its route
//! cache current with the writes of every other node.
//!
//! Every write numbers its change with a counter in Redis and publishes it
//! on `{prefix}changes` (the format and the publishing:
//! [`super::message`]). A follower applies messages in order; a number
//! skipped, or a counter that stays ahead of what was applied for a whole
//! `resync_interval_secs`, means a message was lost and triggers a full
//! reload. A quiet catalog is never reloaded.

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::message::parse_message;
use super::store::{Catalog, StoreError};
use crate::backoff::Backoff;

impl Catalog {
    /// Follows the change channel until `stop`: applies every change,
    /// reloads after each (re)subscription and when a message was missed.
    pub async fn sync(self: std::sync::Arc<Self>, stop: CancellationToken) {
        // Constant: Redis is expected back at a steady pace, and the cache
        // serves every redirect meanwhile.
        let mut backoff = Backoff::constant(self.retry);
        loop {
            match self.follow(&stop).await {
                Ok(()) => return,
                Err(e) => {
                    self.metrics
                        .catalog_events
                        .with_label_values(&["redis_error"])
                        .inc();
                    warn!(error = %e, retry_secs = backoff.current().as_secs(), "redis change channel lost; serving from the cache and reconnecting");
                }
            }
            if backoff.wait(&stop).await.is_err() {
                return;
            }
        }
    }

    /// One subscription's life; `Ok` only when stopped.
    ///
    /// Every change message carries the change counter's value. A message
    /// at or below the last applied number is already reflected (it
    /// predates a reload) and is skipped; one that skips a number means a
    /// message was missed, and so does a counter that stays ahead of the
    /// applied number for a whole check interval: either triggers a full
    /// reload. So a quiet catalog is never reloaded for nothing.
    async fn follow(&self, stop: &CancellationToken) -> Result<(), StoreError> {
        let mut pubsub = tokio::time::timeout(self.timeout, self.client.get_async_pubsub())
            .await
            .map_err(|_| StoreError::Unavailable("timed out subscribing".into()))??;
        pubsub.subscribe(&self.keys.channel).await?;
        // Subscribed first, then reloaded: nothing changed in between is lost.
        let mut applied = self.reload_versioned().await?;
        let mut messages = pubsub.on_message();
        let mut check = tokio::time::interval(self.resync);
        check.tick().await;
        // The counter seen at the previous check.
        let mut seen_before: Option<u64> = None;
        loop {
            tokio::select! {
                msg = messages.next() => {
                    let Some(msg) = msg else {
                        return Err(StoreError::Unavailable("subscription closed".into()));
                    };
                    match parse_message(msg.get_payload_bytes()) {
                        Some((v, _)) if v <= applied => {}
                        Some((v, change)) => {
                            if v > applied + 1 {
                                warn!(applied, received = v, "change messages were missed; reloading the catalog");
                                applied = self.reload_versioned().await?;
                            } else {
                                self.cache.apply(change);
                                applied = v;
                                self.metrics.catalog_events.with_label_values(&["change"]).inc();
                            }
                        }
                        None => warn!("undecodable change message ignored"),
                    }
                }
                _ = check.tick() => {
                    let now = match self.version().await {
                        Ok(v) => v,
                        Err(e) => {
                            warn!(error = %e, "catalog version check failed");
                            continue;
                        }
                    };
                    if seen_before.is_some_and(|prev| prev > applied) {
                        warn!(applied, counter = now, "a change message never arrived; reloading the catalog");
                        applied = self.reload_versioned().await?;
                    }
                    seen_before = Some(now);
                }
                _ = stop.cancelled() => return Ok(()),
            }
        }
    }

    /// Reloads and returns the change counter read before the reload: every
    /// change up to it is in the cache (later ones may be too).
    async fn reload_versioned(&self) -> Result<u64, StoreError> {
        let v = self.version().await?;
        self.reload().await?;
        Ok(v)
    }
}
