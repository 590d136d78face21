//! Channel adapters: the contract between chat platforms and the runtime (host.md §9.1).
//!
//! An adapter turns platform traffic into [`InboundEvent`]s (sent to the router through the
//! sender it is given at start) and delivers outbound messages to the platform. Adapters know
//! nothing about agents, sessions or the DB. The registry ([`Adapters`]) is keyed by
//! channel type; the router and delivery look adapters up there.

pub mod accept;
pub mod cli_protocol;
pub mod cli_socket;
pub mod telegram;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use agent_runner::session_db::{Attachment, Content, Kind};
use serde::{Deserialize, Serialize};

/// One message arriving from a channel (host.md §3.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InboundEvent {
    pub channel_type: String,
    pub platform_id: String,
    pub thread_id: Option<String>,
    pub message: InboundMessage,
    /// Where replies go instead of the origin (operator-injected messages).
    pub reply_to: Option<ReplyAddress>,
}

/// An inbound event on its way to the router, with an optional receipt: the router answers
/// with a [`Receipt`] once the message is stored in every session it was routed to (or could
/// not be), so a channel can acknowledge only what is safe on disk.
#[derive(Debug)]
pub struct Envelope {
    pub event: InboundEvent,
    pub stored: Option<tokio::sync::oneshot::Sender<Receipt>>,
}

/// What the router did with one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Receipt {
    /// Stored in every session it was routed to (possibly none). `answering`: the agents that
    /// took it and will answer (engaged, or refused with a reply), in routing order.
    Stored { answering: Vec<String> },
    /// No chat is registered at that address and the message did not address the bot.
    UnknownChat,
    /// Not (completely) stored; the runtime log says why.
    Failed,
}

impl Envelope {
    pub fn new(event: InboundEvent) -> Envelope {
        Envelope {
            event,
            stored: None,
        }
    }
}

/// One message as its adapter understood it: its content is parsed once, here at the
/// boundary, and serialised once, into each session's `inbound.db`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// Platform message id (unique per chat).
    pub id: String,
    /// `chat` or `chat-sdk`.
    #[serde(with = "kind_text")]
    pub kind: Kind,
    /// `{text, sender, senderId, senderName, attachments, …}`: the router reads its facts
    /// (text, sender) and saves its attachments from it.
    pub content: Content,
    /// ISO-8601 UTC.
    pub timestamp: String,
    /// The platform confirmed the bot was mentioned (DMs count as mentions).
    pub is_mention: bool,
    pub is_group: Option<bool>,
}

/// A message kind as its string form.
mod kind_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Kind;

    pub fn serialize<S: Serializer>(kind: &Kind, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(kind.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Kind, D::Error> {
        Ok(Kind::parse(&String::deserialize(deserializer)?))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyAddress {
    pub channel_type: String,
    pub platform_id: String,
    pub thread_id: Option<String>,
}

/// One message to deliver (an outbound row, already routed and authorised).
#[derive(Clone, Debug, PartialEq)]
pub struct Outbound {
    /// The outbound row id (or a fresh id for a runtime notice that has no row). A channel
    /// that cannot exclude showing a message twice passes it on so the reader can drop the
    /// duplicate.
    pub id: String,
    /// The agent that wrote it, by manifest name.
    pub agent: Option<String>,
    pub platform_id: String,
    pub thread_id: Option<String>,
    /// `chat`, `chat-sdk`.
    pub kind: String,
    /// Parsed content: `{text}`, `{markdown}`, `{operation: edit|reaction, …}`, cards, …
    pub content: serde_json::Value,
    /// The inbound row this answers (`<platform msg id>:<agent>`), if any.
    pub in_reply_to: Option<String>,
}

/// A file an agent sends with a message (read by delivery from the session's outbox,
/// host.md §6.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutFile {
    pub filename: String,
    pub data: bytes::Bytes,
}

/// What a delivery attempt achieved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivered {
    /// Sent; the platform's message id when it returned one.
    Sent(Option<String>),
    /// Nobody is there to receive it right now (e.g. no CLI client connected): keep it
    /// queued, do not count an attempt. Delivery retries when the adapter reports a reader.
    NoReader,
    /// Handed to a reader that has not confirmed showing it yet: keep it queued, do not count
    /// an attempt. A later delivery returns `Sent` once the reader acknowledged it, or hands
    /// it to the next reader when this one leaves without acknowledging.
    AwaitingAck,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{0}")]
    Failed(String),
}

/// The adapter contract (host.md §9.1).
///
/// Inbound, an adapter sends [`Envelope`]s to the router through the sender it is given when
/// it starts (v2's `onInbound`/`onInboundEvent` callbacks); `platform_id` must be exactly what
/// the manifests' `platform_id` says, `is_mention` must be a platform-confirmed mention (DMs
/// count), and a threaded adapter passes thread ids (the router then forces per-thread
/// sessions in group chats). Outbound, it implements the methods below. Starting and stopping
/// are the adapter's own `serve`-style task, tracked by the runtime. The optional capabilities
/// have defaults that mean "not supported".
pub trait Adapter: Send + Sync {
    /// Registry key for routing and delivery (`cli`, `telegram`, …).
    fn channel_type(&self) -> &str;
    /// False: the router collapses thread ids to the chat (host.md §3.2 step 2).
    fn supports_threads(&self) -> bool;
    /// Delivers one message. Must not block for long: it runs on the delivery task.
    fn deliver(&self, message: &Outbound) -> Result<Delivered, DeliveryError>;
    /// Whether the platform connection is up (for status reporting).
    fn is_connected(&self) -> bool {
        true
    }
    /// Shows "typing…" in the chat; errors are the adapter's to swallow.
    fn set_typing(&self, _platform_id: &str, _thread_id: Option<&str>) {}
    /// Subscribes the bot to a thread so later messages there arrive (mention-sticky in
    /// threaded group chats, host.md §3.2 step 9). Must be idempotent.
    fn subscribe(&self, _platform_id: &str, _thread_id: &str) {}
    /// The DM chat id for a user handle, for platforms where it differs from the user id;
    /// `None` = direct-addressable (the handle is the chat id).
    fn open_dm(&self, _user_handle: &str) -> Option<String> {
        None
    }
    /// The platform's name for a chat, if it can tell.
    fn resolve_channel_name(&self, _platform_id: &str) -> Option<String> {
        None
    }
}

/// Live adapters by channel type.
#[derive(Clone, Default)]
pub struct Adapters {
    by_type: BTreeMap<String, Arc<dyn Adapter>>,
}

impl Adapters {
    pub fn register(&mut self, adapter: Arc<dyn Adapter>) {
        self.by_type
            .insert(adapter.channel_type().to_string(), adapter);
    }

    pub fn get(&self, channel_type: &str) -> Option<&Arc<dyn Adapter>> {
        self.by_type.get(channel_type)
    }

    pub fn supports_threads(&self, channel_type: &str) -> bool {
        self.get(channel_type)
            .is_some_and(|adapter| adapter.supports_threads())
    }
}
