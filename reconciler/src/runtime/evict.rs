//! Eviction: which running containers to stop so waiting sessions can start (pure).
//!
//! At `--max-containers`, a session that needs a container waits in the waker's queue. Each
//! waiting session gets its own victim, so several waiters never pick the same one:
//!
//! 1. Containers whose sessions are idle by the sweep's rule
//!    ([`Activity::is_idle`](super::sweep::Activity::is_idle): nothing due, nothing claimed, read
//!    from the session's own DBs the moment its `outbound.db` changes, so a turn that just ended
//!    counts at once, not at the next sweep) and quiet for [`IDLE_GRACE`], least recently alive
//!    first. The grace keeps a container that just answered the first messages of a burst from
//!    being stopped while the rest of the burst is still being stored.
//! 2. Only when no idle one is left: containers between two turns (nothing claimed, more
//!    messages due) that have run for [`FAIR_SHARE`] or longer, longest first. Their sessions
//!    queue again behind the waiters, so chats that never go quiet cannot hold every container
//!    while others starve; the turn in flight is never interrupted.

use std::time::{Duration, SystemTime};

use super::sweep::Activity;

/// How long a busy container may keep its slot while other sessions wait.
pub const FAIR_SHARE: Duration = Duration::from_secs(30);
/// How long an idle container must have been quiet (no heartbeat, not just started) before it
/// is stopped for a waiting session.
pub const IDLE_GRACE: Duration = Duration::from_millis(500);

/// A running container the waker could stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub session: String,
    pub activity: Activity,
    /// Last sign of life: heartbeat mtime, else container start; `None` = unknown (oldest).
    pub last_sign: Option<SystemTime>,
    /// How long the container has been running.
    pub ran_for: Duration,
}

/// Why a container is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// Its session has nothing to do.
    Idle,
    /// It had its fair share and is between turns.
    FairShare,
}

/// Up to `wanted` containers to stop at `now`, in the order above (ties by session id, so the
/// choice is stable).
pub fn pick_victims(
    candidates: &[Candidate],
    wanted: usize,
    now: SystemTime,
) -> Vec<(String, Why)> {
    let quiet = |candidate: &Candidate| {
        candidate.last_sign.is_none_or(|sign| {
            now.duration_since(sign)
                .is_ok_and(|quiet_for| quiet_for >= IDLE_GRACE)
        })
    };
    let mut idle: Vec<&Candidate> = candidates
        .iter()
        .filter(|candidate| candidate.activity.is_idle() && quiet(candidate))
        .collect();
    idle.sort_by(|a, b| {
        a.last_sign
            .cmp(&b.last_sign)
            .then_with(|| a.session.cmp(&b.session))
    });
    let mut served: Vec<&Candidate> = candidates
        .iter()
        .filter(|candidate| {
            !candidate.activity.is_idle()
                && candidate.activity.claims == 0
                && candidate.ran_for >= FAIR_SHARE
        })
        .collect();
    served.sort_by(|a, b| {
        b.ran_for
            .cmp(&a.ran_for)
            .then_with(|| a.session.cmp(&b.session))
    });
    idle.into_iter()
        .map(|candidate| (candidate.session.clone(), Why::Idle))
        .chain(
            served
                .into_iter()
                .map(|candidate| (candidate.session.clone(), Why::FairShare)),
        )
        .take(wanted)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> Option<SystemTime> {
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
    }

    /// Well after every `at(…)` used here.
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(100)
    }

    fn candidate(
        session: &str,
        due: i64,
        claims: usize,
        last_sign: Option<SystemTime>,
    ) -> Candidate {
        Candidate {
            session: session.into(),
            activity: Activity { due, claims },
            last_sign,
            ran_for: Duration::from_secs(5),
        }
    }

    fn sessions(victims: Vec<(String, Why)>) -> Vec<String> {
        victims.into_iter().map(|(session, _)| session).collect()
    }

    #[test]
    fn idle_containers_go_first_least_recently_alive_first() {
        let candidates = [
            candidate("busy-old", 3, 0, at(1)),
            candidate("claiming", 0, 1, at(2)),
            candidate("idle-new", 0, 0, at(50)),
            candidate("idle-old", 0, 0, at(10)),
            candidate("idle-unknown", 0, 0, None),
        ];
        assert_eq!(
            pick_victims(&candidates, 5, now()),
            [
                ("idle-unknown".to_string(), Why::Idle),
                ("idle-old".to_string(), Why::Idle),
                ("idle-new".to_string(), Why::Idle)
            ]
        );
        assert_eq!(
            sessions(pick_victims(&candidates, 1, now())),
            ["idle-unknown"]
        );
        assert!(pick_victims(&candidates, 0, now()).is_empty());
    }

    #[test]
    fn each_waiter_gets_its_own_victim() {
        // Issue 8 point 9: all waiting wakes picked the same victim.
        let candidates = [
            candidate("a", 0, 0, at(3)),
            candidate("b", 0, 0, at(1)),
            candidate("c", 0, 0, at(2)),
        ];
        assert_eq!(sessions(pick_victims(&candidates, 2, now())), ["b", "c"]);
    }

    #[test]
    fn a_busy_container_yields_only_between_turns_after_its_fair_share() {
        let mut long_between = candidate("long-between-turns", 4, 0, at(1));
        long_between.ran_for = FAIR_SHARE;
        let mut longer_between = candidate("longer-between-turns", 4, 0, at(1));
        longer_between.ran_for = FAIR_SHARE * 2;
        let mut long_mid_turn = candidate("long-mid-turn", 4, 2, at(1));
        long_mid_turn.ran_for = FAIR_SHARE * 3;
        let short_between = candidate("short-between-turns", 4, 0, at(1));
        let idle = candidate("idle", 0, 0, at(9));
        let candidates = [
            long_between,
            longer_between,
            long_mid_turn,
            short_between,
            idle,
        ];
        assert_eq!(
            pick_victims(&candidates, 5, now()),
            [
                ("idle".to_string(), Why::Idle),
                ("longer-between-turns".to_string(), Why::FairShare),
                ("long-between-turns".to_string(), Why::FairShare)
            ]
        );
    }

    #[test]
    fn a_container_that_was_alive_just_now_is_not_yet_idle_enough() {
        let candidates = [
            candidate("just-answered", 0, 0, at(100)),
            candidate("quiet", 0, 0, at(90)),
        ];
        assert_eq!(sessions(pick_victims(&candidates, 2, now())), ["quiet"]);
        let later = now() + IDLE_GRACE;
        assert_eq!(
            sessions(pick_victims(&candidates, 2, later)),
            ["quiet", "just-answered"]
        );
    }

    #[test]
    fn no_candidate_means_no_victim() {
        let candidates = [candidate("a", 1, 0, at(1)), candidate("b", 0, 2, at(1))];
        assert!(pick_victims(&candidates, 2, now()).is_empty());
    }
}
