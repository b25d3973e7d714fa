//! A conversion's parameters, read from a query string, a form body or a
//! JSON body with the same names and the same checks, so the pixel and the
//! three forms of the postback reach the same verdicts.
//!
//! Every refusal names the parameter at fault; nothing here panics on any
//! input. Checks: a parameter given twice is refused (which one would
//! count is not the caller's guess to make); `amount` is a non-negative
//! decimal with at most 4 places (JSON numbers are read from their text,
//! never through a float); `currency` is an ISO 4217 code in use; `event`
//! is up to 64 of `[a-z0-9_.-]` (default `sale`); `order_id` and
//! `customer_id` are at most 128 bytes; `click_id` is 32 base62
//! characters (whether it is genuine is the codec's question, later);
//! `customer_email` is an address, of which only the domain is kept (deal
//! registration matches domains; the mailbox is personal data nothing
//! needs, so it is dropped here and never recorded).

use std::borrow::Cow;
use std::collections::HashMap;

use rust_decimal::Decimal;
use serde_json::value::RawValue;

use crate::click_id::CLICK_ID_LEN;

/// Largest body a postback may carry.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest `order_id` or `customer_id`, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Longest event name.
pub const MAX_EVENT_LEN: usize = 64;
/// Largest amount accepted (`Decimal(18, 4)` holds 14 integer digits).
const MAX_AMOUNT: i64 = 10_000_000_000;

/// The parameters of one conversion, checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Params {
    /// The click, as the merchant stored it.
    pub click_id: Option<String>,
    /// The merchant's order id: repeated ones are duplicates.
    pub order_id: Option<String>,
    /// The sale amount.
    pub amount: Option<Decimal>,
    /// ISO 4217; `None` means the offer's currency.
    pub currency: Option<String>,
    /// `sale` unless given.
    pub event: String,
    /// The merchant's customer: binds to a click, or names the bound click.
    pub customer_id: Option<String>,
    /// The offer's postback token.
    pub token: Option<String>,
    /// The domain of `customer_email`, lower-case: matched against deals.
    /// The address itself is not kept.
    pub customer_domain: Option<String>,
}

/// A parameter that was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {message}")]
pub struct ParamError {
    /// The parameter's name (`body` for the body as a whole).
    pub param: String,
    /// What is wrong with it.
    pub message: String,
}

impl ParamError {
    fn new(param: &str, message: impl Into<String>) -> ParamError {
        ParamError {
            param: param.to_string(),
            message: message.into(),
        }
    }
}

/// The known parameters; others are ignored (merchants' platforms add
/// their own, and a pixel URL may carry cache busters).
const NAMES: [&str; 8] = [
    "click_id",
    "order_id",
    "amount",
    "currency",
    "event",
    "customer_id",
    "token",
    "customer_email",
];

/// Reads a query string (the pixel, `GET /postback`).
pub fn from_query(query: &str) -> Result<Params, ParamError> {
    from_pairs(form_urlencoded::parse(query.as_bytes()))
}

/// Reads a `POST /postback` body: a form (`application/x-www-form-urlencoded`)
/// or a JSON object (`application/json`), by its content type.
pub fn from_body(content_type: Option<&str>, body: &[u8]) -> Result<Params, ParamError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ParamError::new(
            "body",
            format!("must be at most {MAX_BODY_BYTES} bytes"),
        ));
    }
    let mime = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => from_json(body),
        "application/x-www-form-urlencoded" | "" => from_pairs(form_urlencoded::parse(body)),
        other => Err(ParamError::new(
            "content-type",
            format!(
                "{other:?} is not supported: send application/json or application/x-www-form-urlencoded"
            ),
        )),
    }
}

fn from_json(body: &[u8]) -> Result<Params, ParamError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ParamError::new("body", "is empty: expected a JSON object"));
    }
    // Raw values keep numbers as the merchant wrote them: an amount never
    // passes through a float.
    let map: HashMap<String, &RawValue> = serde_json::from_slice(body).map_err(|e| {
        ParamError::new(
            "body",
            format!("must be a JSON object of strings and numbers: {e}"),
        )
    })?;
    let mut pairs = Vec::with_capacity(map.len());
    for (name, raw) in map {
        let text = raw.get();
        let value = if text.starts_with('"') {
            serde_json::from_str::<String>(text)
                .map_err(|e| ParamError::new(&name, format!("is not a valid string: {e}")))?
        } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            text.to_string()
        } else if text == "null" {
            continue;
        } else {
            return Err(ParamError::new(&name, "must be a string or a number"));
        };
        pairs.push((Cow::Owned(name), Cow::Owned(value)));
    }
    // serde_json keeps the last of two equal keys; a duplicate is refused
    // like a repeated query parameter.
    if let Some(name) = repeated_json_key(body) {
        return Err(ParamError::new(&name, "is given more than once"));
    }
    from_pairs(pairs.into_iter())
}

