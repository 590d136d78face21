//! Issue 9 point 12: the product path needs no Rust toolchain. `image build` and `run` take
//! the static agent-runner from `--runner`, `NANOCLAW_RUNNER` or `agent-runner` beside the
//! `nanoclaw` executable, with cargo off the child's `PATH`; a runner that cannot work is
//! refused before anything starts. (The developer build from a source checkout is what the
//! other Docker tests use: `support::agent_image` builds without `--runner`.)

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::runtime::{CLI_AGENT, Client, Daemon};
use crate::support::{self, Env};

/// An image tag a test builds, untagged (and removed, when nothing else holds it) on drop.
struct Tag(String);

impl Tag {
    fn new(purpose: &str) -> Tag {
        Tag(format!(
            "nanoclaw-agent:runner-{purpose}-{}",
            reconciler::paths::slug_of(&support::repo_root())
        ))
    }
}

impl Drop for Tag {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rmi", "--force", &self.0])
            .output();
    }
}

/// An env whose commands run with no cargo on `PATH`.
fn env_without_cargo(name: &str) -> Env {
    let env = Env::new(name);
    let path = support::path_without_cargo();
    assert!(
        path.split(':')
            .all(|dir| !Path::new(dir).join("cargo").exists()),
        "{path}"
    );
    env.set_var("PATH", &path);
    env
}

fn text(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

#[test]
fn issue_9_image_build_with_runner_needs_no_rust_toolchain() {
    let Some(()) = support::docker() else { return };
    support::agent_image();
    let env = env_without_cargo("runner-flag");
    let tag = Tag::new("flag");
    let runner = support::musl_runner();
    let run = env.run(&[
        "image",
        "build",
        "--recipe",
        "minimal",
        "--tag",
        &tag.0,
        "--runner",
        text(&runner),
    ]);
    run.success();
    assert_eq!(run.stdout, format!("built {}\n", tag.0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("with runner {}:", runner.display())),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("source checkout"), "{}", run.stderr);
}

#[test]
fn issue_9_an_agent_runner_beside_nanoclaw_is_used_without_flags_or_toolchain() {
    let Some(()) = support::docker() else { return };
    support::agent_image();
    let install = tempfile::Builder::new()
        .prefix("nanoclaw-install-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("install dir");
    let nanoclaw = install.path().join("nanoclaw");
    let beside = install.path().join("agent-runner");
    link_or_copy(Path::new(support::BIN), &nanoclaw);
    link_or_copy(&support::musl_runner(), &beside);
    let env = env_without_cargo("runner-beside");
    let tag = Tag::new("beside");
    let output = env
        .command_of(
            &nanoclaw,
            &["image", "build", "--recipe", "minimal", "--tag", &tag.0],
        )
        .output()
        .expect("run the installed nanoclaw");
    let run = support::Run::from(output);
    run.success();
    assert_eq!(run.stdout, format!("built {}\n", tag.0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("with runner {}:", beside.display())),
        "the runner beside nanoclaw is used:\n{}",
        run.stderr
    );
    assert!(!run.stderr.contains("source checkout"), "{}", run.stderr);
}

#[test]
fn issue_9_run_with_runner_needs_no_rust_toolchain() {
    let Some(()) = support::docker() else { return };
    let runner = support::musl_runner();
    support::agent_image();
    let env = env_without_cargo("runner-run");
    env.write("agents.yaml", CLI_AGENT);
    let mut daemon = Daemon::start_with(&env, &["--runner", text(&runner)]);
    let mut client = Client::connect(&env);
    client.say("m1", "hello");
    let (reply, in_reply_to) = client.reply();
    assert!(in_reply_to.starts_with("m1"), "{reply} / {in_reply_to}");
    assert_eq!(daemon.stop(), 0);
    let log = daemon.log();
    assert!(
        !log.contains("source checkout") && !log.contains("cargo build"),
        "no developer build:\n{log}"
    );
}

#[test]
fn issue_9_a_runner_that_cannot_work_is_refused_before_anything_starts() {
    let env = Env::new("runner-refused");
    env.write("agents.yaml", CLI_AGENT);
    let run = env.run(&["run", "manifests", "--runner", "/nonexistent/agent-runner"]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        "error: runner `/nonexistent/agent-runner` does not exist\n"
    );
    assert!(!env.data().exists(), "nothing was started or created");

    env.set_var("NANOCLAW_RUNNER", "/nonexistent/runner");
    let run = env.run(&["image", "build", "--recipe", "minimal"]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        "error: runner `/nonexistent/runner` (from `NANOCLAW_RUNNER`) does not exist\n"
    );

    // This test binary is a glibc build: it needs a dynamic loader a `FROM scratch` image lacks.
    let dynamic = std::env::current_exe().expect("the test binary");
    let run = env.run(&[
        "image",
        "build",
        "--recipe",
        "minimal",
        "--runner",
        text(&dynamic),
    ]);
    assert_eq!(run.code, 1);
    expect_test::expect![[r#"
        error: runner `DYNAMIC` cannot run in an agent image: it is dynamically linked (it needs a loader such as `/lib64/ld-linux-x86-64.so.2`, which a `FROM scratch` image lacks)

        hint: give a static x86_64 Linux build of agent-runner, such as the `agent-runner` shipped beside `nanoclaw`, or build one with `cargo build -p agent-runner --release --target x86_64-unknown-linux-musl`
    "#]]
    .assert_eq(&run.stderr.replace(text(&dynamic), "DYNAMIC"));
}

/// Hard-links `from` to `to` (same file system: no copy of a large binary), else copies it.
fn link_or_copy(from: &Path, to: &PathBuf) {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).expect("copy");
    }
}
