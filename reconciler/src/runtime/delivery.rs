//! Delivery: outbound rows written by containers → channel adapters (host.md §6).
//!
//! One worker thread owns the attempt counters and drains sessions one at a time, so a
//! session is never drained twice at once and its replies go out in order. It is told what
//! to drain through [`Work`]: a container's write to `outbound.db` (the fast path: `notify`
//! reports it within milliseconds, see `watch.rs`), a chat gaining a reader, a container exit,
//! or the backstop poll. The poll is cheap on purpose: every second it `stat`s each active
//! session's `outbound.db` and drains only sessions whose file changed since a drain that left
//! nothing behind, or that still hold rows to retry; every [`FULL_PASS`] it drains every active
//! session regardless (v2's minute-long sweep poll, host.md §6.1). An idle daemon therefore opens
//! no session DB between full passes.
//!
//! A row an adapter accepted is first appended to the sent log (`sent_log.rs`, microseconds),
//! then recorded in `inbound.db`'s `delivered` table with the drain's other outcomes in one
//! transaction. The log is what keeps a `kill -9` between sending and recording from re-sending
//! the row after restart; the table is checked before every send.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant, SystemTime};

use agent_runner::session_db::{self, OutboundRow};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, info, warn};

use super::sent_log::{self, Sent, SentLog};
use crate::channels::{Adapters, Delivered, Outbound};
use crate::db::{self, sessions};
use crate::paths::Paths;

/// Attempts before a row is marked failed (host.md §6.2).
pub const MAX_ATTEMPTS: u32 = 3;
/// Every active session is drained at least this often, changed or not.
pub const FULL_PASS: Duration = Duration::from_secs(60);
/// Work arriving this close together is handled as one batch.
const COALESCE: Duration = Duration::from_millis(1);
/// A file written less than this long before its stamp was taken is not trusted to show the
/// next write: two writes inside one clock tick share an mtime. The session is drained again
/// by the next backstop until its last write is older than this.
const SETTLE_AGE: Duration = Duration::from_secs(2);

/// What the delivery worker should look at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Work {
    /// A container wrote this session's `outbound.db`: drain it now.
    Session { agent: String, session: String },
    /// A chat gained a reader (queued replies for it can go now): drain every active session.
    Reader {
        channel_type: String,
        platform_id: String,
    },
    /// The backstop poll: drain the active sessions whose `outbound.db` changed since they were
    /// last settled, or that hold rows to retry (and every session once per [`FULL_PASS`]).
    Backstop,
    /// Drain every active session (startup, lost file events).
    All,
    /// Stop after the current batch.
    Stop,
}

/// Counters for tests and benchmarks (written by the delivery thread only).
#[derive(Debug, Default)]
pub struct DeliveryStats {
    /// Session drains (each opens the session's two DBs).
    pub drains: AtomicU64,
    /// Batches of work handled.
    pub passes: AtomicU64,
}

/// The worker's state; owned by its thread.
pub struct Delivery {
    conn: Connection,
    paths: Paths,
    adapters: Adapters,
    /// Failed attempts per outbound id; cleared on success or when the row is marked failed.
    attempts: HashMap<String, u32>,
    /// Sessions that received an agent-to-agent message; the waker starts their containers.
    wake: Option<UnboundedSender<String>>,
    /// Sessions whose `outbound.db` changed (a turn may have ended); the waker uses it to make
    /// room for waiting sessions.
    activity: Option<UnboundedSender<String>>,
    /// Where accepted rows are logged until recorded; `None` if it cannot be opened (then each
    /// row is recorded on its own, as before).
    sent_log: Option<SentLog>,
    /// Rows in the sent log whose `delivered` row could not be written yet.
    unrecorded: Vec<Sent>,
    /// Per session: `outbound.db` as it was before the last drain that left nothing to do.
    settled: HashMap<String, Option<Stamp>>,
    /// When every active session was last drained.
    last_full: Option<Instant>,
    stats: Arc<DeliveryStats>,
}

/// The final outcome of one row, recorded in `delivered`.
#[derive(Clone, Debug)]
struct Mark {
    id: String,
    platform_message_id: Option<String>,
    failed: bool,
}

/// What `outbound.db` looked like: any write by its owner changes it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    modified: SystemTime,
    len: u64,
    inode: u64,
    journal: bool,
}

/// The batched work of one pass.
#[derive(Default)]
struct Batch {
    sessions: BTreeSet<(String, String)>,
    everything: bool,
    backstop: bool,
    stop: bool,
}

