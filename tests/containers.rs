//! Docker layer against the real daemon: the agent image build (offline), orphan cleanup that
//! spares other installs, the Runner's wake dedup, limit, stop and a message round trip, and the
//! confinement of a running agent container (`assert_confined`, shared with `runtime`).
//!
//! Every test is gated by `support::docker()`, gets its own install slug, and a `DockerGuard`
//! removes that slug's containers on drop (`NANOCLAW_TEST_KEEP=1` keeps them).

use std::process::Command;
use std::time::Duration;

use agent_runner::container_config::ContainerConfig;
use agent_runner::session_db::{self, DestinationRow, NewInbound};
use reconciler::containers::{self, Runner, SpawnSpec, Woken};
use reconciler::credentials::{self, Kind};
use reconciler::paths::Paths;
use reconciler::resources::{Cpus, Memory, Resources};
use reconciler::runtime::layout;
use reconciler::state::Network;

use crate::support::fake_anthropic::{Reply as FakeReply, Script};
use crate::support::proxy::{Harness, REAL_KEY};
use crate::support::{self, DockerGuard};

/// The container.json of the tests' agent `andy`: the mock provider.
fn mock_config() -> String {
    ContainerConfig {
        provider: "mock".into(),
        assistant_name: Some("Andy".into()),
        ..ContainerConfig::default()
    }
    .to_json()
}

/// One temporary install with an agent `andy` whose container.json selects the mock provider.
pub struct Install {
    /// Holds the temp folder until the test ends.
    _root: tempfile::TempDir,
    pub paths: Paths,
}

impl Install {
    pub fn new() -> Install {
        let root = tempfile::Builder::new()
            .prefix("nanoclaw-containers-")
            .tempdir()
            .expect("tempdir");
        let paths = Paths::new(root.path().join("data"));
        Install { _root: root, paths }
    }

    pub fn slug(&self) -> String {
        self.paths.slug()
    }

    /// Lays the session out as the waker does (folders, owners, `inbound.db`), writes the mock
    /// `container.json` and one CLI destination.
    pub fn session(&self, session_id: &str) -> SpawnSpec {
        let session_dir = self.paths.session("andy", session_id);
        layout::prepare(&self.paths, "andy", session_id, &[]).expect("session layout");
        std::fs::write(
            session_db::container_config_path(&session_dir),
            mock_config(),
        )
        .expect("container.json");
        let mut inbound =
            session_db::open_inbound_host(&session_dir.join(session_db::INBOUND_FILE))
                .expect("open inbound");
        let cli = DestinationRow {
            name: "cli".into(),
            kind: "channel".into(),
            channel_type: Some("cli".into()),
            platform_id: Some("cli:local".into()),
            ..DestinationRow::default()
        };
        session_db::write_destinations(&mut inbound, &[cli]).expect("destinations");
        SpawnSpec {
            session_id: session_id.to_string(),
            agent: "andy".into(),
            session_dir,
            group_dir: self.paths.group("andy"),
            image: support::test_image().to_string(),
            system_mounts: Vec::new(),
            extra_mounts: Vec::new(),
            env: Vec::new(),
            config_hash: "test".into(),
            credentials: false,
            resources: Resources::default(),
            network: Network::default(),
        }
    }
}

