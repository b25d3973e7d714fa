//! trackedge: affiliate click and conversion tracking at the edge.
//!
//! The data flow, in reading order:
//!
//! - [`config`]: one TOML tree, every key overridable by environment,
//!   validated once.
//! - [`app`]: wiring, each listener's state, the threads and the shutdown
//!   order.
//! - [`http`]: the accept loop and the two listeners: public (bare hyper,
//!   the redirect's hot path, with the partner API's axum router under
//!   `/partner/`) and admin (an axum router, with its OpenAPI document).
//! - [`redirect`]: `GET /{code}`: route lookup, click id, click record,
//!   302, with no network I/O.
//! - [`catalog`]: partners, offers and links in Redis, mirrored in memory
//!   (the route cache, which the redirect reads) and kept current on every
//!   node through a numbered change channel.
//! - [`model`] and [`template`]: the entities, their validation, and URL
//!   templates with `{macro}` placeholders.
//! - [`click_id`]: signed, time-ordered click ids, verifiable with no lookup.
//! - [`attribution`] and [`payout`]: pure decisions about one conversion:
//!   its status, reason and attribution; what it pays and which rule said so.
//! - [`bot`], [`client_ip`], [`ratelimit`]: pure verdicts about a request.
//! - [`events`]: the rows, the crash-safe segment log they are appended to,
//!   the shipper that moves them to ClickHouse exactly once, and the files
//!   of rows ClickHouse rejected.
//! - [`enrich`]: what the shipper derives from each click off the redirect
//!   path: country, device, OS and browser, the daily visitor hash; and
//!   the privacy switch that keeps no raw IP.
//! - [`conversions`]: what merchants report (pixel, postback): parameters,
//!   authentication, Redis state (dedup, customers, caps), the intake that
//!   records a verdict, and partner postback deliveries.
//! - [`deals`]: deal registration: partners' prospects, approved by an
//!   admin, protected for the offer's period (Redis, first approval wins
//!   atomically), and the lookup that lets attribution credit them.
//! - [`stats`]: `GET /api/v1/stats`: clicks from the 15-minute rollup (or
//!   the raw table where a key needs it), conversions in their latest
//!   state, grouped in any time zone, exactly.
//! - [`currency`], [`validation`], [`secret`]: ISO 4217 codes in use; the
//!   field error of every validation; constant-time secret comparison.
//! - [`partners`]: the partner program over the catalog and the tables:
//!   partner health (pure), its facts from ClickHouse, and pausing the
//!   links of partners gone quiet; performance tiers and bonuses (pure
//!   decisions, a daily round; each bonus recorded once).
//! - [`partner_api`]: partner API keys (stored as digests), who may
//!   promote which offer (visibility and grants, a pure rule), and pausing
//!   links when access is lost.
//! - [`payments`]: partner payments: balances (approved, bonuses,
//!   payable after the offers' holds, paid, owed; pure), recorded
//!   payments and the bonuses ledger.
//! - [`schema`] and [`retention`]: the ClickHouse schema and `migrate`;
//!   the TTL that bounds how long raw rows are kept.
//! - [`backoff`]: the one retry-wait rule of every loop that retries.
//! - [`sched`]: the short kernel time slices every trackedge thread asks
//!   for, so a redirect due is not kept waiting behind background work.
//! - [`metrics`]: every Prometheus metric, registered once.

pub mod app;
pub mod attribution;
pub mod backoff;
pub mod bot;
pub mod catalog;
pub mod click_id;
pub mod client_ip;
pub mod config;
pub mod conversions;
pub mod currency;
pub mod deals;
pub mod enrich;
pub mod events;
pub mod http;
pub mod metrics;
pub mod model;
pub mod partner_api;
pub mod partners;
pub mod payments;
pub mod payout;
pub mod ratelimit;
pub mod redirect;
pub mod retention;
pub mod sched;
pub mod schema;
pub mod secret;
pub mod stats;
pub mod template;
pub mod validation;
