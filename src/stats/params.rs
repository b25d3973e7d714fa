//! Query strings of the reading routes (stats, conversion times, the
//! payouts report), read the one way: every parameter known, none given
//! twice, and the time range (`tz`, `from`, `to`) defaulted and checked
//! alike. Pure; each error names its parameter.

use chrono_tz::Tz;

use super::time::{self, End};
use crate::validation::FieldError;

/// Days `from` reaches back when not given: the last 30 local days, today
/// included.
pub const DEFAULT_DAYS: u64 = 30;

/// A query string's parameters, each known and given once.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

/// A checked time range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// The zone dates are read in.
    pub tz: Tz,
    /// First instant, Unix seconds, inclusive.
    pub from: i64,
    /// End, Unix seconds, exclusive.
    pub to: i64,
}

impl Params {
    /// Reads `query`: a parameter not in `known` (the error lists them,
    /// calling them parameters of `what`) or given twice is refused.
    pub fn read(query: &str, known: &[&str], what: &str) -> Result<Params, FieldError> {
        let mut given: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            if !known.contains(&k.as_ref()) {
                return Err(FieldError::new(
                    &k,
                    format!("is not a {what} parameter (known: {})", known.join(", ")),
                ));
            }
            if given.iter().any(|(g, _)| *g == k) {
                return Err(FieldError::new(&k, "is given more than once"));
            }
            given.push((k.into_owned(), v.into_owned()));
        }
        Ok(Params(given))
    }

    /// The value of `key`, when given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `tz` (default UTC), `from` and `to` as the stats API reads them (a
    /// date is a midnight in `tz`, `to`'s date included), by default the
    /// last [`DEFAULT_DAYS`] in `tz` with today; `from` after `to`, or a
    /// range longer than `max_days` (and an hour, for a day of 25 hours),
    /// is refused. `now` is Unix seconds.
    pub fn range(&self, now: i64, max_days: Option<u64>) -> Result<Range, FieldError> {
        let tz = time::parse_tz(self.get("tz").unwrap_or("UTC"))?;
        let today = time::local_date(tz, now);
        let to = match self.get("to") {
            Some(v) => time::parse_bound("to", v, tz, End::Stop)?,
            None => time::parse_bound("to", &today.to_string(), tz, End::Stop)?,
        };
        let from = match self.get("from") {
            Some(v) => time::parse_bound("from", v, tz, End::Start)?,
            None => {
                let first = today
                    .checked_sub_days(chrono::Days::new(DEFAULT_DAYS - 1))
                    .unwrap_or(today);
                time::check_range("from", time::start_of_day(tz, first))?
            }
        };
        if from > to {
            return Err(FieldError::new("from", "must not be after to"));
        }
        if let Some(days) = max_days {
            if to - from > days as i64 * 86_400 + 3600 {
                return Err(FieldError::new(
                    "to",
                    format!("the range from..to is longer than {days} days (stats.max_range_days)"),
                ));
            }
        }
        Ok(Range { tz, from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-03-01T00:00:00Z.
    const NOW: i64 = 1_772_323_200;

    #[test]
    fn unknown_or_repeated_parameters_are_named() {
        let known = ["a", "b"];
        for (query, field) in [("c=1", "c"), ("a=1&a=2", "a"), ("a=1&%62=2&b=3", "b")] {
            let e = Params::read(query, &known, "test").expect_err(query);
            assert_eq!(e.field, field, "{query}: {}", e.message);
        }
        let p = Params::read("a=x%20y&b=", &known, "test").unwrap();
        assert_eq!(
            (p.get("a"), p.get("b"), p.get("c")),
            (Some("x y"), Some(""), None)
        );
    }

    #[test]
    fn ranges() {
        let range = |q: &str, max| {
            Params::read(q, &["from", "to", "tz"], "t")
                .unwrap()
                .range(NOW, max)
        };
        let r = range("", None).unwrap();
        assert_eq!((r.from, r.to), (NOW + 86_400 - 30 * 86_400, NOW + 86_400));
        let r = range("from=2026-01-01&to=2026-01-01&tz=Asia/Kathmandu", None).unwrap();
        assert_eq!(r.to - r.from, 86_400);
        assert_eq!(r.from, 1_767_225_600 - 5 * 3600 - 45 * 60);
        for (q, max, field) in [
            ("from=2026-02-03&to=2026-02-01", None, "from"),
            ("from=2026-01-01&to=2026-03-01", Some(30), "to"),
            ("tz=Nowhere/Else", None, "tz"),
            ("from=soon", None, "from"),
        ] {
            assert_eq!(range(q, max).unwrap_err().field, field, "{q}");
        }
        assert!(range("from=2026-01-01&to=2026-01-30", Some(30)).is_ok());
    }
}