impl Batch {
    fn add(&mut self, work: Work) {
        match work {
            Work::Session { agent, session } => {
                self.sessions.insert((agent, session));
            }
            Work::Reader { .. } | Work::All => self.everything = true,
            Work::Backstop => self.backstop = true,
            Work::Stop => self.stop = true,
        }
    }
}

impl Delivery {
    pub fn new(paths: Paths, adapters: Adapters) -> anyhow::Result<Delivery> {
        let conn = db::open(&paths.db())?;
        let log_path = paths.data.join(sent_log::FILE_NAME);
        let (sent_log, leftover) = match SentLog::open(&log_path) {
            Ok((log, leftover)) => (Some(log), leftover),
            Err(err) => {
                warn!(file = %log_path.display(), error = %err, "sent log unavailable; recording each delivery on its own");
                (None, Vec::new())
            }
        };
        let mut delivery = Delivery {
            conn,
            paths,
            adapters,
            attempts: HashMap::new(),
            wake: None,
            activity: None,
            sent_log,
            unrecorded: leftover,
            settled: HashMap::new(),
            last_full: None,
            stats: Arc::default(),
        };
        delivery.record_leftovers();
        Ok(delivery)
    }

    /// Wake target sessions of agent-to-agent messages through `wake` (the runtime's waker),
    /// and report sessions whose `outbound.db` changed through `activity`.
    pub fn waking(
        mut self,
        wake: UnboundedSender<String>,
        activity: UnboundedSender<String>,
    ) -> Delivery {
        self.wake = Some(wake);
        self.activity = Some(activity);
        self
    }

    /// The worker's counters (shared; read them from any thread).
    pub fn stats(&self) -> Arc<DeliveryStats> {
        Arc::clone(&self.stats)
    }

    /// Runs until [`Work::Stop`] or the senders are gone. Bursts of work are coalesced.
    pub fn run(mut self, work: std_mpsc::Receiver<Work>) {
        info!("delivery started");
        while let Ok(first) = work.recv() {
            let mut batch = Batch::default();
            batch.add(first);
            while let Ok(item) = work.recv_timeout(COALESCE) {
                batch.add(item);
            }
            for (agent, session) in self.targets(&batch) {
                self.drain_tracked(&agent, &session);
            }
            self.stats.passes.fetch_add(1, Ordering::Relaxed);
            if batch.stop {
                break;
            }
        }
        info!("delivery stopped");
    }

    /// The sessions a batch asks to drain, in a stable order.
    fn targets(&mut self, batch: &Batch) -> BTreeSet<(String, String)> {
        let mut targets = batch.sessions.clone();
        let full_due = self
            .last_full
            .is_none_or(|last| last.elapsed() >= FULL_PASS);
        if !(batch.everything || batch.backstop) {
            return targets;
        }
        let active = match sessions::active(&self.conn) {
            Ok(active) => active,
            Err(err) => {
                warn!(error = %err, "listing sessions for delivery failed");
                return targets;
            }
        };
        let ids: HashSet<&str> = active.iter().map(|session| session.id.as_str()).collect();
        self.settled.retain(|id, _| ids.contains(id.as_str()));
        let everything = batch.everything || full_due;
        if everything {
            self.last_full = Some(Instant::now());
        }
        for session in active {
            let wanted = everything || {
                let dir = self.paths.session(&session.agent, &session.id);
                self.settled
                    .get(&session.id)
                    .is_none_or(|settled| *settled != stamp(&outbound_path(&dir)))
            };
            if wanted {
                targets.insert((session.agent, session.id));
            }
        }
        targets
    }

    /// Drains one session and remembers whether it left anything behind.
    fn drain_tracked(&mut self, agent: &str, session: &str) {
        let before = stamp(&outbound_path(&self.paths.session(agent, session)));
        let changed = self.settled.get(session) != Some(&before);
        let trusted = before.as_ref().is_none_or(|stamp| {
            SystemTime::now()
                .duration_since(stamp.modified)
                .is_ok_and(|age| age >= SETTLE_AGE)
        });
        if self.drain(agent, session) && trusted {
            self.settled.insert(session.to_string(), before);
        } else {
            self.settled.remove(session);
        }
        if changed && let Some(activity) = &self.activity {
            let _ = activity.send(session.to_string());
        }
    }

