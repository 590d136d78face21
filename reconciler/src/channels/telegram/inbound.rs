//! Updates → what the adapter hands on (pure): a chat message as an [`InboundEvent`] plus the
//! files to download into it, or a button press.
//!
//! - The platform id is the chat id (`111222333` for a DM, `-100…` for a supergroup): what a
//!   channel manifest's `platform_id` says.
//! - DMs (`private` chats) are mentions; in groups the bot is mentioned by `@botname` (a
//!   `mention` entity, case-insensitive), a `text_mention` of the bot, a command addressed to it
//!   (`/cmd@botname`), or a reply to one of the bot's messages.
//! - Forum topics are threads: a topic message's `message_thread_id` is the thread id (the
//!   adapter is threaded). Messages of the General topic and of ordinary groups have none.
//! - Photos (the largest size) and documents become files to download; the adapter puts their
//!   bytes into the content's `attachments` as base64 `data` and the router saves them into
//!   the session inbox (docs/runtime.md).
//! - The message id is `<chat id>_<message id>`: Telegram's message ids are unique per chat
//!   only, and one agent-shared session can hear several chats.
//!
//! Channel posts, edits and service messages are not read (their update is still acknowledged).

use serde_json::{Map, Value, json};

use super::types::{CallbackQuery, Message, MessageEntity, Update, User};
use crate::channels::{Content, InboundEvent, InboundMessage, Kind};

/// The channel type of this adapter (manifests' `channel_type`).
pub const CHANNEL_TYPE: &str = "telegram";

/// What one update means to the adapter.
#[derive(Clone, Debug, PartialEq)]
pub enum Mapped {
    /// A chat message for the router, once its files are downloaded.
    Message(Box<Incoming>),
    /// An inline-keyboard button was pressed.
    Click(Click),
    /// Nothing to route (an edit, a channel post, a service message, the bot's own message).
    Skip,
}

/// A chat message and the files it carries.
#[derive(Clone, Debug, PartialEq)]
pub struct Incoming {
    pub event: InboundEvent,
    pub files: Vec<FileRef>,
}

/// A file of a message, to fetch with `getFile` and download.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRef {
    pub file_id: String,
    /// `photo` or `document`: the attachment's `type`.
    pub kind: &'static str,
    pub name: Option<String>,
    pub mime: Option<String>,
    pub size: Option<u64>,
}

/// A button press: who, on which message, with which callback data.
#[derive(Clone, Debug, PartialEq)]
pub struct Click {
    pub query_id: String,
    pub user_id: i64,
    pub chat_id: Option<i64>,
    pub message_id: Option<i64>,
    /// The text of the card the button is on.
    pub card_text: Option<String>,
    pub data: String,
}

/// Maps one update for the bot `me`.
pub fn map(update: &Update, me: &User) -> Mapped {
    if let Some(query) = &update.callback_query {
        return click(query);
    }
    let Some(message) = &update.message else {
        return Mapped::Skip;
    };
    match message_event(message, me) {
        Some(incoming) => Mapped::Message(Box::new(incoming)),
        None => Mapped::Skip,
    }
}

fn click(query: &CallbackQuery) -> Mapped {
    let Some(data) = &query.data else {
        return Mapped::Skip;
    };
    Mapped::Click(Click {
        query_id: query.id.clone(),
        user_id: query.from.id,
        chat_id: query.message.as_ref().map(|message| message.chat.id),
        message_id: query.message.as_ref().map(|message| message.message_id),
        card_text: query
            .message
            .as_ref()
            .and_then(|message| message.text.clone()),
        data: data.clone(),
    })
}

