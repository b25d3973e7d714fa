//! Partner postbacks: a partner with a `postback_url` is called for every
//! conversion status it can see (`approved`, `pending`, `reversed`).
//!
//! [`Postbacks::enqueue`] checks the partner's URL template and puts a job
//! holding the template and the conversion's facts into a queue in Redis
//! shared by every node: a sorted set of job JSON scored by the next
//! attempt's Unix millisecond. [`Deliverer::run`] claims due jobs with one
//! Lua script that also pushes their score past a lease (so no other node
//! takes the same attempt, and a node killed mid-call leaves the job to be
//! taken again once the lease ends), renders the URL, calls it, records the
//! attempt as a `postback_deliveries` row, and removes the job or puts it
//! back for a later attempt with capped exponential backoff, until the
//! configured age, when it gives up.
//!
//! The URL is rendered when it is sent, not when it is queued, because
//! `{sub1}`…`{sub5}` are the original click's sub-ids, which live only in
//! the click's ClickHouse row, and the conversion's answer must not wait
//! for ClickHouse. The worker reads them ([`ClickLookup`]) before the
//! first call of a job whose URL names one; a click not shipped yet, or
//! ClickHouse being down, puts the job back for a short while (not a
//! failed call, but bounded by the same age), after which it is sent with
//! empty sub-ids and a warning.
//!
//! A partner whose `postback_format` is `json` gets a `POST` of the
//! conversion's facts as JSON ([`webhook_body`]) to its rendered URL
//! instead, with `X-Trackedge-Signature: t=<unix seconds>,v1=<hex
//! HMAC-SHA256 over "<t>.<body>">` keyed by its `webhook_secret`: the same
//! scheme merchants sign their postbacks with, computed at each attempt.
//!
//! Outbound calls follow no redirects, have a timeout, and by default
//! refuse every address that is not public ([`is_forbidden`]). The check is
//! made on the address connected to: IP literals before the call, names in
//! the client's resolver, which hands the connector only addresses it has
//! checked, so a name cannot resolve to a public address for the check and
//! a private one for the call.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::attribution::Status;
use crate::backoff::Backoff;
use crate::catalog::CatalogSlot;
use crate::catalog::{Catalog, RouteCache};
use crate::config::PostbacksConfig;
use crate::events::{Event, EventSink, PostbackDeliveryRow};
use crate::metrics::Metrics;
use crate::model::PostbackFormat;
use crate::template::{Template, POSTBACK_MACROS};

/// What a masked secret reads as in a recorded URL.
pub const MASKED: &str = "***";

/// The header of a JSON postback's signature.
pub const SIGNATURE_HEADER: &str = "X-Trackedge-Signature";

/// One conversion status a partner is told about.
#[derive(Debug, Clone)]
pub struct Announcement<'a> {
    /// The conversion.
    pub conversion_id: &'a str,
    /// The partner credited (whose `postback_url` is called).
    pub partner_id: u64,
    /// The offer.
    pub offer_id: u64,
    /// The credited click, or empty.
    pub click_id: &'a str,
    /// The merchant's order id, or empty.
    pub order_id: &'a str,
    /// The event name.
    pub event: &'a str,
    /// What the partner earns.
    pub payout: Decimal,
    /// The payout's currency.
    pub currency: &'a str,
    /// The status announced: only `approved`, `pending` and `reversed` are
    /// sent.
    pub status: Status,
    /// Why the conversion has that status (a reversal's text for
    /// `reversed`); sent in JSON postbacks.
    pub reason: &'a str,
    /// The original click's `sub1`…`sub5` when the caller has them; all
    /// empty: unknown, and looked up by the delivery worker when the
    /// partner's URL names one.
    pub subs: [&'a str; 5],
}

/// What [`Postbacks::enqueue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// A job is in the queue.
    Queued,
    /// Nothing to send: the partner is unknown or has no postback URL, or
    /// the status is not one partners see.
    Nothing,
}

/// Why a postback could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis did not answer in time, refused, or is not connected yet.
    #[error("postback queue unavailable: {0}")]
    Unavailable(String),
    /// The partner's stored `postback_url` does not parse any more.
    #[error("postback_url of partner {partner_id}: {problem}")]
    BadUrl {
        /// The partner.
        partner_id: u64,
        /// What is wrong with the URL.
        problem: String,
    },
    /// The partner wants signed JSON postbacks but has no secret to sign
    /// them with (the store gives every partner one; only a record edited
    /// past it lacks it).
    #[error("webhook_secret of partner {0} is empty: a json postback cannot be signed")]
    NoSecret(u64),
}

impl From<redis::RedisError> for QueueError {
    fn from(e: redis::RedisError) -> Self {
        QueueError::Unavailable(e.to_string())
    }
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

