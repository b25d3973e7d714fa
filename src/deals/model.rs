//! A deal, its JSON forms and their validation, and the prospect keys a
//! conversion is matched by. Pure: storage lives in [`super::store`].

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::conversions::params::MAX_ID_BYTES;
use crate::validation::FieldError;

/// Longest company name, in characters.
pub const MAX_COMPANY_CHARS: usize = 200;
/// Longest notes, in characters.
pub const MAX_NOTES_CHARS: usize = 2000;
/// Longest rejection reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// Longest domain, in bytes (DNS's limit).
pub const MAX_DOMAIN_BYTES: usize = 253;

/// Domains of public mailbox providers: every customer with such an
/// address shares the domain, so a deal on one would claim strangers.
/// A deal for a customer at one of these names the `customer_id` instead.
const PUBLIC_MAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "ymail.com",
    "hotmail.com",
    "outlook.com",
    "live.com",
    "msn.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "aol.com",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "proton.me",
    "protonmail.com",
    "yandex.ru",
    "mail.ru",
    "qq.com",
    "163.com",
    "zoho.com",
    "fastmail.com",
];

/// Where a deal stands, as stored: `expired` is never stored, it is an
/// approved deal read after its protection ended ([`Deal::as_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DealStatus {
    /// Registered, waiting for an admin.
    Pending,
    /// Approved: the partner holds the prospect until `protected_until`.
    Approved,
    /// Rejected by an admin, with a reason.
    Rejected,
    /// Approved, and the protection has ended.
    Expired,
}

impl DealStatus {
    /// The name used in JSON and filters.
    pub fn as_str(self) -> &'static str {
        match self {
            DealStatus::Pending => "pending",
            DealStatus::Approved => "approved",
            DealStatus::Rejected => "rejected",
            DealStatus::Expired => "expired",
        }
    }

    /// The status named `s`.
    pub fn parse(s: &str) -> Option<DealStatus> {
        [
            DealStatus::Pending,
            DealStatus::Approved,
            DealStatus::Rejected,
            DealStatus::Expired,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// A partner's registered prospect for one offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Deal {
    /// Assigned by the service.
    pub id: u64,
    /// The partner who registered it, credited once it is approved.
    pub partner_id: u64,
    /// The offer the prospect would buy.
    pub offer_id: u64,
    /// The prospect's company.
    pub company: String,
    /// The merchant's customer id of the prospect: a conversion naming it
    /// is matched.
    pub customer_id: Option<String>,
    /// The prospect's email domain, lower-case: a conversion whose
    /// `customer_email` is at this domain is matched.
    pub domain: Option<String>,
    /// What the partner expects the deal to be worth, in `currency`.
    #[serde(with = "rust_decimal::serde::str_option")]
    #[schema(value_type = Option<String>, example = "12000.00")]
    pub expected_value: Option<Decimal>,
    /// The offer's currency when the deal was registered.
    pub currency: String,
    /// The partner's notes.
    pub notes: Option<String>,
    /// pending, approved, rejected, or expired (approved, protection over).
    pub status: DealStatus,
    /// RFC 3339 registration time.
    pub created_at: String,
    /// RFC 3339 time of the approval or rejection.
    pub decided_at: Option<String>,
    /// RFC 3339 end of the protection (approved deals).
    pub protected_until: Option<String>,
    /// Why it was rejected.
    pub rejection_reason: Option<String>,
}

/// A deal as a partner registers it (`POST /partner/v1/deals`): at least
/// one of `customer_id`, `domain` and `contact_email`, which a conversion
/// can be matched by.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DealRequest {
    /// See [`Deal::offer_id`].
    pub offer_id: u64,
    /// See [`Deal::company`].
    pub company: String,
    /// See [`Deal::customer_id`]: at most 128 bytes.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// See [`Deal::domain`]; e.g. `acme.com`.
    #[serde(default)]
    pub domain: Option<String>,
    /// The prospect's contact address: only its domain is kept (as
    /// `domain` when that is not given); the address itself is not stored.
    #[serde(default)]
    pub contact_email: Option<String>,
    /// See [`Deal::expected_value`]: a decimal string such as `"12000.00"`.
    #[serde(default, with = "rust_decimal::serde::str_option")]
    #[schema(value_type = Option<String>, example = "12000.00")]
    pub expected_value: Option<Decimal>,
    /// See [`Deal::notes`]: at most 2000 characters.
    #[serde(default)]
    pub notes: Option<String>,
}

