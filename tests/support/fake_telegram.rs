//! A fake Telegram Bot API for tests and benchmarks, speaking the real HTTP protocol
//! (https://core.telegram.org/bots/api): `POST /bot<token>/<method>` with JSON,
//! form-urlencoded or multipart parameters, answered `{ok, result}` or
//! `{ok: false, error_code, description, parameters}`.
//!
//! Methods: `getMe` (the recorded answer in tests/fixtures/telegram/responses/getMe.json),
//! `getUpdates` (long poll: `timeout` seconds held open until an update arrives; `offset`
//! confirms and forgets every earlier update, as Telegram does), `sendMessage`,
//! `sendChatAction`, `editMessageText`, `setMessageReaction`, `answerCallbackQuery`,
//! `sendDocument`/`sendPhoto` (multipart uploads), `getFile` and the file download at
//! `/file/bot<token>/<path>`. A wrong token gets 401. Scripted failures ([`Fake::fail_next`])
//! answer the next calls of a method with 429 + `parameters.retry_after`, 403 or 5xx.
//!
//! A test injects what people do ([`Fake::dm`], [`Fake::group`], [`Fake::photo`],
//! [`Fake::click`]) and reads what the bot did ([`Fake::sent`], [`Fake::actions`],
//! [`Fake::deliveries`]). Every call is recorded ([`Call`]) with its time, for ordering
//! assertions and fixtures. Listens on 127.0.0.1 only, on a thread of its own, so blocking tests
//! can use it.
//!
//! Self-contained (no `super::` imports): `reconciler/benches/` include it with `#[path]`.

#![allow(dead_code)] // each includer uses a different part

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};

/// The recorded `getMe` answer: the bot's identity.
pub const GET_ME: &str = include_str!("../fixtures/telegram/responses/getMe.json");
/// The bot's user id in [`GET_ME`].
pub const BOT_ID: i64 = 7000000001;
/// The bot's username in [`GET_ME`].
pub const BOT_USERNAME: &str = "nanoclaw_test_bot";
/// The token tests give the daemon.
pub const TOKEN: &str = "7000000001:AAFakeTokenForTestsOnly_abcdefghijk";

/// One request the bot made, with the answer it got.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    /// Parameters (text fields; a multipart file appears as `{filename, mime, size}` under its
    /// field name and its bytes in `file`).
    pub params: Map<String, Value>,
    pub file: Option<Vec<u8>>,
    pub status: u16,
    pub answer: Value,
    /// When it arrived, since the fake started.
    pub at: Duration,
}

impl Call {
    pub fn chat_id(&self) -> Option<String> {
        self.params.get("chat_id").map(|id| match id {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })
    }

    pub fn text(&self) -> Option<&str> {
        self.params.get("text").and_then(Value::as_str)
    }
}

/// A scripted failure for the next call of a method.
#[derive(Clone, Debug)]
pub enum Failure {
    /// 429 with `parameters.retry_after`.
    RateLimited { retry_after: u64 },
    /// 403: the user blocked the bot.
    Blocked,
    /// 502 with an HTML body, as a proxy in front of Telegram answers.
    BadGateway,
}

/// A person in tests.
#[derive(Clone, Debug)]
pub struct Person {
    pub id: i64,
    pub first_name: String,
    pub username: Option<String>,
}

impl Person {
    pub fn new(id: i64, first_name: &str, username: Option<&str>) -> Person {
        Person {
            id,
            first_name: first_name.into(),
            username: username.map(str::to_string),
        }
    }

    fn json(&self) -> Value {
        let mut user = json!({"id": self.id, "is_bot": false, "first_name": self.first_name});
        if let Some(username) = &self.username {
            user["username"] = json!(username);
        }
        user
    }
}

#[derive(Default)]
struct State {
    /// Updates not yet confirmed by an `offset`, oldest first.
    pending: VecDeque<Value>,
    next_update_id: i64,
    next_message_id: i64,
    /// How many times each update id was handed out by `getUpdates`.
    handed: BTreeMap<i64, usize>,
    /// Every update handed out, for [`Fake::resend`].
    sent_updates: Vec<Value>,
    /// Chats seen, by id (for the `chat` of the bot's own messages).
    chats: HashMap<i64, Value>,
    /// Long polls being held open right now.
    polls_waiting: usize,
    /// Files people sent: file id → (path, bytes).
    files: HashMap<String, (String, Vec<u8>)>,
    /// Scripted failures per method.
    failures: HashMap<String, VecDeque<Failure>>,
    calls: Vec<Call>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes long polls when an update arrives.
    arrived: tokio::sync::Notify,
    started: Instant,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("a test panicked holding the fake's lock")
    }
}

