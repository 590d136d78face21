//! Claude agent benchmarks; prints medians (`cargo bench -p reconciler --bench claude`).
//!
//! The real `nanoclaw run` (release), a Claude agent (`network: none`) in the production image,
//! the real Claude Code, the credential proxy, and the fake Anthropic API
//! (`tests/support/fake_anthropic.rs`, included below) answering at once on loopback:
//!
//! 1. the production image: `nanoclaw image build --recipe production` as this program runs it
//!    (its layers cached by Docker; the cold build is timed by hand, docs/benchmarks.md), a
//!    second build (reused by its labels), and the image's size;
//! 2. cold round trip: the first message of a new chat (session, container start, runner and
//!    Claude Code start, one model call, reply); 5 chats;
//! 3. warm round trip: 30 sequential messages to a chat whose container runs (our overhead
//!    around the model call: the fake answers instantly); median and p95;
//! 4. the agent container's memory (`docker stats`): idle after the warm turns, and during a
//!    turn held open by the fake (its answer waits at a gate).
//!
//! Needs Docker (skipped with a note otherwise). Everything stays on loopback and Unix sockets;
//! only the image build may download, when Docker's layer cache lacks a step.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::print_stderr)]

#[path = "../../tests/support/fake_anthropic.rs"]
mod fake_anthropic;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fake_anthropic::{FakeAnthropic, Gate, Reply, Script, When};
use reconciler::channels::cli_protocol::{self, ClientLine, Hello, HostLine, Message};

const BIN: &str = env!("CARGO_BIN_EXE_nanoclaw");
/// The production image this program builds and its agent runs in.
const TAG: &str = "nanoclaw-agent:production-bench";
const CHATS: usize = 5;
const WARM: usize = 30;

