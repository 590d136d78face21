//! The router: inbound events → session `inbound.db` rows → wake requests
//! (docs/runtime.md#routing-algorithm).
//!
//! Runs on its own thread because every step is blocking SQLite work. It drains whatever
//! events are queued (up to [`BATCH`]) and routes them together: central-DB writes of the
//! batch share one transaction, and each session's new rows are inserted in one
//! `inbound.db` transaction (one DELETE-journal commit per session per batch, not per
//! message), in arrival order, so per-session order is kept. The decision itself is the pure
//! [`route::route`]; this file loads its facts and executes it. A bad event is logged with
//! its id and skipped; it never stops the loop.

use std::collections::HashMap;
use std::path::PathBuf;

use agent_runner::session_db::{self, NewInbound};
use rusqlite::Connection;
use tokio::sync::mpsc;
use tracing::{debug, info, info_span, warn};

use super::approvals::{self, Requested};
use super::attachments;
use super::outbox::Outboxes;
use super::route::{self, Action, Facts, MessageFacts, Patterns};
use super::typing::{Event as TypingEvent, Target, Typing};
use super::waker::Wakes;
use super::{new_chat, pairing};
use crate::channels::{Adapters, Envelope, InboundEvent, Outbound, Receipt};
use crate::db::{self, routing, sessions};
use crate::paths::Paths;
use crate::state::SessionMode;

/// Most events routed together in one batch.
pub const BATCH: usize = 512;

/// The router's state; every field is written and read by the router thread only.
pub struct Router {
    /// Central DB connection (router's own; WAL lets delivery and the sweep read alongside).
    conn: Connection,
    /// Where the session folders are.
    paths: Paths,
    /// The live channels: their threads and subscriptions (read), and their outboxes, which
    /// take the permission-denied replies (never waited for).
    outboxes: Outboxes,
    /// Compiled engage patterns, cached by source.
    patterns: Patterns,
    /// Sessions that received a waking message, with that message's id; the waker starts
    /// their containers.
    wake: Wakes,
    /// How long an approval card asked for by routing (an unknown sender) may be answered.
    approval_ttl: std::time::Duration,
    /// Told about each session a stored message wakes (the typing indicator starts).
    typing: Option<Typing>,
}

/// Rows for one session collected over a batch, in arrival order.
struct SessionWrites {
    dir: PathBuf,
    rows: Vec<NewInbound>,
    /// The first message of the batch that wakes the session (for the wake's span).
    waking: Option<String>,
    /// Where that message's answer goes: the chat that shows "typing…".
    typing_to: Option<Target>,
}

impl Router {
    pub fn new(paths: Paths, outboxes: Outboxes, wake: Wakes) -> anyhow::Result<Router> {
        let conn = db::open(&paths.db())?;
        Ok(Router {
            conn,
            paths,
            outboxes,
            patterns: Patterns::default(),
            wake,
            approval_ttl: approvals::DEFAULT_TTL,
            typing: None,
        })
    }

    /// Approval cards asked for while routing may be answered for `ttl`.
    pub fn with_approval_ttl(mut self, ttl: std::time::Duration) -> Router {
        self.approval_ttl = ttl;
        self
    }

    /// Tell the typing indicator (`runtime::typing`) about every session a message wakes.
    pub fn typing(mut self, typing: Typing) -> Router {
        self.typing = Some(typing);
        self
    }

    /// Starts the router on its own thread; it ends when every inbound sender is gone.
    pub fn spawn(
        self,
        inbound: mpsc::Receiver<Envelope>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("router".into())
            .spawn(move || self.run(inbound))
    }

    /// Routes events until the sending side closes (shutdown closes it after the channels stop).
    pub fn run(mut self, mut inbound: mpsc::Receiver<Envelope>) {
        info!("router started");
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(first) = inbound.blocking_recv() {
            batch.push(first);
            while batch.len() < BATCH {
                match inbound.try_recv() {
                    Ok(event) => batch.push(event),
                    Err(_) => break,
                }
            }
            self.route_batch(&mut batch);
            batch.clear();
        }
        info!("router stopped");
    }