/// A running fake; stops when dropped.
pub struct Fake {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Fake {
    /// Starts the fake on 127.0.0.1 with an ephemeral port.
    pub fn start() -> Fake {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                next_update_id: 500_000_001,
                next_message_id: 1,
                ..State::default()
            }),
            arrived: tokio::sync::Notify::new(),
            started: Instant::now(),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("bound address");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("fake-telegram".into())
            .spawn(move || serve(listener, thread_shared, stop_rx))
            .expect("spawn the fake's thread");
        Fake {
            addr,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`, for `NANOCLAW_TELEGRAM_API_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A private message from `person`; returns the update id.
    pub fn dm(&self, person: &Person, text: &str) -> i64 {
        let chat = json!({"id": person.id, "first_name": person.first_name, "type": "private"});
        self.message(person, chat, json!({"text": text}))
    }

    /// A message in the group `chat_id`; `mention` prefixes `@<bot>` with its entity.
    pub fn group(&self, chat_id: i64, person: &Person, text: &str, mention: bool) -> i64 {
        let chat = json!({"id": chat_id, "title": "Test group", "type": "supergroup"});
        let fields = if mention {
            let handle = format!("@{BOT_USERNAME}");
            let length = handle.encode_utf16().count();
            json!({"text": format!("{handle} {text}"),
                   "entities": [{"type": "mention", "offset": 0, "length": length}]})
        } else {
            json!({"text": text})
        };
        self.message(person, chat, fields)
    }

    /// A photo in a DM, with a caption; the bytes are served by `getFile` and the download.
    pub fn photo(&self, person: &Person, bytes: &[u8], caption: &str) -> i64 {
        let file_id = {
            let mut state = self.shared.state();
            let file_id = format!("photo-{}", state.files.len() + 1);
            let path = format!("photos/file_{}.jpg", state.files.len());
            state.files.insert(file_id.clone(), (path, bytes.to_vec()));
            file_id
        };
        let chat = json!({"id": person.id, "first_name": person.first_name, "type": "private"});
        let fields = json!({
            "caption": caption,
            "photo": [
                {"file_id": format!("{file_id}-thumb"), "file_unique_id": "t", "width": 90, "height": 60, "file_size": 10},
                {"file_id": file_id, "file_unique_id": "p", "width": 800, "height": 533, "file_size": bytes.len()}
            ]
        });
        self.message(person, chat, fields)
    }

    /// A document (any file) in a DM, with a caption; the bytes are served by `getFile` and the
    /// download.
    pub fn document(
        &self,
        person: &Person,
        name: &str,
        mime: &str,
        bytes: &[u8],
        caption: &str,
    ) -> i64 {
        let file_id = {
            let mut state = self.shared.state();
            let file_id = format!("document-{}", state.files.len() + 1);
            let path = format!("documents/file_{}", state.files.len());
            state.files.insert(file_id.clone(), (path, bytes.to_vec()));
            file_id
        };
        let chat = json!({"id": person.id, "first_name": person.first_name, "type": "private"});
        let fields = json!({
            "caption": caption,
            "document": {"file_name": name, "mime_type": mime, "file_id": file_id,
                         "file_unique_id": "d", "file_size": bytes.len()}
        });
        self.message(person, chat, fields)
    }

    /// A press on the button with `data` of the bot's message `message_id` in `chat_id`.
    pub fn click(&self, person: &Person, chat_id: i64, message_id: i64, data: &str) -> i64 {
        let mut state = self.shared.state();
        let card = state
            .calls
            .iter()
            .rev()
            .find(|call| {
                call.answer["result"]["message_id"] == json!(message_id)
                    && call.chat_id() == Some(chat_id.to_string())
            })
            .map(|call| call.answer["result"].clone())
            .unwrap_or_else(|| json!({"message_id": message_id, "date": 0, "chat": {"id": chat_id, "type": "private"}}));
        let update_id = state.next_update_id;
        state.next_update_id += 1;
        state.pending.push_back(json!({
            "update_id": update_id,
            "callback_query": {
                "id": format!("cbq-{update_id}"),
                "from": person.json(),
                "message": card,
                "chat_instance": "1",
                "data": data,
            }
        }));
        drop(state);
        self.shared.arrived.notify_waiters();
        update_id
    }

    fn message(&self, person: &Person, chat: Value, fields: Value) -> i64 {
        let mut state = self.shared.state();
        let update_id = state.next_update_id;
        state.next_update_id += 1;
        let message_id = state.next_message_id;
        state.next_message_id += 1;
        let chat_id = chat["id"].as_i64().expect("chat id");
        state.chats.insert(chat_id, chat.clone());
        let mut message = json!({
            "message_id": message_id,
            "from": person.json(),
            "chat": chat,
            "date": 1_764_470_000 + update_id % 100_000,
        });
        for (key, value) in fields.as_object().expect("fields").clone() {
            message[key] = value;
        }
        state
            .pending
            .push_back(json!({"update_id": update_id, "message": message}));
        drop(state);
        self.shared.arrived.notify_waiters();
        update_id
    }

    /// Queues an update already handed out again, as Telegram does with an update whose
    /// `offset` confirmation never came (a bot that crashed after storing it but before
    /// recording that it did).
    pub fn resend(&self, update_id: i64) {
        let mut state = self.shared.state();
        let update = state
            .sent_updates
            .iter()
            .find(|update| update["update_id"] == json!(update_id))
            .cloned()
            .expect("resend: that update was never handed out");
        state.pending.push_front(update);
        drop(state);
        self.shared.arrived.notify_waiters();
    }

    /// Answers the next call(s) of `method` with `failure`, once per entry.
    pub fn fail_next(&self, method: &str, failure: Failure) {
        self.shared
            .state()
            .failures
            .entry(method.to_string())
            .or_default()
            .push_back(failure);
    }

    /// Every call so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.state().calls.clone()
    }