fn message_event(message: &Message, me: &User) -> Option<Incoming> {
    let is_group = match message.chat.kind.as_str() {
        "private" => false,
        "group" | "supergroup" => true,
        _ => return None,
    };
    let from = message.from.as_ref()?;
    if from.id == me.id {
        return None;
    }
    let files = files(message);
    let text = message.text.as_ref().or(message.caption.as_ref());
    if text.is_none() && files.is_empty() {
        return None;
    }
    let is_mention = !is_group || mentions(message, me);
    let thread_id = (message.is_topic_message && message.chat.is_forum)
        .then_some(message.message_thread_id)
        .flatten()
        .map(|thread| thread.to_string());
    let mut rest = Map::new();
    if let Some(replied) = &message.reply_to_message
        && !is_topic_root(message, replied)
    {
        let sender = replied.from.as_ref().map(display_handle);
        rest.insert(
            "replyTo".into(),
            json!({
                "messageId": message_key(replied.chat.id, replied.message_id),
                "text": replied.text.as_ref().or(replied.caption.as_ref()),
                "sender": sender,
            }),
        );
    }
    if is_group && let Some(title) = &message.chat.title {
        rest.insert("chatName".into(), Value::String(title.clone()));
    }
    let content = Content {
        text: text.cloned(),
        sender: Some(display_handle(from)),
        sender_id: Some(from.id.to_string()),
        sender_name: Some(from.full_name()),
        attachments: Vec::new(),
        rest,
    };
    let event = InboundEvent {
        channel_type: CHANNEL_TYPE.to_string(),
        platform_id: message.chat.id.to_string(),
        thread_id,
        message: InboundMessage {
            id: message_key(message.chat.id, message.message_id),
            kind: Kind::Chat,
            content,
            timestamp: iso(message.date),
            is_mention,
            is_group: Some(is_group),
        },
        reply_to: None,
    };
    Some(Incoming { event, files })
}

/// `<chat id>_<message id>`: the inbound message id, unique across chats.
pub fn message_key(chat_id: i64, message_id: i64) -> String {
    format!("{chat_id}_{message_id}")
}

/// The Telegram message id in a message id the agent gives back: the plain number an outbound
/// delivery returned, or the `<chat>_<message>` of an inbound message.
pub fn platform_message_id(id: &str) -> Option<i64> {
    id.rsplit('_').next()?.trim().parse().ok()
}

/// `@username`, else the first name.
fn display_handle(user: &User) -> String {
    match &user.username {
        Some(username) => format!("@{username}"),
        None => user.first_name.clone(),
    }
}

/// Whether a group message addresses the bot.
fn mentions(message: &Message, me: &User) -> bool {
    let handle = me
        .username
        .as_ref()
        .map(|username| format!("@{}", username.to_lowercase()));
    let (text, entities) = match (&message.text, &message.caption) {
        (Some(text), _) => (text.as_str(), &message.entities),
        (None, Some(caption)) => (caption.as_str(), &message.caption_entities),
        (None, None) => ("", &message.entities),
    };
    let named = entities.iter().any(|entity| match entity.kind.as_str() {
        "mention" => handle
            .as_deref()
            .is_some_and(|handle| entity_text(text, entity).to_lowercase() == handle),
        "text_mention" => entity.user.as_ref().is_some_and(|user| user.id == me.id),
        "bot_command" => handle
            .as_deref()
            .is_some_and(|handle| entity_text(text, entity).to_lowercase().ends_with(handle)),
        _ => false,
    });
    let replied_to_bot = message.reply_to_message.as_ref().is_some_and(|replied| {
        !is_topic_root(message, replied)
            && replied.from.as_ref().is_some_and(|from| from.id == me.id)
    });
    named || replied_to_bot
}

/// In a forum topic every message "replies" to the topic's first message; that is not a reply.
fn is_topic_root(message: &Message, replied: &Message) -> bool {
    message.is_topic_message && message.message_thread_id == Some(replied.message_id)
}

/// The text an entity covers (offsets count UTF-16 code units).
fn entity_text(text: &str, entity: &MessageEntity) -> String {
    let units: Vec<u16> = text.encode_utf16().collect();
    let end = (entity.offset + entity.length).min(units.len());
    let start = entity.offset.min(end);
    String::from_utf16_lossy(&units[start..end])
}

