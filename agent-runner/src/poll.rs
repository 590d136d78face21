//! The poll loop (docs/agent-runner.md#the-loop): pending rows → batch → provider query → outbound
//! rows.
//!
//! Single-threaded and synchronous. Instead of v2's 1 s sleep it stats `inbound.db` every
//! [`TICK`] and queries only when its (mtime, length) changed, with a full poll at least every
//! [`FULL_POLL`] as a backstop; the same watch drives follow-up injection into an open query.
//! A stop flag (SIGTERM/SIGINT) is honoured at safe points: between polls, or by ending the open
//! query so the current turn finishes first. This module owns batching and routing decisions;
//! SQL lives in `session_db::container`.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, info, warn};

use crate::container_config::ContainerConfig;
use crate::destinations::{self, system_prompt_addendum};
use crate::format::{format_messages, format_with_commands, is_clear_command, is_runner_command};
use crate::outage::{self, Tell};
use crate::output::{self, nudge, strip_internal_tags};
use crate::providers::{
    AgentQuery, Next, Provider, ProviderEvent, ProviderOptions, QueryInput, UnknownProvider,
    create_provider,
};
use crate::session_db::container::{self as db, InboundRow, NewOutbound};
use crate::session_db::{
    self, AckStatus, INBOUND_FILE, InboundDb, Kind, OutboundDb, SessionDbError, new_id,
};

/// How often the inbound file's metadata is checked (and a provider is waited on).
pub const TICK: Duration = Duration::from_millis(10);
/// Longest time between two pending queries, changed file or not.
pub const FULL_POLL: Duration = Duration::from_secs(1);

/// Why the runner could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Db(#[from] SessionDbError),
    #[error(transparent)]
    Provider(#[from] UnknownProvider),
}

/// Creates the configured provider and runs the loop until `stop` is set; `base_url` is the
/// credential forwarder's, when it runs.
pub fn start(
    workspace: &Path,
    config: &ContainerConfig,
    tz: &str,
    base_url: Option<String>,
    stop: &AtomicBool,
) -> Result<(), PollError> {
    let options = ProviderOptions {
        config: config.clone(),
        workspace: workspace.to_path_buf(),
        base_url,
    };
    let provider = create_provider(&config.provider, options)?;
    info!(provider = %config.provider, "Starting agent-runner");
    Runner::new(workspace, config, tz, provider)?.run(stop)
}

/// The reply address of a batch: its first (oldest) row.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Batch {
    first_id: String,
    channel_type: Option<String>,
    platform_id: Option<String>,
    thread_id: Option<String>,
}

/// Per-query bookkeeping.
#[derive(Debug, Default)]
struct Turn {
    /// Claimed ids per user turn, oldest first (initial batch, then each pushed follow-up): a
    /// `result` completes the oldest turn only, so a follow-up pushed while an earlier turn was
    /// still in flight stays claimed until its own result (a crash in between retries it).
    awaiting: VecDeque<Vec<String>>,
    /// Whether the "not delivered" nudge was pushed since the last user turn.
    nudged: bool,
    /// Whether the query's input was ended (command pending or stop requested).
    ended: bool,
    /// Claimed ids given back for a retry (their turn could not reach the model's API): not
    /// completed when the query ends.
    given_back: Vec<String>,
}

/// Detects changes of `inbound.db` cheaply (metadata only).
struct InboundWatch {
    path: PathBuf,
    seen: Option<(SystemTime, u64)>,
    last_poll: Option<Instant>,
}