    /// Successful calls of the sending methods (`sendMessage`, `sendPhoto`, `sendDocument`,
    /// `editMessageText`, `setMessageReaction`), optionally for one chat.
    pub fn sent(&self, chat_id: Option<i64>) -> Vec<Call> {
        let sending = [
            "sendMessage",
            "sendPhoto",
            "sendDocument",
            "editMessageText",
            "setMessageReaction",
        ];
        self.calls()
            .into_iter()
            .filter(|call| call.status == 200 && sending.contains(&call.method.as_str()))
            .filter(|call| chat_id.is_none_or(|chat| call.chat_id() == Some(chat.to_string())))
            .collect()
    }

    /// The texts the bot sent to `chat_id`, in order.
    pub fn texts(&self, chat_id: i64) -> Vec<String> {
        self.sent(Some(chat_id))
            .iter()
            .filter(|call| call.method == "sendMessage")
            .filter_map(|call| call.text().map(str::to_string))
            .collect()
    }

    /// Successful `sendChatAction` calls for `chat_id`.
    pub fn actions(&self, chat_id: i64) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|call| call.method == "sendChatAction" && call.status == 200)
            .filter(|call| call.chat_id() == Some(chat_id.to_string()))
            .collect()
    }

    /// How many times `getUpdates` handed out each update id.
    pub fn deliveries(&self) -> BTreeMap<i64, usize> {
        self.shared.state().handed.clone()
    }

    /// Long polls held open right now (a bot waiting for updates).
    pub fn polls_waiting(&self) -> usize {
        self.shared.state().polls_waiting
    }

    /// Updates not yet confirmed by the bot.
    pub fn unconfirmed(&self) -> usize {
        self.shared.state().pending.len()
    }
}

impl Drop for Fake {
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
        let closing = tokio_util::sync::CancellationToken::new();
        loop {
            let stream = tokio::select! {
                _ = &mut stop => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
            };
            let shared = Arc::clone(&shared);
            let closing = closing.clone();
            tasks.spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let shared = Arc::clone(&shared);
                    async move { Ok::<_, Infallible>(respond(&shared, request).await) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    _ = connection => {}
                    () = closing.cancelled() => {}
                }
            });
        }
        closing.cancel();
        tasks.close();
        tasks.wait().await;
    });
}

