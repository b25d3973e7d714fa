//! The worker, on every node: claims due jobs, renders each (after
//! looking up its click's sub-ids when it tells them), calls the partner,
//! records the attempt as a `postback_deliveries` row, and removes the job
//! or puts it back (see `schedule`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::clicks::ClickLookup;
use super::job::{Job, Message, Subs};
use super::mask::mask_url;
use super::now_ms;
use super::outbound::{CallResult, Outbound, Request, SignedBody};
use super::queue::Queue;
use super::render::{needs_subs, render, webhook_body};
use super::schedule::{lease_ms, next_lookup, next_step, Next};
use super::settings::Settings;
use crate::backoff::Backoff;
use crate::catalog::Catalog;
use crate::events::{Event, EventSink, PostbackDeliveryRow};
use crate::metrics::Metrics;
use crate::model::PostbackFormat;
use crate::template::{Template, POSTBACK_MACROS};

/// The worker: claims due jobs and calls partners, on every node.
pub struct Deliverer {
    ctx: Arc<Ctx>,
}

/// What every attempt needs.
struct Ctx {
    queue: Queue,
    outbound: Outbound,
    clicks: ClickLookup,
    settings: Settings,
    sink: Arc<EventSink>,
    metrics: Arc<Metrics>,
    waker: Arc<Notify>,
}

impl Deliverer {
    /// A worker calling through `client` (see [`client`](super::client))
    /// from the queue in the Redis of `catalog`, reading clicks' sub-ids
    /// through `clicks`, recording attempts into `sink`, woken by `waker`
    /// ([`Postbacks::waker`](super::Postbacks::waker)).
    pub fn new(
        settings: Settings,
        client: reqwest::Client,
        clicks: ClickLookup,
        catalog: &Catalog,
        sink: Arc<EventSink>,
        metrics: Arc<Metrics>,
        waker: Arc<Notify>,
    ) -> Deliverer {
        Deliverer {
            ctx: Arc::new(Ctx {
                queue: Queue::of(catalog),
                outbound: Outbound::new(client, settings.allow_private_addresses),
                clicks,
                settings,
                sink,
                metrics,
                waker,
            }),
        }
    }

    /// Delivers until `stop`; then lets the calls in flight finish (each
    /// is bounded by the timeout) so their attempts are recorded.
    pub async fn run(self, stop: CancellationToken) {
        let ctx = self.ctx;
        let slots = Arc::new(Semaphore::new(ctx.settings.concurrency));
        let mut calls = JoinSet::new();
        // Redis being away delays postbacks; jobs wait in Redis meanwhile.
        let mut outage = Backoff::new(ctx.settings.poll_interval, Duration::from_secs(30));
        // The depth gauge is read when idle, and at least this often when
        // busy.
        let mut last_peek = Instant::now();
        loop {
            while calls.try_join_next().is_some() {}
            if last_peek.elapsed() >= ctx.settings.poll_interval {
                last_peek = Instant::now();
                if let Ok((depth, _)) = ctx.queue.peek().await {
                    ctx.metrics.postback_queue_depth.set(depth as i64);
                }
            }
            let first = tokio::select! {
                p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
                _ = stop.cancelled() => break,
            };
            let free = 1 + slots.available_permits();
            let claimed = ctx
                .queue
                .claim(now_ms(), free, lease_ms(&ctx.settings))
                .await;
            let members = match claimed {
                Ok(m) => m,
                Err(e) => {
                    warn!(error = %e, retry_ms = outage.current().as_millis() as u64, "cannot claim postbacks; retrying");
                    drop(first);
                    if outage.wait(&stop).await.is_err() {
                        break;
                    }
                    continue;
                }
            };
            outage.reset();
            if members.is_empty() {
                drop(first);
                last_peek = Instant::now();
                let wait = match ctx.queue.peek().await {
                    Ok((depth, earliest)) => {
                        ctx.metrics.postback_queue_depth.set(depth as i64);
                        earliest.map_or(ctx.settings.poll_interval, |at| {
                            Duration::from_millis(at.saturating_sub(now_ms()))
                                .min(ctx.settings.poll_interval)
                        })
                    }
                    Err(_) => ctx.settings.poll_interval,
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = ctx.waker.notified() => {}
                    _ = stop.cancelled() => break,
                }
                continue;
            }
            let mut first = Some(first);
            for member in members {
                let permit = match first.take() {
                    Some(p) => p,
                    // Only this loop takes slots, so the ones counted free
                    // above are still free.
                    None => slots
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("the semaphore is never closed"),
                };
                let ctx = ctx.clone();
                calls.spawn(async move {
                    ctx.attempt(member).await;
                    drop(permit);
                });
            }
        }
        let in_flight = calls.len();
        if in_flight > 0 {
            info!(calls = in_flight, "waiting for partner postbacks in flight");
        }
        while calls.join_next().await.is_some() {}
    }
}

/// What one claim of a job does.
enum Step {
    /// Calls the partner.
    Call(Request),
    /// Waits for the click's row: the job goes back, for this Unix
    /// millisecond.
    Wait(u64),
    /// The stored template does not parse any more (a macro was dropped
    /// since): recorded and removed like a refused address.
    Broken {
        /// The template, as the recorded URL.
        url: String,
        /// Why it does not parse.
        problem: String,
    },
}

