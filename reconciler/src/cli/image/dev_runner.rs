//! Developer tooling, kept apart from the product path: building the static agent-runner from
//! the source checkout this `nanoclaw` was compiled from (`rustup target add
//! x86_64-unknown-linux-musl`, Debian's `musl-tools` for the bundled SQLite, then `cargo build
//! -p agent-runner --release --target x86_64-unknown-linux-musl`).
//!
//! `runner.rs` comes here only when no runner was given (`--runner`, `NANOCLAW_RUNNER`) or
//! installed beside `nanoclaw` and the checkout is at hand: `cargo run -- run` in a clone works
//! on a fresh machine, while an installed `nanoclaw` never needs a Rust toolchain.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

/// The musl target the runner is built for (static binary for a `FROM scratch` image).
pub(super) const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

/// The source checkout this binary was built from, when it is still there (it holds
/// `agent-runner/Cargo.toml`).
pub(super) fn checkout() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    root.join("agent-runner/Cargo.toml")
        .is_file()
        .then(|| root.to_path_buf())
}

/// Builds the runner in `checkout` (cargo is incremental: a no-op when nothing changed, so an
/// image never gets a stale runner), installing the musl target and tools first when it can.
/// Without cargo, a runner built earlier in the checkout is used.
pub(super) fn build(checkout: &Path) -> anyhow::Result<PathBuf> {
    let built = checkout
        .join("target")
        .join(MUSL_TARGET)
        .join("release")
        .join(super::runner::RUNNER_FILE);
    let have_cargo = Command::new("cargo")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !have_cargo {
        anyhow::ensure!(
            built.is_file(),
            "no agent-runner given or beside `nanoclaw`, and building one from the source \
             checkout `{}` needs cargo, which is not on PATH\n\nhint: pass `--runner PATH` (a \
             static x86_64 Linux build of agent-runner) or install a Rust toolchain",
            checkout.display()
        );
        say!(
            "using the agent-runner built earlier in the source checkout: {} (no cargo on PATH to rebuild it)",
            built.display()
        );
        return Ok(built);
    }
    provision_musl()?;
    say!(
        "no agent-runner given (`--runner`, NANOCLAW_RUNNER) or beside `nanoclaw`: building it from the source checkout {} with cargo build -p agent-runner --release --target {MUSL_TARGET}",
        checkout.display()
    );
    let mut child = Command::new("cargo")
        .args([
            "build",
            "-p",
            "agent-runner",
            "--release",
            "--target",
            MUSL_TARGET,
        ])
        .current_dir(checkout)
        .stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot run `cargo` to build the agent-runner")?;
    // Cargo's lines are shown as they come (a first build takes minutes) and kept for the
    // diagnosis of a failure.
    let mut stderr = String::new();
    if let Some(pipe) = child.stderr.take() {
        use std::io::BufRead;
        for line in std::io::BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            say!("  cargo: {}", line.trim_start());
            stderr.push_str(&line);
            stderr.push('\n');
        }
    }
    let status = child
        .wait()
        .context("waiting for `cargo` building the agent-runner")?;
    if !status.success() {
        if is_missing_target(&stderr) {
            anyhow::bail!(
                "the Rust target {MUSL_TARGET} is not installed\n\nhint: run `rustup target add {MUSL_TARGET}`"
            );
        }
        if stderr.contains("musl-gcc") {
            anyhow::bail!(
                "building the agent-runner needs a musl C compiler (for the bundled SQLite)\n\nhint: run `sudo apt-get install -y musl-tools`"
            );
        }
        anyhow::bail!("building the agent-runner failed ({status})");
    }
    anyhow::ensure!(
        built.is_file(),
        "cargo succeeded but `{}` is missing",
        built.display()
    );
    Ok(built)
}

/// What the static build still needs on this machine, and how it will be provided.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Provision {
    /// `rustup target add x86_64-unknown-linux-musl`.
    RustupTarget,
    /// `apt-get install -y musl-tools` (we are root).
    AptMuslTools,
    /// musl-gcc is missing and we cannot install it: the error says what to run.
    AskForMuslTools,
}

/// Decides the provisioning steps (pure): the musl target via rustup when rustup exists,
/// `musl-tools` via apt when root, else a clear instruction.
fn provision_plan(
    has_target: bool,
    has_rustup: bool,
    has_musl_gcc: bool,
    is_root: bool,
) -> Vec<Provision> {
    let mut steps = Vec::new();
    if !has_target && has_rustup {
        steps.push(Provision::RustupTarget);
    }
    if !has_musl_gcc {
        steps.push(if is_root {
            Provision::AptMuslTools
        } else {
            Provision::AskForMuslTools
        });
    }
    steps
}

/// Installs what the static runner build needs (a fresh Debian machine with only rustup).
fn provision_musl() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    let has_rustup = installed.as_ref().is_ok_and(|out| out.status.success());
    let has_target = installed.as_ref().is_ok_and(|out| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|line| line.trim() == MUSL_TARGET)
    });
    let has_musl_gcc = Command::new("musl-gcc").arg("--version").output().is_ok();
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    for step in provision_plan(has_target, has_rustup, has_musl_gcc, is_root) {
        match step {
            Provision::RustupTarget => {
                say!("installing the Rust target {MUSL_TARGET}: rustup target add {MUSL_TARGET}");
                let status = Command::new("rustup")
                    .args(["target", "add", MUSL_TARGET])
                    .status()?;
                anyhow::ensure!(status.success(), "`rustup target add {MUSL_TARGET}` failed");
            }
            Provision::AptMuslTools => {
                say!(
                    "installing musl-tools (musl-gcc, for the static runner's bundled SQLite): apt-get install -y musl-tools"
                );
                let update = Command::new("apt-get").args(["update", "-qq"]).status()?;
                anyhow::ensure!(update.success(), "`apt-get update` failed");
                let status = Command::new("apt-get")
                    .args(["install", "-y", "-qq", "musl-tools"])
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .status()?;
                anyhow::ensure!(status.success(), "`apt-get install -y musl-tools` failed");
            }
            Provision::AskForMuslTools => anyhow::bail!(
                "building the static agent-runner needs musl-gcc (for the bundled SQLite)\n\nhint: run `sudo apt-get install -y musl-tools`, then try again"
            ),
        }
    }
    Ok(())
}

/// Cargo's complaints when the standard library for a target is absent.
fn is_missing_target(stderr: &str) -> bool {
    stderr.contains("target may not be installed")
        || stderr.contains("can't find crate for `std`")
        || stderr.contains("can't find crate for `core`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provisioning_installs_what_it_can_and_asks_for_the_rest() {
        use Provision::*;
        assert_eq!(provision_plan(true, true, true, false), vec![]);
        assert_eq!(
            provision_plan(false, true, false, true),
            vec![RustupTarget, AptMuslTools]
        );
        assert_eq!(
            provision_plan(false, true, false, false),
            vec![RustupTarget, AskForMuslTools]
        );
        assert_eq!(
            provision_plan(false, false, true, true),
            vec![],
            "no rustup: cargo's error says what to run"
        );
    }

    #[test]
    fn missing_musl_target_is_recognised() {
        let rustc = "error[E0463]: can't find crate for `core`\n  = note: the `x86_64-unknown-linux-musl` target may not be installed\n";
        assert!(is_missing_target(rustc));
        assert!(!is_missing_target("error[E0308]: mismatched types\n"));
    }
}
