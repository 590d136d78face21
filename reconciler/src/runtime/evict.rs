//! Eviction: which running containers to stop so waiting sessions can start (pure).
//!
//! At `--max-containers`, a session that needs a container waits in the waker's queue. A running
//! container is a candidate when its session is idle by the sweep's rule
//! ([`Activity::is_idle`](super::sweep::Activity::is_idle): nothing due, nothing claimed, read
//! from the session's own DBs the moment its `outbound.db` changes, so a turn that just ended
//! counts at once). Each waiting session gets its own victim, least recently alive first, so
//! several waiters never pick the same one. Busy containers are never evicted: their sessions
//! would only have to wait again.

use std::time::SystemTime;

use super::sweep::Activity;

/// A running container the waker could stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub session: String,
    pub activity: Activity,
    /// Last sign of life: heartbeat mtime, else container start; `None` = unknown (oldest).
    pub last_sign: Option<SystemTime>,
}

/// Up to `wanted` sessions whose containers to stop: idle candidates, least recently alive
/// first (ties by session id, so the choice is stable).
pub fn pick_victims(candidates: &[Candidate], wanted: usize) -> Vec<String> {
    let mut idle: Vec<&Candidate> = candidates
        .iter()
        .filter(|candidate| candidate.activity.is_idle())
        .collect();
    idle.sort_by(|a, b| {
        a.last_sign
            .cmp(&b.last_sign)
            .then_with(|| a.session.cmp(&b.session))
    });
    idle.into_iter()
        .take(wanted)
        .map(|candidate| candidate.session.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(seconds: u64) -> Option<SystemTime> {
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
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
        }
    }

    #[test]
    fn only_idle_containers_are_evicted_least_recently_alive_first() {
        let candidates = [
            candidate("busy-old", 3, 0, at(1)),
            candidate("claiming", 0, 1, at(2)),
            candidate("idle-new", 0, 0, at(50)),
            candidate("idle-old", 0, 0, at(10)),
            candidate("idle-unknown", 0, 0, None),
        ];
        assert_eq!(
            pick_victims(&candidates, 5),
            ["idle-unknown", "idle-old", "idle-new"]
        );
        assert_eq!(pick_victims(&candidates, 1), ["idle-unknown"]);
        assert!(pick_victims(&candidates, 0).is_empty());
    }

    #[test]
    fn each_waiter_gets_its_own_victim() {
        // Issue 8 point 9: all waiting wakes picked the same victim.
        let candidates = [
            candidate("a", 0, 0, at(3)),
            candidate("b", 0, 0, at(1)),
            candidate("c", 0, 0, at(2)),
        ];
        assert_eq!(pick_victims(&candidates, 2), ["b", "c"]);
    }

    #[test]
    fn no_idle_container_means_no_victim() {
        let candidates = [candidate("a", 1, 0, at(1)), candidate("b", 0, 2, at(1))];
        assert!(pick_victims(&candidates, 2).is_empty());
    }
}
