//! The production agent image against the real daemon: built (or reused) through `nanoclaw
//! image build --recipe production`, what is inside it (tini as PID 1, the `agent` user, the
//! pinned Claude Code, the everyday tools), that the host's CA bundle stayed out of every
//! layer, that the runner answers in it under the host's confinement, and what a failed build
//! leaves behind. The minimal image's build is in `containers.rs`.
//!
//! Every test is gated by `support::docker()`; the production image is provided once per run
//! (`support::production_image`): its first build on a machine downloads Debian packages and
//! Claude Code, later runs reuse it by its labels.

use std::io::Read;
use std::process::{Command, Stdio};

use reconciler::containers::image::{CLAUDE_CODE_VERSION, HOST_CA_BUNDLE};
use reconciler::containers::{self, Runner};

use crate::containers::{Install, inspect, send_hello, wait_for_replies};
use crate::support::{self, DockerGuard};

/// `docker image inspect --format FORMAT tag`, trimmed.
fn image_field(tag: &str, format: &str) -> String {
    let output = Command::new("docker")
        .args(["image", "inspect", "--format", format, tag])
        .output()
        .expect("docker image inspect");
    assert!(output.status.success(), "docker image inspect {tag}");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Runs `script` with `sh` in the image, under tini (the image's init), with a read-only root
/// and a tmpfs /tmp as nanoclaw runs agents, as the image's own user; returns stdout.
fn run_in_image(tag: &str, script: &str) -> String {
    let output = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--read-only",
            "--tmpfs",
            "/tmp:rw,nosuid,nodev,mode=1777",
        ])
        .args(["--cap-drop", "ALL", "--security-opt", "no-new-privileges"])
        .args([
            "--entrypoint",
            "/usr/bin/tini",
            tag,
            "--",
            "sh",
            "-c",
            script,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("docker run");
    assert!(
        output.status.success(),
        "`{script}` in {tag} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn production_image_builds_then_a_second_build_reuses_it() {
    let Some(()) = support::docker() else { return };
    let built = support::production_image();
    let first = built.stdout.trim();
    assert!(
        first == format!("built {}", built.tag) || first == format!("reused {}", built.tag),
        "{}\n{}",
        built.stdout,
        built.stderr
    );
    if first.starts_with("built") {
        for line in ["Step 1/", " : FROM system AS claude-code", "built `"] {
            assert!(
                built.stderr.contains(line),
                "the build shows its progress without a terminal (`{line}`):\n{}",
                built.stderr
            );
        }
    }
    let env = support::Env::new("image-reuse");
    let again = env.run(&[
        "image",
        "build",
        "--recipe",
        "production",
        "--tag",
        built.tag,
    ]);
    again.success();
    assert_eq!(again.stdout, format!("reused {}\n", built.tag));
    assert!(
        again.stderr.contains(&format!("reused `{}`", built.tag))
            && !again.stderr.contains("Step "),
        "the second build says it reused the image and builds nothing:\n{}",
        again.stderr
    );
    let labels = image_field(built.tag, "{{json .Config.Labels}}");
    let labels: serde_json::Value = serde_json::from_str(&labels).expect("labels JSON");
    assert_eq!(labels["nanoclaw.claude-code-version"], CLAUDE_CODE_VERSION);
    assert_eq!(labels["nanoclaw.recipe"], "production");
    assert_eq!(labels["nanoclaw.init"], "tini");
    assert_eq!(
        labels["nanoclaw.recipe-sha256"].as_str().map(str::len),
        Some(64)
    );
    let runner = std::fs::read(
        support::repo_root().join("target/x86_64-unknown-linux-musl/release/agent-runner"),
    )
    .expect("the runner the image was built from");
    assert_eq!(
        labels["nanoclaw.runner-sha256"],
        reconciler::containers::image::runner_digest(&runner)
    );
}

#[test]
fn production_image_runs_as_agent_under_tini_with_the_pinned_claude_code_and_tools() {
    let Some(()) = support::docker() else { return };
    let tag = support::production_image().tag;
    assert_eq!(image_field(tag, "{{.Config.User}}"), "10001:10001");
    assert_eq!(
        image_field(tag, "{{json .Config.Entrypoint}} {{json .Config.Cmd}}"),
        r#"["/usr/bin/tini","--","/agent-runner"] ["--workspace","/workspace"]"#
    );
    let facts = run_in_image(
        tag,
        "cat /proc/1/comm; id -u; id -un; echo HOME=$HOME; claude --version",
    );
    let lines: Vec<&str> = facts.lines().collect();
    assert_eq!(
        lines,
        [
            "tini",
            "10001",
            "agent",
            "HOME=/tmp",
            &format!("{CLAUDE_CODE_VERSION} (Claude Code)")
        ],
        "{facts}"
    );
    let tools = run_in_image(
        tag,
        "for tool in git curl jq rg python3 node npm; do command -v $tool; done; \
         git --version; jq --version; rg --version | head -n 1; python3 --version; node --version; \
         curl --version | head -n 1",
    );
    for tool in ["git", "curl", "jq", "rg", "python3", "node", "npm"] {
        assert!(
            tools
                .lines()
                .any(|line| line.ends_with(&format!("/{tool}"))),
            "`{tool}` is on PATH:\n{tools}"
        );
    }
    for version in ["git version ", "jq-", "ripgrep ", "Python 3.", "v", "curl "] {
        assert!(
            tools.lines().any(|line| line.starts_with(version)),
            "a `{version}…` line:\n{tools}"
        );
    }
}

#[test]
fn the_host_ca_bundle_is_in_no_layer_of_the_production_image() {
    let Some(()) = support::docker() else { return };
    let tag = support::production_image().tag;
    let host_bundle = std::fs::read(HOST_CA_BUNDLE).unwrap_or_default();
    let mut child = Command::new("docker")
        .args(["save", tag])
        .stdout(Stdio::piped())
        .spawn()
        .expect("docker save");
    let mut saved = tar::Archive::new(child.stdout.take().expect("piped"));
    let (mut n_layers, mut n_files) = (0, 0);
    let mut named_like_it = Vec::new();
    let mut same_bytes = Vec::new();
    let mut image_bundle = None;
    for entry in saved.entries().expect("docker save is a tar") {
        let entry = entry.expect("tar entry");
        if !entry.path().expect("path").ends_with("layer.tar") {
            continue;
        }
        n_layers += 1;
        let mut layer = tar::Archive::new(entry);
        for file in layer.entries().expect("a layer is a tar") {
            let mut file = file.expect("layer entry");
            n_files += 1;
            let path = file.path().expect("path").display().to_string();
            if path.ends_with("build-ca.crt") || path.ends_with("build/ca.crt") {
                named_like_it.push(path.clone());
            }
            let size = file.header().size().expect("size");
            if !host_bundle.is_empty() && size == host_bundle.len() as u64 {
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes).expect("read layer file");
                if bytes == host_bundle {
                    same_bytes.push(path.clone());
                }
            }
            if path == "etc/ssl/certs/ca-certificates.crt" {
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes)
                    .expect("read the image's bundle");
                image_bundle = Some(bytes);
            }
        }
    }
    assert!(child.wait().expect("docker save").success());
    assert!(
        n_layers >= 3 && n_files > 1000,
        "{n_layers} layers, {n_files} files"
    );
    assert_eq!(
        named_like_it,
        Vec::<String>::new(),
        "no build CA file in any layer"
    );
    // Debian's own bundle (made by update-ca-certificates inside the image) is equal to the
    // host's only on a host without extra CAs: then there is nothing secret to leak.
    if image_bundle.as_deref() == Some(host_bundle.as_slice()) {
        same_bytes.retain(|path| path != "etc/ssl/certs/ca-certificates.crt");
    }
    assert_eq!(
        same_bytes,
        Vec::<String>::new(),
        "no layer holds the host's CA bundle"
    );
    let history = Command::new("docker")
        .args(["history", "--no-trunc", "--format", "{{.CreatedBy}}", tag])
        .output()
        .expect("docker history");
    let history = String::from_utf8_lossy(&history.stdout);
    assert!(
        !history.contains("build-ca.crt") && !history.contains("/build/ca.crt"),
        "the final image's history never touches the CA file:\n{history}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_answers_in_the_production_image_with_a_read_only_root_and_tini_as_pid_1() {
    let Some(()) = support::docker() else { return };
    let tag = support::production_image().tag;
    let install = Install::new();
    let _guard = DockerGuard::new(&install.slug());
    let mut spec = install.session("s1");
    spec.image = tag.to_string();
    let session_dir = spec.session_dir.clone();
    send_hello(&session_dir);
    let docker = containers::connect().await.expect("connect");
    let runner = Runner::new(docker, install.slug(), 2);
    assert_eq!(runner.wake(spec).await, containers::Woken::Running);
    let replies = wait_for_replies(&session_dir).await;
    assert_eq!(replies[0].in_reply_to.as_deref(), Some("m1"));
    assert!(
        replies[0].content.contains("echo: hello"),
        "{}",
        replies[0].content
    );
    let name = format!("nanoclaw-{}-s1", install.slug());
    let container = inspect(&name);
    assert_eq!(container["HostConfig"]["ReadonlyRootfs"], true);
    assert_eq!(
        container["HostConfig"]["Init"], false,
        "the image's tini is the init: Docker adds no second one"
    );
    let exec = Command::new("docker")
        .args(["exec", &name, "cat", "/proc/1/cmdline"])
        .output()
        .expect("docker exec");
    let pid_1 = String::from_utf8_lossy(&exec.stdout).replace('\0', " ");
    assert_eq!(
        pid_1.trim(),
        "/usr/bin/tini -- /agent-runner --workspace /workspace"
    );
    runner.stop_all().await;
}

#[test]
fn a_failed_build_keeps_its_full_log_and_prints_the_path() {
    let Some(()) = support::docker() else { return };
    // The minimal image has no shell: the production recipe's first RUN fails on it, offline.
    let base = support::agent_image().tag;
    let env = support::Env::new("image-fails");
    let tag = format!(
        "nanoclaw-agent:failing-test-{}",
        reconciler::paths::slug_of(&support::repo_root())
    );
    let run = env.run(&[
        "image",
        "build",
        "--recipe",
        "production",
        "--base",
        base,
        "--tag",
        &tag,
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let line = run
        .stderr
        .lines()
        .find(|line| line.starts_with("the full build log is in "))
        .unwrap_or_else(|| panic!("no log path:\n{}", run.stderr));
    let path = std::path::PathBuf::from(line.trim_start_matches("the full build log is in "));
    assert!(
        path.starts_with(env.data().join("logs")),
        "kept in the data dir: {}",
        path.display()
    );
    let log = std::fs::read_to_string(&path).expect("the kept log");
    for expected in [
        "building `",
        "Step 1/",
        " : FROM ${BASE_IMAGE} AS system",
        "Step 4/",
        "error: image build failed at `Step 4/",
    ] {
        assert!(log.contains(expected), "the log has `{expected}`:\n{log}");
    }
    assert!(
        run.stderr.contains("error: image build failed at `Step 4/"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .lines()
            .any(|line| line == "Step 2/24 : FROM ${BASE_IMAGE} AS system")
            && !run.stderr.contains('\x1b'),
        "without a terminal, progress is plain lines:\n{}",
        run.stderr
    );
    let exists = Command::new("docker")
        .args(["image", "inspect", &tag])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("docker image inspect");
    assert!(!exists.success(), "a failed build tags nothing");
}

#[test]
fn image_build_for_manifests_whose_agents_bring_their_own_image_builds_nothing() {
    let env = support::Env::new("image-own");
    env.write(
        "agent.yaml",
        "kind: agent\nname: andy\nprovider: mock\nimage: my-own:1\n---\nkind: channel\nname: local\nchannel_type: cli\nplatform_id: local\nwirings: [{agent: andy, engage_mode: pattern, engage_pattern: '.'}]\n",
    );
    let run = env.run(&["image", "build", "manifests"]);
    run.success();
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        "no agent in `manifests` needs an image from nanoclaw (each names its own `image`)\n"
    );
}

#[test]
fn image_build_without_manifests_or_a_recipe_says_what_to_pass() {
    let env = support::Env::new("image-no-dir");
    let run = env.run(&["image", "build", "elsewhere"]);
    assert_eq!(run.code, 1);
    expect_test::expect![[r#"
        error: no manifest directory `elsewhere`: nothing says which images the agents need

        hint: pass the folder holding your manifests (`nanoclaw image build DIR`) or a recipe (`nanoclaw image build --recipe minimal` or `--recipe production`)
    "#]]
    .assert_eq(&run.stderr);
}
