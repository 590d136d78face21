//! Confinement probes of the mock provider (`!try <probe>`): the runner itself attempts
//! something an agent must not be able to do to its host, and the reply says what happened.
//! The end-to-end tests send them to a real container and assert that each is refused or
//! contained (docs/agent-runner.md, docs/security.md).
//!
//! Only the mock provider calls this, and only on an explicit `!try`. A probe really acts on
//! the machine it runs on: outside a confined container it mounts, chowns, writes `/`, fills
//! the task table and memory. Never send one to a runner on a host; unit tests only parse.

use std::io;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, RwLock};

/// One attempt an agent might make on its host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Mount a tmpfs (needs `CAP_SYS_ADMIN`).
    Mount,
    /// Give a file to another user (needs `CAP_CHOWN`).
    Chown,
    /// Create a file in `/` (the root filesystem is read-only).
    WriteRoot,
    /// Start threads until the kernel refuses (each is a task under the pids limit).
    ForkBomb,
    /// Allocate and touch memory until the kernel kills the process (the memory limit).
    MemoryHog,
    /// Connect to the Docker socket (never mounted).
    DockerSocket,
    /// The opposite kind: a Messages API request through the credential forwarder
    /// (`forward`), which must work even without a network (`network: none`).
    CredentialProxy,
}

/// Threads the fork bomb stops at when nothing refuses it first.
pub const FORK_BOMB_CAP: usize = 100_000;
/// Memory the hog stops at when nothing kills it first.
pub const MEMORY_HOG_CAP_MIB: usize = 4096;
/// Where the Docker socket usually is.
const DOCKER_SOCKETS: [&str; 2] = ["/var/run/docker.sock", "/run/docker.sock"];
/// Scratch files of the probes (the writable `/tmp`).
const SCRATCH: &str = "/tmp/nanoclaw-probe";

impl Probe {
    pub const ALL: [Probe; 7] = [
        Probe::Mount,
        Probe::Chown,
        Probe::WriteRoot,
        Probe::ForkBomb,
        Probe::MemoryHog,
        Probe::DockerSocket,
        Probe::CredentialProxy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Probe::Mount => "mount",
            Probe::Chown => "chown",
            Probe::WriteRoot => "write-root",
            Probe::ForkBomb => "fork-bomb",
            Probe::MemoryHog => "memory-hog",
            Probe::DockerSocket => "docker-socket",
            Probe::CredentialProxy => "credential-proxy",
        }
    }

    pub fn parse(name: &str) -> Option<Probe> {
        Probe::ALL.into_iter().find(|probe| probe.name() == name)
    }
}

/// The reply to `!try <name>`: `try <probe>: refused: …` when the kernel said no,
/// `try <probe>: contained: …` when a limit stopped it, `try <probe>: NOT CONTAINED: …` when
/// it succeeded (a confinement bug). A probe killed by its limit never replies.
pub fn reply(name: &str) -> String {
    if let Some(path) = name.strip_prefix("write ") {
        return format!("try write: {}", write_file(path.trim()));
    }
    let Some(probe) = Probe::parse(name) else {
        let names: Vec<&str> = Probe::ALL.iter().map(|probe| probe.name()).collect();
        return format!("try: unknown probe `{name}`; probes: {}", names.join(", "));
    };
    tracing::warn!(probe = probe.name(), "running a confinement probe");
    let outcome = match probe {
        Probe::Mount => mount(),
        Probe::Chown => chown(),
        Probe::WriteRoot => write_root(),
        Probe::ForkBomb => fork_bomb(),
        Probe::MemoryHog => memory_hog(),
        Probe::DockerSocket => docker_socket(),
        Probe::CredentialProxy => credential_proxy(),
    };
    format!("try {}: {outcome}", probe.name())
}

/// `!try write <path>`: creates `path` (it must not exist) holding `written by the agent`.
/// Not a confinement probe: tests use it to show which mounts the agent can write.
fn write_file(path: &str) -> String {
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut file| io::Write::write_all(&mut file, b"written by the agent"));
    match created {
        Ok(()) => format!("wrote `{path}`"),
        Err(err) => format!("`{path}`: {}", refused(err)),
    }
}

fn refused(err: impl Into<io::Error>) -> String {
    format!("refused: {}", err.into())
}

fn mount() -> String {
    let target = format!("{SCRATCH}-mount");
    if let Err(err) = std::fs::create_dir_all(&target) {
        return format!("could not prepare `{target}`: {err}");
    }
    let flags = rustix::mount::MountFlags::empty();
    match rustix::mount::mount("nanoclaw-probe", target.as_str(), "tmpfs", flags, None) {
        Ok(()) => format!("NOT CONTAINED: mounted a tmpfs on `{target}`"),
        Err(err) => refused(err),
    }
}