impl InboundWatch {
    /// True when the file changed since the last `true`, or a full poll is due.
    fn due(&mut self) -> bool {
        let now = fs::metadata(&self.path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        let stale = self.last_poll.is_none_or(|t| t.elapsed() >= FULL_POLL);
        if now != self.seen || stale {
            self.seen = now;
            self.last_poll = Some(Instant::now());
            return true;
        }
        false
    }

    /// Makes the next `due` true (work was just done: look again at once).
    fn force(&mut self) {
        self.last_poll = None;
    }
}

/// The runner's state for one container lifetime.
/// Every field is written and read only by the loop's own thread.
pub struct Runner {
    /// The session folder as mounted (`inbound.db`; `outbound/` holds `outbound.db` and
    /// `.heartbeat`).
    workspace: PathBuf,
    /// The user's zone for prompt times.
    tz: String,
    /// Pending window N (`maxMessagesPerPrompt`).
    max_messages: usize,
    /// Registry name; keys the continuation in `session_state`.
    provider_name: String,
    provider: Box<dyn Provider>,
    /// Long-lived read-only inbound connection: destinations, threads, seq max.
    inbound: InboundDb,
    /// `(st_dev, st_ino)` of the `inbound.db` that `inbound` has open; the host may recreate a
    /// lost file, and a connection to a deleted file reads stale rows (issue 8 point 12).
    inbound_id: Option<(u64, u64)>,
    /// The one writer connection of `outbound.db`.
    outbound: OutboundDb,
    /// `(st_dev, st_ino)` of the `outbound.db` that `outbound` has open: another value (or no
    /// file) at the path means it was deleted or replaced, and is reopened (issue 8 point 12).
    outbound_id: Option<(u64, u64)>,
    /// Addendum built once at startup (destinations snapshot,
    /// docs/agent-runner.md#destinations-and-the-system-prompt).
    system_prompt: String,
    /// Resume id: set by every `init`, cleared by `/clear` and session-invalid errors.
    continuation: Option<String>,
    /// True until the first pending query (which alone sees `on_wake` rows).
    first_poll: bool,
    /// Change detection of `inbound.db` for the outer loop and follow-ups.
    watch: InboundWatch,
}

impl Runner {
    /// Opens the session DBs and builds the system-prompt addendum (a startup snapshot).
    pub fn new(
        workspace: &Path,
        config: &ContainerConfig,
        tz: &str,
        provider: Box<dyn Provider>,
    ) -> Result<Self, PollError> {
        let inbound_path = workspace.join(INBOUND_FILE);
        let inbound = session_db::open_inbound_container(&inbound_path)?;
        let inbound_id = file_id(&inbound_path);
        let (outbound, outbound_id) = open_outbound(workspace)?;
        let dests = db::destinations(&inbound)?;
        let system_prompt = system_prompt_addendum(config.assistant_name.as_deref(), &dests);
        Ok(Runner {
            workspace: workspace.to_path_buf(),
            tz: tz.to_string(),
            max_messages: config.max_messages_per_prompt,
            provider_name: config.provider.clone(),
            provider,
            inbound,
            inbound_id,
            outbound,
            outbound_id,
            system_prompt,
            continuation: None,
            first_poll: true,
            watch: InboundWatch {
                path: inbound_path,
                seen: None,
                last_poll: None,
            },
        })
    }

    /// Runs until `stop` is set. A failing iteration is logged and retried after a full poll
    /// interval; only startup errors are returned.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<(), PollError> {
        self.continuation = db::migrate_legacy_continuation(&self.outbound, &self.provider_name)?;
        if let Some(c) = &self.continuation {
            info!(continuation = %c, "Resuming agent session");
        }
        let stale = db::delete_stale_claims(&self.outbound)?;
        if stale > 0 {
            info!(count = stale, "Released stale claims");
        }
        while !stop.load(Ordering::Relaxed) {
            if !self.watch.due() {
                std::thread::sleep(TICK);
                continue;
            }
            match self.iteration(stop) {
                Ok(true) => self.watch.force(),
                Ok(false) => {}
                Err(err) if err.is_damaged() => {
                    warn!(error = %err, "outbound.db is damaged; moving it aside");
                    if let Err(err) = self.reopen_outbound(true) {
                        warn!(error = %err, "Poll error");
                        std::thread::sleep(FULL_POLL);
                    }
                }
                Err(err) => {
                    warn!(error = %err, "Poll error");
                    std::thread::sleep(FULL_POLL);
                }
            }
        }
        info!("Stop requested, exiting");
        Ok(())
    }

    fn pending(&self, first_poll: bool) -> Result<Vec<InboundRow>, SessionDbError> {
        let inbound = self.workspace.join(INBOUND_FILE);
        db::pending(&inbound, &self.outbound, first_poll, self.max_messages)
    }