    /// Routes a batch: decisions and central-DB writes first, then one insert per session,
    /// then the receipts (a message is acknowledged only once all its rows are stored).
    pub fn route_batch(&mut self, envelopes: &mut Vec<Envelope>) {
        let mut writes: Vec<(String, SessionWrites)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut denials = Vec::new();
        let mut notes = Vec::new();
        let mut receipts: Vec<(tokio::sync::oneshot::Sender<Receipt>, Stored)> = Vec::new();
        match self.conn.transaction() {
            Ok(tx) => {
                let mut queue: std::collections::VecDeque<Envelope> = envelopes.drain(..).collect();
                while let Some(envelope) = queue.pop_front() {
                    let message_id = envelope.event.message.id.clone();
                    let span = info_span!("route", channel = %envelope.event.channel_type, msg = %message_id);
                    let _entered = span.enter();
                    let outcome = route_one(
                        &tx,
                        &self.paths,
                        self.outboxes.adapters(),
                        &mut self.patterns,
                        self.approval_ttl,
                        envelope.event,
                    );
                    let stored = match outcome {
                        Ok(routed) if routed.unknown_chat => Stored::UnknownChat,
                        Ok(routed) => {
                            let mut slots = Vec::with_capacity(routed.rows.len());
                            for (session, dir, row) in routed.rows {
                                let slot = *index.entry(session.clone()).or_insert_with(|| {
                                    writes.push((
                                        session.clone(),
                                        SessionWrites {
                                            dir,
                                            rows: Vec::new(),
                                            waking: None,
                                            typing_to: None,
                                        },
                                    ));
                                    writes.len() - 1
                                });
                                let write = &mut writes[slot].1;
                                if row.trigger && write.waking.is_none() {
                                    write.waking = Some(message_id.clone());
                                    write.typing_to =
                                        row.channel_type.clone().zip(row.platform_id.clone()).map(
                                            |(channel_type, platform_id)| Target {
                                                channel_type,
                                                platform_id,
                                                thread_id: row.thread_id.clone(),
                                            },
                                        );
                                }
                                write.rows.push(row);
                                slots.push(slot);
                            }
                            denials.extend(routed.denials);
                            notes.extend(routed.notes);
                            // A message held back and now allowed is routed right after.
                            queue.extend(routed.replay.into_iter().map(Envelope::new));
                            Stored::In {
                                slots,
                                answering: routed.answering,
                            }
                        }
                        Err(err) => {
                            warn!(msg = %message_id, error = %format!("{err:#}"), "message not routed");
                            Stored::Failed
                        }
                    };
                    if let Some(receipt) = envelope.stored {
                        receipts.push((receipt, stored));
                    }
                }
                if let Err(err) = tx.commit() {
                    warn!(error = %err, "router batch commit failed");
                }
            }
            Err(err) => {
                warn!(error = %err, "router cannot start a transaction");
                let mut queue: std::collections::VecDeque<Envelope> = envelopes.drain(..).collect();
                while let Some(envelope) = queue.pop_front() {
                    if let Some(receipt) = envelope.stored {
                        let _ = receipt.send(Receipt::Failed);
                    }
                }
            }
        }
        let mut stored_ok = vec![false; writes.len()];
        for (slot, (session, write)) in writes.into_iter().enumerate() {
            let count = write.rows.len();
            match insert(&write.dir, &write.rows) {
                Ok(()) => {
                    stored_ok[slot] = true;
                    debug!(session = %session, count, "messages stored");
                    if let Err(err) = sessions::touch(&self.conn, &session) {
                        warn!(session = %session, error = %err, "last_active not updated");
                    }
                    if let (Some(typing), Some(target)) = (&self.typing, write.typing_to) {
                        typing.tell(TypingEvent::Engaged {
                            session: session.clone(),
                            session_dir: write.dir.clone(),
                            target,
                        });
                    }
                    if let Some(message) = write.waking {
                        self.wake.send(session, Some(message));
                    }
                }
                Err(err) => {
                    let ids: Vec<&str> = write.rows.iter().map(|row| row.id.as_str()).collect();
                    warn!(session = %session, ids = ?ids, error = %format!("{err:#}"), "messages not stored");
                }
            }
        }
        for (receipt, stored) in receipts {
            let answer = match stored {
                Stored::In { slots, answering } if slots.iter().all(|slot| stored_ok[*slot]) => {
                    Receipt::Stored { answering }
                }
                Stored::UnknownChat => Receipt::UnknownChat,
                Stored::In { .. } | Stored::Failed => Receipt::Failed,
            };
            let _ = receipt.send(answer);
        }
        for (channel_type, outbound) in denials {
            self.outboxes
                .notice(&channel_type, outbound, "permission denied");
        }
        for (channel_type, outbound) in notes {
            self.outboxes
                .notice(&channel_type, outbound, "approval or pairing");
        }
    }
}