impl Ctx {
    /// One attempt of the job `member`: render (after looking for the
    /// click when needed), call, record, then finish, reschedule or give
    /// up.
    async fn attempt(&self, member: String) {
        let mut job: Job = match serde_json::from_str(&member) {
            Ok(j) => j,
            Err(e) => {
                error!(error = %e, "undecodable postback job dropped from the queue");
                let _ = self.queue.complete(&member).await;
                return;
            }
        };
        let step = self.prepare(&mut job).await;
        // The click lookup is not part of the call's time.
        let started_ms = now_ms();
        let clock = Instant::now();
        let (url, result) = match step {
            Step::Call(request) => {
                let result = self.outbound.call(&request).await;
                (request.url, result)
            }
            Step::Wait(at) => {
                self.wait_for_click(&member, &job, at).await;
                return;
            }
            Step::Broken { url, problem } => (url, CallResult::Refused(problem)),
        };
        let duration_ms = clock.elapsed().as_millis().min(u32::MAX as u128) as u32;
        let (http_status, error) = match &result {
            CallResult::Answered(s) if (200..300).contains(s) => (*s, String::new()),
            CallResult::Answered(s) => (*s, format!("answered {s}")),
            CallResult::NoAnswer(e) => (0, e.clone()),
            CallResult::Refused(e) => (0, e.clone()),
        };
        let masked = mask_url(&url);
        let recorded = self.sink.record(&Event::Delivery(PostbackDeliveryRow {
            conversion_id: &job.conversion_id,
            partner_id: job.partner_id,
            attempt: job.attempt,
            ts: (started_ms / 1000) as u32,
            url: &masked,
            http_status,
            error: &error,
            duration_ms,
        }));
        if !recorded {
            warn!(conversion = %job.conversion_id, attempt = job.attempt, "postback attempt not recorded: the spool cannot take it");
        }
        let next = next_step(&job, &result, now_ms(), &self.settings);
        let (outcome, kept) = match next {
            Next::Done => ("delivered", self.queue.complete(&member).await),
            Next::Refuse => {
                warn!(partner = job.partner_id, conversion = %job.conversion_id, url = %masked, error = %error, "partner postback refused");
                ("refused_address", self.queue.complete(&member).await)
            }
            Next::GiveUp => {
                warn!(partner = job.partner_id, conversion = %job.conversion_id, url = %masked, attempts = job.attempt, error = %error, "partner postback given up");
                ("gave_up", self.queue.complete(&member).await)
            }
            Next::Retry(at) => {
                let again = Job {
                    attempt: job.attempt + 1,
                    ..job.clone()
                };
                let kept = self.queue.reschedule(&member, &again, at).await;
                ("failed_retrying", kept)
            }
        };
        self.metrics
            .postback_deliveries
            .with_label_values(&[outcome])
            .inc();
        if let Err(e) = kept {
            // The lease runs out and the job is tried again: at worst a
            // repeated call, never a lost one.
            warn!(conversion = %job.conversion_id, error = %e, "postback queue not updated after an attempt");
        }
        // The job may be due soon again: let the worker look.
        self.waker.notify_one();
    }

    /// `job`'s next call, rendered after looking up the click's sub-ids
    /// when the postback tells them and they are not known yet (which may
    /// put the job back to wait instead). A job of an earlier version is
    /// sent as it was rendered.
    async fn prepare(&self, job: &mut Job) -> Step {
        let first_ms = job.first_ms;
        let Some(message) = job.message.as_mut() else {
            return Step::Call(Request {
                url: job.url.clone(),
                json: None,
            });
        };
        let template = match Template::parse(&message.template, POSTBACK_MACROS) {
            Ok(t) => t,
            Err(e) => {
                return Step::Broken {
                    url: message.template.clone(),
                    problem: format!("postback_url no longer valid: {e}"),
                }
            }
        };
        let subs = match &message.subs {
            Some(subs) => subs.clone(),
            None => match self.click_subs(&template, message).await {
                Ok(subs) => subs,
                Err(why) => {
                    let lookups = message.lookups.saturating_add(1);
                    if let Some(at) = next_lookup(first_ms, lookups, now_ms(), &self.settings) {
                        message.lookups = lookups;
                        return Step::Wait(at);
                    }
                    let f = &message.facts;
                    warn!(partner = f.partner_id, conversion = %f.conversion_id, lookups, reason = %why, "partner postback sent without the click's sub-ids");
                    self.metrics
                        .postback_deliveries
                        .with_label_values(&["sent_without_subs"])
                        .inc();
                    Subs::default()
                }
            },
        };
        let request = Request {
            url: render(&template, &message.facts, &subs),
            json: match message.format {
                PostbackFormat::Get => None,
                PostbackFormat::Json => Some(SignedBody {
                    body: webhook_body(&message.facts, &subs),
                    secret: message.secret.clone(),
                }),
            },
        };
        // Kept in the job, so a retried call does not look again.
        message.subs = Some(subs);
        Step::Call(request)
    }

    /// The sub-ids `message` tells from its click: empty when it tells
    /// none or there is no click; an error saying why when the click
    /// cannot be read (yet).
    async fn click_subs(&self, template: &Template, message: &Message) -> Result<Subs, String> {
        let facts = &message.facts;
        if !needs_subs(template, message.format) || facts.click_id.is_empty() {
            return Ok(Subs::default());
        }
        match self.clicks.subs(&facts.click_id, facts.partner_id).await {
            Ok(Some(subs)) => Ok(subs),
            Ok(None) => Err("the click is not in clickhouse".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Puts `job` (claimed as `member`) back for another look for its
    /// click at `at`.
    async fn wait_for_click(&self, member: &str, job: &Job, at: u64) {
        self.metrics
            .postback_deliveries
            .with_label_values(&["waiting_for_click"])
            .inc();
        if let Err(e) = self.queue.reschedule(member, job, at).await {
            // The lease runs out and the job is taken again: only later.
            warn!(conversion = %job.conversion_id, error = %e, "postback queue not updated after a click lookup");
        }
        self.waker.notify_one();
    }
}