/// `POST /api/v1/deals`: an admin registers a deal on a partner's behalf.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDeal {
    /// The partner the deal is for.
    pub partner_id: u64,
    /// See [`DealRequest::offer_id`].
    pub offer_id: u64,
    /// See [`DealRequest::company`].
    pub company: String,
    /// See [`DealRequest::customer_id`].
    #[serde(default)]
    pub customer_id: Option<String>,
    /// See [`DealRequest::domain`].
    #[serde(default)]
    pub domain: Option<String>,
    /// See [`DealRequest::contact_email`].
    #[serde(default)]
    pub contact_email: Option<String>,
    /// See [`DealRequest::expected_value`].
    #[serde(default, with = "rust_decimal::serde::str_option")]
    #[schema(value_type = Option<String>, example = "12000.00")]
    pub expected_value: Option<Decimal>,
    /// See [`DealRequest::notes`].
    #[serde(default)]
    pub notes: Option<String>,
}

impl NewDeal {
    /// The partner and the registration.
    pub fn split(self) -> (u64, DealRequest) {
        (
            self.partner_id,
            DealRequest {
                offer_id: self.offer_id,
                company: self.company,
                customer_id: self.customer_id,
                domain: self.domain,
                contact_email: self.contact_email,
                expected_value: self.expected_value,
                notes: self.notes,
            },
        )
    }
}

/// `POST /api/v1/deals/{id}/reject`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    /// Why, told to the partner: 1 to 500 characters.
    pub reason: String,
}

/// What a conversion can be matched by: the normalised customer id and
/// email domain of a deal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProspectKey<'a> {
    /// A merchant's customer id, trimmed (case is kept: merchants' ids may
    /// differ by case alone).
    Customer(&'a str),
    /// An email domain, lower-case.
    Domain(&'a str),
}

impl ProspectKey<'_> {
    /// The Redis key of this prospect on `offer_id`, under `prefix`;
    /// length-prefixed so no customer id can forge a domain's key.
    pub fn redis_key(&self, prefix: &str, offer_id: u64) -> String {
        match self {
            ProspectKey::Customer(c) => {
                format!("{prefix}deal-prospect:{offer_id}:c:{}:{c}", c.len())
            }
            ProspectKey::Domain(d) => format!("{prefix}deal-prospect:{offer_id}:d:{d}"),
        }
    }

    /// What the key is, for a conflict's message and field.
    pub fn describe(&self) -> (&'static str, String) {
        match self {
            ProspectKey::Customer(c) => ("customer_id", format!("customer {c:?}")),
            ProspectKey::Domain(d) => ("domain", format!("domain {d}")),
        }
    }
}

