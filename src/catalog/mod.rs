//! The catalog of partners, offers and links: stored in Redis, mirrored in
//! every node's memory, kept current by a change channel.
//!
//! The files, bottom up: `change`, `routes`, `message`, `store`,
//! `partners`, `sync`.
//! Each imports only files earlier in that order, never a later one; and
//! `routes` imports `change` alone, so nothing Redis reaches it.
//!
//! - [`change`]: one [`Change`], the unit every other file passes around.
//!   Plain data, no Redis.
//! - [`routes`]: the [`RouteCache`], the in-memory mirror and the routes
//!   built from it. The redirect path reads only [`RouteCache::lookup`]: a
//!   `DashMap` read, no I/O. It imports only `change`, so it knows nothing
//!   of Redis, not even indirectly.
//! - [`message`]: the numbered change message on the wire,
//!   `{number}|{change json}`: the Lua snippet that numbers and publishes
//!   it, and the parser that reads it back.
//! - [`store`]: the [`Catalog`], the Redis store behind the admin API. A
//!   write goes to Redis in one script that numbers and publishes the
//!   change only once the write succeeded (a refused write is undone and
//!   publishes nothing), and is applied to this node's cache as
//!   soon as Redis has it: a deleted link stops redirecting on this node
//!   before the admin call answers.
//! - [`partners`]: partner writes that must not lose a race, as `impl
//!   Catalog` blocks over the store: an applicant stored with its email
//!   claimed in one script, and every change of a stored partner as a
//!   compare-and-set, decided again when another write came first.
//! - [`sync`]: following the numbered change channel, as `impl Catalog`
//!   blocks over the store. Every node applies published changes to its
//!   cache, so other nodes follow when the message arrives;
//!   a full reload runs after every (re)subscription and when the numbers
//!   show a missed message (a gap, or a counter ahead of what was applied
//!   for a whole `resync_interval_secs`). A quiet catalog is never
//!   reloaded.
//!
//! Redis being down leaves the cache as it was: redirects keep working,
//! admin writes answer `503`.

pub mod change;
pub mod message;
pub mod partners;
pub mod routes;
pub mod store;
pub mod sync;

pub use change::Change;
pub use routes::{CodeKey, LinkOwners, Route, RouteCache, RouteRef};
pub use store::{now_rfc3339, Catalog, Entity, Kind, Page, StoreError};

/// Where the catalog is found once Redis has answered at start (listeners
/// and the conversion side start before that, and answer `503` for what
/// needs it until then).
pub type CatalogSlot = std::sync::Arc<std::sync::OnceLock<std::sync::Arc<Catalog>>>;
