//! Respawn backoff for a failing agent container (pure).
//!
//! A container that fails (exits with an error nobody asked for, or cannot be started) is
//! started again when its session still has work: at once after the first failure (a killed
//! container is replaced without waiting for the sweep), then after 5 s, doubling up to
//! [`MAX_DELAY`]. The streak ends with a clean run: a container the runtime stopped (idle,
//! evicted) or that exited 0. A failure after [`STABLE_RUN`] of running starts a new streak,
//! so an agent that crashes once a day is not held back by yesterday's crash.

use std::time::Duration;

/// Delay before the second attempt; doubles per further failure.
pub const FIRST_DELAY: Duration = Duration::from_secs(5);
/// Longest delay between attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(5 * 60);
/// A failure after running this long counts as the first of a new streak.
pub const STABLE_RUN: Duration = Duration::from_secs(5 * 60);

/// Consecutive failures of one session's container.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Streak {
    pub failures: u32,
}

impl Streak {
    /// The streak after a failure of a container that ran for `ran_for` (zero: it never
    /// started).
    pub fn failed(self, ran_for: Duration) -> Streak {
        if ran_for >= STABLE_RUN {
            Streak { failures: 1 }
        } else {
            Streak {
                failures: self.failures.saturating_add(1),
            }
        }
    }

    /// How long to wait before starting the container again.
    pub fn delay(self) -> Duration {
        respawn_delay(self.failures)
    }

    /// The first failure of a streak (when the chat is told).
    pub fn is_first(self) -> bool {
        self.failures == 1
    }
}

/// 0 or 1 failures: at once; then 5 s, 10 s, 20 s, … up to [`MAX_DELAY`].
pub fn respawn_delay(failures: u32) -> Duration {
    if failures <= 1 {
        return Duration::ZERO;
    }
    let doublings = (failures - 2).min(16);
    FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_retries_at_once_then_delays_double_to_five_minutes() {
        let delays: Vec<u64> = (0..12).map(|n| respawn_delay(n).as_secs()).collect();
        assert_eq!(delays, [0, 0, 5, 10, 20, 40, 80, 160, 300, 300, 300, 300]);
        assert_eq!(respawn_delay(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn a_streak_grows_with_quick_failures_and_restarts_after_a_long_run() {
        let quick = Duration::from_secs(2);
        let streak = Streak::default().failed(quick);
        assert!(streak.is_first());
        assert_eq!(streak.delay(), Duration::ZERO);
        let streak = streak.failed(quick).failed(quick);
        assert_eq!(streak, Streak { failures: 3 });
        assert_eq!(streak.delay(), Duration::from_secs(10));
        assert!(!streak.is_first());
        let streak = streak.failed(STABLE_RUN);
        assert!(streak.is_first(), "a long run ends the old streak");
        assert_eq!(
            Streak::default(),
            Streak { failures: 0 },
            "a clean run resets"
        );
    }
}