    /// Delivers every due row of one session (host.md §6.2). Errors are logged per row.
    /// True when nothing is left to retry (every due row has its final outcome recorded and
    /// no row waits for a later `deliver_after`).
    pub fn drain(&mut self, agent: &str, session: &str) -> bool {
        self.stats.drains.fetch_add(1, Ordering::Relaxed);
        let dir = self.paths.session(agent, session);
        let outbound_path = outbound_path(&dir);
        if !outbound_path.exists() {
            return true;
        }
        let opened = session_db::open_inbound_host(&dir.join(session_db::INBOUND_FILE))
            .and_then(|inbound| Ok((inbound, session_db::open_outbound_host(&outbound_path)?)));
        let (mut inbound, outbound) = match opened {
            Ok(pair) => pair,
            Err(err) => {
                debug!(session, error = %err, "session DBs not readable yet");
                return false;
            }
        };
        if !has_messages_out(&outbound) {
            debug!(session, "outbound.db has no schema yet");
            return false;
        }
        // Rows sent earlier whose record failed: record them before anything is re-sent.
        let held = self.record_unrecorded(session, &mut inbound);
        let rows = match session_db::due_outbound(&inbound, &outbound) {
            Ok(rows) => rows,
            Err(err) => {
                warn!(session, error = %err, "reading outbound rows failed");
                return false;
            }
        };
        let mut settled = held.is_empty();
        let mut marks = Vec::new();
        for row in rows.iter().filter(|row| !held.contains(&row.id)) {
            match self.deliver_row(agent, session, row) {
                Some(mark) => marks.push(mark),
                None => settled = false,
            }
        }
        settled &= self.record(agent, session, &mut inbound, marks);
        settled && !has_later_rows(&outbound, session)
    }

    /// Sends one row; `Some` is its final outcome (to record), `None` means "try again later".
    fn deliver_row(&mut self, agent: &str, session: &str, row: &OutboundRow) -> Option<Mark> {
        match self.send(agent, session, row) {
            Ok(Delivered::Sent(platform_message_id)) => {
                self.attempts.remove(&row.id);
                debug!(session, id = %row.id, "delivered");
                self.log_sent(agent, session, &row.id, platform_message_id.as_deref());
                Some(Mark {
                    id: row.id.clone(),
                    platform_message_id,
                    failed: false,
                })
            }
            Ok(Delivered::NoReader) => {
                debug!(session, id = %row.id, "no reader connected; reply stays queued");
                None
            }
            Err(reason) => {
                let tries = self.attempts.entry(row.id.clone()).or_insert(0);
                *tries += 1;
                if *tries >= MAX_ATTEMPTS {
                    self.attempts.remove(&row.id);
                    warn!(session, id = %row.id, %reason, "delivery failed {MAX_ATTEMPTS} times; marked failed");
                    Some(Mark {
                        id: row.id.clone(),
                        platform_message_id: None,
                        failed: true,
                    })
                } else {
                    warn!(session, id = %row.id, %reason, attempt = *tries, "delivery failed; will retry");
                    None
                }
            }
        }
    }

    /// Appends an accepted row to the sent log, right after the adapter took it.
    fn log_sent(
        &mut self,
        agent: &str,
        session: &str,
        id: &str,
        platform_message_id: Option<&str>,
    ) {
        let Some(log) = &mut self.sent_log else {
            return;
        };
        let sent = Sent {
            agent: agent.to_string(),
            session: session.to_string(),
            id: id.to_string(),
            platform_message_id: platform_message_id.map(str::to_string),
        };
        if let Err(err) = log.append(&sent) {
            warn!(file = %log.path().display(), error = %err, "sent log not written; a crash before the delivery is recorded would send it again");
        }
    }

    /// Records a drain's outcomes in `delivered` in one transaction. False when that failed
    /// (the sent rows stay in the log and are recorded by the session's next drain).
    fn record(
        &mut self,
        agent: &str,
        session: &str,
        inbound: &mut Connection,
        marks: Vec<Mark>,
    ) -> bool {
        if marks.is_empty() {
            return true;
        }
        match write_marks(inbound, &marks) {
            Ok(()) => {
                self.reset_log();
                true
            }
            Err(err) => {
                warn!(session, error = %err, rows = marks.len(), "deliveries not recorded yet; will retry");
                self.unrecorded
                    .extend(
                        marks
                            .into_iter()
                            .filter(|mark| !mark.failed)
                            .map(|mark| Sent {
                                agent: agent.to_string(),
                                session: session.to_string(),
                                id: mark.id,
                                platform_message_id: mark.platform_message_id,
                            }),
                    );
                false
            }
        }
    }

