//! Channel adapters: the contract between chat platforms and the runtime
//! (docs/runtime.md#the-adapter-contract).
//!
//! An adapter turns platform traffic into [`InboundEvent`]s (sent to the router through the
//! sender it is given at [`Adapter::start`]) and delivers outbound messages to the platform.
//! Adapters know nothing about agents, sessions or the DB. Which adapters a runtime starts is
//! decided by [`registry`] from the channel types in use; the live ones ([`Adapters`]) are
//! keyed by channel type, and the router and delivery look them up there.

pub mod accept;
pub mod card;
pub mod cli_protocol;
pub mod cli_socket;
pub mod registry;
pub mod telegram;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use agent_runner::session_db::{Attachment, Content, Kind};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One message arriving from a channel (docs/runtime.md#the-adapter-contract).
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
    /// Files from the agent's outbox (`content.files`, read by delivery; docs/channels.md).
    pub files: Vec<OutFile>,
}

/// A file an agent sends with a message (read by delivery from the session's outbox,
/// docs/runtime.md#the-message-path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutFile {
    pub filename: String,
    pub data: bytes::Bytes,
}

/// What a delivery attempt achieved. `NoReader` and `AwaitingAck` are outcomes, not errors:
/// nothing failed, the reply simply is not shown yet, so they keep the row queued without
/// counting an attempt (a [`DeliveryError`] is something that went wrong).
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

/// Why a delivery failed; delivery acts on each differently (docs/runtime.md, "The message
/// path").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The platform asks to try again later (rate limited, flood control): the row is not
    /// attempted again before this long and no attempt is counted.
    #[error("the channel asks to retry in {} ms", .0.as_millis())]
    RetryAfter(Duration),
    /// It will never work (chat gone, bot removed, message refused): the row is marked failed
    /// at once.
    #[error("refused for good: {0}")]
    Permanent(String),
    /// It failed this time (network error, timeout): the row is retried at the next drain and
    /// marked failed after `delivery::MAX_ATTEMPTS` such failures.
    #[error("{0}")]
    Transient(String),
}

/// What an adapter is given when it starts.
pub struct Start {
    /// Where inbound messages go (to the router). Bounded: `send().await` waits while the
    /// router is behind, which is the backpressure a platform connection should feel.
    pub inbound: mpsc::Sender<Envelope>,
    /// Tells delivery that queued replies for a chat may go now.
    pub ready: Ready,
    /// Where a person's choice on a card goes (to the approvals actor), with a sender for
    /// the verdict. Bounded like `inbound`.
    pub answers: card::Answers,
    /// Cancelled when the runtime stops; [`Adapter::stop`] also ends what `start` began.
    pub stop: CancellationToken,
}

/// Delivery's "queued replies for this chat may go now" (a reader arrived, a reply was
/// acknowledged). Never blocks; calls before delivery looks coalesce.
#[derive(Clone)]
pub struct Ready(Arc<dyn Fn(ReaderArrived) + Send + Sync>);

impl Ready {
    pub fn new(ready: impl Fn(ReaderArrived) + Send + Sync + 'static) -> Ready {
        Ready(Arc::new(ready))
    }

    pub fn tell(&self, chat: ReaderArrived) {
        (self.0)(chat);
    }
}

/// A chat whose queued replies may go now: it gained a reader, or its reader acknowledged one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReaderArrived {
    pub channel_type: String,
    pub platform_id: String,
    /// A reader said hello (it has seen nothing yet: the chat's pending cards are shown to it
    /// again), rather than acknowledged a reply.
    pub new_reader: bool,
    /// When it arrived (unix milliseconds): the cards shown again to a new reader are those
    /// made before; a later one reaches it as usual.
    pub at_ms: i64,
}

/// The adapter contract (docs/runtime.md#the-adapter-contract).
///
/// Lifecycle: the runtime builds adapters through the [`registry`] for the channel types in
/// use, calls [`Adapter::start`] once (before any delivery), and [`Adapter::stop`] once at
/// shutdown, after which the adapter holds no clone of the inbound sender (the router ends
/// when the last one is gone) and has no task left running.
///
/// Inbound, an adapter sends [`Envelope`]s to the router through the sender it is given at
/// start (v2's `onInbound`/`onInboundEvent` callbacks); `platform_id` must be exactly what
/// the manifests' `platform_id` says, `is_mention` must be a platform-confirmed mention (DMs
/// count), and a threaded adapter passes thread ids (the router then forces per-thread
/// sessions in group chats). Outbound, [`Adapter::deliver`] runs on the adapter's own outbox
/// task, one message at a time, so a slow platform delays only its own replies. The synchronous
/// methods are called from the router and delivery threads and must not block (queue the work
/// to the adapter's own task). The optional capabilities have defaults that mean "not
/// supported".
pub trait Adapter: Send + Sync + 'static {
    /// Registry key for routing and delivery (`cli`, `telegram`, …).
    fn channel_type(&self) -> &str;
    /// False: the router collapses thread ids to the chat (docs/runtime.md#routing-algorithm).
    fn supports_threads(&self) -> bool;
    /// Connects to the platform (binds, logs in, starts polling) and spawns the adapter's
    /// tasks; an error stops the runtime's start with it.
    fn start(self: Arc<Self>, start: Start) -> BoxFuture<'static, anyhow::Result<()>>;
    /// Stops taking input, ends the adapter's tasks and waits for them.
    fn stop(&self) -> BoxFuture<'_, ()>;
    /// Delivers one message. Called only from the adapter's outbox task, one message at a
    /// time; it may wait for the platform (at most `runtime::outbox::DELIVER_TIMEOUT`, then it
    /// counts as a transient failure).
    fn deliver<'a>(
        &'a self,
        message: &'a Outbound,
    ) -> BoxFuture<'a, Result<Delivered, DeliveryError>>;
    /// Whether the platform connection is up (for status reporting).
    fn is_connected(&self) -> bool {
        true
    }
    /// Shows "typing…" in the chat; errors are the adapter's to swallow.
    fn set_typing(&self, _platform_id: &str, _thread_id: Option<&str>) {}
    /// Subscribes the bot to a thread so later messages there arrive (mention-sticky in
    /// threaded group chats, docs/runtime.md#routing-algorithm). Must be idempotent.
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

    /// Every adapter, by channel type.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Adapter>> {
        self.by_type.values()
    }

    /// Stops every adapter, one after the other.
    pub async fn stop_all(&self) {
        for adapter in self.by_type.values() {
            adapter.stop().await;
        }
    }
}
