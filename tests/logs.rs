//! Following one message through the logs (issue 9 point 5): the runtime's spans carry the ids
//! of the unit of work, `route{channel, msg}`, `wake{session, msg}`, `deliver{session, row,
//! in_reply_to}`, so the JSON log of a real `nanoclaw run` shows one message's id in each.

use serde_json::Value;

use crate::runtime::{CLI_AGENT, Client, Daemon};
use crate::support::{self, Env};

/// Every span (name and fields) the JSON log lines were emitted in.
fn spans(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|line| line.get("spans").and_then(Value::as_array).cloned())
        .flatten()
        .collect()
}

/// The spans named `name` whose field `field` is `value`.
fn find<'a>(spans: &'a [Value], name: &str, field: &str, value: &str) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|span| span["name"] == name && span[field] == value)
        .collect()
}

#[test]
fn issue_9_one_message_is_followed_through_route_wake_and_deliver() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("follow-a-message");
    env.write("agents.yaml", CLI_AGENT);
    let mut daemon =
        Daemon::start_logging(&env, "info,reconciler=debug", &["--log-format", "json"]);
    let mut client = Client::connect(&env);
    client.say("follow-me-1", "hello");
    let (text, in_reply_to) = client.reply();
    assert_eq!(text, "echo: hello");
    assert_eq!(in_reply_to, "follow-me-1:echo");
    assert_eq!(daemon.stop(), 0, "clean shutdown\n{}", daemon.log());
    let log = daemon.log();
    let spans = spans(&log);

    let routed = find(&spans, "route", "msg", "follow-me-1");
    assert!(!routed.is_empty(), "no route span names the message\n{log}");
    assert_eq!(routed[0]["channel"], "cli");
    let woken = find(&spans, "wake", "msg", "follow-me-1");
    assert!(!woken.is_empty(), "no wake span names the message\n{log}");
    let session = woken[0]["session"].as_str().expect("wake span's session");
    let delivered = find(&spans, "deliver", "in_reply_to", "follow-me-1:echo");
    assert!(
        !delivered.is_empty(),
        "no deliver span names the message\n{log}"
    );
    assert_eq!(
        delivered[0]["session"], session,
        "the reply is delivered from the session the message woke"
    );
    assert!(
        delivered[0]["row"]
            .as_str()
            .is_some_and(|row| !row.is_empty())
    );
}
