//! The content of a chat message (`messages_in.content` of `chat` rows): a JSON object whose
//! known fields are typed ([`Content`]) and whose other fields are kept as they came.
//!
//! A channel adapter builds a [`Content`] once, at the boundary; the host's router reads its
//! facts (text, sender) and saves its attachments from it, then serialises it once into each
//! session's `inbound.db` ([`Content::to_json`]). Reading is lenient, as v2's was: content that
//! is not a JSON object is text ([`Content::parse`]), and a known field of another type than
//! expected is not read as that field but kept, untouched, with the rest.

use serde::de::Deserializer;
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A chat message's content.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Content {
    /// `text`: what the person wrote.
    pub text: Option<String>,
    /// `sender`: the sender as the platform names them (a handle or a display name).
    pub sender: Option<String>,
    /// `senderId`: the sender's platform id (namespaced by the host when it has no `:`).
    pub sender_id: Option<String>,
    /// `senderName`: the sender's display name.
    pub sender_name: Option<String>,
    /// `attachments`, when it is a non-empty list of objects.
    pub attachments: Vec<Attachment>,
    /// Every other field (`author`, `replyTo`, platform extras …), in its order.
    pub rest: Map<String, Value>,
}

/// One attachment: a JSON object whose known fields are read through typed accessors, kept
/// whole and in order (so rewriting one field moves no other).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attachment(Map<String, Value>);

impl Content {
    /// Content holding only `text`.
    pub fn text(text: impl Into<String>) -> Content {
        Content {
            text: Some(text.into()),
            ..Content::default()
        }
    }

