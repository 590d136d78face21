//! The sweep (docs/runtime.md#the-sweep): the slow, level-triggered backstop over every active
//! session.
//!
//! Per session: copy finished acks into `messages_in`, reschedule with backoff ([`reset_plan`])
//! the messages a container gave back because the model's API could not be reached (`retry`
//! acks), wake sessions with due messages and no container, police running containers
//! ([`decide`]: absolute ceiling, stuck claims, idle teardown), and give back claims of dead
//! containers with the same backoff. Missing
//! an event anywhere else in the runtime costs latency, never correctness, because this runs.
//! The decisions are pure functions; [`sweep_once`] executes them.
//!
//! The sweep never writes `outbound.db` (issue 7): a dead container's `processing` claims stay
//! until the next container deletes its predecessor's claims at its start. So a claim is given
//! back at most once ([`needs_reset`]: only while its message was not rescheduled after the
//! claim), and claims older than the running container are not that container's.
//!
//! [`Activity::is_idle`] is THE idle rule: the sweep stops a container idle for longer than the
//! idle timeout, and the waker stops an idle one at once to make room for a waiting session
//! (`evict.rs`); both read the session's own DBs through [`read_activity`].

use std::path::Path;
use std::time::{Duration, SystemTime};

use agent_runner::session_db::{self, InboundDb};
use rusqlite::Connection;
use tracing::{debug, info, warn};

use crate::db::sessions::{self, Session};
use crate::paths::Paths;

/// Kill a container whose heartbeat is older than this
/// (docs/runtime.md#stuck-containers-and-retries).
pub const ABSOLUTE_CEILING: Duration = Duration::from_secs(30 * 60);
/// A claim older than this with no heartbeat since is stuck
/// (docs/runtime.md#stuck-containers-and-retries).
pub const CLAIM_STUCK: Duration = Duration::from_secs(60);
/// Retries before a message is marked failed (docs/runtime.md#stuck-containers-and-retries): the
/// session DB protocol's, which the runner reads too (it tells the chat of a last try).
pub use agent_runner::session_db::MAX_TRIES;
/// Longest `Bash` timeout a container may declare to extend its limits (the value is
/// container-written, so it is bounded).
pub const MAX_DECLARED_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// The reason an idle container is stopped with.
pub const IDLE_REASON: &str = "idle";

/// A session's work as its own DBs tell it, after finished acks are synced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Activity {
    /// Messages due and not finished (pending, trigger, due now; claimed ones included).
    pub due: i64,
    /// Messages the container has claimed and not finished (`processing` acks).
    pub claims: usize,
}

impl Activity {
    /// Nothing due and nothing in flight: the container's turn has ended.
    pub fn is_idle(&self) -> bool {
        self.due == 0 && self.claims == 0
    }
}

/// Reads a session's [`Activity`]: syncs finished acks into `inbound.db` first (so answered
/// messages do not look due until the next sweep), then counts due rows and claims.
pub fn read_activity(session_dir: &Path) -> anyhow::Result<Activity> {
    let mut inbound = session_db::open_inbound_host(&session_db::inbound_path(session_dir))?;
    let outbound = session_db::open_outbound_host(&session_db::outbound_path(session_dir)).ok();
    let mut claims = 0;
    if let Some(outbound) = &outbound {
        session_db::sync_acks(&mut inbound, outbound)?;
        claims = session_db::processing_claims(&inbound, outbound)?.len();
    }
    Ok(Activity {
        due: session_db::count_due(&inbound)?,
        claims,
    })
}

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
    /// Due and claimed messages (idle teardown waits for none).
    pub activity: Activity,
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

