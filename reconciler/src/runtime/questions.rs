//! Questions agents ask (docs/runtime.md#questions): `ask_user_question` writes a card
//! (`{type: ask_question, questionId, title, question, options, timeout}`) and blocks until the
//! host writes the answer into the session's `inbound.db`.
//!
//! Delivery calls [`record`] before it hands the card to its chat: the untrusted content is
//! validated ([`parse`]) and the question stored in the central DB (`db::questions`), so it
//! survives a restart of the daemon. Adapters hand a person's choice to the approvals actor,
//! which passes every answer that is no approval to [`Questions::answer`]: the choice is checked
//! (the question exists, was asked in the chat the answer comes from, is still pending and not
//! past its time, the option exists, the person may talk to the agent in that chat), recorded
//! once, and written into the session as v2's response row (`qr-<questionId>-<ms>`, kind
//! `system`, `{type: question_response, questionId, selectedOption, userId}`), which the
//! blocked tool reads. When the container that asked is gone (a restart, a crash), its tool
//! call died with it: the agent is also told the answer in a note that wakes it.
//!
//! This module does not render cards (the adapters do) and never talks to a platform.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agent_runner::mcp::interactive::{DEFAULT_TIMEOUT_SECS, MAX_OPTIONS, MAX_TIMEOUT_SECS};
use agent_runner::session_db::{self, Kind, NewInbound, OutboundRow, ids};
use rusqlite::{Connection, TransactionBehavior};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::approvals::now_ms;
use super::waker::Wakes;
use crate::channels::card::{Answer, CardOption, Verdict, is_card_id};
use crate::containers::Runner;
use crate::db::questions::{self as rows, Status};
use crate::db::{self, routing, sessions};
use crate::paths::Paths;
use crate::state::{SenderScope, UnknownSenderPolicy};

/// Answered and expired questions are kept this long (a late second tap is told "already
/// answered"), then purged.
pub const KEEP: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Longest title, in characters.
pub const MAX_TITLE: usize = 1024;

/// A question as the agent's card asks it, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asked {
    pub id: String,
    pub title: String,
    pub options: Vec<CardOption>,
    /// How long the asking tool waits.
    pub timeout: Duration,
}

/// Reads outbound content: `Ok(None)` when it is no question, `Err` (the reason) when it is a
/// question the host must not show: its id is not the id of the row carrying it (so an agent
/// cannot reuse the id of another card), a title or options are missing or out of bounds.
pub fn parse(row_id: &str, content: &Value) -> Result<Option<Asked>, String> {
    if content.get("type").and_then(Value::as_str) != Some("ask_question") {
        return Ok(None);
    }
    let id = content
        .get("questionId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if id != row_id || !is_card_id(id) {
        return Err(format!(
            "question id `{}` must be the id of the row that carries it (`{row_id}`), letters, digits and `-`",
            id.escape_debug()
        ));
    }
    let title = content
        .get("title")
        .and_then(Value::as_str)
        .filter(|title| !title.trim().is_empty())
        .ok_or("a question needs a title")?;
    if title.chars().count() > MAX_TITLE {
        return Err(format!("the title is longer than {MAX_TITLE} characters"));
    }
    let raw = content
        .get("options")
        .and_then(Value::as_array)
        .filter(|options| (1..=MAX_OPTIONS).contains(&options.len()))
        .ok_or_else(|| format!("a question needs 1 to {MAX_OPTIONS} options"))?;
    let options = raw
        .iter()
        .map(|option| CardOption::from_value(option).filter(|option| !option.label.is_empty()))
        .collect::<Option<Vec<_>>>()
        .ok_or("an option is a string or {label, selectedLabel?, value?} with a label")?;
    let secs = match content.get("timeout").and_then(Value::as_u64) {
        None | Some(0) => DEFAULT_TIMEOUT_SECS,
        Some(secs) => secs.min(MAX_TIMEOUT_SECS),
    };
    Ok(Some(Asked {
        id: id.to_string(),
        title: title.to_string(),
        options,
        timeout: Duration::from_secs(secs),
    }))
}

/// Stores the question a row asks, before its card goes out (a second delivery writes
/// nothing), and purges questions decided long ago. `Err` is the reason the card must not go
/// out (bad content, or an id another session's question holds).
pub fn record(conn: &Connection, session: &str, row: &OutboundRow) -> Result<(), Refusal> {
    let content: Value = serde_json::from_str(&row.content).unwrap_or_default();
    let Some(asked) = parse(&row.id, &content).map_err(Refusal::Invalid)? else {
        return Ok(());
    };
    let now = now_ms();
    let options: Vec<Value> = asked
        .options
        .iter()
        .map(|option| json!({"label": option.label, "selectedLabel": option.chosen, "value": option.id}))
        .collect();
    let question = rows::Question {
        id: asked.id.clone(),
        session: session.to_string(),
        channel_type: row.channel_type.clone(),
        platform_id: row.platform_id.clone(),
        thread_id: row.thread_id.clone(),
        title: asked.title.clone(),
        options_json: Value::Array(options).to_string(),
        status: Status::Pending,
        asked_at_ms: now,
        expires_at_ms: now.saturating_add(millis(asked.timeout)),
        answer: None,
    };
    let owner = rows::insert(conn, &question, &ids::now_iso()).map_err(Refusal::Db)?;
    if owner != session {
        return Err(Refusal::Invalid(format!(
            "question id `{}` belongs to another session",
            asked.id
        )));
    }
    rows::purge(conn, now.saturating_sub(millis(KEEP))).map_err(Refusal::Db)?;
    Ok(())
}