    /// Reads stored or bridged content: a JSON object as [`Content::from_map`], anything else
    /// (not JSON, or JSON that is not an object) as text, as v2 read it.
    pub fn parse(raw: &str) -> Content {
        match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(map)) => Content::from_map(map),
            _ => Content::text(raw),
        }
    }

    /// A JSON value's content: an object as [`Content::from_map`], anything else as text (a
    /// string as itself, other values as their JSON).
    pub fn from_value(value: Value) -> Content {
        match value {
            Value::Object(map) => Content::from_map(map),
            Value::String(text) => Content::text(text),
            other => Content::text(other.to_string()),
        }
    }

    /// Takes the known fields out of `map` when they have their type; everything else stays.
    pub fn from_map(mut map: Map<String, Value>) -> Content {
        let mut text_field = |key: &str| match map.get(key) {
            Some(Value::String(_)) => match map.shift_remove(key) {
                Some(Value::String(text)) => Some(text),
                _ => None,
            },
            _ => None,
        };
        let text = text_field("text");
        let sender = text_field("sender");
        let sender_id = text_field("senderId");
        let sender_name = text_field("senderName");
        let typed_attachments = matches!(
            map.get("attachments"),
            Some(Value::Array(list)) if !list.is_empty() && list.iter().all(Value::is_object)
        );
        let attachments = if typed_attachments {
            match map.shift_remove("attachments") {
                Some(Value::Array(list)) => list
                    .into_iter()
                    .filter_map(|item| match item {
                        Value::Object(fields) => Some(Attachment(fields)),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            }
        } else {
            Vec::new()
        };
        Content {
            text,
            sender,
            sender_id,
            sender_name,
            attachments,
            rest: map,
        }
    }

    /// The JSON object: the known fields first (those set), then the rest in its order.
    pub fn to_map(&self) -> Map<String, Value> {
        let mut map = Map::new();
        for (key, value) in [
            ("text", &self.text),
            ("sender", &self.sender),
            ("senderId", &self.sender_id),
            ("senderName", &self.sender_name),
        ] {
            if let Some(value) = value {
                map.insert(key.to_string(), Value::String(value.clone()));
            }
        }
        if !self.attachments.is_empty() {
            let list = self
                .attachments
                .iter()
                .map(|attachment| Value::Object(attachment.0.clone()))
                .collect();
            map.insert("attachments".to_string(), Value::Array(list));
        }
        for (key, value) in &self.rest {
            map.insert(key.clone(), value.clone());
        }
        map
    }

    /// The stored form: compact JSON (`messages_in.content`).
    pub fn to_json(&self) -> String {
        Value::Object(self.to_map()).to_string()
    }

    /// `text`, or empty.
    pub fn text_or_empty(&self) -> &str {
        self.text.as_deref().unwrap_or_default()
    }

    /// A string at a path inside the rest (`["author", "userId"]`).
    pub fn rest_str(&self, path: &[&str]) -> Option<&str> {
        let (first, more) = path.split_first()?;
        let mut value = self.rest.get(*first)?;
        for key in more {
            value = value.get(key)?;
        }
        value.as_str()
    }
}

impl Attachment {
    /// An attachment from its JSON object.
    pub fn new(fields: Map<String, Value>) -> Attachment {
        Attachment(fields)
    }

    /// `name`, when it is a string.
    pub fn name(&self) -> Option<&str> {
        self.0.get("name").and_then(Value::as_str)
    }

    /// `data`: the file's bytes in base64, when it is a string.
    pub fn data(&self) -> Option<&str> {
        self.0.get("data").and_then(Value::as_str)
    }

    /// `localPath`: where the host saved it, relative to `/workspace`.
    pub fn local_path(&self) -> Option<&str> {
        self.0.get("localPath").and_then(Value::as_str)
    }

    /// The whole object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// Records that the host saved the bytes as `name` at `local_path`: sets `name` (in place)
    /// and `localPath`, and drops `data`.
    pub fn mark_saved(&mut self, name: &str, local_path: &str) {
        self.0
            .insert("name".to_string(), Value::String(name.to_string()));
        self.0.insert(
            "localPath".to_string(),
            Value::String(local_path.to_string()),
        );
        self.0.shift_remove("data");
    }
}

impl Serialize for Content {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Content::from_value(Value::deserialize(deserializer)?))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn known_fields_are_typed_and_the_rest_is_kept_in_order() {
        let raw = r#"{"text":"hi","sender":"Ann","senderId":"42","senderName":"Ann B","author":{"userId":"u"},"replyTo":{"id":7}}"#;
        let content = Content::parse(raw);
        assert_eq!(content.text.as_deref(), Some("hi"));
        assert_eq!(content.sender.as_deref(), Some("Ann"));
        assert_eq!(content.sender_id.as_deref(), Some("42"));
        assert_eq!(content.sender_name.as_deref(), Some("Ann B"));
        assert_eq!(content.rest_str(&["author", "userId"]), Some("u"));
        assert_eq!(content.to_json(), raw, "the stored form round-trips");
    }

    #[test]
    fn content_that_is_not_an_object_is_text() {
        assert_eq!(Content::parse("plain <b>"), Content::text("plain <b>"));
        assert_eq!(Content::parse("\"quoted\""), Content::text("\"quoted\""));
        assert_eq!(Content::from_value(json!("hi")), Content::text("hi"));
        assert_eq!(Content::parse("{}").text_or_empty(), "");
    }

    #[test]
    fn a_known_field_of_another_type_is_kept_not_read() {
        let content = Content::parse(r#"{"text":5,"attachments":"not a list","sender":null}"#);
        assert_eq!(content.text, None);
        assert_eq!(content.sender, None);
        assert!(content.attachments.is_empty());
        assert_eq!(
            content.to_json(),
            r#"{"text":5,"attachments":"not a list","sender":null}"#
        );
    }

    #[test]
    fn attachments_keep_their_fields_in_order_when_saved() {
        let mut content = Content::from_value(json!({
            "text": "see",
            "attachments": [{"name": "a.png", "data": "QQ==", "size": 1}, {"url": "https://x"}],
        }));
        assert_eq!(content.attachments.len(), 2);
        assert_eq!(content.attachments[0].data(), Some("QQ=="));
        content.attachments[0].mark_saved("a.png", "inbox/m1/a.png");
        assert_eq!(
            content.to_json(),
            r#"{"text":"see","attachments":[{"name":"a.png","size":1,"localPath":"inbox/m1/a.png"},{"url":"https://x"}]}"#
        );
        let back: Content = serde_json::from_str(&content.to_json()).unwrap();
        assert_eq!(back, content);
    }
}
