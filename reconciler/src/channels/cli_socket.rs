//! The CLI channel: a Unix socket (`<data>/cli.sock`, mode 0600) that `nanoclaw chat` talks to
//! (host.md §9.3, adapted).
//!
//! Protocol: one JSON object per line, both ways, at most [`MAX_LINE`] bytes.
//! - client → host `{"hello": {"platform_id": "local"}}`: this connection now reads replies for
//!   that chat (the chat slot; a previous reader of the same chat is told it was superseded).
//! - client → host `{"text": "…", "id": "cli-…"?, "platform_id": "local"?}`: one message. The id
//!   is generated when absent; it is echoed in `{"accepted": "<id>"}` once the router has stored
//!   it in every session it was routed to (so an accepted message survives a host crash).
//! - host → client `{"text": "…", "in_reply_to": "<id>:<agent>"?}`: a delivered reply.
//! - host → client `{"error": "…"}`: that line was rejected (malformed, oversized, empty text);
//!   the connection stays open and nothing else is affected.
//!
//! Replies for a chat with no connected reader stay queued ([`Delivered::NoReader`]); when a
//! reader says hello, delivery is nudged through the `readers` channel and drains them.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_util::codec::{Decoder, Encoder, Framed, LinesCodec, LinesCodecError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::{Adapter, Delivered, DeliveryError, Envelope, InboundEvent, InboundMessage, Outbound};

/// Channel type of the CLI channel in manifests (`channel_type: cli`).
pub const CHANNEL_TYPE: &str = "cli";
/// Platform id used when a client names none.
pub const DEFAULT_PLATFORM_ID: &str = "local";
/// Longest accepted line in bytes; longer lines are rejected with an error reply.
pub const MAX_LINE: usize = 64 * 1024;
/// Replies buffered per connected reader; beyond that they stay queued in the session.
const READER_BUFFER: usize = 256;

/// A chat that just gained a reader: delivery should retry its queued replies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReaderArrived {
    pub channel_type: String,
    pub platform_id: String,
}

/// The adapter half: who is connected, and delivery to them.
#[derive(Default)]
pub struct CliSocket {
    readers: Mutex<HashMap<String, Reader>>,
    next_conn: AtomicU64,
}