/// Why [`record`] refused a row.
#[derive(Debug)]
pub enum Refusal {
    /// The card must not go out: recorded as failed.
    Invalid(String),
    /// The DB failed: try again later.
    Db(rusqlite::Error),
}

/// The option an answer names: its number (1-based, what the CLI shows and Telegram's buttons
/// carry) first, else its value, else its label.
pub fn pick(options: &[CardOption], chosen: &str) -> Option<usize> {
    let chosen = chosen.trim();
    if let Ok(number) = chosen.parse::<usize>()
        && (1..=options.len()).contains(&number)
    {
        return Some(number - 1);
    }
    options
        .iter()
        .position(|option| option.id == chosen)
        .or_else(|| options.iter().position(|option| option.label == chosen))
}

/// Whether a person may answer in a chat: anyone who may talk to the agent there (a public chat
/// whose wiring does not restrict senders), or anyone with access to the agent.
pub fn may_answer(
    policy: Option<UnknownSenderPolicy>,
    scope: Option<SenderScope>,
    has_access: bool,
) -> bool {
    has_access || (policy == Some(UnknownSenderPolicy::Public) && scope == Some(SenderScope::All))
}

/// Whether the container that asked still runs: the session's container started before the
/// question was recorded (a later one, or none, means the asking tool call died).
pub fn asker_alive(container_started: Option<SystemTime>, asked_at_ms: i64) -> bool {
    let asked = UNIX_EPOCH + Duration::from_millis(u64::try_from(asked_at_ms).unwrap_or(0));
    container_started.is_some_and(|started| started <= asked)
}

/// The answer path for questions; cloned into the approvals actor.
#[derive(Clone)]
pub struct Questions {
    /// Its own central-DB connection (used inside `spawn_blocking`).
    conn: Arc<Mutex<Connection>>,
    paths: Paths,
    /// Which containers run (whether the asker is alive); `None` in tests without Docker.
    runner: Option<Runner>,
    /// Wakes the session after its answer is written.
    wakes: Option<Wakes>,
}

impl Questions {
    pub fn new(
        paths: &Paths,
        runner: Option<Runner>,
        wakes: Option<Wakes>,
    ) -> anyhow::Result<Questions> {
        Ok(Questions {
            conn: Arc::new(Mutex::new(db::open(&paths.db())?)),
            paths: paths.clone(),
            runner,
            wakes,
        })
    }

    /// Decides an answer to a question: `None` when no question has that id.
    pub async fn answer(&self, answer: &Answer) -> Option<Verdict> {
        let conn = Arc::clone(&self.conn);
        let paths = self.paths.clone();
        let runner = self.runner.clone();
        let answer = answer.clone();
        let decided = tokio::task::spawn_blocking(move || {
            let mut conn = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let started = |session: &str| runner.as_ref()?.started_at(session);
            decide(&mut conn, &paths, &answer, now_ms(), &started)
        })
        .await;
        let (verdict, wake) = match decided {
            Ok(Ok(decided)) => decided?,
            Ok(Err(err)) => {
                warn!(error = %format!("{err:#}"), "answer to a question not recorded");
                return Some(Verdict::Refused(format!(
                    "the answer could not be recorded: {err:#}"
                )));
            }
            Err(err) => {
                warn!(error = %err, "answering a question panicked");
                return Some(Verdict::Refused(
                    "the answer could not be recorded".to_string(),
                ));
            }
        };
        if let (Some(session), Some(wakes)) = (wake, &self.wakes) {
            wakes.send(session, None);
        }
        Some(verdict)
    }
}

