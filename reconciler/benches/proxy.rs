//! Credential-path benchmarks; prints medians (`cargo bench -p reconciler --bench proxy`).
//!
//! The fake Anthropic API (`tests/support/fake_anthropic.rs`, included below) answers a short
//! streamed reply; the same request is timed three ways, each on a fresh connection as Claude
//! Code's first request of a turn would be:
//!
//! 1. direct: TCP to the fake;
//! 2. proxy: the Unix socket of `credentials::Proxy`, which checks the placeholder, reads the
//!    stored credential and opens its own connection upstream;
//! 3. forwarder + proxy: loopback TCP to `agent_runner::forward::Forwarder`, as inside a
//!    container.
//!
//! Also the time to the first event through forwarder + proxy, and throughput with 8 clients
//! at once. Everything stays on loopback and Unix sockets.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::print_stderr)]

#[path = "../../tests/support/fake_anthropic.rs"]
mod fake_anthropic;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use fake_anthropic::{FakeAnthropic, Reply, Script};
use reconciler::credentials::{
    Credential, Kind, Placeholders, Proxy, ProxySettings, Secret, Store, Upstream,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const KEY: &str = "sk-ant-api03-bench";
const ROUNDS: usize = 300;

fn main() {
    println!("# nanoclaw credential proxy benchmarks ({ROUNDS} requests each, fresh connections)");
    let fake = FakeAnthropic::start(
        Script::new()
            .require_key(KEY)
            .fallback(Reply::text("A short streamed answer of a few words.")),
    );
    let data = tempfile::tempdir().unwrap();
    Store::new(data.path())
        .save(&Credential {
            kind: Kind::ApiKey,
            secret: Secret::new(KEY),
        })
        .unwrap();
    let settings = ProxySettings::new(data.path(), Upstream::parse(&fake.url()).unwrap(), None);
    let socket = settings.socket.clone();
    let placeholders = Placeholders::new();
    let placeholder = placeholders.register("bench").unwrap().key;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    {
        let _guard = runtime.enter();
        let proxy = Proxy::bind(settings, placeholders).unwrap();
        tasks.spawn(proxy.run(stop.clone()));
    }
    let forwarder = agent_runner::forward::Forwarder::start(&socket, 0).unwrap();
    let body = serde_json::json!({
        "model": "claude-bench", "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": "hello"}],
    })
    .to_string();
    let direct = request(KEY, &body);
    let proxied = request(placeholder.expose(), &body);

    let time = |label: &str, send: &dyn Fn() -> (Duration, Duration)| {
        let (mut total, first): (Vec<Duration>, Vec<Duration>) =
            (0..ROUNDS).map(|_| send()).unzip();
        report(label, &mut total);
        first
    };
    time("direct to the fake (TCP)", &|| {
        exchange(TcpStream::connect(fake.addr()).unwrap(), &direct)
    });
    time("through the proxy (Unix socket)", &|| {
        exchange(UnixStream::connect(&socket).unwrap(), &proxied)
    });
    let mut first = time("forwarder + proxy (as in a container)", &|| {
        exchange(
            TcpStream::connect(("127.0.0.1", forwarder.port())).unwrap(),
            &proxied,
        )
    });
    report("  first event, forwarder + proxy", &mut first);
    concurrent(&socket, &proxied, 8);

    stop.cancel();
    tasks.close();
    runtime.block_on(tasks.wait());
}

fn request(key: &str, body: &str) -> String {
    format!(
        "POST /v1/messages?beta=true HTTP/1.1\r\nhost: bench\r\nx-api-key: {key}\r\nanthropic-version: 2023-06-01\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Sends one request and reads to the end: (total time, time to the first event).
fn exchange<S: Read + Write>(mut stream: S, request: &str) -> (Duration, Duration) {
    let start = Instant::now();
    stream.write_all(request.as_bytes()).unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 8192];
    let mut first = None;
    loop {
        let n = stream.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buffer[..n]);
        if first.is_none() && seen.windows(13).any(|w| w == b"message_start") {
            first = Some(start.elapsed());
        }
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("message_stop"), "{text}");
    (start.elapsed(), first.unwrap_or_default())
}

fn concurrent(socket: &Path, request: &str, clients: usize) {
    let start = Instant::now();
    let per_client = ROUNDS / clients;
    std::thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| {
                for _ in 0..per_client {
                    exchange(UnixStream::connect(socket).unwrap(), request);
                }
            });
        }
    });
    let elapsed = start.elapsed();
    let n = per_client * clients;
    println!(
        "{:<40} {:>8.0} requests/s   ({n} requests, {clients} clients, {:.2} s)",
        "through the proxy, concurrent",
        n as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
}

fn report(label: &str, samples: &mut [Duration]) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = samples[samples.len() / 2];
    let p95 = samples[samples.len() * 95 / 100];
    println!(
        "{label:<40} median {:>7.3} ms   p95 {:>7.3} ms   (min {:.3}, max {:.3})",
        ms(median),
        ms(p95),
        ms(samples[0]),
        ms(samples[samples.len() - 1])
    );
}
