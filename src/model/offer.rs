//! Offers: what a merchant pays for and where clicks land, their JSON
//! forms (create, patch) and their validation. Pure.

use super::*;

/// A merchant offer: where clicks land and what a conversion pays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Offer {
    /// Assigned by the service.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// Landing URL, with macros.
    pub url: String,
    /// The partner's payout per conversion.
    pub payout: Payout,
    /// Payouts per event name, instead of `payout` (e.g. `lead` pays CPL
    /// 1.00 while `sale` pays CPS 10 %).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payout_by_event: Vec<EventPayout>,
    /// Payouts for partners of a tier (optionally for one event).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payout_by_tier: Vec<TierPayout>,
    /// Payouts for single partners (optionally for one event): the most
    /// specific rule wins, and each conversion records which one applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payout_by_partner: Vec<PartnerPayout>,
    /// Which sales of a customer bound to a click pay: the first only (the
    /// default), those of the first N months, or all.
    #[serde(default)]
    pub recurring: Recurring,
    /// ISO 4217 code.
    pub currency: String,
    /// Conversions later than this after the click are rejected.
    pub attribution_window_days: u32,
    /// Days an approved conversion is held before it is payable (the
    /// merchant's refund window), counted from its UTC day; 0 to 365.
    #[serde(default = "default_hold")]
    pub hold_days: u32,
    /// Shared secret of the server-to-server postback.
    pub postback_token: String,
    /// Key of the `X-Trackedge-Signature` HMAC, the alternative to the
    /// token (generated; empty in offers created before it existed).
    #[serde(default)]
    pub signing_secret: String,
    /// Where pixel conversions land: a pixel cannot keep a secret, so
    /// `pending` (reason `pixel_untrusted`) unless the offer trusts it.
    #[serde(default)]
    pub pixel_status: PixelStatus,
    /// Conversions sooner than this after their click are rejected
    /// (`too_fast`); 0 turns the check off.
    #[serde(default)]
    pub min_click_seconds: u32,
    /// Every conversion lands `pending` (`manual_review`) for a person to
    /// approve.
    #[serde(default)]
    pub manual_review: bool,
    /// Conversion caps, counted per UTC day and month across all nodes.
    #[serde(default)]
    pub caps: OfferCaps,
    /// Addresses allowed to send postbacks, on top of the token or
    /// signature; empty: any.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub postback_allowlist: Vec<ipnet::IpNet>,
    /// Which partners may promote it: `public` (every active partner, the
    /// default), `approval` (those an admin approved on request) or
    /// `private` (those an admin granted access).
    #[serde(default)]
    pub visibility: Visibility,
    /// Active or paused.
    #[serde(default)]
    pub status: Status,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// Days an approved deal protects its prospect for its partner, from
    /// approval; `None`: [`DEFAULT_DEAL_PROTECTION_DAYS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deal_protection_days: Option<u32>,
    /// Who takes a conversion claimed by a click of one partner and a deal
    /// of another: `deal_wins` (the default) or `click_wins`.
    #[serde(default)]
    pub deal_conflict: crate::attribution::DealConflict,
}

/// How long an approved deal protects its prospect when the offer does not
/// say, in days.
pub const DEFAULT_DEAL_PROTECTION_DAYS: u32 = 90;

/// How many conversions an offer takes, per UTC day and month, in all and
/// per partner; absent: no cap. Only conversions that would count
/// (approved or pending) use up a cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OfferCaps {
    /// Conversions per UTC day, all partners together.
    pub daily: Option<u32>,
    /// Conversions per UTC month, all partners together.
    pub monthly: Option<u32>,
    /// Conversions per UTC day of one partner.
    pub partner_daily: Option<u32>,
    /// Conversions per UTC month of one partner.
    pub partner_monthly: Option<u32>,
    /// Over a cap: `reject` (the default) or `pending`, reason `cap_reached`.
    pub over: crate::attribution::CapAction,
}

/// Where an offer's pixel conversions land.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PixelStatus {
    /// `pending` with reason `pixel_untrusted`: a person or a postback
    /// confirms them.
    #[default]
    Pending,
    /// `approved`, like an authenticated postback.
    Approved,
}