/// Containers of one session of one install.
fn session_containers(slug: &str, session_id: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}"])
        .args(["--filter", &format!("label=nanoclaw.install={slug}")])
        .args(["--filter", &format!("label=nanoclaw.session={session_id}")])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn image_build_works_offline() {
    let Some(()) = support::docker() else { return };
    let built = support::agent_image();
    assert!(
        built.stderr.contains(" : FROM scratch"),
        "the build's steps are streamed: {}",
        built.stderr
    );
    assert_eq!(built.stdout, format!("built {}\n", built.tag));
    assert!(
        !built.stderr.contains("Pulling"),
        "nothing is pulled: {}",
        built.stderr
    );
    let label = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{index .Config.Labels \"nanoclaw.runner-sha256\"}}",
        ])
        .arg(built.tag)
        .output()
        .expect("docker image inspect");
    let runner = std::fs::read(
        support::repo_root().join("target/x86_64-unknown-linux-musl/release/agent-runner"),
    )
    .expect("the runner the image was built from");
    assert_eq!(
        String::from_utf8_lossy(&label.stdout).trim(),
        reconciler::containers::image::runner_digest(&runner),
        "the image is labelled with its runner's digest (how `run` spots a stale image)"
    );
    let inspect = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{json .Config.Entrypoint}} {{json .Config.Cmd}}",
        ])
        .arg(built.tag)
        .output()
        .expect("docker image inspect");
    assert_eq!(
        String::from_utf8_lossy(&inspect.stdout).trim(),
        r#"["/agent-runner"] ["--workspace","/workspace"]"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_cleanup_spares_other_installs() {
    let Some(()) = support::docker() else { return };
    let image = support::agent_image().tag;
    let ours = Install::new();
    let theirs = Install::new();
    let _ours_guard = DockerGuard::new(&ours.slug());
    let theirs_guard = DockerGuard::new(&theirs.slug());
    for (slug, name) in [(ours.slug(), "a"), (ours.slug(), "b"), (theirs.slug(), "c")] {
        let status = Command::new("docker")
            .args(["create", "--name", &format!("nanoclaw-{slug}-{name}")])
            .args(["--label", &format!("nanoclaw.install={slug}")])
            .arg(image)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("docker create");
        assert!(status.success());
    }
    let docker = containers::connect().await.expect("connect");
    let removed = containers::remove_orphans(&docker, &ours.slug())
        .await
        .expect("remove orphans");
    assert_eq!(removed, 2);
    assert!(DockerGuard::new(&ours.slug()).containers().is_empty());
    assert_eq!(
        theirs_guard.containers(),
        [format!("nanoclaw-{}-c", theirs.slug())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_wake_dedup_five_concurrent_wakes_make_one_container() {
    let Some(()) = support::docker() else { return };
    support::agent_image();
    let install = Install::new();
    let _guard = DockerGuard::new(&install.slug());
    let spec = install.session("s1");
    let docker = containers::connect().await.expect("connect");
    let runner = Runner::new(docker, install.slug(), 4);
    let wakes = (0..5).map(|_| runner.wake(spec.clone()));
    let answers = futures_util::future::join_all(wakes).await;
    assert_eq!(answers, vec![Woken::Running; 5]);
    assert_eq!(
        session_containers(&install.slug(), "s1"),
        [format!("nanoclaw-{}-s1", install.slug())]
    );
    assert!(runner.is_running("s1"));
    assert_eq!(
        runner.wake(spec).await,
        Woken::Running,
        "a running session wakes at once"
    );
    assert_eq!(session_containers(&install.slug(), "s1").len(), 1);
    runner.stop_all().await;
    assert!(runner.running().is_empty());
    assert!(
        session_containers(&install.slug(), "s1").is_empty(),
        "stop_all removes it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_refuses_a_second_session() {
    let Some(()) = support::docker() else { return };
    support::agent_image();
    let install = Install::new();
    let guard = DockerGuard::new(&install.slug());
    let docker = containers::connect().await.expect("connect");
    let runner = Runner::new(docker, install.slug(), 1);
    assert_eq!(runner.wake(install.session("s1")).await, Woken::Running);
    assert_eq!(runner.wake(install.session("s2")).await, Woken::Full);
    assert_eq!(runner.running(), ["s1"]);
    assert_eq!(
        guard.containers(),
        [format!("nanoclaw-{}-s1", install.slug())]
    );
    runner.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_removes_the_container_and_reports_the_exit() {
    let Some(()) = support::docker() else { return };
    support::agent_image();
    let install = Install::new();
    let guard = DockerGuard::new(&install.slug());
    let docker = containers::connect().await.expect("connect");
    let runner = Runner::new(docker, install.slug(), 2);
    let mut exits = runner.exits();
    assert_eq!(runner.wake(install.session("s1")).await, Woken::Running);
    assert_eq!(guard.containers().len(), 1);
    runner.stop("s1", "test").await;
    assert!(!runner.is_running("s1"));
    assert!(guard.containers().is_empty());
    let exited = tokio::time::timeout(Duration::from_secs(30), exits.recv())
        .await
        .expect("an exit event within 30 s")
        .expect("exit channel open");
    assert_eq!(exited.session_id, "s1");
    assert_eq!(
        exited.requested.as_deref(),
        Some("test"),
        "a stop we asked for"
    );
    assert!(!exited.is_failure());
    assert!(
        exited.tail.is_empty(),
        "no output is kept for a requested stop"
    );
    runner.stop("s1", "again: a no-op").await;
}

/// Writes one triggering chat message `m1` ("hello" from Ann on the CLI chat) into the
/// session's inbound.db.
pub fn send_hello(session_dir: &std::path::Path) {
    let inbound_path = session_dir.join(session_db::INBOUND_FILE);
    let mut inbound = session_db::open_inbound_host(&inbound_path).expect("open inbound");
    let message = NewInbound {
        id: "m1".into(),
        kind: "chat".into(),
        timestamp: "2026-06-15T12:00:00Z".into(),
        channel_type: Some("cli".into()),
        platform_id: Some("cli:local".into()),
        content: serde_json::json!({"sender": "Ann", "text": "hello"}).to_string(),
        trigger: true,
        ..NewInbound::default()
    };
    session_db::insert_inbound(&mut inbound, &[message]).expect("insert");
}

/// Waits (up to 60 s) until the container wrote a reply to deliver; returns the due rows.
pub async fn wait_for_replies(session_dir: &std::path::Path) -> Vec<session_db::OutboundRow> {
    let inbound_path = session_dir.join(session_db::INBOUND_FILE);
    let outbound_path = session_db::outbound_path(session_dir);
    tokio::task::spawn_blocking(move || {
        let mut replies = Vec::new();
        support::wait_until(
            "a reply row in outbound.db",
            Duration::from_secs(60),
            || {
                let inbound = session_db::open_inbound_host(&inbound_path).expect("open inbound");
                // The runner creates outbound.db as it starts.
                let Ok(outbound) = session_db::open_outbound_host(&outbound_path) else {
                    return false;
                };
                // The runner creates the file before its tables: a read in between fails.
                let Ok(due) = session_db::due_outbound(&inbound, &outbound, 0) else {
                    return false;
                };
                replies = due
                    .into_iter()
                    .map(|due| match due {
                        session_db::Due::Row(row) => row,
                        bad => panic!("a bad row: {bad:?}"),
                    })
                    .collect();
                !replies.is_empty()
            },
        );
        replies
    })
    .await
    .expect("waiter")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn woken_container_answers_a_message() {
    let Some(()) = support::docker() else { return };
    support::agent_image();
    let install = Install::new();
    let _guard = DockerGuard::new(&install.slug());
    let spec = install.session("s1");
    let session_dir = spec.session_dir.clone();
    // Never root: as root the container runs as 10001:10001 and can still write `outbound/`
    // (the layout gave it to that user), through a read-only /workspace.
    let (uid, gid) = containers::container_user();
    assert_ne!(uid, 0);
    let owner = format!("{uid}:{gid}");
    send_hello(&session_dir);
    let docker = containers::connect().await.expect("connect");
    let runner = Runner::new(docker, install.slug(), 2);
    assert_eq!(runner.wake(spec).await, Woken::Running);
    let replies = wait_for_replies(&session_dir).await;
    assert_eq!(replies[0].in_reply_to.as_deref(), Some("m1"));
    assert!(
        replies[0].content.contains("echo: hello"),
        "{}",
        replies[0].content
    );
    assert_eq!(replies[0].channel_type.as_deref(), Some("cli"));
    let inspect = Command::new("docker")
        .args(["inspect", "--format", "{{.Config.User}}"])
        .arg(format!("nanoclaw-{}-s1", install.slug()))
        .output()
        .expect("docker inspect");
    assert_eq!(String::from_utf8_lossy(&inspect.stdout).trim(), owner);
    runner.stop_all().await;
}

/// A wake that cannot start a container answers why. (The stale heartbeat it also cleared is now
/// cleared by the runtime's session preparation, `runtime::session`'s tests: `containers`
/// touches no session file.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_wake_is_false_with_its_reason() {
    let Some(()) = support::docker() else { return };
    let install = Install::new();
    let guard = DockerGuard::new(&install.slug());
    let mut spec = install.session("s1");
    spec.image = "nanoclaw-agent:no-such-tag".into();
    let docker = containers::connect().await.expect("connect");
    let runner = Runner::new(docker, install.slug(), 2);
    let Woken::Failed(reason) = runner.wake(spec.clone()).await else {
        panic!("a wake with a missing image fails");
    };
    assert!(
        reason.contains("no-such-tag"),
        "the reason names the image: {reason}"
    );
    assert_ne!(Woken::Running, runner.wake(spec).await);
    assert!(!runner.is_running("s1"));
    assert!(guard.containers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_exits_on_its_own_is_reported_with_its_code() {
    let Some(()) = support::docker() else { return };
    support::agent_image();
    let install = Install::new();
    let guard = DockerGuard::new(&install.slug());
    // An unknown provider makes the runner fail right after start.
    let spec = install.session("s1");
    std::fs::write(
        session_db::container_config_path(&spec.session_dir),
        r#"{"provider": "no-such-provider"}"#,
    )
    .expect("container.json");
    let docker = containers::connect().await.expect("connect");
    let runner = Runner::new(docker, install.slug(), 2);
    let mut exits = runner.exits();
    assert_eq!(runner.wake(spec).await, Woken::Running);
    let exited = tokio::time::timeout(Duration::from_secs(30), exits.recv())
        .await
        .expect("an exit event within 30 s")
        .expect("exit channel open");
    assert_eq!(exited.session_id, "s1");
    assert_ne!(exited.exit_code, 0, "a failing runner exits non-zero");
    assert_ne!(exited.exit_code, -1, "the real exit code is read");
    // Issue 8 point 3: the output is read before the container is removed.
    assert!(exited.is_failure(), "{exited:?}");
    assert_eq!(exited.agent, "andy");
    assert!(
        exited
            .tail
            .iter()
            .any(|line| line.contains("Unknown provider: no-such-provider")),
        "the runner's last lines say why: {:?}",
        exited.tail
    );
    assert!(!runner.is_running("s1"));
    assert!(
        guard.containers().is_empty(),
        "an exited container is removed"
    );
}

#[test]
fn image_build_with_a_missing_runner_says_so() {
    let env = support::Env::new("image-missing-runner");
    let run = env.run(&["image", "build", "--runner", "/nonexistent/agent-runner"]);
    assert_eq!(run.code, 1);
    expect_test::expect![[r#"
        error: runner `/nonexistent/agent-runner` does not exist
    "#]]
    .assert_eq(&run.stderr);
}

/// `docker inspect` of one container as JSON.
pub fn inspect(name: &str) -> serde_json::Value {
    let output = Command::new("docker")
        .args(["inspect", name])
        .output()
        .expect("docker inspect");
    assert!(
        output.status.success(),
        "docker inspect {name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).expect("inspect JSON");
    list[0].clone()
}

/// Asserts every confinement item of docs/containers.md ("Confinement") on an inspected
/// container with the given limits. Shared with the runtime tests.
#[track_caller]
pub fn assert_confined(container: &serde_json::Value, memory: i64, cpus_millis: i64, pids: i64) {
    let host = &container["HostConfig"];
    assert_eq!(
        host["CapDrop"],
        serde_json::json!(["ALL"]),
        "no capabilities"
    );
    assert!(
        host["CapAdd"].as_array().is_none_or(Vec::is_empty),
        "none added back: {}",
        host["CapAdd"]
    );
    assert_eq!(
        host["SecurityOpt"],
        serde_json::json!(["no-new-privileges"]),
        "no privilege gain, and the default seccomp/AppArmor profiles stay on"
    );
    assert_eq!(host["Privileged"], false);
    assert_eq!(host["ReadonlyRootfs"], true, "read-only root filesystem");
    let tmp = host["Tmpfs"]["/tmp"].as_str().expect("a tmpfs at /tmp");
    for option in ["rw", "nosuid", "nodev", &format!("size={}", memory / 2)] {
        assert!(
            tmp.split(',').any(|part| part == option),
            "/tmp has `{option}`: {tmp}"
        );
    }
    assert_eq!(host["Memory"], memory, "memory limit");
    assert_eq!(
        host["MemorySwap"], memory,
        "no swap beyond the memory limit"
    );
    assert_eq!(host["CpuPeriod"], 100_000);
    assert_eq!(host["CpuQuota"], cpus_millis * 100, "CPU limit");
    assert_eq!(host["PidsLimit"], pids, "pids limit");
    assert_eq!(host["NetworkMode"], "bridge", "not the host's network");
    for mode in [
        "PidMode",
        "IpcMode",
        "UTSMode",
        "UsernsMode",
        "CgroupnsMode",
    ] {
        let value = host[mode].as_str().unwrap_or_default();
        assert_ne!(value, "host", "{mode} is not the host's");
    }
    assert_eq!(host["IpcMode"], "private");
    assert_eq!(host["CgroupnsMode"], "private");
    assert!(
        host["Devices"].as_array().is_none_or(Vec::is_empty),
        "no devices: {}",
        host["Devices"]
    );
    assert!(
        host["DeviceRequests"].as_array().is_none_or(Vec::is_empty),
        "no device requests: {}",
        host["DeviceRequests"]
    );
    let env = container["Config"]["Env"].to_string();
    assert!(env.contains("\"HOME=/tmp\""), "HOME is on the tmpfs: {env}");
    let mounts = container["Mounts"].as_array().expect("mounts");
    for mount in mounts {
        let text = mount.to_string();
        assert!(
            !text.contains("docker.sock") && !text.contains("containerd.sock"),
            "no container runtime socket is mounted: {text}"
        );
        assert_ne!(mount["Source"], "/", "the host root is not mounted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_agent_container_is_confined() {
    let Some(()) = support::docker() else { return };
    support::agent_image();
    let install = Install::new();
    let _guard = DockerGuard::new(&install.slug());
    let docker = containers::connect().await.expect("connect");
    let runner = Runner::new(docker, install.slug(), 2);

    // Defaults.
    assert_eq!(runner.wake(install.session("s1")).await, Woken::Running);
    let container = inspect(&format!("nanoclaw-{}-s1", install.slug()));
    assert_eq!(container["State"]["Running"], true);
    assert_confined(&container, 2 << 30, 1000, 512);

    // The agent's own limits.
    let mut spec = install.session("s2");
    spec.resources = Resources {
        memory: Some(Memory::parse("64m").expect("size")),
        cpus: Some(Cpus::parse("0.5").expect("cpus")),
        pids: Some(64),
    };
    assert_eq!(runner.wake(spec).await, Woken::Running);
    let container = inspect(&format!("nanoclaw-{}-s2", install.slug()));
    assert_eq!(container["State"]["Running"], true);
    assert_confined(&container, 64 << 20, 500, 64);
    runner.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_network_none_has_only_its_own_loopback() {
    let Some(()) = support::docker() else { return };
    support::agent_image();
    let install = Install::new();
    let _guard = DockerGuard::new(&install.slug());
    let docker = containers::connect().await.expect("connect");
    let runner = Runner::new(docker, install.slug(), 2);
    let mut spec = install.session("s1");
    spec.network = Network::None;
    assert_eq!(runner.wake(spec).await, Woken::Running);
    let container = inspect(&format!("nanoclaw-{}-s1", install.slug()));
    assert_eq!(container["State"]["Running"], true);
    assert_eq!(container["HostConfig"]["NetworkMode"], "none");
    let networks = container["NetworkSettings"]["Networks"]
        .as_object()
        .expect("networks");
    assert_eq!(
        networks.keys().collect::<Vec<_>>(),
        ["none"],
        "attached to no network but its own loopback"
    );
    assert!(
        container["HostConfig"]["ExtraHosts"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "no route to the host is advertised: {}",
        container["HostConfig"]["ExtraHosts"]
    );
    assert_eq!(
        container["HostConfig"]["ReadonlyRootfs"], true,
        "still confined"
    );
    runner.stop_all().await;
}

/// Issue 10 point 5: with `network: none` the agent still reaches the API, through the mounted
/// proxy socket and the runner's loopback forwarder, with only its placeholder key.
#[test]
fn a_network_none_agent_reaches_the_api_only_through_the_credential_proxy() {
    let Some(()) = support::docker() else { return };
    support::agent_image();
    let install = Install::new();
    let _guard = DockerGuard::new(&install.slug());
    let proxy = Harness::start(
        Script::new().fallback(FakeReply::text("answered through the socket")),
        true,
        |_| {},
    );
    let placeholder = proxy
        .placeholders
        .register("nanoclaw-network-none")
        .expect("a placeholder");
    let mut spec = install.session("s1");
    spec.network = Network::None;
    // The spawn's own mount of the socket folder comes with the Claude provider; an extra
    // mount stands in for it here, so the socket path differs from `container_env`'s.
    spec.extra_mounts = vec![containers::MountSpec {
        host: proxy
            .socket
            .parent()
            .expect("the socket's folder")
            .to_path_buf(),
        container: "credential-proxy".into(),
        readonly: true,
    }];
    spec.env = credentials::container_env(Kind::ApiKey, &placeholder);
    for (name, value) in &mut spec.env {
        if name == "NANOCLAW_CREDENTIAL_SOCKET" {
            *value = "/workspace/extra/credential-proxy/anthropic.sock".into();
        }
    }
    let session_dir = spec.session_dir.clone();
    // The read-only /workspace needs the extra mount's mount point, as the waker's layout makes.
    layout::prepare(
        &install.paths,
        "andy",
        "s1",
        &[layout::MountPoint {
            container: "credential-proxy".into(),
            is_file: false,
        }],
    )
    .expect("mount point");
    let inbound_path = session_dir.join(session_db::INBOUND_FILE);
    let mut inbound = session_db::open_inbound_host(&inbound_path).expect("open inbound");
    let message = NewInbound {
        id: "m1".into(),
        kind: "chat".into(),
        timestamp: "2026-06-15T12:00:00Z".into(),
        channel_type: Some("cli".into()),
        platform_id: Some("cli:local".into()),
        content: serde_json::json!({"sender": "Ann", "text": "!try credential-proxy"}).to_string(),
        trigger: true,
        ..NewInbound::default()
    };
    session_db::insert_inbound(&mut inbound, &[message]).expect("insert");
    drop(inbound);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let runner = runtime.block_on(async {
        let docker = containers::connect().await.expect("connect");
        let runner = Runner::new(docker, install.slug(), 2);
        assert_eq!(runner.wake(spec).await, Woken::Running);
        runner
    });
    let replies = runtime.block_on(wait_for_replies(&session_dir));
    assert!(
        replies[0].content.contains(
            "try credential-proxy: reached: HTTP/1.1 200 OK; text: answered through the socket"
        ),
        "{}",
        replies[0].content
    );
    let container = inspect(&format!("nanoclaw-{}-s1", install.slug()));
    assert_eq!(container["HostConfig"]["NetworkMode"], "none");
    let requests = proxy.fake.messages_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].headers["x-api-key"], REAL_KEY,
        "the proxy put the real key in"
    );
    runtime.block_on(runner.stop_all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_that_would_expose_the_docker_socket_is_refused() {
    let Some(()) = support::docker() else { return };
    support::agent_image();
    let install = Install::new();
    let guard = DockerGuard::new(&install.slug());
    let docker = containers::connect().await.expect("connect");
    let runner = Runner::new(docker, install.slug(), 2);
    let socket = containers::socket_path().expect("socket path");
    let folder = std::path::Path::new(&socket)
        .parent()
        .expect("the socket's folder")
        .to_path_buf();
    for (session, host) in [("s1", std::path::PathBuf::from(&socket)), ("s2", folder)] {
        let mut spec = install.session(session);
        spec.extra_mounts = vec![containers::MountSpec {
            host: host.clone(),
            container: "sneaky".into(),
            readonly: true,
        }];
        assert_ne!(
            runner.wake(spec).await,
            Woken::Running,
            "a container with `{}` mounted must not start",
            host.display()
        );
    }
    assert!(guard.containers().is_empty(), "nothing was created");
}