    /// The notification [`Deliverer::new`] waits on.
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

/// The original click's `sub1`…`sub5`.
type Subs = [String; 5];

/// Everything a partner can be told about one conversion status: the
/// values of its postback URL's macros, but the click's sub-ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Facts {
    conversion_id: String,
    partner_id: u64,
    offer_id: u64,
    /// Empty when the conversion has no click.
    click_id: String,
    order_id: String,
    event: String,
    /// A decimal string in the job's JSON.
    payout: Decimal,
    currency: String,
    status: String,
    #[serde(default)]
    reason: String,
    /// Unix milliseconds of the status change (its queueing).
    at_ms: u64,
}

impl Facts {
    fn of(a: &Announcement<'_>, at_ms: u64) -> Facts {
        Facts {
            conversion_id: a.conversion_id.to_string(),
            partner_id: a.partner_id,
            offer_id: a.offer_id,
            click_id: a.click_id.to_string(),
            order_id: a.order_id.to_string(),
            event: a.event.to_string(),
            payout: a.payout,
            currency: a.currency.to_string(),
            status: a.status.as_str().to_string(),
            reason: a.reason.to_string(),
            at_ms,
        }
    }
}

/// Indexes of `{sub1}`…`{sub5}` in [`POSTBACK_MACROS`].
const SUB_MACROS: std::ops::Range<usize> = 9..14;
const _: () = assert!(POSTBACK_MACROS.len() == SUB_MACROS.end);

/// True when a postback of `format` to `template` tells the click's
/// sub-ids (a JSON body always does), so the click must be looked up
/// first.
fn needs_subs(template: &Template, format: PostbackFormat) -> bool {
    format == PostbackFormat::Json || SUB_MACROS.into_iter().any(|i| template.uses(i))
}

/// `template` with the values of `facts` and `subs`, each URL-encoded.
fn render(template: &Template, facts: &Facts, subs: &Subs) -> String {
    let payout = facts.payout.to_string();
    let offer = facts.offer_id.to_string();
    let partner = facts.partner_id.to_string();
    // In the order of POSTBACK_MACROS.
    let values = [
        facts.click_id.as_str(),
        &facts.conversion_id,
        &facts.order_id,
        &payout,
        &facts.currency,
        &facts.status,
        &facts.event,
        &offer,
        &partner,
        &subs[0],
        &subs[1],
        &subs[2],
        &subs[3],
        &subs[4],
    ];
    let mut out = String::with_capacity(256);
    template.render_into(&values, &mut out);
    out
}

/// The body of a JSON postback.
#[derive(Serialize)]
struct WebhookBody<'a> {
    conversion_id: &'a str,
    status: &'a str,
    reason: &'a str,
    event: &'a str,
    order_id: &'a str,
    /// A decimal string, never a float.
    payout: String,
    currency: &'a str,
    offer_id: u64,
    partner_id: u64,
    click_id: &'a str,
    sub1: &'a str,
    sub2: &'a str,
    sub3: &'a str,
    sub4: &'a str,
    sub5: &'a str,
    /// RFC 3339 time of the status change.
    timestamp: String,
}

/// The JSON body telling `facts` and the click's `subs`: every macro's
/// value (absent ones empty), the reason, and the status change's time.
fn webhook_body(facts: &Facts, subs: &Subs) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(facts.at_ms);
    let body = WebhookBody {
        conversion_id: &facts.conversion_id,
        status: &facts.status,
        reason: &facts.reason,
        event: &facts.event,
        order_id: &facts.order_id,
        payout: facts.payout.to_string(),
        currency: &facts.currency,
        offer_id: facts.offer_id,
        partner_id: facts.partner_id,
        click_id: &facts.click_id,
        sub1: &subs[0],
        sub2: &subs[1],
        sub3: &subs[2],
        sub4: &subs[3],
        sub5: &subs[4],
        timestamp: humantime::format_rfc3339_seconds(at).to_string(),
    };
    serde_json::to_string(&body).expect("strings and numbers serialize")
}

/// One queued postback: its JSON is the sorted set's member, so every
/// attempt is a new member (the attempt number is in it).
///
/// Jobs queued by earlier versions hold only the fields up to
/// `first_ms`, with `url` rendered; they are sent as they are. Jobs queued
/// now hold `message` too, and `url` only for a node of an earlier version
/// still running beside this one (which ignores `message`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Job {
    /// Keeps two announcements of the same conversion apart.
    id: u64,
    conversion_id: String,
    partner_id: u64,
    /// Rendered, secrets included (masked only when recorded).
    #[serde(default)]
    url: String,
    /// The number of the attempt this job waits for, from 1.
    attempt: u32,
    /// Unix milliseconds of queueing: the age limit counts from here.
    first_ms: u64,
    /// What to render and send; absent in jobs of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<Message>,
}

