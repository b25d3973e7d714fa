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
//! conversion's facts as JSON to its rendered URL instead, with
//! `X-Trackedge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 over
//! "<t>.<body>">` keyed by its `webhook_secret`: the scheme merchants sign
//! their postbacks with, computed at each attempt.
//!
//! Outbound calls follow no redirects, have a timeout, and by default
//! refuse every address that is not public ([`is_forbidden`]), checked on
//! the address connected to (see `outbound`).
//!
//! The files, bottom up (each imports only files above it):
//!
//! - `job`: [`Announcement`], what a caller tells; a queued job's stored
//!   layout, old layouts included.
//! - `render`: the URL and the JSON body from a job's facts (pure).
//! - `queue`: the sorted set in Redis and its claim and reschedule
//!   scripts.
//! - `clicks`: a click's sub-ids from ClickHouse.
//! - `address`: which addresses may be called (pure).
//! - `mask`: recorded URLs without secrets (pure).
//! - `settings`: [`Settings`], from `[postbacks]`.
//! - `outbound`: the HTTP client, its checked resolver, one call.
//! - `schedule`: lease, retries, click waits, giving up (pure).
//! - `enqueue`: [`Postbacks`], an announcement in, a job queued.
//! - `worker`: [`Deliverer`], the loop that claims, renders, calls and
//!   records.

mod address;
mod clicks;
mod enqueue;
mod job;
mod mask;
mod outbound;
mod queue;
mod render;
mod schedule;
mod settings;
mod worker;

use std::time::{SystemTime, UNIX_EPOCH};

pub use address::is_forbidden;
pub use clicks::{ClickLookup, LookupError, CLICK_SUBS_SQL};
pub use enqueue::{Enqueued, Postbacks};
pub use job::Announcement;
pub use mask::{mask_url, MASKED};
pub use outbound::{client, ClientError, SIGNATURE_HEADER};
pub use queue::QueueError;
pub use settings::Settings;
pub use worker::Deliverer;

/// Unix milliseconds now (0 for a clock before 1970).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Fixtures shared by the files' tests.
#[cfg(test)]
mod tests_support {
    use rust_decimal::Decimal;

    use super::Announcement;
    use crate::attribution::Status;

    /// An approved CPA 5.00 sale with awkward values.
    pub(crate) fn announcement() -> Announcement<'static> {
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
}