    /// Reopens a session DB whose file at its path is not the one open (deleted or replaced):
    /// replies written to a deleted `outbound.db` would never reach the host, and a deleted
    /// `inbound.db` holds none of the new messages.
    fn check_outbound(&mut self) -> Result<(), SessionDbError> {
        let path = session_db::outbound_path(&self.workspace);
        if file_id(&path) != self.outbound_id {
            warn!(path = %path.display(), "outbound.db was deleted or replaced; reopening it");
            self.reopen_outbound(false)?;
        }
        let inbound_path = self.workspace.join(INBOUND_FILE);
        let inbound_id = file_id(&inbound_path);
        if inbound_id.is_some() && inbound_id != self.inbound_id {
            warn!(path = %inbound_path.display(), "inbound.db was replaced; reopening it");
            self.inbound = session_db::open_inbound_container(&inbound_path)?;
            self.inbound_id = inbound_id;
        }
        Ok(())
    }

    /// Opens `outbound.db` afresh (creating it); `damaged`: move the current file aside first.
    fn reopen_outbound(&mut self, damaged: bool) -> Result<(), SessionDbError> {
        if damaged {
            move_aside(&session_db::outbound_path(&self.workspace));
        }
        let (outbound, id) = open_outbound(&self.workspace)?;
        self.outbound = outbound;
        self.outbound_id = id;
        Ok(())
    }

    /// One outer iteration (docs/agent-runner.md#the-loop). Returns whether a batch was taken.
    fn iteration(&mut self, stop: &AtomicBool) -> Result<bool, SessionDbError> {
        self.check_outbound()?;
        let first = std::mem::replace(&mut self.first_poll, false);
        let rows: Vec<_> = self
            .pending(first)?
            .into_iter()
            .filter(|r| r.kind != Kind::System)
            .collect();
        // Accumulate gate: context-only rows wait for a trigger row.
        let Some(head) = rows.first().filter(|_| rows.iter().any(|r| r.trigger)) else {
            return Ok(false);
        };
        let batch = Batch {
            first_id: head.id.clone(),
            channel_type: head.channel_type.clone(),
            platform_id: head.platform_id.clone(),
            thread_id: head.thread_id.clone(),
        };
        db::ack(&mut self.outbound, &ids(&rows), AckStatus::Processing)?;
        let (clears, normal): (Vec<_>, Vec<_>) = rows.into_iter().partition(is_clear_command);
        for _ in &clears {
            info!("Clearing session (resetting continuation)");
            self.continuation = None;
            db::clear_continuation(&self.outbound, &self.provider_name)?;
            self.write_batch_reply(&batch, "Session cleared.")?;
        }
        db::ack(&mut self.outbound, &ids(&clears), AckStatus::Completed)?;
        if normal.is_empty() {
            info!(
                count = clears.len(),
                "All message(s) were commands, skipping query"
            );
            return Ok(true);
        }
        let dests = db::destinations(&self.inbound)?;
        let native = self.provider.supports_native_slash_commands();
        let prompt = format_with_commands(&normal, &dests, &self.tz, native);
        let mut kinds: Vec<_> = normal.iter().map(|r| r.kind.as_str()).collect();
        kinds.sort_unstable();
        kinds.dedup();
        info!(count = normal.len(), kinds = %kinds.join(","), "Processing message(s)");
        let processing = ids(&normal);
        // The tools process (`agent-runner mcp`) reads it: its sends answer this batch.
        db::set_turn_reply(&self.outbound, Some(&batch.first_id))?;
        let (outcome, given_back) = self.run_query(prompt, &batch, &processing, stop);
        db::set_turn_reply(&self.outbound, None)?;
        if let Err(message) = outcome {
            warn!(error = %message, "Query error");
            if self.continuation.is_some() && self.provider.is_session_invalid(&message) {
                info!("Stale session detected, clearing for next retry");
                self.continuation = None;
                db::clear_continuation(&self.outbound, &self.provider_name)?;
            }
            self.write_batch_reply(&batch, &format!("Error: {message}"))?;
        }
        let finished: Vec<String> = processing
            .into_iter()
            .filter(|id| !given_back.contains(id))
            .collect();
        db::ack(&mut self.outbound, &finished, AckStatus::Completed)?;
        info!(
            count = finished.len() + clears.len(),
            given_back = given_back.len(),
            "Completed message(s)"
        );
        Ok(true)
    }