struct Reader {
    conn: u64,
    tx: mpsc::Sender<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientLine {
    hello: Option<Hello>,
    text: Option<serde_json::Value>,
    id: Option<String>,
    platform_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Hello {
    platform_id: Option<String>,
}

impl Adapter for CliSocket {
    fn channel_type(&self) -> &str {
        CHANNEL_TYPE
    }

    fn supports_threads(&self) -> bool {
        false
    }

    fn deliver(&self, message: &Outbound) -> Result<Delivered, DeliveryError> {
        let text = match &message.content {
            serde_json::Value::String(text) => text.clone(),
            content => match content.get("text").or_else(|| content.get("markdown")) {
                Some(serde_json::Value::String(text)) => text.clone(),
                // Edits, reactions and cards have no terminal form: nothing to show.
                _ => return Ok(Delivered::Sent(None)),
            },
        };
        let line =
            serde_json::json!({ "text": text, "in_reply_to": message.in_reply_to }).to_string();
        let mut readers = self.readers.lock().map_err(|_| poisoned())?;
        let Some(reader) = readers.get(&message.platform_id) else {
            return Ok(Delivered::NoReader);
        };
        match reader.tx.try_send(line) {
            Ok(()) => Ok(Delivered::Sent(None)),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                readers.remove(&message.platform_id);
                Ok(Delivered::NoReader)
            }
            // A reader that does not keep up: the reply waits (the delivery poll retries it)
            // until it reads again or a newer client takes the chat, instead of failing.
            Err(mpsc::error::TrySendError::Full(_)) => Ok(Delivered::NoReader),
        }
    }
}

fn poisoned() -> DeliveryError {
    DeliveryError::Failed("cli reader table poisoned by a panic".to_string())
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
    pub fn new() -> CliSocket {
        CliSocket::default()
    }

    /// Accepts connections until `stop`; every connection is a tracked task.
    pub async fn serve(
        self: Arc<Self>,
        listener: UnixListener,
        socket_file: SocketFile,
        inbound: mpsc::Sender<Envelope>,
        readers: mpsc::Sender<ReaderArrived>,
        tasks: TaskTracker,
        stop: CancellationToken,
    ) {
        info!(socket = %socket_file.path().display(), "cli channel listening");
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
                        let socket = Arc::clone(&self);
                        let connection = socket.connection(
                            conn, stream, inbound.clone(), readers.clone(), stop.child_token(),
                        );
                        tasks.spawn(connection);
                    }
                    Err(err) => warn!(error = %err, "cli channel accept failed"),
                },
            }
        }
        if !socket_file.remove_if_ours() && socket_file.path().exists() {
            warn!(socket = %socket_file.path().display(), "cli socket left in place: it is no longer the one this daemon bound");
        }
        info!("cli channel closed");
    }

    async fn connection(
        self: Arc<Self>,
        conn: u64,
        stream: UnixStream,
        inbound: mpsc::Sender<Envelope>,
        readers: mpsc::Sender<ReaderArrived>,
        stop: CancellationToken,
    ) {
        let mut framed = Framed::new(stream, BoundedLines::new());
        let (reply_tx, mut reply_rx) = mpsc::channel::<String>(READER_BUFFER);
        let mut reading_for: Option<String> = None;
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
                    let line = match frame {
                        None => break,
                        Some(Ok(Line::Text(line))) => line,
                        Some(Ok(Line::TooLong)) => {
                            warn!(conn, limit = MAX_LINE, "cli line too long, rejected");
                            let error = format!("line longer than {MAX_LINE} bytes rejected");
                            if send_error(&mut framed, &error).await.is_err() { break; }
                            continue;
                        }
                        Some(Err(err)) => {
                            debug!(conn, error = %err, "cli client read failed");
                            break;
                        }
                    };
                    let outcome = self.handle_line(conn, &line, &reply_tx, &inbound, &readers, &mut reading_for).await;
                    let reply = match outcome {
                        Ok(Some(accepted)) => serde_json::json!({ "accepted": accepted }).to_string(),
                        Ok(None) => continue,
                        Err(error) => {
                            warn!(conn, %error, "cli line rejected");
                            serde_json::json!({ "error": error }).to_string()
                        }
                    };
                    if framed.send(reply).await.is_err() { break; }
                }
            }
        }
        if let Some(platform_id) = reading_for
            && let Ok(mut table) = self.readers.lock()
            && table
                .get(&platform_id)
                .is_some_and(|reader| reader.conn == conn)
        {
            table.remove(&platform_id);
        }
        debug!(conn, "cli client disconnected");
    }

    /// Handles one client line: `Ok(Some(id))` = message accepted, `Ok(None)` = hello,
    /// `Err(reason)` = rejected (reported to the client).
    async fn handle_line(
        &self,
        conn: u64,
        line: &str,
        reply_tx: &mpsc::Sender<String>,
        inbound: &mpsc::Sender<Envelope>,
        readers: &mpsc::Sender<ReaderArrived>,
        reading_for: &mut Option<String>,
    ) -> Result<Option<String>, String> {
        if line.trim().is_empty() {
            return Ok(None);
        }
        let parsed: ClientLine =
            serde_json::from_str(line).map_err(|err| format!("malformed line: {err}"))?;
        if let Some(hello) = parsed.hello {
            let platform_id = hello
                .platform_id
                .unwrap_or_else(|| DEFAULT_PLATFORM_ID.to_string());
            self.claim(conn, &platform_id, reply_tx.clone());
            *reading_for = Some(platform_id.clone());
            let arrived = ReaderArrived {
                channel_type: CHANNEL_TYPE.to_string(),
                platform_id,
            };
            let _ = readers.send(arrived).await;
            return Ok(None);
        }
        let text = match parsed.text {
            Some(serde_json::Value::String(text)) if !text.trim().is_empty() => text,
            Some(serde_json::Value::String(_)) => return Err("`text` is empty".to_string()),
            Some(_) => return Err("`text` must be a string".to_string()),
            None => return Err("expected `text` or `hello`".to_string()),
        };
        let platform_id = parsed
            .platform_id
            .or_else(|| reading_for.clone())
            .unwrap_or_else(|| DEFAULT_PLATFORM_ID.to_string());
        let id = parsed
            .id
            .unwrap_or_else(|| crate::runtime::ids::generate("cli"));
        if !is_safe_id(&id) {
            return Err(format!(
                "message id `{id}` may only use letters, digits, `-`, `_` and `.`"
            ));
        }
        let content = serde_json::json!({
            "text": text,
            "sender": "cli",
            "senderId": format!("cli:{platform_id}"),
        });
        let event = InboundEvent {
            channel_type: CHANNEL_TYPE.to_string(),
            platform_id,
            thread_id: None,
            message: InboundMessage {
                id: id.clone(),
                kind: "chat".to_string(),
                content: content.to_string(),
                timestamp: crate::runtime::ids::now_iso(),
                is_mention: false,
                is_group: Some(false),
            },
            reply_to: None,
        };
        let (stored_tx, stored_rx) = tokio::sync::oneshot::channel();
        let envelope = Envelope {
            event,
            stored: Some(stored_tx),
        };
        inbound
            .send(envelope)
            .await
            .map_err(|_| "the runtime is shutting down".to_string())?;
        match stored_rx.await {
            Ok(true) => Ok(Some(id)),
            Ok(false) => Err(format!(
                "message `{id}` could not be stored; see the runtime log"
            )),
            Err(_) => Err("the runtime is shutting down".to_string()),
        }
    }

    /// Makes `conn` the reader of `platform_id`, telling a previous reader it was superseded.
    fn claim(&self, conn: u64, platform_id: &str, tx: mpsc::Sender<String>) {
        let Ok(mut table) = self.readers.lock() else {
            return;
        };
        if let Some(previous) = table.insert(platform_id.to_string(), Reader { conn, tx })
            && previous.conn != conn
        {
            let note = serde_json::json!({
                "text": "[superseded by a newer client]",
                "superseded": true,
            });
            let _ = previous.tx.try_send(note.to_string());
        }
    }
}

