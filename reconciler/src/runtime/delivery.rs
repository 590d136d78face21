//! Delivery: outbound rows written by containers → channel adapters
//! (docs/runtime.md#delivering-a-sessions-rows).
//!
//! One worker thread owns the attempt counters and drains sessions one at a time, so a
//! session is never drained twice at once and its replies are handed on in order. It is told
//! what to drain through its [`Inbox`] ([`super::work`]): a container's write to `outbound.db`
//! (the fast path: `notify` reports it within milliseconds, see `watch.rs`), a chat gaining a
//! reader, a container exit, or the reports of rows in flight; and it polls on its own: when no
//! work came for [`BACKSTOP`] (one second), and at least once per [`BACKSTOP`] while work keeps
//! coming, it runs the backstop. The backstop is cheap on purpose: it `stat`s each active
//! session's `outbound.db` and drains only sessions whose file changed since a drain that left
//! nothing behind, or that still hold rows to retry; when the last drain of every active
//! session is [`FULL_PASS`] (a minute) old, it drains every active session regardless
//! (docs/runtime.md#the-message-path). An idle daemon therefore opens no session DB
//! between full passes.
//!
//! The worker never waits for a platform: a row for a channel is handed to that channel's
//! outbox ([`super::outbox`]) and stays in flight (skipped by drains) until its [`Report`]
//! comes back; the report is acted on by its kind ([`crate::channels::DeliveryError`]): sent
//! rows are recorded, `RetryAfter` holds the row back that long without counting an attempt,
//! `Permanent` marks it failed at once, `Transient` counts an attempt (failed after
//! [`MAX_ATTEMPTS`]), and `NoReader`/`AwaitingAck` keep it queued without counting one.
//!
//! A row an adapter accepted is first appended to the sent log (`sent_log.rs`, microseconds),
//! then its outcome, with the other outcomes of its page or report batch, is recorded in one
//! transaction in the central DB's `delivered_outbound` (the authority, out of every
//! container's reach) and then in `inbound.db`'s `delivered` (the projection the due query
//! joins). The log keeps a `kill -9` between sending and recording from re-sending the row
//! after restart; the record is checked before every send, so neither a restart nor a lost
//! `inbound.db` re-sends what was delivered.
//!
//! Everything read from `outbound.db` is untrusted (the container writes it): the session DB
//! layer bounds sizes and types, [`check_row`] validates kind, routing and content before any
//! lookup, and a bad row is recorded as failed with a log line and skipped. Reads are paged
//! ([`session_db::untrusted::DUE_PAGE`] rows, at most [`MAX_PAGES`] pages per drain). Missing or
//! damaged session DBs are handled by [`super::health`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use agent_runner::session_db::{
    self, AGENT_CHANNEL_TYPE, DeliveryRecord, DeliveryStatus, Due, InboundDb, Kind, OutboundDb,
    OutboundRow,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use tracing::{debug, info, info_span, warn};

use super::health::{self, FileId, Health, Reporter};
use super::mailbox::Signal;
use super::outbox::{Handed, Outboxes};
use super::sent_log::{self, Sent, SentLog};
use super::typing::Typing;
use super::waker::Wakes;
use super::work::{Batch, Inbox};
use crate::channels::{Delivered, Outbound};
use crate::db::delivered::{self, Outcome};
use crate::db::{self, sessions};
use crate::paths::Paths;

pub use super::work::Work;

/// Attempts before a row is marked failed (docs/runtime.md#delivering-a-sessions-rows).
pub const MAX_ATTEMPTS: u32 = 3;
/// Most pages of due rows one drain reads; the next drain continues.
pub const MAX_PAGES: usize = 16;
/// How often the backstop runs (see the module comment).
pub const BACKSTOP: Duration = Duration::from_secs(1);
/// Every active session is drained at least this often, changed or not.
pub const FULL_PASS: Duration = Duration::from_secs(60);
/// How long a stopping worker waits for the reports of rows in flight.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// Work arriving this close together is handled as one batch.
const COALESCE: Duration = Duration::from_millis(1);
/// A file written less than this long before its stamp was taken is not trusted to show the
/// next write: two writes inside one clock tick share an mtime. The session is drained again
/// by the next backstop until its last write is older than this.
const SETTLE_AGE: Duration = Duration::from_secs(2);

