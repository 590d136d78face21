//! The fake Anthropic API itself (`support::fake_anthropic`): its answers have the real wire
//! shape (docs/claude-code.md#answers-it-understands), its script rules fire as written, and
//! it records what it received.

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::{Value, json};

use crate::support::fake_anthropic::{FakeAnthropic, Reply, Script, When};

/// One request on its own connection: (status, headers text, body text).
fn call(fake: &FakeAnthropic, path: &str, body: &Value) -> (u16, String, String) {
    let body = body.to_string();
    let mut stream = TcpStream::connect(fake.addr()).expect("connect to the fake");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nhost: fake\r\nx-api-key: k\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let (head, rest) = answer.split_once("\r\n\r\n").expect("a head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status");
    let body = if head.to_lowercase().contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, head.to_lowercase(), body)
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&tail[..size]);
        rest = &tail[size + 2..];
    }
    out
}

fn request(text: &str, stream: bool) -> Value {
    json!({"model": "claude-test", "max_tokens": 64, "stream": stream,
           "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]})
}

/// (event name, data) pairs of a server-sent event stream.
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let name = block
                .lines()
                .find_map(|line| line.strip_prefix("event: "))
                .expect("event");
            let data = block
                .lines()
                .find_map(|line| line.strip_prefix("data: "))
                .expect("data");
            (
                name.to_string(),
                serde_json::from_str(data).expect("JSON data"),
            )
        })
        .collect()
}

#[test]
fn a_tool_call_streams_in_the_wire_order_and_its_input_joins_up() {
    let fake = FakeAnthropic::start(Script::new().always(When::Any, Reply::bash("echo hi")));
    let (status, head, body) = call(&fake, "/v1/messages?beta=true", &request("go", true));
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    let events = events(&body);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    assert_eq!(events[0].1["message"]["model"], "claude-test");
    assert_eq!(events[5].1["content_block"]["type"], "tool_use");
    let input: String = events[6..8]
        .iter()
        .map(|(_, data)| {
            data["delta"]["partial_json"]
                .as_str()
                .expect("input_json_delta")
        })
        .collect();
    let input: Value = serde_json::from_str(&input).expect("the fragments join to JSON");
    assert_eq!(input["command"], "echo hi");
    assert_eq!(events[9].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(events[9].1["usage"]["output_tokens"], 9);
    let recorded = fake.messages_requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].headers["x-api-key"], "k");
    assert_eq!(recorded[0].body["messages"][0]["content"][0]["text"], "go");
    assert_eq!(recorded[0].response, body);
}

#[test]
fn non_streaming_requests_and_count_tokens_get_json() {
    let fake = FakeAnthropic::start(Script::new().fallback(Reply::text("plain")));
    let (status, _, body) = call(&fake, "/v1/messages", &request("hi", false));
    assert_eq!(status, 200);
    let message: Value = serde_json::from_str(&body).expect("a JSON message");
    assert_eq!(message["type"], "message");
    assert_eq!(message["content"][0]["text"], "plain");
    assert_eq!(message["stop_reason"], "end_turn");
    let (status, _, body) = call(&fake, "/v1/messages/count_tokens", &request("hi", false));
    assert_eq!(status, 200);
    let count: Value = serde_json::from_str(&body).expect("JSON");
    assert!(count["input_tokens"].as_u64().expect("a count") > 0);
    let (status, _, body) = call(&fake, "/v1/files", &json!({}));
    assert_eq!(status, 404);
    assert!(body.contains("not_found_error"), "{body}");
}

#[test]
fn api_errors_carry_their_status_type_and_retry_after() {
    let fake = FakeAnthropic::start(
        Script::new()
            .once(When::LastUserContains("a".into()), Reply::unauthorized())
            .once(When::LastUserContains("b".into()), Reply::rate_limited(7))
            .once(When::LastUserContains("c".into()), Reply::overloaded()),
    );
    for (text, status, kind) in [
        ("a", 401, "authentication_error"),
        ("b", 429, "rate_limit_error"),
        ("c", 529, "overloaded_error"),
    ] {
        let (got, head, body) = call(&fake, "/v1/messages", &request(text, true));
        assert_eq!(got, status, "{body}");
        let error: Value = serde_json::from_str(&body).expect("a JSON error");
        assert_eq!(error["type"], "error");
        assert_eq!(error["error"]["type"], kind);
        assert_eq!(head.contains("retry-after: 7"), status == 429, "{head}");
    }
    // Each rule answered once; the fallback answers the rest.
    let (status, _, _) = call(&fake, "/v1/messages", &request("a", true));
    assert_eq!(status, 200);
}

#[test]
fn a_required_key_turns_other_keys_away_and_summaries_answer_themselves() {
    let fake = FakeAnthropic::start(Script::new().require_key("right"));
    let (status, _, _) = call(&fake, "/v1/messages", &request("hi", true));
    assert_eq!(status, 401, "the key `k` is not the required one");
    let fake = FakeAnthropic::start(Script::new());
    let compaction = json!({"model": "m", "stream": true, "messages": [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "Your task is to create a detailed summary of the conversation so far. Respond with plain text only: an <analysis> block followed by a <summary> block."},
    ]});
    let (_, _, body) = call(&fake, "/v1/messages", &compaction);
    let text: String = events(&body)
        .iter()
        .filter_map(|(_, data)| data["delta"]["text"].as_str().map(str::to_string))
        .collect();
    assert!(text.contains("<summary>"), "{text}");
}