fn json_response(status: u16, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::from_u16(status).expect("status"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

async fn respond(shared: &Arc<Shared>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return json_response(400, &json!({"ok": false, "error_code": 400})),
    };
    if let Some(rest) = path.strip_prefix(&format!("/file/bot{TOKEN}/")) {
        let file = shared
            .state()
            .files
            .values()
            .find(|(file_path, _)| file_path == rest)
            .map(|(_, bytes)| bytes.clone());
        return match file {
            Some(bytes) => Response::new(Full::new(Bytes::from(bytes))),
            None => json_response(
                404,
                &json!({"ok": false, "error_code": 404, "description": "Not Found"}),
            ),
        };
    }
    let Some(method) = path.strip_prefix(&format!("/bot{TOKEN}/")) else {
        return json_response(
            401,
            &json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
        );
    };
    let method = method.to_string();
    let (params, file) = parse_params(&content_type, &body);
    let (status, answer) = answer(shared, &method, &params, file.as_deref()).await;
    shared.state().calls.push(Call {
        method,
        params,
        file,
        status,
        answer: answer.clone(),
        at: shared.started.elapsed(),
    });
    json_response(status, &answer)
}

async fn answer(
    shared: &Arc<Shared>,
    method: &str,
    params: &Map<String, Value>,
    file: Option<&[u8]>,
) -> (u16, Value) {
    if let Some(failure) = shared
        .state()
        .failures
        .get_mut(method)
        .and_then(VecDeque::pop_front)
    {
        return match failure {
            Failure::RateLimited { retry_after } => (
                429,
                json!({"ok": false, "error_code": 429,
                       "description": format!("Too Many Requests: retry after {retry_after}"),
                       "parameters": {"retry_after": retry_after}}),
            ),
            Failure::Blocked => (
                403,
                json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
            ),
            Failure::BadGateway => (
                502,
                json!({"ok": false, "error_code": 502, "description": "Bad Gateway"}),
            ),
        };
    }
    let ok = |result: Value| (200, json!({"ok": true, "result": result}));
    match method {
        "getMe" => {
            let me: Value = serde_json::from_str(GET_ME).expect("getMe fixture");
            (200, me)
        }
        "getUpdates" => ok(get_updates(shared, params).await),
        "sendMessage" | "sendPhoto" | "sendDocument" => {
            let Some(chat_id) = int_param(params, "chat_id") else {
                return bad_request("chat_id is empty");
            };
            let mut state = shared.state();
            let message_id = state.next_message_id;
            state.next_message_id += 1;
            let chat = state
                .chats
                .get(&chat_id)
                .cloned()
                .unwrap_or_else(|| json!({"id": chat_id, "type": "private"}));
            let mut message = json!({
                "message_id": message_id,
                "from": {"id": BOT_ID, "is_bot": true, "first_name": "NanoClaw Test", "username": BOT_USERNAME},
                "chat": chat,
                "date": 1_764_470_000,
            });
            for key in [
                "text",
                "entities",
                "reply_markup",
                "caption",
                "message_thread_id",
            ] {
                if let Some(value) = params.get(key) {
                    message[key] = value.clone();
                }
            }
            if method == "sendMessage"
                && params
                    .get("text")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
            {
                return bad_request("message text is empty");
            }
            if let Some(text) = params.get("text").and_then(Value::as_str)
                && text.encode_utf16().count() > 4096
            {
                return bad_request("message is too long");
            }
            if file.is_some() {
                let file_id = format!("sent-{message_id}");
                if method == "sendPhoto" {
                    message["photo"] = json!([{"file_id": file_id, "file_unique_id": "s",
                                               "width": 800, "height": 600}]);
                } else {
                    message["document"] = json!({"file_id": file_id, "file_unique_id": "s"});
                }
            }
            ok(message)
        }
        "editMessageText" => {
            let message_id = int_param(params, "message_id").unwrap_or_default();
            ok(json!({"message_id": message_id, "date": 1_764_470_000,
                      "chat": {"id": int_param(params, "chat_id").unwrap_or_default(), "type": "private"},
                      "text": params.get("text").cloned().unwrap_or(Value::Null)}))
        }
        "sendChatAction" | "setMessageReaction" | "answerCallbackQuery" => ok(json!(true)),
        "getFile" => {
            let file_id = params
                .get("file_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match shared.state().files.get(file_id) {
                Some((path, bytes)) => ok(json!({"file_id": file_id, "file_unique_id": "u",
                                                 "file_size": bytes.len(), "file_path": path})),
                None => bad_request("wrong file_id or the file is temporarily unavailable"),
            }
        }
        _ => (
            404,
            json!({"ok": false, "error_code": 404, "description": "Not Found"}),
        ),
    }
}

fn bad_request(why: &str) -> (u16, Value) {
    (
        400,
        json!({"ok": false, "error_code": 400, "description": format!("Bad Request: {why}")}),
    )
}

/// `getUpdates`: confirm everything before `offset`, then answer what is pending, waiting up
/// to `timeout` seconds for something to arrive.
async fn get_updates(shared: &Arc<Shared>, params: &Map<String, Value>) -> Value {
    let offset = int_param(params, "offset");
    let limit = int_param(params, "limit").unwrap_or(100).clamp(1, 100) as usize;
    let timeout = Duration::from_secs(int_param(params, "timeout").unwrap_or(0).max(0) as u64);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let arrived = shared.arrived.notified();
        {
            let mut state = shared.state();
            if let Some(offset) = offset {
                while state
                    .pending
                    .front()
                    .is_some_and(|update| update["update_id"].as_i64().unwrap_or(0) < offset)
                {
                    state.pending.pop_front();
                }
            }
            let batch: Vec<Value> = state.pending.iter().take(limit).cloned().collect();
            if !batch.is_empty() || tokio::time::Instant::now() >= deadline {
                for update in &batch {
                    let id = update["update_id"].as_i64().unwrap_or(0);
                    *state.handed.entry(id).or_default() += 1;
                    state.sent_updates.push(update.clone());
                }
                return Value::Array(batch);
            }
        }
        shared.state().polls_waiting += 1;
        let _ = tokio::time::timeout_at(deadline, arrived).await;
        shared.state().polls_waiting -= 1;
    }
}

