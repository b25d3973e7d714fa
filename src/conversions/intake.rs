//! One reported conversion, from its checked parameters to its recorded
//! verdict: find the offer, authenticate, learn the click (from its signed
//! id, no lookup) or the customer's bound click, find the approved deal
//! covering the customer (one Redis `MGET`), claim the order in Redis,
//! let [`crate::attribution::decide`] rule, and record the row durably
//! before answering.
//!
//! The answer is never `approved` for a conversion that was not recorded:
//! when the segment log refuses the row (disk budget reached), the claim
//! is released and the merchant gets `503` to retry. The claim is
//! provisional until the row is in the log, then confirmed; a retry that
//! finds the claim of an attempt that died in between takes it over under
//! that attempt's conversion id and arrival time ([`super::state`]), so an
//! order is one conversion however the first attempt ended.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use rust_decimal::Decimal;

use super::auth::{self, AuthError, Credentials};
use super::deliver::{Announcement, Postbacks};
use super::params::Params;
use super::state::{Claim, ConversionState, DedupKey, Lease, StateError, Subject};
use crate::attribution::{
    self, Attribution, Caps, ClickFacts, DealFacts, Decision, Dedup, Input, LinkFacts, OfferRules,
    PartnerFacts, PartnerStatus, PixelTrust, Source,
};
use crate::catalog::{Catalog, RouteCache, StoreError};
use crate::click_id::{ClickIdCodec, ClickInfo};
use crate::deals::{DealError, DealStore, Protection};
use crate::events::money::Money;
use crate::events::{ConversionRow, Event, EventSink};
use crate::model::{Link, Offer, Partner, PixelStatus};
use crate::payout::CustomerSale;

pub use crate::attribution::Channel;

/// The catalog once Redis has answered (the conversion side needs Redis
/// for links, claims and customers).
pub use crate::catalog::CatalogSlot;

/// One report, as the listener read it.
#[derive(Debug)]
pub struct Report<'a> {
    /// Pixel or postback.
    pub channel: Channel,
    /// The checked parameters.
    pub params: Params,
    /// `X-Trackedge-Signature`, if sent.
    pub signature: Option<&'a str>,
    /// What a signature covers after `"<t>."`: the raw body, or the raw
    /// query of a `GET`.
    pub signed: &'a [u8],
    /// The client, after trusted proxies.
    pub ip: IpAddr,
    /// Unix milliseconds of arrival.
    pub now_ms: u64,
}

/// What was decided and recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The new conversion's id.
    pub conversion_id: String,
    /// The decision.
    pub decision: Decision,
    /// The currency of `payout` (the offer's).
    pub currency: String,
    /// The offer, when one was identified.
    pub offer_id: u64,
}

/// What a conversion row says beyond the report's own parameters.
struct Outcome<'a> {
    conversion_id: &'a str,
    /// When the row says it arrived (a takeover keeps the first attempt's).
    arrived_ms: u64,
    /// The credited click, or empty.
    click_id: &'a str,
    /// Its time, or 0.
    click_ts_ms: u64,
    link_id: u64,
    offer_id: u64,
    /// The offer's currency: the payout's, and the amount's by default.
    offer_currency: &'a str,
    decision: &'a Decision,
}

/// Why a report got no verdict.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// No offer could be identified (no valid token, click or offer).
    #[error("no offer: send the offer's token, or a click id from one of its links")]
    NoOffer,
    /// `401`.
    #[error("{0}")]
    Unauthorized(#[from] AuthError),
    /// Over the offer's postback rate: `429`, nothing recorded. (A pixel
    /// over its client's rate is recorded as `rejected` / `rate_limited`.)
    #[error("too many conversions: slow down and retry")]
    RateLimited,
    /// Redis or the log cannot take it now: `503`, retry.
    #[error("{0}")]
    Unavailable(String),
}

impl From<StateError> for IntakeError {
    fn from(e: StateError) -> Self {
        IntakeError::Unavailable(e.to_string())
    }
}

impl From<DealError> for IntakeError {
    fn from(e: DealError) -> Self {
        IntakeError::Unavailable(e.to_string())
    }
}

impl From<StoreError> for IntakeError {
    fn from(e: StoreError) -> Self {
        IntakeError::Unavailable(e.to_string())
    }
}

