//! Test harness: a temp install (`Env`), running the real binary, normalising output, waiting
//! for conditions, and the Docker gate.
#![allow(dead_code, clippy::print_stderr)]

pub mod claude_code;
pub mod fake_anthropic;
pub mod fake_telegram;
pub mod proxy;
pub mod v2;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_nanoclaw");

/// Root of the repository (for fixtures and the bundled manifests).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("reconciler/ has a parent")
        .to_path_buf()
}

/// One temporary install: a data dir and a manifest dir, removed on drop.
pub struct Env {
    pub name: String,
    pub root: tempfile::TempDir,
    /// Environment variables every later command of this install gets ([`Env::set_var`]).
    vars: std::cell::RefCell<Vec<(String, String)>>,
}

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Env {
    pub fn new(name: &str) -> Env {
        let root = tempfile::Builder::new()
            .prefix(&format!("nanoclaw-{name}-"))
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir_all(root.path().join("manifests")).expect("manifests dir");
        Env {
            name: name.to_string(),
            root,
            vars: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// Sets `name=value` in the environment of every later command of this install.
    pub fn set_var(&self, name: &str, value: &str) {
        self.vars
            .borrow_mut()
            .push((name.to_string(), value.to_string()));
    }

    pub fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }

    pub fn manifests(&self) -> PathBuf {
        self.root.path().join("manifests")
    }

    pub fn db(&self) -> PathBuf {
        self.data().join("nanoclaw.db")
    }

    /// Writes a manifest file (relative to the manifest dir), creating folders.
    pub fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.manifests().join(relative);
        std::fs::create_dir_all(path.parent().expect("file has a parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write manifest");
        path
    }

    /// Copies a fixture folder's YAML files into the manifest dir.
    pub fn copy_from(&self, dir: &Path) {
        copy_tree(dir, &self.manifests());
    }

    /// `XDG_CONFIG_HOME` of the binary: the mount allowlist lives in `nanoclaw/` below it, so no
    /// test reads this machine's own allowlist.
    pub fn config_home(&self) -> PathBuf {
        self.root.path().join("config")
    }

    /// Writes the mount allowlist (YAML) the binary reads.
    pub fn allowlist(&self, yaml: &str) -> PathBuf {
        let path = self.config_home().join("nanoclaw/mount-allowlist.yaml");
        std::fs::create_dir_all(path.parent().expect("file has a parent")).expect("mkdir");
        std::fs::write(&path, yaml).expect("write allowlist");
        path
    }

    /// A command for the binary with `--data` set, NO_COLOR, its own `XDG_CONFIG_HOME`, and
    /// the manifest dir as cwd parent.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_of(Path::new(BIN), args)
    }

    /// [`Env::command`] for another copy of the binary (`program`).
    pub fn command_of(&self, program: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(program);
        command.arg("--data").arg(self.data()).args(args);
        self.prepare(command)
    }

    /// [`Env::command`] run through `sh` after `ulimit -n files`: the binary may open at most
    /// `files` file descriptors.
    pub fn command_with_fd_limit(&self, files: u32, args: &[&str]) -> Command {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {files} && exec \"$0\" \"$@\""))
            .arg(BIN)
            .arg("--data")
            .arg(self.data())
            .args(args);
        self.prepare(command)
    }

    fn prepare(&self, mut command: Command) -> Command {
        command
            .current_dir(self.root.path())
            .env("NO_COLOR", "1")
            .env("XDG_CONFIG_HOME", self.config_home())
            .env_remove("NANOCLAW_DATA_DIR")
            .env_remove("NANOCLAW_LOG")
            .env_remove("RUST_LOG")
            // The host's own credentials never reach a test install (reconciler/src/env.rs).
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
            .env_remove("NANOCLAW_ANTHROPIC_BASE_URL")
            .env_remove("NANOCLAW_RUNNER")
            .stdin(Stdio::null());
        for (name, value) in self.vars.borrow().iter() {
            command.env(name, value);
        }
        command
    }

    /// Runs the binary to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        let output = self.command(args).output().expect("run nanoclaw");
        Run::from(output)
    }

    /// Replaces this env's temp paths with placeholders so output can be snapshotted.
    pub fn normalize(&self, text: &str) -> String {
        normalize(text, self.root.path())
    }
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    #[track_caller]
    pub fn success(&self) -> &Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Replaces `root` with `$ROOT`, ISO timestamps with `$TIME`, and long hex digests with `$HASH`.
