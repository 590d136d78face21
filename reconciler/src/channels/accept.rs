//! Accepting connections without spinning or flooding the log.
//!
//! When `accept` fails, most often because the process ran out of file descriptors, retrying
//! at once fails again: a listener loop that does so burns a core and writes millions of log
//! lines. [`backoff`] says how long to wait before the next try, and a [`Throttle`] lets one
//! log line through per interval, counting the rest. Both are pure (the caller passes the
//! time); the socket code around them does the waiting and logging.

use std::time::{Duration, Instant};

/// Wait after the first failed accept in a row; doubled per further failure.
pub const FIRST_DELAY: Duration = Duration::from_millis(10);
/// Longest wait between two tries.
pub const MAX_DELAY: Duration = Duration::from_secs(1);
/// At most one log line per this interval for one kind of repeated failure.
pub const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// How long to wait after `failures` failed accepts in a row (1 = the first).
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

/// Lets the first of a run of repeated events be logged, then one summary per interval.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    /// When the last line was let through; `None` while no run is going on.
    logged_at: Option<Instant>,
    /// Events since the last line let through.
    unlogged: u64,
    /// Events of the current run.
    total: u64,
}

/// What to log for one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Log {
    /// The first event of a run: log it in full.
    First,
    /// An interval has passed: log that `count` more events happened since the last line.
    Summary { count: u64 },
    /// Stay quiet (counted for the next summary).
    Quiet,
}

impl Throttle {
    pub fn new(interval: Duration) -> Throttle {
        Throttle {
            interval,
            logged_at: None,
            unlogged: 0,
            total: 0,
        }
    }

    /// One more event at `now`.
    pub fn event(&mut self, now: Instant) -> Log {
        self.total += 1;
        match self.logged_at {
            None => {
                self.logged_at = Some(now);
                Log::First
            }
            Some(at) if now.duration_since(at) >= self.interval => {
                self.logged_at = Some(now);
                let count = self.unlogged + 1;
                self.unlogged = 0;
                Log::Summary { count }
            }
            Some(_) => {
                self.unlogged += 1;
                Log::Quiet
            }
        }
    }

    /// The run is over (things work again): how many events it had, 0 when there was none.
    pub fn end(&mut self) -> u64 {
        let total = self.total;
        *self = Throttle::new(self.interval);
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_ceiling() {
        let delays: Vec<u128> = (1..=9).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(backoff(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn a_flood_of_failures_logs_one_line_per_interval() {
        // 10,000 failures a second for 12 seconds: the first, then a summary every 5 s.
        let start = Instant::now();
        let mut throttle = Throttle::new(LOG_INTERVAL);
        let mut logged = Vec::new();
        for n in 0..120_000u64 {
            let now = start + Duration::from_micros(n * 100);
            match throttle.event(now) {
                Log::Quiet => {}
                log => logged.push(log),
            }
        }
        assert_eq!(
            logged,
            [
                Log::First,
                Log::Summary { count: 50_000 },
                Log::Summary { count: 50_000 }
            ]
        );
        assert_eq!(throttle.end(), 120_000);
        assert_eq!(throttle.event(start), Log::First, "a new run starts over");
    }

    #[test]
    fn a_run_that_ended_reports_nothing() {
        let mut throttle = Throttle::new(LOG_INTERVAL);
        assert_eq!(throttle.end(), 0);
    }
}