/// The unrendered postback of a [`Job`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Message {
    /// The partner's `postback_url` when the status changed.
    template: String,
    /// GET with macros, or signed JSON POST.
    #[serde(default)]
    format: PostbackFormat,
    /// The partner's `webhook_secret` when the status changed (JSON
    /// only): the job is signed as the partner expected when it was
    /// queued.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    secret: String,
    facts: Facts,
    /// The click's sub-ids once known (looked up, given by the caller, or
    /// given up on); `None`: not looked up yet.
    #[serde(default)]
    subs: Option<Subs>,
    /// Looks for the click so far: its waits back off.
    #[serde(default)]
    lookups: u32,
}

/// Claims up to ARGV[2] members due by ARGV[1] and moves their score to
/// ARGV[3] (the lease's end) in one step, so no other node claims them.
const CLAIM_SCRIPT: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], 'XX', ARGV[3], m) end
return due
";

/// Replaces member ARGV[1] by ARGV[2] at score ARGV[3], only if ARGV[1] is
/// still queued (a job another node finished after our lease ran out is
/// not brought back).
const RESCHEDULE_SCRIPT: &str = r"
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
  return 1
end
return 0
";

/// The shared queue in Redis.
struct Queue {
    conn: ConnectionManager,
    key: String,
    /// Bounds every call, so an outage delays postbacks but holds nothing.
    timeout: Duration,
}

impl Queue {
    fn of(catalog: &Catalog) -> Queue {
        let (conn, prefix, timeout) = catalog.redis();
        Queue {
            conn,
            key: format!("{prefix}postbacks"),
            timeout,
        }
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, QueueError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, cmd.query_async(&mut conn)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(QueueError::Unavailable("redis timed out".into())),
        }
    }

    async fn push(&self, job: &Job, at_ms: u64) -> Result<(), QueueError> {
        let member = serde_json::to_string(job).expect("a job serializes");
        let _: i64 = self
            .run(redis::cmd("ZADD").arg(&self.key).arg(at_ms).arg(member))
            .await?;
        Ok(())
    }

    async fn claim(&self, now_ms: u64, n: usize, lease_ms: u64) -> Result<Vec<String>, QueueError> {
        self.run(
            redis::cmd("EVAL")
                .arg(CLAIM_SCRIPT)
                .arg(1)
                .arg(&self.key)
                .arg(now_ms)
                .arg(n)
                .arg(now_ms + lease_ms),
        )
        .await
    }

    async fn complete(&self, member: &str) -> Result<(), QueueError> {
        let _: i64 = self
            .run(redis::cmd("ZREM").arg(&self.key).arg(member))
            .await?;
        Ok(())
    }

    async fn reschedule(&self, member: &str, job: &Job, at_ms: u64) -> Result<(), QueueError> {
        let next = serde_json::to_string(job).expect("a job serializes");
        let _: i64 = self
            .run(
                redis::cmd("EVAL")
                    .arg(RESCHEDULE_SCRIPT)
                    .arg(1)
                    .arg(&self.key)
                    .arg(member)
                    .arg(next)
                    .arg(at_ms),
            )
            .await?;
        Ok(())
    }

    /// How many jobs wait, and the score of the earliest.
    async fn peek(&self) -> Result<(u64, Option<u64>), QueueError> {
        let depth: u64 = self.run(redis::cmd("ZCARD").arg(&self.key)).await?;
        let first: Vec<(String, f64)> = self
            .run(
                redis::cmd("ZRANGE")
                    .arg(&self.key)
                    .arg(0)
                    .arg(0)
                    .arg("WITHSCORES"),
            )
            .await?;
        Ok((depth, first.first().map(|(_, s)| *s as u64)))
    }
}

/// The delivery settings, from `[postbacks]`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// See [`PostbacksConfig::allow_private_addresses`].
    pub allow_private_addresses: bool,
    /// One call's limit.
    pub timeout: Duration,
    /// First retry delay.
    pub retry_initial: Duration,
    /// Cap of the retry delay.
    pub retry_max: Duration,
    /// Age past which a failing postback is given up.
    pub give_up_after: Duration,
    /// Calls in flight at once.
    pub concurrency: usize,
    /// Looks at the queue at least this often.
    pub poll_interval: Duration,
    /// First wait for a click not in ClickHouse yet, doubled up to
    /// `retry_max`.
    pub click_lookup_retry: Duration,
}

impl From<&PostbacksConfig> for Settings {
    fn from(c: &PostbacksConfig) -> Self {
        Settings {
            allow_private_addresses: c.allow_private_addresses,
            timeout: Duration::from_millis(c.timeout_ms),
            retry_initial: Duration::from_millis(c.retry_initial_ms),
            retry_max: Duration::from_millis(c.retry_max_ms),
            give_up_after: Duration::from_secs(c.give_up_after_secs),
            concurrency: c.concurrency,
            poll_interval: Duration::from_millis(c.poll_interval_ms),
            click_lookup_retry: Duration::from_millis(c.click_lookup_retry_ms),
        }
    }
}

