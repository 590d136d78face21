//! Outbound: one outbound message → Bot API calls (the content shapes of
//! docs/channels.md#the-adapter-contract).
//!
//! - `{text}` / `{markdown}`: rendered to text + entities (`format`), split at 4096, one
//!   `sendMessage` per chunk, the first chunk's message id returned. A chunk already sent is not
//!   sent again when a later one fails and the message is retried ([`Progress`]).
//! - `files` (read by delivery from the outbox): after the text, one `sendPhoto` (images) or
//!   `sendDocument` each.
//! - `{operation: edit, messageId, text|markdown}` → `editMessageText` (an unchanged text counts
//!   as done); `{operation: reaction, messageId, emoji}` → `setMessageReaction`.
//! - `{type: ask_question …}` and `{type: card …}` → a message with an inline keyboard (`cards`).
//! - In a forum topic (a thread id) every call carries `message_thread_id`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use super::api::{Api, ApiError, Upload};
use super::cards;
use super::format::{self, Formatted, MAX_MESSAGE};
use super::inbound::platform_message_id;
use super::types::{Message, MessageOrTrue};

pub use crate::channels::OutFile;

/// One message to send, as the adapter received it.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing<'a> {
    /// The outbound row id (keys the progress of a split message).
    pub id: &'a str,
    pub chat: &'a str,
    pub thread: Option<&'a str>,
    pub content: &'a Value,
    pub files: &'a [OutFile],
}

/// How many parts (chunks, then files) of a message were sent, by outbound id, so a retry
/// after a partial failure continues where it stopped. Forgotten once the message is done.
#[derive(Default)]
pub struct Progress {
    sent: Mutex<HashMap<String, (usize, Option<String>)>>,
}

impl Progress {
    fn get(&self, id: &str) -> (usize, Option<String>) {
        self.sent
            .lock()
            .expect("progress lock")
            .get(id)
            .cloned()
            .unwrap_or_default()
    }

    fn set(&self, id: &str, parts: usize, first: Option<String>) {
        self.sent
            .lock()
            .expect("progress lock")
            .insert(id.to_string(), (parts, first));
    }

    fn done(&self, id: &str) {
        self.sent.lock().expect("progress lock").remove(id);
    }
}

/// Why a message cannot be sent at all (it never will be).
fn refused(method: &str, why: &str) -> ApiError {
    ApiError::Refused {
        method: method.into(),
        status: 400,
        description: why.into(),
    }
}

/// Sends one message; returns the platform message id of its first part, if any.
pub async fn deliver(
    api: &Api,
    progress: &Progress,
    out: &Outgoing<'_>,
) -> Result<Option<String>, ApiError> {
    // A `telegram:` prefix (v2's chat ids) is accepted.
    let chat: i64 = out
        .chat
        .trim_start_matches("telegram:")
        .parse()
        .map_err(|_| refused("sendMessage", "the chat id is not a Telegram chat id"))?;
    let thread: Option<i64> = out.thread.and_then(|thread| thread.parse().ok());
    match out.content.get("operation").and_then(Value::as_str) {
        Some("edit") => return edit(api, chat, out.content).await,
        Some("reaction") => return react(api, chat, out.content).await,
        _ => {}
    }
    let parts = parts(out.content)?;
    let total = parts.len() + out.files.len();
    let (mut done, mut first) = progress.get(out.id);
    for (index, part) in parts.iter().enumerate().skip(done) {
        let id = send_text(api, chat, thread, part).await.inspect_err(|_| {
            progress.set(out.id, done, first.clone());
        })?;
        first = first.or(Some(id));
        done = index + 1;
    }
    for (index, file) in out.files.iter().enumerate() {
        if parts.len() + index < done {
            continue;
        }
        let id = send_file(api, chat, thread, file).await.inspect_err(|_| {
            progress.set(out.id, done, first.clone());
        })?;
        first = first.or(Some(id));
        done = parts.len() + index + 1;
    }
    debug_assert_eq!(done, total);
    progress.done(out.id);
    Ok(first)
}

/// What a text-like message sends: its chunks (cards are one part, with their keyboard).
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    pub text: Formatted,
    pub keyboard: Option<Value>,
}

/// The messages one content becomes. Content with nothing to show is no part.
pub fn parts(content: &Value) -> Result<Vec<Part>, ApiError> {
    if let Some(card) = cards::render(content) {
        return Ok(card
            .map(|card| Part {
                text: card.text,
                keyboard: card
                    .keyboard
                    .map(|keyboard| serde_json::to_value(keyboard).expect("a keyboard serialises")),
            })
            .into_iter()
            .collect());
    }
    let formatted = match (content.get("markdown"), content.get("text"), content) {
        (Some(Value::String(markdown)), _, _) => format::markdown(markdown),
        (_, Some(Value::String(text)), _) => format::markdown(text),
        (_, _, Value::String(text)) => format::markdown(text),
        _ => Formatted::default(),
    };
    Ok(format::split(&formatted, MAX_MESSAGE)
        .into_iter()
        .map(|text| Part {
            text,
            keyboard: None,
        })
        .collect())
}

async fn send_text(
    api: &Api,
    chat: i64,
    thread: Option<i64>,
    part: &Part,
) -> Result<String, ApiError> {
    let mut params = json!({"chat_id": chat, "text": part.text.text});
    if !part.text.entities.is_empty() {
        params["entities"] = serde_json::to_value(&part.text.entities).expect("entities");
    }
    if let Some(thread) = thread {
        params["message_thread_id"] = json!(thread);
    }
    if let Some(keyboard) = &part.keyboard {
        params["reply_markup"] = keyboard.clone();
    }
    let sent: Message = api.call("sendMessage", &params, Duration::ZERO).await?;
    Ok(sent.message_id.to_string())
}