/// Takes reports for every offer.
pub struct Intake {
    cache: Arc<RouteCache>,
    catalog: CatalogSlot,
    /// Verifies click ids (any codec with the same secrets verifies).
    codec: ClickIdCodec,
    /// Where rows go: the segment log, durable before the answer and
    /// shipped to ClickHouse exactly once.
    sink: Arc<EventSink>,
    state: OnceLock<ConversionState>,
    /// Approved deals, looked up by customer id and email domain.
    deals: OnceLock<DealStore>,
    dedup_ttl_secs: u64,
    /// How long a claim's holder has to record it (see [`ConversionState`]).
    claim_lease: std::time::Duration,
    metrics: Arc<crate::metrics::Metrics>,
    /// Postbacks per offer: a merchant's runaway retry loop must not take
    /// every other offer's capacity.
    postback_rate: Option<governor::DefaultKeyedRateLimiter<u64>>,
    /// Pixel hits per client IP: anyone can fire a pixel.
    pixels: crate::ratelimit::ClickLimiter,
    /// Queues partner postbacks for counted conversions; `None` sends none.
    postbacks: Option<Arc<Postbacks>>,
}

impl Intake {
    /// An intake over the route cache's partners and offers, the catalog
    /// (once loaded) for links and Redis, and `sink` for rows.
    pub fn new(
        cache: Arc<RouteCache>,
        catalog: CatalogSlot,
        codec: ClickIdCodec,
        sink: Arc<EventSink>,
        cfg: &crate::config::ConversionsConfig,
        max_tracked_ips: usize,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        use std::num::NonZeroU32;
        let postback_rate = NonZeroU32::new(cfg.postbacks_per_offer_per_second).map(|rate| {
            let burst = rate.saturating_mul(NonZeroU32::new(2).expect("2 is not zero"));
            governor::RateLimiter::dashmap(governor::Quota::per_second(rate).allow_burst(burst))
        });
        let pixels = crate::ratelimit::ClickLimiter::new(&crate::config::LimitsConfig {
            clicks_per_ip_per_minute: cfg.pixels_per_ip_per_minute,
            clicks_burst: (cfg.pixels_per_ip_per_minute / 4).max(1),
            max_tracked_ips,
        });
        Intake {
            cache,
            catalog,
            codec,
            sink,
            state: OnceLock::new(),
            deals: OnceLock::new(),
            dedup_ttl_secs: u64::from(cfg.dedup_ttl_days) * 86_400,
            claim_lease: std::time::Duration::from_millis(cfg.claim_lease_ms),
            metrics,
            postback_rate,
            pixels,
            postbacks: None,
        }
    }

    /// The same intake, queueing a partner postback for every counted
    /// conversion through `postbacks`.
    pub fn with_postbacks(mut self, postbacks: Arc<Postbacks>) -> Self {
        self.postbacks = Some(postbacks);
        self
    }

    /// Forgets quiet clients of the pixel limiter; run periodically.
    pub fn maintain(&self) {
        self.pixels.maintain();
        if let Some(l) = &self.postback_rate {
            l.retain_recent();
        }
    }

    /// Counts a report that got no verdict: `bad_input`, `unauthorized`,
    /// `unavailable` or `not_recorded`.
    pub fn refused(&self, kind: &str) {
        self.metrics
            .conversion_errors
            .with_label_values(&[kind])
            .inc();
    }

    fn catalog(&self) -> Result<&Arc<Catalog>, IntakeError> {
        self.catalog
            .get()
            .ok_or_else(|| IntakeError::Unavailable("the catalog is still loading".into()))
    }

    fn state(&self) -> Result<&ConversionState, IntakeError> {
        let catalog = self.catalog()?;
        Ok(self.state.get_or_init(|| {
            let (conn, prefix, timeout) = catalog.redis();
            ConversionState::new(conn, prefix, timeout, self.dedup_ttl_secs, self.claim_lease)
        }))
    }

    /// The approved deal protecting the report's customer (by customer id
    /// or email domain) on `offer_id`, if it names either.
    async fn protection(
        &self,
        offer_id: u64,
        p: &Params,
    ) -> Result<Option<Protection>, IntakeError> {
        if p.customer_id.is_none() && p.customer_domain.is_none() {
            return Ok(None);
        }
        let catalog = self.catalog()?;
        let deals = self.deals.get_or_init(|| DealStore::new(catalog));
        Ok(deals
            .protecting(
                offer_id,
                p.customer_id.as_deref(),
                p.customer_domain.as_deref(),
            )
            .await?)
    }

