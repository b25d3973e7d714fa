//! Status changes, the listing's parameters, conversion ids and how a
//! version is shown.

use super::change::{next_version, MAX_REASON_LEN};
use super::ledger::Stored;
use super::models::StatusChange;
use super::params::{plausible_id, ListFilter};
use crate::attribution::Status;
use crate::events::Money;

fn stored(status: &str, attribution: &str) -> Stored {
    Stored {
        conversion_id: "0000AbC".into(),
        ts: 1_790_000_100,
        click_id: "c".into(),
        click_ts: 1_790_000_000,
        link_id: 3,
        partner_id: 1,
        offer_id: 2,
        order_id: "o-1".into(),
        event: "sale".into(),
        amount: Money::from_scaled(200_000).unwrap(),
        currency: "EUR".into(),
        payout: Money::from_scaled(50_000).unwrap(),
        payout_currency: "USD".into(),
        status: status.into(),
        reason: "x".into(),
        customer_id: "cu".into(),
        attribution: attribution.into(),
        payout_rule: "offer".into(),
        deal_id: 0,
        displaced_partner_id: 0,
        source: "postback".into(),
        ip: "1.2.3.4".into(),
        version: 4,
    }
}

/// `(status, reason, payout in ten-thousandths, payout_rule)` of the
/// version a change appends, or the error's `(http status, code, field)`.
type Expected = Result<
    (&'static str, &'static str, i64, &'static str),
    (u16, &'static str, Option<&'static str>),
>;

fn check(from: &str, attribution: &str, body: &str, expected: Expected) {
    let current = stored(from, attribution);
    let got = super::super::error::parse::<StatusChange>(body.as_bytes())
        .and_then(|c| c.check().map(|()| c))
        .and_then(|c| next_version(&current, &c));
    let got = match got {
        Ok(n) => {
            // Everything else is carried over, one version up.
            let carried = Stored {
                status: current.status.clone(),
                reason: current.reason.clone(),
                payout: current.payout,
                payout_rule: current.payout_rule.clone(),
                version: current.version,
                ..n.clone()
            };
            assert_eq!(carried, current, "{from} {body}");
            assert_eq!(n.version, 5);
            Ok((n.status, n.reason, n.payout.scaled(), n.payout_rule))
        }
        Err(e) => Err((e.status.as_u16(), e.detail.code, e.detail.field)),
    };
    let expected = expected
        .map(|(s, r, p, rule)| (s.into(), r.into(), p, rule.into()))
        .map_err(|(st, c, f)| (st, c.to_string(), f.map(str::to_string)));
    assert_eq!(got, expected, "{from} {attribution} {body}");
}

#[test]
fn status_changes() {
    let conflict = Err((409, "invalid_transition", Some("status")));
    let bad_reason = Err((400, "invalid", Some("reason")));
    let cases: &[(&str, &str, &str, Expected)] = &[
        // pending → approved: payout kept, reason ok (or the deal's).
        (
            "pending",
            "click",
            r#"{"status":"approved"}"#,
            Ok(("approved", "ok", 50_000, "offer")),
        ),
        (
            "pending",
            "deal",
            r#"{"status":"approved"}"#,
            Ok(("approved", "deal_registration", 50_000, "offer")),
        ),
        (
            "pending",
            "click",
            r#"{"status":"approved","reason":"ok"}"#,
            Ok(("approved", "ok", 50_000, "offer")),
        ),
        (
            "pending",
            "click",
            r#"{"status":"approved","reason":"looks fine"}"#,
            bad_reason,
        ),
        (
            "pending",
            "click",
            r#"{"status":"approved","reason":"bot_click"}"#,
            bad_reason,
        ),
        // pending → rejected: pays nothing.
        (
            "pending",
            "click",
            r#"{"status":"rejected"}"#,
            Ok(("rejected", "manual_review", 0, "")),
        ),
        (
            "pending",
            "click",
            r#"{"status":"rejected","reason":"bot_click"}"#,
            Ok(("rejected", "bot_click", 0, "")),
        ),
        (
            "pending",
            "click",
            r#"{"status":"rejected","reason":"ok"}"#,
            bad_reason,
        ),
        // approved → reversed: the payout clawed back, any reason.
        (
            "approved",
            "click",
            r#"{"status":"reversed","reason":"refund #42"}"#,
            Ok(("reversed", "refund #42", 50_000, "offer")),
        ),
        ("approved", "click", r#"{"status":"reversed"}"#, bad_reason),
        (
            "approved",
            "click",
            r#"{"status":"reversed","reason":""}"#,
            bad_reason,
        ),
        // Every other move.
        (
            "pending",
            "click",
            r#"{"status":"reversed","reason":"r"}"#,
            conflict,
        ),
        ("approved", "click", r#"{"status":"approved"}"#, conflict),
        ("approved", "click", r#"{"status":"rejected"}"#, conflict),
        ("rejected", "click", r#"{"status":"approved"}"#, conflict),
        (
            "reversed",
            "click",
            r#"{"status":"reversed","reason":"again"}"#,
            conflict,
        ),
        ("duplicate", "click", r#"{"status":"approved"}"#, conflict),
        ("mystery", "click", r#"{"status":"approved"}"#, conflict),
        // Statuses a change cannot set, and bad bodies.
        (
            "approved",
            "click",
            r#"{"status":"pending"}"#,
            Err((400, "invalid", Some("status"))),
        ),
        (
            "pending",
            "click",
            r#"{"status":"duplicate"}"#,
            Err((400, "invalid", Some("status"))),
        ),
        (
            "pending",
            "click",
            r#"{"reason":"ok"}"#,
            Err((400, "invalid", Some("status"))),
        ),
        (
            "pending",
            "click",
            r#"{"status":"approved","note":"x"}"#,
            Err((400, "invalid", Some("note"))),
        ),
    ];
    for (from, attribution, body, expected) in cases {
        check(from, attribution, body, *expected);
    }
    let long = "r".repeat(MAX_REASON_LEN + 1);
    check(
        "approved",
        "click",
        &format!(r#"{{"status":"reversed","reason":"{long}"}}"#),
        bad_reason,
    );
}

fn check_filter(query: &str, expected: Result<ListFilter, &str>) {
    let got = ListFilter::parse(Some(query)).map_err(|e| e.detail.field.unwrap_or_default());
    assert_eq!(got, expected.map_err(str::to_string), "{query}");
}

#[test]
fn list_parameters() {
    let all = ListFilter {
        limit: 100,
        cursor: String::new(),
        partner_id: None,
        offer_id: None,
        status: None,
        from: 0,
        to: u32::MAX,
    };
    check_filter("", Ok(all.clone()));
    check_filter(
        "limit=5&cursor=0000AbC&partner_id=3&offer_id=0&status=pending",
        Ok(ListFilter {
            limit: 5,
            cursor: "0000AbC".into(),
            partner_id: Some(3),
            offer_id: Some(0),
            status: Some(Status::Pending),
            ..all.clone()
        }),
    );
    // 2026-01-31 is 1_769_817_600.
    for (q, from, to) in [
        (
            "from=2026-01-31&to=2026-01-31",
            1_769_817_600,
            1_769_904_000,
        ),
        ("from=2026-01-31T12:00:00Z", 1_769_860_800, u32::MAX),
        ("from=2026-01-31T12:00:00.5Z", 1_769_860_800, u32::MAX),
        ("from=2026-01-31T14:00:00%2B02:00", 1_769_860_800, u32::MAX),
        ("from=2026-01-31T10:30:00-01:30", 1_769_860_800, u32::MAX),
        ("to=1970-01-01T00:00:00Z", 0, 0),
    ] {
        check_filter(
            q,
            Ok(ListFilter {
                from,
                to,
                ..all.clone()
            }),
        );
    }
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("cursor=a%20b", "cursor"),
        ("partner_id=-1", "partner_id"),
        ("offer_id=x", "offer_id"),
        ("status=paid", "status"),
        ("from=yesterday", "from"),
        ("from=2026-02-30", "from"),
        ("from=2026-01-31T12:00:00", "from"),
        ("to=1969-12-31T23:59:59Z", "to"),
        ("to=2200-01-01", "to"),
        ("from=2026-02-01&to=2026-01-01", "to"),
    ] {
        check_filter(q, Err(field));
    }
}

#[test]
fn ids() {
    for (id, ok) in [
        ("0000AbC", true),
        ("cv_0A2b5nkX12I0sfAI8Qi4Oy2LGb50Bi", true),
        ("", false),
        ("a'b", false),
        ("a b", false),
        (&"a".repeat(65), false),
    ] {
        assert_eq!(plausible_id(id), ok, "{id}");
    }
}

#[test]
fn views_show_money_as_decimal_strings_and_times_in_utc() {
    let mut s = stored("approved", "click");
    s.ts = 1_769_860_800;
    let v = serde_json::to_value(s.clone().view()).unwrap();
    assert_eq!(v["amount"], "20.0000");
    assert_eq!(v["payout"], "5.0000");
    assert_eq!(v["ts"], "2026-01-31T12:00:00Z");
    assert_eq!(v["click_ts"], "2026-09-21T14:13:20Z");
    assert!(v.get("ip").is_none());
    s.click_ts = 0;
    assert_eq!(
        serde_json::to_value(s.view()).unwrap()["click_ts"],
        serde_json::Value::Null
    );
}