/// Decides one answer (see the module comment): `None` when it names no question; else the
/// verdict and the session to wake.
fn decide(
    conn: &mut Connection,
    paths: &Paths,
    answer: &Answer,
    now: i64,
    container_started: &dyn Fn(&str) -> Option<SystemTime>,
) -> anyhow::Result<Option<(Verdict, Option<String>)>> {
    let Some(question) = rows::get(conn, &answer.card)? else {
        return Ok(None);
    };
    let refuse = |why: String| Ok(Some((Verdict::Refused(why), None)));
    if question.channel_type.as_deref() != Some(answer.channel_type.as_str())
        || question.platform_id.as_deref() != Some(answer.platform_id.as_str())
    {
        return refuse(format!(
            "question `{}` was asked in another chat: answer it there",
            question.id
        ));
    }
    let options: Vec<CardOption> = serde_json::from_str::<Vec<Value>>(&question.options_json)?
        .iter()
        .filter_map(CardOption::from_value)
        .collect();
    let waited = (question.expires_at_ms - question.asked_at_ms).max(0) / 1000;
    let expired =
        format!("this question expired: the agent stopped waiting for an answer after {waited}s");
    match question.status {
        Status::Answered => {
            let chosen = options
                .iter()
                .find(|option| Some(&option.id) == question.answer.as_ref())
                .map_or_else(
                    || question.answer.clone().unwrap_or_default(),
                    |o| o.chosen.clone(),
                );
            return refuse(format!("this question was already answered: {chosen}"));
        }
        Status::Expired => return refuse(expired),
        Status::Pending if now >= question.expires_at_ms => {
            rows::expire(conn, &question.id, now)?;
            info!(question = %question.id, "question answered after its time; expired");
            return refuse(expired);
        }
        Status::Pending => {}
    }
    let Some(session) = sessions::get(conn, &question.session)? else {
        rows::expire(conn, &question.id, now)?;
        return refuse("the conversation that asked this question is gone".to_string());
    };
    let Some(index) = pick(&options, &answer.option) else {
        return refuse(format!(
            "question `{}` has no option `{}`\n\nhint: answer with a number from 1 to {}",
            question.id,
            answer.option,
            options.len()
        ));
    };
    if !allowed(conn, &session.agent, answer)? {
        info!(question = %question.id, responder = %answer.responder, "answer refused: not allowed in this chat");
        return refuse(format!(
            "`{}` may not answer this question: only people who may talk to `{}` in this chat may",
            answer.responder, session.agent
        ));
    }
    let option = &options[index];
    let alive = asker_alive(container_started(&session.id), question.asked_at_ms);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if !rows::answer(&tx, &question.id, &option.id, &answer.responder, now)? {
        return refuse("this question was already answered".to_string());
    }
    let dir = paths.session(&session.agent, &session.id);
    let mut written = vec![response_row(&question, &option.id, &answer.responder, now)];
    if !alive {
        written.push(note_row(&session.agent, &question.title, option));
    }
    let mut inbound = session_db::open_inbound_host(&session_db::inbound_path(&dir))?;
    session_db::insert_inbound(&mut inbound, &written)?;
    tx.commit()?;
    info!(question = %question.id, session = %session.id, option = %option.id, by = %answer.responder, asker_alive = alive, "question answered");
    Ok(Some((
        Verdict::Decided(option.chosen.clone()),
        Some(session.id),
    )))
}

/// Whether the responder may talk to `agent` in the chat the answer comes from.
fn allowed(conn: &Connection, agent: &str, answer: &Answer) -> rusqlite::Result<bool> {
    let (accessible, _) = routing::access(conn, &answer.responder, &[agent])?;
    let chat = routing::chat(conn, &answer.channel_type, &answer.platform_id)?;
    let scope = match &chat {
        Some(chat) => routing::wirings(conn, &chat.id)?
            .into_iter()
            .find(|wiring| wiring.agent == agent)
            .map(|wiring| wiring.sender_scope),
        None => None,
    };
    Ok(may_answer(
        chat.map(|chat| chat.unknown_sender_policy),
        scope,
        accessible.contains(agent),
    ))
}

/// v2's response row, which the blocked tool finds by question id (context only: it must not
/// wake a container that has nothing else to do). Unlike v2 it has no routing: the runner
/// threads a turn's final text to the newest row from the chat, and that must stay the
/// person's message, not this row.
fn response_row(question: &rows::Question, value: &str, by: &str, now: i64) -> NewInbound {
    NewInbound {
        id: format!("qr-{}-{now}", question.id),
        kind: Kind::System,
        timestamp: ids::now_iso(),
        content: json!({
            "type": "question_response",
            "questionId": question.id,
            "selectedOption": value,
            "userId": by,
        })
        .to_string(),
        trigger: false,
        ..NewInbound::default()
    }
}

/// The note for an agent whose asking tool call died with its container: a waking chat row
/// from sender `system`, as `system::write_note` writes.
fn note_row(agent: &str, title: &str, option: &CardOption) -> NewInbound {
    let text = format!(
        "The person answered your question \"{title}\": {value} ({label}). Your ask_user_question call ended before the answer came (your container was restarted), so the answer arrives as this message; continue from it.",
        value = option.id,
        label = option.chosen,
    );
    NewInbound {
        id: ids::new_id("sys"),
        kind: Kind::Chat,
        timestamp: ids::now_iso(),
        platform_id: Some(agent.to_string()),
        channel_type: Some(session_db::AGENT_CHANNEL_TYPE.to_string()),
        content: json!({"text": text, "sender": "system", "senderId": "system"}).to_string(),
        trigger: true,
        ..NewInbound::default()
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[path = "questions_tests.rs"]
mod tests;
