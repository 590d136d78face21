//! The sweep (host.md §5): the slow, level-triggered backstop over every active session.
//!
//! Per session: copy finished acks into `messages_in`, wake sessions with due messages and no
//! container, police running containers ([`decide`]: absolute ceiling, stuck claims, idle
//! teardown), and give back claims of dead containers with backoff ([`reset_plan`]). Missing
//! an event anywhere else in the runtime costs latency, never correctness, because this runs.
//! The decisions are pure functions; [`sweep_once`] executes them.

use std::time::{Duration, SystemTime};

use agent_runner::session_db;
use rusqlite::{Connection, params};
use tracing::{debug, info, warn};

use crate::db::sessions::{self, Session};
use crate::paths::Paths;

/// Kill a container whose heartbeat is older than this (host.md §5.3).
pub const ABSOLUTE_CEILING: Duration = Duration::from_secs(30 * 60);
/// A claim older than this with no heartbeat since is stuck (host.md §5.3).
pub const CLAIM_STUCK: Duration = Duration::from_secs(60);
/// Retries before a message is marked failed (host.md §5.4).
pub const MAX_TRIES: i64 = 5;

/// What the sweep knows about one running container.
#[derive(Clone, Debug)]
pub struct Liveness {
    pub now: SystemTime,
    /// `.heartbeat` mtime; `None` = not yet written (fresh spawn).
    pub heartbeat: Option<SystemTime>,
    /// When the container started (for idle teardown before any heartbeat).
    pub started: Option<SystemTime>,
    /// `Bash` tool's declared timeout while one runs (extends both limits).
    pub declared_bash: Option<Duration>,
    /// Claims still `processing`: (message id, claimed at).
    pub claims: Vec<(String, SystemTime)>,
    /// Messages due or in flight for the session (idle teardown waits for none).
    pub busy: bool,
}

/// The sweep's verdict on a running container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Heartbeat older than the ceiling.
    KillCeiling,
    /// A claim is stuck: no heartbeat since it was taken.
    KillClaim(String),
    /// Nothing to do for longer than the idle timeout: stop it to free resources.
    Idle,
}

/// Decides what to do with a running container (host.md §5.3, plus idle teardown).
pub fn decide(live: &Liveness, idle_timeout: Duration) -> Verdict {
    let age = |time: SystemTime| live.now.duration_since(time).unwrap_or_default();
    let declared = live.declared_bash.unwrap_or_default();
    if let Some(heartbeat) = live.heartbeat
        && age(heartbeat) > ABSOLUTE_CEILING.max(declared) {
            return Verdict::KillCeiling;
        }
    let tolerance = CLAIM_STUCK.max(declared);
    for (message, claimed) in &live.claims {
        if age(*claimed) <= tolerance {
            continue;
        }
        if live.heartbeat.is_some_and(|heartbeat| heartbeat > *claimed) {
            continue;
        }
        return Verdict::KillClaim(message.clone());
    }
    let last_sign = live.heartbeat.max(live.started);
    if !live.busy
        && live.claims.is_empty()
        && last_sign.is_some_and(|time| age(time) > idle_timeout)
    {
        return Verdict::Idle;
    }
    Verdict::Ok
}

/// What a reset does to one claimed message (host.md §5.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reset {
    /// Retry after `delay`; `tries` is the new count.
    Retry { tries: i64, delay: Duration },
    /// Out of retries.
    Fail,
}

/// Backoff for a message that had `tries` retries: 5, 10, 20, 40, 80 s, then failed.
pub fn reset_plan(tries: i64) -> Reset {
    if tries >= MAX_TRIES {
        Reset::Fail
    } else {
        let exponent = u32::try_from(tries.max(0)).unwrap_or(0);
        Reset::Retry {
            tries: tries + 1,
            delay: Duration::from_secs(5 * 2u64.pow(exponent)),
        }
    }
}

/// Hooks the sweep needs from the container side, so it can be tested without Docker.
pub trait Containers {
    fn is_running(&self, session: &str) -> bool;
    fn started(&self, session: &str) -> Option<SystemTime>;
    /// Ask for a container (fire and forget: the waker reports failures).
    fn wake(&self, session: &str);
    /// Stop the container (fire and forget).
    fn stop(&self, session: &str, reason: &str);
}

