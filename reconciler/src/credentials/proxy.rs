//! The credential proxy: an HTTP/1.1 reverse proxy on a Unix socket in the data dir
//! (`<data>/proxy/anthropic.sock`) in front of the Anthropic API.
//!
//! Per request: the presented key (`x-api-key` or `Authorization: Bearer`) must be a live
//! placeholder ([`Placeholders`]); the path must be an API path (`/v1/…`); a stream slot must
//! be free (at most [`ProxySettings::max_streams`] responses in flight, and
//! [`ProxySettings::max_streams_per_container`] per container); the body must fit in
//! [`ProxySettings::max_request_bytes`] and arrive within a minute. Then the placeholder is swapped for the real credential
//! (read from the [`Store`] per request, else the daemon's environment) and the request goes
//! upstream; the response streams back frame by frame (server-sent events are not buffered),
//! scrubbed of the credential. Refusals are answered in the API's own error shape
//! (`{"type":"error","error":{"type":…,"message":…}}`) so Claude Code reports them.
//!
//! It must not: log or echo a secret, accept a request without a live placeholder, or reach any
//! host but the configured upstream.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::UnixListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::headers::{forwarded_headers, presented_key, strip_hop_by_hop};
use super::redact::RedactedBody;
use super::upstream::Upstream;
use super::{Credential, CredentialError, Placeholders, Source, Store};

/// The socket's file name inside [`socket_dir`].
pub const SOCKET_NAME: &str = "anthropic.sock";
/// Where a container sees [`socket_dir`] (mounted read-only; connecting still works).
pub const CONTAINER_SOCKET_DIR: &str = "/run/nanoclaw-proxy";
/// Default bound on a request body: the Messages API's own limit is 32 MB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;
/// Default bound on responses in flight, across all containers of the install.
pub const DEFAULT_MAX_STREAMS: usize = 32;
/// Default bound on one container's responses in flight, so one agent cannot take every slot
/// (Claude Code runs a few at once with subagents).
pub const DEFAULT_MAX_STREAMS_PER_CONTAINER: usize = 8;
/// Most client connections open at once (idle keep-alive ones included).
const MAX_CONNECTIONS: usize = 256;
/// A client must send its request head within this time (slow-header defence).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// A client must send its request body within this time once admitted.
const BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// The folder holding the proxy socket: the one thing of the data dir a container mounts.
pub fn socket_dir(data: &Path) -> PathBuf {
    data.join("proxy")
}

/// What the proxy needs, resolved at startup.
#[derive(Clone, Debug)]
pub struct ProxySettings {
    /// The socket to listen on (normally `socket_dir(data)/anthropic.sock`).
    pub socket: PathBuf,
    pub upstream: Upstream,
    pub store: Store,
    /// The daemon's environment credential (`super::from_env`), used when none is stored.
    pub env_credential: Option<(Credential, Source)>,
    pub max_request_bytes: usize,
    pub max_streams: usize,
    pub max_streams_per_container: usize,
}

impl ProxySettings {
    /// The defaults for the data dir `data`.
    pub fn new(
        data: &Path,
        upstream: Upstream,
        env_credential: Option<(Credential, Source)>,
    ) -> ProxySettings {
        ProxySettings {
            socket: socket_dir(data).join(SOCKET_NAME),
            upstream,
            store: Store::new(data),
            env_credential,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_streams: DEFAULT_MAX_STREAMS,
            max_streams_per_container: DEFAULT_MAX_STREAMS_PER_CONTAINER,
        }
    }
}

/// A bound proxy; [`Proxy::run`] serves it.
pub struct Proxy {
    listener: UnixListener,
    shared: Arc<Shared>,
    /// (device, inode) of the socket we bound, so shutdown removes only our own file.
    bound: (u64, u64),
}

