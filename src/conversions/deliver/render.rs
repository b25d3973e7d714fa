//! Rendering, pure: a job's facts and its click's sub-ids into the URL
//! (each value URL-encoded into the partner's template) and, for JSON
//! postbacks, the body.

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use super::job::{Facts, Subs};
use crate::model::PostbackFormat;
use crate::template::{Template, POSTBACK_MACROS};

/// Indexes of `{sub1}`…`{sub5}` in [`POSTBACK_MACROS`].
pub(super) const SUB_MACROS: std::ops::Range<usize> = 9..14;
const _: () = assert!(POSTBACK_MACROS.len() == SUB_MACROS.end);

/// True when a postback of `format` to `template` tells the click's
/// sub-ids (a JSON body always does), so the click must be looked up
/// first.
pub(super) fn needs_subs(template: &Template, format: PostbackFormat) -> bool {
    format == PostbackFormat::Json || SUB_MACROS.into_iter().any(|i| template.uses(i))
}

/// `template` with the values of `facts` and `subs`, each URL-encoded.
pub(super) fn render(template: &Template, facts: &Facts, subs: &Subs) -> String {
    let payout = facts.payout.to_string();
    let offer = facts.offer_id.to_string();
    let partner = facts.partner_id.to_string();
    // In the order of POSTBACK_MACROS.
    let values = [
        facts.click_id.as_str(),
        &facts.conversion_id,
        &facts.order_id,
        &payout,
        &facts.currency,
        &facts.status,
        &facts.event,
        &offer,
        &partner,
        &subs[0],
        &subs[1],
        &subs[2],
        &subs[3],
        &subs[4],
    ];
    let mut out = String::with_capacity(256);
    template.render_into(&values, &mut out);
    out
}

/// The body of a JSON postback.
#[derive(Serialize)]
struct WebhookBody<'a> {
    conversion_id: &'a str,
    status: &'a str,
    reason: &'a str,
    event: &'a str,
    order_id: &'a str,
    /// A decimal string, never a float.
    payout: String,
    currency: &'a str,
    offer_id: u64,
    partner_id: u64,
    click_id: &'a str,
    sub1: &'a str,
    sub2: &'a str,
    sub3: &'a str,
    sub4: &'a str,
    sub5: &'a str,
    /// RFC 3339 time of the status change.
    timestamp: String,
}

/// The JSON body telling `facts` and the click's `subs`: every macro's
/// value (absent ones empty), the reason, and the status change's time.
pub(super) fn webhook_body(facts: &Facts, subs: &Subs) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(facts.at_ms);
    let body = WebhookBody {
        conversion_id: &facts.conversion_id,
        status: &facts.status,
        reason: &facts.reason,
        event: &facts.event,
        order_id: &facts.order_id,
        payout: facts.payout.to_string(),
        currency: &facts.currency,
        offer_id: facts.offer_id,
        partner_id: facts.partner_id,
        click_id: &facts.click_id,
        sub1: &subs[0],
        sub2: &subs[1],
        sub3: &subs[2],
        sub4: &subs[3],
        sub5: &subs[4],
        timestamp: humantime::format_rfc3339_seconds(at).to_string(),
    };
    serde_json::to_string(&body).expect("strings and numbers serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::Status;
    use crate::conversions::deliver::tests_support::announcement;

    fn check_render(template: &str, subs: [&str; 5], expected: &str) {
        let t = Template::parse(template, POSTBACK_MACROS).unwrap();
        let facts = Facts::of(&announcement(), 0);
        assert_eq!(
            render(&t, &facts, &subs.map(String::from)),
            expected,
            "{template}"
        );
    }

    #[test]
    fn macros_are_rendered_encoded() {
        check_render(
            "https://p.example/pb?c={click_id}&v={conversion_id}&o={order_id}&p={payout}&cur={currency}&st={status}&e={event}&of={offer_id}&pa={partner_id}&s1={sub1}&s5={sub5}",
            ["s1", "", "", "", "ü"],
            "https://p.example/pb?c=abc&v=cv1&o=A%201%26x%3D2&p=5.00&cur=USD&st=approved&e=sale&of=9&pa=3&s1=s1&s5=%C3%BC",
        );
        check_render(
            "https://p.example/{sub2}/{sub3}?x={sub4}",
            ["", "a b", "c/d", "e&f=g", ""],
            "https://p.example/a%20b/c%2Fd?x=e%26f%3Dg",
        );
        check_render(
            "https://p.example/pb?s={sub1}",
            [""; 5],
            "https://p.example/pb?s=",
        );
    }

    #[test]
    fn only_urls_naming_a_sub_id_and_json_bodies_need_the_click() {
        use PostbackFormat::{Get, Json};
        for (template, format, needs) in [
            ("https://p.example/pb?c={click_id}&st={status}", Get, false),
            ("https://p.example/pb", Get, false),
            ("https://p.example/pb?s={sub1}", Get, true),
            ("https://p.example/{sub5}", Get, true),
            ("https://p.example/pb?a={partner_id}&s3={sub3}", Get, true),
            ("https://p.example/pb", Json, true),
            ("https://p.example/pb?s={sub2}", Json, true),
        ] {
            let t = Template::parse(template, POSTBACK_MACROS).unwrap();
            assert_eq!(needs_subs(&t, format), needs, "{template} {format:?}");
        }
        assert_eq!(POSTBACK_MACROS[SUB_MACROS.start], "sub1");
        assert_eq!(POSTBACK_MACROS[SUB_MACROS.end - 1], "sub5");
    }

    #[test]
    fn a_json_body_tells_every_fact_with_money_as_a_string() {
        let mut a = announcement();
        a.status = Status::Reversed;
        a.reason = "refund \"late\"";
        let subs = ["s1", "", "", "", "ü"].map(String::from);
        // 2024-05-01T12:00:00Z, and a millisecond more (dropped).
        let body = webhook_body(&Facts::of(&a, 1_714_564_800_001), &subs);
        assert_eq!(
            body,
            r#"{"conversion_id":"cv1","status":"reversed","reason":"refund \"late\"","event":"sale","order_id":"A 1&x=2","payout":"5.00","currency":"USD","offer_id":9,"partner_id":3,"click_id":"abc","sub1":"s1","sub2":"","sub3":"","sub4":"","sub5":"ü","timestamp":"2024-05-01T12:00:00Z"}"#
        );
    }
}
