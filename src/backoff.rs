//! Capped exponential backoff: the one waiting rule of every loop that
//! retries ClickHouse or Redis (migration at start, shipping, the catalog's
//! connection and change channel).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Waits that double after each failure, up to a cap, and start over after
/// a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    /// The wait the next failure gets.
    next: Duration,
}

/// `stop` was cancelled during a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

impl Backoff {
    /// Waits from `initial`, doubling up to `max` (`max` below `initial`
    /// means a constant `initial`).
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
            next: initial,
        }
    }

    /// The same wait every time: for loops whose peer is expected back at
    /// a steady pace (a Redis reconnect every few seconds).
    pub fn constant(every: Duration) -> Backoff {
        Backoff::new(every, every)
    }

    /// The wait the next failure will get.
    pub fn current(&self) -> Duration {
        self.next
    }

    /// Starts over from the initial wait (after a success).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }

    /// Takes the current wait and doubles the next one, up to the cap.
    pub fn step(&mut self) -> Duration {
        let now = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        now
    }

    /// Sleeps for the current wait, unless `stop` comes first.
    pub async fn wait(&mut self, stop: &CancellationToken) -> Result<(), Stopped> {
        let delay = self.step();
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(()),
            _ = stop.cancelled() => Err(Stopped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(initial_ms: u64, max_ms: u64, expected_ms: &[u64]) {
        let mut b = Backoff::new(
            Duration::from_millis(initial_ms),
            Duration::from_millis(max_ms),
        );
        let got: Vec<u64> = expected_ms
            .iter()
            .map(|_| b.step().as_millis() as u64)
            .collect();
        assert_eq!(got, expected_ms, "initial {initial_ms} ms, max {max_ms} ms");
    }

    #[test]
    fn waits_double_up_to_the_cap() {
        check(100, 1000, &[100, 200, 400, 800, 1000, 1000]);
        check(250, 250, &[250, 250, 250]);
        // A cap below the start is a constant wait, not a shrinking one.
        check(500, 100, &[500, 500]);
        check(0, 10, &[0, 0, 0]);
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
        b.step();
        b.step();
        assert_eq!(b.current(), Duration::from_millis(40));
        b.reset();
        assert_eq!(b.step(), Duration::from_millis(10));
    }

    #[tokio::test]
    async fn wait_ends_early_when_stopped() {
        let stop = CancellationToken::new();
        stop.cancel();
        let mut b = Backoff::constant(Duration::from_secs(3600));
        assert_eq!(b.wait(&stop).await, Err(Stopped));
    }
}