/// What every request handler reads; never written after bind.
struct Shared {
    settings: ProxySettings,
    placeholders: Placeholders,
    /// One permit per response in flight, held by the response body until it ends.
    streams: Arc<Semaphore>,
    /// Responses in flight per container (written by `StreamSlot`, read by `admit`).
    per_container: Arc<Mutex<HashMap<String, usize>>>,
    /// Upstream connection tasks.
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl Proxy {
    /// Binds the socket (its folder 0755, the socket 0666: a container's user, whatever its
    /// uid, must be able to connect; the data dir around it is 0700, so no other host user can).
    /// A socket file already there is a leftover (the caller holds the daemon lock) and is
    /// replaced; anything else is refused. Must be called inside a tokio runtime.
    pub fn bind(settings: ProxySettings, placeholders: Placeholders) -> io::Result<Proxy> {
        use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
        let socket = settings.socket.clone();
        if let Some(dir) = socket.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        }
        if let Ok(meta) = std::fs::symlink_metadata(&socket) {
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket; remove it", socket.display()),
                ));
            }
            std::fs::remove_file(&socket)?;
        }
        let listener = UnixListener::bind(&socket)?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666))?;
        let meta = std::fs::symlink_metadata(&socket)?;
        let streams = Arc::new(Semaphore::new(settings.max_streams));
        Ok(Proxy {
            listener,
            bound: (meta.dev(), meta.ino()),
            shared: Arc::new(Shared {
                settings,
                placeholders,
                streams,
                per_container: Arc::default(),
                tasks: TaskTracker::new(),
                stop: CancellationToken::new(),
            }),
        })
    }

    pub fn socket(&self) -> &Path {
        &self.shared.settings.socket
    }

    /// Serves until `stop` is cancelled; then drops open connections (their containers are
    /// being stopped too) and removes the socket file if it is still ours.
    pub async fn run(self, stop: CancellationToken) {
        let shared = Arc::clone(&self.shared);
        let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        info!(
            socket = %shared.settings.socket.display(),
            upstream = shared.settings.upstream.url(),
            "credential proxy listening"
        );
        loop {
            let permit = tokio::select! {
                () = stop.cancelled() => break,
                permit = Arc::clone(&connections).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let stream = tokio::select! {
                () = stop.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        warn!(error = %err, "credential proxy: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let shared = Arc::clone(&shared);
            let stop = stop.clone();
            self.shared.tasks.spawn(async move {
                let _permit = permit;
                serve_connection(shared, stream, stop).await;
            });
        }
        self.shared.stop.cancel();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
        remove_if_ours(&self.shared.settings.socket, self.bound);
        info!("credential proxy stopped");
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    stream: tokio::net::UnixStream,
    stop: CancellationToken,
) {
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(&shared, request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        res = connection => if let Err(err) = res {
            debug!(error = %err, "credential proxy: client connection ended with an error");
        },
        () = stop.cancelled() => {}
    }
}

type ProxyBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// One request, from the placeholder check to the streamed response. Every refusal is an
/// answer in the API's error shape; nothing here fails the connection.
async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<ProxyBody> {
    let (container, slot, credential) = match admit(shared, &request) {
        Ok(admitted) => admitted,
        Err(refused) => return refused.into_response(),
    };
    let (parts, body) = request.into_parts();
    let body = match read_body(&shared.settings, &parts.headers, body).await {
        Ok(body) => body,
        Err(refused) => return refused.into_response(),
    };
    let settings = &shared.settings;
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut upstream_request = Request::builder()
        .method(parts.method.clone())
        .uri(settings.upstream.target(path_and_query))
        .body(Full::new(body))
        .expect("method and target come from a parsed request");
    *upstream_request.headers_mut() =
        forwarded_headers(&parts.headers, &settings.upstream, &credential);
    let response = match settings
        .upstream
        .send(upstream_request, &shared.tasks, &shared.stop)
        .await
    {
        Ok(response) => response,
        Err(err) => {
            warn!(%container, error = %err, "credential proxy: upstream unreachable");
            return refusal(
                StatusCode::BAD_GATEWAY,
                "api_error",
                &format!("credential proxy: {err}"),
            );
        }
    };
    debug!(%container, path = parts.uri.path(), status = response.status().as_u16(), "proxied");
    let (mut parts, body) = response.into_parts();
    let secret = credential.secret.expose();
    strip_hop_by_hop(&mut parts.headers);
    // Redaction can change the length; the body goes out chunked.
    parts.headers.remove(header::CONTENT_LENGTH);
    let echoed: Vec<HeaderName> = parts
        .headers
        .iter()
        .filter(|(_, value)| contains(value.as_bytes(), secret.as_bytes()))
        .map(|(name, _)| name.clone())
        .collect();
    for name in echoed {
        parts.headers.remove(name);
    }
    let body = RedactedBody::new(body, secret, slot);
    Response::from_parts(parts, UnsyncBoxBody::new(body))
}

/// The checks before anything is read or sent: a live placeholder, an API path, a free stream
/// slot (the install's and the container's), a credential to inject. The slot is held by the
/// response body until it ends.
fn admit(
    shared: &Shared,
    request: &Request<Incoming>,
) -> Result<(String, StreamSlot, Credential), Refusal> {
    let settings = &shared.settings;
    let Some(container) =
        presented_key(request.headers()).and_then(|presented| shared.placeholders.check(presented))
    else {
        debug!(
            path = request.uri().path(),
            "credential proxy: unknown key refused"
        );
        return Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "credential proxy: the key is not a live nanoclaw placeholder (each container gets its own, valid while it runs)",
        ));
    };
    if !request.uri().path().starts_with("/v1/") {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "not_found_error",
            format!(
                "credential proxy: only API paths (`/v1/…`) are forwarded, not `{}`",
                request.uri().path()
            ),
        ));
    }
    let Some(slot) = StreamSlot::take(shared, &container) else {
        warn!(%container, "credential proxy: too many streams");
        let mut refused = Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            format!(
                "credential proxy: too many requests in flight (at most {} per container, {} in all); retry shortly",
                settings.max_streams_per_container, settings.max_streams
            ),
        );
        refused.retry_after = Some("1");
        return Err(refused);
    };
    match settings.store.resolve(settings.env_credential.as_ref()) {
        Ok((credential, _)) => Ok((container, slot, credential)),
        Err(err @ CredentialError::Missing) => Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            err.to_string(),
        )),
        Err(err) => {
            warn!(error = %err, "credential proxy: the credential cannot be read");
            Err(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                format!("credential proxy: {err}"),
            ))
        }
    }
}

