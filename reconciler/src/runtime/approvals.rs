//! Approvals (docs/runtime.md#approvals): a person with the right role decides, on a card
//! sent to their DM, whether something may happen.
//!
//! [`request`] is the typed entry point other features call inside their own transaction: it
//! picks the approver (the agent's scoped admins, then global admins, then owners), finds
//! their DM (same channel kind as the origin first), stores the pending row and returns the
//! card to hand to the outbox once the transaction commits. The [`Approvals`] actor (a tokio
//! task) takes the answers adapters send, checks that the responder may decide (the approver,
//! or an admin of the agent), records the decision, runs the [`Handler`] of the approval's
//! kind and shows the outcome in place of the card; every sweep interval it expires the
//! approvals past their time; and when a reader arrives in a chat it shows that chat's pending
//! cards again (`reshow`). Rows live in the central DB (`db::approvals`), so a pending card
//! survives a restart and can still be answered.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_runner::session_db::ids;
use rusqlite::{Connection, TransactionBehavior};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::outbox::Outboxes;
use super::self_modify;
use crate::channels::card::{Answer, Answered, Card, CardOption, Outcome, Verdict};
use crate::channels::{Adapters, Envelope, InboundEvent, Outbound, ReaderArrived};
use crate::db::{self, approvals as rows, routing};

/// How long a card waits for an answer unless the runtime is told otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Answers queued for the actor; an adapter waits (backpressure) beyond this.
pub const ANSWERS: usize = 256;
/// Readers arriving queued for the actor; more are dropped (the reader's next hello asks again).
pub const READERS: usize = 64;

/// The kinds this runtime knows, each with its handler in [`Handlers::builtin`].
pub mod kinds {
    /// A sender not yet allowed in a `request_approval` chat (docs/runtime.md#unknown-senders).
    pub const UNKNOWN_SENDER: &str = "unknown_sender";
    /// An agent's `install_packages` (docs/runtime.md#self-modification).
    pub const INSTALL_PACKAGES: &str = "install_packages";
    /// An agent's `add_mcp_server` (docs/runtime.md#self-modification).
    pub const ADD_MCP_SERVER: &str = "add_mcp_server";
}

/// What a feature asks to be approved.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// Which handler decides its effect ([`kinds`]).
    pub kind: &'a str,
    /// What it is about: while one is pending for this kind and subject, no second card goes.
    pub subject: String,
    /// The agent concerned: its admins may decide, and are asked first.
    pub agent: Option<&'a str>,
    /// The channel type the request came from: an approver on the same kind of channel is
    /// preferred.
    pub origin: Option<&'a str>,
    /// The handler's input.
    pub payload: Value,
    pub title: String,
    pub body: String,
    /// `(id, label, shown once chosen)`.
    pub options: Vec<(&'a str, &'a str, &'a str)>,
}

/// What [`request`] did.
#[derive(Debug)]
pub enum Requested {
    /// A card is to go to the approver: hand `outbound` to the outbox of `channel_type` once
    /// the transaction commits.
    Card {
        id: String,
        channel_type: String,
        outbound: Box<Outbound>,
    },
    /// One is pending already for that subject: nothing sent.
    AlreadyPending,
    /// Nobody may approve (no owner or admin configured).
    NoApprover,
    /// No approver has a DM this runtime can reach.
    NoDm,
}