fn main() {
    println!("# nanoclaw Claude agent benchmarks");
    let docker = Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !docker {
        println!("skipped: no Docker daemon answers `docker info`");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    image(dir.path());

    let gate = Gate::new();
    let mut script = Script::new().always(
        When::LastUserContains("hold".into()),
        Reply::Gated {
            text: to_chat("c0", "held"),
            gate: gate.clone(),
        },
    );
    // Each chat's messages name it (`@c<n>`), so the answer goes back to that chat.
    for chat in 0..CHATS {
        let chat = format!("c{chat}");
        script = script.always(
            When::LastUserContains(format!("@{chat} ")),
            Reply::text(&to_chat(&chat, "pong")),
        );
    }
    let fake = FakeAnthropic::start(script.fallback(Reply::text("unexpected request")));
    let data = dir.path().join("data");
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let mut yaml =
        format!("kind: agent\nname: bench\nprovider: claude\nnetwork: none\nimage: {TAG}\n");
    for chat in 0..CHATS {
        yaml.push_str(&format!(
            "---\nkind: channel\nname: c{chat}\nchannel_type: cli\nplatform_id: c{chat}\nunknown_sender_policy: public\n\
             wirings:\n  - {{ agent: bench, engage_mode: pattern, engage_pattern: \".\" }}\n"
        ));
    }
    std::fs::write(manifests.join("bench.yaml"), yaml).unwrap();
    let mut auth = nanoclaw(dir.path(), &data)
        .args(["auth", "set", "anthropic"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(auth.stdin.take().unwrap(), "sk-ant-api03-bench-key").unwrap();
    assert!(auth.wait().unwrap().success(), "auth set failed");
    let log = std::fs::File::create(dir.path().join("run.log")).unwrap();
    let child = nanoclaw(dir.path(), &data)
        .env("NANOCLAW_ANTHROPIC_BASE_URL", fake.url())
        .args(["run", "--max-containers", "8"])
        .arg(&manifests)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let _runtime = Stopper(child);
    let socket = data.join("cli.sock");
    let deadline = Instant::now() + Duration::from_secs(120);
    while UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "runtime did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut cold: Vec<Duration> = (0..CHATS)
        .map(|chat| Client::connect(&socket, &format!("c{chat}")).round_trip("cold"))
        .collect();
    cold.sort();
    println!(
        "cold round trip (new session: container, runner and Claude Code start, one model call): median {:.0} ms, max {:.0} ms (n={})",
        ms(cold[cold.len() / 2]),
        ms(cold[cold.len() - 1]),
        cold.len()
    );

    let mut client = Client::connect(&socket, "c0");
    let mut warm: Vec<Duration> = (0..WARM).map(|_| client.round_trip("warm")).collect();
    warm.sort();
    println!(
        "warm round trip (running container, one Claude Code turn): median {:.0} ms, p95 {:.0} ms, min {:.0} ms (n={})",
        ms(warm[warm.len() / 2]),
        ms(warm[warm.len() * 95 / 100]),
        ms(warm[0]),
        warm.len()
    );

    let container = container_of(&data);
    std::thread::sleep(Duration::from_secs(3));
    println!(
        "agent container memory, idle after {WARM} turns: {}",
        memory(&container)
    );
    let asked = fake.messages_requests().len();
    client.send_message("hold");
    let deadline = Instant::now() + Duration::from_secs(60);
    while fake.messages_requests().len() == asked {
        assert!(
            Instant::now() < deadline,
            "the held turn never reached the fake"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "agent container memory, during a turn (model call in flight): {}",
        memory(&container)
    );
    gate.open();
    client.wait_reply("hold");
}

/// Builds [`TAG`] twice: as this run finds Docker's cache, then reused; prints both and the size.
fn image(dir: &Path) {
    for label in ["build", "second build (reused by its labels)"] {
        let start = Instant::now();
        let built = nanoclaw(dir, &dir.join("image-data"))
            .args(["image", "build", "--recipe", "production", "--tag", TAG])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(built.success(), "image build failed");
        println!(
            "production image {label}: {:.1} s",
            start.elapsed().as_secs_f64()
        );
    }
    let size = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Size}}", TAG])
        .output()
        .unwrap();
    let bytes: f64 = String::from_utf8_lossy(&size.stdout)
        .trim()
        .parse()
        .unwrap();
    println!("production image size: {:.0} MB", bytes / 1e6);
}

/// `nanoclaw --data <data>` with the host's credentials and configuration kept out.
fn nanoclaw(dir: &Path, data: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("--data")
        .arg(data)
        .env("NO_COLOR", "1")
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
        .env_remove("NANOCLAW_ANTHROPIC_BASE_URL")
        .env_remove("NANOCLAW_DATA_DIR");
    command
}

/// A model answer the runner sends to the chat whose channel is `chat` (its
/// `<message to="…">` block names the agent's destination for that channel).
fn to_chat(chat: &str, text: &str) -> String {
    format!("<message to=\"{chat}\">{text}</message>")
}

/// The running container of chat `c0`'s session.
fn container_of(data: &Path) -> String {
    let slug = reconciler::paths::slug_of(data);
    let output = Command::new("docker")
        .args(["ps", "--format", "{{.Names}}", "--filter"])
        .arg(format!("label=nanoclaw.install={slug}"))
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&output.stdout).into_owned();
    let conn = reconciler::db::open_readonly(&data.join("nanoclaw.db")).unwrap();
    let session: String = conn
        .query_row(
            "SELECT s.id FROM sessions s JOIN messaging_groups m ON m.id = s.messaging_group_id
             WHERE m.platform_id = 'c0'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    names
        .lines()
        .find(|name| name.ends_with(&session))
        .unwrap_or_else(|| panic!("no running container for {session} in {names}"))
        .to_string()
}

/// `docker stats` memory usage of a container.
fn memory(container: &str) -> String {
    let output = Command::new("docker")
        .args([
            "stats",
            "--no-stream",
            "--format",
            "{{.MemUsage}}",
            container,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .split('/')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

struct Stopper(std::process::Child);

impl Drop for Stopper {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// A client of the CLI socket that reads one chat and acknowledges each reply it waits for.
struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    chat: String,
    n: usize,
}

impl Client {
    fn connect(socket: &Path, platform_id: &str) -> Client {
        let stream = UnixStream::connect(socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let writer = stream.try_clone().unwrap();
        let mut client = Client {
            reader: BufReader::new(stream),
            writer,
            chat: platform_id.to_string(),
            n: 0,
        };
        client.send(&ClientLine::Hello {
            hello: Hello {
                platform_id: Some(platform_id.to_string()),
                protocol: Some(cli_protocol::VERSION),
            },
        });
        client
    }

    fn send(&mut self, line: &ClientLine) {
        writeln!(self.writer, "{}", line.to_line()).unwrap();
    }

    /// Sends `text` as a message with a fresh id; returns the id.
    fn send_message(&mut self, text: &str) -> String {
        self.n += 1;
        let id = format!("{text}-{}-{}", std::process::id(), self.n);
        self.send(&ClientLine::Message(Message {
            text: format!("{text} @{} {id}", self.chat),
            id: Some(id.clone()),
            platform_id: None,
            mention: None,
        }));
        id
    }

    fn round_trip(&mut self, label: &str) -> Duration {
        let start = Instant::now();
        let id = self.send_message(label);
        self.wait_reply(&id);
        start.elapsed()
    }

    /// Waits for the reply to message `id` (or, for the held turn, to the one starting with
    /// `id`) and acknowledges it.
    fn wait_reply(&mut self, id: &str) {
        loop {
            let mut line = String::new();
            assert!(
                self.reader.read_line(&mut line).unwrap() > 0,
                "runtime closed the socket"
            );
            match HostLine::parse(&line) {
                Some(HostLine::Error { error }) => panic!("runtime rejected the message: {error}"),
                Some(HostLine::Reply(reply))
                    if reply
                        .in_reply_to
                        .as_deref()
                        .is_some_and(|to| to.starts_with(id)) =>
                {
                    self.send(&ClientLine::Ack { ack: reply.id });
                    return;
                }
                _ => {}
            }
        }
    }
}
