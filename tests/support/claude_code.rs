//! The real Claude Code CLI for host-level protocol tests: installed once with npm into a cache
//! folder (`$TMPDIR/nanoclaw-claude-code-<version>-<uid>`, kept between runs and shared by
//! checkouts), then run as a non-root user against a local fake (docs/claude-code.md).
//!
//! The gate works like [`super::docker`]: without npm the tests skip with a message, unless
//! `NANOCLAW_REQUIRE_DOCKER=1` (CI), where a missing or failed install fails them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

/// The pinned version; docs/claude-code.md describes this one.
pub const VERSION: &str = "2.1.332";

/// Longest an install may take before the tests give up on it.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

/// The installed `claude` binary, installing it on first use; `None` (with a message) when it
/// cannot be had and CI does not require it.
pub fn binary() -> Option<&'static Path> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BINARY.get_or_init(install) {
        Ok(path) => Some(path),
        Err(why) => {
            #[allow(clippy::disallowed_methods)] // tests read the CI switch directly
            let required = matches!(
                std::env::var("NANOCLAW_REQUIRE_DOCKER").as_deref(),
                Ok("1" | "true")
            );
            if required {
                panic!("NANOCLAW_REQUIRE_DOCKER=1 but Claude Code is not available: {why}");
            }
            eprintln!(
                "skipping: Claude Code is not available ({why}); set NANOCLAW_REQUIRE_DOCKER=1 to fail instead"
            );
            None
        }
    }
}

fn cache_dir() -> PathBuf {
    let uid = rustix::process::geteuid().as_raw();
    std::env::temp_dir().join(format!("nanoclaw-claude-code-{VERSION}-{uid}"))
}

fn install() -> Result<PathBuf, String> {
    let dir = cache_dir();
    let binary = dir.join("node_modules/.bin/claude");
    std::fs::create_dir_all(&dir).map_err(|err| format!("creating {}: {err}", dir.display()))?;
    // World-readable so the non-root test user can run it; only we can write it.
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(&dir).map_err(|err| err.to_string())?;
    if meta.uid() != rustix::process::geteuid().as_raw() {
        return Err(format!("{} belongs to another user", dir.display()));
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|err| err.to_string())?;
    // One installer at a time across test processes and checkouts.
    let lock = std::fs::File::create(dir.join(".install.lock")).map_err(|err| err.to_string())?;
    lock.lock()
        .map_err(|err| format!("locking the install: {err}"))?;
    if reports_version(&binary) {
        return Ok(binary);
    }
    let npm_answers = Command::new("npm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false);
    if !npm_answers {
        return Err("`npm` is not installed (apt-get install npm)".into());
    }
    eprintln!(
        "installing Claude Code {VERSION} with npm into {} (first run only; about 400 MB)",
        dir.display()
    );
    let mut child = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--prefix",
        ])
        .arg(&dir)
        .arg(format!("@anthropic-ai/claude-code@{VERSION}"))
        .stdin(Stdio::null())
        .spawn()
        .map_err(|err| format!("running npm: {err}"))?;
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|err| err.to_string())? {
            break status;
        }
        if started.elapsed() > INSTALL_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("npm install took longer than {INSTALL_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if !status.success() {
        return Err(format!("npm install failed: {status}"));
    }
    eprintln!("installed Claude Code {VERSION} in {:?}", started.elapsed());
    if reports_version(&binary) {
        Ok(binary)
    } else {
        Err(format!(
            "{} does not report version {VERSION}",
            binary.display()
        ))
    }
}

fn reports_version(binary: &Path) -> bool {
    // Its scratch folder goes into the cache, not `/tmp`.
    let scratch = cache_dir().join("tmp");
    let _ = std::fs::create_dir_all(&scratch);
    Command::new(binary)
        .arg("--version")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("TMPDIR", &scratch)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).contains(VERSION))
        .unwrap_or(false)
}

/// The user Claude Code runs as: it refuses `bypassPermissions` as root.
const NOBODY: u32 = 65534;

/// A home and a working folder owned by the user Claude Code runs as, removed on drop.
pub struct Home {
    root: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        let root = tempfile::Builder::new()
            .prefix("nanoclaw-claude-home-")
            .tempdir()
            .expect("tempdir");
        for dir in ["home", "work", "tmp"] {
            std::fs::create_dir(root.path().join(dir)).expect("mkdir");
        }
        let home = Home { root };
        if rustix::process::geteuid().is_root() {
            for path in [home.root.path(), &home.home(), &home.work(), &home.tmp()] {
                std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).expect("chown");
            }
        }
        home
    }

    pub fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    pub fn work(&self) -> PathBuf {
        self.root.path().join("work")
    }

    /// `TMPDIR` of the run: Claude Code keeps `claude-<uid>/` scratch folders there, which
    /// go with the home.
    pub fn tmp(&self) -> PathBuf {
        self.root.path().join("tmp")
    }
}

impl Default for Home {
    fn default() -> Home {
        Home::new()
    }
}

/// What one `claude -p` run printed.
#[derive(Debug)]
pub struct Printed {
    pub code: Option<i32>,
    /// Every stream-json line of stdout, parsed.
    pub events: Vec<Value>,
    pub stderr: String,
}

impl Printed {
    /// The `result` event's `result` text.
    pub fn result(&self) -> Option<&str> {
        self.last("result", None)?.get("result")?.as_str()
    }

    /// The last event of this `type` (and `subtype`, if given).
    pub fn last(&self, kind: &str, subtype: Option<&str>) -> Option<&Value> {
        self.events.iter().rev().find(|event| {
            event.get("type").and_then(Value::as_str) == Some(kind)
                && subtype
                    .is_none_or(|want| event.get("subtype").and_then(Value::as_str) == Some(want))
        })
    }

    /// `session_id` of the `system`/`init` event.
    pub fn session_id(&self) -> Option<&str> {
        self.last("system", Some("init"))?
            .get("session_id")?
            .as_str()
    }
}

/// Runs `claude -p --input-format stream-json --output-format stream-json --verbose ARGS`
/// with only `env` (plus PATH, HOME and TMPDIR), one user message per `inputs` line, as a non-root
/// user when we are root; waits up to two minutes.
pub fn run(
    binary: &Path,
    home: &Home,
    env: &[(&str, String)],
    args: &[&str],
    inputs: &[&str],
) -> Printed {
    let mut command = if rustix::process::geteuid().is_root() {
        let mut command = Command::new("setpriv");
        command
            .arg(format!("--reuid={NOBODY}"))
            .arg(format!("--regid={NOBODY}"))
            .arg("--clear-groups")
            .arg(binary);
        command
    } else {
        Command::new(binary)
    };
    command
        .args([
            "-p",
            "--input-format",
            "stream-json",
            "--output-format",
            "stream-json",
            "--verbose",
        ])
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home.home())
        .env("TMPDIR", home.tmp())
        .current_dir(home.work())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("start claude");
    {
        let mut stdin = child.stdin.take().expect("piped stdin");
        for text in inputs {
            let line = serde_json::json!({
                "type": "user",
                "message": {"role": "user", "content": text},
            });
            writeln!(stdin, "{line}").expect("write a user message");
        }
    }
    let pid = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output());
    super::wait_until("claude to finish", Duration::from_secs(120), || {
        waiter.is_finished()
    });
    let output = waiter
        .join()
        .expect("waiter")
        .unwrap_or_else(|err| panic!("claude {pid}: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    Printed {
        code: output.status.code(),
        events: stdout
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect(),
        stderr: String::from_utf8_lossy(&output.stderr).to_string(),
    }
}