/// Inserts a session's rows of one batch. A message the channel delivered again (same id)
/// is already stored: it is skipped (`session_db::insert_new_inbound`), so its primary-key
/// conflict cannot fail the whole batch and lose the messages stored with it.
fn insert(dir: &std::path::Path, rows: &[NewInbound]) -> anyhow::Result<()> {
    let mut conn = session_db::open_inbound_host(&dir.join(session_db::INBOUND_FILE))?;
    for id in session_db::insert_new_inbound(&mut conn, rows)? {
        debug!(id = %id, "message already stored; skipped");
    }
    Ok(())
}

/// What one event produced: rows per session, and direct replies to send.
#[derive(Default)]
struct Routed {
    rows: Vec<(String, PathBuf, NewInbound)>,
    denials: Vec<(String, Outbound)>,
    /// Approval cards and pairing notes to send once the batch is committed.
    notes: Vec<(String, Outbound)>,
    /// Held messages to route again in this batch (a new agent's chat, now wired).
    replay: Vec<InboundEvent>,
    /// Agents that will answer: engaged, or refused with a reply.
    answering: Vec<String>,
    /// No chat at the event's address (and it did not address the bot).
    unknown_chat: bool,
}

/// Where one message of a batch went, for its receipt.
enum Stored {
    /// Rows in these `writes` slots (possibly none).
    In {
        slots: Vec<usize>,
        answering: Vec<String>,
    },
    UnknownChat,
    Failed,
}