async fn send_error(
    framed: &mut Framed<UnixStream, BoundedLines>,
    error: &str,
) -> Result<(), LinesCodecError> {
    framed
        .send(serde_json::json!({ "error": error }).to_string())
        .await
}

/// One decoded client line, or the note that a line was too long (and is being skipped).
enum Line {
    Text(String),
    TooLong,
}

/// `LinesCodec` with a length limit that reports an overlong line as an item instead of an
/// error: a framed stream ends after its first error, and one bad line must not end the
/// connection. `LinesCodec` itself skips the rest of the overlong line.
struct BoundedLines {
    inner: LinesCodec,
}

impl BoundedLines {
    fn new() -> BoundedLines {
        BoundedLines {
            inner: LinesCodec::new_with_max_length(MAX_LINE),
        }
    }
}

impl Decoder for BoundedLines {
    type Item = Line;
    type Error = LinesCodecError;

    fn decode(&mut self, buf: &mut bytes::BytesMut) -> Result<Option<Line>, LinesCodecError> {
        match self.inner.decode(buf) {
            Ok(line) => Ok(line.map(Line::Text)),
            Err(LinesCodecError::MaxLineLengthExceeded) => Ok(Some(Line::TooLong)),
            Err(err) => Err(err),
        }
    }

    fn decode_eof(&mut self, buf: &mut bytes::BytesMut) -> Result<Option<Line>, LinesCodecError> {
        match self.inner.decode_eof(buf) {
            Ok(line) => Ok(line.map(Line::Text)),
            Err(LinesCodecError::MaxLineLengthExceeded) => Ok(Some(Line::TooLong)),
            Err(err) => Err(err),
        }
    }
}

