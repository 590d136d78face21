//! The CLI channel: a Unix socket (`<data>/cli.sock`, mode 0600) that `nanoclaw chat` talks to
//! (docs/runtime.md#the-cli-channel, adapted). The lines are the typed values of
//! [`super::cli_protocol`]; this file is the server: connections, the one reader per chat, and
//! delivery to it.
//!
//! Lifecycle ([`Adapter::start`]/[`Adapter::stop`]): start binds the socket (a leftover socket
//! file is replaced) and spawns the accept loop; stop ends it and every connection, and removes
//! the socket file if it is still the one it bound. Built by [`FACTORY`], always started.
//!
//! A reply is delivered only once the reader has shown it: [`CliSocket::offer`] (what
//! `deliver` does, at once: it never waits) hands it to the chat's reader and answers
//! [`Delivered::AwaitingAck`] (queued, no attempt counted) until the reader acknowledges its
//! id; then the next delivery of that row answers `Sent`. A reader that leaves (or is
//! superseded) without acknowledging leaves the reply queued for the next reader. Replies for a
//! chat with no reader stay queued ([`Delivered::NoReader`]); when a reader says hello or
//! acknowledges, delivery is told through [`Ready`].
//!
//! The accept loop backs off when accepting fails (file descriptors exhausted), logs such
//! failures once per interval, and refuses connections beyond [`MAX_CONNECTIONS`] with an
//! error line.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::accept::{self, Log, Throttle};
use super::card::{self, Card, Outcome};
use super::cli_protocol::{
    self, AnswerLine, CardChoice, CardView, ClientLine, HostLine, Line, LineCodec, Reply, Welcome,
};
use super::registry::Factory;
use super::{
    Adapter, Content, Delivered, DeliveryError, Envelope, InboundEvent, InboundMessage, Kind,
    Outbound, ReaderArrived, Ready, Receipt, Start,
};
use crate::paths::Paths;

pub use super::cli_protocol::{DEFAULT_PLATFORM_ID, MAX_LINE};

/// Channel type of the CLI channel in manifests (`channel_type: cli`).
pub const CHANNEL_TYPE: &str = "cli";
/// Most client connections at once; more are answered with an error and closed.
pub const MAX_CONNECTIONS: usize = 256;
/// Replies buffered per connected reader; beyond that they stay queued in the session.
const READER_BUFFER: usize = 256;
/// How long an acknowledgement waits for delivery to collect it. Delivery collects the
/// acknowledgements of queued rows within a second; a runtime notice has no row, so its
/// acknowledgement is never collected and is forgotten after this.
const ACK_KEPT: Duration = Duration::from_secs(600);

/// The registry's entry: always started, at `<data>/cli.sock`.
pub const FACTORY: Factory = Factory {
    channel_type: CHANNEL_TYPE,
    always: true,
    build,
};

fn build(paths: &Paths) -> anyhow::Result<Arc<dyn Adapter>> {
    Ok(Arc::new(
        CliSocket::new(paths.cli_socket()).with_downloads(paths.downloads()),
    ))
}

/// The CLI channel: who reads which chat, what they were sent and have shown. Shared by the
/// accept loop and connection tasks (which write it) and the outbox task calling `deliver`.
pub struct CliSocket {
    /// Where `start` binds the socket.
    socket: PathBuf,
    /// Per chat: its reader and the replies in flight. Written by `deliver` and the connection
    /// tasks (hello, ack, leaving), always under this lock.
    chats: Mutex<HashMap<String, Chat>>,
    /// The next connection's number (written by the accept loop).
    next_conn: AtomicU64,
    /// Open client connections (each connection task holds one [`Opened`]).
    open: Arc<AtomicUsize>,
    max_connections: usize,
    /// The accept loop and every connection task.
    tasks: TaskTracker,
    /// Set by `start`, cancelled by `stop` (or the runtime's stop).
    stop: Mutex<Option<CancellationToken>>,
    /// Where files sent with replies are saved (`Paths::downloads`); `None`: they are not.
    downloads: Option<PathBuf>,
}

