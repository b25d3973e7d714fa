//! Partner applications (`POST /apply` on the public listener): reading
//! one from a JSON or form body, checking every field, and the partner it
//! becomes: `applied`, or `active` at once when its kind is auto-approved.
//! Pure; the atomic email claim and the write are the catalog's
//! (`catalog::applications`).

use std::collections::BTreeMap;

use crate::model::{check_name, email_key, FieldError, Partner, PartnerKind, PartnerStatus};

/// Largest application body, in bytes: the longest fields below fit with
/// room to spare, a larger body is not a form a person filled in (`413`).
pub const MAX_BODY_BYTES: usize = 32 * 1024;

/// Longest email address (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Longest website URL.
pub const MAX_WEBSITE_CHARS: usize = 2048;
/// Longest "how I promote" text.
pub const MAX_PROMOTION_CHARS: usize = 4000;

/// The fields an application may hold.
const FIELDS: &[&str] = &["name", "email", "kind", "website", "promotion"];

/// A checked application, ready to become a partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    /// Display name, trimmed.
    pub name: String,
    /// Contact email, trimmed, as given.
    pub email: String,
    /// Affiliate, referral or reseller.
    pub kind: PartnerKind,
    /// Website, an http(s) URL, if given.
    pub website: Option<String>,
    /// How the applicant promotes, if given.
    pub promotion: Option<String>,
}

impl Application {
    /// Reads an application from a request body: JSON when `content_type`
    /// says so (or the body starts with `{`), else a form. Every problem
    /// names its field.
    pub fn from_body(content_type: Option<&str>, body: &[u8]) -> Result<Application, FieldError> {
        let is_json = content_type
            .map(|t| {
                t.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            })
            .unwrap_or_else(|| body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'));
        let fields = if is_json {
            json_fields(body)?
        } else {
            form_fields(body)?
        };
        Application::from_fields(fields)
    }

    /// Checks named text fields and builds the application.
    fn from_fields(mut f: BTreeMap<String, String>) -> Result<Application, FieldError> {
        if let Some(k) = f.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(FieldError::new(k, "is not a field of an application"));
        }
        let mut take = |k: &str| f.remove(k).map(|v| v.trim().to_string());
        let required = |k: &str, v: Option<String>| {
            v.filter(|v| !v.is_empty())
                .ok_or_else(|| FieldError::new(k, "is required"))
        };
        let name = required("name", take("name"))?;
        check_name(&name)?;
        let email = required("email", take("email"))?;
        check_email(&email)?;
        let kind = match required("kind", take("kind"))?.as_str() {
            "affiliate" => PartnerKind::Affiliate,
            "referral" => PartnerKind::Referral,
            "reseller" => PartnerKind::Reseller,
            _ => {
                return Err(FieldError::new(
                    "kind",
                    "must be affiliate, referral or reseller",
                ))
            }
        };
        let website = take("website").filter(|w| !w.is_empty());
        if let Some(w) = &website {
            check_website(w)?;
        }
        let promotion = take("promotion").filter(|p| !p.is_empty());
        if let Some(p) = &promotion {
            check_text("promotion", p, MAX_PROMOTION_CHARS)?;
        }
        Ok(Application {
            name,
            email,
            kind,
            website,
            promotion,
        })
    }

    /// The key of the email's claim: one application per address, so
    /// `Ann@Example.com` and `ann@example.com` are one.
    pub fn email_key(&self) -> String {
        email_key(&self.email)
    }

    /// The partner this application makes: `applied`, or `active` (the
    /// move recorded as `auto_approve: <kind>`) when its kind is in
    /// `auto_approve`.
    pub fn into_partner(
        self,
        id: u64,
        webhook_secret: String,
        now: String,
        auto_approve: &[PartnerKind],
    ) -> Partner {
        let kind = self.kind;
        let applied = Partner {
            id,
            name: self.name,
            kind,
            tier: None,
            postback_url: None,
            postback_format: Default::default(),
            webhook_secret,
            status: PartnerStatus::Applied,
            created_at: now.clone(),
            link_pauses: Vec::new(),
            tier_history: Vec::new(),
            tier_below_since: None,
            email: Some(self.email),
            website: self.website,
            promotion: self.promotion,
            status_changes: Vec::new(),
        };
        if !auto_approve.contains(&kind) {
            return applied;
        }
        let reason = format!("auto_approve: {}", kind_name(kind));
        applied
            .moved(PartnerStatus::Active, &reason, &now)
            .expect("applied -> active is in the table of moves")
    }
}