/// One pass over every active session. Per-session errors are logged and do not stop the pass.
pub fn sweep_once(
    conn: &Connection,
    paths: &Paths,
    containers: &dyn Containers,
    idle_timeout: Duration,
) {
    let active = match sessions::active(conn) {
        Ok(active) => active,
        Err(err) => {
            warn!(error = %err, "sweep cannot list sessions");
            return;
        }
    };
    for session in active {
        if let Err(err) = sweep_session(paths, &session, containers, idle_timeout) {
            warn!(session = %session.id, error = %format!("{err:#}"), "sweep of session failed");
        }
    }
}

fn sweep_session(
    paths: &Paths,
    session: &Session,
    containers: &dyn Containers,
    idle_timeout: Duration,
) -> anyhow::Result<()> {
    let dir = paths.session(&session.agent, &session.id);
    let inbound_path = dir.join(session_db::INBOUND_FILE);
    if !inbound_path.exists() {
        return Ok(());
    }
    let mut inbound = session_db::open_inbound_host(&inbound_path)?;
    let outbound = session_db::open_outbound_host(&dir.join(session_db::OUTBOUND_FILE)).ok();
    if let Some(outbound) = &outbound {
        let synced = session_db::sync_acks(&mut inbound, outbound)?;
        if synced > 0 {
            debug!(session = %session.id, synced, "acks synced");
        }
    }
    let due = session_db::count_due(&inbound)?;
    let running = containers.is_running(&session.id);
    if due > 0 && !running {
        debug!(session = %session.id, due, "due messages: waking");
        containers.wake(&session.id);
        return Ok(());
    }
    let Some(outbound) = outbound else {
        return Ok(());
    };
    let claims = session_db::processing_claims(&outbound)?;
    if running {
        let state = session_db::container_state(&outbound)?;
        let live = Liveness {
            now: SystemTime::now(),
            heartbeat: session_db::heartbeat_mtime(&dir),
            started: containers.started(&session.id),
            declared_bash: state.and_then(|state| declared_bash(&state)),
            claims: claims
                .iter()
                .filter_map(|(id, at)| Some((id.clone(), parse_sqlite_time(at)?)))
                .collect(),
            busy: due > 0,
        };
        match decide(&live, idle_timeout) {
            Verdict::Ok => {}
            Verdict::Idle => {
                info!(session = %session.id, "idle: stopping container");
                containers.stop(&session.id, "idle");
            }
            verdict => {
                warn!(session = %session.id, ?verdict, "container stuck: killing it and retrying its messages");
                containers.stop(&session.id, "stuck");
                reset_claims(&inbound, &dir, &claims)?;
            }
        }
    } else if !claims.is_empty() {
        reset_claims(&inbound, &dir, &claims)?;
    }
    Ok(())
}

