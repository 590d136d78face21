//! Interactive tools (docs/agent-runner.md#tools): ask_user_question (blocks until the person
//! answers or the timeout passes) and send_card (returns at once). Both go to the session's
//! reply address, as replies to the message the running turn answers.
//!
//! The question's card carries its `timeout` (seconds) so the host knows when nobody waits for
//! the answer any more (a later tap is told the question expired). While it waits the tool
//! touches the heartbeat: a person thinking about an answer is not a stuck container.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Module, Tool, Tools, check_content_size, text_arg};
use crate::session_db::container::{self as db, NewOutbound};
use crate::session_db::{AckStatus, Kind, new_id};

/// Default (and what `0` means) for ask_user_question's timeout, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 300;
/// Longest timeout accepted, in seconds (a day).
pub const MAX_TIMEOUT_SECS: u64 = 24 * 60 * 60;
/// Most options of one question.
pub const MAX_OPTIONS: usize = 25;

pub const MODULE: Module = Module {
    name: "interactive",
    fragment: include_str!("interactive.md"),
    tools: &[
        Tool {
            name: "ask_user_question",
            description: "Ask the person a multiple-choice question and wait for the answer (blocks until they tap an option or the timeout passes). Returns the chosen option's value.",
            schema: || {
                json!({"type": "object", "properties": {
                    "title": {"type": "string", "description": "a short title"},
                    "question": {"type": "string", "description": "the question"},
                    "options": {"type": "array", "description": "the choices: strings, or {label, selectedLabel?, value?}",
                        "items": {"anyOf": [{"type": "string"}, {"type": "object", "properties": {
                            "label": {"type": "string"}, "selectedLabel": {"type": "string"}, "value": {"type": "string"}
                        }, "required": ["label"]}]}},
                    "timeout": {"type": "integer", "description": "seconds to wait; default 300"}
                }, "required": ["title", "question", "options"]})
            },
            call: ask_user_question,
        },
        Tool {
            name: "send_card",
            description: "Show a structured card (title, description, children, actions) in the current conversation; returns at once.",
            schema: || {
                json!({"type": "object", "properties": {
                    "card": {"type": "object", "description": "title, description, children, actions"},
                    "fallbackText": {"type": "string", "description": "text for channels without cards"}
                }, "required": ["card"]})
            },
            call: send_card,
        },
    ],
};

/// A row to the session's reply address, answering the turn's message.
fn to_session(tools: &Tools, id: String, content: String) -> Result<NewOutbound, String> {
    let routing = db::session_routing(&tools.inbound()?).map_err(|err| err.to_string())?;
    Ok(NewOutbound {
        id,
        in_reply_to: tools.in_reply_to(),
        kind: Kind::ChatSdk,
        platform_id: routing.platform_id,
        channel_type: routing.channel_type,
        thread_id: routing.thread_id,
        content,
    })
}

/// Options normalised to `{label, selectedLabel, value}`.
fn options(raw: &[Value]) -> Result<Vec<Value>, String> {
    if raw.len() > MAX_OPTIONS {
        return Err(format!("at most {MAX_OPTIONS} options"));
    }
    raw.iter()
        .map(|option| match option {
            Value::String(label) => Ok(json!({"label": label, "selectedLabel": label, "value": label})),
            Value::Object(map) => {
                let label = map
                    .get("label")
                    .and_then(Value::as_str)
                    .ok_or("every option needs a `label`")?;
                let pick = |key: &str| map.get(key).and_then(Value::as_str).unwrap_or(label);
                Ok(json!({"label": label, "selectedLabel": pick("selectedLabel"), "value": pick("value")}))
            }
            _ => Err("an option is a string or {label, selectedLabel?, value?}".to_string()),
        })
        .collect()
}

fn ask_user_question(tools: &Tools, args: &Value) -> Result<String, String> {
    let title = text_arg(args, "title");
    let question = text_arg(args, "question");
    let raw = args
        .get("options")
        .and_then(Value::as_array)
        .filter(|list| !list.is_empty());
    let (Some(title), Some(question), Some(raw)) = (title, question, raw) else {
        return Err("title, question, and options are required".into());
    };
    let options = options(raw)?;
    let timeout = match args.get("timeout").and_then(Value::as_u64) {
        None | Some(0) => DEFAULT_TIMEOUT_SECS,
        Some(secs) => secs.min(MAX_TIMEOUT_SECS),
    };
    let question_id = new_id("msg");
    let content = json!({
        "type": "ask_question",
        "questionId": question_id,
        "title": title,
        "question": question,
        "options": options,
        "timeout": timeout,
    })
    .to_string();
    check_content_size(&content, "the question")?;
    tools.write(&to_session(tools, question_id.clone(), content)?)?;
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        if let Some(answer) = answer(tools, &question_id)? {
            return Ok(answer);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(format!("Question timed out after {timeout}s"));
        }
        crate::session_db::touch_heartbeat(&tools.workspace);
        std::thread::sleep(tools.question_poll.min(deadline - now));
    }
}

/// The chosen value, once the host wrote the response row (acked `completed` here).
fn answer(tools: &Tools, question_id: &str) -> Result<Option<String>, String> {
    let inbound = tools.inbound()?;
    let mut outbound = tools.outbound()?;
    let Some((id, content)) =
        db::question_response(&inbound, &outbound, question_id).map_err(|err| err.to_string())?
    else {
        return Ok(None);
    };
    db::ack(&mut outbound, &[id], AckStatus::Completed).map_err(|err| err.to_string())?;
    let content: Value = serde_json::from_str(&content).unwrap_or_default();
    Ok(Some(
        content
            .get("selectedOption")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    ))
}

fn send_card(tools: &Tools, args: &Value) -> Result<String, String> {
    let Some(card) = args.get("card").filter(|card| card.is_object()) else {
        return Err("card is required".into());
    };
    let id = new_id("msg");
    let content = json!({
        "type": "card",
        "card": card,
        "fallbackText": text_arg(args, "fallbackText").unwrap_or(""),
    })
    .to_string();
    check_content_size(&content, "the card")?;
    tools.write(&to_session(tools, id.clone(), content)?)?;
    Ok(format!("Card sent (id: {id})"))
}