/// The first top-level key a JSON object repeats, if any.
fn repeated_json_key(body: &[u8]) -> Option<String> {
    use serde::de::{Deserializer, MapAccess, Visitor};
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
            let mut seen = std::collections::HashSet::new();
            let mut repeated = None;
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<serde::de::IgnoredAny>()?;
                if !seen.insert(key.clone()) && repeated.is_none() {
                    repeated = Some(key);
                }
            }
            Ok(repeated)
        }
    }
    serde_json::Deserializer::from_slice(body)
        .deserialize_map(Keys)
        .ok()
        .flatten()
}

fn from_pairs<'a>(
    pairs: impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)>,
) -> Result<Params, ParamError> {
    let mut values: [Option<Cow<'a, str>>; NAMES.len()] = Default::default();
    for (name, value) in pairs {
        let Some(i) = NAMES.iter().position(|n| *n == name) else {
            continue;
        };
        if values[i].is_some() {
            return Err(ParamError::new(NAMES[i], "is given more than once"));
        }
        values[i] = Some(value);
    }
    let [click_id, order_id, amount, currency, event, customer_id, token, customer_email] = values;
    // An empty value is an absent one: templates of merchants' platforms
    // fill missing fields with nothing.
    let present = |v: Option<Cow<'a, str>>| v.filter(|s| !s.is_empty());
    Ok(Params {
        click_id: present(click_id)
            .map(|v| check_click_id(&v).map(|()| v.into_owned()))
            .transpose()?,
        order_id: present(order_id)
            .map(|v| check_id("order_id", v))
            .transpose()?,
        amount: present(amount).map(|v| parse_amount(&v)).transpose()?,
        currency: present(currency)
            .map(|v| check_currency(&v).map(|()| v.into_owned()))
            .transpose()?,
        event: match present(event) {
            Some(v) => check_event(&v).map(|()| v.into_owned())?,
            None => "sale".to_string(),
        },
        customer_id: present(customer_id)
            .map(|v| check_id("customer_id", v))
            .transpose()?,
        token: present(token).map(Cow::into_owned),
        customer_domain: present(customer_email)
            .map(|v| {
                crate::deals::model::email_domain("customer_email", &v)
                    .map_err(|e| ParamError::new("customer_email", e.message))
            })
            .transpose()?,
    })
}

fn check_click_id(v: &str) -> Result<(), ParamError> {
    if v.len() != CLICK_ID_LEN || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ParamError::new(
            "click_id",
            format!("must be {CLICK_ID_LEN} letters and digits, as the tracking link gave it"),
        ));
    }
    Ok(())
}

fn check_id(param: &str, v: Cow<'_, str>) -> Result<String, ParamError> {
    if v.len() > MAX_ID_BYTES {
        return Err(ParamError::new(
            param,
            format!("must be at most {MAX_ID_BYTES} bytes"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(ParamError::new(param, "must not hold control characters"));
    }
    Ok(v.into_owned())
}

fn parse_amount(v: &str) -> Result<Decimal, ParamError> {
    let bad = |m: &str| ParamError::new("amount", m);
    // Plain decimal notation only: no exponent, sign, spaces or `_`.
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if v.starts_with('-') {
        return Err(bad("must not be negative"));
    }
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("must be a decimal number such as 19.90"));
    }
    if v.contains('.') && (frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit())) {
        return Err(bad("must be a decimal number such as 19.90"));
    }
    if frac.len() > 4 {
        return Err(bad("must have at most 4 decimal places"));
    }
    let d: Decimal = v
        .parse()
        .map_err(|_| bad("must be a decimal number such as 19.90"))?;
    if d >= Decimal::from(MAX_AMOUNT) {
        return Err(bad("must be below 10000000000"));
    }
    Ok(d)
}

fn check_currency(v: &str) -> Result<(), ParamError> {
    if crate::currency::is_known(v) {
        Ok(())
    } else {
        Err(ParamError::new(
            "currency",
            format!("{v:?} is not an ISO 4217 currency code in use (such as USD or EUR)"),
        ))
    }
}

fn check_event(v: &str) -> Result<(), ParamError> {
    let ok = v.len() <= MAX_EVENT_LEN
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ParamError::new(
            "event",
            format!("must be up to {MAX_EVENT_LEN} of a-z, 0-9, `_`, `.` and `-` (such as sale or lead)"),
        ))
    }
}

#[cfg(test)]
mod tests;
