//! The catalog of partners, offers and links: stored in Redis, mirrored in
//! every node's memory, kept current by a change channel.
//!
//! In reading order:
//!
//! - [`change`]: one [`Change`], the unit everything below passes around.
//! - [`routes`]: the [`RouteCache`], the in-memory mirror and the routes
//!   built from it. The redirect path reads only [`RouteCache::lookup`]: a
//!   `DashMap` read, no I/O. It knows nothing of Redis.
//! - [`store`]: the [`Catalog`], the Redis store behind the admin API. A
//!   write goes to Redis in one transaction or script that also numbers
//!   the change and publishes it, and is applied to this node's cache as
//!   soon as Redis has it: a deleted link stops redirecting on this node
//!   before the admin call answers.
//! - [`sync`]: the numbered change channel. Every node applies published
//!   changes to its cache, so other nodes follow when the message arrives;
//!   a full reload runs after every (re)subscription and when the numbers
//!   show a missed message (a gap, or a counter ahead of what was applied
//!   for a whole `resync_interval_secs`). A quiet catalog is never
//!   reloaded.
//!
//! Redis being down leaves the cache as it was: redirects keep working,
//! admin writes answer `503`.

pub mod change;
pub mod routes;
pub mod store;
pub mod sync;

pub use change::Change;
pub use routes::{CodeKey, Route, RouteCache, RouteRef};
pub use store::{now_rfc3339, Catalog, Entity, Kind, Page, StoreError};
