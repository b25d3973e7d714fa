//! The queueing side, used by everything that changes a conversion's
//! status (intake, the admin API): an [`Announcement`] is checked against
//! the partner and queued with its facts, not rendered for good (the
//! click's sub-ids are not known yet; the worker renders).

use std::sync::Arc;

use tokio::sync::Notify;

use super::job::{Announcement, Facts, Job, Message, Subs};
use super::now_ms;
use super::queue::{Queue, QueueError};
use super::render::render;
use crate::attribution::Status;
use crate::catalog::{CatalogSlot, RouteCache};
use crate::metrics::Metrics;
use crate::model::PostbackFormat;
use crate::template::{Template, POSTBACK_MACROS};

/// What [`Postbacks::enqueue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// A job is in the queue.
    Queued,
    /// Nothing to send: the partner is unknown or has no postback URL, or
    /// the status is not one partners see.
    Nothing,
}

/// The queueing side, shared by everything that changes a conversion's
/// status (intake, the admin API).
pub struct Postbacks {
    cache: Arc<RouteCache>,
    catalog: CatalogSlot,
    /// Wakes this node's worker at once for a job it queued (other nodes'
    /// jobs are found by polling).
    waker: Arc<Notify>,
    metrics: Arc<Metrics>,
}

impl Postbacks {
    /// Queues into the Redis of `catalog` (once connected) for partners of
    /// `cache`.
    pub fn new(cache: Arc<RouteCache>, catalog: CatalogSlot, metrics: Arc<Metrics>) -> Self {
        Postbacks {
            cache,
            catalog,
            waker: Arc::new(Notify::new()),
            metrics,
        }
    }

    /// The notification [`Deliverer::new`](super::Deliverer::new) waits on.
    pub fn waker(&self) -> Arc<Notify> {
        self.waker.clone()
    }

    /// Queues the postback announcing `a`, if its partner has a postback
    /// URL and the status is one partners see. Call it once the status is
    /// recorded; a failure is counted (`not_queued`) and left to the caller
    /// to log, since the status itself stands.
    pub async fn enqueue(&self, a: &Announcement<'_>) -> Result<Enqueued, QueueError> {
        let result = self.try_enqueue(a).await;
        if result.is_err() {
            self.metrics
                .postback_deliveries
                .with_label_values(&["not_queued"])
                .inc();
        }
        result
    }

    async fn try_enqueue(&self, a: &Announcement<'_>) -> Result<Enqueued, QueueError> {
        if !matches!(
            a.status,
            Status::Approved | Status::Pending | Status::Reversed
        ) {
            return Ok(Enqueued::Nothing);
        }
        let Some(partner) = self.cache.partner(a.partner_id) else {
            return Ok(Enqueued::Nothing);
        };
        let Some(template) = partner.postback_url.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(Enqueued::Nothing);
        };
        let parsed =
            Template::parse(template, POSTBACK_MACROS).map_err(|e| QueueError::BadUrl {
                partner_id: a.partner_id,
                problem: e.to_string(),
            })?;
        let format = partner.postback_format;
        if format == PostbackFormat::Json && partner.webhook_secret.is_empty() {
            return Err(QueueError::NoSecret(a.partner_id));
        }
        let catalog = self
            .catalog
            .get()
            .ok_or_else(|| QueueError::Unavailable("the catalog is still loading".into()))?;
        let now = now_ms();
        let facts = Facts::of(a, now);
        let known = a.subs.iter().any(|s| !s.is_empty());
        let subs: Subs = a.subs.map(str::to_string);
        let job = Job {
            id: rand::random(),
            conversion_id: a.conversion_id.to_string(),
            partner_id: a.partner_id,
            // What a node of an earlier version sends (it does not know
            // `message`): the URL with the sub-ids known now. It cannot
            // sign, so a JSON postback has none, and such a node drops it.
            url: match format {
                PostbackFormat::Get => render(&parsed, &facts, &subs),
                PostbackFormat::Json => String::new(),
            },
            attempt: 1,
            first_ms: now,
            message: Some(Message {
                template: template.to_string(),
                format,
                secret: match format {
                    PostbackFormat::Get => String::new(),
                    PostbackFormat::Json => partner.webhook_secret.clone(),
                },
                facts,
                subs: known.then_some(subs),
                lookups: 0,
            }),
        };
        Queue::of(catalog).push(&job, now).await?;
        self.waker.notify_one();
        Ok(Enqueued::Queued)
    }
}