/// Counters for tests and benchmarks (written by the delivery thread only).
#[derive(Debug, Default)]
pub struct DeliveryStats {
    /// Session drains (each opens the session's two DBs).
    pub drains: AtomicU64,
    /// Batches of work handled.
    pub passes: AtomicU64,
}

/// The worker's state; every field is written and read by its thread only, except `stats`
/// (read by anyone) and what it hands on (`outboxes`, `wake`, `activity`).
pub struct Delivery {
    /// The central DB: destinations, the delivery record, the session list.
    conn: Connection,
    /// Where the session folders are.
    paths: Paths,
    /// Where rows for channels (and notices) are handed to their adapters.
    outboxes: Outboxes,
    /// Failed attempts per outbound id; cleared on success or when the row is marked failed.
    attempts: HashMap<String, u32>,
    /// Rows handed to an outbox whose report has not come back; drains skip them.
    in_flight: HashMap<String, Flight>,
    /// Rows a channel asked to retry later: not attempted before this instant.
    retry_at: HashMap<String, Instant>,
    /// Sessions whose last drain left only rows in flight: the stamp they settle to once every
    /// one of those rows has its final outcome.
    settling: HashMap<String, Option<Stamp>>,
    /// Sessions that received an agent-to-agent message; the waker starts their containers.
    wake: Option<Wakes>,
    /// Raised when a session's `outbound.db` changed (a turn may have ended); the waker uses it
    /// to make room for waiting sessions.
    activity: Option<Signal>,
    /// Told when a reply reached its chat (the typing indicator pauses).
    typing: Option<Typing>,
    /// What each session's DB files were at the last drain, and what the chats were told.
    health: Health,
    /// Where accepted rows are logged until recorded; `None` if it cannot be opened (then each
    /// page's outcomes are recorded right after it, as before).
    sent_log: Option<SentLog>,
    /// Rows in the sent log whose outcome could not be recorded yet: never sent again.
    unrecorded: Vec<Sent>,
    /// Per session: `outbound.db` as it was before the last drain that left nothing to do.
    settled: HashMap<String, Option<Stamp>>,
    /// When every active session was last drained.
    last_full: Option<Instant>,
    /// Counters the worker writes and benches and tests read ([`Delivery::stats`]).
    stats: Arc<DeliveryStats>,
    /// How long the approval card of a self-modification request may be answered.
    approval_ttl: std::time::Duration,
}

/// A row in an outbox.
#[derive(Debug)]
struct Flight {
    /// The session the row belongs to (its report drains it again).
    session: String,
    /// A drain found it due again while it was in flight: drain the session again when its
    /// report keeps it queued (a reader may have arrived meanwhile).
    asked_again: bool,
}

/// What `outbound.db` looked like: any write by its owner changes it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    /// The file's mtime, size and inode: a write or a replacement changes one of them.
    modified: SystemTime,
    len: u64,
    inode: u64,
    /// A `-journal` file was beside it (a write in progress).
    journal: bool,
}

/// How a drain left its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drained {
    /// Every due row has its final outcome recorded and none waits for a later time.
    Settled,
    /// Settled but for rows in flight.
    InFlight,
    /// Something is left to retry, or the drain stopped early.
    Unsettled,
}

/// What became of one due row in a drain.
enum Step {
    /// Its final outcome, to record with the page.
    Final(Outcome),
    /// Handed to an outbox (or already there): its report decides.
    InFlight,
    /// Stays due (no reader, an attempt short of the limit, held back, outbox full).
    Kept,
}

/// How a row left the worker.
enum Sending {
    /// Handled here (system, agent-to-agent, unroutable): this is its outcome.
    Done(Delivered),
    /// Queued in its channel's outbox.
    Handed,
    /// The outbox is full: it stays queued.
    Busy,
    /// Refused for good (an unknown or invalid system action, an invalid question): recorded as
    /// failed, not retried.
    Refused(String),
}