/// Routes one event inside the batch transaction (docs/runtime.md#routing-algorithm).
fn route_one(
    conn: &Connection,
    paths: &Paths,
    adapters: &Adapters,
    patterns: &mut Patterns,
    approval_ttl: std::time::Duration,
    mut event: InboundEvent,
) -> anyhow::Result<Routed> {
    // Only a live adapter that says it has no threads collapses them; an event for a channel
    // without a live adapter (operator-injected) keeps its thread
    // (docs/runtime.md#routing-algorithm).
    let threaded = adapters.supports_threads(&event.channel_type);
    if adapters.get(&event.channel_type).is_some() && !threaded {
        event.thread_id = None;
    }
    let is_mention = event.message.is_mention;
    let content = &event.message.content;
    let sender = route::sender_id(content, &event.channel_type);
    let sender_name = route::sender_name(content);
    // The audit names the sender as the content's `sender` field
    // (docs/runtime.md#routing-algorithm).
    let audit_name = content.sender.clone().or_else(|| sender_name.clone());
    if let Some(sender) = &sender {
        routing::ensure_user(conn, sender, &event.channel_type, sender_name.as_deref())?;
        // A pairing code is taken before anything else (docs/runtime.md#pairing).
        if let Some(notes) = pairing::take(conn, adapters, &event, sender, approval_ttl)? {
            return Ok(Routed {
                notes,
                ..Routed::default()
            });
        }
        if let Some(effects) = new_chat::take_name(conn, &event, sender)? {
            return Ok(Routed {
                notes: effects.notes,
                replay: effects.replay,
                ..Routed::default()
            });
        }
    }
    let chat = match routing::chat(conn, &event.channel_type, &event.platform_id)? {
        Some(chat) => chat,
        None if is_mention => {
            let is_group = event.message.is_group.unwrap_or(false);
            routing::create_chat(conn, &event.channel_type, &event.platform_id, is_group)?
        }
        None => {
            debug!(channel = %event.channel_type, platform = %event.platform_id, "message from an unknown chat ignored");
            return Ok(Routed {
                unknown_chat: true,
                ..Routed::default()
            });
        }
    };
    let wirings = routing::wirings(conn, &chat.id)?;
    if wirings.is_empty() {
        if is_mention && !chat.denied {
            let drop = routing::Drop {
                channel_type: &event.channel_type,
                platform_id: &event.platform_id,
                user_id: None,
                sender_name: audit_name.as_deref(),
                reason: route::DropReason::NoAgentWired,
                chat_id: Some(&chat.id),
                agent: None,
            };
            routing::record_drop(conn, &drop)?;
            warn!(chat = %chat.id, msg = %event.message.id, "message dropped: no agent is wired to this chat");
            let card = new_chat::ask(
                conn,
                adapters,
                &chat,
                &event,
                sender.as_deref(),
                approval_ttl,
            )?;
            return Ok(Routed {
                notes: card.into_iter().collect(),
                ..Routed::default()
            });
        }
        return Ok(Routed::default());
    }
    let agents: Vec<&str> = wirings.iter().map(|wiring| wiring.agent.as_str()).collect();
    let (accessible, administered) = match &sender {
        Some(sender) => routing::access(conn, sender, &agents)?,
        None => Default::default(),
    };
    let sticky = sessions::sticky(conn, &chat.id, event.thread_id.as_deref(), &agents)?;
    let facts = Facts {
        is_group: chat.is_group,
        unknown_sender_policy: chat.unknown_sender_policy,
        wirings: wirings.clone(),
        sender: sender.clone(),
        accessible,
        administered,
        sticky: sticky.into_iter().collect(),
        threaded,
    };
    let message = MessageFacts {
        text: route::message_text(content),
        is_mention,
    };
    let decision = route::route(&message, &facts, patterns);
    let reply = event
        .reply_to
        .clone()
        .unwrap_or_else(|| crate::channels::ReplyAddress {
            channel_type: event.channel_type.clone(),
            platform_id: event.platform_id.clone(),
            thread_id: event.thread_id.clone(),
        });
    let mut routed = Routed::default();
    // A gate refusal names the agent that refused (docs/runtime.md#access-gate-and-sender-scope);
    // `no_agent_engaged` none.
    let refused_by = decision.actions.iter().find_map(|action| match action {
        Action::Skip {
            agent,
            audit: Some(audit),
        } if Some(*audit) == decision.audit => Some(agent.clone()),
        _ => None,
    });
    let mut subscribed = false;
    for action in decision.actions {
        match action {
            Action::Deliver {
                agent,
                wake,
                session_mode,
            } => {
                let (session, dir) = resolve_session(
                    conn,
                    paths,
                    &agent,
                    &chat.id,
                    event.thread_id.as_deref(),
                    session_mode,
                )?;
                let id = format!("{}:{agent}", event.message.id);
                // Per session: each agent's copy of an attachment lands in its own inbox. The
                // content is serialised here, once per stored row.
                let content = attachments::extract(&dir, &id, &event.message.content).to_json();
                let row = NewInbound {
                    id,
                    kind: event.message.kind.clone(),
                    timestamp: event.message.timestamp.clone(),
                    platform_id: Some(reply.platform_id.clone()),
                    channel_type: Some(reply.channel_type.clone()),
                    thread_id: reply.thread_id.clone(),
                    content,
                    trigger: wake,
                    on_wake: false,
                    process_after: None,
                    recurrence: None,
                    source_session_id: None,
                };
                debug!(session = %session, agent = %agent, wake, "routed");
                routed.rows.push((session, dir, row));
                if wake {
                    routed.answering.push(agent.clone());
                }
                if wake && !subscribed {
                    subscribed = subscribe_sticky(adapters, &wirings, &agent, &chat, &event);
                }
            }
            Action::Deny { agent, command } => {
                info!(agent = %agent, command = %command, msg = %event.message.id, "admin command denied");
                routed.answering.push(agent.clone());
                let outbound = Outbound {
                    id: agent_runner::session_db::new_id("denial"),
                    agent: Some(agent.clone()),
                    platform_id: reply.platform_id.clone(),
                    thread_id: reply.thread_id.clone(),
                    kind: "chat".to_string(),
                    content: serde_json::json!({ "text": route::denial_text(&command) }),
                    in_reply_to: Some(format!("{}:{agent}", event.message.id)),
                    files: Vec::new(),
                };
                routed.denials.push((reply.channel_type.clone(), outbound));
            }
            Action::Skip { agent, audit } => {
                debug!(agent = %agent, msg = %event.message.id, ?audit, "not for this agent");
            }
        }
    }
    if let Some(reason) = decision.audit {
        let drop = routing::Drop {
            channel_type: &event.channel_type,
            platform_id: &event.platform_id,
            user_id: sender.as_deref(),
            sender_name: audit_name.as_deref(),
            reason,
            chat_id: Some(&chat.id),
            agent: refused_by.as_deref(),
        };
        routing::record_drop(conn, &drop)?;
        debug!(msg = %event.message.id, reason = reason.as_str(), "message dropped");
        if reason == route::DropReason::UnknownSenderRequestApproval
            && let (Some(sender), Some(agent)) = (&sender, &refused_by)
        {
            let who = sender_name.as_deref().unwrap_or(sender);
            if let Some(card) = ask_about_sender(
                conn,
                adapters,
                (&chat, agent, sender, who),
                &event,
                approval_ttl,
            )? {
                routed.notes.push(card);
            }
        }
    }
    Ok(routed)
}