/// Decides what to do with a running container (docs/runtime.md#stuck-containers-and-retries, plus
/// idle teardown).
pub fn decide(live: &Liveness, idle_timeout: Duration) -> Verdict {
    let age = |time: SystemTime| live.now.duration_since(time).unwrap_or_default();
    let declared = live.declared_bash.unwrap_or_default();
    if let Some(heartbeat) = live.heartbeat
        && age(heartbeat) > ABSOLUTE_CEILING.max(declared)
    {
        return Verdict::KillCeiling;
    }
    let tolerance = CLAIM_STUCK.max(declared);
    for (message, claimed) in &live.claims {
        if age(*claimed) <= tolerance {
            continue;
        }
        // Left by a previous container (this one deletes them as it starts). Claim times have
        // one-second resolution, hence the slack.
        if live
            .started
            .is_some_and(|started| *claimed + Duration::from_secs(1) < started)
        {
            continue;
        }
        if live.heartbeat.is_some_and(|heartbeat| heartbeat > *claimed) {
            continue;
        }
        return Verdict::KillClaim(message.clone());
    }
    let last_sign = live.heartbeat.max(live.started);
    if live.activity.is_idle() && last_sign.is_some_and(|time| age(time) > idle_timeout) {
        return Verdict::Idle;
    }
    Verdict::Ok
}

/// What a reset does to one claimed message (docs/runtime.md#stuck-containers-and-retries).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reset {
    /// Retry after `delay`; `tries` is the new count.
    Retry { tries: i64, delay: Duration },
    /// Out of retries.
    Fail,
}