/// The whole request body, within the size bound and [`BODY_TIMEOUT`] (a slow upload must not
/// hold a stream slot for ever).
async fn read_body(
    settings: &ProxySettings,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Bytes, Refusal> {
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!(
                "credential proxy: the request body is larger than {} bytes",
                settings.max_request_bytes
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > settings.max_request_bytes as u64) {
        return Err(too_large());
    }
    let reading = Limited::new(body, settings.max_request_bytes).collect();
    match tokio::time::timeout(BODY_TIMEOUT, reading).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(err)) if err.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(err)) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!("credential proxy: the request body could not be read: {err}"),
        )),
        Err(_) => Err(Refusal::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            format!("credential proxy: the request body did not arrive within {BODY_TIMEOUT:?}"),
        )),
    }
}

/// A response in flight: one permit of the install's bound and one of its container's count.
/// Dropped when the response body ends (or the client goes away).
struct StreamSlot {
    _permit: OwnedSemaphorePermit,
    container: String,
    per_container: Arc<Mutex<HashMap<String, usize>>>,
}

impl StreamSlot {
    fn take(shared: &Shared, container: &str) -> Option<StreamSlot> {
        let permit = Arc::clone(&shared.streams).try_acquire_owned().ok()?;
        let mut counts = lock(&shared.per_container);
        let count = counts.entry(container.to_string()).or_insert(0);
        if *count >= shared.settings.max_streams_per_container {
            return None;
        }
        *count += 1;
        Some(StreamSlot {
            _permit: permit,
            container: container.to_string(),
            per_container: Arc::clone(&shared.per_container),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut counts = lock(&self.per_container);
        if let Some(count) = counts.get_mut(&self.container) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.container);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Counters stay consistent even if a holder panicked: each update is one statement.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// A request the proxy answers itself: status, the API's error type and a message.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    kind: &'static str,
    message: String,
    /// `retry-after` seconds, for refusals that pass.
    retry_after: Option<&'static str>,
}

impl Refusal {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    fn into_response(self) -> Response<ProxyBody> {
        let mut response = refusal(self.status, self.kind, &self.message);
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(seconds));
        }
        response
    }
}

/// An answer of the proxy itself, in the API's error shape.
fn refusal(status: StatusCode, kind: &str, message: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({
        "type": "error",
        "error": {"type": kind, "message": message},
    })
    .to_string();
    let body = Full::new(Bytes::from(body)).map_err(|never: Infallible| match never {});
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(UnsyncBoxBody::new(body))
        .expect("a static status and header")
}

fn remove_if_ours(path: &Path, (dev, ino): (u64, u64)) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && meta.dev() == dev
        && meta.ino() == ino
    {
        let _ = std::fs::remove_file(path);
    }
}