    /// Records this session's rows left unrecorded by an earlier drain or a killed process.
    /// Returns the ids still unrecorded (they must not be sent again).
    fn record_unrecorded(&mut self, session: &str, inbound: &mut Connection) -> HashSet<String> {
        let (mine, others): (Vec<Sent>, Vec<Sent>) = std::mem::take(&mut self.unrecorded)
            .into_iter()
            .partition(|sent| sent.session == session);
        self.unrecorded = others;
        if mine.is_empty() {
            return HashSet::new();
        }
        let marks: Vec<Mark> = mine
            .iter()
            .map(|sent| Mark {
                id: sent.id.clone(),
                platform_message_id: sent.platform_message_id.clone(),
                failed: false,
            })
            .collect();
        match write_marks(inbound, &marks) {
            Ok(()) => {
                debug!(session, rows = marks.len(), "earlier deliveries recorded");
                self.reset_log();
                HashSet::new()
            }
            Err(err) => {
                warn!(session, error = %err, "earlier deliveries still not recorded");
                let held = mine.iter().map(|sent| sent.id.clone()).collect();
                self.unrecorded.extend(mine);
                held
            }
        }
    }

    /// At startup: records what a killed predecessor sent but had not recorded.
    fn record_leftovers(&mut self) {
        let sessions: BTreeSet<(String, String)> = self
            .unrecorded
            .iter()
            .map(|sent| (sent.agent.clone(), sent.session.clone()))
            .collect();
        if sessions.is_empty() {
            return;
        }
        info!(
            rows = self.unrecorded.len(),
            "recording deliveries sent just before the last stop"
        );
        for (agent, session) in sessions {
            let dir = self.paths.session(&agent, &session);
            match session_db::open_inbound_host(&dir.join(session_db::INBOUND_FILE)) {
                Ok(mut inbound) => {
                    self.record_unrecorded(&session, &mut inbound);
                }
                Err(err) => warn!(session, error = %err, "earlier deliveries not recorded yet"),
            }
        }
        self.reset_log();
    }

    /// Rewrites the sent log to hold exactly the rows still unrecorded.
    fn reset_log(&mut self) {
        if let Some(log) = &mut self.sent_log
            && let Err(err) = log.reset(&self.unrecorded)
        {
            warn!(file = %log.path().display(), error = %err, "sent log not cleared");
        }
    }
    /// Routes one row (host.md §6.3): system actions, agent-to-agent, or a channel send
    /// checked against the agent's destinations (its own chat is always allowed).
    fn send(&self, agent: &str, session: &str, row: &OutboundRow) -> Result<Delivered, String> {
        let content: serde_json::Value = serde_json::from_str(&row.content)
            .map_err(|err| format!("content is not JSON: {err}"))?;
        if row.kind == "system" {
            let action = content
                .get("action")
                .and_then(|v| v.as_str())
                .unwrap_or("(none)");
            warn!(session, id = %row.id, action, "system action not supported yet; dropped");
            return Ok(Delivered::Sent(None));
        }
        let (Some(channel_type), Some(platform_id)) = (&row.channel_type, &row.platform_id) else {
            warn!(session, id = %row.id, "outbound row has no routing; dropped");
            return Ok(Delivered::Sent(None));
        };
        if channel_type == "agent" {
            let routed = super::a2a::route(&self.conn, &self.paths, agent, session, row)?;
            debug!(session, id = %row.id, to = %routed.session, "agent message routed");
            if let Some(wake) = &self.wake {
                let _ = wake.send(routed.session);
            }
            return Ok(Delivered::Sent(None));
        }
        self.authorise(agent, session, channel_type, platform_id)?;
        let adapter = self
            .adapters
            .get(channel_type)
            .ok_or_else(|| format!("no `{channel_type}` channel is running"))?;
        let message = Outbound {
            platform_id: platform_id.clone(),
            thread_id: row.thread_id.clone(),
            kind: row.kind.clone(),
            content,
            in_reply_to: row.in_reply_to.clone(),
        };
        adapter.deliver(&message).map_err(|err| err.to_string())
    }

    fn authorise(
        &self,
        agent: &str,
        session: &str,
        channel_type: &str,
        platform_id: &str,
    ) -> Result<(), String> {
        let query = "SELECT m.id,
              m.id = (SELECT messaging_group_id FROM sessions WHERE id = ?3),
              EXISTS (SELECT 1 FROM agent_destinations d WHERE d.agent_group_id = ?4
                      AND d.target_type = 'channel' AND d.target_id = m.id)
            FROM messaging_groups m WHERE m.channel_type = ?1 AND m.platform_id = ?2";
        let found: Option<(String, bool, bool)> = self
            .conn
            .prepare_cached(query)
            .and_then(|mut statement| {
                statement
                    .query_row(
                        rusqlite::params![channel_type, platform_id, session, agent],
                        |row| {
                            Ok((
                                row.get(0)?,
                                row.get::<_, Option<bool>>(1)?.unwrap_or(false),
                                row.get(2)?,
                            ))
                        },
                    )
                    .optional()
            })
            .map_err(|err| format!("destination check failed: {err}"))?;
        match found {
            None => Err(format!(
                "unknown messaging group {channel_type}/{platform_id}"
            )),
            Some((_, true, _)) | Some((_, _, true)) => Ok(()),
            Some(_) => Err(format!(
                "unauthorized channel destination: {agent} cannot send to {channel_type}/{platform_id}"
            )),
        }
    }
}