pub fn normalize(text: &str, root: &Path) -> String {
    let text = text.replace(&root.display().to_string(), "$ROOT");
    let time =
        regex::Regex::new(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?Z?").expect("regex");
    let text = time.replace_all(&text, "$$TIME");
    let hash = regex::Regex::new(r"\b[0-9a-f]{16,64}\b").expect("regex");
    hash.replace_all(&text, "$$HASH").into_owned()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy fixture");
        }
    }
}

/// Polls `cond` every 20 ms until it holds or `deadline` passes; panics with `what` on timeout.
#[track_caller]
pub fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {deadline:?} waiting for: {what}");
}

/// The Docker gate. `Some(())` when a daemon answers `docker info`; otherwise prints why the
/// test is skipped, or panics when `NANOCLAW_REQUIRE_DOCKER=1` (CI).
pub fn docker() -> Option<()> {
    let answered = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false);
    if answered {
        return Some(());
    }
    #[allow(clippy::disallowed_methods)] // tests read the CI switch directly
    let required = matches!(
        std::env::var("NANOCLAW_REQUIRE_DOCKER").as_deref(),
        Ok("1" | "true")
    );
    if required {
        panic!("NANOCLAW_REQUIRE_DOCKER=1 but no Docker daemon answers `docker info`");
    }
    eprintln!(
        "skipping: no Docker daemon answers `docker info` (set NANOCLAW_REQUIRE_DOCKER=1 to fail instead)"
    );
    None
}

/// True with `NANOCLAW_RECORD_FIXTURES=1`: protocol tests then rewrite their transcript
/// fixtures (tests/fixtures/claude-code/) from this run.
pub fn recording_fixtures() -> bool {
    #[allow(clippy::disallowed_methods)] // tests read their own switches directly
    let record = std::env::var("NANOCLAW_RECORD_FIXTURES");
    matches!(record.as_deref(), Ok("1" | "true"))
}

/// `PATH` without the folders that hold a `cargo`: a child given it has no Rust toolchain.
pub fn path_without_cargo() -> String {
    #[allow(clippy::disallowed_methods)] // the test process's own PATH, to hand a child less of it
    let path = std::env::var("PATH").unwrap_or_default();
    let kept: Vec<&str> = path
        .split(':')
        .filter(|dir| !dir.is_empty() && !Path::new(dir).join("cargo").exists())
        .collect();
    kept.join(":")
}

/// `PATH` with `dir` first: a child finds the programs in `dir` before the system's.
pub fn path_with_first(dir: &Path) -> String {
    #[allow(clippy::disallowed_methods)] // the test process's own PATH, to hand a child more
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{}:{path}", dir.display())
}

/// The static agent-runner [`agent_image`] builds (cargo, musl target) and puts in the image.
pub fn musl_runner() -> PathBuf {
    repo_root().join("target/x86_64-unknown-linux-musl/release/agent-runner")
}

/// Tag of the agent image the tests use (built once per test run by [`agent_image`]):
/// `nanoclaw-agent:test-<slug of this checkout>`, so two checkouts testing at once on one
/// Docker daemon (git worktrees, a second clone) never rebuild each other's image.
pub fn test_image() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        format!(
            "nanoclaw-agent:test-{}",
            reconciler::paths::slug_of(&repo_root())
        )
    })
}

/// What the one image build of this test run printed.
pub struct ImageBuilt {
    pub tag: &'static str,
    pub stdout: String,
    pub stderr: String,
}

