//! Instants and time zones of the stats API, pure: reading `from`, `to`
//! and `tz`, local midnights, and how an hour is shown.
//!
//! Instants are Unix seconds (`i64`, checked into ClickHouse's `DateTime`
//! range before use). A date means a midnight in the request's zone: the
//! first instant of that local day, which on a day that skips midnight (a
//! daylight saving change at 00:00) is the first local time that exists.

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone};
use chrono_tz::Tz;

use crate::validation::FieldError;

/// Seconds in a rollup bucket: 15 minutes, the greatest common divisor of
/// every UTC offset in use, so any zone's day, hour, week and month is a
/// union of whole buckets.
pub const BUCKET_SECS: i64 = 900;

/// The zone named `name` (an IANA name such as `Asia/Kathmandu`), or an
/// error naming `tz`.
pub fn parse_tz(name: &str) -> Result<Tz, FieldError> {
    name.parse::<Tz>().map_err(|_| {
        FieldError::new(
            "tz",
            "must be an IANA time zone name such as UTC, Europe/Berlin or Asia/Kathmandu",
        )
    })
}

/// Which end of a range a bound is: a date as `from` is its first instant,
/// as `to` the first instant of the next day (so `to` is exclusive and the
/// date named is included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `from`: inclusive.
    Start,
    /// `to`: exclusive.
    Stop,
}

/// Unix seconds of `value`: an RFC 3339 time with an offset
/// (`2026-01-31T12:00:00Z`, `...+05:45`), or a `YYYY-MM-DD` date in `tz`
/// read as `end` says. Errors name `field`.
pub fn parse_bound(field: &str, value: &str, tz: Tz, end: End) -> Result<i64, FieldError> {
    let bad = || {
        FieldError::new(
            field,
            "must be an RFC 3339 time (2026-01-31T12:00:00Z) or a date (2026-01-31)",
        )
    };
    let secs = if value.len() == 10 {
        let date = NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| bad())?;
        let date = match end {
            End::Start => date,
            End::Stop => date.checked_add_days(Days::new(1)).ok_or_else(bad)?,
        };
        start_of_day(tz, date)
    } else {
        DateTime::parse_from_rfc3339(value)
            .map_err(|_| bad())?
            .timestamp()
    };
    check_range(field, secs)
}

/// `secs` if ClickHouse's `DateTime` (1970 to 2106) holds it, else an
/// error naming `field`.
pub fn check_range(field: &str, secs: i64) -> Result<i64, FieldError> {
    if (0..=i64::from(u32::MAX)).contains(&secs) {
        Ok(secs)
    } else {
        Err(FieldError::new(field, "is out of range (1970 to 2106)"))
    }
}

/// The first instant of local day `date` in `tz`.
pub fn start_of_day(tz: Tz, date: NaiveDate) -> i64 {
    // Midnight, or when a daylight saving change skips it, the first
    // quarter hour after it that exists (changes happen on whole quarter
    // hours, and never skip more than a few hours).
    (0..=24 * 4)
        .find_map(|quarter| {
            let local = date.and_time(NaiveTime::MIN) + chrono::Duration::minutes(15 * quarter);
            tz.from_local_datetime(&local).earliest()
        })
        .map_or_else(
            || date.and_time(NaiveTime::MIN).and_utc().timestamp(),
            |t| t.timestamp(),
        )
}

/// The local date of instant `secs` in `tz`.
pub fn local_date(tz: Tz, secs: i64) -> NaiveDate {
    tz.timestamp_opt(secs, 0)
        .single()
        .map_or(NaiveDate::MIN, |t| t.date_naive())
}

/// An instant in `tz` as RFC 3339 with that zone's offset at the time
/// (`2026-01-15T05:00:00+05:45`): an hour that a daylight saving change
/// repeats is told apart by its offset.
pub fn format_instant(secs: i64, tz: Tz) -> String {
    match tz.timestamp_opt(secs, 0).single() {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        None => secs.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: &str, tz: &str, end: End, expected: Result<&str, &str>) {
        let tz = parse_tz(tz).unwrap();
        let got = parse_bound("from", value, tz, end)
            .map(|s| format_instant(s, chrono_tz::UTC))
            .map_err(|e| e.field);
        assert_eq!(
            got,
            expected.map(str::to_string).map_err(str::to_string),
            "{value}"
        );
    }

    #[test]
    fn bounds_are_instants_or_local_midnights() {
        use End::*;
        check("2026-01-15", "UTC", Start, Ok("2026-01-15T00:00:00+00:00"));
        check("2026-01-15", "UTC", Stop, Ok("2026-01-16T00:00:00+00:00"));
        // Kathmandu is +05:45: its midnight is 18:15 UTC the day before.
        check(
            "2026-01-15",
            "Asia/Kathmandu",
            Start,
            Ok("2026-01-14T18:15:00+00:00"),
        );
        check(
            "2026-01-15",
            "America/St_Johns",
            Start,
            Ok("2026-01-15T03:30:00+00:00"),
        );
        // Havana springs forward at midnight: 2026-03-08 starts at 01:00
        // local (UTC-4), which is 05:00 UTC.
        check(
            "2026-03-08",
            "America/Havana",
            Start,
            Ok("2026-03-08T05:00:00+00:00"),
        );
        check(
            "2026-01-15T10:07:00+05:45",
            "UTC",
            Start,
            Ok("2026-01-15T04:22:00+00:00"),
        );
        check(
            "2026-01-15T10:07:00Z",
            "Asia/Kathmandu",
            Stop,
            Ok("2026-01-15T10:07:00+00:00"),
        );
        check("2026-02-30", "UTC", Start, Err("from"));
        check("yesterday", "UTC", Start, Err("from"));
        check("2026-01-15T10:07:00", "UTC", Start, Err("from"));
        check("1969-12-31", "UTC", Start, Err("from"));
        check("2200-01-01", "UTC", Start, Err("from"));
    }

    #[test]
    fn zones_are_iana_names() {
        assert!(parse_tz("Asia/Kathmandu").is_ok());
        assert!(parse_tz("UTC").is_ok());
        assert_eq!(parse_tz("Mars/Olympus").unwrap_err().field, "tz");
        assert_eq!(parse_tz("").unwrap_err().field, "tz");
        assert_eq!(parse_tz("+05:45").unwrap_err().field, "tz");
    }

    #[test]
    fn hours_carry_their_offset() {
        let ny = parse_tz("America/New_York").unwrap();
        // 2023-11-05: 01:00 happens twice, first in EDT then in EST.
        assert_eq!(
            format_instant(1_699_160_400, ny),
            "2023-11-05T01:00:00-04:00"
        );
        assert_eq!(
            format_instant(1_699_164_000, ny),
            "2023-11-05T01:00:00-05:00"
        );
        let ktm = parse_tz("Asia/Kathmandu").unwrap();
        assert_eq!(format_instant(0, ktm), "1970-01-01T05:30:00+05:30");
        assert_eq!(local_date(ktm, 1_768_414_500).to_string(), "2026-01-15");
    }
}
