//! The process plumbing of [`ClaudeQuery`] against a stand-in `claude` (a shell script that
//! speaks the stream-json shapes recorded from Claude Code 2.1.332): follow-ups reach stdin,
//! ending the input ends the query, failures are typed. The real binary is driven by
//! `agent-runner/tests/claude.rs`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use super::*;

/// A script that answers each stdin line with an init and a result quoting the line's
/// content, and exits with `exit` when stdin closes.
fn stand_in(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("claude");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

const ECHO: &str = r#"while read -r line; do
  echo '{"type":"system","subtype":"init","session_id":"s-1"}'
  text=$(printf '%s' "$line" | sed 's/.*"content":"\([^"]*\)".*/\1/')
  printf '{"type":"result","subtype":"success","is_error":false,"result":"echo %s","session_id":"s-1"}\n' "$text"
done"#;

fn launch(program: PathBuf, cwd: &Path) -> Launch {
    Launch {
        program,
        args: Vec::new(),
        cwd: cwd.to_path_buf(),
        env: BTreeMap::new(),
    }
}

fn events_until_end(query: &mut ClaudeQuery) -> (Vec<ProviderEvent>, Next) {
    let mut events = Vec::new();
    for _ in 0..10_000 {
        match query.next_event(Duration::from_millis(50)) {
            Next::Event(ProviderEvent::Activity) | Next::Idle => {}
            Next::Event(event) => events.push(event),
            end => return (events, end),
        }
    }
    panic!("the query never ended: {events:?}");
}

fn result(text: &str) -> ProviderEvent {
    ProviderEvent::Result {
        text: Some(text.into()),
    }
}

#[test]
fn turns_are_written_to_stdin_and_ending_the_input_ends_the_query() {
    let dir = tempfile::tempdir().unwrap();
    let invalid = Rc::default();
    let mut query = ClaudeQuery::start(&launch(stand_in(dir.path(), ECHO), dir.path()), invalid);
    query.push("first");
    query.push("second");
    query.end();
    query.push("after the end is dropped");
    let (events, end) = events_until_end(&mut query);
    let init = ProviderEvent::Init {
        continuation: "s-1".into(),
    };
    assert_eq!(
        events,
        [
            init.clone(),
            result("echo first"),
            init,
            result("echo second")
        ]
    );
    assert_eq!(end, Next::Done);
    assert_eq!(query.next_event(Duration::ZERO), Next::Done);
}

/// `--replay-user-messages` echoes: a second echo before a result joined that turn.
#[test]
fn a_follow_up_echoed_inside_a_turn_is_reported_as_joined() {
    let dir = tempfile::tempdir().unwrap();
    let script = stand_in(
        dir.path(),
        r#"read -r first; read -r second
echo '{"type":"system","subtype":"init","session_id":"s-1"}'
echo '{"type":"user","message":{"role":"user","content":"one"},"isReplay":true}'
echo '{"type":"user","message":{"role":"user","content":[{"type":"tool_result","content":"42"}]}}'
echo '{"type":"user","message":{"role":"user","content":"two"},"isReplay":true}'
echo '{"type":"result","subtype":"success","is_error":false,"result":"both"}'
read -r third
echo '{"type":"system","subtype":"init","session_id":"s-1"}'
echo '{"type":"user","message":{"role":"user","content":"three"},"isReplay":true}'
echo '{"type":"result","subtype":"success","is_error":false,"result":"three"}'"#,
    );
    let mut query = ClaudeQuery::start(&launch(script, dir.path()), Rc::default());
    query.push("one");
    query.push("two");
    query.push("three");
    query.end();
    let (events, end) = events_until_end(&mut query);
    let init = ProviderEvent::Init {
        continuation: "s-1".into(),
    };
    assert_eq!(
        events,
        [
            init.clone(),
            ProviderEvent::FollowUpJoined,
            result("both"),
            init,
            result("three")
        ]
    );
    assert_eq!(end, Next::Done);
}

#[test]
fn a_process_that_dies_without_answering_fails_with_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let script = stand_in(dir.path(), "echo 'something broke' >&2; exit 3");
    let mut query = ClaudeQuery::start(&launch(script, dir.path()), Rc::default());
    query.push("hello");
    let (events, end) = events_until_end(&mut query);
    assert_eq!(events, []);
    assert_eq!(
        end,
        Next::Failed("Claude Code exited with exit status: 3: something broke".into())
    );
}

#[test]
fn a_lost_conversation_fails_as_session_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let script = stand_in(
        dir.path(),
        r#"echo '{"type":"result","subtype":"error_during_execution","is_error":true,"session_id":"0b5b","errors":["No conversation found with session ID: 0b5b"]}'; exit 1"#,
    );
    let mut provider = ClaudeProvider::new(ProviderOptions::default());
    let mut query = ClaudeQuery::start(
        &launch(script, dir.path()),
        Rc::clone(&provider.session_invalid),
    );
    let (events, end) = events_until_end(&mut query);
    assert_eq!(events, [ProviderEvent::Result { text: None }]);
    let Next::Failed(message) = end else {
        panic!("{end:?}")
    };
    assert_eq!(message, "no conversation found with session id `0b5b`");
    assert!(provider.is_session_invalid(&message));
    assert!(!provider.is_session_invalid("some other error"));
    // A later, different failure is not session-invalid.
    let other = stand_in(dir.path(), "exit 4");
    let mut query = ClaudeQuery::start(
        &launch(other, dir.path()),
        Rc::clone(&provider.session_invalid),
    );
    let (_, end) = events_until_end(&mut query);
    let Next::Failed(other) = end else {
        panic!("{end:?}")
    };
    assert!(!provider.is_session_invalid(&other));
    assert!(!provider.is_session_invalid(&message));
    let _ = &mut provider;
}

