//! Runtime benchmarks; prints medians (`cargo bench -p reconciler --bench runtime`).
//!
//! 1. Routing throughput into `inbound.db`: the real router (`Router::route_batch`) on a real
//!    central DB and real session DBs, fan-out 1 (one session) and 3 (three sessions), and
//!    100 chats × 1 agent (many sessions).
//! 2. With Docker (skipped with a note when no daemon answers): the real `nanoclaw run`, a raw
//!    CLI-socket client, real containers with the mock provider: warm round trip (median, p95),
//!    cold round trip (first message of a new session: container start included), and the
//!    host's RSS while idle with 10 sessions.
//! 3. Idle CPU: CPU time the `nanoclaw run` process uses over 30 s with 10 and 100 idle
//!    sessions (no containers), and with 10 sessions whose containers run idle.
//! 4. More chats than containers: 20 chats each sending a burst of 50 messages at once, at the
//!    default `--max-containers 8`: how many are answered, and the latency of each message (p50,
//!    p95, max).
//! 5. File save → a fresh container answering with the new configuration: `nanoclaw run
//!    --watch`, a chat whose container runs; ten saves, each changing the agent's model, each
//!    timed from the write until a `!config` reply reports the new model (the watcher's quiet
//!    period, the apply, the executor noticing the generation, the old container's safe stop
//!    and a fresh container's start are all inside).
//!
//! Pass part names to run only those: `cargo bench -p reconciler --bench runtime -- idle chats`
//! (parts: `routing`, `round-trips`, `idle`, `chats`, `config`).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::print_stderr)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reconciler::channels::cli_protocol::{self, ClientLine, Hello, HostLine, Message};
use reconciler::channels::cli_socket::CliSocket;
use reconciler::channels::{Adapters, Content, Envelope, InboundEvent, InboundMessage};
use reconciler::paths::Paths;
use reconciler::runtime::outbox::Outboxes;
use reconciler::runtime::router::Router;
use reconciler::runtime::waker::{WAKES, Wakes};
use reconciler::runtime::work::Inbox;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn main() {
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let wanted = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    println!("# nanoclaw runtime benchmarks");
    if wanted("routing") {
        routing(1, 1, 10_000);
        routing(1, 3, 6_000);
        routing(100, 1, 10_000);
    }
    let docker = docker_answers();
    if !docker {
        println!("round trips, idle CPU, chats: skipped (no Docker daemon answers `docker info`)");
        return;
    }
    // The image the mock-provider agents of every part below need.
    let built = Command::new(BIN)
        .args(["image", "build", "--recipe", "minimal"])
        .status()
        .unwrap();
    assert!(built.success(), "image build failed");
    if wanted("round-trips") {
        round_trips();
    }
    if wanted("idle") {
        idle_cpu();
    }
    if wanted("chats") {
        more_chats_than_containers(20, 50, 8);
    }
    if wanted("config") {
        save_to_fresh_answer(10);
    }
}