/// Where a session's `outbound.db` lives (one place, so a layout change is one line).
fn outbound_path(session_dir: &Path) -> PathBuf {
    session_dir.join(session_db::OUTBOUND_FILE)
}

/// The file's identity and last write, `None` when it does not exist. Two commits inside one
/// clock tick can share an mtime; the file events and the full pass cover that case.
fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    let mut journal = path.as_os_str().to_owned();
    journal.push("-journal");
    Some(Stamp {
        modified: meta.modified().ok()?,
        len: meta.len(),
        inode: meta.ino(),
        journal: Path::new(&journal).exists(),
    })
}

/// Writes `delivered` rows for `marks` in one `BEGIN IMMEDIATE` transaction.
fn write_marks(inbound: &mut Connection, marks: &[Mark]) -> session_db::Result<()> {
    let tx = inbound.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for mark in marks {
        session_db::mark_delivered(
            &tx,
            &mark.id,
            mark.platform_message_id.as_deref(),
            mark.failed,
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Whether `outbound.db` has its schema yet (it is created empty, then filled).
fn has_messages_out(outbound: &Connection) -> bool {
    outbound
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages_out')",
            [],
            |row| row.get(0),
        )
        .unwrap_or(false)
}

const LATER_ROWS: &str =
    "SELECT EXISTS (SELECT 1 FROM messages_out WHERE deliver_after > datetime('now'))";

/// Whether some row waits for a later `deliver_after` (so the session is not settled).
fn has_later_rows(outbound: &Connection, session: &str) -> bool {
    outbound
        .query_row(LATER_ROWS, [], |row| row.get(0))
        .unwrap_or_else(|err| {
            debug!(session, error = %err, "cannot check for rows due later");
            true
        })
}

#[cfg(test)]
mod tests {
    //! Ported from v2's delivery tests: real temp session DBs, a recording fake adapter.

    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::channels::{Adapter, DeliveryError};
    use crate::db::sessions::Session;

    type Script = Box<dyn Fn(usize) -> Result<Delivered, DeliveryError> + Send + Sync>;

    /// A `telegram` adapter that records every message and answers per call number.
    struct Recorder {
        calls: Mutex<Vec<Outbound>>,
        script: Script,
    }

    impl Adapter for Recorder {
        fn channel_type(&self) -> &str {
            "telegram"
        }
        fn supports_threads(&self) -> bool {
            false
        }
        fn deliver(&self, message: &Outbound) -> Result<Delivered, DeliveryError> {
            let mut calls = self.calls.lock().unwrap();
            calls.push(message.clone());
            (self.script)(calls.len())
        }
    }

    struct World {
        _dir: tempfile::TempDir,
        paths: Paths,
        conn: Connection,
        session: Session,
        recorder: Arc<Recorder>,
        delivery: Delivery,
    }

    /// v2's fixture: agent `ag-1`, chat telegram/telegram:123, a shared session on it.
    fn world(
        script: impl Fn(usize) -> Result<Delivered, DeliveryError> + Send + Sync + 'static,
    ) -> World {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path().join("data"));
        paths.ensure().unwrap();
        let conn = db::open(&paths.db()).unwrap();
        conn.execute_batch(
            "INSERT INTO agent_groups (id, name, folder, created_at) VALUES ('ag-1', 'Test Agent', 'ag-1', 't');
             INSERT INTO messaging_groups (id, channel_type, platform_id, name, is_group, unknown_sender_policy, created_at)
               VALUES ('mg-1', 'telegram', 'telegram:123', 'Test Chat', 0, 'public', 't');",
        )
        .unwrap();
        let session = sessions::create(&conn, "ag-1", Some("mg-1"), None).unwrap();
        session_db::create(&paths.session("ag-1", &session.id)).unwrap();
        let recorder = Arc::new(Recorder {
            calls: Mutex::default(),
            script: Box::new(script),
        });
        let mut adapters = Adapters::default();
        adapters.register(recorder.clone());
        let delivery = Delivery::new(paths.clone(), adapters).unwrap();
        World {
            _dir: dir,
            paths,
            conn,
            session,
            recorder,
            delivery,
        }
    }

    fn sent(_: usize) -> Result<Delivered, DeliveryError> {
        Ok(Delivered::Sent(Some("plat-msg-1".into())))
    }

    impl World {
        fn outbound(&self, id: &str, channel_type: &str, platform_id: &str, extra: &str) {
            let dir = self.paths.session("ag-1", &self.session.id);
            let conn =
                session_db::open_outbound_container(&dir.join(session_db::OUTBOUND_FILE)).unwrap();
            conn.execute(
                &format!(
                    "INSERT INTO messages_out (id, timestamp, kind, platform_id, channel_type, content{})
                     VALUES (?1, datetime('now'), 'chat', ?2, ?3, '{{\"text\":\"hello\"}}'{})",
                    if extra.is_empty() { "" } else { ", deliver_after" },
                    if extra.is_empty() { String::new() } else { format!(", {extra}") },
                ),
                rusqlite::params![id, platform_id, channel_type],
            )
            .unwrap();
        }

        fn reply(&self, id: &str) {
            self.outbound(id, "telegram", "telegram:123", "");
        }

        fn drain(&mut self) {
            self.delivery.drain("ag-1", &self.session.id);
        }

        fn calls(&self) -> usize {
            self.recorder.calls.lock().unwrap().len()
        }

        /// Makes `outbound.db` look last written a minute ago (an idle session).
        fn age(&self) {
            let dir = self.paths.session("ag-1", &self.session.id);
            std::fs::File::options()
                .write(true)
                .open(outbound_path(&dir))
                .unwrap()
                .set_modified(SystemTime::now() - Duration::from_secs(60))
                .unwrap();
        }

        /// What a backstop batch would drain.
        fn backstop(&mut self) -> Vec<String> {
            let batch = Batch {
                backstop: true,
                ..Batch::default()
            };
            self.delivery
                .targets(&batch)
                .into_iter()
                .map(|(_, session)| session)
                .collect()
        }

        /// `(status, platform message id)` recorded in `delivered` for an outbound id.
        fn delivered(&self, id: &str) -> Option<(String, Option<String>)> {
            let dir = self.paths.session("ag-1", &self.session.id);
            let inbound =
                session_db::open_inbound_container(&dir.join(session_db::INBOUND_FILE)).unwrap();
            inbound
                .query_row(
                    "SELECT status, platform_message_id FROM delivered WHERE message_out_id = ?1",
                    [id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .unwrap()
        }
    }

    #[test]
    fn detects_an_undelivered_row_and_delivers_it_exactly_once() {
        // v2's concurrent-poll race cannot happen here: one worker thread drains sessions one
        // at a time. What remains to prove is that a second drain does not re-send.
        let mut world = world(sent);
        world.reply("out-1");
        world.drain();
        world.drain();
        assert_eq!(world.calls(), 1);
        assert_eq!(
            world.delivered("out-1"),
            Some(("delivered".into(), Some("plat-msg-1".into())))
        );
        let call = world.recorder.calls.lock().unwrap()[0].clone();
        assert_eq!(call.platform_id, "telegram:123");
        assert_eq!(call.content, serde_json::json!({"text": "hello"}));
    }

    #[test]
    fn issue_8_the_backstop_drains_only_sessions_that_changed_or_hold_rows() {
        let mut world = world(|call| {
            if call == 2 {
                Ok(Delivered::NoReader)
            } else {
                Ok(Delivered::Sent(None))
            }
        });
        let id = world.session.id.clone();
        let only = vec![id.clone()];
        world.reply("out-1");
        world.age();
        assert_eq!(world.backstop(), only, "the first pass drains everything");
        world.delivery.drain_tracked("ag-1", &id);
        assert_eq!(world.calls(), 1);
        assert!(
            world.backstop().is_empty(),
            "settled and unchanged: no drain"
        );
        assert!(world.backstop().is_empty());

        world.reply("out-2");
        assert_eq!(
            world.backstop(),
            only,
            "a container write is seen by its stamp"
        );
        world.delivery.drain_tracked("ag-1", &id);
        world.age();
        assert_eq!(
            world.backstop(),
            only,
            "a reply without a reader keeps the session unsettled"
        );
        world.delivery.drain_tracked("ag-1", &id);
        assert_eq!(world.calls(), 3);
        assert!(world.backstop().is_empty());

        world.reply("out-3");
        world.delivery.drain_tracked("ag-1", &id);
        assert_eq!(world.calls(), 4);
        assert_eq!(
            world.backstop(),
            only,
            "a write just now is checked once more"
        );
        world.age();
        world.delivery.drain_tracked("ag-1", &id);
        assert!(world.backstop().is_empty());

        world.delivery.last_full = Some(Instant::now() - FULL_PASS);
        assert_eq!(world.backstop(), only, "the full pass drains every session");
    }

    #[test]
    fn issue_8_a_reply_sent_just_before_a_kill_is_not_sent_again() {
        // What a `kill -9` between sending and recording leaves: the adapter took the row and
        // the sent log names it, but `delivered` has no row.
        let world = world(sent);
        world.reply("out-1");
        let log = world.paths.data.join(sent_log::FILE_NAME);
        let entry = Sent {
            agent: "ag-1".into(),
            session: world.session.id.clone(),
            id: "out-1".into(),
            platform_message_id: Some("plat-9".into()),
        };
        std::fs::write(
            &log,
            format!("{}\n", serde_json::to_string(&entry).unwrap()),
        )
        .unwrap();
        let mut adapters = Adapters::default();
        adapters.register(world.recorder.clone());
        let mut restarted = Delivery::new(world.paths.clone(), adapters).unwrap();
        assert_eq!(
            world.delivered("out-1"),
            Some(("delivered".into(), Some("plat-9".into()))),
            "recorded at startup"
        );
        restarted.drain("ag-1", &world.session.id);
        assert_eq!(world.calls(), 0, "not sent again");
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "",
            "the log is cleared"
        );
    }

    #[test]
    fn sent_rows_are_recorded_and_the_log_is_left_empty() {
        let mut world = world(sent);
        world.reply("out-1");
        world.reply("out-2");
        world.drain();
        assert_eq!(world.calls(), 2);
        assert!(world.delivered("out-1").is_some() && world.delivered("out-2").is_some());
        let log = world.paths.data.join(sent_log::FILE_NAME);
        assert_eq!(std::fs::read_to_string(log).unwrap(), "");
    }

    #[test]
    fn still_delivers_on_a_subsequent_call_after_the_first_finishes() {
        let mut world = world(sent);
        world.reply("out-first");
        world.drain();
        world.reply("out-second");
        world.drain();
        assert_eq!(world.calls(), 2);
    }

    #[test]
    fn retries_on_adapter_failure_and_marks_failed_after_max_attempts() {
        let mut world = world(|_| Err(DeliveryError::Failed("network timeout".into())));
        world.reply("out-flaky");
        for attempt in 1..=MAX_ATTEMPTS as usize {
            assert_eq!(world.delivered("out-flaky"), None);
            world.drain();
            assert_eq!(world.calls(), attempt);
        }
        world.drain();
        assert_eq!(
            world.calls(),
            MAX_ATTEMPTS as usize,
            "failed rows are not retried"
        );
        assert_eq!(world.delivered("out-flaky"), Some(("failed".into(), None)));
    }

    #[test]
    fn clears_the_attempt_counter_on_successful_delivery() {
        let mut world = world(|call| {
            if call == 1 || call == 3 || call == 4 {
                Err(DeliveryError::Failed("transient".into()))
            } else {
                Ok(Delivered::Sent(None))
            }
        });
        world.reply("out-retry-ok");
        world.drain();
        world.drain();
        world.drain();
        assert_eq!(world.calls(), 2);
        assert_eq!(
            world.delivered("out-retry-ok"),
            Some(("delivered".into(), None))
        );
        // A later row gets its own full set of attempts.
        world.reply("out-next");
        world.drain();
        world.drain();
        assert_eq!(
            world.delivered("out-next"),
            None,
            "two failures are not three"
        );
        world.drain();
        assert_eq!(
            world.delivered("out-next"),
            Some(("delivered".into(), None))
        );
    }

    #[test]
    fn no_reader_keeps_the_row_queued_without_counting_an_attempt() {
        let mut world = world(|call| {
            if call <= 4 {
                Ok(Delivered::NoReader)
            } else {
                Ok(Delivered::Sent(None))
            }
        });
        world.reply("out-1");
        for _ in 0..4 {
            world.drain();
        }
        assert_eq!(world.delivered("out-1"), None);
        world.drain();
        assert_eq!(world.delivered("out-1"), Some(("delivered".into(), None)));
    }

    #[test]
    fn rows_due_later_wait() {
        let mut world = world(sent);
        world.outbound(
            "out-later",
            "telegram",
            "telegram:123",
            "datetime('now', '+1 hour')",
        );
        world.outbound(
            "out-past",
            "telegram",
            "telegram:123",
            "datetime('now', '-1 minute')",
        );
        world.drain();
        assert_eq!(world.calls(), 1);
        assert!(world.delivered("out-past").is_some());
        assert_eq!(world.delivered("out-later"), None);
    }

    #[test]
    fn rejects_delivery_to_an_unauthorized_channel_destination() {
        let mut world = world(sent);
        world
            .conn
            .execute_batch(
                "INSERT INTO messaging_groups (id, channel_type, platform_id, created_at)
                   VALUES ('mg-2', 'telegram', 'telegram:456', 't');",
            )
            .unwrap();
        world.outbound("out-unauth", "telegram", "telegram:456", "");
        for _ in 0..MAX_ATTEMPTS {
            world.drain();
        }
        assert_eq!(world.calls(), 0, "refused before the adapter");
        assert_eq!(world.delivered("out-unauth"), Some(("failed".into(), None)));
    }

    #[test]
    fn a_destination_row_authorises_another_chat() {
        let mut world = world(sent);
        world
            .conn
            .execute_batch(
                "INSERT INTO messaging_groups (id, channel_type, platform_id, created_at)
                   VALUES ('mg-2', 'telegram', 'telegram:456', 't');
                 INSERT INTO agent_destinations (agent_group_id, local_name, target_type, target_id, created_at)
                   VALUES ('ag-1', 'family', 'channel', 'mg-2', 't');",
            )
            .unwrap();
        world.outbound("out-family", "telegram", "telegram:456", "");
        world.drain();
        assert_eq!(world.calls(), 1);
        assert_eq!(
            world.delivered("out-family").map(|d| d.0),
            Some("delivered".into())
        );
    }

    #[test]
    fn refuses_an_unknown_destination() {
        let mut world = world(sent);
        world.outbound("out-nowhere", "telegram", "telegram:999", "");
        for _ in 0..MAX_ATTEMPTS {
            world.drain();
        }
        assert_eq!(world.calls(), 0);
        assert_eq!(
            world.delivered("out-nowhere"),
            Some(("failed".into(), None))
        );
    }

    #[test]
    fn system_rows_and_rows_without_routing_are_dropped_as_delivered() {
        let mut world = world(sent);
        let dir = world.paths.session("ag-1", &world.session.id);
        let conn =
            session_db::open_outbound_container(&dir.join(session_db::OUTBOUND_FILE)).unwrap();
        conn.execute_batch(
            "INSERT INTO messages_out (id, timestamp, kind, content)
               VALUES ('out-sys', datetime('now'), 'system', '{\"action\":\"schedule_task\"}'),
                      ('out-bare', datetime('now'), 'chat', '{\"text\":\"to nobody\"}');",
        )
        .unwrap();
        world.drain();
        assert_eq!(world.calls(), 0);
        assert_eq!(
            world.delivered("out-sys").map(|d| d.0),
            Some("delivered".into())
        );
        assert_eq!(
            world.delivered("out-bare").map(|d| d.0),
            Some("delivered".into())
        );
    }

    #[test]
    fn a_reply_for_a_channel_without_a_running_adapter_fails_after_retries() {
        // v2 drops such a row as delivered at once (host.md §6.3 step 1); we count it as a
        // failed attempt so the operator sees `failed`, not a silent success.
        let mut world = world(sent);
        world
            .conn
            .execute_batch(
                "INSERT INTO messaging_groups (id, channel_type, platform_id, created_at)
                   VALUES ('mg-d', 'discord', 'chan-1', 't');
                 UPDATE sessions SET messaging_group_id = 'mg-d';",
            )
            .unwrap();
        world.outbound("out-d", "discord", "chan-1", "");
        for _ in 0..MAX_ATTEMPTS {
            world.drain();
        }
        assert_eq!(world.calls(), 0);
        assert_eq!(world.delivered("out-d"), Some(("failed".into(), None)));
    }

    #[test]
    fn thread_and_reply_reference_reach_the_adapter() {
        let mut world = world(sent);
        let dir = world.paths.session("ag-1", &world.session.id);
        let conn =
            session_db::open_outbound_container(&dir.join(session_db::OUTBOUND_FILE)).unwrap();
        conn.execute_batch(
            "INSERT INTO messages_out (id, timestamp, kind, platform_id, channel_type, thread_id, in_reply_to, content)
               VALUES ('out-t', datetime('now'), 'chat', 'telegram:123', 'telegram', 'th-1', 'm1:ag-1', '{\"text\":\"x\"}');",
        )
        .unwrap();
        world.drain();
        let call = world.recorder.calls.lock().unwrap()[0].clone();
        assert_eq!(call.thread_id.as_deref(), Some("th-1"));
        assert_eq!(call.in_reply_to.as_deref(), Some("m1:ag-1"));
        assert_eq!(call.kind, "chat");
    }
}