/// Gives claimed messages of a dead container back with backoff, then deletes the claims so a
/// fresh container is not judged by them (host.md §5.4).
fn reset_claims(
    inbound: &Connection,
    dir: &std::path::Path,
    claims: &[(String, String)],
) -> anyhow::Result<()> {
    for (message, _) in claims {
        let row: Option<(i64, Option<String>)> = inbound
            .query_row(
                "SELECT tries, process_after FROM messages_in WHERE id = ?1 AND status = 'pending'",
                [message],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .ok();
        let Some((tries, process_after)) = row else {
            continue;
        };
        let future: bool = match &process_after {
            Some(after) => {
                inbound.query_row("SELECT datetime(?1) > datetime('now')", [after], |row| {
                    row.get(0)
                })?
            }
            None => false,
        };
        if future {
            continue;
        }
        match reset_plan(tries) {
            Reset::Fail => {
                inbound.execute(
                    "UPDATE messages_in SET status = 'failed' WHERE id = ?1",
                    [message],
                )?;
                warn!(message = %message, "message failed after {MAX_TRIES} retries");
            }
            Reset::Retry { tries, delay } => {
                inbound.execute(
                    "UPDATE messages_in SET tries = ?2, process_after = datetime('now', ?3) WHERE id = ?1",
                    params![message, tries, format!("+{} seconds", delay.as_secs())],
                )?;
            }
        }
    }
    match session_db::open_outbound_host_rw(&dir.join(session_db::OUTBOUND_FILE)) {
        Ok(outbound) => {
            if let Err(err) = session_db::host::delete_processing_claims(&outbound) {
                warn!(error = %err, "stale claims not deleted");
            }
        }
        Err(err) => warn!(error = %err, "stale claims not deleted"),
    }
    Ok(())
}

/// The `Bash` tool's declared timeout while it runs (host.md §5.3 `declaredBash`).
fn declared_bash(state: &session_db::ContainerState) -> Option<Duration> {
    let millis = state
        .tool_declared_timeout_ms
        .filter(|_| state.current_tool.as_deref() == Some("Bash"))?;
    u64::try_from(millis).ok().map(Duration::from_millis)
}

/// Parses SQLite-now (`YYYY-MM-DD HH:MM:SS`, UTC) or ISO timestamps.
fn parse_sqlite_time(text: &str) -> Option<SystemTime> {
    let normalised = if text.ends_with('Z') || text.contains('+') {
        text.replace(' ', "T")
    } else {
        format!("{}Z", text.replace(' ', "T"))
    };
    let timestamp: jiff::Timestamp = normalised.parse().ok()?;
    let millis = u64::try_from(timestamp.as_millisecond()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Default for Liveness {
        fn default() -> Liveness {
            Liveness {
                now: SystemTime::UNIX_EPOCH,
                heartbeat: None,
                started: None,
                declared_bash: None,
                claims: Vec::new(),
                busy: false,
            }
        }
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + seconds)
    }

    const IDLE: Duration = Duration::from_secs(600);

    #[test]
    fn ceiling_kills_a_silent_container_unless_bash_declared_longer() {
        let mut live = Liveness {
            now: at(31 * 60),
            heartbeat: Some(at(0)),
            busy: true,
            ..Liveness::default()
        };
        assert_eq!(decide(&live, IDLE), Verdict::KillCeiling);
        live.declared_bash = Some(Duration::from_secs(40 * 60));
        assert_eq!(decide(&live, IDLE), Verdict::Ok);
    }

    #[test]
    fn a_claim_is_stuck_only_without_a_heartbeat_since() {
        let mut live = Liveness {
            now: at(100),
            heartbeat: Some(at(10)),
            claims: vec![("m1".into(), at(20))],
            ..Liveness::default()
        };
        assert_eq!(decide(&live, IDLE), Verdict::KillClaim("m1".into()));
        live.heartbeat = Some(at(30));
        assert_eq!(decide(&live, IDLE), Verdict::Ok);
        live.heartbeat = Some(at(10));
        live.now = at(70);
        assert_eq!(
            decide(&live, IDLE),
            Verdict::Ok,
            "within the 60 s tolerance"
        );
    }

    #[test]
    fn absent_heartbeat_means_fresh_spawn() {
        let live = Liveness {
            now: at(10_000),
            heartbeat: None,
            busy: true,
            ..Liveness::default()
        };
        assert_eq!(decide(&live, IDLE), Verdict::Ok);
    }

    #[test]
    fn idle_containers_are_stopped_when_nothing_is_pending() {
        let mut live = Liveness {
            now: at(700),
            heartbeat: Some(at(50)),
            ..Liveness::default()
        };
        assert_eq!(decide(&live, IDLE), Verdict::Idle);
        live.busy = true;
        assert_eq!(decide(&live, IDLE), Verdict::Ok);
        live.busy = false;
        live.heartbeat = None;
        live.started = Some(at(650));
        assert_eq!(decide(&live, IDLE), Verdict::Ok);
    }

    #[test]
    fn backoff_doubles_then_fails() {
        let delays: Vec<Reset> = (0..6).map(reset_plan).collect();
        assert_eq!(
            delays[0],
            Reset::Retry {
                tries: 1,
                delay: Duration::from_secs(5)
            }
        );
        assert_eq!(
            delays[4],
            Reset::Retry {
                tries: 5,
                delay: Duration::from_secs(80)
            }
        );
        assert_eq!(delays[5], Reset::Fail);
    }

    #[test]
    fn sqlite_and_iso_times_parse_as_utc() {
        assert_eq!(
            parse_sqlite_time("1970-01-01 00:01:00"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(60))
        );
        assert_eq!(
            parse_sqlite_time("1970-01-01T00:01:00.000Z"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(60))
        );
        assert_eq!(parse_sqlite_time("garbage"), None);
    }
}
