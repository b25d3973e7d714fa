//! Validation of partners, offers, payouts and link codes.

use super::*;

fn offer_json(extra: &str) -> String {
    format!(
        r#"{{"name":"o","url":"https://m.com/?c={{click_id}}","payout":{{"model":"cpa","amount":"5.00"}}{extra}}}"#
    )
}

fn check_offer(extra: &str, expected_field: Option<&str>) {
    let parsed: Result<NewOffer, _> = serde_json::from_str(&offer_json(extra));
    let result = parsed
        .map_err(|e| FieldError::new("json", e.to_string()))
        .and_then(|req| {
            let secrets = GeneratedSecrets {
                postback_token: "t".into(),
                signing_secret: "s".into(),
            };
            Offer::create(1, req, secrets, "now".into())
        });
    match (result, expected_field) {
        (Ok(_), None) => {}
        (Err(e), Some(f)) => assert_eq!(e.field, f, "{extra}: {e}"),
        (r, f) => panic!("{extra}: got {r:?}, expected error on {f:?}"),
    }
}

#[test]
fn offer_validation() {
    let cases: &[(&str, Option<&str>)] = &[
        ("", None),
        (r#","currency":"EUR","attribution_window_days":7"#, None),
        (r#","currency":"eur""#, Some("currency")),
        (r#","currency":"UDS""#, Some("currency")),
        (r#","currency":"EURO""#, Some("currency")),
        (
            r#","attribution_window_days":0"#,
            Some("attribution_window_days"),
        ),
        (
            r#","attribution_window_days":4000"#,
            Some("attribution_window_days"),
        ),
        (r#","attribution_window_days":-1"#, Some("json")),
        (r#","hold_days":0"#, None),
        (r#","hold_days":365"#, None),
        (r#","hold_days":366"#, Some("hold_days")),
        (r#","hold_days":-1"#, Some("json")),
        (r#","bogus":1"#, Some("json")),
        (
            r#","pixel_status":"approved","min_click_seconds":5,"manual_review":true"#,
            None,
        ),
        (
            r#","postback_allowlist":["203.0.113.0/24","2001:db8::/32"]"#,
            None,
        ),
        (r#","pixel_status":"maybe""#, Some("json")),
        (r#","postback_allowlist":["not a network"]"#, Some("json")),
        (
            r#","attribution_window_days":1,"min_click_seconds":86400"#,
            Some("min_click_seconds"),
        ),
        (
            r#","attribution_window_days":1,"min_click_seconds":86399"#,
            None,
        ),
        (
            r#","payout_by_event":[{"event":"lead","payout":{"model":"cpl","amount":"1.00"}}],"payout_by_tier":[{"tier":"gold","payout":{"model":"cpa","amount":"7.50"}}],"payout_by_partner":[{"partner_id":4,"payout":{"model":"cps","percent":"12"}}],"recurring":{"kind":"first_months","months":12}"#,
            None,
        ),
        (
            r#","payout_by_event":[{"event":"lead","payout":{"model":"cpl","amount":"-1"}}]"#,
            Some("payout_by_event[0].payout.amount"),
        ),
        (
            r#","payout_by_tier":[{"tier":"gold","payout":{"model":"cps","percent":"101"}}]"#,
            Some("payout_by_tier[0].payout.percent"),
        ),
        (
            r#","payout_by_event":[{"event":"Lead!","payout":{"model":"cpl","amount":"1"}}]"#,
            Some("payout_by_event[0].event"),
        ),
    ];
    for (extra, field) in cases {
        check_offer(extra, *field);
    }
}

#[test]
fn payout_forms() {
    let ok = [
        r#"{"model":"cpa","amount":"5.00"}"#,
        r#"{"model":"cps","percent":"10"}"#,
        r#"{"model":"cpl","amount":"1.2345"}"#,
    ];
    for p in ok {
        let payout: Payout = serde_json::from_str(p).unwrap();
        let back = serde_json::to_string(&payout).unwrap();
        assert_eq!(serde_json::from_str::<Payout>(&back).unwrap(), payout);
    }
    let refused = [
        r#"{"model":"cpa","amount":5.0}"#,
        r#"{"model":"cpa"}"#,
        r#"{"model":"cpx","amount":"1"}"#,
        r#"{"model":"cps","amount":"1"}"#,
        r#"{"model":"cpa","amount":"abc"}"#,
    ];
    for p in refused {
        assert!(serde_json::from_str::<Payout>(p).is_err(), "{p} accepted");
    }
    let bad_values: &[(&str, &str)] = &[
        (r#"{"model":"cpa","amount":"-1"}"#, "payout.amount"),
        (r#"{"model":"cps","percent":"100.5"}"#, "payout.percent"),
        (r#"{"model":"cpa","amount":"1.00001"}"#, "payout.amount"),
    ];
    for (p, field) in bad_values {
        let payout: Payout = serde_json::from_str(p).unwrap();
        let o = Offer {
            id: 1,
            name: "o".into(),
            url: "https://m.com/".into(),
            payout,
            currency: "USD".into(),
            attribution_window_days: 30,
            hold_days: 30,
            postback_token: "t".into(),
            signing_secret: String::new(),
            payout_by_event: Vec::new(),
            payout_by_tier: Vec::new(),
            payout_by_partner: Vec::new(),
            recurring: Default::default(),
            pixel_status: Default::default(),
            min_click_seconds: 0,
            manual_review: false,
            caps: Default::default(),
            postback_allowlist: Vec::new(),
            visibility: Default::default(),
            status: Status::Active,
            created_at: "now".into(),
            deal_protection_days: None,
            deal_conflict: Default::default(),
        };
        assert_eq!(o.validate().unwrap_err().field, *field);
    }
}

#[test]
fn partner_validation_and_patch() {
    let req: NewPartner =
        serde_json::from_str(r#"{"name":" Ann ","kind":"affiliate","tier":2}"#).unwrap();
    let p = Partner::create(1, req, "w".into(), "now".into()).unwrap();
    assert_eq!(p.name, "Ann");
    assert_eq!(p.tier.as_deref(), Some("2"));
    let patch: PartnerPatch =
        serde_json::from_str(r#"{"postback_url":"https://p.com/pb?c={click_id}&p={payout}"}"#)
            .unwrap();
    let p2 = p.patched(patch).unwrap();
    assert!(p2.postback_url.is_some());
    let bad: PartnerPatch =
        serde_json::from_str(r#"{"postback_url":"https://p.com/?x={sub9}"}"#).unwrap();
    assert_eq!(p2.patched(bad).unwrap_err().field, "postback_url");
    let empty: PartnerPatch = serde_json::from_str(r#"{"name":"  "}"#).unwrap();
    assert_eq!(p2.patched(empty).unwrap_err().field, "name");
    assert!(serde_json::from_str::<NewPartner>(r#"{"name":"a","kind":"vendor"}"#).is_err());
}

#[test]
fn postbacks_are_get_unless_the_partner_asks_for_json() {
    let req: NewPartner = serde_json::from_str(r#"{"name":"a","kind":"affiliate"}"#).unwrap();
    let p = Partner::create(1, req, "w".into(), "now".into()).unwrap();
    assert_eq!(p.postback_format, PostbackFormat::Get);
    assert_eq!(p.webhook_secret, "w");
    let json: PartnerPatch = serde_json::from_str(r#"{"postback_format":"json"}"#).unwrap();
    assert_eq!(
        p.patched(json).unwrap().postback_format,
        PostbackFormat::Json
    );
    let req: NewPartner =
        serde_json::from_str(r#"{"name":"a","kind":"affiliate","postback_format":"json"}"#)
            .unwrap();
    assert_eq!(req.postback_format, PostbackFormat::Json);
    for bad in [r#"{"postback_format":"xml"}"#, r#"{"webhook_secret":"x"}"#] {
        assert!(serde_json::from_str::<PartnerPatch>(bad).is_err(), "{bad}");
    }
    // Partners stored before the setting existed read as `get`.
    let old: Partner =
        serde_json::from_str(r#"{"id":1,"name":"a","kind":"affiliate","created_at":"t"}"#).unwrap();
    assert_eq!(
        (old.postback_format, old.webhook_secret.as_str()),
        (PostbackFormat::Get, "")
    );
}

#[test]
fn codes() {
    for _ in 0..1000 {
        let c = random_code();
        assert_eq!(c.len(), 8, "{c}");
        assert!(check_code(&c).is_ok());
    }
    assert_eq!(check_code("pixel").unwrap_err().field, "code");
    assert_eq!(check_code("Healthz").unwrap_err().field, "code");
    assert_eq!(check_code("a-b").unwrap_err().field, "code");
    assert!(check_code("summer24").is_ok());
}

#[test]
fn hold_days_defaults_to_thirty_and_patches_within_range() {
    let req: NewOffer = serde_json::from_str(&offer_json("")).unwrap();
    let secrets = GeneratedSecrets {
        postback_token: "t".into(),
        signing_secret: "s".into(),
    };
    let offer = Offer::create(1, req, secrets, "now".into()).unwrap();
    assert_eq!(offer.hold_days, 30);
    // An offer stored before the field existed reads with the default.
    let mut stored = serde_json::to_value(&offer).unwrap();
    stored.as_object_mut().unwrap().remove("hold_days");
    let old: Offer = serde_json::from_value(stored).unwrap();
    assert_eq!(old.hold_days, 30);
    let patch = |body: &str| serde_json::from_str::<OfferPatch>(body).unwrap();
    assert_eq!(
        offer
            .patched(patch(r#"{"hold_days":0}"#))
            .unwrap()
            .hold_days,
        0
    );
    assert_eq!(
        offer
            .patched(patch(r#"{"hold_days":400}"#))
            .unwrap_err()
            .field,
        "hold_days"
    );
}

#[test]
fn deal_settings_of_an_offer() {
    let req: NewOffer = serde_json::from_str(
        r#"{"name":"o","url":"https://m.com/","payout":{"model":"cpa","amount":"1"}}"#,
    )
    .unwrap();
    let secrets = || GeneratedSecrets {
        postback_token: "t".into(),
        signing_secret: "s".into(),
    };
    let o = Offer::create(1, req, secrets(), "now".into()).unwrap();
    assert_eq!(
        (o.deal_protection_days(), o.deal_conflict),
        (90, crate::attribution::DealConflict::DealWins)
    );
    let patch: OfferPatch =
        serde_json::from_str(r#"{"deal_protection_days":30,"deal_conflict":"click_wins"}"#)
            .unwrap();
    let o2 = o.patched(patch).unwrap();
    assert_eq!(
        (o2.deal_protection_days(), o2.deal_conflict),
        (30, crate::attribution::DealConflict::ClickWins)
    );
    for bad in [0, 3651] {
        let patch: OfferPatch =
            serde_json::from_str(&format!(r#"{{"deal_protection_days":{bad}}}"#)).unwrap();
        assert_eq!(
            o.patched(patch).unwrap_err().field,
            "deal_protection_days",
            "{bad}"
        );
    }
    assert!(serde_json::from_str::<OfferPatch>(r#"{"deal_conflict":"both"}"#).is_err());
    // Offers stored before deals existed read with the defaults.
    let json = serde_json::to_value(&o).unwrap();
    assert!(json.get("deal_protection_days").is_none(), "{json}");
}