/// Asks for an approval (see the module comment). `ttl` is how long the card may be answered.
pub fn request(
    conn: &Connection,
    adapters: &Adapters,
    request: &Request<'_>,
    ttl: Duration,
) -> rusqlite::Result<Requested> {
    if rows::is_pending(conn, request.kind, &request.subject)? {
        return Ok(Requested::AlreadyPending);
    }
    let approvers = rows::approvers(conn, request.agent)?;
    if approvers.is_empty() {
        return Ok(Requested::NoApprover);
    }
    let Some((approver, channel_type, platform_id)) =
        delivery_target(conn, adapters, &approvers, request.origin)?
    else {
        return Ok(Requested::NoDm);
    };
    let id = format!("apv-{}{}", ids::rand6(), ids::rand6());
    let card = Card {
        id: id.clone(),
        title: request.title.clone(),
        body: request.body.clone(),
        options: request
            .options
            .iter()
            .map(|(id, label, chosen)| CardOption {
                id: id.to_string(),
                label: label.to_string(),
                chosen: chosen.to_string(),
            })
            .collect(),
    };
    let now = now_ms();
    let expires_at_ms = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
    let content = super::reshow::with_expiry(card.to_content(), expires_at_ms);
    let approval = rows::Approval {
        id: id.clone(),
        kind: request.kind.to_string(),
        subject: request.subject.clone(),
        agent: request.agent.map(str::to_string),
        payload: request.payload.to_string(),
        approver,
        card_channel_type: channel_type.clone(),
        card_platform_id: platform_id.clone(),
        card_json: content.to_string(),
        expires_at_ms,
    };
    if !rows::insert(conn, &approval, now)? {
        return Ok(Requested::AlreadyPending);
    }
    info!(approval = %id, kind = request.kind, approver = %approval.approver, "approval requested");
    Ok(Requested::Card {
        id: id.clone(),
        channel_type,
        outbound: Box::new(Outbound {
            id: format!("{id}-card"),
            agent: None,
            platform_id,
            thread_id: None,
            kind: "chat-sdk".to_string(),
            content,
            in_reply_to: None,
            files: Vec::new(),
        }),
    })
}

/// The approver to ask and their DM `(user, channel type, platform id)`: the first approver
/// on the origin's kind of channel with a reachable DM, else the first with any.
fn delivery_target(
    conn: &Connection,
    adapters: &Adapters,
    approvers: &[String],
    origin: Option<&str>,
) -> rusqlite::Result<Option<(String, String, String)>> {
    if let Some(origin) = origin.filter(|origin| !origin.is_empty()) {
        for approver in approvers {
            if prefix(approver) == Some(origin)
                && let Some((channel, dm)) = resolve_dm(conn, adapters, approver)?
            {
                return Ok(Some((approver.clone(), channel, dm)));
            }
        }
    }
    for approver in approvers {
        if let Some((channel, dm)) = resolve_dm(conn, adapters, approver)? {
            return Ok(Some((approver.clone(), channel, dm)));
        }
    }
    Ok(None)
}

fn prefix(user: &str) -> Option<&str> {
    user.split_once(':').map(|(prefix, _)| prefix)
}

/// A user's DM chat `(channel type, platform id)`: the `user_dms` cache, else the adapter's
/// `open_dm`, else the handle itself (a direct-addressable channel), remembered in the cache.
fn resolve_dm(
    conn: &Connection,
    adapters: &Adapters,
    user: &str,
) -> rusqlite::Result<Option<(String, String)>> {
    let Some(kind) = rows::user_kind(conn, user)? else {
        return Ok(None);
    };
    let Some((prefix, handle)) = user.split_once(':') else {
        return Ok(None);
    };
    if prefix.is_empty() || handle.is_empty() {
        return Ok(None);
    }
    // A user id whose prefix is no channel but whose kind is one is addressed by the whole id.
    let (channel, handle) = if adapters.get(prefix).is_none() && adapters.get(&kind).is_some() {
        (kind.as_str(), user)
    } else {
        (prefix, handle)
    };
    if let Some(dm) = rows::cached_dm(conn, user, channel)? {
        return Ok(Some((channel.to_string(), dm)));
    }
    let Some(adapter) = adapters.get(channel) else {
        return Ok(None);
    };
    let dm = adapter
        .open_dm(handle)
        .unwrap_or_else(|| handle.to_string());
    rows::remember_dm(conn, user, channel, &dm)?;
    Ok(Some((channel.to_string(), dm)))
}

/// A decided approval, as its handler sees it.
#[derive(Clone, Debug)]
pub struct Decision {
    pub approval: rows::Approval,
    /// The chosen option's id.
    pub option: String,
    /// Who chose it.
    pub by: String,
    /// Where they chose it: `(channel type, platform id)`.
    pub at: (String, String),
}

