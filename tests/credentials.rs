//! The credential proxy end to end: a real Unix socket → `credentials::Proxy` → the fake
//! Anthropic API on loopback; and `nanoclaw auth` through the real binary.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use reconciler::credentials::{Credential, Kind, Secret, Store, Upstream};

use crate::support::fake_anthropic::{Gate, Reply, Script, When};
use crate::support::proxy::{Harness, REAL_KEY};
use crate::support::{self, Env};

/// An HTTP/1.1 request as Claude Code sends it, on a fresh connection that closes after it.
fn request_text(key: &str, body: &str) -> String {
    format!(
        "POST /v1/messages?beta=true HTTP/1.1\r\nhost: 127.0.0.1\r\nx-api-key: {key}\r\nanthropic-version: 2023-06-01\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn messages_body(text: &str) -> String {
    serde_json::json!({
        "model": "claude-fake", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
    })
    .to_string()
}

/// Sends one request and reads the whole answer: (status, raw response text).
fn post(socket: &Path, key: &str, body: &str) -> (u16, String) {
    let mut stream = UnixStream::connect(socket).expect("proxy test step");
    stream
        .write_all(request_text(key, body).as_bytes())
        .expect("proxy test step");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("proxy test step");
    (status_of(&answer), answer)
}

fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[test]
fn events_stream_through_the_proxy_one_by_one() {
    let gate = Gate::new();
    let harness = Harness::start(
        Script::new().always(
            When::Any,
            Reply::Gated {
                text: "streamed through".into(),
                gate: gate.clone(),
            },
        ),
        true,
        |_| {},
    );
    let key = harness.key("nanoclaw-test-1");
    let mut stream = UnixStream::connect(&harness.socket).expect("proxy test step");
    stream
        .write_all(request_text(&key, &messages_body("hello")).as_bytes())
        .expect("proxy test step");
    // The fake holds `message_stop` back until the gate opens: seeing `message_start` now
    // means the proxy passed it on without waiting for the end of the response.
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("proxy test step");
    while !String::from_utf8_lossy(&seen).contains("event: message_start") {
        let n = stream
            .read(&mut buffer)
            .expect("the first event arrives before the last is sent");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buffer[..n]);
    }
    let early = String::from_utf8_lossy(&seen).to_string();
    assert!(early.starts_with("HTTP/1.1 200"), "{early}");
    assert!(early.contains("text/event-stream"), "{early}");
    assert!(!early.contains("message_stop"), "{early}");
    gate.open();
    let mut rest = String::new();
    stream.read_to_string(&mut rest).expect("proxy test step");
    let whole = format!("{early}{rest}");
    assert!(whole.contains("event: message_stop"), "{whole}");
    assert!(whole.contains("\"stop_reason\":\"end_turn\""), "{whole}");
    // The fake saw the real key, not the placeholder.
    let received = &harness.fake.messages_requests()[0];
    assert_eq!(received.headers["x-api-key"], REAL_KEY);
}

#[test]
fn a_wrong_or_revoked_placeholder_is_refused_with_a_clear_body() {
    let harness = Harness::start(Script::new(), true, |_| {});
    let (status, answer) = post(
        &harness.socket,
        "sk-ant-api03-guessed",
        &messages_body("hi"),
    );
    assert_eq!(status, 401, "{answer}");
    assert!(
        answer.contains("\"type\":\"authentication_error\""),
        "{answer}"
    );
    assert!(
        answer.contains("not a live nanoclaw placeholder"),
        "{answer}"
    );

    let key = harness.key("nanoclaw-test-2");
    let (status, answer) = post(&harness.socket, &key, &messages_body("hi"));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(harness.placeholders.revoke("nanoclaw-test-2"), 1);
    let (status, answer) = post(&harness.socket, &key, &messages_body("hi"));
    assert_eq!(
        status, 401,
        "a stopped container's key still works: {answer}"
    );
    assert_eq!(
        harness.fake.messages_requests().len(),
        1,
        "refused requests reached the upstream"
    );
}

#[test]
fn an_oversized_request_is_refused_before_it_goes_upstream() {
    let harness = Harness::start(Script::new(), true, |settings| {
        settings.max_request_bytes = 4096;
    });
    let key = harness.key("nanoclaw-test-3");
    let (status, answer) = post(&harness.socket, &key, &messages_body(&"x".repeat(5000)));
    assert_eq!(status, 413, "{answer}");
    assert!(
        answer.contains("\"type\":\"request_too_large\""),
        "{answer}"
    );
    assert!(harness.fake.exchanges().is_empty());
    let (status, _) = post(&harness.socket, &key, &messages_body("small"));
    assert_eq!(status, 200);
}

