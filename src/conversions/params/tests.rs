use super::*;

const CID: &str = "0A2b5nkX12I0sfAI8Qi4Oy2LGb50BiqH";

/// `query` → the error's parameter, or `Ok(())` when accepted.
fn check(query: &str, expected: Result<(), &str>) {
    let got = from_query(query).map(|_| ()).map_err(|e| e.param);
    assert_eq!(got, expected.map_err(str::to_string), "{query}");
}

#[test]
fn query_parameters() {
    let ok = Ok(());
    check("", ok);
    check(&format!("click_id={CID}&order_id=A-1&amount=19.90&currency=EUR&event=sale&customer_id=c1&token=t"), ok);
    check("amount=0", ok);
    check("amount=12", ok);
    check("amount=12.3456", ok);
    check("amount=9999999999.9999", ok);
    check("event=lead", ok);
    check("event=trial.started-v2_1", ok);
    check(&format!("event={}", "a".repeat(64)), ok);
    check(&format!("order_id={}", "x".repeat(128)), ok);
    check("utm_source=x&cb=123", ok);
    check("amount=&currency=&order_id=", ok);
    check("amount=-1", Err("amount"));
    check("amount=1.23456", Err("amount"));
    check("amount=1e3", Err("amount"));
    check("amount=1,5", Err("amount"));
    check("amount=.5", Err("amount"));
    check("amount=5.", Err("amount"));
    check("amount=+5", Err("amount"));
    check("amount=NaN", Err("amount"));
    check("amount=10000000000", Err("amount"));
    check("amount=%201", Err("amount"));
    check("currency=usd", Err("currency"));
    check("currency=UDS", Err("currency"));
    check("currency=XAU", Err("currency"));
    check("event=Sale", Err("event"));
    check("event=a%20b", Err("event"));
    check(&format!("event={}", "a".repeat(65)), Err("event"));
    check(&format!("order_id={}", "x".repeat(129)), Err("order_id"));
    check(
        &format!("customer_id={}", "é".repeat(65)),
        Err("customer_id"),
    );
    check("order_id=a%0Ab", Err("order_id"));
    check("click_id=short", Err("click_id"));
    check(&format!("click_id={}", &CID[..31]), Err("click_id"));
    check(&format!("click_id={}-", &CID[..31]), Err("click_id"));
    check("order_id=1&order_id=2", Err("order_id"));
    check("amount=1&amount=1", Err("amount"));
    check("customer_email=buyer%40acme.com", ok);
    check("customer_email=not-an-address", Err("customer_email"));
    check("customer_email=a%40acme", Err("customer_email"));
    check(
        &format!("customer_email=a%40{}.com", "x".repeat(250)),
        Err("customer_email"),
    );
}

#[test]
fn only_the_customer_email_s_domain_is_kept() {
    let p = from_query("customer_email=Jane.Doe%40Sales.ACME.com&customer_id=c1").unwrap();
    assert_eq!(p.customer_domain.as_deref(), Some("sales.acme.com"));
    assert!(!format!("{p:?}").contains("Jane"), "{p:?}");
}

#[test]
fn values_are_read_as_given() {
    let p = from_query(&format!(
        "click_id={CID}&order_id=A%201&amount=19.90&customer_id=c%C3%A9&token=tok"
    ))
    .unwrap();
    assert_eq!(
        p,
        Params {
            click_id: Some(CID.into()),
            order_id: Some("A 1".into()),
            amount: Some("19.90".parse().unwrap()),
            currency: None,
            event: "sale".into(),
            customer_id: Some("cé".into()),
            token: Some("tok".into()),
            customer_domain: None,
        }
    );
    assert_eq!(p.amount.unwrap().to_string(), "19.90", "scale kept");
}

/// (content type, body) → the error's parameter, or the amount read.
fn check_body(content_type: Option<&str>, body: &str, expected: Result<Option<&str>, &str>) {
    let got = from_body(content_type, body.as_bytes())
        .map(|p| p.amount.map(|a| a.to_string()))
        .map_err(|e| e.param);
    let expected = expected
        .map(|a| a.map(str::to_string))
        .map_err(str::to_string);
    assert_eq!(got, expected, "{content_type:?} {body}");
}

#[test]
fn bodies() {
    let json = Some("application/json");
    let form = Some("application/x-www-form-urlencoded");
    check_body(
        json,
        r#"{"order_id":"A1","amount":"19.90"}"#,
        Ok(Some("19.90")),
    );
    // A JSON number is read from its text: 0.1 + 0.2 stays exact.
    check_body(json, r#"{"amount":19.90}"#, Ok(Some("19.90")));
    check_body(json, r#"{"amount":0.3000}"#, Ok(Some("0.3000")));
    check_body(
        Some("application/json; charset=utf-8"),
        r#"{"amount":1}"#,
        Ok(Some("1")),
    );
    check_body(json, r#"{"amount":null,"order_id":"x"}"#, Ok(None));
    check_body(json, r#"{"amount":1.5e3}"#, Err("amount"));
    check_body(json, r#"{"amount":-2}"#, Err("amount"));
    check_body(json, r#"{"order_id":["a"]}"#, Err("order_id"));
    check_body(json, r#"{"order_id":{"a":1}}"#, Err("order_id"));
    check_body(json, r#"{"order_id":true}"#, Err("order_id"));
    check_body(json, r#"{"order_id":"a","order_id":"b"}"#, Err("order_id"));
    check_body(json, "", Err("body"));
    check_body(json, "  ", Err("body"));
    check_body(json, "[1,2]", Err("body"));
    check_body(json, "\"x\"", Err("body"));
    check_body(json, "{", Err("body"));
    check_body(form, "order_id=A1&amount=5.00", Ok(Some("5.00")));
    check_body(None, "amount=5", Ok(Some("5")));
    check_body(form, "amount=5&amount=6", Err("amount"));
    check_body(Some("text/plain"), "amount=5", Err("content-type"));
    check_body(
        Some("multipart/form-data; boundary=x"),
        "",
        Err("content-type"),
    );
    let big = format!("order_id={}", "x".repeat(MAX_BODY_BYTES));
    check_body(form, &big, Err("body"));
}

#[test]
fn the_same_parameters_reach_the_same_values_in_every_form() {
    let query = from_query(&format!(
        "click_id={CID}&order_id=o-7&amount=42.5&currency=GBP&event=lead&customer_id=u9"
    ))
    .unwrap();
    let form = from_body(
        Some("application/x-www-form-urlencoded"),
        format!("click_id={CID}&order_id=o-7&amount=42.5&currency=GBP&event=lead&customer_id=u9")
            .as_bytes(),
    )
    .unwrap();
    let json = from_body(
        Some("application/json"),
        format!(
            r#"{{"click_id":"{CID}","order_id":"o-7","amount":42.5,"currency":"GBP","event":"lead","customer_id":"u9"}}"#
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(query, form);
    assert_eq!(query, json);
}