/// The worker: claims due jobs and calls partners, on every node.
pub struct Deliverer {
    ctx: Arc<Ctx>,
}

/// What every attempt needs.
struct Ctx {
    queue: Queue,
    client: reqwest::Client,
    clicks: ClickLookup,
    settings: Settings,
    sink: Arc<EventSink>,
    metrics: Arc<Metrics>,
    waker: Arc<Notify>,
}

/// Why the HTTP client could not be built (TLS set-up).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the postback http client: {0}")]
pub struct ClientError(#[from] reqwest::Error);

/// The HTTP client of postbacks: no redirects, no proxy, the timeout, and
/// the address check in its resolver. Built at start, so a TLS set-up
/// problem stops `serve` before anything is served.
pub fn client(settings: &Settings) -> Result<reqwest::Client, ClientError> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would connect on our behalf, past the address check.
        .no_proxy()
        .timeout(settings.timeout)
        .user_agent(concat!("trackedge-postback/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(CheckedResolver {
            allow_private: settings.allow_private_addresses,
        }))
        .build()?)
}

impl Deliverer {
    /// A worker calling through `client` (see [`client`]) from the queue
    /// in the Redis of `catalog`, reading clicks' sub-ids through
    /// `clicks`, recording attempts into `sink`, woken by `waker`
    /// ([`Postbacks::waker`]).
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
                client,
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

/// How long a claimed job is hidden from other nodes: longer than one call
/// can take, with room for the bookkeeping after it.
fn lease_ms(s: &Settings) -> u64 {
    s.timeout.as_millis() as u64 + 30_000
}

/// How one call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CallResult {
    /// An HTTP answer with this status.
    Answered(u16),
    /// No answer (connection, timeout, TLS): worth another try.
    NoAnswer(String),
    /// The address is not public and private ones are not allowed.
    Refused(String),
}

/// What happens to a job after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Delivered: removed.
    Done,
    /// Try again at this Unix millisecond.
    Retry(u64),
    /// Too old: removed, logged and counted.
    GiveUp,
    /// Refused address: removed without retry (the URL will not change
    /// by waiting).
    Refuse,
}

/// The rule after an attempt: 2xx is delivered, a refused address is
/// final, anything else retries with backoff until the age limit.
fn next_step(job: &Job, result: &CallResult, now_ms: u64, s: &Settings) -> Next {
    match result {
        CallResult::Answered(status) if (200..300).contains(status) => Next::Done,
        CallResult::Refused(_) => Next::Refuse,
        _ => {
            let at = now_ms + retry_delay(s, job.attempt).as_millis() as u64;
            if at.saturating_sub(job.first_ms) > s.give_up_after.as_millis() as u64 {
                Next::GiveUp
            } else {
                Next::Retry(at)
            }
        }
    }
}

/// The wait after failed attempt `attempt` (1-based): the Backoff
/// sequence, doubling from the initial delay up to the cap.
fn retry_delay(s: &Settings, attempt: u32) -> Duration {
    nth_delay(s.retry_initial, s.retry_max, attempt)
}

/// The `n`th wait (1-based) of a [`Backoff`] from `initial` up to `max`.
fn nth_delay(initial: Duration, max: Duration, n: u32) -> Duration {
    let mut b = Backoff::new(initial, max);
    // Past 64 doublings every delay is the cap.
    for _ in 1..n.min(64) {
        b.step();
    }
    b.step()
}

/// When a job queued at `first_ms` whose click is not found yet (after
/// `lookups` looks, counting this one) looks again: `None` once that would
/// fall past the age limit, when it is sent without the sub-ids.
fn next_lookup(first_ms: u64, lookups: u32, now_ms: u64, s: &Settings) -> Option<u64> {
    let at = now_ms + nth_delay(s.click_lookup_retry, s.retry_max, lookups).as_millis() as u64;
    (at.saturating_sub(first_ms) <= s.give_up_after.as_millis() as u64).then_some(at)
}

/// One call to a partner.
struct Request {
    /// Rendered, secrets included.
    url: String,
    /// `None`: a GET; else a signed JSON POST.
    json: Option<SignedBody>,
}