impl Delivery {
    pub fn new(paths: Paths, outboxes: Outboxes) -> anyhow::Result<Delivery> {
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
            outboxes,
            attempts: HashMap::new(),
            in_flight: HashMap::new(),
            retry_at: HashMap::new(),
            settling: HashMap::new(),
            wake: None,
            activity: None,
            typing: None,
            health: Health::default(),
            sent_log,
            unrecorded: leftover,
            settled: HashMap::new(),
            last_full: None,
            stats: Arc::default(),
            approval_ttl: super::approvals::DEFAULT_TTL,
        };
        delivery.record_leftovers();
        Ok(delivery)
    }

    /// Wake target sessions of agent-to-agent messages through `wake` (the runtime's waker),
    /// and raise `activity` when a session's `outbound.db` changed.
    pub fn waking(mut self, wake: Wakes, activity: Signal) -> Delivery {
        self.wake = Some(wake);
        self.activity = Some(activity);
        self
    }

    /// How long the approval cards of self-modification requests may be answered.
    pub fn with_approval_ttl(mut self, ttl: std::time::Duration) -> Delivery {
        self.approval_ttl = ttl;
        self
    }

    /// Tell the typing indicator (`runtime::typing`) when a reply reached its chat.
    pub fn typing(mut self, typing: Typing) -> Delivery {
        self.typing = Some(typing);
        self
    }

    /// The worker's counters (shared; read them from any thread).
    pub fn stats(&self) -> Arc<DeliveryStats> {
        Arc::clone(&self.stats)
    }

    /// Starts the worker on its own thread.
    pub fn spawn(self, inbox: Inbox) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("delivery".into())
            .spawn(move || self.run(inbox))
    }

    /// Runs until [`Work::Stop`]: takes coalesced batches from `inbox`, and runs the backstop
    /// once per [`BACKSTOP`].
    pub fn run(mut self, inbox: Inbox) {
        info!("delivery started");
        let mut next_backstop = Instant::now() + BACKSTOP;
        loop {
            let mut batch = inbox.recv(next_backstop, COALESCE).unwrap_or_default();
            let now = Instant::now();
            if now >= next_backstop {
                batch.backstop = true;
                next_backstop = now + BACKSTOP;
            }
            let stop = batch.stop;
            self.handle(batch);
            if stop {
                self.finish(&inbox);
                break;
            }
        }
        info!("delivery stopped");
    }

    /// Handles one batch: the reports first (they free rows in flight), then the drains.
    pub fn handle(&mut self, mut batch: Batch) {
        let again = self.take_reports(std::mem::take(&mut batch.reports));
        let mut targets = self.targets(&batch);
        targets.extend(again);
        for (agent, session) in targets {
            self.drain_tracked(&agent, &session);
        }
        self.stats.passes.fetch_add(1, Ordering::Relaxed);
    }

    /// At stop: records the reports of rows in flight that come within [`STOP_GRACE`]; rows
    /// still in flight then stay queued (sent again after restart if they did go out).
    fn finish(&mut self, inbox: &Inbox) {
        let deadline = Instant::now() + STOP_GRACE;
        while !self.in_flight.is_empty() {
            let Some(batch) = inbox.recv(deadline, COALESCE) else {
                warn!(
                    rows = self.in_flight.len(),
                    "stopping with replies in the channels' hands; they stay queued"
                );
                return;
            };
            self.take_reports(batch.reports);
        }
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
        self.settled.remove(session);
        self.settling.remove(session);
        match self.drain(agent, session) {
            Drained::Settled if trusted => {
                self.settled.insert(session.to_string(), before);
            }
            Drained::InFlight if trusted => {
                self.settling.insert(session.to_string(), before);
            }
            _ => {}
        }
        if changed && let Some(activity) = &self.activity {
            activity.raise();
        }
    }

    /// Delivers every due row of one session (docs/runtime.md#the-message-path): rows for
    /// channels are handed to their outboxes, the others are handled here. Errors are logged
    /// per row.
    pub fn drain(&mut self, agent: &str, session: &str) -> Drained {
        self.stats.drains.fetch_add(1, Ordering::Relaxed);
        let reporter = Reporter {
            conn: &self.conn,
            outboxes: &self.outboxes,
            paths: &self.paths,
        };
        let Some((conn, outbound)) = self.health.open(&reporter, agent, session) else {
            return Drained::Unsettled;
        };
        let path = session_db::inbound_path(&self.paths.session(agent, session));
        let inbound = Inbound {
            file: InboundFile {
                id: health::file_id(&path),
                path,
                replaced: std::cell::Cell::new(false),
            },
            conn,
        };
        // Rows sent earlier whose record failed: record them before anything is re-sent.
        let held = self.record_unrecorded(session);
        let mut settled = held.is_empty();
        let mut in_flight = false;
        // Rows that stay due (no reader yet, an attempt short of the limit, in flight, held) are
        // skipped by the next page's offset; every other row of a page is recorded before the
        // next.
        let mut kept = 0;
        for _ in 0..MAX_PAGES {
            if !inbound.file.is_current() {
                debug!(
                    session,
                    "inbound.db was replaced during the drain; stopping it"
                );
                return Drained::Unsettled;
            }
            let page = match session_db::due_outbound(&inbound.conn, &outbound, kept) {
                Ok(page) => page,
                Err(err) if err.is_missing() => {
                    debug!(session, error = %err, "outbound.db went away during the drain");
                    return Drained::Unsettled;
                }
                Err(err) => {
                    warn!(session, error = %err, "reading outbound rows failed");
                    return Drained::Unsettled;
                }
            };
            let full = page.len() == session_db::untrusted::DUE_PAGE;
            let mut outcomes = Vec::new();
            for due in page {
                if held.contains(due.id()) {
                    kept += 1;
                    continue;
                }
                match self.deliver_due(agent, session, &due) {
                    Step::Final(outcome) => outcomes.push((due.id().to_string(), outcome)),
                    Step::InFlight => {
                        kept += 1;
                        in_flight = true;
                    }
                    Step::Kept => {
                        kept += 1;
                        settled = false;
                    }
                }
            }
            if !self.record(&inbound.file, agent, session, &outcomes) {
                return Drained::Unsettled;
            }
            if inbound.file.replaced.get() {
                // The next drain opens the new file (and restores its projection).
                debug!(
                    session,
                    "inbound.db was replaced during the drain; stopping it"
                );
                return Drained::Unsettled;
            }
            if !full {
                return match (settled && !has_later_rows(&outbound, session), in_flight) {
                    (false, _) => Drained::Unsettled,
                    (true, true) => Drained::InFlight,
                    (true, false) => Drained::Settled,
                };
            }
        }
        // More pages than one drain reads: the next drain continues.
        Drained::Unsettled
    }

    /// Health of the session files (tests).
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Handles one due row.
    fn deliver_due(&mut self, agent: &str, session: &str, due: &Due) -> Step {
        if let Some(flight) = self.in_flight.get_mut(due.id()) {
            flight.asked_again = true;
            return Step::InFlight;
        }
        if self
            .retry_at
            .get(due.id())
            .is_some_and(|at| *at > Instant::now())
        {
            return Step::Kept;
        }
        match delivered::outcome(&self.conn, session, due.id()) {
            Ok(Some(outcome)) => {
                // Delivered before `inbound.db` was recreated (or recorded just before a
                // kill): recording it again restores the projection only.
                return Step::Final(outcome);
            }
            Ok(None) => {}
            Err(err) => {
                warn!(session, id = %due.id(), error = %err, "delivery record not readable; row left for later");
                return Step::Kept;
            }
        }
        let row = match due {
            Due::Row(row) => row,
            Due::Bad { id, reason } => {
                warn!(session, id = %id, %reason, "outbound row refused: out of bounds; recorded as failed");
                return Step::Final(FAILED);
            }
        };
        if let Err(reason) = check_row(row) {
            warn!(session, id = %row.id, %reason, "outbound row refused; recorded as failed");
            return Step::Final(FAILED);
        }
        let span =
            info_span!("deliver", session, row = %row.id, in_reply_to = row.in_reply_to.as_deref());
        let _entered = span.enter();
        self.deliver_row(agent, session, row, &span)
    }

    /// Sends one row, or hands it to its channel's outbox.
    fn deliver_row(
        &mut self,
        agent: &str,
        session: &str,
        row: &OutboundRow,
        span: &tracing::Span,
    ) -> Step {
        let sending = self.send(agent, session, row, span);
        match sending {
            Ok(Sending::Done(delivered)) => {
                match self.outcome_of(agent, session, &row.id, Ok(delivered)) {
                    Some(outcome) => Step::Final(outcome),
                    None => Step::Kept,
                }
            }
            Ok(Sending::Handed) => {
                self.in_flight.insert(
                    row.id.clone(),
                    Flight {
                        session: session.to_string(),
                        asked_again: false,
                    },
                );
                Step::InFlight
            }
            Ok(Sending::Refused(reason)) => {
                warn!(session, id = %row.id, %reason, "row refused; recorded as failed");
                self.attempts.remove(&row.id);
                Step::Final(FAILED)
            }
            Ok(Sending::Busy) => {
                debug!(session, id = %row.id, "the channel's outbox is full; reply stays queued");
                Step::Kept
            }
            Err(reason) => match self.failed_attempt(session, &row.id, &reason) {
                Some(outcome) => Step::Final(outcome),
                None => Step::Kept,
            },
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

    /// Records a page's outcomes: the central record first (the authority, one transaction),
    /// then the projection. False when the central record failed: the sent rows are kept as
    /// unrecorded (never sent again) and recorded by the session's next drain.
    fn record(
        &mut self,
        inbound: &InboundFile,
        agent: &str,
        session: &str,
        outcomes: &[(String, Outcome)],
    ) -> bool {
        if outcomes.is_empty() {
            return true;
        }
        match record_central(&mut self.conn, session, outcomes) {
            Ok(()) => {
                self.mark_projection(inbound, session, outcomes);
                self.reset_log();
                true
            }
            Err(err) => {
                warn!(session, error = %err, rows = outcomes.len(), "deliveries not recorded yet; will retry");
                self.unrecorded
                    .extend(outcomes.iter().filter(|(_, outcome)| !outcome.failed).map(
                        |(id, outcome)| Sent {
                            agent: agent.to_string(),
                            session: session.to_string(),
                            id: id.clone(),
                            platform_message_id: outcome.platform_message_id.clone(),
                        },
                    ));
                false
            }
        }
    }

    /// Records this session's rows left unrecorded by an earlier drain or a killed process.
    /// Returns the ids still unrecorded (they must not be sent again).
    fn record_unrecorded(&mut self, session: &str) -> HashSet<String> {
        let (mine, others): (Vec<Sent>, Vec<Sent>) = std::mem::take(&mut self.unrecorded)
            .into_iter()
            .partition(|sent| sent.session == session);
        self.unrecorded = others;
        if mine.is_empty() {
            return HashSet::new();
        }
        let outcomes: Vec<(String, Outcome)> = mine
            .iter()
            .map(|sent| {
                (
                    sent.id.clone(),
                    Outcome {
                        failed: false,
                        platform_message_id: sent.platform_message_id.clone(),
                    },
                )
            })
            .collect();
        match record_central(&mut self.conn, session, &outcomes) {
            Ok(()) => {
                // The projection follows at this drain (a recorded row is restored there).
                debug!(
                    session,
                    rows = outcomes.len(),
                    "earlier deliveries recorded"
                );
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
        let sessions: BTreeSet<String> = self
            .unrecorded
            .iter()
            .map(|sent| sent.session.clone())
            .collect();
        if sessions.is_empty() {
            return;
        }
        info!(
            rows = self.unrecorded.len(),
            "recording deliveries sent just before the last stop"
        );
        for session in sessions {
            self.record_unrecorded(&session);
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

    /// Writes outcomes into `inbound.db` through a read-write connection opened for this one
    /// transaction (the drain reads through a read-only one), unless the file was replaced
    /// since the drain opened it: a read-write connection to a deleted DB file takes the new
    /// file's journal for its own hot journal and rolls it back, breaking the new file's writer
    /// (SQLite's "unlinked while open" hazard). Both narrow that window to microseconds.
    fn mark_projection(
        &self,
        inbound: &InboundFile,
        session: &str,
        outcomes: &[(String, Outcome)],
    ) {
        // A file that is gone gets its projection back at the drain that recreates it.
        if inbound.id.is_none() || !inbound.is_current() {
            return;
        }
        let records: Vec<DeliveryRecord> = outcomes
            .iter()
            .map(|(id, outcome)| DeliveryRecord {
                message_out_id: id.clone(),
                platform_message_id: outcome.platform_message_id.clone(),
                status: if outcome.failed {
                    DeliveryStatus::Failed
                } else {
                    DeliveryStatus::Delivered
                },
            })
            .collect();
        let written = session_db::open_inbound_host(&inbound.path)
            .and_then(|mut writer| session_db::mark_delivered(&mut writer, &records));
        if let Err(err) = written {
            warn!(session, error = %err, "delivery not recorded in inbound.db");
        }
    }

    /// Routes one row (docs/runtime.md#delivering-a-sessions-rows): system actions, agent-to-agent,
    /// or a channel send checked against the agent's destinations (its own chat is always allowed)
    /// and handed to the channel's outbox.
    fn send(
        &self,
        agent: &str,
        session: &str,
        row: &OutboundRow,
        span: &tracing::Span,
    ) -> Result<Sending, String> {
        let content: serde_json::Value = serde_json::from_str(&row.content)
            .map_err(|err| format!("content is not JSON: {err}"))?;
        if row.kind == Kind::System {
            let cards = std::cell::RefCell::new(Vec::new());
            let host = super::system::Host {
                conn: &self.conn,
                paths: &self.paths,
                agent,
                adapters: self.outboxes.adapters(),
                approval_ttl: self.approval_ttl,
                cards: &cards,
            };
            let handled = super::system::handle(&host, session, &row.id, &content)?;
            for (channel_type, card) in cards.into_inner() {
                self.outboxes.notice(&channel_type, card, "approval");
            }
            if let Some(wake) = &self.wake {
                wake.send(session.to_string(), Some(row.id.clone()));
            }
            return Ok(match handled {
                super::system::Handled::Done { note } => {
                    info!(session, id = %row.id, %note, "system action handled");
                    Sending::Done(Delivered::Sent(None))
                }
                super::system::Handled::Refused { note } => Sending::Refused(note),
            });
        }
        let (Some(channel_type), Some(platform_id)) = (&row.channel_type, &row.platform_id) else {
            warn!(session, id = %row.id, "outbound row has no routing; dropped");
            return Ok(Sending::Done(Delivered::Sent(None)));
        };
        if channel_type == AGENT_CHANNEL_TYPE {
            let routed = super::a2a::route(&self.conn, &self.paths, agent, session, row)?;
            debug!(session, id = %row.id, to = %routed.session, "agent message routed");
            if let Some(wake) = &self.wake {
                wake.send(routed.session, Some(row.id.clone()));
            }
            return Ok(Sending::Done(Delivered::Sent(None)));
        }
        self.authorise(agent, session, channel_type, platform_id)?;
        // A question is stored before its card goes out, so the first tap finds it.
        match super::questions::record(&self.conn, session, row) {
            Ok(()) => {}
            Err(super::questions::Refusal::Invalid(why)) => {
                return Ok(Sending::Refused(format!("question not shown: {why}")));
            }
            Err(super::questions::Refusal::Db(err)) => {
                return Err(format!("recording the question failed: {err}"));
            }
        }
        let mut content = content;
        strip_agent_suffix(&mut content, agent);
        let names = super::outbox_files::requested(&content);
        let files = super::outbox_files::read(&self.paths.session(agent, session), &row.id, &names);
        let message = Outbound {
            id: row.id.clone(),
            agent: Some(agent.to_string()),
            platform_id: platform_id.clone(),
            thread_id: row.thread_id.clone(),
            kind: row.kind.to_string(),
            content,
            in_reply_to: row.in_reply_to.clone(),
            files,
        };
        match self
            .outboxes
            .row(channel_type, message, agent, session, span.clone())
        {
            Handed::Queued => Ok(Sending::Handed),
            Handed::Full => Ok(Sending::Busy),
            Handed::NoChannel => Err(format!("no `{channel_type}` channel is running")),
        }
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

/// The `inbound.db` a drain works on.
struct Inbound {
    /// Read-only: the due query.
    conn: InboundDb,
    file: InboundFile,
}

/// Where outcomes are projected, and whether it is still the file a drain (or a report batch)
/// started with.
struct InboundFile {
    path: std::path::PathBuf,
    /// The file's identity when the drain opened it (`None`: there was none).
    id: Option<FileId>,
    /// Set when the file at `path` is no longer `id`: the drain stops.
    replaced: std::cell::Cell<bool>,
}

impl InboundFile {
    /// The file at `path` as it is now.
    fn now(path: std::path::PathBuf) -> InboundFile {
        InboundFile {
            id: health::file_id(&path),
            path,
            replaced: std::cell::Cell::new(false),
        }
    }

    /// Whether the file at the path is still the one `conn` has open (else `replaced` is set).
    fn is_current(&self) -> bool {
        let current = health::file_id(&self.path) == self.id;
        if !current {
            self.replaced.set(true);
        }
        current
    }
}

const FAILED: Outcome = Outcome {
    failed: true,
    platform_message_id: None,
};

/// Validates a container-written row before anything is looked up for it (issue 7 point 6):
/// a known `kind`, content that is a JSON object, and routing fields of a sane shape
/// (`channel_type` a lower-case name; ids and addresses without control characters). Sizes
/// were bounded when the row was read. A failure is final: the row is recorded failed.
/// An edit or a reaction names an inbound message by its stored id, which the router suffixed
/// with `:<agent>` (v2 handed the suffixed id to the adapter; docs/channels.md#the-adapter-contract): the
/// adapter gets the platform's own message id.
pub fn strip_agent_suffix(content: &mut serde_json::Value, agent: &str) {
    let is_operation = matches!(
        content.get("operation").and_then(serde_json::Value::as_str),
        Some("edit" | "reaction")
    );
    if !is_operation {
        return;
    }
    let suffix = format!(":{agent}");
    if let Some(id) = content
        .get("messageId")
        .and_then(serde_json::Value::as_str)
        .and_then(|id| id.strip_suffix(&suffix))
        .map(str::to_string)
    {
        content["messageId"] = serde_json::Value::String(id);
    }
}

pub fn check_row(row: &OutboundRow) -> Result<(), String> {
    if !Kind::OUTBOUND.contains(&row.kind) {
        let known: Vec<&str> = Kind::OUTBOUND.iter().map(Kind::as_str).collect();
        return Err(format!(
            "unknown kind `{}` (known: {})",
            row.kind.as_str().escape_debug(),
            known.join(", ")
        ));
    }
    match serde_json::from_str::<serde_json::Value>(&row.content) {
        Ok(serde_json::Value::Object(_)) => {}
        Ok(_) => return Err("content is not a JSON object".to_string()),
        Err(err) => return Err(format!("content is not JSON: {err}")),
    }
    if let Some(channel_type) = &row.channel_type {
        let valid = !channel_type.is_empty()
            && channel_type.len() <= 64
            && channel_type.bytes().all(|byte| {
                byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-' || byte == b'_'
            });
        if !valid {
            return Err(format!(
                "`channel_type` `{}` is not a channel name",
                channel_type.escape_debug()
            ));
        }
    }
    let fields = [
        ("id", Some(&row.id)),
        ("platform_id", row.platform_id.as_ref()),
        ("thread_id", row.thread_id.as_ref()),
        ("in_reply_to", row.in_reply_to.as_ref()),
    ];
    for (name, value) in fields {
        if let Some(value) = value
            && value.chars().any(char::is_control)
        {
            return Err(format!("`{name}` holds control characters"));
        }
    }
    if row.platform_id.as_deref() == Some("") {
        return Err("`platform_id` is empty".to_string());
    }
    Ok(())
}

/// Where a session's `outbound.db` lives.
fn outbound_path(session_dir: &Path) -> std::path::PathBuf {
    session_db::outbound_path(session_dir)
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

/// Records outcomes in the central `delivered_outbound` in one transaction.
fn record_central(
    conn: &mut Connection,
    session: &str,
    outcomes: &[(String, Outcome)],
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (id, outcome) in outcomes {
        delivered::record(&tx, session, id, outcome)?;
    }
    tx.commit()
}

/// Whether some row waits for a later `deliver_after` (so the session is not settled).
fn has_later_rows(outbound: &OutboundDb, session: &str) -> bool {
    session_db::has_later_outbound(outbound).unwrap_or_else(|err| {
        debug!(session, error = %err, "cannot check for rows due later");
        true
    })
}

#[path = "delivery_reports.rs"]
mod reports;

#[cfg(test)]
#[path = "delivery_tests.rs"]
mod tests;