/// Whether a dead container's claim on a message still has to be given back: only while the
/// message was not rescheduled after the claim was taken (`process_after` absent or not later
/// than the claim). A reset sets `process_after` past the claim, so each claim is given back
/// once, however many sweeps see it before a new container deletes it.
pub fn needs_reset(claimed: Option<SystemTime>, process_after: Option<SystemTime>) -> bool {
    match (claimed, process_after) {
        (_, None) => true,
        (Some(claimed), Some(after)) => after <= claimed,
        // An unreadable claim time with a schedule: already handled.
        (None, Some(_)) => false,
    }
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
    let inbound_path = session_db::inbound_path(&dir);
    if !inbound_path.exists() {
        return Ok(());
    }
    let mut inbound = session_db::open_inbound_host(&inbound_path)?;
    let outbound = match session_db::open_outbound_host(&session_db::outbound_path(&dir)) {
        Ok(outbound) => Some(outbound),
        Err(err) if err.is_missing() => None,
        Err(err) => {
            // Damage is reported (once) by delivery; here it only means nothing to sync.
            debug!(session = %session.id, error = %err, "outbound.db not readable");
            None
        }
    };
    if let Some(outbound) = &outbound {
        let synced = session_db::sync_acks(&mut inbound, outbound)?;
        if synced > 0 {
            debug!(session = %session.id, synced, "acks synced");
        }
        // Before the due count: a given-back message not yet rescheduled is due, and would wake
        // a container that must not take it yet.
        let given_back = session_db::given_back(&inbound, outbound)?;
        if !given_back.is_empty() {
            debug!(session = %session.id, messages = given_back.len(), "given back for a retry");
            reset_claims(&inbound, &given_back)?;
        }
        let unaddressable = session_db::unaddressable_outbound(outbound)?;
        if unaddressable > 0 {
            warn!(session = %session.id, rows = unaddressable,
                "outbound rows without a usable id (text of 1 to {} bytes) are ignored",
                session_db::untrusted::MAX_ID_BYTES);
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
    let claims = session_db::processing_claims(&inbound, &outbound)?;
    if running {
        let state = session_db::container_state(&outbound)?;
        let live = Liveness {
            now: SystemTime::now(),
            heartbeat: session_db::heartbeat_mtime(&dir),
            started: containers.started(&session.id),
            declared_bash: state.and_then(|state| declared_bash(&state)),
            claims: claims
                .iter()
                .filter_map(|(id, at)| Some((id.clone(), session_db::parse_time(at)?)))
                .collect(),
            activity: Activity {
                due,
                claims: claims.len(),
            },
        };
        match decide(&live, idle_timeout) {
            Verdict::Ok => {}
            Verdict::Idle => {
                info!(session = %session.id, "idle: stopping container");
                containers.stop(&session.id, IDLE_REASON);
            }
            verdict => {
                warn!(session = %session.id, ?verdict, "container stuck: killing it and retrying its messages");
                containers.stop(&session.id, "stuck");
                reset_claims(&inbound, &claims)?;
            }
        }
    } else if !claims.is_empty() {
        reset_claims(&inbound, &claims)?;
    }
    Ok(())
}

/// Gives claimed messages of a dead container back with backoff
/// (docs/runtime.md#stuck-containers-and-retries), each claim at most once ([`needs_reset`]); the
/// same for messages a container gave back itself (`retry` acks, the time of the give-back as
/// the claim's). The acks themselves stay in `outbound.db`, which only the container writes; the
/// next container deletes a dead one's claims as it starts, and takes a given-back message again
/// once it is due after the reschedule.
fn reset_claims(inbound: &InboundDb, claims: &[(String, String)]) -> anyhow::Result<()> {
    for (message, claimed_at) in claims {
        let Some(state) = session_db::retry_state(inbound, message)? else {
            continue;
        };
        let claimed = session_db::parse_time(claimed_at);
        let after = state.process_after.as_deref().map(session_db::parse_time);
        let after = match after {
            Some(None) => continue, // an unreadable schedule is the host's own: leave it
            Some(Some(time)) => Some(time),
            None => None,
        };
        if !needs_reset(claimed, after) {
            continue;
        }
        match reset_plan(state.tries) {
            Reset::Fail => {
                session_db::fail_inbound(inbound, message)?;
                warn!(message = %message, "message failed after {MAX_TRIES} retries");
            }
            Reset::Retry { tries, delay } => {
                session_db::retry_later(inbound, message, tries, delay)?;
            }
        }
    }
    Ok(())
}

/// The `Bash` tool's declared timeout while it runs (docs/runtime.md#stuck-containers-and-retries),
/// at most [`MAX_DECLARED_TIMEOUT`]: the container writes this value, and an enormous one would
/// exempt it from the ceiling forever.
fn declared_bash(state: &session_db::ContainerState) -> Option<Duration> {
    let millis = state
        .tool_declared_timeout_ms
        .filter(|_| state.current_tool.as_deref() == Some("Bash"))?;
    u64::try_from(millis)
        .ok()
        .map(|millis| Duration::from_millis(millis).min(MAX_DECLARED_TIMEOUT))
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
                activity: Activity::default(),
            }
        }
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + seconds)
    }

    const IDLE: Duration = Duration::from_secs(600);
    const BUSY: Activity = Activity { due: 1, claims: 0 };

    #[test]
    fn ceiling_kills_a_silent_container_unless_bash_declared_longer() {
        let mut live = Liveness {
            now: at(31 * 60),
            heartbeat: Some(at(0)),
            activity: BUSY,
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
            activity: BUSY,
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
        live.activity = BUSY;
        assert_eq!(decide(&live, IDLE), Verdict::Ok);
        live.activity.due = 0;
        live.activity.claims = 1;
        assert_eq!(
            decide(&live, IDLE),
            Verdict::Ok,
            "a claim in flight is work"
        );
        live.activity = Activity::default();
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
            session_db::parse_time("1970-01-01 00:01:00"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(60))
        );
        assert_eq!(
            session_db::parse_time("1970-01-01T00:01:00.000Z"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(60))
        );
        assert_eq!(session_db::parse_time("garbage"), None);
    }

    // ---- ported from v2's host-sweep tests: decideStuckAction ----

    /// v2's fixture clock: 2026-04-20T12:00:00Z.
    fn base() -> SystemTime {
        session_db::parse_time("2026-04-20 12:00:00").unwrap()
    }

    fn before(seconds: u64) -> SystemTime {
        base() - Duration::from_secs(seconds)
    }

    fn live(heartbeat_age: Option<u64>, claims: &[(&str, u64)]) -> Liveness {
        Liveness {
            now: base(),
            heartbeat: heartbeat_age.map(before),
            claims: claims
                .iter()
                .map(|(id, age)| (id.to_string(), before(*age)))
                .collect(),
            activity: BUSY,
            ..Liveness::default()
        }
    }

    #[test]
    fn returns_ok_when_heartbeat_is_fresh_and_no_claims() {
        assert_eq!(decide(&live(Some(5), &[]), IDLE), Verdict::Ok);
    }

    #[test]
    fn returns_kill_ceiling_when_heartbeat_older_than_30_min() {
        assert_eq!(
            decide(&live(Some(30 * 60 + 1), &[]), IDLE),
            Verdict::KillCeiling
        );
    }

    #[test]
    fn skips_the_ceiling_check_when_no_heartbeat_file_exists() {
        assert_eq!(decide(&live(None, &[]), IDLE), Verdict::Ok);
    }

    #[test]
    fn kills_on_claim_stuck_when_heartbeat_is_absent_and_a_claim_aged_past_tolerance() {
        assert_eq!(
            decide(&live(None, &[("msg-1", 65)]), IDLE),
            Verdict::KillClaim("msg-1".into())
        );
    }

    #[test]
    fn extends_the_ceiling_when_bash_declared_a_longer_timeout() {
        let mut state = live(Some(45 * 60), &[]);
        state.declared_bash = Some(Duration::from_secs(2 * 60 * 60));
        assert_eq!(decide(&state, IDLE), Verdict::Ok);
    }

    #[test]
    fn returns_kill_claim_when_a_claim_is_past_60s_and_heartbeat_has_not_moved() {
        assert_eq!(
            decide(&live(Some(75), &[("msg-1", 70)]), IDLE),
            Verdict::KillClaim("msg-1".into())
        );
    }

    #[test]
    fn does_not_kill_when_heartbeat_has_been_touched_since_the_claim() {
        assert_eq!(decide(&live(Some(2), &[("msg-1", 70)]), IDLE), Verdict::Ok);
    }

    #[test]
    fn does_not_kill_when_claim_age_is_below_tolerance() {
        assert_eq!(decide(&live(Some(70), &[("msg-1", 5)]), IDLE), Verdict::Ok);
    }

    #[test]
    fn widens_per_claim_tolerance_for_a_running_bash_with_long_timeout() {
        let mut state = live(Some(5 * 60 + 5), &[("msg-1", 5 * 60)]);
        state.declared_bash = Some(Duration::from_secs(10 * 60));
        assert_eq!(decide(&state, IDLE), Verdict::Ok);
    }

    #[test]
    fn only_a_running_bash_declares_a_timeout() {
        let state = |tool: &str| session_db::ContainerState {
            current_tool: Some(tool.into()),
            tool_declared_timeout_ms: Some(600_000),
            tool_started_at: None,
            updated_at: "t".into(),
        };
        assert_eq!(
            declared_bash(&state("Bash")),
            Some(Duration::from_secs(600))
        );
        assert_eq!(declared_bash(&state("Read")), None);
        let forever = session_db::ContainerState {
            tool_declared_timeout_ms: Some(i64::MAX),
            ..state("Bash")
        };
        assert_eq!(declared_bash(&forever), Some(MAX_DECLARED_TIMEOUT));
    }

    // ---- parseSqliteUtc ----

    #[test]
    fn treats_a_sqlite_style_timestamp_without_zone_as_utc() {
        for text in [
            "2026-04-20 12:00:00",
            "2026-04-20T12:00:00",
            "2026-04-20T12:00:00.000",
        ] {
            assert_eq!(session_db::parse_time(text), Some(base()), "{text}");
        }
    }

    #[test]
    fn preserves_an_explicit_z_marker() {
        for text in ["2026-04-20T12:00:00.000Z", "2026-04-20T12:00:00z"] {
            assert_eq!(session_db::parse_time(text), Some(base()), "{text}");
        }
    }

    #[test]
    fn preserves_an_explicit_numeric_offset() {
        for text in [
            "2026-04-20T14:00:00+02:00",
            "2026-04-20T14:00:00+0200",
            "2026-04-20T07:00:00-05:00",
        ] {
            assert_eq!(session_db::parse_time(text), Some(base()), "{text}");
        }
    }

    #[test]
    fn unparseable_claim_times_are_ignored() {
        assert_eq!(session_db::parse_time("not a date"), None);
    }

    // ---- the sweep's IO shell on real session DBs ----

    /// Records what the sweep asked of the container side.
    #[derive(Default)]
    struct Fake {
        running: bool,
        woken: std::cell::RefCell<Vec<String>>,
        stopped: std::cell::RefCell<Vec<(String, String)>>,
    }

    impl Containers for Fake {
        fn is_running(&self, _session: &str) -> bool {
            self.running
        }
        fn started(&self, _session: &str) -> Option<SystemTime> {
            None
        }
        fn wake(&self, session: &str) {
            self.woken.borrow_mut().push(session.to_string());
        }
        fn stop(&self, session: &str, reason: &str) {
            self.stopped
                .borrow_mut()
                .push((session.to_string(), reason.to_string()));
        }
    }

    struct World {
        _dir: tempfile::TempDir,
        paths: Paths,
        conn: Connection,
        session: Session,
    }

    fn world() -> World {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path().join("data"));
        paths.ensure().unwrap();
        let conn = crate::db::open(&paths.db()).unwrap();
        conn.execute_batch(
            "INSERT INTO agent_groups (id, name, folder, created_at) VALUES ('ag-1', 'a', 'ag-1', 't');",
        )
        .unwrap();
        let session = sessions::create(&conn, "ag-1", None, None).unwrap();
        session_db::create(&paths.session("ag-1", &session.id)).unwrap();
        World {
            _dir: dir,
            paths,
            conn,
            session,
        }
    }

    impl World {
        fn dir(&self) -> std::path::PathBuf {
            self.paths.session("ag-1", &self.session.id)
        }

        fn inbound(&self) -> session_db::InboundDb {
            session_db::open_inbound_host(&self.dir().join(session_db::INBOUND_FILE)).unwrap()
        }

        fn outbound(&self) -> session_db::OutboundDb {
            session_db::open_outbound_container(&session_db::outbound_path(&self.dir())).unwrap()
        }

        /// A pending message; `set` is an extra SQL assignment list (`tries = 5, …`).
        fn message(&self, id: &str, set: &str) {
            let mut inbound = self.inbound();
            let row = session_db::NewInbound {
                id: id.into(),
                kind: "chat".into(),
                timestamp: "2026-01-01T00:00:00Z".into(),
                content: "{}".into(),
                trigger: true,
                ..Default::default()
            };
            session_db::insert_inbound(&mut inbound, &[row]).unwrap();
            if !set.is_empty() {
                inbound
                    .as_connection()
                    .execute(&format!("UPDATE messages_in SET {set} WHERE id = ?1"), [id])
                    .unwrap();
            }
        }

        fn ack(&self, id: &str, status: &str, changed: &str) {
            self.outbound()
                .as_connection().execute(
                    &format!(
                        "INSERT INTO processing_ack (message_id, status, status_changed) VALUES (?1, ?2, {changed})"
                    ),
                    [id, status],
                )
                .unwrap();
        }

        fn sweep(&self, containers: &Fake) {
            sweep_once(&self.conn, &self.paths, containers, IDLE);
        }

        /// `(status, tries, seconds until process_after)` of an inbound row.
        fn state(&self, id: &str) -> (String, i64, Option<i64>) {
            self.inbound()
                .as_connection()
                .query_row(
                    "SELECT status, tries,
                       CAST(round((julianday(process_after) - julianday('now')) * 86400) AS INTEGER)
                     FROM messages_in WHERE id = ?1",
                    [id],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .unwrap()
        }

        fn acks(&self) -> Vec<(String, String)> {
            let outbound = self.outbound();
            let mut statement = outbound
                .as_connection()
                .prepare("SELECT message_id, status FROM processing_ack ORDER BY message_id")
                .unwrap();
            statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        }
    }

    #[test]
    fn ack_sync_marks_completed_and_failed_acks_completed() {
        let world = world();
        world.message("m-done", "");
        world.message("m-fail", "");
        world.message("m-proc", "");
        world.ack("m-done", "completed", "datetime('now')");
        world.ack("m-fail", "failed", "datetime('now')");
        world.ack("m-proc", "processing", "datetime('now')");
        world.sweep(&Fake {
            running: true,
            ..Fake::default()
        });
        assert_eq!(world.state("m-done").0, "completed");
        assert_eq!(world.state("m-fail").0, "completed");
        assert_eq!(world.state("m-proc").0, "pending");
    }

    #[test]
    fn due_messages_wake_a_session_without_a_container() {
        let world = world();
        world.message("m-1", "");
        let fake = Fake::default();
        world.sweep(&fake);
        assert_eq!(
            *fake.woken.borrow(),
            std::slice::from_ref(&world.session.id)
        );

        let running = Fake {
            running: true,
            ..Fake::default()
        };
        world.sweep(&running);
        assert!(running.woken.borrow().is_empty(), "already running");
    }

    #[test]
    fn context_rows_and_rows_due_later_do_not_wake() {
        let world = world();
        world.message("m-context", "trigger = 0");
        world.message("m-later", "process_after = datetime('now', '+1 hour')");
        let fake = Fake::default();
        world.sweep(&fake);
        assert!(fake.woken.borrow().is_empty());
    }

    #[test]
    fn a_stuck_claim_kills_the_container_and_retries_with_backoff() {
        let world = world();
        world.message("m-1", "");
        world.message("m-done", "status = 'completed'");
        world.ack("m-1", "processing", "datetime('now', '-2 hours')");
        world.ack("m-done", "completed", "datetime('now', '-2 hours')");
        let fake = Fake {
            running: true,
            ..Fake::default()
        };
        world.sweep(&fake);
        assert_eq!(
            *fake.stopped.borrow(),
            [(world.session.id.clone(), "stuck".to_string())]
        );
        let (status, tries, delay) = world.state("m-1");
        assert_eq!((status.as_str(), tries), ("pending", 1));
        assert!(delay.is_some_and(|d| (4..=6).contains(&d)), "{delay:?}");
        // v2 deleted the dead container's claims from outbound.db here; the host never writes
        // that file now (issue 7): the next container deletes them as it starts.
        assert_eq!(
            world.acks(),
            [
                ("m-1".to_string(), "processing".to_string()),
                ("m-done".to_string(), "completed".to_string())
            ],
            "the sweep leaves outbound.db alone"
        );
    }

    #[test]
    fn a_rescheduled_message_is_not_counted_twice() {
        let world = world();
        world.message(
            "m-2",
            "tries = 1, process_after = datetime('now', '+60 seconds')",
        );
        world.ack("m-2", "processing", "datetime('now', '-2 hours')");
        world.sweep(&Fake::default());
        assert_eq!(world.state("m-2").1, 1);
    }

    #[test]
    fn a_dead_containers_claim_is_given_back_once_however_many_sweeps_see_it() {
        // Without the host deleting claims, the claim outlives the reset; once its backoff has
        // passed, v2's check (`process_after` in the future) would count it again every sweep.
        let world = world();
        world.message("m-ctx", "trigger = 0");
        world.ack("m-ctx", "processing", "datetime('now', '-2 hours')");
        world.sweep(&Fake::default());
        assert_eq!(world.state("m-ctx").1, 1);
        world
            .inbound()
            .as_connection().execute(
                "UPDATE messages_in SET process_after = datetime('now', '-1 second') WHERE id = 'm-ctx'",
                [],
            )
            .unwrap();
        world.sweep(&Fake::default());
        world.sweep(&Fake::default());
        let (status, tries, _) = world.state("m-ctx");
        assert_eq!(
            (status.as_str(), tries),
            ("pending", 1),
            "one claim, one reset"
        );
        // A new claim (a new container took it again) is a new reset.
        world
            .outbound()
            .as_connection().execute(
                "UPDATE processing_ack SET status_changed = datetime('now') WHERE message_id = 'm-ctx'",
                [],
            )
            .unwrap();
        world.sweep(&Fake::default());
        assert_eq!(world.state("m-ctx").1, 2);
    }

    #[test]
    fn claims_older_than_the_running_container_are_not_its_own() {
        let live = Liveness {
            now: at(200),
            started: Some(at(150)),
            claims: vec![("m1".into(), at(10))],
            activity: Activity { due: 1, claims: 1 },
            ..Liveness::default()
        };
        assert_eq!(decide(&live, IDLE), Verdict::Ok);
        let own = Liveness {
            claims: vec![("m1".into(), at(150))],
            now: at(300),
            ..live
        };
        assert_eq!(decide(&own, IDLE), Verdict::KillClaim("m1".into()));
    }

    #[test]
    fn a_claim_needs_a_reset_only_until_its_message_is_rescheduled() {
        assert!(needs_reset(Some(at(10)), None));
        assert!(needs_reset(None, None));
        assert!(
            needs_reset(Some(at(10)), Some(at(5))),
            "scheduled before the claim"
        );
        assert!(
            !needs_reset(Some(at(10)), Some(at(15))),
            "rescheduled after it"
        );
        assert!(!needs_reset(None, Some(at(15))));
    }

    #[test]
    fn issue_10_a_given_back_message_is_retried_with_backoff_once_per_give_back() {
        let world = world();
        world.message("m-1", "");
        world.message("m-last", "tries = 5");
        world.ack("m-1", "retry", "datetime('now')");
        world.ack("m-last", "retry", "datetime('now')");
        let running = Fake {
            running: true,
            ..Fake::default()
        };
        world.sweep(&running);
        let (status, tries, delay) = world.state("m-1");
        assert_eq!((status.as_str(), tries), ("pending", 1));
        assert!(delay.is_some_and(|d| (4..=6).contains(&d)), "{delay:?}");
        assert_eq!(world.state("m-last").0, "failed", "its last try");
        assert!(running.stopped.borrow().is_empty(), "the container is fine");
        world.sweep(&running);
        assert_eq!(world.state("m-1").1, 1, "one give-back, one retry");

        // Without a container, a given-back message not yet rescheduled does not wake one.
        let other = super::tests::world();
        other.message("m-2", "");
        other.ack("m-2", "retry", "datetime('now')");
        let stopped = Fake::default();
        other.sweep(&stopped);
        assert!(stopped.woken.borrow().is_empty());
        assert_eq!(other.state("m-2").1, 1);
    }

    #[test]
    fn the_sixth_reset_marks_the_message_failed() {
        let world = world();
        world.message("m-3", "tries = 5");
        world.ack("m-3", "processing", "datetime('now', '-2 hours')");
        world.sweep(&Fake {
            running: true,
            ..Fake::default()
        });
        assert_eq!(world.state("m-3").0, "failed");
    }

    #[test]
    fn issue_8_an_answered_message_is_not_work_before_the_sweep_syncs_its_ack() {
        // Eviction judged sessions by `messages_in.status`, which stays `pending` until a sweep
        // copies the container's ack: every running session looked busy for up to a minute.
        let world = world();
        world.message("m-1", "");
        world.ack("m-1", "completed", "datetime('now')");
        assert_eq!(read_activity(&world.dir()).unwrap(), Activity::default());
        assert!(read_activity(&world.dir()).unwrap().is_idle());
        world.message("m-2", "");
        world.ack("m-2", "processing", "datetime('now')");
        world.message("m-3", "");
        let activity = read_activity(&world.dir()).unwrap();
        assert_eq!(activity, Activity { due: 2, claims: 1 });
        assert!(!activity.is_idle());
    }

    #[test]
    fn an_idle_container_is_stopped() {
        let world = world();
        std::fs::write(session_db::heartbeat_path(&world.dir()), "").unwrap();
        // A symlinked heartbeat is no heartbeat (never followed): only the file counts.
        let old = SystemTime::now() - IDLE - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(session_db::heartbeat_path(&world.dir()))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let fake = Fake {
            running: true,
            ..Fake::default()
        };
        world.sweep(&fake);
        assert_eq!(
            *fake.stopped.borrow(),
            [(world.session.id.clone(), "idle".to_string())]
        );
    }
}
