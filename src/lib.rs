//! trackedge: affiliate click and conversion tracking at the edge.
//!
//! The data flow, in reading order:
//!
//! - [`config`]: one TOML tree, every key overridable by environment.
//! - [`app`]: wiring and the shutdown order.
//! - [`http`]: the public and admin listeners.
//! - [`redirect`]: `GET /{code}` — cache lookup, click id, click record,
//!   302, with no network I/O.
//! - [`catalog`]: partners, offers and links in Redis, mirrored in memory
//!   and kept current on every node through a change channel.
//! - [`model`] and [`template`]: the entities, their validation, and URL
//!   templates with `{macro}` placeholders.
//! - [`click_id`]: signed, time-ordered click ids, verifiable with no lookup.
//! - [`bot`], [`client_ip`], [`ratelimit`]: pure verdicts about a request.
//! - [`events`]: the lock-free buffer, the ClickHouse flusher, the spool.
//! - [`schema`]: the ClickHouse schema and `migrate`.
//! - [`metrics`]: every Prometheus metric, registered once.

pub mod app;
pub mod backoff;
pub mod bot;
pub mod catalog;
pub mod click_id;
pub mod client_ip;
pub mod config;
pub mod events;
pub mod http;
pub mod metrics;
pub mod model;
pub mod ratelimit;
pub mod redirect;
pub mod schema;
pub mod template;