/// One CLI chat's delivery state. Written by `deliver` (delivery thread) and the connection
/// tasks (hello, ack, leaving), always under the `chats` lock.
#[derive(Default)]
struct Chat {
    /// The connection that reads this chat's replies.
    reader: Option<Reader>,
    /// Replies handed to a reader that has not acknowledged them: reply id → connection.
    unacked: HashMap<String, u64>,
    /// Replies a reader acknowledged, until delivery collects them: reply id → when.
    acked: HashMap<String, Instant>,
}

struct Reader {
    conn: u64,
    tx: mpsc::Sender<String>,
}

impl Adapter for CliSocket {
    fn channel_type(&self) -> &str {
        CHANNEL_TYPE
    }

    fn supports_threads(&self) -> bool {
        false
    }

    fn start(self: Arc<Self>, start: Start) -> BoxFuture<'static, anyhow::Result<()>> {
        async move {
            let (listener, socket_file) =
                bind(&self.socket).with_context(|| format!("binding {}", self.socket.display()))?;
            if let Ok(mut stop) = self.stop.lock() {
                *stop = Some(start.stop.clone());
            }
            let tasks = self.tasks.clone();
            tasks.spawn(self.serve(
                listener,
                socket_file,
                start.inbound,
                start.answers,
                start.ready,
                start.stop,
            ));
            Ok(())
        }
        .boxed()
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        async move {
            if let Some(stop) = self.stop.lock().ok().and_then(|mut stop| stop.take()) {
                stop.cancel();
            }
            self.tasks.close();
            self.tasks.wait().await;
        }
        .boxed()
    }

    fn deliver<'a>(
        &'a self,
        message: &'a Outbound,
    ) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
        std::future::ready(self.offer(message)).boxed()
    }
}

impl CliSocket {
    /// Delivers at once, without waiting: hands the reply to the chat's reader, or says why it
    /// stays queued (see the module comment).
    pub fn offer(&self, message: &Outbound) -> Result<Delivered, DeliveryError> {
        let (text, card) = match shown(&message.content) {
            Some(shown) => shown,
            // Edits, reactions and display cards have no terminal form: nothing to show.
            None => return Ok(Delivered::Sent(None)),
        };
        let mut chats = self.chats.lock().map_err(|_| poisoned())?;
        let chat = chats.entry(message.platform_id.clone()).or_default();
        if chat.acked.remove(&message.id).is_some() {
            return Ok(Delivered::Sent(None));
        }
        let Some(reader) = &chat.reader else {
            return Ok(Delivered::NoReader);
        };
        if chat.unacked.get(&message.id) == Some(&reader.conn) {
            return Ok(Delivered::AwaitingAck);
        }
        let files = self.save_files(message)?;
        let line = HostLine::Reply(Reply {
            id: message.id.clone(),
            text,
            agent: message.agent.clone(),
            in_reply_to: message.in_reply_to.clone(),
            card,
            files,
        })
        .to_line();
        match reader.tx.try_send(line) {
            Ok(()) => {
                let conn = reader.conn;
                chat.unacked.insert(message.id.clone(), conn);
                Ok(Delivered::AwaitingAck)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                let conn = reader.conn;
                chat.leave(conn);
                Ok(Delivered::NoReader)
            }
            // A reader that does not keep up: the reply waits (the delivery poll retries it)
            // until it reads again or a newer client takes the chat, instead of failing.
            Err(mpsc::error::TrySendError::Full(_)) => Ok(Delivered::NoReader),
        }
    }
}

impl Chat {
    /// Connection `conn` is gone: it reads no more, and what it did not acknowledge goes to
    /// the next reader.
    fn leave(&mut self, conn: u64) {
        if self
            .reader
            .as_ref()
            .is_some_and(|reader| reader.conn == conn)
        {
            self.reader = None;
        }
        self.unacked.retain(|_, holder| *holder != conn);
    }
}

/// What a reader is shown for outbound content: its text, and for a card (or a card's
/// outcome) the card's id and options; `None` when it has no terminal form.
fn shown(content: &serde_json::Value) -> Option<(String, Option<CardView>)> {
    if let Some(card) = Card::from_content(content) {
        let view = CardView {
            id: card.id.clone(),
            options: card
                .options
                .iter()
                .map(|option| CardChoice {
                    id: option.id.clone(),
                    label: option.label.clone(),
                })
                .collect(),
            decided: false,
            expires_at: content
                .get("expiresAt")
                .and_then(serde_json::Value::as_str)
                .map(str::to_string),
        };
        return Some((card.to_text(), Some(view)));
    }
    if let Some(outcome) = Outcome::from_content(content) {
        let view = CardView {
            id: outcome.card.clone(),
            options: Vec::new(),
            decided: true,
            expires_at: None,
        };
        return Some((outcome.to_text(), Some(view)));
    }
    match content {
        serde_json::Value::String(text) => Some((text.clone(), None)),
        content => match content.get("text").or_else(|| content.get("markdown")) {
            Some(serde_json::Value::String(text)) => Some((text.clone(), None)),
            _ => None,
        },
    }
}

