//! Damaged or missing session DBs (issue 8 point 12): found at every delivery drain, repaired
//! where the host can, and reported in the log and, once, in the chat.
//!
//! | found | what the host does |
//! |---|---|
//! | `inbound.db` missing | recreates it with the destinations and reply address; earlier replies stay recorded in the central DB, so none is sent again; told when it had existed (seen before, or `outbound.db` exists) |
//! | `inbound.db` damaged (not a database, not a regular file) | moves it aside (`inbound.db.damaged-<ms>`), recreates it, tells |
//! | `inbound.db` replaced (another file than last drain) | rewrites the projections, tells |
//! | `outbound.db` gone or replaced | tells (replies written but not delivered are lost); the runner creates a fresh one |
//! | `outbound.db` damaged (not a database, not a regular file, foreign schema) | never opened; tells once until it is healthy again; the runner moves it aside |
//!
//! The host never writes `outbound.db`: repairing it is the container's job (agent-runner's
//! `poll`). The memory of what was seen lives in the delivery worker, so after a restart of
//! the daemon the first drain only sees the current state.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use agent_runner::session_db::{self, InboundDb, OutboundDb};
use rusqlite::Connection;
use tracing::{debug, warn};

use super::outbox::Outboxes;
use super::{layout, session};
use crate::channels::Outbound;
use crate::db::sessions;
use crate::hostfs::Dir;
use crate::paths::Paths;

/// `(st_dev, st_ino)` of a session DB file.
pub(crate) type FileId = (u64, u64);

/// Something wrong with a session's files that the chat should hear about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Problem {
    InboundLost,
    InboundDamaged,
    OutboundLost,
    OutboundDamaged,
}

impl Problem {
    /// The chat notice.
    pub fn notice(self, agent: &str) -> String {
        match self {
            Problem::InboundLost | Problem::InboundDamaged => format!(
                "⚠️ Part of this chat's session with `{agent}` was lost (its inbound.db was {}). \
                 Messages still waiting for the agent may be lost: please resend anything unanswered. \
                 Replies already sent will not be sent again.",
                if self == Problem::InboundLost {
                    "missing; it has been recreated"
                } else {
                    "damaged; it was moved aside and recreated"
                }
            ),
            Problem::OutboundLost => format!(
                "⚠️ Replies `{agent}` had written but not yet sent may be lost (its outbound.db was \
                 deleted or replaced). New messages work normally."
            ),
            Problem::OutboundDamaged => format!(
                "⚠️ `{agent}` cannot send replies right now: its outbound.db is damaged. It is \
                 replaced when the agent next runs; replies written before may be lost. The \
                 nanoclaw log says more."
            ),
        }
    }
}

/// The delivery worker's memory of each session's files.
#[derive(Debug, Default)]
pub struct Health {
    /// Session id → identity of the files at the last drain (`None`: absent).
    seen: HashMap<String, Seen>,
    /// `(session, problem)` already told; a state problem is forgotten once it clears.
    told: HashSet<(String, Problem)>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    inbound: Option<FileId>,
    outbound: Option<FileId>,
}

/// Where to report: the central DB (the session's chat) and the channels' outboxes.
pub struct Reporter<'a> {
    pub conn: &'a Connection,
    pub outboxes: &'a Outboxes,
    pub paths: &'a Paths,
}

impl Health {
    /// Opens the session's DBs for a drain (both read-only: see
    /// [`session_db::open_inbound_reader`] for why `inbound.db` too),
    /// repairing `inbound.db` and reporting what is wrong on the way. `None`: nothing to drain
    /// now (no `outbound.db` yet, damaged, or busy).
    pub fn open(
        &mut self,
        reporter: &Reporter<'_>,
        agent: &str,
        session: &str,
    ) -> Option<(InboundDb, OutboundDb)> {
        let dir = reporter.paths.session(agent, session);
        let outbound_path = session_db::outbound_path(&dir);
        let before = self.seen.get(session).copied().unwrap_or_default();
        let inbound = self.open_inbound(reporter, agent, session, &dir, before.inbound)?;
        let outbound = match session_db::open_outbound_host(&outbound_path) {
            Ok(conn) => conn,
            Err(err) if err.is_missing() => {
                if before.outbound.is_some() {
                    self.report(
                        reporter,
                        agent,
                        session,
                        Problem::OutboundLost,
                        &outbound_path,
                        &err.to_string(),
                    );
                }
                self.seen.entry(session.to_string()).or_default().outbound = None;
                return None;
            }
            Err(err) if err.is_damaged() => {
                self.report(
                    reporter,
                    agent,
                    session,
                    Problem::OutboundDamaged,
                    &outbound_path,
                    &err.to_string(),
                );
                return None;
            }
            Err(err) => {
                // Busy, or a hot journal the next container rolls back.
                debug!(session, error = %err, "outbound.db not readable yet");
                return None;
            }
        };
        let id = file_id(&outbound_path);
        if let (Some(old), Some(new)) = (before.outbound, id)
            && old != new
        {
            self.report(
                reporter,
                agent,
                session,
                Problem::OutboundLost,
                &outbound_path,
                "another file than before",
            );
        }
        self.told
            .remove(&(session.to_string(), Problem::OutboundDamaged));
        self.seen.entry(session.to_string()).or_default().outbound = id;
        Some((inbound, outbound))
    }