fn kind_name(kind: PartnerKind) -> &'static str {
    match kind {
        PartnerKind::Affiliate => "affiliate",
        PartnerKind::Referral => "referral",
        PartnerKind::Reseller => "reseller",
    }
}

/// A JSON object's fields; each value must be a string (or null: absent).
fn json_fields(body: &[u8]) -> Result<BTreeMap<String, String>, FieldError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| FieldError::new("body", format!("is not valid JSON: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(FieldError::new("body", "must be a JSON object"));
    };
    let mut out = BTreeMap::new();
    for (k, v) in map {
        match v {
            serde_json::Value::String(s) => {
                out.insert(k, s);
            }
            serde_json::Value::Null => {}
            _ => return Err(FieldError::new(&k, "must be a string")),
        }
    }
    Ok(out)
}

/// A form body's fields; a field given twice is refused, not guessed at.
fn form_fields(body: &[u8]) -> Result<BTreeMap<String, String>, FieldError> {
    let mut out = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(FieldError::new(&k, "is given more than once"));
        }
    }
    Ok(out)
}

/// A plausible email address: one `@`, a dotted domain, no spaces,
/// control characters or the punctuation of display names and lists.
fn check_email(email: &str) -> Result<(), FieldError> {
    if email.chars().count() > MAX_EMAIL_CHARS {
        return Err(FieldError::new(
            "email",
            format!("must be at most {MAX_EMAIL_CHARS} characters"),
        ));
    }
    let bad = |c: char| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"".contains(c);
    let plausible = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && local.len() <= 64
                && !domain.contains('@')
                && domain.contains('.')
                && domain.split('.').all(|label| !label.is_empty())
                && !email.chars().any(bad)
        }
        None => false,
    };
    if plausible {
        Ok(())
    } else {
        Err(FieldError::new(
            "email",
            "must be an email address such as ann@example.com",
        ))
    }
}

fn check_website(url: &str) -> Result<(), FieldError> {
    if url.chars().count() > MAX_WEBSITE_CHARS {
        return Err(FieldError::new(
            "website",
            format!("must be at most {MAX_WEBSITE_CHARS} characters"),
        ));
    }
    let ok = !url.chars().any(|c| c.is_whitespace() || c.is_control())
        && url::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            "website",
            "must be an http(s) URL such as https://example.com",
        ))
    }
}