/// What a handler wants done after its decision is committed.
#[derive(Debug, Default)]
pub struct Effects {
    /// Events to route again (a held message, now allowed).
    pub replay: Vec<InboundEvent>,
    /// Messages to send: `(channel type, message)`.
    pub notes: Vec<(String, Outbound)>,
    /// Work for after the commit, off the decision's transaction.
    pub followups: Vec<Followup>,
}

/// What a handler leaves for after its decision is committed.
#[derive(Debug)]
pub enum Followup {
    /// A system note to the agent in its session, then a wake.
    TellAgent {
        agent: String,
        session: String,
        text: String,
    },
    /// Land an approved self-modification in the manifests (docs/runtime.md#self-modification).
    SelfModify(Box<SelfModification>),
}

/// An approved `install_packages` or `add_mcp_server`, as the [`Lander`] gets it.
#[derive(Clone, Debug)]
pub struct SelfModification {
    pub request: super::system::ChangeRequest,
    /// Who approved, and the approval's id.
    pub approver: String,
    pub approval: String,
    /// Where the card was: the approver is told the outcome there.
    pub card: (String, String),
}

/// Writes an approved self-modification into the manifests, commits and applies it: `Ok` with
/// the sentence for the approver, `Err` with why not (naming the file and the patch to apply
/// by hand). `nanoclaw run` gives `ops::self_modify::land` on its manifest folder; the runtime
/// cannot reach the operations layer itself (layers point down).
#[derive(Clone)]
pub struct Lander(pub Arc<LandFn>);

/// The function behind a [`Lander`].
pub type LandFn = dyn Fn(&SelfModification) -> Result<String, String> + Send + Sync;

impl std::fmt::Debug for Lander {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lander")
    }
}

/// Applies a decision of one kind. Runs inside the decision's transaction: an error rolls
/// the decision back (the card stays pending) and is told to the responder.
pub trait Handler: Send + Sync {
    fn decided(&self, conn: &Connection, decision: &Decision) -> anyhow::Result<Effects>;
}

/// The handler of each kind.
#[derive(Clone, Default)]
pub struct Handlers(BTreeMap<String, Arc<dyn Handler>>);

impl Handlers {
    /// The kinds this runtime handles itself.
    pub fn builtin() -> Handlers {
        let mut handlers = Handlers::default();
        handlers.register(kinds::UNKNOWN_SENDER, Arc::new(UnknownSender));
        handlers.register(
            super::pairing::PAIRING,
            Arc::new(super::pairing::PairingHandler),
        );
        handlers.register(
            super::new_chat::NEW_CHAT,
            Arc::new(super::new_chat::NewChatHandler),
        );
        handlers.register(kinds::INSTALL_PACKAGES, Arc::new(SelfModify));
        handlers.register(kinds::ADD_MCP_SERVER, Arc::new(SelfModify));
        handlers
    }

    pub fn register(&mut self, kind: &str, handler: Arc<dyn Handler>) {
        self.0.insert(kind.to_string(), handler);
    }
}

/// Allow: the sender becomes a member of the agent (a runtime-owned row) and their held
/// message is routed again; deny: the message stays dropped, the decision is the audit.
struct UnknownSender;

impl Handler for UnknownSender {
    fn decided(&self, conn: &Connection, decision: &Decision) -> anyhow::Result<Effects> {
        let payload: Value = serde_json::from_str(&decision.approval.payload)?;
        let sender = payload["sender"].as_str().unwrap_or_default();
        let agent = decision.approval.agent.as_deref().unwrap_or_default();
        if decision.option != "allow" {
            info!(sender, agent, by = %decision.by, "unknown sender denied; their message stays dropped");
            return Ok(Effects::default());
        }
        rows::add_member(conn, sender, agent, &decision.by)?;
        info!(sender, agent, by = %decision.by, "unknown sender allowed; their message is routed again");
        let event: InboundEvent = serde_json::from_value(payload["event"].clone())?;
        Ok(Effects {
            replay: vec![event],
            ..Effects::default()
        })
    }
}

