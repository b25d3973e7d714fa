//! Whole calendar months between two instants, for recurring payouts.

/// Whole calendar months from `from_ms` to `to_ms` (Unix milliseconds,
/// UTC): 0 until the same day and time of the next month, and so on; 0 when
/// `to_ms` is not after `from_ms`. A binding on the 31st reaches its first
/// month on the 1st of the month after a shorter one (Jan 31 → Mar 1).
pub fn whole_months(from_ms: u64, to_ms: u64) -> u32 {
    if to_ms <= from_ms {
        return 0;
    }
    let (fy, fm, f_rest) = civil(from_ms);
    let (ty, tm, t_rest) = civil(to_ms);
    let months = (ty - fy) * 12 + (i64::from(tm) - i64::from(fm));
    let months = if t_rest < f_rest { months - 1 } else { months };
    u32::try_from(months.max(0)).unwrap_or(u32::MAX)
}

/// Year, month (1..=12) and the rest of the month in milliseconds (day and
/// time of day, comparable between months) of a Unix millisecond instant.
fn civil(ms: u64) -> (i64, u32, u64) {
    use chrono::{Datelike, Timelike};
    let t = chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
    let rest_of_day = u64::from(t.num_seconds_from_midnight()) * 1000 + ms % 1000;
    (
        i64::from(t.year()),
        t.month(),
        u64::from(t.day0()) * 86_400_000 + rest_of_day,
    )
}
