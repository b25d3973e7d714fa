//! When things happen to a job, pure: the lease, the retry after a failed
//! call, the wait for a click not in ClickHouse yet, and the age past which
//! a postback is given up.

use std::time::Duration;

use super::job::Job;
use super::outbound::CallResult;
use super::settings::Settings;
use crate::backoff::Backoff;

/// How long a claimed job is hidden from other nodes: longer than one call
/// can take, with room for the bookkeeping after it.
pub(super) fn lease_ms(s: &Settings) -> u64 {
    s.timeout.as_millis() as u64 + 30_000
}

/// What happens to a job after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Delivered: removed.
    Done,
    /// Try again at this Unix millisecond.
    Retry(u64),
    /// Too old: removed, logged and counted.
    GiveUp,
    /// Refused address: removed without retry (the URL will not change
    /// by waiting).
    Refuse,
}

/// The rule after an attempt: 2xx is delivered, a refused address is
/// final, anything else retries with backoff until the age limit.
pub(super) fn next_step(job: &Job, result: &CallResult, now_ms: u64, s: &Settings) -> Next {
    match result {
        CallResult::Answered(status) if (200..300).contains(status) => Next::Done,
        CallResult::Refused(_) => Next::Refuse,
        _ => {
            let at = now_ms + retry_delay(s, job.attempt).as_millis() as u64;
            if at.saturating_sub(job.first_ms) > s.give_up_after.as_millis() as u64 {
                Next::GiveUp
            } else {
                Next::Retry(at)
            }
        }
    }
}

/// The wait after failed attempt `attempt` (1-based): the Backoff
/// sequence, doubling from the initial delay up to the cap.
fn retry_delay(s: &Settings, attempt: u32) -> Duration {
    nth_delay(s.retry_initial, s.retry_max, attempt)
}

/// The `n`th wait (1-based) of a [`Backoff`] from `initial` up to `max`.
fn nth_delay(initial: Duration, max: Duration, n: u32) -> Duration {
    let mut b = Backoff::new(initial, max);
    // Past 64 doublings every delay is the cap.
    for _ in 1..n.min(64) {
        b.step();
    }
    b.step()
}

/// When a job queued at `first_ms` whose click is not found yet (after
/// `lookups` looks, counting this one) looks again: `None` once that would
/// fall past the age limit, when it is sent without the sub-ids.
pub(super) fn next_lookup(first_ms: u64, lookups: u32, now_ms: u64, s: &Settings) -> Option<u64> {
    let at = now_ms + nth_delay(s.click_lookup_retry, s.retry_max, lookups).as_millis() as u64;
    (at.saturating_sub(first_ms) <= s.give_up_after.as_millis() as u64).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            allow_private_addresses: false,
            timeout: Duration::from_secs(10),
            retry_initial: Duration::from_secs(30),
            retry_max: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(86_400),
            concurrency: 4,
            poll_interval: Duration::from_secs(1),
            click_lookup_retry: Duration::from_secs(2),
        }
    }

    #[test]
    fn retries_back_off_up_to_the_cap() {
        let s = settings();
        let got: Vec<u64> = [1, 2, 3, 7, 8, 9, 500, u32::MAX]
            .iter()
            .map(|a| retry_delay(&s, *a).as_secs())
            .collect();
        assert_eq!(got, [30, 60, 120, 1920, 3600, 3600, 3600, 3600]);
    }

    fn check_next(attempt: u32, age_secs: u64, result: CallResult, expected: Next) {
        let s = settings();
        let now = 10_000_000_000;
        let job = Job {
            id: 1,
            conversion_id: "c".into(),
            partner_id: 1,
            url: "https://p.example/".into(),
            attempt,
            first_ms: now - age_secs * 1000,
            message: None,
        };
        assert_eq!(
            next_step(&job, &result, now, &s),
            expected,
            "attempt {attempt}, age {age_secs} s, {result:?}"
        );
    }

    #[test]
    fn failures_retry_until_a_day_has_passed() {
        let now = 10_000_000_000;
        check_next(1, 0, CallResult::Answered(200), Next::Done);
        check_next(3, 100, CallResult::Answered(204), Next::Done);
        check_next(1, 0, CallResult::Answered(500), Next::Retry(now + 30_000));
        check_next(2, 30, CallResult::Answered(302), Next::Retry(now + 60_000));
        check_next(
            1,
            0,
            CallResult::NoAnswer("timed out".into()),
            Next::Retry(now + 30_000),
        );
        check_next(1, 0, CallResult::Refused("refused".into()), Next::Refuse);
        // The next try would fall past a day: give up now.
        check_next(
            30,
            86_400 - 3600,
            CallResult::Answered(503),
            Next::Retry(now + 3_600_000),
        );
        check_next(30, 86_400 - 3599, CallResult::Answered(503), Next::GiveUp);
    }

    fn check_lookup(lookups: u32, age_secs: u64, expected: Option<u64>) {
        let now = 10_000_000_000;
        assert_eq!(
            next_lookup(now - age_secs * 1000, lookups, now, &settings()),
            expected,
            "look {lookups}, age {age_secs} s"
        );
    }

    #[test]
    fn a_missing_click_is_looked_for_again_until_the_age_limit() {
        let now = 10_000_000_000;
        check_lookup(1, 0, Some(now + 2_000));
        check_lookup(2, 2, Some(now + 4_000));
        check_lookup(5, 60, Some(now + 32_000));
        // Doubling stops at retry_max, as for calls.
        check_lookup(40, 3600, Some(now + 3_600_000));
        check_lookup(40, 86_400 - 3600, Some(now + 3_600_000));
        // Past the age limit: sent without the sub-ids.
        check_lookup(40, 86_400 - 3599, None);
        check_lookup(1, 86_400, None);
    }
}
