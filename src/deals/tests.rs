//! Validation and normalisation of deal registrations.

use super::model::{checked_domain, email_domain};
use super::*;

fn request(json: &str) -> DealRequest {
    serde_json::from_str(json).expect("test requests parse")
}

/// `extra` JSON fields after `offer_id` and `company` → the error's field,
/// or the stored (customer id, domain).
fn check(extra: &str, expected: Result<(Option<&str>, Option<&str>), &str>) {
    let req = request(&format!(r#"{{"offer_id":3,"company":" Acme "{extra}}}"#));
    let got = Deal::create(1, 7, req, "EUR", "now".into())
        .map(|d| (d.customer_id, d.domain))
        .map_err(|e| e.field);
    let expected = expected
        .map(|(c, d)| (c.map(str::to_string), d.map(str::to_string)))
        .map_err(str::to_string);
    assert_eq!(got, expected, "{extra}");
}

#[test]
fn registrations() {
    check(r#","customer_id":" c-1 ""#, Ok((Some("c-1"), None)));
    check(r#","domain":"Acme.COM.""#, Ok((None, Some("acme.com"))));
    check(
        r#","contact_email":"Buyer@Sales.Acme.com""#,
        Ok((None, Some("sales.acme.com"))),
    );
    check(
        r#","domain":"acme.com","contact_email":"b@other.org""#,
        Ok((None, Some("acme.com"))),
    );
    check(
        r#","customer_id":"C1","contact_email":"b@acme.com","expected_value":"12000.50","notes":"call in May""#,
        Ok((Some("C1"), Some("acme.com"))),
    );
    check("", Err("customer_id"));
    check(r#","customer_id":"  ""#, Err("customer_id"));
    check(
        &format!(r#","customer_id":"{}""#, "x".repeat(129)),
        Err("customer_id"),
    );
    check(r#","customer_id":"a\nb""#, Err("customer_id"));
    check(r#","domain":"acme""#, Err("domain"));
    check(r#","domain":"ac me.com""#, Err("domain"));
    check(r#","domain":"-acme.com""#, Err("domain"));
    check(r#","domain":"gmail.com""#, Err("domain"));
    check(r#","contact_email":"bob@gmail.com""#, Err("contact_email"));
    check(r#","contact_email":"not-an-address""#, Err("contact_email"));
    check(r#","contact_email":"@acme.com""#, Err("contact_email"));
    check(
        r#","customer_id":"c","expected_value":"-1""#,
        Err("expected_value"),
    );
    check(
        r#","customer_id":"c","expected_value":"1.00001""#,
        Err("expected_value"),
    );
    check(
        r#","customer_id":"c","expected_value":"10000000000""#,
        Err("expected_value"),
    );
    check(
        &format!(r#","customer_id":"c","notes":"{}""#, "n".repeat(2001)),
        Err("notes"),
    );
    let req = request(r#"{"offer_id":3,"company":"  ","customer_id":"c"}"#);
    assert_eq!(
        Deal::create(1, 7, req, "EUR", "now".into())
            .unwrap_err()
            .field,
        "company"
    );
}

#[test]
fn money_and_unknown_fields_are_refused_at_parse() {
    for bad in [
        r#"{"offer_id":3,"company":"A","customer_id":"c","expected_value":12000.5}"#,
        r#"{"offer_id":3,"company":"A","customer_id":"c","expected_value":"12k"}"#,
        r#"{"offer_id":3,"company":"A","customer_id":"c","partner_id":9}"#,
        r#"{"company":"A","customer_id":"c"}"#,
    ] {
        assert!(serde_json::from_str::<DealRequest>(bad).is_err(), "{bad}");
    }
    let d = Deal::create(
        1,
        7,
        request(r#"{"offer_id":3,"company":"A","customer_id":"c","expected_value":"12000.50"}"#),
        "EUR",
        "now".into(),
    )
    .unwrap();
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(
        (&json["expected_value"], &json["currency"], &json["status"]),
        (&"12000.50".into(), &"EUR".into(), &"pending".into())
    );
    assert!(
        json.get("contact_email").is_none(),
        "the address is not kept"
    );
}

#[test]
fn an_approved_deal_expires_after_its_protection() {
    let mut d = Deal::create(
        1,
        7,
        request(r#"{"offer_id":3,"company":"A","customer_id":"c"}"#),
        "EUR",
        "now".into(),
    )
    .unwrap();
    d.status = DealStatus::Approved;
    d.protected_until = Some("2025-01-01T00:00:00Z".into());
    let end = 1_735_689_600_000;
    assert_eq!(d.protected_until_ms(), Some(end));
    assert_eq!(d.clone().as_of(end).status, DealStatus::Approved);
    assert_eq!(d.clone().as_of(end + 1).status, DealStatus::Expired);
    d.status = DealStatus::Pending;
    assert_eq!(d.as_of(end + 1).status, DealStatus::Pending);
}

#[test]
fn prospect_keys_cannot_be_forged() {
    let c = ProspectKey::Customer("d:acme.com").redis_key("te:", 3);
    let d = ProspectKey::Domain("acme.com").redis_key("te:", 3);
    assert_ne!(c, d);
    assert_eq!(d, "te:deal-prospect:3:d:acme.com");
    assert_eq!(
        checked_domain("domain", "xn--bcher-kva.example").unwrap(),
        "xn--bcher-kva.example"
    );
    assert_eq!(email_domain("e", "a@b@acme.com").unwrap(), "acme.com");
}
