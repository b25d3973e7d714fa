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
    const DAY_MS: u64 = 86_400_000;
    let days = i64::try_from(ms / DAY_MS).unwrap_or(i64::MAX / 2);
    let rest_of_day = ms % DAY_MS;
    // Howard Hinnant's days-to-civil, for days since 1970-01-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5; // 0-based day of the month
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are small and non-negative by construction.
    let month = u32::try_from(month).unwrap_or(1);
    let day = u64::try_from(day).unwrap_or(0);
    (year, month, day * DAY_MS + rest_of_day)
}
