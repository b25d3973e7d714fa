//! What a partner is told: an [`Announcement`] from the caller, and the
//! queued job holding it, as stored (a Redis sorted set member of JSON).
//!
//! The layout only grows, each new field with a serde default, because a
//! queue outlives the process that filled it: a job queued by an earlier
//! version must still be read and sent, and a node of an earlier version
//! still running beside newer ones reads only the fields it knows.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::attribution::Status;
use crate::model::PostbackFormat;

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

/// The original click's `sub1`…`sub5`.
pub(super) type Subs = [String; 5];

/// Everything a partner can be told about one conversion status: the
/// values of its postback URL's macros, but the click's sub-ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Facts {
    pub(super) conversion_id: String,
    pub(super) partner_id: u64,
    pub(super) offer_id: u64,
    /// Empty when the conversion has no click.
    pub(super) click_id: String,
    pub(super) order_id: String,
    pub(super) event: String,
    /// A decimal string in the job's JSON.
    pub(super) payout: Decimal,
    pub(super) currency: String,
    pub(super) status: String,
    #[serde(default)]
    pub(super) reason: String,
    /// Unix milliseconds of the status change (its queueing).
    pub(super) at_ms: u64,
}

impl Facts {
    /// The facts of `a`, its status changed at Unix millisecond `at_ms`.
    pub(super) fn of(a: &Announcement<'_>, at_ms: u64) -> Facts {
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

/// One queued postback: its JSON is the sorted set's member, so every
/// attempt is a new member (the attempt number is in it).
///
/// Jobs queued by earlier versions hold only the fields up to
/// `first_ms`, with `url` rendered; they are sent as they are. Jobs queued
/// now hold `message` too, and `url` only for a node of an earlier version
/// still running beside this one (which ignores `message`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Job {
    /// Keeps two announcements of the same conversion apart.
    pub(super) id: u64,
    pub(super) conversion_id: String,
    pub(super) partner_id: u64,
    /// Rendered, secrets included (masked only when recorded).
    #[serde(default)]
    pub(super) url: String,
    /// The number of the attempt this job waits for, from 1.
    pub(super) attempt: u32,
    /// Unix milliseconds of queueing: the age limit counts from here.
    pub(super) first_ms: u64,
    /// What to render and send; absent in jobs of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) message: Option<Message>,
}

/// The unrendered postback of a [`Job`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Message {
    /// The partner's `postback_url` when the status changed.
    pub(super) template: String,
    /// GET with macros, or signed JSON POST.
    #[serde(default)]
    pub(super) format: PostbackFormat,
    /// The partner's `webhook_secret` when the status changed (JSON
    /// only): the job is signed as the partner expected when it was
    /// queued.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(super) secret: String,
    pub(super) facts: Facts,
    /// The click's sub-ids once known (looked up, given by the caller, or
    /// given up on); `None`: not looked up yet.
    #[serde(default)]
    pub(super) subs: Option<Subs>,
    /// Looks for the click so far: its waits back off.
    #[serde(default)]
    pub(super) lookups: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversions::deliver::render::render;
    use crate::conversions::deliver::tests_support::announcement;
    use crate::template::{Template, POSTBACK_MACROS};

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
    fn a_message_without_format_secret_or_reason_reads_as_a_get() {
        let json = r#"{"id":1,"conversion_id":"c","partner_id":3,"url":"u","attempt":1,"first_ms":5,"message":{"template":"https://p.example/","facts":{"conversion_id":"c","partner_id":3,"offer_id":9,"click_id":"","order_id":"","event":"sale","payout":"1.5","currency":"USD","status":"approved","at_ms":5},"subs":null}}"#;
        let job: Job = serde_json::from_str(json).unwrap();
        let m = job.message.unwrap();
        assert_eq!((m.format, m.secret.as_str()), (PostbackFormat::Get, ""));
        assert_eq!((m.facts.reason.as_str(), m.lookups), ("", 0));
    }
}
