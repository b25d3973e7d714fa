//! The listing's query parameters, read and checked one by one so that a
//! bad value is named in the API's error shape.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::attribution::Status;
use crate::http::admin::error::ApiError;

/// Default and largest page size of the listing.
const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;

/// Longest conversion id, cursor or filter value taken from a request:
/// intake's ids are 22 characters; anything much longer names nothing.
const MAX_ID_LEN: usize = 64;

/// Whether `id` could be a conversion id: anything else names none, and is
/// answered without a query.
pub(crate) fn plausible_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The listing's parameters, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListFilter {
    pub(crate) limit: u64,
    /// The last conversion id of the previous page, or empty.
    pub(crate) cursor: String,
    pub(crate) partner_id: Option<u64>,
    pub(crate) offer_id: Option<u64>,
    pub(crate) status: Option<Status>,
    /// Unix seconds, inclusive.
    pub(crate) from: u32,
    /// Unix seconds, exclusive.
    pub(crate) to: u32,
}

impl ListFilter {
    pub(crate) fn parse(query: Option<&str>) -> Result<ListFilter, ApiError> {
        let mut f = ListFilter {
            limit: DEFAULT_LIMIT,
            cursor: String::new(),
            partner_id: None,
            offer_id: None,
            status: None,
            from: 0,
            to: u32::MAX,
        };
        let id = |field: &str, v: &str| {
            v.parse::<u64>()
                .map_err(|_| ApiError::invalid(field, "must be a whole number"))
        };
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "limit" => match v.parse::<u64>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => f.limit = n,
                    _ => {
                        return Err(ApiError::invalid(
                            "limit",
                            format!("must be a whole number from 1 to {MAX_LIMIT}"),
                        ))
                    }
                },
                "cursor" if plausible_id(&v) => f.cursor = v.into_owned(),
                "cursor" => {
                    return Err(ApiError::invalid(
                        "cursor",
                        "must be a next_cursor value from an earlier page",
                    ))
                }
                "partner_id" => f.partner_id = Some(id("partner_id", &v)?),
                "offer_id" => f.offer_id = Some(id("offer_id", &v)?),
                "status" => {
                    f.status = Some(
                        Status::ALL
                            .into_iter()
                            .find(|s| s.as_str() == v)
                            .ok_or_else(|| {
                                ApiError::invalid(
                                    "status",
                                    "must be approved, pending, duplicate, rejected or reversed",
                                )
                            })?,
                    )
                }
                "from" => f.from = parse_instant("from", &v, false)?,
                "to" => f.to = parse_instant("to", &v, true)?,
                _ => {}
            }
        }
        if f.from > f.to {
            return Err(ApiError::invalid("to", "must not be before from"));
        }
        Ok(f)
    }
}

/// Unix seconds of an RFC 3339 time (any offset) or a `YYYY-MM-DD` date in
/// UTC: its midnight, or with `end_of_day` the next midnight (so `to` is
/// exclusive and a date includes that whole day).
fn parse_instant(field: &str, v: &str, end_of_day: bool) -> Result<u32, ApiError> {
    let bad = || {
        ApiError::invalid(
            field,
            "must be an RFC 3339 time (2026-01-31T12:00:00Z) or a date (2026-01-31)",
        )
    };
    let secs: i64 = if v.len() == 10 {
        let t = humantime::parse_rfc3339(&format!("{v}T00:00:00Z")).map_err(|_| bad())?;
        unix(t) + if end_of_day { 86_400 } else { 0 }
    } else {
        // humantime reads UTC only: take any other offset off by hand.
        let (local, offset) = match v.as_bytes() {
            [.., b'Z' | b'z'] => (&v[..v.len() - 1], 0),
            [.., sign @ (b'+' | b'-'), h1, h2, b':', m1, m2]
                if [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()) =>
            {
                let hours = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
                let minutes = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
                let offset = (hours * 60 + minutes) * 60;
                let offset = if *sign == b'-' { -offset } else { offset };
                (&v[..v.len() - 6], offset)
            }
            _ => return Err(bad()),
        };
        let t = humantime::parse_rfc3339(&format!("{local}Z")).map_err(|_| bad())?;
        unix(t) - offset
    };
    u32::try_from(secs).map_err(|_| ApiError::invalid(field, "is out of range (1970 to 2106)"))
}

/// Seconds since the epoch, negative before it.
fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}