    /// Opens `inbound.db` read-only, first recreating it when missing or damaged. Long because
    /// the three cases (replaced, missing, damaged) share one tail: recreate, restore the
    /// projections, remember the new file.
    fn open_inbound(
        &mut self,
        reporter: &Reporter<'_>,
        agent: &str,
        session: &str,
        dir: &Path,
        before: Option<FileId>,
    ) -> Option<InboundDb> {
        let path = session_db::inbound_path(dir);
        let problem = match session_db::open_inbound_reader(&path) {
            Ok(conn) => {
                let id = file_id(&path);
                self.seen.entry(session.to_string()).or_default().inbound = id;
                if before.is_none() || before == id {
                    return Some(conn);
                }
                drop(conn);
                self.report(
                    reporter,
                    agent,
                    session,
                    Problem::InboundLost,
                    &path,
                    "another file than before",
                );
                None
            }
            Err(err) if err.is_missing() => {
                let existed = before.is_some() || session_db::outbound_path(dir).exists();
                if existed {
                    self.report(
                        reporter,
                        agent,
                        session,
                        Problem::InboundLost,
                        &path,
                        &err.to_string(),
                    );
                }
                Some(err)
            }
            Err(err) if err.is_damaged() => {
                if let Err(move_err) = Dir::open(dir).and_then(|dir| aside_with_journal(&dir)) {
                    warn!(session, error = %move_err, "damaged inbound.db could not be moved aside");
                    return None;
                }
                self.report(
                    reporter,
                    agent,
                    session,
                    Problem::InboundDamaged,
                    &path,
                    &err.to_string(),
                );
                Some(err)
            }
            Err(err) => {
                debug!(session, error = %err, "inbound.db not readable yet");
                return None;
            }
        };
        if let Some(err) = &problem {
            debug!(session, error = %err, "recreating inbound.db");
            let row = sessions::get(reporter.conn, session).ok().flatten();
            let created = Dir::open(dir)
                .map_err(anyhow::Error::from)
                .and_then(|folder| {
                    layout::create_inbound(&folder, row.as_ref().map(|row| (reporter.conn, row)))
                });
            if let Err(err) = created {
                warn!(session, error = %format!("{err:#}"), "inbound.db could not be recreated");
                return None;
            }
        }
        // Recreated or replaced: put back what the central DB knows.
        let mut writer = session_db::open_inbound_host(&path).ok()?;
        match sessions::get(reporter.conn, session) {
            Ok(Some(row)) => {
                if let Err(err) = session::write_projections(reporter.conn, &row, &mut writer) {
                    warn!(session, error = %format!("{err:#}"), "destinations not rewritten into the recreated inbound.db");
                }
            }
            Ok(None) => {}
            Err(err) => {
                warn!(session, error = %err, "session not found for a recreated inbound.db")
            }
        }
        drop(writer);
        self.seen.entry(session.to_string()).or_default().inbound = file_id(&path);
        session_db::open_inbound_reader(&path).ok()
    }

    /// Logs the problem and tells the session's chat, once per `(session, problem)` until it
    /// clears (`OutboundDamaged`) or happens again (the other, event-like problems).
    fn report(
        &mut self,
        reporter: &Reporter<'_>,
        agent: &str,
        session: &str,
        problem: Problem,
        path: &Path,
        why: &str,
    ) {
        warn!(session, agent, path = %path.display(), ?problem, why, "session DB damaged or missing");
        let key = (session.to_string(), problem);
        if problem == Problem::OutboundDamaged {
            if !self.told.insert(key) {
                return;
            }
        } else {
            self.told.insert(key);
        }
        tell(reporter, session, &problem.notice(agent));
    }

    /// Whether the chat was told about `problem` (tests).
    pub fn was_told(&self, session: &str, problem: Problem) -> bool {
        self.told.contains(&(session.to_string(), problem))
    }
}

/// Sends a notice to the session's chat; a session without a chat, or a channel not running,
/// only has the log.
fn tell(reporter: &Reporter<'_>, session: &str, text: &str) {
    let address = reporter.conn.query_row(
        "SELECT m.channel_type, m.platform_id, s.thread_id
         FROM sessions s JOIN messaging_groups m ON m.id = s.messaging_group_id WHERE s.id = ?1",
        [session],
        |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get(2)?,
            ))
        },
    );
    let Ok((channel_type, platform_id, thread_id)) = address else {
        return;
    };
    let notice = Outbound {
        id: agent_runner::session_db::new_id("notice"),
        agent: None,
        platform_id,
        thread_id,
        kind: "chat".to_string(),
        content: serde_json::json!({ "text": text }),
        in_reply_to: None,
        files: Vec::new(),
    };
    reporter
        .outboxes
        .notice(&channel_type, notice, "damaged session files");
}

/// Moves `inbound.db` and its journal aside as `*.damaged-<ms>`.
fn aside_with_journal(dir: &Dir) -> std::io::Result<()> {
    let journal = format!("{}{}", session_db::INBOUND_FILE, session_db::JOURNAL_SUFFIX);
    for name in [session_db::INBOUND_FILE, journal.as_str()] {
        if dir.entry(name)?.is_some() {
            layout::move_aside_as(dir, name, "damaged")?;
        }
    }
    Ok(())
}

/// `(st_dev, st_ino)` of the file at `path`, not followed; `None` when absent.
pub(crate) fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|meta| (meta.dev(), meta.ino()))
}