fn chown() -> String {
    let path = format!("{SCRATCH}-chown");
    if let Err(err) = std::fs::write(&path, b"probe") {
        return format!("could not prepare `{path}`: {err}");
    }
    // Another user than ourselves: giving a file away needs CAP_CHOWN.
    let uid = rustix::process::getuid();
    let target = if uid.is_root() { 65534 } else { 0 };
    let owner = rustix::fs::Uid::from_raw(target);
    let group = rustix::fs::Gid::from_raw(target);
    match rustix::fs::chown(path.as_str(), Some(owner), Some(group)) {
        Ok(()) => format!("NOT CONTAINED: `{path}` now belongs to uid {target}"),
        Err(err) => refused(err),
    }
}

fn write_root() -> String {
    let read_only = rustix::fs::statvfs("/")
        .map(|stats| stats.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
        .unwrap_or(false);
    let note = if read_only {
        "; / is mounted read-only"
    } else {
        "; / is writable"
    };
    match std::fs::write("/nanoclaw-probe", b"probe") {
        Ok(()) => format!("NOT CONTAINED: wrote `/nanoclaw-probe`{note}"),
        Err(err) => format!("{}{note}", refused(err)),
    }
}

/// Starts small threads that wait on one gate until a start fails (or [`FORK_BOMB_CAP`]),
/// then opens the gate and joins them all, so the runner carries on afterwards.
fn fork_bomb() -> String {
    let gate = Arc::new(RwLock::new(()));
    let closed = gate
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut threads = Vec::new();
    let mut refusal = None;
    while threads.len() < FORK_BOMB_CAP {
        let gate = Arc::clone(&gate);
        let started = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || drop(gate.read()));
        match started {
            Ok(thread) => threads.push(thread),
            Err(err) => {
                refusal = Some(err);
                break;
            }
        }
    }
    drop(closed);
    let started = threads.len();
    for thread in threads {
        let _ = thread.join();
    }
    match refusal {
        Some(err) => format!("contained: {started} threads started, then: {err}"),
        None => format!("NOT CONTAINED: {started} threads started"),
    }
}

/// Allocates and touches 4 MiB blocks until killed (or [`MEMORY_HOG_CAP_MIB`]).
fn memory_hog() -> String {
    const BLOCK_MIB: usize = 4;
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    while blocks.len() * BLOCK_MIB < MEMORY_HOG_CAP_MIB {
        // Non-zero fill: every page is written, so it is really charged to us.
        blocks.push(vec![0xa5; BLOCK_MIB << 20]);
        std::hint::black_box(&blocks);
    }
    format!(
        "NOT CONTAINED: {} MiB allocated and touched",
        blocks.len() * BLOCK_MIB
    )
}

fn docker_socket() -> String {
    let mut failures = Vec::new();
    for socket in DOCKER_SOCKETS {
        match UnixStream::connect(socket) {
            Ok(_) => return format!("NOT CONTAINED: connected to `{socket}`"),
            Err(err) => failures.push(format!("{socket}: {err}")),
        }
    }
    format!("refused: {}", failures.join("; "))
}

/// `POST /v1/messages` to the forwarder with the container's placeholder key, as Claude Code
/// would: `reached: <status line>; text: <streamed text>` or why not.
fn credential_proxy() -> String {
    use std::io::{Read, Write};
    let port = crate::env::get(crate::env::NANOCLAW_CREDENTIAL_PORT)
        .and_then(|text| text.parse().ok())
        .unwrap_or(crate::forward::DEFAULT_PORT);
    let key = crate::env::get(crate::env::ANTHROPIC_API_KEY).unwrap_or_default();
    let body = r#"{"model":"claude-probe","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"probe"}]}"#;
    let request = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\nx-api-key: {key}\r\nanthropic-version: 2023-06-01\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = match std::net::TcpStream::connect(("127.0.0.1", port)) {
        Ok(stream) => stream,
        Err(err) => return format!("unreachable: 127.0.0.1:{port}: {err}"),
    };
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(30)));
    let mut answer = String::new();
    if let Err(err) = stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.read_to_string(&mut answer))
    {
        return format!("failed: {err}");
    }
    let status = answer.lines().next().unwrap_or("no answer").to_string();
    let text: String = answer
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<serde_json::Value>(data).ok())
        .filter_map(|event| event["delta"]["text"].as_str().map(str::to_string))
        .collect();
    format!("reached: {status}; text: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_parse_by_name_and_unknown_ones_are_listed() {
        for probe in Probe::ALL {
            assert_eq!(Probe::parse(probe.name()), Some(probe));
        }
        assert_eq!(
            reply("rm-rf"),
            "try: unknown probe `rm-rf`; probes: mount, chown, write-root, fork-bomb, memory-hog, docker-socket, credential-proxy"
        );
    }
}