    /// Runs one query to its end (docs/agent-runner.md#the-loop); `Err` carries a thrown provider
    /// error. Also returns the claimed ids given back for a retry.
    fn run_query(
        &mut self,
        prompt: String,
        batch: &Batch,
        initial: &[String],
        stop: &AtomicBool,
    ) -> (Result<(), String>, Vec<String>) {
        let mut query = self.provider.query(QueryInput {
            prompt,
            continuation: self.continuation.clone(),
            system_prompt: self.system_prompt.clone(),
        });
        let mut turn = Turn {
            awaiting: VecDeque::from([initial.to_vec()]),
            ..Turn::default()
        };
        let outcome = loop {
            match query.next_event(TICK) {
                Next::Event(event) => {
                    session_db::touch_heartbeat(&self.workspace);
                    if let Err(err) = self.on_event(event, query.as_mut(), batch, &mut turn) {
                        warn!(error = %err, "Event handling error");
                    }
                }
                Next::Idle => {}
                Next::Done => break Ok(()),
                Next::Failed(message) => break Err(message),
            }
            if turn.ended {
                continue;
            }
            if stop.load(Ordering::Relaxed) {
                info!("Stop requested, finishing the current turn");
                query.end();
                turn.ended = true;
            } else if self.watch.due()
                && let Err(err) = self.follow_up(query.as_mut(), &mut turn)
            {
                warn!(error = %err, "Follow-up poll error");
            }
        };
        let remaining: Vec<String> = std::mem::take(&mut turn.awaiting)
            .into_iter()
            .flatten()
            .collect();
        if let Err(err) = db::ack(&mut self.outbound, &remaining, AckStatus::Completed) {
            warn!(error = %err, "Completing follow-ups failed");
        }
        (outcome, turn.given_back)
    }

    fn on_event(
        &mut self,
        event: ProviderEvent,
        query: &mut dyn AgentQuery,
        batch: &Batch,
        turn: &mut Turn,
    ) -> Result<(), SessionDbError> {
        match event {
            ProviderEvent::Init { continuation } => {
                info!(session = %continuation, "Session");
                db::set_continuation(&self.outbound, &self.provider_name, &continuation)?;
                self.continuation = Some(continuation);
            }
            ProviderEvent::Result { text } => {
                let text = text.unwrap_or_default();
                debug!(result = %text.chars().take(200).collect::<String>(), "Result");
                // The replies and the completion of what they answer commit together: a kill
                // can neither lose an answer nor send it twice.
                let answered = turn.awaiting.pop_front().unwrap_or_default();
                let (replies, scratchpad) = if text.is_empty() {
                    (Vec::new(), String::new())
                } else {
                    self.replies(&text, batch)?
                };
                db::write_replies_and_complete(
                    &self.inbound,
                    &mut self.outbound,
                    &replies,
                    &answered,
                )?;
                self.outage_over()?;
                let sent = replies.len();
                if sent == 0 && !scratchpad.is_empty() {
                    warn!("agent output had no <message to=\"...\"> blocks, nothing was sent");
                    if !turn.nudged {
                        let names: Vec<_> = db::destinations(&self.inbound)?
                            .into_iter()
                            .map(|d| d.name)
                            .collect();
                        query.push(&nudge(&names));
                        // The nudge is a user turn of its own; its result completes nothing.
                        turn.awaiting.push_back(Vec::new());
                        turn.nudged = true;
                    }
                }
            }
            ProviderEvent::TurnError { reply } => {
                // The turn is over: the user hears why, and what it answered is done.
                warn!(reply = %reply, "the turn ended in an error");
                let answered = turn.awaiting.pop_front().unwrap_or_default();
                db::write_replies_and_complete(
                    &self.inbound,
                    &mut self.outbound,
                    &[batch_reply(batch, &reply)],
                    &answered,
                )?;
                self.outage_over()?;
            }
            ProviderEvent::TurnUnreachable { error, notice } => {
                let given_back = turn.awaiting.pop_front().unwrap_or_default();
                self.give_back(batch, &given_back, &error, &notice)?;
                turn.given_back.extend(given_back);
            }
            ProviderEvent::Unreachable { notice } => {
                if !db::outage_told(&self.outbound)? {
                    info!(notice = %notice, "the model's API is unreachable; telling the chat");
                    self.write_batch_reply(batch, &notice)?;
                    db::set_outage_told(&self.outbound, true)?;
                }
            }
            ProviderEvent::Notice { reply } => {
                info!(reply = %reply, "Notice");
                self.write_batch_reply(batch, &reply)?;
            }
            ProviderEvent::FollowUpJoined => {
                if turn.awaiting.len() >= 2
                    && let Some(joined) = turn.awaiting.remove(1)
                {
                    turn.awaiting[0].extend(joined);
                }
            }
            ProviderEvent::Error { message, retryable } => {
                warn!(error = %message, retryable, "Provider error");
            }
            ProviderEvent::Progress { message } => info!(progress = %message, "Progress"),
            ProviderEvent::Activity => {}
        }
        Ok(())
    }