/// `POST /api/v1/offers`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOffer {
    /// See [`Offer::name`].
    pub name: String,
    /// See [`Offer::url`].
    pub url: String,
    /// See [`Offer::payout`].
    pub payout: Payout,
    /// See [`Offer::payout_by_event`].
    #[serde(default)]
    pub payout_by_event: Vec<EventPayout>,
    /// See [`Offer::payout_by_tier`].
    #[serde(default)]
    pub payout_by_tier: Vec<TierPayout>,
    /// See [`Offer::payout_by_partner`].
    #[serde(default)]
    pub payout_by_partner: Vec<PartnerPayout>,
    /// See [`Offer::recurring`].
    #[serde(default)]
    pub recurring: Recurring,
    /// See [`Offer::currency`]; default USD.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// See [`Offer::attribution_window_days`]; default 30.
    #[serde(default = "default_window")]
    pub attribution_window_days: u32,
    /// See [`Offer::hold_days`]; default 30.
    #[serde(default = "default_hold")]
    pub hold_days: u32,
    /// See [`Offer::pixel_status`]; default `pending`.
    #[serde(default)]
    pub pixel_status: PixelStatus,
    /// See [`Offer::min_click_seconds`]; default 0 (off).
    #[serde(default)]
    pub min_click_seconds: u32,
    /// See [`Offer::manual_review`]; default false.
    #[serde(default)]
    pub manual_review: bool,
    /// See [`Offer::caps`]; default none.
    #[serde(default)]
    pub caps: OfferCaps,
    /// See [`Offer::postback_allowlist`]; default empty (any address).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub postback_allowlist: Vec<ipnet::IpNet>,
    /// See [`Offer::visibility`]; default `public`.
    #[serde(default)]
    pub visibility: Visibility,
    /// See [`Offer::status`].
    #[serde(default)]
    pub status: Status,
    /// See [`Offer::deal_protection_days`]; default 90.
    #[serde(default)]
    pub deal_protection_days: Option<u32>,
    /// See [`Offer::deal_conflict`]; default `deal_wins`.
    #[serde(default)]
    pub deal_conflict: crate::attribution::DealConflict,
}

/// `PATCH /api/v1/offers/{id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfferPatch {
    /// New display name.
    name: Option<String>,
    /// New landing URL, with macros.
    url: Option<String>,
    /// New payout.
    payout: Option<Payout>,
    /// New payouts per event (replaces the list).
    payout_by_event: Option<Vec<EventPayout>>,
    /// New payouts per tier (replaces the list).
    payout_by_tier: Option<Vec<TierPayout>>,
    /// New payouts per partner (replaces the list).
    payout_by_partner: Option<Vec<PartnerPayout>>,
    /// New recurring rule.
    recurring: Option<Recurring>,
    /// New ISO 4217 currency code.
    currency: Option<String>,
    /// New attribution window, in days.
    attribution_window_days: Option<u32>,
    /// New hold before approved conversions are payable, in days.
    hold_days: Option<u32>,
    /// Where pixel conversions land.
    pixel_status: Option<PixelStatus>,
    /// New minimum click-to-conversion time, in seconds (0: off).
    min_click_seconds: Option<u32>,
    /// Whether every conversion waits for a person.
    manual_review: Option<bool>,
    /// New caps (replace the old ones).
    caps: Option<OfferCaps>,
    /// New postback allowlist (empty: any address).
    #[schema(value_type = Option<Vec<String>>)]
    postback_allowlist: Option<Vec<ipnet::IpNet>>,
    /// Who may promote it: `public`, `approval` or `private`. Partners
    /// losing access by the change have their links on it paused.
    visibility: Option<Visibility>,
    /// Active or paused.
    status: Option<Status>,
    /// New deal protection, in days (for deals approved from now on).
    deal_protection_days: Option<u32>,
    /// New deal conflict rule.
    deal_conflict: Option<crate::attribution::DealConflict>,
}

fn default_currency() -> String {
    "USD".into()
}

fn default_window() -> u32 {
    30
}

/// An offer's hold when it names none: the refund window most programs
/// use. Also the hold of offers stored before `hold_days` existed, and of
/// conversions whose offer was deleted.
pub const DEFAULT_HOLD_DAYS: u32 = 30;

fn default_hold() -> u32 {
    DEFAULT_HOLD_DAYS
}

impl Offer {
    /// A new offer from a create request.
    pub fn create(
        id: u64,
        req: NewOffer,
        secrets: GeneratedSecrets,
        now: String,
    ) -> Result<Offer, FieldError> {
        let o = Offer {
            id,
            name: req.name.trim().to_string(),
            url: req.url,
            payout: req.payout,
            payout_by_event: req.payout_by_event,
            payout_by_tier: req.payout_by_tier,
            payout_by_partner: req.payout_by_partner,
            recurring: req.recurring,
            currency: req.currency,
            attribution_window_days: req.attribution_window_days,
            hold_days: req.hold_days,
            postback_token: secrets.postback_token,
            signing_secret: secrets.signing_secret,
            pixel_status: req.pixel_status,
            min_click_seconds: req.min_click_seconds,
            manual_review: req.manual_review,
            caps: req.caps,
            postback_allowlist: req.postback_allowlist,
            visibility: req.visibility,
            status: req.status,
            created_at: now,
            deal_protection_days: req.deal_protection_days,
            deal_conflict: req.deal_conflict,
        };
        o.validate()?;
        Ok(o)
    }