/// Approve: the change is landed in the manifests after the commit (a [`Followup`]); reject:
/// the agent is told, nothing changes (the decision is the audit).
struct SelfModify;

impl Handler for SelfModify {
    fn decided(&self, _conn: &Connection, decision: &Decision) -> anyhow::Result<Effects> {
        let request: super::system::ChangeRequest =
            serde_json::from_str(&decision.approval.payload)?;
        let followup = if decision.option == "approve" {
            Followup::SelfModify(Box::new(SelfModification {
                request,
                approver: decision.by.clone(),
                approval: decision.approval.id.clone(),
                card: (
                    decision.approval.card_channel_type.clone(),
                    decision.approval.card_platform_id.clone(),
                ),
            }))
        } else {
            info!(agent = %request.agent, action = %request.action, by = %decision.by, "self-modification rejected");
            Followup::TellAgent {
                text: format!("Your {} request was rejected by admin.", request.action),
                agent: request.agent,
                session: request.session,
            }
        };
        Ok(Effects {
            followups: vec![followup],
            ..Effects::default()
        })
    }
}

/// The approvals actor's state; written and read by its task only.
pub struct Approvals {
    /// Its own central-DB connection (used inside `spawn_blocking`).
    conn: Arc<Mutex<Connection>>,
    /// For the cards' outcomes and notes.
    outboxes: Outboxes,
    /// Where replayed messages go: the router's inbound queue. Dropped when the actor ends,
    /// so the router can finish.
    inbound: mpsc::Sender<Envelope>,
    handlers: Handlers,
    /// How often due approvals are expired.
    tick: Duration,
    /// Where the session folders are (notes to agents).
    paths: crate::paths::Paths,
    /// Lands approved self-modifications; `None`: they are refused.
    lander: Option<Lander>,
    /// Wakes the sessions told an outcome.
    wakes: Option<super::waker::Wakes>,
    /// Where answers that decide no approval go: the questions agents ask.
    questions: Option<super::questions::Questions>,
}

impl Approvals {
    pub fn new(
        paths: &crate::paths::Paths,
        outboxes: Outboxes,
        inbound: mpsc::Sender<Envelope>,
        tick: Duration,
    ) -> anyhow::Result<Approvals> {
        Ok(Approvals {
            conn: Arc::new(Mutex::new(db::open(&paths.db())?)),
            outboxes,
            inbound,
            handlers: Handlers::builtin(),
            tick,
            paths: paths.clone(),
            lander: None,
            wakes: None,
            questions: None,
        })
    }

    /// Lands approved self-modifications with `lander` and wakes the sessions told.
    pub fn self_modifying(
        mut self,
        lander: Option<Lander>,
        wakes: super::waker::Wakes,
    ) -> Approvals {
        self.lander = lander;
        self.wakes = Some(wakes);
        self
    }

    /// Answers to cards that are no approval go to `questions` (docs/runtime.md#questions).
    pub fn with_questions(mut self, questions: super::questions::Questions) -> Approvals {
        self.questions = Some(questions);
        self
    }