/// Free text: at most `max` characters, no control characters but line
/// breaks and tabs.
fn check_text(field: &str, text: &str, max: usize) -> Result<(), FieldError> {
    if text.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(FieldError::new(
            field,
            "must not hold control characters other than line breaks and tabs",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::StatusChange;

    /// Parses `body` (JSON when `json`); answers the application or the
    /// field named in the error.
    fn check(json: bool, body: &str, expected: Result<Application, &str>) {
        let ct = if json {
            "application/json"
        } else {
            "application/x-www-form-urlencoded"
        };
        let got = Application::from_body(Some(ct), body.as_bytes()).map_err(|e| e.field);
        assert_eq!(got, expected.map_err(str::to_string), "{body}");
    }

    fn ann() -> Application {
        Application {
            name: "Ann".into(),
            email: "Ann@Example.com".into(),
            kind: PartnerKind::Affiliate,
            website: None,
            promotion: None,
        }
    }

    #[test]
    fn reading_applications() {
        let full = Application {
            website: Some("https://ann.example.com/blog".into()),
            promotion: Some("a cooking blog\nand a newsletter".into()),
            ..ann()
        };
        check(
            true,
            r#"{"name":" Ann ","email":"Ann@Example.com","kind":"affiliate"}"#,
            Ok(ann()),
        );
        check(
            true,
            r#"{"name":"Ann","email":"Ann@Example.com","kind":"affiliate","website":"https://ann.example.com/blog","promotion":"a cooking blog\nand a newsletter"}"#,
            Ok(full.clone()),
        );
        check(
            false,
            "name=Ann&email=Ann%40Example.com&kind=affiliate&website=https%3A%2F%2Fann.example.com%2Fblog&promotion=a+cooking+blog%0Aand+a+newsletter",
            Ok(full),
        );
        // Empty optional fields and nulls are absent.
        check(
            true,
            r#"{"name":"Ann","email":"Ann@Example.com","kind":"affiliate","website":"","promotion":null}"#,
            Ok(ann()),
        );
        let long = |n: usize| "x".repeat(n);
        let cases: Vec<(bool, String, &str)> = vec![
            (true, "[1]".into(), "body"),
            (true, "{\"name\":".into(), "body"),
            (
                true,
                r#"{"email":"a@b.co","kind":"referral"}"#.into(),
                "name",
            ),
            (true, r#"{"name":"A","kind":"referral"}"#.into(), "email"),
            (true, r#"{"name":"A","email":"a@b.co"}"#.into(), "kind"),
            (
                true,
                r#"{"name":"A","email":"a@b.co","kind":"vendor"}"#.into(),
                "kind",
            ),
            (
                true,
                r#"{"name":"A","email":"a@b.co","kind":"referral","tier":"1"}"#.into(),
                "tier",
            ),
            (
                true,
                r#"{"name":5,"email":"a@b.co","kind":"referral"}"#.into(),
                "name",
            ),
            (
                true,
                format!(
                    r#"{{"name":"{}","email":"a@b.co","kind":"referral"}}"#,
                    long(201)
                ),
                "name",
            ),
            (
                true,
                r#"{"name":"A\u0007","email":"a@b.co","kind":"referral"}"#.into(),
                "name",
            ),
            (
                false,
                "name=A&name=B&email=a%40b.co&kind=referral".into(),
                "name",
            ),
            (
                false,
                "name=A&email=a%40b.co&kind=referral&website=ftp%3A%2F%2Fx.com".into(),
                "website",
            ),
            (
                false,
                format!(
                    "name=A&email=a%40b.co&kind=referral&website=https%3A%2F%2F{}.com",
                    long(2048)
                ),
                "website",
            ),
            (
                false,
                format!(
                    "name=A&email=a%40b.co&kind=referral&promotion={}",
                    long(4001)
                ),
                "promotion",
            ),
            (
                false,
                "name=A&email=a%40b.co&kind=referral&promotion=a%00b".into(),
                "promotion",
            ),
        ];
        for (json, body, field) in &cases {
            check(*json, body, Err(field));
        }
    }

    #[test]
    fn email_addresses() {
        let ok = ["a@b.co", "ann.lee+shop@mail.example.com", "Ü@bücher.de"];
        let bad = [
            "ann",
            "@example.com",
            "ann@",
            "ann@example",
            "ann@@example.com",
            "a@b@c.com",
            "ann@example..com",
            "ann lee@example.com",
            "Ann <ann@example.com>",
            "a@b.co,c@d.co",
        ];
        for e in ok {
            assert_eq!(check_email(e), Ok(()), "{e}");
        }
        for e in bad {
            assert_eq!(check_email(e).unwrap_err().field, "email", "{e}");
        }
        let long = format!("{}@{}.com", "a".repeat(64), "b".repeat(190));
        assert_eq!(check_email(&long).unwrap_err().field, "email");
        assert_eq!(email_key(" Ann@Example.COM "), "ann@example.com");
    }

    #[test]
    fn json_is_recognised_without_a_content_type() {
        let a = Application::from_body(
            None,
            br#" {"name":"Ann","email":"Ann@Example.com","kind":"affiliate"}"#,
        );
        assert_eq!(a, Ok(ann()));
        let a = Application::from_body(None, b"name=Ann&email=Ann%40Example.com&kind=affiliate");
        assert_eq!(a, Ok(ann()));
    }

    #[test]
    fn auto_approval_by_kind() {
        use PartnerKind::*;
        use PartnerStatus::*;
        // (kind, auto-approved kinds, expected status, recorded reason)
        let cases = [
            (Affiliate, vec![], Applied, None),
            (Referral, vec![], Applied, None),
            (
                Referral,
                vec![Referral],
                Active,
                Some("auto_approve: referral"),
            ),
            (Affiliate, vec![Referral], Applied, None),
            (
                Reseller,
                vec![Affiliate, Reseller],
                Active,
                Some("auto_approve: reseller"),
            ),
        ];
        for (kind, auto, status, reason) in cases {
            let app = Application { kind, ..ann() };
            let p = app.into_partner(7, "s".into(), "2030-01-01T00:00:00Z".into(), &auto);
            assert_eq!(p.status, status, "{kind:?} with {auto:?}");
            let expected: Vec<StatusChange> = reason
                .into_iter()
                .map(|r| StatusChange {
                    at: "2030-01-01T00:00:00Z".into(),
                    from: Applied,
                    to: Active,
                    reason: r.into(),
                })
                .collect();
            assert_eq!(p.status_changes, expected);
            assert_eq!(p.email.as_deref(), Some("Ann@Example.com"));
            assert_eq!(p.id, 7);
        }
    }
}
