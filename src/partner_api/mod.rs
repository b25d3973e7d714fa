//! The partner program's self-service side: partner API keys, who may
//! promote which offer, and what happens when that changes. The HTTP face
//! is [`crate::http::partner`] (partners) and the admin routes for keys
//! and access in [`crate::http::admin`].
//!
//! Bottom up:
//! - [`keys`]: a key's secret, its digest and its stored record. Pure.
//! - [`access`]: an offer's visibility and a partner's grant → what the
//!   partner may do with the offer. Pure, one table of cases.
//! - [`store`]: keys and grants in the catalog's Redis, written by Lua
//!   scripts so the two hashes of each never part.
//! - [`enforce`]: pausing a partner's links on an offer it lost access to,
//!   noted with the reason in the partner's record.
//!
//! # Every node sees a revocation at once
//!
//! Keys are looked up in Redis by the SHA-256 digest of the presented
//! secret on every partner API request, with no cache: a revoked key is
//! refused by every node from the moment the admin's `DELETE` answered.
//! A lookup is one `HGET` on the admin-side connection; the redirect path
//! never comes here. Grants are read the same way when they decide
//! something (an offer listing, a new link).

pub mod access;
pub mod enforce;
pub mod keys;
pub mod store;

pub use access::{Access, GrantStatus};
pub use keys::KeyRecord;
pub use store::PartnerStore;