    /// One follow-up tick (docs/agent-runner.md#the-loop) with two deliberate changes: only
    /// trigger=1 command rows end the query (runner quirk 18 in
    /// docs/agent-runner.md#decisions-on-the-quirks-of-reference-13), and context-only rows are not
    /// pushed (runner quirk 7 in docs/agent-runner.md#decisions-on-the-quirks-of-reference-13).
    fn follow_up(
        &mut self,
        query: &mut dyn AgentQuery,
        turn: &mut Turn,
    ) -> Result<(), SessionDbError> {
        self.check_outbound()?;
        let rows = self.pending(false)?;
        if rows.iter().any(|r| r.trigger && is_runner_command(r)) {
            info!("Pending slash command, ending stream so the outer loop can process it");
            query.end();
            turn.ended = true;
            return Ok(());
        }
        let rows: Vec<_> = rows
            .into_iter()
            .filter(|r| r.kind != Kind::System)
            .collect();
        if !rows.iter().any(|r| r.trigger) {
            return Ok(());
        }
        let claimed = ids(&rows);
        db::ack(&mut self.outbound, &claimed, AckStatus::Processing)?;
        let dests = db::destinations(&self.inbound)?;
        let text = format_messages(&rows, &dests, &self.tz);
        info!(
            count = rows.len(),
            "Pushing follow-up message(s) into active query"
        );
        turn.nudged = false;
        // The tools' sends now answer this follow-up.
        db::set_turn_reply(&self.outbound, Some(&rows[0].id))?;
        query.push(&text);
        turn.awaiting.push_back(claimed);
        Ok(())
    }

    /// A turn could not reach the model's API: its messages `ids` go back to the host, which
    /// retries them with backoff (docs/agent-runner.md#when-the-model-api-cannot-be-reached);
    /// the chat hears what [`outage::on_give_back`] decides, in the same transaction.
    fn give_back(
        &mut self,
        batch: &Batch,
        ids: &[String],
        error: &str,
        notice: &str,
    ) -> Result<(), SessionDbError> {
        let tries = db::tries(&self.inbound, ids)?;
        let told = db::outage_told(&self.outbound)?;
        let tell = outage::on_give_back(&tries, told, error);
        warn!(
            error,
            messages = ids.len(),
            ?tell,
            "the model's API could not be reached; giving the turn's messages back for a retry"
        );
        let replies = match &tell {
            Tell::Nothing => Vec::new(),
            Tell::Notice => vec![batch_reply(batch, notice)],
            Tell::Failure { message_id, text } => vec![NewOutbound {
                in_reply_to: Some(message_id.clone()),
                ..batch_reply(batch, text)
            }],
        };
        db::write_replies_and_give_back(&self.inbound, &mut self.outbound, &replies, ids)?;
        if tell.told_after(told) != told {
            db::set_outage_told(&self.outbound, !told)?;
        }
        Ok(())
    }

    /// A turn reached the model's API: an outage the chat was told of is over.
    fn outage_over(&mut self) -> Result<(), SessionDbError> {
        if db::outage_told(&self.outbound)? {
            info!("the model's API is reachable again");
            db::set_outage_told(&self.outbound, false)?;
        }
        Ok(())
    }