/// A JSON postback's body and the key its signature is made with (at the
/// call, so its time is the call's).
struct SignedBody {
    body: String,
    secret: String,
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
        let started_ms = now_ms();
        let clock = Instant::now();
        let (url, result) = match self.prepare(&mut job).await {
            Step::Call(request) => {
                let result = self.call(&request).await;
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

    /// The URL of `job`'s next call, after looking up the click's
    /// sub-ids when the URL names one and they are not known yet (which
    /// may put the job back to wait instead). A job of an earlier version
    /// is sent as it was rendered.
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

    async fn call(&self, request: &Request) -> CallResult {
        let url = match url::Url::parse(&request.url) {
            Ok(u) => u,
            Err(e) => return CallResult::Refused(format!("invalid url: {e}")),
        };
        if !self.settings.allow_private_addresses {
            let literal = match url.host() {
                Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
                _ => None,
            };
            if let Some(ip) = literal.filter(|ip| is_forbidden(*ip)) {
                return CallResult::Refused(refusal(ip));
            }
        }
        let call = match &request.json {
            None => self.client.get(url),
            Some(signed) => {
                let t = (now_ms() / 1000) as i64;
                let signature =
                    crate::conversions::auth::sign(&signed.secret, t, signed.body.as_bytes());
                self.client
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(SIGNATURE_HEADER, signature)
                    .body(signed.body.clone())
            }
        };
        match call.send().await {
            Ok(resp) => CallResult::Answered(resp.status().as_u16()),
            Err(e) => {
                let mut source: Option<&dyn std::error::Error> = Some(&e);
                while let Some(s) = source {
                    if let Some(r) = s.downcast_ref::<Refused>() {
                        return CallResult::Refused(r.to_string());
                    }
                    source = s.source();
                }
                CallResult::NoAnswer(describe(&e))
            }
        }
    }
}

/// The query of [`ClickLookup`].
pub const CLICK_SUBS_SQL: &str = include_str!("../sql/click_subs.sql");

/// Reads a click's sub-ids from ClickHouse's `clicks` table.
pub struct ClickLookup {
    client: clickhouse::Client,
    /// [`CLICK_SUBS_SQL`] for the configured database.
    sql: String,
    /// Bounds every query, so a hung ClickHouse delays a postback but does
    /// not hold a delivery slot.
    timeout: Duration,
}

/// Why a click could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// ClickHouse answered with an error, or not at all.
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    /// ClickHouse did not answer in time.
    #[error("clickhouse timed out")]
    TimedOut,
}

/// One answer row of [`CLICK_SUBS_SQL`].
#[derive(Debug, clickhouse::Row, Deserialize)]
struct ClickSubsRow {
    partner_id: u64,
    sub1: String,
    sub2: String,
    sub3: String,
    sub4: String,
    sub5: String,
}

impl ClickLookup {
    /// Reads from `database` through `client`, each query bounded by
    /// `timeout`.
    pub fn new(client: clickhouse::Client, database: &str, timeout: Duration) -> ClickLookup {
        let sql = CLICK_SUBS_SQL
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("{database}", database);
        ClickLookup {
            client,
            sql,
            timeout,
        }
    }

    /// The sub-ids of click `click_id` as `partner_id` may see them:
    /// `None` while the click is not in ClickHouse; empty when `click_id`
    /// is not one of ours or its click is another partner's (a deal's
    /// partner is credited over it), whose sub-ids are not this partner's
    /// to see.
    async fn subs(&self, click_id: &str, partner_id: u64) -> Result<Option<Subs>, LookupError> {
        let Some(ms) = crate::click_id::issued_ms(click_id) else {
            return Ok(Some(Subs::default()));
        };
        let second = (ms / 1000).min(u64::from(u32::MAX)) as u32;
        let query = self
            .client
            .query(&self.sql)
            // One second either way costs nothing and keeps the row found
            // should the row's time and the id's ever be taken apart.
            .bind(second.saturating_sub(1))
            .bind(second.saturating_add(1))
            .bind(click_id)
            .fetch_optional::<ClickSubsRow>();
        let row = tokio::time::timeout(self.timeout, query)
            .await
            .map_err(|_| LookupError::TimedOut)??;
        Ok(row.map(|r| {
            if r.partner_id == partner_id {
                [r.sub1, r.sub2, r.sub3, r.sub4, r.sub5]
            } else {
                Subs::default()
            }
        }))
    }
}

/// A reqwest error without its URL (which may hold secrets), with causes.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut parts = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    match parts.last() {
        Some(cause) => cause.clone(),
        None => "no answer".into(),
    }
}

fn refusal(ip: IpAddr) -> String {
    format!("refused: {ip} is not a public address")
}

/// A name resolved to an address postbacks may not call.
#[derive(Debug, thiserror::Error)]
#[error("refused: {host} resolves to {ip}, not a public address")]
struct Refused {
    host: String,
    ip: IpAddr,
}

/// Resolves names for the postback client and refuses any name with a
/// non-public address among its answers; the connector then only sees
/// addresses checked here.
struct CheckedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow_private {
                if let Some(bad) = addrs.iter().find(|a| is_forbidden(a.ip())) {
                    return Err(Box::new(Refused { host, ip: bad.ip() })
                        as Box<dyn std::error::Error + Send + Sync>);
                }
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// True for an address a postback may not call unless private addresses
/// are allowed: loopback, private (RFC 1918, fc00::/7), shared (RFC 6598,
/// where some clouds keep metadata services), link-local, unspecified,
/// "this network", multicast, broadcast, and IPv6 forms that embed such an
/// IPv4 address (mapped, NAT64).
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let s = v6.segments();
            // 64:ff9b::/96, the NAT64 well-known prefix.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return forbidden_v4(Ipv4Addr::new(a, b, c, d));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
                || (s[0] & 0xffc0) == 0xfe80 // fe80::/10 link-local
                || (s[0] & 0xffc0) == 0xfec0 // fec0::/10 old site-local
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
}