    /// This offer with `patch` applied.
    pub fn patched(&self, patch: OfferPatch) -> Result<Offer, FieldError> {
        let mut o = self.clone();
        if let Some(v) = patch.name {
            o.name = v.trim().to_string();
        }
        if let Some(v) = patch.url {
            o.url = v;
        }
        if let Some(v) = patch.payout {
            o.payout = v;
        }
        if let Some(v) = patch.payout_by_event {
            o.payout_by_event = v;
        }
        if let Some(v) = patch.payout_by_tier {
            o.payout_by_tier = v;
        }
        if let Some(v) = patch.payout_by_partner {
            o.payout_by_partner = v;
        }
        if let Some(v) = patch.recurring {
            o.recurring = v;
        }
        if let Some(v) = patch.currency {
            o.currency = v;
        }
        if let Some(v) = patch.attribution_window_days {
            o.attribution_window_days = v;
        }
        if let Some(v) = patch.hold_days {
            o.hold_days = v;
        }
        if let Some(v) = patch.pixel_status {
            o.pixel_status = v;
        }
        if let Some(v) = patch.min_click_seconds {
            o.min_click_seconds = v;
        }
        if let Some(v) = patch.manual_review {
            o.manual_review = v;
        }
        if let Some(v) = patch.caps {
            o.caps = v;
        }
        if let Some(v) = patch.postback_allowlist {
            o.postback_allowlist = v;
        }
        if let Some(v) = patch.visibility {
            o.visibility = v;
        }
        if let Some(v) = patch.status {
            o.status = v;
        }
        if let Some(v) = patch.deal_protection_days {
            o.deal_protection_days = Some(v);
        }
        if let Some(v) = patch.deal_conflict {
            o.deal_conflict = v;
        }
        o.validate()?;
        Ok(o)
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), FieldError> {
        check_name(&self.name)?;
        self.template()?;
        match &self.payout {
            Payout::Cpa { amount } | Payout::Cpl { amount } => {
                check_money("payout.amount", amount, Decimal::from(1_000_000_000))?
            }
            Payout::Cps { percent } => check_money("payout.percent", percent, Decimal::from(100))?,
        }
        if !is_currency(&self.currency) {
            return Err(FieldError::new(
                "currency",
                "must be an ISO 4217 currency code in use, such as USD",
            ));
        }
        if !(1..=3650).contains(&self.attribution_window_days) {
            return Err(FieldError::new(
                "attribution_window_days",
                "must be between 1 and 3650",
            ));
        }
        if self.hold_days > 365 {
            return Err(FieldError::new("hold_days", "must be between 0 and 365"));
        }
        self.payout_terms().validate().map_err(|e| {
            let field = match e.field.split_once(['.', '[']) {
                Some((head, _)) => {
                    let renamed = match head {
                        "default" => "payout",
                        "by_event" => "payout_by_event",
                        "by_tier" => "payout_by_tier",
                        "by_partner" => "payout_by_partner",
                        other => other,
                    };
                    format!("{renamed}{}", &e.field[head.len()..])
                }
                None => e.field.clone(),
            };
            FieldError::new(&field, e.message)
        })?;
        // The window is the longest a click can wait; a minimum beyond it
        // would reject every conversion.
        if u64::from(self.min_click_seconds) >= u64::from(self.attribution_window_days) * 86_400 {
            return Err(FieldError::new(
                "min_click_seconds",
                "must be shorter than the attribution window",
            ));
        }
        if let Some(days) = self.deal_protection_days {
            if !(1..=3650).contains(&days) {
                return Err(FieldError::new(
                    "deal_protection_days",
                    "must be between 1 and 3650",
                ));
            }
        }
        if self.postback_allowlist.len() > 256 {
            return Err(FieldError::new(
                "postback_allowlist",
                "must hold at most 256 networks",
            ));
        }
        Ok(())
    }

    /// Everything this offer says about what its conversions pay.
    pub fn payout_terms(&self) -> PayoutTerms {
        PayoutTerms {
            default: self.payout.clone(),
            by_event: self.payout_by_event.clone(),
            by_tier: self.payout_by_tier.clone(),
            by_partner: self.payout_by_partner.clone(),
            recurring: self.recurring,
        }
    }

    /// Days an approved deal of this offer protects its prospect.
    pub fn deal_protection_days(&self) -> u32 {
        self.deal_protection_days
            .unwrap_or(DEFAULT_DEAL_PROTECTION_DAYS)
    }

    /// The landing URL template, parsed.
    pub fn template(&self) -> Result<Template, FieldError> {
        Template::parse(&self.url, OFFER_MACROS).map_err(|e| template_error("url", e))
    }
}
