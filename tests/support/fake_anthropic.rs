//! A fake Anthropic Messages API for tests and benchmarks, speaking the real wire protocol
//! (docs/claude-code.md): `POST /v1/messages` answered as server-sent events (`message_start`,
//! `content_block_start`/`delta`/`stop` with `text_delta` and `input_json_delta`,
//! `message_delta` with stop reason and usage, `message_stop`) or, without `stream`, as one
//! JSON message; `POST /v1/messages/count_tokens`; API errors (401, 429 with `retry-after`, 529).
//!
//! It answers from a [`Script`] the test gives: rules matched against the request ("the last
//! user message contains X", "the last message is a tool result"), first match wins, each rule
//! either once or always, then built-in answers for Claude Code's own calls (compaction
//! summaries), then the fallback. It records every exchange ([`Exchange`]) for assertions and
//! fixtures. Listens on 127.0.0.1 only, on a thread of its own, so blocking tests can use it.
//!
//! Self-contained (no `super::` imports): `reconciler/benches/` include it with `#[path]`.

#![allow(dead_code)] // each includer uses a different part

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// What to match in a request. Only `POST /v1/messages` requests are matched.
#[derive(Clone, Debug)]
pub enum When {
    /// Any messages request.
    Any,
    /// The last `user` message's text (its text blocks, or its string content) contains this.
    LastUserContains(String),
    /// The last `user` message carries a `tool_result` block.
    LastIsToolResult,
    /// The last `user` message carries a `tool_result` whose content contains this.
    ToolResultContains(String),
    /// Claude Code asks for a conversation summary (`/compact` or auto-compaction).
    Compaction,
}

/// How to answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// One text block, streamed in two `text_delta`s; stop reason `end_turn`.
    Text(String),
    /// A text block then a `tool_use` block whose input streams as `input_json_delta`s;
    /// stop reason `tool_use`.
    Tool {
        text: String,
        name: String,
        input: Value,
    },
    /// An API error: status, error type, message, optional `retry-after` seconds.
    Error {
        status: u16,
        kind: String,
        message: String,
        retry_after: Option<u32>,
    },
    /// A text reply listing the request headers the fake received, and (streamed) the
    /// `x-api-key` back in an `x-echoed-api-key` header: an upstream that echoes.
    EchoHeaders,
    /// Streams `message_start` and the first text delta, then waits for the gate before the
    /// rest: proves a proxy in between passes events on as they come.
    Gated { text: String, gate: Gate },
}

impl Reply {
    pub fn text(text: &str) -> Reply {
        Reply::Text(text.to_string())
    }

    /// A `Bash` tool call running `command`.
    pub fn bash(command: &str) -> Reply {
        Reply::Tool {
            text: "Running it.".into(),
            name: "Bash".into(),
            input: json!({"command": command, "description": "Run the command"}),
        }
    }

    pub fn error(status: u16, kind: &str, message: &str) -> Reply {
        Reply::Error {
            status,
            kind: kind.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// 401 `authentication_error`, as the API answers a bad key.
    pub fn unauthorized() -> Reply {
        Reply::error(401, "authentication_error", "invalid x-api-key")
    }

    /// 429 `rate_limit_error` with `retry-after`.
    pub fn rate_limited(seconds: u32) -> Reply {
        Reply::Error {
            status: 429,
            kind: "rate_limit_error".into(),
            message: "Number of request tokens has exceeded your per-minute rate limit".into(),
            retry_after: Some(seconds),
        }
    }

    /// 529 `overloaded_error`.
    pub fn overloaded() -> Reply {
        Reply::error(529, "overloaded_error", "Overloaded")
    }
}

/// A gate a [`Reply::Gated`] answer waits at until the test opens it.
#[derive(Clone, Debug)]
pub struct Gate(Arc<tokio::sync::watch::Sender<bool>>);

impl Gate {
    pub fn new() -> Gate {
        Gate(Arc::new(tokio::sync::watch::channel(false).0))
    }

    pub fn open(&self) {
        self.0.send_replace(true);
    }

    async fn wait(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|open| *open).await;
    }
}

#[derive(Clone, Debug)]
struct Rule {
    when: When,
    reply: Reply,
    once: bool,
    used: bool,
}

/// The test's script: rules in order, a fallback, and optionally the only key accepted.
#[derive(Clone, Debug)]
pub struct Script {
    rules: Vec<Rule>,
    fallback: Reply,
    key: Option<String>,
}

impl Default for Script {
    fn default() -> Script {
        Script::new()
    }
}

impl Script {
    /// No rules; the fallback answers `ok`.
    pub fn new() -> Script {
        Script {
            rules: Vec::new(),
            fallback: Reply::text("ok"),
            key: None,
        }
    }