#[test]
fn streams_beyond_the_bound_wait_for_a_retry() {
    let gate = Gate::new();
    let harness = Harness::start(
        Script::new()
            .once(
                When::LastUserContains("hold".into()),
                Reply::Gated {
                    text: "held".into(),
                    gate: gate.clone(),
                },
            )
            .fallback(Reply::text("free")),
        true,
        |settings| settings.max_streams = 1,
    );
    let key = harness.key("nanoclaw-test-4");
    let mut held = UnixStream::connect(&harness.socket).expect("proxy test step");
    held.write_all(request_text(&key, &messages_body("hold")).as_bytes())
        .expect("proxy test step");
    support::wait_until(
        "the held stream reaches the fake",
        Duration::from_secs(30),
        || !harness.fake.exchanges().is_empty(),
    );
    let (status, answer) = post(&harness.socket, &key, &messages_body("second"));
    assert_eq!(status, 429, "{answer}");
    assert!(answer.to_lowercase().contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("\"type\":\"rate_limit_error\""), "{answer}");
    gate.open();
    let mut rest = String::new();
    held.read_to_string(&mut rest).expect("proxy test step");
    assert!(rest.contains("message_stop"), "{rest}");
    // The permit is back once the held response ended.
    support::wait_until(
        "a stream permit is free again",
        Duration::from_secs(30),
        || post(&harness.socket, &key, &messages_body("third")).0 == 200,
    );
}

#[test]
fn one_container_cannot_take_every_stream() {
    let gate = Gate::new();
    let harness = Harness::start(
        Script::new()
            .once(
                When::LastUserContains("hold".into()),
                Reply::Gated {
                    text: "held".into(),
                    gate: gate.clone(),
                },
            )
            .fallback(Reply::text("free")),
        true,
        |settings| settings.max_streams_per_container = 1,
    );
    let busy = harness.key("nanoclaw-test-busy");
    let other = harness.key("nanoclaw-test-other");
    let mut held = UnixStream::connect(&harness.socket).expect("connect");
    held.write_all(request_text(&busy, &messages_body("hold")).as_bytes())
        .expect("send");
    support::wait_until(
        "the held stream reaches the fake",
        Duration::from_secs(30),
        || !harness.fake.exchanges().is_empty(),
    );
    let (status, answer) = post(&harness.socket, &busy, &messages_body("more"));
    assert_eq!(status, 429, "{answer}");
    assert!(answer.contains("at most 1 per container"), "{answer}");
    let (status, answer) = post(&harness.socket, &other, &messages_body("mine"));
    assert_eq!(
        status, 200,
        "another container still gets through: {answer}"
    );
    gate.open();
    let mut rest = String::new();
    held.read_to_string(&mut rest).expect("read");
    support::wait_until(
        "the busy container's slot to come back",
        Duration::from_secs(30),
        || post(&harness.socket, &busy, &messages_body("again")).0 == 200,
    );
}

#[test]
fn the_real_key_is_never_echoed_to_a_container() {
    let harness = Harness::start(
        Script::new().always(When::Any, Reply::EchoHeaders),
        true,
        |_| {},
    );
    let key = harness.key("nanoclaw-test-5");
    let (status, answer) = post(&harness.socket, &key, &messages_body("who am i"));
    assert_eq!(status, 200, "{answer}");
    assert!(!answer.contains(REAL_KEY), "{answer}");
    assert!(
        answer.contains("[redacted]"),
        "the echo did not happen: {answer}"
    );
    // The proxy's own refusals do not carry it either.
    for presented in ["wrong", key.as_str()] {
        let (_, answer) = post(&harness.socket, presented, &"{".repeat(10));
        assert!(!answer.contains(REAL_KEY), "{answer}");
    }
}