    /// Decides one report and records it.
    pub async fn report(&self, r: Report<'_>) -> Result<Verdict, IntakeError> {
        if r.channel == Channel::Pixel && self.pixels.over_limit(r.ip) {
            return self.record_flooded(&r);
        }
        let p = &r.params;
        // The click, from its id alone: a forged or altered id is refused
        // here, with no lookup.
        let click: Option<Result<ClickInfo, ()>> = p
            .click_id
            .as_deref()
            .map(|id| self.codec.verify(id).map_err(|_| ()));
        let link = match &click {
            Some(Ok(info)) => self.link(info.link_id).await?,
            _ => None,
        };
        let offer = self.offer(&r, link.as_ref())?;
        if r.channel == Channel::Postback {
            if let Some(l) = &self.postback_rate {
                if l.check_key(&offer.id).is_err() {
                    return Err(IntakeError::RateLimited);
                }
            }
        }
        if r.channel == Channel::Postback {
            auth::authenticate(
                &Credentials {
                    token: p.token.as_deref(),
                    signature: r.signature,
                    signed: r.signed,
                    ip: r.ip,
                },
                &auth::OfferSecrets {
                    token: &offer.postback_token,
                    signing_secret: &offer.signing_secret,
                    allowlist: &offer.postback_allowlist,
                },
                (r.now_ms / 1000) as i64,
            )?;
        }
        let state = self.state()?;

        // What the conversion is about: its click, or its customer's.
        let (source, click_id, click_facts) = match (&click, &p.customer_id) {
            (Some(Err(())), _) => (Source::InvalidClickId, p.click_id.clone(), None),
            (Some(Ok(info)), _) => {
                let facts = facts(info);
                (Source::Click(facts), p.click_id.clone(), Some(facts))
            }
            (None, Some(customer)) => match state.bound_click(offer.id, customer).await? {
                Some(bound) => match self.codec.verify(&bound) {
                    Ok(info) => {
                        let facts = facts(&info);
                        let sale = CustomerSale {
                            first_sale: state.customer_sales(offer.id, customer).await? == 0,
                            months_since_bound: crate::payout::whole_months(info.ts_ms, r.now_ms),
                        };
                        (
                            Source::Customer(Some(attribution::BoundCustomer {
                                click: facts,
                                sale,
                            })),
                            Some(bound),
                            Some(facts),
                        )
                    }
                    Err(_) => (Source::Customer(None), None, None),
                },
                None => (Source::Customer(None), None, None),
            },
            (None, None) => (Source::Customer(None), None, None),
        };
        // A bound customer's link is the bound click's.
        let link = match (&link, &click_facts) {
            (None, Some(f)) => self.link(f.link_id).await?,
            _ => link,
        };
        let partner = link.as_ref().and_then(|l| self.cache.partner(l.partner_id));
        let protection = self.protection(offer.id, p).await?;
        let deal_partner = protection.and_then(|d| self.cache.partner(d.partner_id));
        let terms = offer.payout_terms();
        let mut input = Input {
            source,
            link: link.as_ref().map(|l| LinkFacts {
                partner_id: l.partner_id,
                offer_id: l.offer_id,
            }),
            offer: OfferRules {
                id: offer.id,
                window_days: offer.attribution_window_days,
                min_seconds: offer.min_click_seconds,
                pixel: match offer.pixel_status {
                    PixelStatus::Approved => PixelTrust::Approve,
                    PixelStatus::Pending => PixelTrust::Pending,
                },
                manual_review: offer.manual_review,
                cap_action: offer.caps.over,
                payout: Cow::Borrowed(&terms),
                deal_conflict: offer.deal_conflict,
            },
            partner: partner_facts(partner.as_deref()),
            channel: r.channel,
            now_ms: r.now_ms,
            event: &p.event,
            amount: p.amount,
            caps: Caps::Within,
            dedup: Dedup::Fresh,
            deal: protection.map(|d| DealFacts {
                deal_id: d.deal_id,
                partner_id: d.partner_id,
                protected_until_ms: d.until_ms,
                partner: partner_facts(deal_partner.as_deref()),
            }),
        };
        let mut decision = attribution::decide(&input);

        // Only a conversion that would count claims its order: a rejected
        // one must not make the merchant's corrected retry a duplicate.
        let mut conversion_id = new_conversion_id(r.now_ms);
        // When the row says it arrived: a takeover keeps the first attempt's.
        let mut arrived_ms = r.now_ms;
        let dedup_key = dedup_key(offer.id, p, click_id.as_deref());
        let counts = matches!(
            decision.status,
            attribution::Status::Approved | attribution::Status::Pending
        );
        let mut lease: Option<Lease> = None;
        if counts {
            if let Some(key) = &dedup_key {
                let claim = state.claim(key, &conversion_id).await?;
                self.metrics
                    .conversion_claims
                    .with_label_values(&[match &claim {
                        Claim::Fresh(_) => "fresh",
                        Claim::TakenOver(_) => "taken_over",
                        Claim::Duplicate(_) => "duplicate",
                    }])
                    .inc();
                match claim {
                    Claim::Fresh(held) | Claim::TakenOver(held) => {
                        if held.conversion_id != conversion_id {
                            // A takeover: the first attempt's conversion,
                            // decided as of its arrival.
                            conversion_id = held.conversion_id.clone();
                            if let Some(ms) = conversion_id_ms(&conversion_id) {
                                arrived_ms = ms;
                                input.now_ms = ms;
                                decision = attribution::decide(&input);
                            }
                        }
                        // Caps count conversions that count, once each.
                        let counters = super::caps::counters(
                            &offer.caps,
                            offer.id,
                            decision.partner_id,
                            arrived_ms,
                        );
                        match state.take_caps(&counters).await {
                            Ok(true) => {}
                            Ok(false) => {
                                input.caps = Caps::Over;
                                decision = attribution::decide(&input);
                            }
                            Err(e) => {
                                let _ = state.release(key, &held).await;
                                return Err(e.into());
                            }
                        }
                        lease = Some(held);
                    }
                    Claim::Duplicate(_) => {
                        input.dedup = match key {
                            DedupKey::Order { .. } => Dedup::DuplicateOrder,
                            DedupKey::Event { .. } => Dedup::DuplicateEvent,
                        };
                        decision = attribution::decide(&input);
                    }
                }
            }
        }

        let counts = matches!(
            decision.status,
            attribution::Status::Approved | attribution::Status::Pending
        );
        // A deal, not a click, is a deal conversion's attribution: its row
        // and its partner's postback name no click (the click is another
        // partner's, named by `displaced_partner_id` when it lost).
        let by_deal = decision.attribution == Attribution::Deal;
        let row_click = match (&click_id, by_deal) {
            (Some(c), false) => c.as_str(),
            _ => "",
        };
        let recorded = self.record(
            &r,
            &Outcome {
                conversion_id: &conversion_id,
                arrived_ms,
                click_id: row_click,
                click_ts_ms: click_facts.filter(|_| !by_deal).map_or(0, |f| f.ts_ms),
                link_id: link.as_ref().filter(|_| !by_deal).map_or(0, |l| l.id),
                offer_id: offer.id,
                offer_currency: &offer.currency,
                decision: &decision,
            },
        );
        if !recorded {
            if let (Some(held), Some(key)) = (&lease, &dedup_key) {
                // Best effort: if Redis is gone too, the lease ends and a
                // retry takes the claim over.
                let _ = state.release(key, held).await;
                self.metrics
                    .conversion_claims
                    .with_label_values(&["released"])
                    .inc();
            }
            return Err(IntakeError::Unavailable(
                "the conversion could not be made durable; retry".into(),
            ));
        }
        let claimed = lease.is_some();
        if let (Some(held), Some(key)) = (&lease, &dedup_key) {
            // The row is durable: a failure here only leaves the claim
            // provisional, and a retry after the lease records the same
            // conversion id again, which readers see as one.
            match state.confirm(key, held).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(conversion = %conversion_id, "claim taken over before it was confirmed")
                }
                Err(e) => {
                    tracing::warn!(conversion = %conversion_id, error = %e, "claim not confirmed")
                }
            }
        }
        // A counted conversion with a click and a customer binds them, the
        // first binding winning (later ones name the customer only); one
        // through the binding counts toward the customer's sales.
        if counts && claimed {
            if let Some(customer) = &p.customer_id {
                // The conversion is recorded: a Redis failure here must not
                // turn its answer into a retry (which would be a duplicate).
                let kept = match (&click, &click_id) {
                    (Some(Ok(_)), Some(cid)) => {
                        state.bind_customer(offer.id, customer, cid).await.map(drop)
                    }
                    (None, Some(_)) => state.count_customer_sale(offer.id, customer).await,
                    _ => Ok(()),
                };
                if let Err(e) = kept {
                    tracing::warn!(offer = offer.id, error = %e, "customer binding or sale count not kept");
                }
            }
        }
        if counts {
            let ten_thousandths = (decision.payout * Decimal::from(10_000))
                .trunc()
                .try_into()
                .unwrap_or(0u64);
            self.metrics
                .conversion_payout
                .with_label_values(&[decision.status.as_str()])
                .inc_by(ten_thousandths);
        }
        if let (Some(postbacks), Some(partner_id)) = (&self.postbacks, decision.partner_id) {
            // The conversion is recorded: a queue failure loses only the
            // partner's notification, never the conversion's answer.
            let queued = postbacks
                .enqueue(&Announcement {
                    conversion_id: &conversion_id,
                    partner_id,
                    offer_id: offer.id,
                    click_id: row_click,
                    order_id: p.order_id.as_deref().unwrap_or(""),
                    event: &p.event,
                    payout: decision.payout,
                    currency: &offer.currency,
                    status: decision.status,
                    reason: decision.reason.as_str(),
                    // The click's sub-ids are only in its ClickHouse row;
                    // nothing on this path may wait for it.
                    subs: [""; 5],
                })
                .await;
            if let Err(e) = queued {
                tracing::error!(conversion = %conversion_id, partner = partner_id, error = %e, "partner postback not queued");
            }
        }
        Ok(Verdict {
            conversion_id,
            decision,
            currency: offer.currency.clone(),
            offer_id: offer.id,
        })
    }

    /// Records a pixel over its client's rate as `rejected` /
    /// `rate_limited` with what is known without a lookup: the offer by
    /// token from memory, the link and click time from the signed id.
    fn record_flooded(&self, r: &Report<'_>) -> Result<Verdict, IntakeError> {
        let p = &r.params;
        let decision = Decision::rate_limited();
        let offer = p
            .token
            .as_deref()
            .and_then(|t| self.cache.offer_by_token(t));
        let click = p
            .click_id
            .as_deref()
            .and_then(|id| self.codec.verify(id).ok());
        let conversion_id = new_conversion_id(r.now_ms);
        let currency = offer.as_ref().map_or("", |o| o.currency.as_str());
        let recorded = self.record(
            r,
            &Outcome {
                conversion_id: &conversion_id,
                arrived_ms: r.now_ms,
                click_id: p.click_id.as_deref().unwrap_or(""),
                click_ts_ms: click.as_ref().map_or(0, |c| c.ts_ms),
                link_id: click.as_ref().map_or(0, |c| c.link_id),
                offer_id: offer.as_ref().map_or(0, |o| o.id),
                offer_currency: currency,
                decision: &decision,
            },
        );
        if !recorded {
            return Err(IntakeError::Unavailable(
                "the conversion could not be made durable; retry".into(),
            ));
        }
        Ok(Verdict {
            conversion_id,
            decision,
            currency: currency.to_string(),
            offer_id: offer.as_ref().map_or(0, |o| o.id),
        })
    }

    /// Appends the conversion row of report `r` with `o`'s verdict to the
    /// log and counts it by status and reason; false, counted as
    /// `not_recorded`, when the log cannot take it (the caller answers
    /// `503`).
    fn record(&self, r: &Report<'_>, o: &Outcome<'_>) -> bool {
        let p = &r.params;
        let d = o.decision;
        let ip = r.ip.to_string();
        let rule = d.payout_rule.as_ref().map(|rule| rule.as_str());
        // Intake bounds amounts far inside the column's range; a payout
        // computed past it was already sent to manual review at zero.
        let recorded = match (
            Money::from_decimal(p.amount.unwrap_or_default()),
            Money::from_decimal(d.payout),
        ) {
            (Ok(amount), Ok(payout)) => self.sink.record(&Event::Conversion(ConversionRow {
                conversion_id: o.conversion_id,
                ts: (o.arrived_ms / 1000) as u32,
                click_id: o.click_id,
                click_ts: (o.click_ts_ms / 1000) as u32,
                link_id: o.link_id,
                partner_id: d.partner_id.unwrap_or(0),
                offer_id: o.offer_id,
                order_id: p.order_id.as_deref().unwrap_or(""),
                event: &p.event,
                amount,
                currency: p.currency.as_deref().unwrap_or(o.offer_currency),
                payout,
                payout_currency: o.offer_currency,
                status: d.status.as_str(),
                reason: d.reason.as_str(),
                customer_id: p.customer_id.as_deref().unwrap_or(""),
                attribution: d.attribution.as_str(),
                payout_rule: rule.as_deref().unwrap_or(""),
                deal_id: d.deal_id.unwrap_or(0),
                displaced_partner_id: d.displaced_partner_id.unwrap_or(0),
                source: match r.channel {
                    Channel::Pixel => "pixel",
                    Channel::Postback => "postback",
                },
                ip: &ip,
                version: 1,
                // The first version replaces nothing.
                prev_status: "",
                prev_amount: Money::ZERO,
                prev_payout: Money::ZERO,
            })),
            _ => false,
        };
        if recorded {
            self.metrics
                .conversions
                .with_label_values(&[d.status.as_str(), d.reason.as_str()])
                .inc();
        } else {
            self.refused("not_recorded");
        }
        recorded
    }

    /// The link `id`, from Redis (its owners never change; a deleted link
    /// is `None`).
    async fn link(&self, id: u64) -> Result<Option<Link>, IntakeError> {
        match self.catalog()?.get::<Link>(id).await {
            Ok(l) => Ok(Some(l)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The offer: the token's, else the clicked link's.
    fn offer(&self, r: &Report<'_>, link: Option<&Link>) -> Result<Arc<Offer>, IntakeError> {
        if let Some(token) = r.params.token.as_deref() {
            if let Some(o) = self.cache.offer_by_token(token) {
                return Ok(o);
            }
            if r.channel == Channel::Postback && r.signature.is_none() {
                return Err(AuthError::WrongToken.into());
            }
        }
        link.and_then(|l| self.cache.offer(l.offer_id))
            .ok_or(IntakeError::NoOffer)
    }
}

/// What attribution needs of a partner from the route cache; `None` is a
/// deleted one.
fn partner_facts(partner: Option<&Partner>) -> PartnerFacts<'_> {
    PartnerFacts {
        status: match partner {
            Some(p) if p.is_active() => PartnerStatus::Active,
            Some(_) => PartnerStatus::Inactive,
            None => PartnerStatus::Deleted,
        },
        tier: partner.and_then(|p| p.tier.as_deref()),
    }
}

fn facts(info: &ClickInfo) -> ClickFacts {
    ClickFacts {
        ts_ms: info.ts_ms,
        link_id: info.link_id,
        is_bot: info.flags.bot,
        is_rate_limited: info.flags.rate_limited,
    }
}

/// `(offer, order_id)`, else `(offer, click or customer, event)`; `None`
/// when the conversion names neither (it is rejected anyway).
fn dedup_key<'a>(offer_id: u64, p: &'a Params, click_id: Option<&'a str>) -> Option<DedupKey<'a>> {
    if let Some(order_id) = p.order_id.as_deref() {
        return Some(DedupKey::Order { offer_id, order_id });
    }
    let subject = match (click_id, p.customer_id.as_deref()) {
        (Some(c), _) => Subject::Click(c),
        (None, Some(c)) => Subject::Customer(c),
        (None, None) => return None,
    };
    Some(DedupKey::Event {
        offer_id,
        subject,
        event: &p.event,
    })
}

/// A new conversion id: 22 base62 characters, the arrival millisecond
/// first (ids sort by time), then 64 random bits.
fn new_conversion_id(now_ms: u64) -> String {
    let n = (u128::from(now_ms) << 64) | u128::from(rand::random::<u64>());
    format!("{:0>22}", base62::encode(n))
}

/// The arrival millisecond a conversion id starts with.
fn conversion_id_ms(id: &str) -> Option<u64> {
    let n = base62::decode(id.trim_start_matches('0')).ok()?;
    u64::try_from(n >> 64).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversion_id_keeps_its_arrival() {
        for ms in [0, 1, 1_790_000_123_456, u64::MAX >> 1] {
            let id = new_conversion_id(ms);
            assert_eq!(id.len(), 22, "{id}");
            assert_eq!(conversion_id_ms(&id), Some(ms), "{id}");
        }
        assert_eq!(conversion_id_ms("not base62!"), None);
    }
}
