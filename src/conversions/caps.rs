//! Which cap counters a conversion takes from: pure, so the periods and
//! keys are tested apart from Redis. Periods are UTC days and months;
//! each counter lives a little past its period, then Redis forgets it.

use super::state::CapCounter;
use crate::model::OfferCaps;

const DAY_SECS: u64 = 86_400;

/// The counters a counting conversion of `offer_id` credited to
/// `partner_id` (none: no partner counters) takes from at `now_ms`.
pub fn counters(
    caps: &OfferCaps,
    offer_id: u64,
    partner_id: Option<u64>,
    now_ms: u64,
) -> Vec<CapCounter> {
    let (y, m, d) = civil_date(now_ms / 1000 / DAY_SECS);
    let day = format!("d:{y:04}{m:02}{d:02}");
    let month = format!("m:{y:04}{m:02}");
    // A day's counter outlives its day by one, a month's by a week: long
    // enough for clock skew between nodes, short enough to stay small.
    let (day_ttl, month_ttl) = (2 * DAY_SECS, 38 * DAY_SECS);
    let mut out = Vec::new();
    let mut add = |limit: Option<u32>, scope: String, period: &str, ttl: u64| {
        if let Some(limit) = limit {
            out.push(CapCounter {
                key: format!("cap:{offer_id}:{scope}{period}"),
                limit,
                ttl_secs: ttl,
            });
        }
    };
    add(caps.daily, String::new(), &day, day_ttl);
    add(caps.monthly, String::new(), &month, month_ttl);
    if let Some(p) = partner_id {
        add(caps.partner_daily, format!("p{p}:"), &day, day_ttl);
        add(caps.partner_monthly, format!("p{p}:"), &month, month_ttl);
    }
    out
}

/// (year, month, day) of a count of days since 1970-01-01 (the proleptic
/// Gregorian calendar, as ClickHouse and every log line use).
fn civil_date(days: u64) -> (u64, u64, u64) {
    use chrono::Datelike;
    let secs = i64::try_from(days.saturating_mul(DAY_SECS)).unwrap_or(i64::MAX);
    // Past year 262,143 chrono has no date: no clock gets there.
    let date = chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
        .date_naive();
    (
        date.year() as u64,
        u64::from(date.month()),
        u64::from(date.day()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        for (unix_secs, expected) in [
            (0, (1970, 1, 1)),
            (951_782_400, (2000, 2, 29)),
            (1_709_164_800, (2024, 2, 29)),
            (1_709_251_199, (2024, 2, 29)),
            (1_709_251_200, (2024, 3, 1)),
            (1_798_675_200, (2026, 12, 31)),
            (1_798_761_599, (2026, 12, 31)),
            (1_798_761_600, (2027, 1, 1)),
        ] {
            assert_eq!(civil_date(unix_secs / DAY_SECS), expected, "{unix_secs}");
        }
    }

    fn check(caps: OfferCaps, partner: Option<u64>, now_ms: u64, expected: &[(&str, u32)]) {
        let got: Vec<(String, u32)> = counters(&caps, 7, partner, now_ms)
            .into_iter()
            .map(|c| (c.key, c.limit))
            .collect();
        let expected: Vec<(String, u32)> =
            expected.iter().map(|(k, l)| (k.to_string(), *l)).collect();
        assert_eq!(got, expected, "{caps:?} {partner:?}");
    }

    #[test]
    fn counters_by_cap() {
        let nov30 = 1_798_675_200_000 - 31 * 86_400_000; // 2026-11-30 00:00 UTC
        let all = OfferCaps {
            daily: Some(10),
            monthly: Some(100),
            partner_daily: Some(2),
            partner_monthly: Some(20),
            ..OfferCaps::default()
        };
        check(OfferCaps::default(), Some(3), nov30, &[]);
        check(
            all,
            Some(3),
            nov30,
            &[
                ("cap:7:d:20261130", 10),
                ("cap:7:m:202611", 100),
                ("cap:7:p3:d:20261130", 2),
                ("cap:7:p3:m:202611", 20),
            ],
        );
        // The last millisecond of the day and the first of the next.
        check(
            OfferCaps {
                daily: Some(1),
                ..OfferCaps::default()
            },
            None,
            nov30 + 86_400_000 - 1,
            &[("cap:7:d:20261130", 1)],
        );
        check(
            OfferCaps {
                daily: Some(1),
                monthly: Some(5),
                ..OfferCaps::default()
            },
            None,
            nov30 + 86_400_000,
            &[("cap:7:d:20261201", 1), ("cap:7:m:202612", 5)],
        );
        // No partner credited: partner caps do not apply.
        check(
            OfferCaps {
                partner_daily: Some(1),
                ..OfferCaps::default()
            },
            None,
            nov30,
            &[],
        );
        // A zero cap takes nothing: every conversion is over it.
        check(
            OfferCaps {
                daily: Some(0),
                ..OfferCaps::default()
            },
            None,
            nov30,
            &[("cap:7:d:20261130", 0)],
        );
    }
}