fn int_param(params: &Map<String, Value>, key: &str) -> Option<i64> {
    match params.get(key)? {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

/// Reads JSON, form-urlencoded or multipart parameters (the three forms the Bot API takes).
fn parse_params(content_type: &str, body: &[u8]) -> (Map<String, Value>, Option<Vec<u8>>) {
    if content_type.starts_with("application/json") {
        return match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => (map, None),
            _ => (Map::new(), None),
        };
    }
    if let Some(boundary) = content_type
        .split(';')
        .find_map(|part| part.trim().strip_prefix("boundary="))
    {
        return parse_multipart(boundary.trim_matches('"'), body);
    }
    let mut map = Map::new();
    for pair in String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        map.insert(key.to_string(), Value::String(value.replace('+', " ")));
    }
    (map, None)
}

fn parse_multipart(boundary: &str, body: &[u8]) -> (Map<String, Value>, Option<Vec<u8>>) {
    let delimiter = format!("--{boundary}").into_bytes();
    let mut map = Map::new();
    let mut file = None;
    let mut parts = Vec::new();
    let mut at = 0;
    while let Some(found) = find(&body[at..], &delimiter) {
        parts.push(at + found);
        at += found + delimiter.len();
    }
    for pair in parts.windows(2) {
        let part = &body[pair[0] + delimiter.len()..pair[1]];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        let Some(split) = find(part, b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&part[..split]).to_string();
        let content = &part[split + 4..];
        let attribute = |name: &str| {
            head.split(';')
                .find_map(|piece| piece.trim().strip_prefix(&format!("{name}=\"")))
                .and_then(|value| value.split('"').next())
                .map(str::to_string)
        };
        let Some(name) = attribute("name") else {
            continue;
        };
        match attribute("filename") {
            Some(filename) => {
                let mime = head
                    .lines()
                    .find_map(|line| line.strip_prefix("Content-Type: "))
                    .unwrap_or("application/octet-stream");
                map.insert(
                    name,
                    json!({"filename": filename, "mime": mime, "size": content.len()}),
                );
                file = Some(content.to_vec());
            }
            None => {
                let text = String::from_utf8_lossy(content).to_string();
                let value = serde_json::from_str::<Value>(&text)
                    .ok()
                    .filter(|value| value.is_object() || value.is_array())
                    .unwrap_or(Value::String(text));
                map.insert(name, value);
            }
        }
    }
    (map, file)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
