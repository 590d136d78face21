//! Tests of the one-shot client against a scripted host on a real Unix socket: what it shows,
//! what it acknowledges, and that a reply sent again after a reconnect is shown once.

use std::io::{BufRead, BufReader};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use super::*;
use crate::channels::cli_protocol::{ClientLine, Welcome};

/// One accepted connection of the scripted host.
struct Conn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Conn {
    fn accept(listener: &UnixListener) -> Conn {
        let (stream, _) = listener.accept().unwrap();
        Conn {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    fn read(&mut self) -> ClientLine {
        let mut line = String::new();
        assert!(self.reader.read_line(&mut line).unwrap() > 0, "client left");
        ClientLine::parse(&line).unwrap()
    }

    fn write(&mut self, line: HostLine) {
        writeln!(self.writer, "{}", line.to_line()).unwrap();
    }

    /// Reads the hello and welcomes it.
    fn greet(&mut self) {
        assert!(matches!(self.read(), ClientLine::Hello { .. }));
        self.write(HostLine::Welcome {
            hello: Welcome {
                platform_id: "local".into(),
                protocol: 1,
            },
        });
    }

    /// Reads the message and accepts it for `agents`; its id.
    fn accept_message(&mut self, agents: &[&str]) -> String {
        let ClientLine::Message(message) = self.read() else {
            panic!("expected the message");
        };
        let id = message.id.expect("one-shot messages carry their id");
        self.write(HostLine::Accepted {
            accepted: id.clone(),
            agents: agents.iter().map(|agent| agent.to_string()).collect(),
        });
        id
    }

    fn reply(&mut self, id: &str, agent: &str, answers: &str, text: &str) {
        self.write(HostLine::Reply(Reply {
            id: id.into(),
            text: text.into(),
            agent: Some(agent.into()),
            in_reply_to: Some(format!("{answers}:{agent}")),
            card: None,
            files: Vec::new(),
        }));
    }

    fn acked(&mut self) -> String {
        match self.read() {
            ClientLine::Ack { ack } => ack,
            other => panic!("expected an ack, got {other:?}"),
        }
    }
}

struct Outcome {
    result: anyhow::Result<Status>,
    out: String,
    err: String,
}

/// Runs a one-shot client for `target` against `host`, a script of the runtime's side.
fn one_shot_against(
    target: Target,
    replies: usize,
    host: impl FnOnce(UnixListener) + Send + 'static,
) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let socket: PathBuf = dir.path().join("cli.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let script = std::thread::spawn(move || host(listener));
    let link = Link::connect(&socket, &target.platform_id).unwrap();
    let request = Request {
        text: "hi",
        replies,
        timeout: Duration::from_secs(20),
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let result = one_shot(link, &socket, &target, &request, &mut out, &mut err);
    script.join().expect("the host script passed");
    Outcome {
        result,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

fn target(agent: Option<&str>, agents: &[&str]) -> Target {
    Target {
        chat: Some("chat".into()),
        platform_id: "local".into(),
        agent: agent.map(str::to_string),
        agents: agents.iter().map(|agent| agent.to_string()).collect(),
        note: None,
    }
}

#[test]
fn issue_8_a_one_shot_client_shows_and_acknowledges_only_its_own_reply() {
    let outcome = one_shot_against(target(None, &["echo"]), 1, |listener| {
        let mut conn = Conn::accept(&listener);
        conn.greet();
        let id = conn.accept_message(&["echo"]);
        conn.reply("old", "echo", "earlier", "an older answer");
        conn.reply("new", "echo", &id, "the answer");
        assert_eq!(conn.acked(), "new", "the older answer is not acknowledged");
    });
    outcome.result.unwrap();
    assert_eq!(outcome.out, "the answer\n");
    assert_eq!(outcome.err, "");
}

#[test]
fn issue_8_on_a_shared_chat_a_one_shot_client_waits_for_the_named_agent() {
    let outcome = one_shot_against(target(Some("helper"), &["andy", "helper"]), 1, |listener| {
        let mut conn = Conn::accept(&listener);
        conn.greet();
        let id = conn.accept_message(&["andy", "helper"]);
        conn.reply("from-andy", "andy", &id, "andy's config");
        conn.reply("from-helper", "helper", &id, "helper's config");
        assert_eq!(conn.acked(), "from-helper");
    });
    outcome.result.unwrap();
    assert_eq!(outcome.out, "helper's config\n");
}

#[test]
fn issue_8_a_reply_sent_again_after_a_reconnect_is_shown_once_and_acknowledged() {
    let outcome = one_shot_against(target(None, &["echo"]), 2, |listener| {
        let mut first = Conn::accept(&listener);
        first.greet();
        let id = first.accept_message(&["echo"]);
        first.reply("r1", "echo", &id, "one");
        assert_eq!(first.acked(), "r1");
        // The runtime crashes before recording the acknowledgement, and sends r1 again.
        drop(first);
        let mut second = Conn::accept(&listener);
        second.greet();
        second.reply("r1", "echo", &id, "one");
        assert_eq!(second.acked(), "r1", "a duplicate is acknowledged too");
        second.reply("r2", "echo", &id, "two");
        assert_eq!(second.acked(), "r2");
    });
    outcome.result.unwrap();
    assert_eq!(outcome.out, "one\ntwo\n");
    assert!(outcome.err.contains("went away"), "{}", outcome.err);
}

#[test]
fn a_one_shot_client_taken_over_by_another_fails_at_once_with_the_reason() {
    let outcome = one_shot_against(target(None, &["echo"]), 1, |listener| {
        let mut conn = Conn::accept(&listener);
        conn.greet();
        conn.accept_message(&["echo"]);
        conn.write(HostLine::Superseded {
            superseded: true,
            text: "[superseded by a newer client]".into(),
        });
    });
    let err = outcome.result.unwrap_err();
    assert!(
        err.to_string().contains("another client"),
        "unexpected error: {err}"
    );
}

#[test]
fn a_one_shot_client_fails_at_once_when_its_agent_will_not_answer() {
    let outcome = one_shot_against(target(Some("helper"), &["andy", "helper"]), 1, |listener| {
        let mut conn = Conn::accept(&listener);
        conn.greet();
        conn.accept_message(&["andy"]);
    });
    let err = outcome.result.unwrap_err().to_string();
    assert!(err.contains("`helper` does not answer"), "{err}");
}

#[test]
fn a_notice_is_shown_on_stderr_and_acknowledged() {
    let outcome = one_shot_against(target(Some("echo"), &["echo"]), 1, |listener| {
        let mut conn = Conn::accept(&listener);
        conn.greet();
        let id = conn.accept_message(&["echo"]);
        conn.write(HostLine::Reply(Reply {
            id: "notice-1".into(),
            text: "echo could not be started".into(),
            agent: Some("echo".into()),
            in_reply_to: None,
            card: None,
            files: Vec::new(),
        }));
        assert_eq!(conn.acked(), "notice-1");
        conn.reply("r1", "echo", &id, "finally");
        assert_eq!(conn.acked(), "r1");
    });
    outcome.result.unwrap();
    assert_eq!(outcome.out, "finally\n");
    assert_eq!(outcome.err, "echo could not be started\n");
}

#[test]
fn who_a_reply_is_for() {
    let reply = |agent: Option<&str>, to: Option<&str>| Reply {
        id: "r".into(),
        text: "t".into(),
        agent: agent.map(str::to_string),
        in_reply_to: to.map(str::to_string),
        card: None,
        files: Vec::new(),
    };
    let cases = [
        (reply(Some("a"), Some("m1:a")), None, Addressed::Answer),
        (reply(Some("a"), Some("m10:a")), None, Addressed::Other),
        (reply(Some("a"), Some("m1:a")), Some("a"), Addressed::Answer),
        (reply(Some("b"), Some("m1:b")), Some("a"), Addressed::Other),
        (reply(Some("a"), None), Some("a"), Addressed::Notice),
        (reply(Some("b"), None), Some("a"), Addressed::Other),
        (reply(None, None), Some("a"), Addressed::Notice),
    ];
    for (reply, agent, expected) in cases {
        assert_eq!(
            addressed(&reply, "m1", agent),
            expected,
            "{reply:?} {agent:?}"
        );
    }
}