fn poisoned() -> DeliveryError {
    DeliveryError::Transient("cli reader table poisoned by a panic".to_string())
}

/// The socket file one daemon bound, identified by device and inode: removed at shutdown only
/// while it is still that file, so a daemon never deletes a socket it did not create.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the file if it is still the one we bound; returns whether it did.
    pub fn remove_if_ours(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.dev() == self.dev && meta.ino() == self.ino => {
                std::fs::remove_file(&self.path).is_ok()
            }
            _ => false,
        }
    }
}

/// Binds the socket and restricts it to the owner (0600). A socket file already there is a
/// leftover of a daemon that is gone (the caller holds the data dir's daemon lock) and is
/// removed; anything else at the path is refused.
pub fn bind(path: &Path) -> io::Result<(UnixListener, SocketFile)> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_socket() {
            std::fs::remove_file(path)?;
        } else {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket; remove it", path.display()),
            ));
        }
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let meta = std::fs::symlink_metadata(path)?;
    let file = SocketFile {
        path: path.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    Ok((listener, file))
}

impl CliSocket {
    /// The CLI channel that `start` binds at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> CliSocket {
        CliSocket {
            socket: socket.into(),
            chats: Mutex::default(),
            next_conn: AtomicU64::new(0),
            open: Arc::default(),
            max_connections: MAX_CONNECTIONS,
            tasks: TaskTracker::new(),
            stop: Mutex::new(None),
            downloads: None,
        }
    }

    /// Saves the files sent with replies under `dir` (one folder per message).
    pub fn with_downloads(mut self, dir: impl Into<PathBuf>) -> CliSocket {
        self.downloads = Some(dir.into());
        self
    }

    /// Saves `message`'s files as `<downloads>/<message id>/<file name>` (private to the
    /// user; the names were checked when the outbox was read); returns their paths.
    fn save_files(&self, message: &Outbound) -> Result<Vec<String>, DeliveryError> {
        let Some(downloads) = &self.downloads else {
            return Ok(Vec::new());
        };
        if message.files.is_empty() {
            return Ok(Vec::new());
        }
        let failed = |err: io::Error| DeliveryError::Transient(format!("saving a file: {err}"));
        let folder = crate::hostfs::Dir::create_all(downloads, 0o700)
            .and_then(|dir| dir.ensure_dir(&message.id, 0o700, None))
            .map_err(failed)?;
        let mut saved = Vec::new();
        for file in &message.files {
            folder
                .replace(&file.filename, &file.data, 0o600, None)
                .map_err(failed)?;
            saved.push(folder.path().join(&file.filename).display().to_string());
        }
        Ok(saved)
    }

    /// At most `max` client connections at once (default [`MAX_CONNECTIONS`]).
    pub fn with_max_connections(mut self, max: usize) -> CliSocket {
        self.max_connections = max;
        self
    }

    /// Accepts connections until `stop`; every connection is a task of `self.tasks`.
    async fn serve(
        self: Arc<Self>,
        listener: UnixListener,
        socket_file: SocketFile,
        inbound: mpsc::Sender<Envelope>,
        answers: card::Answers,
        ready: Ready,
        stop: CancellationToken,
    ) {
        info!(socket = %socket_file.path().display(), "cli channel listening");
        let mut failures: u32 = 0;
        let mut failed = Throttle::new(accept::LOG_INTERVAL);
        let mut refused = Throttle::new(accept::LOG_INTERVAL);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        if failures > 0 {
                            failures = 0;
                            info!(failures = failed.end(), "cli channel accepting connections again");
                        }
                        let Some(opened) = self.opened() else {
                            self.refuse(stream, &mut refused);
                            continue;
                        };
                        if refused.end() > 0 {
                            info!("cli channel below its connection limit again");
                        }
                        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
                        let socket = Arc::clone(&self);
                        let connection = socket.connection(
                            conn, stream, inbound.clone(), answers.clone(), ready.clone(), stop.child_token(),
                        );
                        self.tasks.spawn(async move {
                            connection.await;
                            drop(opened);
                        });
                    }
                    Err(err) => {
                        // Retrying at once fails again (e.g. out of file descriptors until
                        // some close): wait, longer each time, and log once per interval.
                        failures = failures.saturating_add(1);
                        match failed.event(Instant::now()) {
                            Log::First => warn!(error = %err, "cli channel accept failed; retrying with backoff"),
                            Log::Summary { count } => warn!(
                                failures = count, error = %err,
                                "cli channel: more accept failures since the last report; still retrying"
                            ),
                            Log::Quiet => {}
                        }
                        tokio::select! {
                            () = stop.cancelled() => break,
                            () = tokio::time::sleep(accept::backoff(failures)) => {}
                        }
                    }
                },
            }
        }
        if !socket_file.remove_if_ours() && socket_file.path().exists() {
            warn!(socket = %socket_file.path().display(), "cli socket left in place: it is no longer the one this daemon bound");
        }
        info!("cli channel closed");
    }

    /// Counts one more open connection, unless the limit is reached.
    fn opened(&self) -> Option<Opened> {
        let mut open = self.open.load(Ordering::Relaxed);
        loop {
            if open >= self.max_connections {
                return None;
            }
            match self
                .open
                .compare_exchange(open, open + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Some(Opened(Arc::clone(&self.open))),
                Err(now) => open = now,
            }
        }
    }

    /// Answers a connection over the limit with an error line (best effort) and closes it.
    fn refuse(&self, stream: UnixStream, refused: &mut Throttle) {
        let error = HostLine::error(format!(
            "the cli channel has {} connections open, its limit; try again later",
            self.max_connections
        ));
        let _ = stream.try_write(format!("{}\n", error.to_line()).as_bytes());
        match refused.event(Instant::now()) {
            Log::First => {
                warn!(
                    limit = self.max_connections,
                    "cli connection refused: too many open connections"
                )
            }
            Log::Summary { count } => warn!(
                refused = count,
                limit = self.max_connections,
                "cli channel: more connections refused since the last report"
            ),
            Log::Quiet => {}
        }
    }

    async fn connection(
        self: Arc<Self>,
        conn: u64,
        stream: UnixStream,
        inbound: mpsc::Sender<Envelope>,
        answers: card::Answers,
        ready: Ready,
        stop: CancellationToken,
    ) {
        let mut framed = Framed::new(stream, LineCodec::new());
        let (reply_tx, mut reply_rx) = mpsc::channel::<String>(READER_BUFFER);
        let mut client = Client {
            conn,
            reply_tx,
            reading: None,
        };
        debug!(conn, "cli client connected");
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                Some(line) = reply_rx.recv() => {
                    if framed.send(line).await.is_err() {
                        break;
                    }
                }
                frame = framed.next() => {
                    let answer = match frame {
                        None => break,
                        Some(Ok(Line::Text(line))) => {
                            self.handle_line(&mut client, &line, (&inbound, &answers), &ready).await
                        }
                        Some(Ok(Line::TooLong)) => Some(HostLine::error(format!(
                            "line longer than {MAX_LINE} bytes rejected"
                        ))),
                        Some(Ok(Line::InvalidUtf8)) => Some(HostLine::error(
                            "line is not valid UTF-8; rejected",
                        )),
                        Some(Err(err)) => {
                            debug!(conn, error = %err, "cli client read failed");
                            break;
                        }
                    };
                    let Some(answer) = answer else { continue };
                    if let HostLine::Error { error } = &answer {
                        warn!(conn, %error, "cli line rejected");
                    }
                    if framed.send(answer.to_line()).await.is_err() {
                        break;
                    }
                }
            }
        }
        if let Some(platform_id) = client.reading
            && let Ok(mut chats) = self.chats.lock()
            && let Some(chat) = chats.get_mut(&platform_id)
        {
            chat.leave(conn);
        }
        debug!(conn, "cli client disconnected");
    }

    /// Handles one client line; returns the line to answer with, if any.
    async fn handle_line(
        &self,
        client: &mut Client,
        line: &str,
        (inbound, answers): (&mpsc::Sender<Envelope>, &card::Answers),
        ready: &Ready,
    ) -> Option<HostLine> {
        if line.trim().is_empty() {
            return None;
        }
        let parsed = match ClientLine::parse(line) {
            Ok(parsed) => parsed,
            Err(error) => return Some(HostLine::error(error)),
        };
        match parsed {
            ClientLine::Hello { hello } => {
                if let Some(version) = hello.protocol
                    && !cli_protocol::SUPPORTED.contains(&version)
                {
                    return Some(HostLine::error(format!(
                        "protocol version {version} is not supported; this runtime speaks versions {} to {}\n\n\
                         hint: use the `nanoclaw` binary of the running runtime",
                        cli_protocol::SUPPORTED.start(),
                        cli_protocol::SUPPORTED.end(),
                    )));
                }
                let platform_id = hello
                    .platform_id
                    .unwrap_or_else(|| DEFAULT_PLATFORM_ID.to_string());
                if let Some(previous) = client.reading.take()
                    && previous != platform_id
                    && let Ok(mut chats) = self.chats.lock()
                    && let Some(chat) = chats.get_mut(&previous)
                {
                    chat.leave(client.conn);
                }
                // Taken before the claim: a card made from now on reaches this reader as
                // usual, so only older ones are shown to it again.
                let at_ms = unix_ms();
                self.claim(client.conn, &platform_id, client.reply_tx.clone());
                client.reading = Some(platform_id.clone());
                ready.tell(ReaderArrived {
                    channel_type: CHANNEL_TYPE.to_string(),
                    platform_id: platform_id.clone(),
                    new_reader: true,
                    at_ms,
                });
                Some(HostLine::Welcome {
                    hello: Welcome {
                        platform_id,
                        protocol: cli_protocol::VERSION,
                    },
                })
            }
            ClientLine::Ack { ack } => {
                let Some(platform_id) = &client.reading else {
                    return Some(HostLine::error(
                        "`ack` before `hello`: only the reader of a chat acknowledges its replies",
                    ));
                };
                if self.ack(platform_id, &ack) {
                    // Delivery records it now rather than at its next poll.
                    ready.tell(ReaderArrived {
                        channel_type: CHANNEL_TYPE.to_string(),
                        platform_id: platform_id.clone(),
                        new_reader: false,
                        at_ms: unix_ms(),
                    });
                } else {
                    debug!(conn = client.conn, id = %ack, "acknowledgement of no waiting reply ignored");
                }
                None
            }
            ClientLine::Answer { answer } => Some(self.answer(client, answer, answers).await),
            ClientLine::Message(message) => Some(self.submit(client, message, inbound).await),
        }
    }

    /// Hands a choice on a card to the runtime and answers with its verdict. The responder is
    /// the chat this connection reads (`cli:<platform id>`), so it must have said hello.
    async fn answer(
        &self,
        client: &Client,
        answer: AnswerLine,
        answers: &card::Answers,
    ) -> HostLine {
        let platform_id = answer
            .platform_id
            .clone()
            .or_else(|| client.reading.clone())
            .unwrap_or_else(|| DEFAULT_PLATFORM_ID.to_string());
        let platform_id = &platform_id;
        let (verdict_tx, verdict_rx) = tokio::sync::oneshot::channel();
        let answered = card::Answered {
            answer: card::Answer {
                card: answer.card.clone(),
                option: answer.option,
                responder: format!("{CHANNEL_TYPE}:{platform_id}"),
                channel_type: CHANNEL_TYPE.to_string(),
                platform_id: platform_id.clone(),
            },
            verdict: Some(verdict_tx),
        };
        if answers.send(answered).await.is_err() {
            return HostLine::error("the runtime is shutting down");
        }
        match verdict_rx.await {
            Ok(card::Verdict::Decided(outcome)) => HostLine::Answered {
                answered: answer.card,
                outcome,
            },
            Ok(card::Verdict::Refused(why)) => HostLine::error(why),
            Ok(card::Verdict::Unknown) => HostLine::error(format!(
                "no card `{}` is waiting for an answer: it was decided, it expired, or it never existed",
                answer.card
            )),
            Err(_) => HostLine::error("the runtime is shutting down"),
        }
    }

    /// Hands one message to the router and answers once it is stored (or why not).
    async fn submit(
        &self,
        client: &Client,
        message: cli_protocol::Message,
        inbound: &mpsc::Sender<Envelope>,
    ) -> HostLine {
        let platform_id = message
            .platform_id
            .or_else(|| client.reading.clone())
            .unwrap_or_else(|| DEFAULT_PLATFORM_ID.to_string());
        let id = message
            .id
            .unwrap_or_else(|| agent_runner::session_db::new_id("cli"));
        if !cli_protocol::is_safe_id(&id) {
            return HostLine::error(format!(
                "message id `{id}` may only use letters, digits, `-`, `_` and `.`"
            ));
        }
        let content = Content {
            text: Some(message.text),
            sender: Some("cli".to_string()),
            sender_id: Some(format!("cli:{platform_id}")),
            ..Content::default()
        };
        let event = InboundEvent {
            channel_type: CHANNEL_TYPE.to_string(),
            platform_id: platform_id.clone(),
            thread_id: None,
            message: InboundMessage {
                id: id.clone(),
                kind: Kind::Chat,
                content,
                timestamp: agent_runner::session_db::now_iso(),
                is_mention: message.mention.unwrap_or(false),
                is_group: Some(false),
            },
            reply_to: None,
        };
        let (stored_tx, stored_rx) = tokio::sync::oneshot::channel();
        let envelope = Envelope {
            event,
            stored: Some(stored_tx),
        };
        let shutting_down = || HostLine::error("the runtime is shutting down");
        if inbound.send(envelope).await.is_err() {
            return shutting_down();
        }
        match stored_rx.await {
            Ok(Receipt::Stored { answering }) => HostLine::Accepted {
                accepted: id,
                agents: answering,
            },
            Ok(Receipt::UnknownChat) => HostLine::error(format!(
                "no CLI chat `{platform_id}` is configured, so message `{id}` was not stored\n\n\
                 hint: add a channel with `channel_type: cli` and `platform_id: {platform_id}` \
                 to the manifests, or talk to a configured chat"
            )),
            Ok(Receipt::Failed) => HostLine::error(format!(
                "message `{id}` could not be stored; see the runtime log"
            )),
            Err(_) => shutting_down(),
        }
    }

    /// Makes `conn` the reader of `platform_id`, telling a previous reader it was superseded.
    /// What the previous reader did not acknowledge goes to the new one.
    fn claim(&self, conn: u64, platform_id: &str, tx: mpsc::Sender<String>) {
        let Ok(mut chats) = self.chats.lock() else {
            return;
        };
        let chat = chats.entry(platform_id.to_string()).or_default();
        if let Some(previous) = chat.reader.replace(Reader { conn, tx })
            && previous.conn != conn
        {
            let note = HostLine::Superseded {
                superseded: true,
                text: cli_protocol::SUPERSEDED_TEXT.to_string(),
            };
            let _ = previous.tx.try_send(note.to_line());
            chat.unacked.retain(|_, holder| *holder != previous.conn);
        }
    }

    /// Records that the reader of `platform_id` showed reply `id`; false when no such reply
    /// waits for an acknowledgement.
    fn ack(&self, platform_id: &str, id: &str) -> bool {
        let Ok(mut chats) = self.chats.lock() else {
            return false;
        };
        let Some(chat) = chats.get_mut(platform_id) else {
            return false;
        };
        if chat.unacked.remove(id).is_none() {
            return false;
        }
        let now = Instant::now();
        chat.acked
            .retain(|_, at| now.duration_since(*at) < ACK_KEPT);
        chat.acked.insert(id.to_string(), now);
        true
    }
}

/// One connection's own state (owned by its task).
struct Client {
    conn: u64,
    /// Where `deliver` sends this connection's replies once it reads a chat.
    reply_tx: mpsc::Sender<String>,
    /// The chat this connection reads (after its hello).
    reading: Option<String>,
}

/// Holds one slot of [`MAX_CONNECTIONS`] while its connection is open.
struct Opened(Arc<AtomicUsize>);

impl Drop for Opened {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
#[path = "cli_socket_tests.rs"]
mod tests;

/// Now, in unix milliseconds.
fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}