impl Encoder<String> for BoundedLines {
    type Error = LinesCodecError;

    fn encode(&mut self, line: String, buf: &mut bytes::BytesMut) -> Result<(), LinesCodecError> {
        self.inner.encode(line, buf)
    }
}

/// Ids become part of inbound row ids and file names (`inbox/<id>/`), so keep them plain.
fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && id != "."
        && id != ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_without_reader_stays_queued() {
        let socket = CliSocket::new();
        let outbound = Outbound {
            platform_id: "local".into(),
            thread_id: None,
            kind: "chat".into(),
            content: serde_json::json!({"text": "hi"}),
            in_reply_to: None,
        };
        assert_eq!(socket.deliver(&outbound).unwrap(), Delivered::NoReader);
        let (tx, mut rx) = mpsc::channel(4);
        socket.claim(1, "local", tx);
        assert_eq!(socket.deliver(&outbound).unwrap(), Delivered::Sent(None));
        let line = rx.try_recv().unwrap();
        assert_eq!(line, r#"{"text":"hi","in_reply_to":null}"#);
    }

    #[test]
    fn a_reader_that_does_not_keep_up_leaves_replies_queued_not_failed() {
        // A terminal that stops reading must not make delivery give up on its replies (3
        // failed attempts mark them failed for good): they wait until it reads or is replaced.
        let socket = CliSocket::new();
        let outbound = Outbound {
            platform_id: "local".into(),
            thread_id: None,
            kind: "chat".into(),
            content: serde_json::json!({"text": "hi"}),
            in_reply_to: None,
        };
        let (tx, mut rx) = mpsc::channel(1);
        socket.claim(1, "local", tx);
        assert_eq!(socket.deliver(&outbound).unwrap(), Delivered::Sent(None));
        assert_eq!(socket.deliver(&outbound).unwrap(), Delivered::NoReader);
        rx.try_recv().unwrap();
        assert_eq!(socket.deliver(&outbound).unwrap(), Delivered::Sent(None));
    }

    #[test]
    fn a_newer_reader_supersedes_the_old_one() {
        let socket = CliSocket::new();
        let (old_tx, mut old_rx) = mpsc::channel(4);
        let (new_tx, _new_rx) = mpsc::channel(4);
        socket.claim(1, "local", old_tx);
        socket.claim(2, "local", new_tx);
        let note: serde_json::Value = serde_json::from_str(&old_rx.try_recv().unwrap()).unwrap();
        assert_eq!(note["superseded"], true);
        assert!(note["text"].as_str().unwrap().contains("superseded"));
    }

    #[test]
    fn an_overlong_line_is_reported_and_the_next_line_still_decodes() {
        let mut codec = BoundedLines::new();
        let mut buf = bytes::BytesMut::new();
        buf.extend_from_slice(&vec![b'x'; MAX_LINE + 10]);
        buf.extend_from_slice(b"\n{\"text\":\"ok\"}\n");
        assert!(matches!(
            codec.decode(&mut buf).unwrap(),
            Some(Line::TooLong)
        ));
        let mut next = codec.decode(&mut buf).unwrap();
        while matches!(next, Some(Line::TooLong)) {
            next = codec.decode(&mut buf).unwrap();
        }
        assert!(matches!(next, Some(Line::Text(text)) if text == r#"{"text":"ok"}"#));
    }

    #[tokio::test]
    async fn issue_7_a_socket_replaced_by_another_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cli.sock");
        let (_first, first_file) = bind(&path).unwrap();
        // Another process binds its own socket in the same place.
        let (_second, second_file) = bind(&path).unwrap();
        assert!(!first_file.remove_if_ours(), "not ours any more");
        assert!(path.exists(), "the other socket is left alone");
        assert!(second_file.remove_if_ours());
        assert!(!path.exists());
    }

    #[test]
    fn ids_are_restricted() {
        assert!(is_safe_id("cli-123-abc"));
        assert!(!is_safe_id("../x"));
        assert!(!is_safe_id(""));
        assert!(!is_safe_id("a/b"));
    }
}
