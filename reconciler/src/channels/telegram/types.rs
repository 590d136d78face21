//! The Bot API's wire types this adapter reads and writes (https://core.telegram.org/bots/api):
//! only the fields it uses. Unknown fields are ignored, so new Bot API versions do not break
//! parsing. Pure serde; no IO.

use serde::{Deserialize, Serialize};

/// Every Bot API answer: `{ok, result}` or `{ok: false, error_code, description, parameters}`.
#[derive(Clone, Debug, Deserialize)]
pub struct ApiResponse<T> {
    pub ok: bool,
    pub result: Option<T>,
    pub error_code: Option<u16>,
    pub description: Option<String>,
    pub parameters: Option<ResponseParameters>,
}

/// Why a request failed and what to do: `retry_after` on flood control (429),
/// `migrate_to_chat_id` when a group became a supergroup.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ResponseParameters {
    pub retry_after: Option<u64>,
    pub migrate_to_chat_id: Option<i64>,
}

/// `getMe`, and the author of messages.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct User {
    pub id: i64,
    #[serde(default)]
    pub is_bot: bool,
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
}

impl User {
    /// First and last name, as Telegram shows it.
    pub fn full_name(&self) -> String {
        match &self.last_name {
            Some(last) if !last.is_empty() => format!("{} {last}", self.first_name),
            _ => self.first_name.clone(),
        }
    }
}

/// One `getUpdates` entry. Only messages and callback queries are read; other kinds (edited
/// messages, channel posts, member updates …) are skipped but still acknowledged.
#[derive(Clone, Debug, Deserialize)]
pub struct Update {
    pub update_id: i64,
    pub message: Option<Message>,
    pub callback_query: Option<CallbackQuery>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Chat {
    pub id: i64,
    /// `private`, `group`, `supergroup` or `channel`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: Option<String>,
    pub username: Option<String>,
    #[serde(default)]
    pub is_forum: bool,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Message {
    pub message_id: i64,
    /// Forum topic id (supergroups with topics), or the thread a reply belongs to.
    pub message_thread_id: Option<i64>,
    #[serde(default)]
    pub is_topic_message: bool,
    pub from: Option<User>,
    pub chat: Chat,
    /// Unix seconds.
    pub date: i64,
    pub text: Option<String>,
    pub caption: Option<String>,
    #[serde(default)]
    pub entities: Vec<MessageEntity>,
    #[serde(default)]
    pub caption_entities: Vec<MessageEntity>,
    pub reply_to_message: Option<Box<Message>>,
    /// Sizes of one photo, smallest first.
    #[serde(default)]
    pub photo: Vec<PhotoSize>,
    pub document: Option<Document>,
    /// The inline keyboard of a card (read from a clicked card).
    pub reply_markup: Option<InlineKeyboardMarkup>,
}

/// A formatting or semantic span of a text. Offsets and lengths count UTF-16 code units.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageEntity {
    #[serde(rename = "type")]
    pub kind: String,
    pub offset: usize,
    pub length: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// For `text_mention`: the user mentioned (read only).
    #[serde(skip_serializing)]
    pub user: Option<User>,
}

impl MessageEntity {
    pub fn new(kind: &str, offset: usize, length: usize) -> MessageEntity {
        MessageEntity {
            kind: kind.to_string(),
            offset,
            length,
            url: None,
            language: None,
            user: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct PhotoSize {
    pub file_id: String,
    pub width: u32,
    pub height: u32,
    pub file_size: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Document {
    pub file_id: String,
    pub file_name: Option<String>,
    pub mime_type: Option<String>,
    pub file_size: Option<u64>,
}

/// `getFile`: where to download a file from (`<api>/file/bot<token>/<file_path>`).
#[derive(Clone, Debug, Deserialize)]
pub struct File {
    pub file_id: String,
    pub file_size: Option<u64>,
    pub file_path: Option<String>,
}

/// A button press on an inline keyboard.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct CallbackQuery {
    pub id: String,
    pub from: User,
    /// The message with the keyboard (absent when it is too old).
    pub message: Option<Message>,
    pub data: Option<String>,
}

/// The answer of methods that return the sent or edited message (or `true` for some edits).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum MessageOrTrue {
    Message(Box<Message>),
    True(bool),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineKeyboardMarkup {
    pub inline_keyboard: Vec<Vec<InlineKeyboardButton>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineKeyboardButton {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}
