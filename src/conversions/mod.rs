//! The conversion side: what a merchant reports through `GET /pixel` and
//! `GET|POST /postback`, and how it is checked before attribution decides.
//!
//! Files, bottom up: `params` reads and validates a conversion's
//! parameters from a query string, a form body or a JSON body, naming the
//! parameter at fault; `auth` checks the offer's postback token, the
//! `X-Trackedge-Signature` HMAC and the IP allowlist. Both are pure: no
//! Redis, no clock (the caller passes the time). `state` holds what nodes
//! share in Redis: deduplication claims and customer bindings. `deliver`
//! calls partners' postback URLs from a queue in Redis.

pub mod auth;
pub mod caps;
pub mod deliver;
pub mod intake;
pub mod params;
pub mod state;