/// File save → a fresh container answering with the new model, `saves` times.
fn save_to_fresh_answer(saves: usize) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let manifests = chat_manifests(dir.path(), 1);
    let file = manifests.join("bench.yaml");
    let original = std::fs::read_to_string(&file).unwrap();
    let with_model = |model: &str| {
        original.replacen(
            "provider: mock\n",
            &format!("provider: mock\nmodel: {model}\n"),
            1,
        )
    };
    std::fs::write(&file, with_model("m0")).unwrap();
    let _runtime = start_runtime(&data, &manifests, &["--watch"]);
    let socket = data.join("cli.sock");
    let mut client = Client::connect(&socket, "c0");
    assert_eq!(client.model(), "m0");
    let mut times = Vec::new();
    for n_save in 1..=saves {
        let model = format!("m{n_save}");
        let started = Instant::now();
        std::fs::write(&file, with_model(&model)).unwrap();
        while client.model() != model {
            assert!(started.elapsed() < Duration::from_secs(60), "timed out");
        }
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "file save → a fresh container answering with the new configuration: median {:.0} ms, min {:.0} ms, max {:.0} ms ({saves} saves)",
        ms(times[saves / 2]),
        ms(times[0]),
        ms(times[saves - 1])
    );
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
    adapters.register(std::sync::Arc::new(CliSocket::new(paths.cli_socket())));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outboxes = {
        let _entered = runtime.enter();
        Outboxes::start(
            adapters,
            Inbox::new(),
            &TaskTracker::new(),
            CancellationToken::new(),
        )
    };
    let mut router = Router::new(paths.clone(), outboxes, Wakes::new(WAKES)).unwrap();
    let event = |n: usize| InboundEvent {
        channel_type: "cli".into(),
        platform_id: format!("c{}", n % chats),
        thread_id: None,
        message: InboundMessage {
            id: format!("m{n}"),
            kind: "chat".into(),
            content: Content {
                text: Some(format!("message {n}")),
                sender: Some("cli".into()),
                sender_id: Some("cli:local".into()),
                ..Content::default()
            },
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

/// Manifests for one `bench` agent (mock provider) wired to CLI chats `c0`…`c{chats-1}`.
fn chat_manifests(dir: &Path, chats: usize) -> PathBuf {
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let mut yaml = String::from("kind: agent\nname: bench\nprovider: mock\n");
    for chat in 0..chats {
        yaml.push_str(&format!(
            "---\nkind: channel\nname: c{chat}\nchannel_type: cli\nplatform_id: c{chat}\nunknown_sender_policy: public\n\
             wirings:\n  - {{ agent: bench, engage_mode: pattern, engage_pattern: \".\" }}\n"
        ));
    }
    std::fs::write(manifests.join("bench.yaml"), yaml).unwrap();
    manifests
}

/// Starts `nanoclaw run` on `data` and waits for its socket; stopped on drop.
fn start_runtime(data: &Path, manifests: &Path, extra: &[&str]) -> Stopper {
    let log = std::fs::File::create(data.with_extension("log")).unwrap();
    let child = Command::new(BIN)
        .arg("--data")
        .arg(data)
        .arg("run")
        .args(extra)
        .arg(manifests)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let runtime = Stopper(child);
    let socket = data.join("cli.sock");
    let deadline = Instant::now() + Duration::from_secs(120);
    while UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "runtime did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    runtime
}

/// CPU time (user + system) a process has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the `(comm)`, which may contain spaces: utime and stime are 14 and 15.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let per_second: u64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100);
    Duration::from_millis(ticks * 1000 / per_second)
}

/// Idle CPU over 30 s: 10 and 100 sessions without containers, then 10 with containers.
fn idle_cpu() {
    for sessions in [10, 100] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let manifests = chat_manifests(dir.path(), sessions);
        // Apply, then give every chat an idle session (as after its container was stopped).
        let applied = Command::new(BIN)
            .arg("--data")
            .arg(&data)
            .args(["apply", "--yes"])
            .arg(&manifests)
            .output()
            .unwrap();
        assert!(applied.status.success(), "apply failed");
        let paths = Paths::new(&data);
        let conn = reconciler::db::open(&paths.db()).unwrap();
        for chat in 0..sessions {
            let chat_id: String = conn
                .query_row(
                    "SELECT id FROM messaging_groups WHERE platform_id = ?1",
                    [format!("c{chat}")],
                    |row| row.get(0),
                )
                .unwrap();
            let session =
                reconciler::db::sessions::create(&conn, "bench", Some(&chat_id), None).unwrap();
            agent_runner::session_db::create(&paths.session("bench", &session.id)).unwrap();
        }
        drop(conn);
        let runtime = start_runtime(&data, &manifests, &[]);
        report_idle(
            &runtime,
            &format!("{sessions} idle sessions, no containers"),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let manifests = chat_manifests(dir.path(), 10);
    let runtime = start_runtime(&data, &manifests, &["--max-containers", "10"]);
    let socket = data.join("cli.sock");
    for chat in 0..10 {
        Client::connect(&socket, &format!("c{chat}")).round_trip("idle");
    }
    report_idle(&runtime, "10 sessions with idle containers");
}

/// Prints the CPU used over two 30 s windows: from 3 s after start (steady), and the next one,
/// which holds the once-a-minute sweep and full delivery pass (at 60 s).
fn report_idle(runtime: &Stopper, what: &str) {
    const WINDOW: Duration = Duration::from_secs(30);
    std::thread::sleep(Duration::from_secs(3));
    let mut shares = Vec::new();
    for _ in 0..2 {
        let before = cpu_time(runtime.0.id());
        std::thread::sleep(WINDOW);
        let used = cpu_time(runtime.0.id()) - before;
        shares.push(format!(
            "{:.2} s = {:.2}%",
            used.as_secs_f64(),
            100.0 * used.as_secs_f64() / WINDOW.as_secs_f64()
        ));
    }
    println!(
        "idle CPU, {what}: over 30 s {} of a core; the next 30 s (minute sweep and full pass included) {}",
        shares[0], shares[1]
    );
}

/// `chats` CLI chats each sending `messages` messages at once, at `--max-containers limit`.
fn more_chats_than_containers(chats: usize, messages: usize, limit: usize) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let manifests = chat_manifests(dir.path(), chats);
    let runtime = start_runtime(&data, &manifests, &["--max-containers", &limit.to_string()]);
    let socket = data.join("cli.sock");
    let start = Instant::now();
    let threads: Vec<_> = (0..chats)
        .map(|chat| {
            let socket = socket.clone();
            std::thread::spawn(move || chat_burst(&socket, &format!("c{chat}"), messages))
        })
        .collect();
    let mut latencies: Vec<Duration> = Vec::new();
    for thread in threads {
        latencies.extend(thread.join().unwrap());
    }
    let wall = start.elapsed();
    latencies.sort();
    let answered = latencies.len();
    let pick = |q: usize| latencies[(answered * q / 100).min(answered - 1)];
    println!(
        "{chats} chats × {messages} messages, --max-containers {limit}: {answered}/{} answered in {:.1} s; latency p50 {:.2} s, p95 {:.2} s, max {:.2} s",
        chats * messages,
        wall.as_secs_f64(),
        pick(50).as_secs_f64(),
        pick(95).as_secs_f64(),
        latencies[answered - 1].as_secs_f64()
    );
    drop(runtime);
}

/// One chat: writes `messages` messages at once (a burst; the runtime accepts them as it stores
/// them) and waits for every answer (at most 10 minutes); returns each message's latency.
fn chat_burst(socket: &Path, platform_id: &str, messages: usize) -> Vec<Duration> {
    let stream = UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(600)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    writeln!(writer, r#"{{"hello":{{"platform_id":"{platform_id}"}}}}"#).unwrap();
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut latencies = Vec::new();
    for n in 0..messages {
        let id = format!("{platform_id}-{n}");
        sent.insert(id.clone(), Instant::now());
        writeln!(writer, r#"{{"text":"{id}","id":"{id}"}}"#).unwrap();
    }
    while latencies.len() < messages {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(read) if read > 0 => record_answers(&line, &sent, &mut latencies),
            _ => break,
        }
    }
    latencies
}

/// Adds the latency of every message a reply line answers (one `echo: <id>` line each).
fn record_answers(line: &str, sent: &HashMap<String, Instant>, latencies: &mut Vec<Duration>) {
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    if let Some(text) = value.get("text").and_then(|t| t.as_str())
        && value.get("in_reply_to").is_some_and(|to| !to.is_null())
    {
        for echoed in text.lines() {
            if let Some(at) = echoed.strip_prefix("echo: ").and_then(|id| sent.get(id)) {
                latencies.push(at.elapsed());
            }
        }
    }
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

    /// The model the agent's `!config` reply reports.
    fn model(&mut self) -> String {
        let (_, text) = self.ask("config", "!config");
        let config: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        config["model"].as_str().unwrap_or_default().to_string()
    }

    fn round_trip(&mut self, label: &str) -> Duration {
        let id = format!("{label}-{}-{}", std::process::id(), self.n + 1);
        self.ask(label, &format!("ping {id}")).0
    }

    /// Sends `text`; returns the time to its reply and the reply's text.
    fn ask(&mut self, label: &str, text: &str) -> (Duration, String) {
        self.n += 1;
        let id = format!("{label}-{}-{}", std::process::id(), self.n);
        let start = Instant::now();
        self.send(&ClientLine::Message(Message {
            text: text.to_string(),
            id: Some(id.clone()),
            platform_id: None,
            mention: None,
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
                    return (elapsed, reply.text);
                }
                _ => {}
            }
        }
    }
}
