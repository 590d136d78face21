//! Telegram benchmarks (`cargo bench -p reconciler --bench telegram`); needs Docker.
//!
//! The real `nanoclaw run` with the Telegram channel pointed at the fake Bot API
//! (`tests/support/fake_telegram.rs`, included below) on loopback, one mock agent in real
//! containers, 20 DM chats:
//! 1. warm round trip: a DM in → `getUpdates` → router → container → delivery → `sendMessage`
//!    out, the container already running (median, p95);
//! 2. sustained throughput: 20 chats each sending a burst of 25 messages at once; messages
//!    per second from the first message in to the last reply out.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::print_stderr)]

#[path = "../../tests/support/fake_telegram.rs"]
mod fake_telegram;

use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fake_telegram::{Fake, Person, TOKEN};

const BIN: &str = env!("CARGO_BIN_EXE_nanoclaw");
const CHATS: i64 = 20;
const FIRST_CHAT: i64 = 1_000_000;

fn main() {
    let docker = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    println!("# nanoclaw Telegram benchmarks");
    if !docker {
        println!("skipped: no Docker daemon answers `docker info`");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let mut yaml = String::from("kind: agent\nname: bench\nprovider: mock\n");
    for chat in 0..CHATS {
        yaml.push_str(&format!(
            "---\nkind: channel\nname: tg{chat}\nchannel_type: telegram\nplatform_id: \"{}\"\n\
             unknown_sender_policy: public\n\
             wirings:\n  - {{ agent: bench, engage_mode: pattern, engage_pattern: \".\" }}\n",
            FIRST_CHAT + chat
        ));
    }
    std::fs::write(manifests.join("bench.yaml"), yaml).unwrap();
    let built = Command::new(BIN)
        .args(["image", "build"])
        .arg(&manifests)
        .status()
        .unwrap();
    assert!(built.success(), "image build failed");
    let fake = Fake::start();
    let log = std::fs::File::create(dir.path().join("run.log")).unwrap();
    let child = Command::new(BIN)
        .arg("--data")
        .arg(&data)
        .args(["run", "--max-containers", "20"])
        .arg(&manifests)
        .env("NANOCLAW_TELEGRAM_API_URL", fake.url())
        .env("TELEGRAM_BOT_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let _runtime = Stopper(child);
    let deadline = Instant::now() + Duration::from_secs(120);
    while UnixStream::connect(data.join("cli.sock")).is_err() {
        assert!(Instant::now() < deadline, "runtime did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let people: Vec<Person> = (0..CHATS)
        .map(|chat| Person::new(FIRST_CHAT + chat, &format!("p{chat}"), None))
        .collect();

    // Warm every chat's container once.
    for person in &people {
        fake.dm(person, "warm up");
    }
    for person in &people {
        wait_for(&fake, person.id, 1);
    }

    let mut warm = Vec::new();
    for round in 0..100 {
        let person = &people[0];
        let before = fake.texts(person.id).len();
        let start = Instant::now();
        fake.dm(person, &format!("round {round}"));
        wait_for(&fake, person.id, before + 1);
        warm.push(start.elapsed());
    }
    warm.sort();
    println!(
        "warm round trip (Telegram fake → container → Telegram fake): median {:.1} ms, p95 {:.1} ms (n={})",
        ms(warm[warm.len() / 2]),
        ms(warm[warm.len() * 95 / 100]),
        warm.len()
    );

    let burst = 25;
    let before: Vec<usize> = people
        .iter()
        .map(|person| fake.texts(person.id).len())
        .collect();
    let start = Instant::now();
    for message in 0..burst {
        for person in &people {
            fake.dm(person, &format!("burst {message}"));
        }
    }
    let answered = |person: &Person, before: usize| {
        fake.texts(person.id)[before..]
            .iter()
            .flat_map(|text| text.lines())
            .filter(|line| line.starts_with("echo: burst"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    while people
        .iter()
        .zip(&before)
        .any(|(person, before)| answered(person, *before) < burst)
    {
        assert!(
            Instant::now() < deadline,
            "the burst was not answered in 300 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = start.elapsed();
    let total = burst * people.len();
    println!(
        "sustained: {total} messages over {} chats answered in {:.2} s: {:.0} messages/s (replies batch several messages of a chat)",
        people.len(),
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
}

fn wait_for(fake: &Fake, chat: i64, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while fake.texts(chat).len() < count {
        assert!(Instant::now() < deadline, "no reply in chat {chat}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Stops the runtime (and so its containers) even when a measurement panics.
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