    /// Takes answers, shows pending cards to readers arriving and expires due approvals until
    /// `stop`.
    pub async fn run(
        self,
        mut answers: mpsc::Receiver<Answered>,
        mut readers: mpsc::Receiver<ReaderArrived>,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(self.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                answered = answers.recv() => {
                    let Some(answered) = answered else { break };
                    let verdict = match self.answer(answered.answer.clone()).await {
                        Verdict::Unknown => self.question(&answered.answer).await,
                        verdict => verdict,
                    };
                    if let Some(tell) = answered.verdict {
                        let _ = tell.send(verdict);
                    }
                }
                Some(reader) = readers.recv() => self.show_pending(reader).await,
                _ = tick.tick() => self.expire().await,
            }
        }
        debug!("approvals stopped");
    }

    /// An answer that decided no approval: maybe one to a question an agent asked.
    async fn question(&self, answer: &Answer) -> Verdict {
        match &self.questions {
            Some(questions) => questions.answer(answer).await.unwrap_or(Verdict::Unknown),
            None => Verdict::Unknown,
        }
    }

    async fn answer(&self, answer: Answer) -> Verdict {
        let conn = Arc::clone(&self.conn);
        let handlers = self.handlers.clone();
        let decided = tokio::task::spawn_blocking(move || {
            let mut conn = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            decide(&mut conn, &handlers, &answer)
        })
        .await;
        let (verdict, effects) = match decided {
            Ok(Ok(decided)) => decided,
            Ok(Err(err)) => {
                warn!(error = %format!("{err:#}"), "approval answer not recorded");
                return Verdict::Refused(format!("the answer could not be recorded: {err:#}"));
            }
            Err(err) => {
                warn!(error = %err, "approval answer panicked");
                return Verdict::Refused("the answer could not be recorded".to_string());
            }
        };
        self.apply(effects).await;
        verdict
    }

    async fn apply(&self, effects: Effects) {
        for (channel_type, outbound) in effects.notes {
            self.outboxes.notice(&channel_type, outbound, "approval");
        }
        for event in effects.replay {
            if self.inbound.send(Envelope::new(event)).await.is_err() {
                warn!("approved message not routed again: the router is stopping");
            }
        }
        for followup in effects.followups {
            self.follow_up(followup).await;
        }
    }

    /// Runs one [`Followup`] off the actor's thread (a manifest edit, a commit and an apply
    /// take a moment; answers wait meanwhile).
    async fn follow_up(&self, followup: Followup) {
        let conn = Arc::clone(&self.conn);
        let paths = self.paths.clone();
        let lander = self.lander.clone();
        let done = tokio::task::spawn_blocking(move || {
            let conn = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self_modify::follow_up(&conn, &paths, lander.as_ref(), followup)
        })
        .await;
        let Ok(done) = done else {
            warn!("a follow-up of an approval panicked");
            return;
        };
        for (channel_type, outbound) in done.notes {
            self.outboxes
                .notice(&channel_type, outbound, "approval outcome");
        }
        if let (Some(wakes), Some(session)) = (&self.wakes, done.wake) {
            wakes.send(session, None);
        }
    }

    /// Shows a reader who arrived in a chat the cards still pending there (`reshow`).
    async fn show_pending(&self, reader: ReaderArrived) {
        let conn = Arc::clone(&self.conn);
        let chat = (reader.channel_type.clone(), reader.platform_id.clone());
        let arrived = reader.at_ms;
        let cards = tokio::task::spawn_blocking(move || {
            let conn = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            super::reshow::pending_cards(&conn, (&chat.0, &chat.1), now_ms(), arrived)
        })
        .await;
        let cards = match cards {
            Ok(Ok(cards)) => cards,
            Ok(Err(err)) => {
                warn!(error = %err, chat = %reader.platform_id, "pending cards not shown to the reader");
                return;
            }
            Err(_) => return,
        };
        if !cards.is_empty() {
            debug!(chat = %reader.platform_id, cards = cards.len(), "pending cards shown to a reader");
        }
        for card in cards {
            self.outboxes
                .notice(&reader.channel_type, card, "pending card");
        }
    }

    async fn expire(&self) {
        let conn = Arc::clone(&self.conn);
        let expired = tokio::task::spawn_blocking(move || {
            let conn = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            rows::expire_due(&conn, now_ms())
        })
        .await;
        let expired = match expired {
            Ok(Ok(expired)) => expired,
            Ok(Err(err)) => {
                warn!(error = %err, "expiring approvals failed; next pass retries");
                return;
            }
            Err(_) => return,
        };
        for approval in expired {
            info!(approval = %approval.id, kind = %approval.kind, "approval expired unanswered");
            let note = outcome(&approval, "⌛ Expired: nobody answered in time".to_string());
            self.outboxes
                .notice(&approval.card_channel_type, note, "approval expired");
            if let Some(followup) = self_modify::expired(&approval) {
                self.follow_up(followup).await;
            }
        }
    }
}