/// Builds [`test_image`] once per test run through the real binary (`nanoclaw image build`),
/// after refreshing the static runner with cargo (a no-op when it is fresh). Parallel callers
/// wait for the one build. Call only after [`docker`] returned `Some`.
pub fn agent_image() -> &'static ImageBuilt {
    static BUILT: std::sync::OnceLock<ImageBuilt> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = Command::new(env!("CARGO"))
            .args(["build", "-p", "agent-runner", "--release", "--target"])
            .arg("x86_64-unknown-linux-musl")
            .current_dir(repo_root())
            .output()
            .expect("run cargo");
        assert!(
            cargo.status.success(),
            "building the static agent-runner failed (needs `rustup target add x86_64-unknown-linux-musl` and musl-tools):\n{}",
            String::from_utf8_lossy(&cargo.stderr)
        );
        // `--force`: built (not reused) every run, so the build's progress is seen.
        let output = Command::new(BIN)
            .args(["image", "build", "--recipe", "minimal", "--force", "--tag"])
            .arg(test_image())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run nanoclaw image build");
        let run = Run::from(output);
        run.success();
        ImageBuilt {
            tag: test_image(),
            stdout: run.stdout,
            stderr: run.stderr,
        }
    })
}

/// Tag of the production image the tests use (built once per test run by
/// [`production_image`]): `nanoclaw-agent:production-test-<slug of this checkout>`.
pub fn production_test_image() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        format!(
            "nanoclaw-agent:production-test-{}",
            reconciler::paths::slug_of(&repo_root())
        )
    })
}

/// Provides [`production_test_image`] once per test run through the real binary (`nanoclaw
/// image build --recipe production`): built when missing or stale, reused when its labels
/// say it holds this recipe and runner. As root, the Debian base is made with debootstrap when
/// missing. The first build on a machine takes minutes (Debian packages, Claude Code from the
/// npm registry); later ones reuse Docker's layer cache and rebuild only the runner's layer.
/// Call only after [`docker`] returned `Some`; the minimal image is built first (its runner).
pub fn production_image() -> &'static ImageBuilt {
    static BUILT: std::sync::OnceLock<ImageBuilt> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        agent_image();
        let logs = std::env::temp_dir().join("nanoclaw-test-image-builds");
        let output = Command::new(BIN)
            .arg("--data")
            .arg(&logs)
            .args(["image", "build", "--recipe", "production", "--tag"])
            .arg(production_test_image())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run nanoclaw image build --recipe production");
        let run = Run::from(output);
        run.success();
        ImageBuilt {
            tag: production_test_image(),
            stdout: run.stdout,
            stderr: run.stderr,
        }
    })
}

/// Removes every container labelled with one install slug when dropped (unless
/// `NANOCLAW_TEST_KEEP=1`), so a failing Docker test leaves nothing behind.
pub struct DockerGuard {
    pub slug: String,
}

impl DockerGuard {
    pub fn new(slug: &str) -> DockerGuard {
        DockerGuard {
            slug: slug.to_string(),
        }
    }

    /// Names of containers (running or not) carrying `label=value`.
    pub fn containers_with(label: &str) -> Vec<String> {
        let output = Command::new("docker")
            .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
            .arg(format!("label={label}"))
            .output()
            .expect("docker ps");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// This install's containers (running or not).
    pub fn containers(&self) -> Vec<String> {
        DockerGuard::containers_with(&format!("nanoclaw.install={}", self.slug))
    }
}

/// True with `NANOCLAW_TEST_KEEP=1`: tests leave their containers and images for debugging.
pub fn keep_docker_objects() -> bool {
    #[allow(clippy::disallowed_methods)] // tests read the debugging switch directly
    let keep = matches!(
        std::env::var("NANOCLAW_TEST_KEEP").as_deref(),
        Ok("1" | "true")
    );
    keep
}

impl Drop for DockerGuard {
    fn drop(&mut self) {
        if keep_docker_objects() {
            eprintln!(
                "NANOCLAW_TEST_KEEP=1: keeping containers of install {}",
                self.slug
            );
            return;
        }
        let names = self.containers();
        if !names.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&names)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
