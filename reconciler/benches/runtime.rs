//! Runtime benchmarks; prints medians (`cargo bench -p reconciler --bench runtime`).
//!
//! 1. Routing throughput into `inbound.db`: the real router (`Router::route_batch`) on a real
//!    central DB and real session DBs, fan-out 1 (one session) and 3 (three sessions), and
//!    100 chats × 1 agent (many sessions).
//! 2. With Docker (skipped with a note when no daemon answers): the real `nanoclaw run`, a raw
//!    CLI-socket client, real containers with the mock provider: warm round trip (median, p95),
//!    cold round trip (first message of a new session: container start included), and the
//!    host's RSS while idle with 10 sessions.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::print_stderr)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reconciler::channels::cli_protocol::{self, ClientLine, Hello, HostLine, Message};
use reconciler::channels::cli_socket::CliSocket;
use reconciler::channels::{Adapters, Envelope, InboundEvent, InboundMessage};
use reconciler::paths::Paths;
use reconciler::runtime::router::Router;

fn main() {
    println!("# nanoclaw runtime benchmarks");
    routing(1, 1, 10_000);
    routing(1, 3, 6_000);
    routing(100, 1, 10_000);
    if docker_answers() {
        round_trips();
    } else {
        println!("round trips: skipped (no Docker daemon answers `docker info`)");
    }
}

/// Seeds `chats` CLI chats, each wired to `fan_out` agents.
fn seed(paths: &Paths, chats: usize, fan_out: usize) {
    let conn = reconciler::db::open(&paths.db()).unwrap();
    for agent in 0..fan_out {
        conn.execute(
            "INSERT INTO agent_groups (id, name, folder, created_at) VALUES (?1, ?1, ?1, 't')",
            [format!("a{agent}")],
        )
        .unwrap();
    }
    for chat in 0..chats {
        conn.execute(
            "INSERT INTO messaging_groups (id, channel_type, platform_id, unknown_sender_policy, created_at)
             VALUES (?1, 'cli', ?1, 'public', 't')",
            [format!("c{chat}")],
        )
        .unwrap();
        for agent in 0..fan_out {
            conn.execute(
                "INSERT INTO messaging_group_agents (id, messaging_group_id, agent_group_id, engage_mode, engage_pattern, created_at)
                 VALUES (?1 || '/' || ?2, ?1, ?2, 'pattern', '.', 't')",
                [format!("c{chat}"), format!("a{agent}")],
            )
            .unwrap();
        }
    }
}