/// Decides one answer in one transaction (see the module comment); pure apart from the DB.
fn decide(
    conn: &mut Connection,
    handlers: &Handlers,
    answer: &Answer,
) -> anyhow::Result<(Verdict, Effects)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_ms();
    let Some(approval) = rows::pending(&tx, &answer.card, now)? else {
        return Ok((Verdict::Unknown, Effects::default()));
    };
    let card = Card::from_content(&serde_json::from_str(&approval.card_json)?)
        .ok_or_else(|| anyhow::anyhow!("approval `{}` holds no card", approval.id))?;
    let option = card
        .options
        .iter()
        .enumerate()
        .find(|(n, option)| option.id == answer.option || (n + 1).to_string() == answer.option)
        .map(|(_, option)| option.clone());
    let Some(option) = option else {
        let choices: Vec<String> = card.options.iter().map(|o| format!("`{}`", o.id)).collect();
        return Ok((
            Verdict::Refused(format!(
                "card `{}` has no option `{}`\n\nhint: choose one of {} (or its number)",
                card.id,
                answer.option,
                choices.join(", ")
            )),
            Effects::default(),
        ));
    };
    if !may_decide(&tx, &approval, &answer.responder)? {
        info!(approval = %approval.id, responder = %answer.responder, "approval answer refused: not an approver");
        let who = match &approval.agent {
            Some(agent) => format!("`{}` or an admin of `{agent}`", approval.approver),
            None => format!("`{}` or an admin", approval.approver),
        };
        return Ok((
            Verdict::Refused(format!(
                "`{}` may not answer card `{}`: only {who} may",
                answer.responder, card.id
            )),
            Effects::default(),
        ));
    }
    if !rows::decide(&tx, &approval.id, &option.id, &answer.responder, now)? {
        return Ok((Verdict::Unknown, Effects::default()));
    }
    let decision = Decision {
        approval: approval.clone(),
        option: option.id.clone(),
        by: answer.responder.clone(),
        at: (answer.channel_type.clone(), answer.platform_id.clone()),
    };
    let mut effects = match handlers.0.get(&approval.kind) {
        Some(handler) => handler.decided(&tx, &decision)?,
        None => {
            warn!(approval = %approval.id, kind = %approval.kind, "approval decided but no handler is installed for its kind");
            Effects::default()
        }
    };
    tx.commit()?;
    let text = format!("{} by {}", option.chosen, answer.responder);
    info!(approval = %approval.id, kind = %approval.kind, decision = %option.id, by = %answer.responder, "approval decided");
    effects.notes.insert(
        0,
        (
            approval.card_channel_type.clone(),
            outcome(&approval, text.clone()),
        ),
    );
    Ok((Verdict::Decided(text), effects))
}

/// The approver, or anyone with admin privilege over the approval's agent (over everything
/// when it names none).
fn may_decide(
    conn: &Connection,
    approval: &rows::Approval,
    responder: &str,
) -> rusqlite::Result<bool> {
    if responder == approval.approver {
        return Ok(true);
    }
    let scope = approval.agent.as_deref().unwrap_or("");
    let (_, administered) = routing::access(conn, responder, &[scope])?;
    Ok(administered.contains(scope))
}

/// The message that shows an approval's outcome in place of its card.
fn outcome(approval: &rows::Approval, text: String) -> Outbound {
    let title = serde_json::from_str::<Value>(&approval.card_json)
        .ok()
        .as_ref()
        .and_then(Card::from_content)
        .map(|card| card.title)
        .unwrap_or_default();
    Outbound {
        id: format!("{}-outcome", approval.id),
        agent: None,
        platform_id: approval.card_platform_id.clone(),
        thread_id: None,
        kind: "chat-sdk".to_string(),
        content: Outcome {
            card: approval.id.clone(),
            title,
            text,
        }
        .to_content(),
        in_reply_to: None,
        files: Vec::new(),
    }
}

/// The payload of an unknown-sender approval: who, and the message held back.
pub fn unknown_sender_payload(sender: &str, event: &InboundEvent) -> Value {
    json!({"sender": sender, "event": event})
}

/// Unix time in milliseconds, the unit of approval and pairing-code times.
pub(crate) fn now_ms() -> i64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    i64::try_from(ms).unwrap_or(i64::MAX)
}