/// Images go as photos (Telegram shows them inline), everything else as documents.
fn is_photo(filename: &str) -> bool {
    let lower = filename.to_lowercase();
    [".jpg", ".jpeg", ".png", ".webp"]
        .iter()
        .any(|extension| lower.ends_with(extension))
}

fn mime_of(filename: &str) -> &'static str {
    let lower = filename.to_lowercase();
    let extension = lower.rsplit('.').next().unwrap_or_default();
    match extension {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "pdf" => "application/pdf",
        "txt" | "md" => "text/plain",
        "json" => "application/json",
        "csv" => "text/csv",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

async fn send_file(
    api: &Api,
    chat: i64,
    thread: Option<i64>,
    file: &OutFile,
) -> Result<String, ApiError> {
    let (method, field) = if is_photo(&file.filename) {
        ("sendPhoto", "photo")
    } else {
        ("sendDocument", "document")
    };
    let mut fields = vec![("chat_id", chat.to_string())];
    if let Some(thread) = thread {
        fields.push(("message_thread_id", thread.to_string()));
    }
    let upload = Upload {
        field: field.into(),
        filename: file.filename.clone(),
        mime: mime_of(&file.filename).into(),
        data: file.data.clone(),
    };
    let sent: Message = api.call_multipart(method, &fields, &upload).await?;
    Ok(sent.message_id.to_string())
}

async fn edit(api: &Api, chat: i64, content: &Value) -> Result<Option<String>, ApiError> {
    let message_id = target(content, "editMessageText")?;
    let text = match (content.get("markdown"), content.get("text")) {
        (Some(Value::String(markdown)), _) => format::markdown(markdown),
        (_, Some(Value::String(text))) => format::markdown(text),
        _ => {
            return Err(refused(
                "editMessageText",
                "an edit needs `text` or `markdown`",
            ));
        }
    };
    let mut chunks = format::split(&text, MAX_MESSAGE);
    let Some(first) = chunks.first_mut() else {
        return Err(refused("editMessageText", "the new text is empty"));
    };
    let mut params = json!({"chat_id": chat, "message_id": message_id, "text": first.text});
    if !first.entities.is_empty() {
        params["entities"] = serde_json::to_value(&first.entities).expect("entities");
    }
    match api
        .call::<_, MessageOrTrue>("editMessageText", &params, Duration::ZERO)
        .await
    {
        Ok(_) => Ok(Some(message_id.to_string())),
        Err(err) if err.is_not_modified() => Ok(Some(message_id.to_string())),
        Err(err) => Err(err),
    }
}

async fn react(api: &Api, chat: i64, content: &Value) -> Result<Option<String>, ApiError> {
    let message_id = target(content, "setMessageReaction")?;
    let emoji = content
        .get("emoji")
        .and_then(Value::as_str)
        .filter(|emoji| !emoji.is_empty())
        .ok_or_else(|| refused("setMessageReaction", "a reaction needs an `emoji`"))?;
    let params = json!({
        "chat_id": chat,
        "message_id": message_id,
        "reaction": [{"type": "emoji", "emoji": emoji}],
    });
    api.call::<_, bool>("setMessageReaction", &params, Duration::ZERO)
        .await?;
    Ok(Some(message_id.to_string()))
}

/// The Telegram message an edit or reaction is about.
fn target(content: &Value, method: &str) -> Result<i64, ApiError> {
    let id = match content.get("messageId") {
        Some(Value::String(id)) => platform_message_id(id),
        Some(Value::Number(number)) => number.as_i64(),
        _ => None,
    };
    id.ok_or_else(|| refused(method, "`messageId` is not a Telegram message id"))
}

/// Shows "typing…" in a chat (or topic) for about five seconds.
pub async fn typing(api: &Api, chat: &str, thread: Option<&str>) -> Result<(), ApiError> {
    let mut params = json!({"chat_id": chat, "action": "typing"});
    if let Some(thread) = thread.and_then(|thread| thread.parse::<i64>().ok()) {
        params["message_thread_id"] = json!(thread);
    }
    api.call::<_, bool>("sendChatAction", &params, Duration::ZERO)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_markdown_become_chunks_and_empty_content_nothing() {
        let long = "para\n\n".repeat(1000);
        assert_eq!(parts(&json!({"text": long})).unwrap().len(), 2);
        let bold = parts(&json!({"markdown": "**hi**"})).unwrap();
        assert_eq!(bold[0].text.text, "hi");
        assert_eq!(bold[0].text.entities.len(), 1);
        assert_eq!(parts(&json!({"text": "  "})).unwrap(), vec![]);
        assert_eq!(parts(&json!({"other": 1})).unwrap(), vec![]);
        let card = parts(
            &json!({"type": "ask_question", "questionId": "q", "title": "T", "options": ["a"]}),
        )
        .unwrap();
        assert!(card[0].keyboard.is_some());
    }

    #[test]
    fn images_go_as_photos_and_the_rest_as_documents() {
        assert!(is_photo("chart.PNG"));
        assert!(!is_photo("report.pdf"));
        assert_eq!(mime_of("report.pdf"), "application/pdf");
        assert_eq!(mime_of("noext"), "application/octet-stream");
    }

    #[test]
    fn edits_and_reactions_need_a_telegram_message_id() {
        assert_eq!(target(&json!({"messageId": "4242"}), "x").unwrap(), 4242);
        assert_eq!(target(&json!({"messageId": "-100_7"}), "x").unwrap(), 7);
        assert_eq!(target(&json!({"messageId": 9}), "x").unwrap(), 9);
        let err = target(&json!({}), "setMessageReaction").unwrap_err();
        assert_eq!(err.disposition(), super::super::api::Disposition::Permanent);
    }
}