#[test]
fn no_credential_on_the_host_is_refused_naming_the_command() {
    let harness = Harness::start(Script::new(), false, |_| {});
    let key = harness.key("nanoclaw-test-6");
    let (status, answer) = post(&harness.socket, &key, &messages_body("hi"));
    assert_eq!(status, 401, "{answer}");
    assert!(answer.contains("`nanoclaw auth set anthropic`"), "{answer}");
    assert!(harness.fake.exchanges().is_empty());
    // Stored while the proxy runs: the next request uses it, no restart.
    Store::new(harness.data.path())
        .save(&Credential {
            kind: Kind::ApiKey,
            secret: Secret::new(REAL_KEY),
        })
        .expect("proxy test step");
    let (status, answer) = post(&harness.socket, &key, &messages_body("hi"));
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn an_unreachable_upstream_is_a_retryable_gateway_error() {
    let harness = Harness::start(Script::new(), true, |settings| {
        // A port nothing listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("proxy test step")
            .local_addr()
            .expect("proxy test step")
            .port();
        settings.upstream =
            Upstream::parse(&format!("http://127.0.0.1:{port}")).expect("proxy test step");
    });
    let key = harness.key("nanoclaw-test-7");
    let (status, answer) = post(&harness.socket, &key, &messages_body("hi"));
    assert_eq!(status, 502, "{answer}");
    assert!(answer.contains("\"type\":\"api_error\""), "{answer}");
    assert!(answer.contains("cannot connect"), "{answer}");
}

#[test]
fn auth_set_stores_the_secret_privately_and_never_prints_it() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new("auth");
    let secret = "sk-ant-oat01-from-stdin-secret";
    let mut child = env
        .command(&["auth", "set", "anthropic"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("proxy test step");
    child
        .stdin
        .take()
        .expect("proxy test step")
        .write_all(format!("{secret}\n").as_bytes())
        .expect("proxy test step");
    let output = child.wait_with_output().expect("proxy test step");
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{shown}");
    assert!(!shown.contains(secret), "{shown}");
    assert!(
        shown.contains("a Claude subscription OAuth token"),
        "{shown}"
    );
    let file = env.data().join("credentials/anthropic.json");
    let mode = std::fs::metadata(&file)
        .expect("proxy test step")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        std::fs::read_to_string(&file)
            .expect("proxy test step")
            .contains(secret)
    );

    let status = env.run(&["auth", "status"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert!(!status.stdout.contains(secret));
    assert_eq!(
        env.normalize(&status.stdout),
        "anthropic: a Claude subscription OAuth token, stored in `$ROOT/data/credentials/anthropic.json`\n"
    );

    let removed = env.run(&["auth", "remove", "anthropic"]);
    assert_eq!(removed.code, 0, "{removed:?}");
    assert!(!file.exists());
    let status = env.run(&["auth", "status"]);
    assert_eq!(status.code, 1, "{status:?}");
    assert!(status.stdout.contains("anthropic: not set"), "{status:?}");
    assert!(
        status.stderr.contains("nanoclaw auth set anthropic"),
        "{status:?}"
    );
}

#[test]
fn auth_set_refuses_an_empty_or_multi_word_secret() {
    let env = Env::new("auth-bad");
    for input in ["\n", "two words\n"] {
        let mut child = env
            .command(&["auth", "set", "anthropic"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("proxy test step");
        child
            .stdin
            .take()
            .expect("proxy test step")
            .write_all(input.as_bytes())
            .expect("proxy test step");
        let output = child.wait_with_output().expect("proxy test step");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("hint:"), "{stderr}");
        assert!(!env.data().join("credentials/anthropic.json").exists());
    }
}

#[test]
fn the_daemon_serves_the_credential_proxy_from_its_data_dir() {
    let Some(()) = support::docker() else { return };
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new("proxy-daemon");
    env.write("agents.yaml", crate::runtime::CLI_AGENT);
    let mut daemon = crate::runtime::Daemon::start(&env);
    let socket = env.data().join("proxy/anthropic.sock");
    let mode = |path: &Path| {
        std::fs::metadata(path)
            .expect("proxy test step")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&socket), 0o666, "any container user can connect");
    assert_eq!(mode(socket.parent().expect("proxy test step")), 0o755);
    let (status, answer) = post(&socket, "sk-ant-api03-guessed", &messages_body("hi"));
    assert_eq!(status, 401, "{answer}");
    assert!(
        answer.contains("not a live nanoclaw placeholder"),
        "{answer}"
    );
    assert_eq!(daemon.stop(), 0, "{}", daemon.log());
    assert!(!socket.exists(), "the socket is removed at shutdown");
}
