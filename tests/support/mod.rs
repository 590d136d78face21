//! Test harness: a temp install (`Env`), running the real binary, normalising output, waiting
//! for conditions, and the Docker gate.
#![allow(dead_code, clippy::print_stderr)]

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
        }
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

    /// A command for the binary with `--data` set, NO_COLOR, and the manifest dir as cwd parent.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .arg("--data")
            .arg(self.data())
            .args(args)
            .current_dir(self.root.path())
            .env("NO_COLOR", "1")
            .env_remove("NANOCLAW_DATA_DIR")
            .env_remove("NANOCLAW_LOG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
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
