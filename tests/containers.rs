//! Docker layer against the real daemon: the agent image build (offline), orphan cleanup that
//! spares other installs, and the Runner's wake dedup, limit, stop and a message round trip.
//!
//! Every test is gated by `support::docker()`, gets its own install slug, and a `DockerGuard`
//! removes that slug's containers on drop (`NANOCLAW_TEST_KEEP=1` keeps them).

use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::Duration;

use agent_runner::session_db::{self, DestinationRow, NewInbound};
use reconciler::containers::{self, Runner, SpawnSpec, Woken};
use reconciler::paths::Paths;

use crate::support::{self, DockerGuard};

/// One temporary install with an agent `andy` whose container.json selects the mock provider.
struct Install {
    /// Holds the temp folder until the test ends.
    _root: tempfile::TempDir,
    paths: Paths,
}

impl Install {
    fn new() -> Install {
        let root = tempfile::Builder::new()
            .prefix("nanoclaw-containers-")
            .tempdir()
            .expect("tempdir");
        let paths = Paths::new(root.path().join("data"));
        let group = paths.group("andy");
        std::fs::create_dir_all(&group).expect("group dir");
        std::fs::write(
            group.join("container.json"),
            r#"{"provider": "mock", "assistantName": "Andy"}"#,
        )
        .expect("container.json");
        Install { _root: root, paths }
    }

    fn slug(&self) -> String {
        self.paths.slug()
    }

    /// Creates the session folder with both DBs and one CLI destination.
    fn session(&self, session_id: &str) -> SpawnSpec {
        let session_dir = self.paths.session("andy", session_id);
        session_db::create(&session_dir).expect("session DBs");
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
            extra_mounts: Vec::new(),
            env: Vec::new(),
            config_hash: "test".into(),
        }
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

fn chown_tree(path: &std::path::Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("read dir") {
            chown_tree(&entry.expect("dir entry").path(), uid, gid);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn woken_container_answers_a_message() {
    let Some(()) = support::docker() else { return };
    support::agent_image();
    let install = Install::new();
    let _guard = DockerGuard::new(&install.slug());
    let spec = install.session("s1");
    let session_dir = spec.session_dir.clone();
    // As root, hand the install to uid 1000 so the container provably runs as the folder's
    // owner (not root) and can still write its files.
    let owner = if is_root() {
        chown_tree(&install.paths.data, 1000, 1000);
        "1000:1000".to_string()
    } else {
        let meta = std::fs::metadata(&session_dir).expect("session dir");
        format!("{}:{}", meta.uid(), meta.gid())
    };
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
    drop(inbound);
    let docker = containers::connect().await.expect("connect");
    let runner = Runner::new(docker, install.slug(), 2);
    assert_eq!(runner.wake(spec).await, Woken::Running);
    let outbound_path = session_dir.join(session_db::OUTBOUND_FILE);
    let replies = tokio::task::spawn_blocking(move || {
        let mut replies = Vec::new();
        support::wait_until(
            "a reply row in outbound.db",
            Duration::from_secs(60),
            || {
                let inbound = session_db::open_inbound_host(&inbound_path).expect("open inbound");
                let outbound =
                    session_db::open_outbound_host(&outbound_path).expect("open outbound");
                replies = session_db::due_outbound(&inbound, &outbound).expect("due outbound");
                !replies.is_empty()
            },
        );
        replies
    })
    .await
    .expect("waiter");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_wake_is_false_and_clears_a_stale_heartbeat() {
    let Some(()) = support::docker() else { return };
    let install = Install::new();
    let guard = DockerGuard::new(&install.slug());
    let mut spec = install.session("s1");
    spec.image = "nanoclaw-agent:no-such-tag".into();
    let heartbeat = spec.session_dir.join(session_db::HEARTBEAT_FILE);
    std::fs::write(&heartbeat, "").expect("stale heartbeat");
    let docker = containers::connect().await.expect("connect");
    let runner = Runner::new(docker, install.slug(), 2);
    let Woken::Failed(reason) = runner.wake(spec).await else {
        panic!("a wake with a missing image fails");
    };
    assert!(
        reason.contains("no-such-tag"),
        "the reason names the image: {reason}"
    );
    assert!(
        !heartbeat.exists(),
        "the stale heartbeat is deleted before the spawn"
    );
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
    std::fs::write(
        install.paths.group("andy").join("container.json"),
        r#"{"provider": "no-such-provider"}"#,
    )
    .expect("container.json");
    let docker = containers::connect().await.expect("connect");
    let runner = Runner::new(docker, install.slug(), 2);
    let mut exits = runner.exits();
    assert_eq!(runner.wake(install.session("s1")).await, Woken::Running);
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
