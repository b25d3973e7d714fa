//! Deal registration: a partner registers a prospect (a company, its
//! customer id or email domain) for an offer, an admin approves or rejects
//! it, and an approved deal credits its partner with the prospect's
//! conversions on that offer for the offer's protection period.
//!
//! - [`model`]: the deal, its JSON forms, their validation, and the
//!   prospect keys (normalised customer id, email domain) conversions are
//!   matched by. Pure.
//! - [`store`]: the deals in Redis under the catalog's prefix; approval
//!   atomically claims the prospect keys, so the first approved deal of a
//!   prospect wins on every node; [`DealStore::protecting`] is the
//!   conversion side's one-`MGET` lookup.
//!
//! Every operation takes the caller's [`Viewer`]: the admin API sees every
//! deal, the partner API only its own partner's (another partner's deal is
//! `404`, as if it did not exist). Who takes a conversion once a deal is
//! found is [`crate::attribution::decide`]'s to say.

pub mod model;
pub mod store;

pub use model::{Deal, DealRequest, DealStatus, NewDeal, ProspectKey, Rejection};
pub use store::{DealError, DealFilter, DealStore, Protection, Viewer};

#[cfg(test)]
mod tests;