/// Query keys whose values are masked in recorded URLs: exact names, and
/// any key containing one of [`SECRET_PARTS`].
const SECRET_KEYS: &[&str] = &["key", "sig", "auth", "apikey", "api_key", "access_key"];

/// Parts of a query key that mark it as secret.
const SECRET_PARTS: &[&str] = &["token", "secret", "password", "passwd", "signature"];

/// `url` with the values of secret-looking query parameters (`token`,
/// `key`, `secret`, `password`, `sig`, `signature`, ...) and any userinfo
/// password replaced by [`MASKED`]; the rest is kept byte for byte.
pub fn mask_url(url: &str) -> String {
    let (head, fragment) = match url.find('#') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let (base, query) = match head.find('?') {
        Some(i) => (&head[..i], Some(&head[i + 1..])),
        None => (head, None),
    };
    let mut out = mask_userinfo(base);
    if let Some(query) = query {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((k, v)) if !v.is_empty() && is_secret_key(k) => {
                    out.push_str(k);
                    out.push('=');
                    out.push_str(MASKED);
                }
                _ => out.push_str(pair),
            }
        }
    }
    out.push_str(fragment);
    out
}

fn is_secret_key(raw: &str) -> bool {
    let key = percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .to_ascii_lowercase();
    SECRET_KEYS.contains(&key.as_str()) || SECRET_PARTS.iter().any(|p| key.contains(p))
}