    /// A rule that answers every matching request.
    pub fn always(mut self, when: When, reply: Reply) -> Script {
        self.rules.push(Rule {
            when,
            reply,
            once: false,
            used: false,
        });
        self
    }

    /// A rule that answers the first matching request only.
    pub fn once(mut self, when: When, reply: Reply) -> Script {
        self.rules.push(Rule {
            when,
            reply,
            once: true,
            used: false,
        });
        self
    }

    pub fn fallback(mut self, reply: Reply) -> Script {
        self.fallback = reply;
        self
    }

    /// Answer 401 to any request whose `x-api-key` or bearer token is not `key`.
    pub fn require_key(mut self, key: &str) -> Script {
        self.key = Some(key.to_string());
        self
    }

    /// The reply for a request body (marks a `once` rule used).
    pub fn answer(&mut self, body: &Value) -> Reply {
        for rule in &mut self.rules {
            if (rule.once && rule.used) || !matches(&rule.when, body) {
                continue;
            }
            rule.used = true;
            return rule.reply.clone();
        }
        if matches(&When::Compaction, body) {
            return Reply::text(
                "<analysis>The user greeted the assistant.</analysis>\n<summary>1. The user greeted the assistant and got an answer.</summary>",
            );
        }
        self.fallback.clone()
    }
}

/// Does `when` hold for this messages request body?
pub fn matches(when: &When, body: &Value) -> bool {
    let last_user = last_user_message(body);
    match when {
        When::Any => true,
        When::LastUserContains(needle) => last_user
            .map(|message| user_text(message).contains(needle.as_str()))
            .unwrap_or(false),
        When::LastIsToolResult => {
            last_user.is_some_and(|message| !tool_results(message).is_empty())
        }
        When::ToolResultContains(needle) => last_user.is_some_and(|message| {
            tool_results(message)
                .iter()
                .any(|content| content.contains(needle.as_str()))
        }),
        When::Compaction => last_user.is_some_and(|message| {
            let text = user_text(message);
            text.contains("<summary>") && text.contains("summar")
        }),
    }
}

/// The last message with role `user` (Claude Code also sends `system` turns in `messages`).
pub fn last_user_message(body: &Value) -> Option<&Value> {
    body.get("messages")?
        .as_array()?
        .iter()
        .rev()
        .find(|message| message.get("role").and_then(Value::as_str) == Some("user"))
}

/// A user message's text: its string content, or its text blocks joined.
pub fn user_text(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter(|block| block.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|block| block.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The contents of a user message's `tool_result` blocks, as text.
pub fn tool_results(message: &Value) -> Vec<String> {
    let Some(Value::Array(blocks)) = message.get("content") else {
        return Vec::new();
    };
    blocks
        .iter()
        .filter(|block| block.get("type").and_then(Value::as_str) == Some("tool_result"))
        .map(|block| match block.get("content") {
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        })
        .collect()
}

/// One request the fake received and what it answered.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Exchange {
    pub method: String,
    /// Path and query, e.g. `/v1/messages?beta=true`.
    pub path: String,
    /// Header names lower-cased; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The JSON body (`null` when there was none or it was not JSON).
    pub body: Value,
    pub status: u16,
    /// The response body as sent (server-sent events as text).
    pub response: String,
}

struct Shared {
    script: Mutex<Script>,
    exchanges: Mutex<Vec<Exchange>>,
    /// Answers given so far, numbering message and tool-use ids.
    answers: std::sync::atomic::AtomicUsize,
}

/// A running fake; stops when dropped.
pub struct FakeAnthropic {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeAnthropic {
    /// Starts the fake on 127.0.0.1 with an ephemeral port.
    pub fn start(script: Script) -> FakeAnthropic {
        FakeAnthropic::start_on(0, script)
    }

    /// Starts the fake on 127.0.0.1 at `port` (0: an ephemeral one), e.g. an upstream that was
    /// unreachable comes back where it was.
    pub fn start_on(port: u16, script: Script) -> FakeAnthropic {
        let shared = Arc::new(Shared {
            script: Mutex::new(script),
            exchanges: Mutex::new(Vec::new()),
            answers: std::sync::atomic::AtomicUsize::new(0),
        });
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind loopback");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("bound address");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("fake-anthropic".into())
            .spawn(move || serve(listener, thread_shared, stop_rx))
            .expect("spawn the fake's thread");
        FakeAnthropic {
            addr,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`, for `ANTHROPIC_BASE_URL` or a proxy's upstream.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every exchange so far, in arrival order.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.shared
            .exchanges
            .lock()
            .expect("a test panicked holding the lock")
            .clone()
    }

    /// The `POST /v1/messages` exchanges only.
    pub fn messages_requests(&self) -> Vec<Exchange> {
        self.exchanges()
            .into_iter()
            .filter(|exchange| {
                exchange.method == "POST"
                    && (exchange.path == "/v1/messages"
                        || exchange.path.starts_with("/v1/messages?"))
            })
            .collect()
    }

    /// The exchanges as pretty JSON (a transcript fixture).
    pub fn transcript(&self) -> String {
        serde_json::to_string_pretty(&self.exchanges()).expect("exchanges serialise")
    }
}

impl Drop for FakeAnthropic {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the fake's runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        let tasks = tokio_util::task::TaskTracker::new();
        loop {
            let stream = tokio::select! {
                _ = &mut stop => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
            };
            let shared = Arc::clone(&shared);
            tasks.spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let shared = Arc::clone(&shared);
                    async move { Ok::<_, Infallible>(respond(&shared, request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
        tasks.close();
    });
}

type FakeBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

async fn respond(shared: &Arc<Shared>, request: Request<Incoming>) -> Response<FakeBody> {
    let method = request.method().to_string();
    let path = request
        .uri()
        .path_and_query()
        .map(|pq| pq.to_string())
        .unwrap_or_default();
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in request.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).to_string();
        headers
            .entry(name.as_str().to_string())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert(value);
    }
    let raw = request
        .into_body()
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let mut exchange = Exchange {
        method,
        path: path.clone(),
        headers,
        body,
        status: 200,
        response: String::new(),
    };
    let (status, reply) = decide(shared, &exchange);
    let stream = exchange.body.get("stream").and_then(Value::as_bool) == Some(true);
    let model = exchange
        .body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("claude-fake")
        .to_string();
    // An echoing upstream also sends the presented key back in a response header.
    let echoed_key = matches!(reply, Reply::EchoHeaders)
        .then(|| exchange.headers.get("x-api-key").cloned())
        .flatten();
    let reply = match reply {
        Reply::EchoHeaders => Reply::Text(format!("{:?}", exchange.headers)),
        other => other,
    };
    let n = 1 + shared
        .answers
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let response = match (status, reply) {
        (Some(StatusCode::NOT_FOUND), _) => json_response(
            404,
            &error_body("not_found_error", &format!("Not found: {path}")),
            None,
        ),
        (Some(_), _) => {
            let tokens = (raw.len() / 4).max(1);
            json_response(200, &json!({"input_tokens": tokens}), None)
        }
        (
            None,
            Reply::Error {
                status,
                kind,
                message,
                retry_after,
            },
        ) => json_response(status, &error_body(&kind, &message), retry_after),
        (None, Reply::Gated { text, gate }) if stream => {
            let events = events(&model, &Reply::Text(text), n);
            let (first, rest) = events.split_at(3);
            let first = first.concat();
            let rest = rest.concat();
            exchange.response = format!("{first}{rest}");
            record(shared, exchange);
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
            let gated = async move {
                let _ = tx.send(Ok(Frame::data(Bytes::from(first)))).await;
                gate.wait().await;
                let _ = tx.send(Ok(Frame::data(Bytes::from(rest)))).await;
            };
            // Runs on the connection's own task: the body stream is polled while this runs.
            let body = StreamBody::new(GatedStream {
                rx,
                feeder: Some(Box::pin(gated)),
            });
            return sse_response(http_body_util::combinators::UnsyncBoxBody::new(body));
        }
        (None, reply) if stream => {
            let text = events(&model, &reply, n).concat();
            let mut response = sse_response(full(text.clone()));
            if let Some(key) = echoed_key.and_then(|key| key.parse().ok()) {
                response.headers_mut().insert("x-echoed-api-key", key);
            }
            exchange.response = text;
            record(shared, exchange);
            return response;
        }
        (None, reply) => json_response(200, &message_json(&model, &reply, n), None),
    };
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    exchange.status = parts.status.as_u16();
    exchange.response = String::from_utf8_lossy(&bytes).to_string();
    record(shared, exchange);
    Response::from_parts(parts, full(bytes))
}

/// `(Some(status), _)` answers a non-messages endpoint; `(None, reply)` a messages request.
fn decide(shared: &Arc<Shared>, exchange: &Exchange) -> (Option<StatusCode>, Reply) {
    let mut script = shared
        .script
        .lock()
        .expect("a test panicked holding the lock");
    if let Some(key) = &script.key {
        let presented = exchange
            .headers
            .get("x-api-key")
            .cloned()
            .or_else(|| {
                exchange
                    .headers
                    .get("authorization")
                    .and_then(|value| value.strip_prefix("Bearer "))
                    .map(str::to_string)
            })
            .unwrap_or_default();
        if &presented != key {
            return (None, Reply::unauthorized());
        }
    }
    let path = exchange.path.split('?').next().unwrap_or("");
    match (exchange.method.as_str(), path) {
        ("POST", "/v1/messages") => (None, script.answer(&exchange.body)),
        ("POST", "/v1/messages/count_tokens") => (Some(StatusCode::OK), Reply::text("")),
        _ => (Some(StatusCode::NOT_FOUND), Reply::text("")),
    }
}

fn record(shared: &Arc<Shared>, exchange: Exchange) {
    shared
        .exchanges
        .lock()
        .expect("a test panicked holding the lock")
        .push(exchange);
}

/// The server-sent events of answer number `n` (ids `msg_fakeNN`, `toolu_fakeNN`: unique per
/// answer, as the API's are).
pub fn events(model: &str, reply: &Reply, n: usize) -> Vec<String> {
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut out = vec![event(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": format!("msg_fake{n:02}"), "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 1}}}),
    )];
    let (text, tool) = match reply {
        Reply::Text(text) | Reply::Gated { text, .. } => (text.clone(), None),
        Reply::Tool { text, name, input } => (text.clone(), Some((name.clone(), input.clone()))),
        _ => (String::new(), None),
    };
    out.push(event(
        "content_block_start",
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ));
    let split = text
        .char_indices()
        .nth(text.chars().count() / 2)
        .map_or(text.len(), |(at, _)| at);
    for part in [&text[..split], &text[split..]] {
        out.push(event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": part}}),
        ));
    }
    out.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    let mut stop_reason = "end_turn";
    if let Some((name, input)) = tool {
        stop_reason = "tool_use";
        out.push(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {
                "type": "tool_use", "id": format!("toolu_fake{n:02}"), "name": name, "input": {}}}),
        ));
        let input = input.to_string();
        let split = input.len() / 2;
        let split = (split..input.len())
            .find(|&at| input.is_char_boundary(at))
            .unwrap_or(input.len());
        for part in [&input[..split], &input[split..]] {
            out.push(event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": part}}),
            ));
        }
        out.push(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ));
    }
    out.push(event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
               "usage": {"output_tokens": 9}}),
    ));
    out.push(event("message_stop", json!({"type": "message_stop"})));
    out
}

/// A non-streaming answer: the whole message as one JSON object.
fn message_json(model: &str, reply: &Reply, n: usize) -> Value {
    let mut content = Vec::new();
    let mut stop_reason = "end_turn";
    match reply {
        Reply::Text(text) | Reply::Gated { text, .. } => {
            content.push(json!({"type": "text", "text": text}));
        }
        Reply::Tool { text, name, input } => {
            stop_reason = "tool_use";
            content.push(json!({"type": "text", "text": text}));
            content.push(
                json!({"type": "tool_use", "id": format!("toolu_fake{n:02}"), "name": name, "input": input}),
            );
        }
        _ => {}
    }
    json!({"id": format!("msg_fake{n:02}"), "type": "message", "role": "assistant", "model": model,
           "content": content, "stop_reason": stop_reason, "stop_sequence": null,
           "usage": {"input_tokens": 12, "output_tokens": 9}})
}

fn error_body(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

fn full(bytes: impl Into<Bytes>) -> FakeBody {
    http_body_util::combinators::UnsyncBoxBody::new(http_body_util::Full::new(bytes.into()))
}

fn json_response(status: u16, body: &Value, retry_after: Option<u32>) -> Response<FakeBody> {
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("request-id", "req_fake01");
    if let Some(seconds) = retry_after {
        builder = builder.header("retry-after", seconds.to_string());
    }
    builder
        .body(full(body.to_string()))
        .expect("a valid response")
}

fn sse_response(body: FakeBody) -> Response<FakeBody> {
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .header("request-id", "req_fake01")
        .body(body)
        .expect("a valid response")
}

/// A body stream fed by a future it drives itself (so no extra task is needed).
struct GatedStream {
    rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, Infallible>>,
    feeder: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
}

impl futures_util::Stream for GatedStream {
    type Item = Result<Frame<Bytes>, Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if let Some(feeder) = self.feeder.as_mut()
            && feeder.as_mut().poll(cx).is_ready()
        {
            self.feeder = None;
        }
        self.rx.poll_recv(cx)
    }
}