/// Asks an approver whether an unknown sender may talk to `agent` in `chat`
/// (docs/runtime.md#unknown-senders): one card per sender and chat while it is pending.
/// Returns the card to send once the batch commits.
fn ask_about_sender(
    conn: &Connection,
    adapters: &Adapters,
    (chat, agent, sender, who): (&routing::Chat, &str, &str, &str),
    event: &InboundEvent,
    ttl: std::time::Duration,
) -> anyhow::Result<Option<(String, Outbound)>> {
    let place = format!("the {} chat `{}`", chat.channel_type, chat.id);
    let request = approvals::Request {
        kind: approvals::kinds::UNKNOWN_SENDER,
        subject: format!("{}|{sender}", chat.id),
        agent: Some(agent),
        origin: Some(&chat.channel_type),
        payload: approvals::unknown_sender_payload(sender, event),
        title: "👤 New sender".to_string(),
        body: format!("{who} wants to talk to `{agent}` in {place}. Allow?"),
        options: vec![
            ("allow", "Allow", "✅ Allowed"),
            ("deny", "Deny", "❌ Denied"),
        ],
    };
    Ok(match approvals::request(conn, adapters, &request, ttl)? {
        Requested::Card {
            channel_type,
            outbound,
            ..
        } => Some((channel_type, *outbound)),
        Requested::AlreadyPending => {
            debug!(sender, chat = %chat.id, "unknown sender already awaits a decision");
            None
        }
        Requested::NoApprover => {
            warn!(
                sender,
                agent, "unknown sender not asked about: no owner or admin can approve"
            );
            None
        }
        Requested::NoDm => {
            warn!(
                sender,
                agent, "unknown sender not asked about: no approver has a reachable DM"
            );
            None
        }
    })
}

/// Once per message, when a mention-sticky wiring took it in a threaded group chat, asks the
/// adapter to subscribe to the thread so its later messages arrive
/// (docs/runtime.md#routing-algorithm). Returns whether it asked.
fn subscribe_sticky(
    adapters: &Adapters,
    wirings: &[crate::state::Wiring],
    agent: &str,
    chat: &routing::Chat,
    event: &InboundEvent,
) -> bool {
    let sticky = wirings.iter().any(|wiring| {
        wiring.agent == agent && wiring.engage_mode == crate::state::EngageMode::MentionSticky
    });
    let (Some(adapter), Some(thread_id)) = (
        adapters.get(&event.channel_type),
        event.thread_id.as_deref(),
    ) else {
        return false;
    };
    if !sticky || !chat.is_group || !adapter.supports_threads() {
        return false;
    }
    adapter.subscribe(&event.platform_id, thread_id);
    true
}

/// Finds or creates the session for a delivery (docs/runtime.md#session-resolution), creating its
/// folder and DBs.
fn resolve_session(
    conn: &Connection,
    paths: &Paths,
    agent: &str,
    chat_id: &str,
    thread_id: Option<&str>,
    mode: SessionMode,
) -> anyhow::Result<(String, PathBuf)> {
    let session = match sessions::find(conn, agent, chat_id, thread_id, mode)? {
        Some(session) => session,
        None => {
            let thread = if mode == SessionMode::PerThread {
                thread_id
            } else {
                None
            };
            let session = sessions::create(conn, agent, Some(chat_id), thread)?;
            info!(session = %session.id, agent, "session created");
            session
        }
    };
    let dir = paths.session(agent, &session.id);
    if !dir.join(session_db::INBOUND_FILE).exists() {
        let folder = crate::hostfs::Dir::create_all(&dir, super::layout::DIR_MODE)?;
        super::layout::create_inbound(&folder, Some((conn, &session)))?;
    }
    Ok((session.id, dir))
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