    /// Routes a result's blocks (docs/agent-runner.md#output-parsing) into the rows to write;
    /// returns (rows, scratchpad).
    fn replies(
        &mut self,
        text: &str,
        batch: &Batch,
    ) -> Result<(Vec<NewOutbound>, String), SessionDbError> {
        let parsed = output::parse(text);
        let dests = db::destinations(&self.inbound)?;
        let mut scratch = parsed.outside;
        let mut replies = Vec::new();
        for block in parsed.blocks {
            let Some(dest) = destinations::by_name(&dests, &block.to) else {
                warn!(to = %block.to, "Unknown destination, dropping block");
                scratch.push_str(&format!(
                    "\n[dropped: unknown destination \"{}\"] {}",
                    block.to, block.body
                ));
                continue;
            };
            let (channel_type, platform_id) = destinations::address(dest);
            let newest = match (&channel_type, &platform_id) {
                (Some(ct), Some(pid)) => db::newest_inbound_from(&self.inbound, ct, pid)?,
                _ => None,
            };
            let (in_reply_to, thread_id) = match newest {
                Some((id, thread)) => (id, thread),
                None => (batch.first_id.clone(), None),
            };
            let row = NewOutbound {
                id: new_id("msg"),
                in_reply_to: Some(in_reply_to),
                kind: Kind::Chat,
                platform_id,
                channel_type,
                thread_id,
                content: serde_json::json!({ "text": block.body }).to_string(),
            };
            replies.push(row);
        }
        let scratch = strip_internal_tags(&scratch);
        if !scratch.is_empty() {
            debug!(scratchpad = %scratch.chars().take(500).collect::<String>(), "scratchpad");
        }
        Ok((replies, scratch))
    }

    /// `Session cleared.` / `Error: …`: a chat row to the batch's own address, no in_reply_to.
    fn write_batch_reply(&mut self, batch: &Batch, text: &str) -> Result<(), SessionDbError> {
        db::write_outbound(&self.inbound, &mut self.outbound, &batch_reply(batch, text))?;
        Ok(())
    }
}

/// A chat row to the batch's own address, no in_reply_to.
fn batch_reply(batch: &Batch, text: &str) -> NewOutbound {
    NewOutbound {
        id: new_id("msg"),
        in_reply_to: None,
        kind: Kind::Chat,
        platform_id: batch.platform_id.clone(),
        channel_type: batch.channel_type.clone(),
        thread_id: batch.thread_id.clone(),
        content: serde_json::json!({ "text": text }).to_string(),
    }
}

/// Opens (creating) `outbound/outbound.db` and returns it with its file identity. A file that
/// is not a database, or not a regular file, is moved aside once and a fresh one created: the
/// container owns this file, so only it can repair it.
fn open_outbound(workspace: &Path) -> Result<(OutboundDb, Option<(u64, u64)>), SessionDbError> {
    let dir = session_db::outbound_dir(workspace);
    fs::create_dir_all(&dir).map_err(|source| SessionDbError::Io {
        path: dir.clone(),
        source,
    })?;
    let path = session_db::outbound_path(workspace);
    let regular = fs::symlink_metadata(&path).map_or(true, |m| m.file_type().is_file());
    if !regular {
        warn!(path = %path.display(), "outbound.db is not a regular file; moving it aside");
        move_aside(&path);
    }
    let conn = match session_db::open_outbound_container(&path) {
        Err(err) if err.is_damaged() => {
            warn!(error = %err, "outbound.db is damaged; moving it aside and starting a fresh one");
            move_aside(&path);
            session_db::open_outbound_container(&path)?
        }
        other => other?,
    };
    Ok((conn, file_id(&path)))
}

/// `(st_dev, st_ino)` of the file at `path` (not followed), `None` when absent.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Renames `path` (and its journal) to `<name>.damaged-<ms>` next to it; best effort.
fn move_aside(path: &Path) {
    let ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let mut journal = path.as_os_str().to_owned();
    journal.push(session_db::JOURNAL_SUFFIX);
    for from in [path.to_path_buf(), PathBuf::from(journal)] {
        let mut to = from.as_os_str().to_owned();
        to.push(format!(".damaged-{ms}"));
        if let Err(err) = fs::rename(&from, &to)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            warn!(path = %from.display(), error = %err, "cannot move a damaged file aside");
        }
    }
}

fn ids(rows: &[InboundRow]) -> Vec<String> {
    rows.iter().map(|r| r.id.clone()).collect()
}

#[cfg(test)]
mod tests;