/// `scheme://user:password@host...` with the password masked.
fn mask_userinfo(base: &str) -> String {
    let Some(scheme_end) = base.find("://") else {
        return base.to_string();
    };
    let auth_start = scheme_end + 3;
    let auth_end = base[auth_start..]
        .find('/')
        .map_or(base.len(), |i| auth_start + i);
    let authority = &base[auth_start..auth_end];
    match authority.rfind('@') {
        Some(at) => match authority[..at].split_once(':') {
            Some((user, _)) => format!(
                "{}{user}:{MASKED}{}{}",
                &base[..auth_start],
                &authority[at..],
                &base[auth_end..]
            ),
            None => base.to_string(),
        },
        None => base.to_string(),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_forbidden(ip: &str, expected: bool) {
        let parsed: IpAddr = ip.parse().unwrap();
        assert_eq!(is_forbidden(parsed), expected, "{ip}");
    }

    #[test]
    fn only_public_addresses_are_allowed() {
        for (ip, forbidden) in [
            ("127.0.0.1", true),
            ("127.255.0.9", true),
            ("10.1.2.3", true),
            ("172.16.0.1", true),
            ("172.31.255.255", true),
            ("172.32.0.1", false),
            ("192.168.1.1", true),
            ("169.254.169.254", true),
            ("0.0.0.0", true),
            ("0.1.2.3", true),
            ("100.64.0.1", true),
            ("100.100.100.200", true),
            ("100.128.0.1", false),
            ("224.0.0.1", true),
            ("255.255.255.255", true),
            ("8.8.8.8", false),
            ("93.184.216.34", false),
            ("::1", true),
            ("::", true),
            ("fc00::1", true),
            ("fd12:3456::1", true),
            ("fe80::1", true),
            ("febf::1", true),
            ("fec0::1", true),
            ("ff02::1", true),
            ("::ffff:127.0.0.1", true),
            ("::ffff:10.0.0.1", true),
            ("::ffff:8.8.8.8", false),
            ("64:ff9b::a9fe:a9fe", true),
            ("64:ff9b::808:808", false),
            ("2001:4860:4860::8888", false),
            ("2606:4700::1111", false),
        ] {
            check_forbidden(ip, forbidden);
        }
    }

    fn check_mask(url: &str, expected: &str) {
        assert_eq!(mask_url(url), expected, "{url}");
    }

    #[test]
    fn secrets_are_masked_in_recorded_urls() {
        for (url, masked) in [
            (
                "https://p.example/pb?cid=1&token=abc",
                "https://p.example/pb?cid=1&token=***",
            ),
            (
                "https://p.example/pb?Key=k&sig=s&signature=x&api_token=t&client_secret=c&password=p",
                "https://p.example/pb?Key=***&sig=***&signature=***&api_token=***&client_secret=***&password=***",
            ),
            (
                "https://p.example/pb?monkey=1&keyword=2&st=approved",
                "https://p.example/pb?monkey=1&keyword=2&st=approved",
            ),
            ("https://p.example/pb?token=&x", "https://p.example/pb?token=&x"),
            (
                "https://p.example/pb?t%6Fken=abc#frag?token=z",
                "https://p.example/pb?t%6Fken=***#frag?token=z",
            ),
            (
                "https://user:pw@p.example/pb?a=1",
                "https://user:***@p.example/pb?a=1",
            ),
            ("https://user@p.example/", "https://user@p.example/"),
            ("https://p.example", "https://p.example"),
        ] {
            check_mask(url, masked);
        }
    }

    fn settings() -> Settings {
        Settings {
            allow_private_addresses: false,
            timeout: Duration::from_secs(10),
            retry_initial: Duration::from_secs(30),
            retry_max: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(86_400),
            concurrency: 4,
            poll_interval: Duration::from_secs(1),
            click_lookup_retry: Duration::from_secs(2),
        }
    }

    #[test]
    fn retries_back_off_up_to_the_cap() {
        let s = settings();
        let got: Vec<u64> = [1, 2, 3, 7, 8, 9, 500, u32::MAX]
            .iter()
            .map(|a| retry_delay(&s, *a).as_secs())
            .collect();
        assert_eq!(got, [30, 60, 120, 1920, 3600, 3600, 3600, 3600]);
    }

    fn check_next(attempt: u32, age_secs: u64, result: CallResult, expected: Next) {
        let s = settings();
        let now = 10_000_000_000;
        let job = Job {
            id: 1,
            conversion_id: "c".into(),
            partner_id: 1,
            url: "https://p.example/".into(),
            attempt,
            first_ms: now - age_secs * 1000,
            message: None,
        };
        assert_eq!(
            next_step(&job, &result, now, &s),
            expected,
            "attempt {attempt}, age {age_secs} s, {result:?}"
        );
    }

    #[test]
    fn failures_retry_until_a_day_has_passed() {
        let now = 10_000_000_000;
        check_next(1, 0, CallResult::Answered(200), Next::Done);
        check_next(3, 100, CallResult::Answered(204), Next::Done);
        check_next(1, 0, CallResult::Answered(500), Next::Retry(now + 30_000));
        check_next(2, 30, CallResult::Answered(302), Next::Retry(now + 60_000));
        check_next(
            1,
            0,
            CallResult::NoAnswer("timed out".into()),
            Next::Retry(now + 30_000),
        );
        check_next(1, 0, CallResult::Refused("refused".into()), Next::Refuse);
        // The next try would fall past a day: give up now.
        check_next(
            30,
            86_400 - 3600,
            CallResult::Answered(503),
            Next::Retry(now + 3_600_000),
        );
        check_next(30, 86_400 - 3599, CallResult::Answered(503), Next::GiveUp);
    }

    #[tokio::test]
    async fn the_client_builds_with_tls() {
        assert!(client(&settings()).is_ok());
    }

    fn announcement() -> Announcement<'static> {
        Announcement {
            conversion_id: "cv1",
            partner_id: 3,
            offer_id: 9,
            click_id: "abc",
            order_id: "A 1&x=2",
            event: "sale",
            payout: Decimal::new(500, 2),
            currency: "USD",
            status: Status::Approved,
            reason: "ok",
            subs: ["", "", "", "", ""],
        }
    }

    fn check_render(template: &str, subs: [&str; 5], expected: &str) {
        let t = Template::parse(template, POSTBACK_MACROS).unwrap();
        let facts = Facts::of(&announcement(), 0);
        assert_eq!(
            render(&t, &facts, &subs.map(String::from)),
            expected,
            "{template}"
        );
    }

    #[test]
    fn macros_are_rendered_encoded() {
        check_render(
            "https://p.example/pb?c={click_id}&v={conversion_id}&o={order_id}&p={payout}&cur={currency}&st={status}&e={event}&of={offer_id}&pa={partner_id}&s1={sub1}&s5={sub5}",
            ["s1", "", "", "", "ü"],
            "https://p.example/pb?c=abc&v=cv1&o=A%201%26x%3D2&p=5.00&cur=USD&st=approved&e=sale&of=9&pa=3&s1=s1&s5=%C3%BC",
        );
        check_render(
            "https://p.example/{sub2}/{sub3}?x={sub4}",
            ["", "a b", "c/d", "e&f=g", ""],
            "https://p.example/a%20b/c%2Fd?x=e%26f%3Dg",
        );
        check_render(
            "https://p.example/pb?s={sub1}",
            [""; 5],
            "https://p.example/pb?s=",
        );
    }

    #[test]
    fn only_urls_naming_a_sub_id_and_json_bodies_need_the_click() {
        use PostbackFormat::{Get, Json};
        for (template, format, needs) in [
            ("https://p.example/pb?c={click_id}&st={status}", Get, false),
            ("https://p.example/pb", Get, false),
            ("https://p.example/pb?s={sub1}", Get, true),
            ("https://p.example/{sub5}", Get, true),
            ("https://p.example/pb?a={partner_id}&s3={sub3}", Get, true),
            ("https://p.example/pb", Json, true),
            ("https://p.example/pb?s={sub2}", Json, true),
        ] {
            let t = Template::parse(template, POSTBACK_MACROS).unwrap();
            assert_eq!(needs_subs(&t, format), needs, "{template} {format:?}");
        }
        assert_eq!(POSTBACK_MACROS[SUB_MACROS.start], "sub1");
        assert_eq!(POSTBACK_MACROS[SUB_MACROS.end - 1], "sub5");
    }

    fn check_lookup(lookups: u32, age_secs: u64, expected: Option<u64>) {
        let now = 10_000_000_000;
        assert_eq!(
            next_lookup(now - age_secs * 1000, lookups, now, &settings()),
            expected,
            "look {lookups}, age {age_secs} s"
        );
    }

    #[test]
    fn a_missing_click_is_looked_for_again_until_the_age_limit() {
        let now = 10_000_000_000;
        check_lookup(1, 0, Some(now + 2_000));
        check_lookup(2, 2, Some(now + 4_000));
        check_lookup(5, 60, Some(now + 32_000));
        // Doubling stops at retry_max, as for calls.
        check_lookup(40, 3600, Some(now + 3_600_000));
        check_lookup(40, 86_400 - 3600, Some(now + 3_600_000));
        // Past the age limit: sent without the sub-ids.
        check_lookup(40, 86_400 - 3599, None);
        check_lookup(1, 86_400, None);
    }

    #[test]
    fn jobs_queued_by_earlier_versions_still_decode() {
        let old = r#"{"id":7,"conversion_id":"cv1","partner_id":3,"url":"https://p.example/pb?c=abc","attempt":2,"first_ms":1700000000000}"#;
        let job: Job = serde_json::from_str(old).unwrap();
        assert_eq!(job.url, "https://p.example/pb?c=abc");
        assert_eq!((job.attempt, job.message), (2, None));
    }

    #[test]
    fn new_jobs_carry_what_earlier_versions_read() {
        let a = announcement();
        let t = "https://p.example/pb?c={click_id}&s={sub1}";
        let facts = Facts::of(&a, 5);
        let job = Job {
            id: 1,
            conversion_id: "cv1".into(),
            partner_id: 3,
            url: render(
                &Template::parse(t, POSTBACK_MACROS).unwrap(),
                &facts,
                &Subs::default(),
            ),
            attempt: 1,
            first_ms: 5,
            message: Some(Message {
                template: t.into(),
                format: PostbackFormat::Get,
                secret: String::new(),
                facts,
                subs: None,
                lookups: 0,
            }),
        };
        let json = serde_json::to_string(&job).unwrap();
        // The fields of the earlier layout, as it reads them.
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        for key in [
            "id",
            "conversion_id",
            "partner_id",
            "url",
            "attempt",
            "first_ms",
        ] {
            assert!(v.get(key).is_some(), "{key} in {json}");
        }
        assert_eq!(v["url"], "https://p.example/pb?c=abc&s=");
        assert_eq!(v["message"]["facts"]["payout"], "5.00");
        assert_eq!(serde_json::from_str::<Job>(&json).unwrap(), job);
    }

    #[test]
    fn a_json_body_tells_every_fact_with_money_as_a_string() {
        let mut a = announcement();
        a.status = Status::Reversed;
        a.reason = "refund \"late\"";
        let subs = ["s1", "", "", "", "ü"].map(String::from);
        // 2024-05-01T12:00:00Z, and a millisecond more (dropped).
        let body = webhook_body(&Facts::of(&a, 1_714_564_800_001), &subs);
        assert_eq!(
            body,
            r#"{"conversion_id":"cv1","status":"reversed","reason":"refund \"late\"","event":"sale","order_id":"A 1&x=2","payout":"5.00","currency":"USD","offer_id":9,"partner_id":3,"click_id":"abc","sub1":"s1","sub2":"","sub3":"","sub4":"","sub5":"ü","timestamp":"2024-05-01T12:00:00Z"}"#
        );
    }

    #[test]
    fn a_message_without_format_secret_or_reason_reads_as_a_get() {
        let json = r#"{"id":1,"conversion_id":"c","partner_id":3,"url":"u","attempt":1,"first_ms":5,"message":{"template":"https://p.example/","facts":{"conversion_id":"c","partner_id":3,"offer_id":9,"click_id":"","order_id":"","event":"sale","payout":"1.5","currency":"USD","status":"approved","at_ms":5},"subs":null}}"#;
        let job: Job = serde_json::from_str(json).unwrap();
        let m = job.message.unwrap();
        assert_eq!((m.format, m.secret.as_str()), (PostbackFormat::Get, ""));
        assert_eq!((m.facts.reason.as_str(), m.lookups), ("", 0));
    }
}
