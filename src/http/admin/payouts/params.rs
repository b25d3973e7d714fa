//! The payouts report's query string, checked: each error names its
//! parameter. Dates and zones read as `GET /api/v1/stats` reads them.

use chrono_tz::Tz;

use crate::stats::params::{Params, Range};
use crate::validation::FieldError;

/// Every parameter the report reads.
const PARAMETERS: [&str; 5] = ["from", "to", "tz", "partner_id", "format"];

/// A checked report request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportQuery {
    /// First instant of the range, Unix seconds, inclusive.
    pub from: u32,
    /// End of the range, Unix seconds, exclusive.
    pub to: u32,
    /// The zone dates are read in.
    pub tz: Tz,
    /// Only this partner, when given.
    pub partner_id: Option<u64>,
    /// `Some(true)` for `format=csv`, `Some(false)` for `format=json`,
    /// `None`: the `Accept` header decides.
    pub csv: Option<bool>,
}

impl ReportQuery {
    /// Reads the raw query string; `now` (Unix seconds) sets the default
    /// range.
    pub fn parse(query: &str, now: i64) -> Result<ReportQuery, FieldError> {
        let params = Params::read(query, &PARAMETERS, "payouts report")?;
        let get = |k: &str| params.get(k);
        let Range { tz, from, to } = params.range(now, None)?;
        let partner_id = get("partner_id")
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    FieldError::new("partner_id", "must be a partner id (a whole number)")
                })
            })
            .transpose()?;
        let csv = match get("format") {
            None => None,
            Some("json") => Some(false),
            Some("csv") => Some(true),
            Some(_) => return Err(FieldError::new("format", "must be json or csv")),
        };
        Ok(ReportQuery {
            // check_range keeps both within u32.
            from: from as u32,
            to: to as u32,
            tz,
            partner_id,
            csv,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-04-15T12:00:00Z.
    const NOW: i64 = 1_776_254_400;

    /// What a query reads as: `(from, to, partner_id, csv)`.
    type Read = (u32, u32, Option<u64>, Option<bool>);

    fn check(query: &str, expected: Result<Read, &str>) {
        let got = ReportQuery::parse(query, NOW)
            .map(|q| (q.from, q.to, q.partner_id, q.csv))
            .map_err(|e| e.field);
        assert_eq!(got, expected.map_err(str::to_string), "{query}");
    }

    #[test]
    fn parameters() {
        // 2026-03-17 and 2026-04-16 at midnight UTC: the last 30 days.
        check("", Ok((1_773_705_600, 1_776_297_600, None, None)));
        check(
            "from=2026-01-01&to=2026-01-31&partner_id=7&format=csv",
            Ok((1_767_225_600, 1_769_904_000, Some(7), Some(true))),
        );
        // A date in a zone is its midnight there.
        check(
            "from=2026-01-01&to=2026-01-01&tz=Asia/Kathmandu&format=json",
            Ok((1_767_204_900, 1_767_291_300, None, Some(false))),
        );
        check(
            "from=2026-01-01T06:00:00Z&to=2026-01-01T07:00:00Z",
            Ok((1_767_247_200, 1_767_250_800, None, None)),
        );
        check("from=2026-02-01&to=2026-01-01", Err("from"));
        check("from=yesterday", Err("from"));
        check("to=2026-13-01", Err("to"));
        check("tz=Mars/Olympus", Err("tz"));
        check("partner_id=x", Err("partner_id"));
        check("format=xml", Err("format"));
        check("group_by=partner", Err("group_by"));
        check("tz=UTC&tz=UTC", Err("tz"));
    }
}