fn files(message: &Message) -> Vec<FileRef> {
    let mut files = Vec::new();
    if let Some(largest) = message
        .photo
        .iter()
        .max_by_key(|size| size.width * size.height)
    {
        files.push(FileRef {
            file_id: largest.file_id.clone(),
            kind: "photo",
            name: None,
            mime: Some("image/jpeg".into()),
            size: largest.file_size,
        });
    }
    if let Some(document) = &message.document {
        files.push(FileRef {
            file_id: document.file_id.clone(),
            kind: "document",
            name: document.file_name.clone(),
            mime: document.mime_type.clone(),
            size: document.file_size,
        });
    }
    files
}

/// The attachment a downloaded file becomes: `{type, name?, mimeType?, size, data}` (base64);
/// the router saves it into the session inbox and replaces `data` with `localPath`.
pub fn attachment(file: &FileRef, bytes: &[u8]) -> crate::channels::Attachment {
    use base64::Engine;
    let mut fields = Map::new();
    fields.insert("type".into(), Value::String(file.kind.into()));
    if let Some(name) = &file.name {
        fields.insert("name".into(), Value::String(name.clone()));
    }
    if let Some(mime) = &file.mime {
        fields.insert("mimeType".into(), Value::String(mime.clone()));
    }
    fields.insert("size".into(), Value::from(bytes.len()));
    fields.insert(
        "data".into(),
        Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
    );
    crate::channels::Attachment::new(fields)
}