#[test]
fn an_api_error_result_then_exit_1_ends_normally() {
    let dir = tempfile::tempdir().unwrap();
    let script = stand_in(
        dir.path(),
        r#"read -r line; echo '{"type":"result","subtype":"success","is_error":true,"result":"Invalid API key · Fix external API key"}'; exit 1"#,
    );
    let mut query = ClaudeQuery::start(&launch(script, dir.path()), Rc::default());
    query.push("hello");
    let (events, end) = events_until_end(&mut query);
    assert_eq!(
        events,
        [ProviderEvent::TurnError {
            reply: banner::AUTH_REQUIRED_MESSAGE.into()
        }]
    );
    assert_eq!(end, Next::Done);
}

/// Claude Code retries a refused credential for minutes: the user hears at the first retry,
/// once, and the banner that ends the turn adds nothing.
#[test]
fn a_refused_credential_is_told_at_the_first_retry_and_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let retry = r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"retry_delay_ms":500,"error_status":401,"error":"authentication_failed"}"#;
    let script = stand_in(
        dir.path(),
        &format!(
            r#"read -r line
echo '{retry}'
echo '{retry}'
echo '{{"type":"result","subtype":"success","is_error":true,"result":"Failed to authenticate. API Error: 401 invalid"}}'
read -r line
echo '{{"type":"result","subtype":"success","is_error":true,"result":"Failed to authenticate. API Error: 401 invalid"}}'"#
        ),
    );
    let mut query = ClaudeQuery::start(&launch(script, dir.path()), Rc::default());
    query.push("hello");
    query.push("again");
    query.end();
    let (events, end) = events_until_end(&mut query);
    let notices: Vec<_> = events
        .iter()
        .filter(|event| !matches!(event, ProviderEvent::Error { .. }))
        .collect();
    assert_eq!(
        notices,
        [
            &ProviderEvent::Notice {
                reply: banner::AUTH_REQUIRED_MESSAGE.into()
            },
            &ProviderEvent::Result { text: None },
            &ProviderEvent::TurnError {
                reply: banner::AUTH_REQUIRED_MESSAGE.into()
            },
        ]
    );
    assert_eq!(end, Next::Done);
}

#[test]
fn a_missing_binary_fails_the_query_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let mut query = ClaudeQuery::start(
        &launch(dir.path().join("no-claude"), dir.path()),
        Rc::default(),
    );
    query.push("hello");
    let Next::Failed(message) = query.next_event(Duration::ZERO) else {
        panic!("no failure")
    };
    assert!(
        message.starts_with(&format!(
            "cannot start Claude Code `{}`: No such file or directory",
            dir.path().join("no-claude").display()
        )),
        "{message}"
    );
    assert!(message.contains("hint: "), "{message}");
    assert_eq!(query.next_event(Duration::ZERO), Next::Done);
}

#[test]
fn dropping_an_open_query_stops_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let script = stand_in(
        dir.path(),
        &format!("echo $$ > {}; exec sleep 600", pid_file.display()),
    );
    let query = ClaudeQuery::start(&launch(script, dir.path()), Rc::default());
    wait_until("the stand-in to start", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|pid| pid.ends_with('\n'))
    });
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    drop(query);
    assert!(
        !Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "the stand-in still runs"
    );
}

/// Polls `cond` every 10 ms for up to 30 s; panics naming `what` on timeout.
#[track_caller]
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

/// Issue 10 point 5: API calls that cannot reach the API (no HTTP status, or a gateway status
/// from the credential proxy) are retried by Claude Code; the loop is told once per turn, at
/// the first such retry after `UNREACHABLE_NOTICE_AFTER`, and a new turn may tell again (the
/// loop tells the chat once per outage: `poll`'s
/// `issue_10_an_outage_is_told_once_and_its_message_given_back_until_the_last_try`).
#[test]
fn issue_10_an_unreachable_api_is_told_once_per_turn_after_the_threshold() {
    use std::time::Instant;

    use super::events::{UNREACHABLE_MESSAGE, UNREACHABLE_NOTICE_AFTER, translate};
    let retry = |status: &str| {
        serde_json::from_str::<Value>(&format!(
            r#"{{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"retry_delay_ms":500,"error_status":{status},"error":"unknown"}}"#
        ))
        .unwrap()
    };
    assert!(translate(&retry("null")).unreachable);
    assert!(translate(&retry("502")).unreachable);
    assert!(
        !translate(&retry("529")).unreachable,
        "overloaded is reachable"
    );
    assert!(!translate(&retry("401")).unreachable);

    let dir = tempfile::tempdir().unwrap();
    let mut query = ClaudeQuery::start(
        &launch(stand_in(dir.path(), "true"), dir.path()),
        Rc::default(),
    );
    let start = Instant::now();
    let notice = ProviderEvent::Unreachable {
        notice: UNREACHABLE_MESSAGE.into(),
    };
    assert_eq!(query.unreachable_notice(start), None);
    assert_eq!(
        query.unreachable_notice(start + UNREACHABLE_NOTICE_AFTER / 2),
        None
    );
    assert_eq!(
        query.unreachable_notice(start + UNREACHABLE_NOTICE_AFTER),
        Some(notice.clone())
    );
    assert_eq!(
        query.unreachable_notice(start + UNREACHABLE_NOTICE_AFTER * 3),
        None,
        "once"
    );
    query.on_line(r#"{"type":"result","subtype":"success","is_error":false,"result":"hi"}"#);
    let later = start + UNREACHABLE_NOTICE_AFTER * 4;
    assert_eq!(
        query.unreachable_notice(later),
        None,
        "a new turn counts anew"
    );
    assert_eq!(
        query.unreachable_notice(later + UNREACHABLE_NOTICE_AFTER),
        Some(notice)
    );
}