impl Deal {
    /// A new pending deal of `partner_id` from `req`, validated, on an
    /// offer of `currency`.
    pub fn create(
        id: u64,
        partner_id: u64,
        req: DealRequest,
        currency: &str,
        now: String,
    ) -> Result<Deal, FieldError> {
        let company = req.company.trim().to_string();
        check_text("company", &company, MAX_COMPANY_CHARS)?;
        let customer_id = req
            .customer_id
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty());
        if let Some(c) = &customer_id {
            if c.len() > MAX_ID_BYTES || c.chars().any(char::is_control) {
                return Err(FieldError::new(
                    "customer_id",
                    format!("must be at most {MAX_ID_BYTES} bytes with no control characters"),
                ));
            }
        }
        let domain = match req
            .domain
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            Some(d) => Some(checked_domain("domain", d)?),
            None => None,
        };
        let email_domain = match req
            .contact_email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            Some(e) => Some(email_domain("contact_email", e)?),
            None => None,
        };
        let domain = domain.or(email_domain);
        if customer_id.is_none() && domain.is_none() {
            return Err(FieldError::new(
                "customer_id",
                "give customer_id, domain or contact_email: a conversion is matched by one of them",
            ));
        }
        if let Some(d) = &domain {
            if PUBLIC_MAIL_DOMAINS.contains(&d.as_str()) {
                let field = if req.domain.is_some() {
                    "domain"
                } else {
                    "contact_email"
                };
                return Err(FieldError::new(
                    field,
                    format!("{d} is a public mailbox provider shared by unrelated customers: give the prospect's customer_id instead"),
                ));
            }
        }
        if let Some(v) = &req.expected_value {
            if v.is_sign_negative() || v.scale() > 4 || *v >= Decimal::from(10_000_000_000i64) {
                return Err(FieldError::new(
                    "expected_value",
                    "must be a non-negative decimal string below 10000000000 with at most 4 places, such as \"12000.00\"",
                ));
            }
        }
        let notes = req
            .notes
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty());
        if let Some(n) = &notes {
            if n.chars().count() > MAX_NOTES_CHARS {
                return Err(FieldError::new(
                    "notes",
                    format!("must be at most {MAX_NOTES_CHARS} characters"),
                ));
            }
        }
        Ok(Deal {
            id,
            partner_id,
            offer_id: req.offer_id,
            company,
            customer_id,
            domain,
            expected_value: req.expected_value,
            currency: currency.to_string(),
            notes,
            status: DealStatus::Pending,
            created_at: now,
            decided_at: None,
            protected_until: None,
            rejection_reason: None,
        })
    }

    /// The prospect keys a conversion can match this deal by.
    pub fn keys(&self) -> Vec<ProspectKey<'_>> {
        let mut keys = Vec::with_capacity(2);
        if let Some(c) = &self.customer_id {
            keys.push(ProspectKey::Customer(c));
        }
        if let Some(d) = &self.domain {
            keys.push(ProspectKey::Domain(d));
        }
        keys
    }

    /// Unix milliseconds when the protection ends, for an approved deal.
    pub fn protected_until_ms(&self) -> Option<u64> {
        let t = humantime::parse_rfc3339(self.protected_until.as_deref()?).ok()?;
        let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
        u64::try_from(d.as_millis()).ok()
    }

    /// This deal as it stands at `now_ms`: an approved deal whose
    /// protection ended is `expired`.
    pub fn as_of(mut self, now_ms: u64) -> Deal {
        if self.status == DealStatus::Approved
            && self.protected_until_ms().is_some_and(|end| end < now_ms)
        {
            self.status = DealStatus::Expired;
        }
        self
    }
}

/// Checks a reason given with a rejection.
pub fn check_reason(reason: &str) -> Result<String, FieldError> {
    let r = reason.trim();
    check_text("reason", r, MAX_REASON_CHARS)?;
    Ok(r.to_string())
}

fn check_text(field: &str, v: &str, max_chars: usize) -> Result<(), FieldError> {
    if v.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if v.chars().count() > max_chars {
        return Err(FieldError::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(FieldError::new(field, "must not hold control characters"));
    }
    Ok(())
}

/// The domain of an email address, lower-case and checked, naming `field`
/// when it is not an address. Only the domain leaves this function: the
/// mailbox is personal data nothing here needs.
pub fn email_domain(field: &str, email: &str) -> Result<String, FieldError> {
    if email.len() > 254 {
        return Err(FieldError::new(field, "must be at most 254 bytes"));
    }
    match email.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && !local.chars().any(char::is_control) => {
            checked_domain(field, domain)
        }
        _ => Err(FieldError::new(
            field,
            "must be an email address such as buyer@acme.com",
        )),
    }
}

/// `d` lower-cased without a trailing dot, when it is a DNS name of at
/// least two labels of `[a-z0-9-]` (Unicode names are given in their
/// `xn--` form).
pub fn checked_domain(field: &str, d: &str) -> Result<String, FieldError> {
    let d = d.trim_end_matches('.').to_ascii_lowercase();
    let labels_ok = d.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if d.len() > MAX_DOMAIN_BYTES || !labels_ok || !d.contains('.') {
        return Err(FieldError::new(
            field,
            "must hold a domain name such as acme.com (letters, digits and `-`, with a dot)",
        ));
    }
    Ok(d)
}