/// Unix seconds as the protocol's ISO-8601 UTC.
fn iso(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn me() -> User {
        serde_json::from_str::<crate::channels::telegram::types::ApiResponse<User>>(include_str!(
            "../../../../tests/fixtures/telegram/responses/getMe.json"
        ))
        .unwrap()
        .result
        .unwrap()
    }

    /// Maps a recorded update and shows the facts the router reads.
    #[track_caller]
    fn check(fixture: &str, expect: Expect) {
        let update: Update = serde_json::from_str(fixture).unwrap();
        let shown = match map(&update, &me()) {
            Mapped::Message(incoming) => {
                let Incoming { event, files } = *incoming;
                let message = &event.message;
                let mut shown = format!(
                    "chat {} thread {:?} id {} mention {} group {:?} at {}\ncontent {}",
                    event.platform_id,
                    event.thread_id,
                    message.id,
                    message.is_mention,
                    message.is_group,
                    message.timestamp,
                    message.content.to_json(),
                );
                for file in files {
                    shown += &format!("\nfile {file:?}");
                }
                shown
            }
            other => format!("{other:?}"),
        };
        expect.assert_eq(&shown);
    }

    #[test]
    fn a_dm_is_a_mention_in_its_own_chat() {
        check(
            include_str!("../../../../tests/fixtures/telegram/updates/private-text.json"),
            expect![[r#"
                chat 111222333 thread None id 111222333_17 mention true group Some(false) at 2025-11-30T02:33:20.000Z
                content {"text":"hello","sender":"@ada","senderId":"111222333","senderName":"Ada Lovelace"}"#]],
        );
    }

    #[test]
    fn a_group_message_is_a_mention_only_when_it_names_or_answers_the_bot() {
        check(
            include_str!("../../../../tests/fixtures/telegram/updates/group-mention.json"),
            expect![[r#"
                chat -1001234567890 thread None id -1001234567890_301 mention true group Some(true) at 2025-11-30T02:33:30.000Z
                content {"text":"@nanoclaw_test_bot what is on today?","sender":"@ada","senderId":"111222333","senderName":"Ada","chatName":"Family"}"#]],
        );
        check(
            include_str!("../../../../tests/fixtures/telegram/updates/group-plain.json"),
            expect![[r#"
                chat -1001234567890 thread None id -1001234567890_302 mention false group Some(true) at 2025-11-30T02:33:40.000Z
                content {"text":"dinner at 7, mention @someone_else","sender":"Grace","senderId":"444555666","senderName":"Grace Hopper","chatName":"Family"}"#]],
        );
        check(
            include_str!("../../../../tests/fixtures/telegram/updates/group-reply-to-bot.json"),
            expect![[r#"
                chat -1001234567890 thread None id -1001234567890_303 mention true group Some(true) at 2025-11-30T02:33:50.000Z
                content {"text":"and tomorrow?","sender":"Grace","senderId":"444555666","senderName":"Grace Hopper","replyTo":{"messageId":"-1001234567890_290","text":"echo: earlier","sender":"@nanoclaw_test_bot"},"chatName":"Family"}"#]],
        );
    }

    #[test]
    fn a_forum_topic_is_a_thread_and_a_command_to_the_bot_is_a_mention() {
        check(
            include_str!("../../../../tests/fixtures/telegram/updates/forum-topic.json"),
            expect![[r#"
                chat -1009876543210 thread Some("77") id -1009876543210_512 mention true group Some(true) at 2025-11-30T02:34:00.000Z
                content {"text":"/status@nanoclaw_test_bot","sender":"@ada","senderId":"111222333","senderName":"Ada","chatName":"Projects"}"#]],
        );
    }

    #[test]
    fn photos_and_documents_become_files_to_download() {
        check(
            include_str!("../../../../tests/fixtures/telegram/updates/photo.json"),
            expect![[r#"
                chat 111222333 thread None id 111222333_18 mention true group Some(false) at 2025-11-30T02:34:10.000Z
                content {"text":"what is this?","sender":"@ada","senderId":"111222333","senderName":"Ada"}
                file FileRef { file_id: "AgACAgQAAxkBAAIBZ2dFphoto", kind: "photo", name: None, mime: Some("image/jpeg"), size: Some(68) }"#]],
        );
        check(
            include_str!("../../../../tests/fixtures/telegram/updates/document.json"),
            expect![[r#"
                chat 111222333 thread None id 111222333_19 mention true group Some(false) at 2025-11-30T02:34:20.000Z
                content {"sender":"@ada","senderId":"111222333","senderName":"Ada"}
                file FileRef { file_id: "BQACAgQAAxkBAAIBaGdFdoc", kind: "document", name: Some("notes.pdf"), mime: Some("application/pdf"), size: Some(2048) }"#]],
        );
    }

    #[test]
    fn clicks_and_edits() {
        check(
            include_str!("../../../../tests/fixtures/telegram/updates/callback-query.json"),
            expect![[
                r#"Click(Click { query_id: "4382bfdwdsb323b2d9", user_id: 111222333, chat_id: Some(111222333), message_id: Some(4243), card_text: Some("Deploy?\n\nShip the release now?"), data: "ncq:q-1:1" })"#
            ]],
        );
        check(
            include_str!("../../../../tests/fixtures/telegram/updates/edited-message.json"),
            expect!["Skip"],
        );
    }

    #[test]
    fn the_bots_own_messages_are_not_routed() {
        let mut update: Update = serde_json::from_str(include_str!(
            "../../../../tests/fixtures/telegram/updates/group-plain.json"
        ))
        .unwrap();
        if let Some(message) = &mut update.message {
            message.from = Some(me());
        }
        assert_eq!(map(&update, &me()), Mapped::Skip);
    }

    #[test]
    fn message_ids_given_back_by_the_agent_are_read() {
        assert_eq!(platform_message_id("4242"), Some(4242));
        assert_eq!(platform_message_id("-1001234567890_301"), Some(301));
        assert_eq!(platform_message_id("nope"), None);
    }

    #[test]
    fn an_attachment_carries_its_bytes_as_base64() {
        let file = FileRef {
            file_id: "x".into(),
            kind: "document",
            name: Some("a.txt".into()),
            mime: Some("text/plain".into()),
            size: None,
        };
        let attachment = attachment(&file, b"hi");
        assert_eq!(attachment.data(), Some("aGk="));
        assert_eq!(attachment.name(), Some("a.txt"));
    }
}