fn routing(chats: usize, fan_out: usize, messages: usize) {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path());
    paths.ensure().unwrap();
    seed(&paths, chats, fan_out);
    let mut adapters = Adapters::default();
    adapters.register(std::sync::Arc::new(CliSocket::new()));
    let (wake_tx, _wake_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut router = Router::new(paths.clone(), adapters, wake_tx).unwrap();
    let event = |n: usize| InboundEvent {
        channel_type: "cli".into(),
        platform_id: format!("c{}", n % chats),
        thread_id: None,
        message: InboundMessage {
            id: format!("m{n}"),
            kind: "chat".into(),
            content: format!(r#"{{"text":"message {n}","sender":"cli","senderId":"cli:local"}}"#),
            timestamp: "2026-01-01T00:00:00.000Z".into(),
            is_mention: false,
            is_group: Some(false),
        },
        reply_to: None,
    };
    // Warm-up creates the sessions.
    let mut batch: Vec<Envelope> = (0..chats).map(|n| Envelope::new(event(n))).collect();
    router.route_batch(&mut batch);
    let mut rates = Vec::new();
    for round in 0..5 {
        let start = Instant::now();
        let mut sent = 0;
        while sent < messages {
            let size = reconciler::runtime::router::BATCH.min(messages - sent);
            let mut batch: Vec<Envelope> = (0..size)
                .map(|i| Envelope::new(event(chats + round * messages + sent + i)))
                .collect();
            router.route_batch(&mut batch);
            sent += size;
        }
        rates.push(messages as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    let rows = (messages * fan_out) as f64;
    println!(
        "routing into inbound.db: {chats} chat(s) × fan-out {fan_out}: median {:.0} msg/s ({:.0} rows/s), batches of {}",
        rates[2],
        rates[2] * rows / messages as f64,
        reconciler::runtime::router::BATCH
    );
}

fn docker_answers() -> bool {
    Command::new("docker")
        .args(["info"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

const BIN: &str = env!("CARGO_BIN_EXE_nanoclaw");

fn round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let mut yaml = String::from("kind: agent\nname: bench\nprovider: mock\n");
    for chat in 0..12 {
        yaml.push_str(&format!(
            "---\nkind: channel\nname: c{chat}\nchannel_type: cli\nplatform_id: c{chat}\nunknown_sender_policy: public\n\
             wirings:\n  - {{ agent: bench, engage_mode: pattern, engage_pattern: \".\" }}\n"
        ));
    }
    std::fs::write(manifests.join("bench.yaml"), yaml).unwrap();
    // The images the bench's agents need (mock provider: the minimal image).
    let built = Command::new(BIN)
        .args(["image", "build"])
        .arg(&manifests)
        .status()
        .unwrap();
    assert!(built.success(), "image build failed");
    let log = std::fs::File::create(dir.path().join("run.log")).unwrap();
    let child = Command::new(BIN)
        .arg("--data")
        .arg(&data)
        .args(["run", "--max-containers", "16"])
        .arg(&manifests)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    // Stops the runtime (and so its containers) even when a measurement panics.
    let runtime = Stopper(child);
    let socket = data.join("cli.sock");
    let deadline = Instant::now() + Duration::from_secs(60);
    while UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "runtime did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Cold: the first message of each new chat starts a session and its container.
    let mut cold = Vec::new();
    for chat in 0..5 {
        let mut client = Client::connect(&socket, &format!("c{chat}"));
        cold.push(client.round_trip("cold"));
    }
    // Warm: the container of c0 is running.
    let mut client = Client::connect(&socket, "c0");
    let mut warm: Vec<Duration> = (0..100).map(|_| client.round_trip("warm")).collect();
    warm.sort();
    cold.sort();
    println!(
        "warm round trip (chat → container → chat): median {:.1} ms, p95 {:.1} ms (n={})",
        ms(warm[warm.len() / 2]),
        ms(warm[warm.len() * 95 / 100]),
        warm.len()
    );
    println!(
        "cold round trip (new session, container start included): median {:.0} ms (n={})",
        ms(cold[cold.len() / 2]),
        cold.len()
    );
    let bare = bare_docker_run();
    if let Some(bare) = bare {
        println!(
            "  for scale: bare `docker run --rm` of the agent image: {:.0} ms",
            ms(bare)
        );
    }
    // RSS with 10 sessions, idle.
    for chat in 5..10 {
        let mut client = Client::connect(&socket, &format!("c{chat}"));
        client.round_trip("rss");
    }
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "host RSS, idle, 10 sessions: {:.1} MB",
        rss_mb(runtime.0.id())
    );
}

/// Sends SIGTERM to the child on drop and waits for it.
struct Stopper(std::process::Child);

impl Drop for Stopper {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn bare_docker_run() -> Option<Duration> {
    // The runner exits at once on an unknown flag: this times container create + start + exit.
    let start = Instant::now();
    Command::new("docker")
        .args(["run", "--rm", "nanoclaw-agent:latest", "--no-such-flag"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    Some(start.elapsed())
}

/// A client of the CLI socket that reads one chat and acknowledges each reply it waits for.
struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    n: usize,
}

impl Client {
    fn connect(socket: &Path, platform_id: &str) -> Client {
        let stream = UnixStream::connect(socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let writer = stream.try_clone().unwrap();
        let mut client = Client {
            reader: BufReader::new(stream),
            writer,
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

    fn round_trip(&mut self, label: &str) -> Duration {
        self.n += 1;
        let id = format!("{label}-{}-{}", std::process::id(), self.n);
        let start = Instant::now();
        self.send(&ClientLine::Message(Message {
            text: format!("ping {id}"),
            id: Some(id.clone()),
            platform_id: None,
        }));
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
                        .is_some_and(|to| to.starts_with(&id)) =>
                {
                    let elapsed = start.elapsed();
                    self.send(&ClientLine::Ack { ack: reply.id });
                    return elapsed;
                }
                _ => {}
            }
        }
    }
}
