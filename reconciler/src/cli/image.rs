//! `nanoclaw image build`: find (or compile) the static agent-runner and build the agent image
//! through the Docker daemon, streaming the build's steps.
//!
//! The build itself is `containers::build_image`; this file only locates inputs and prints.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use super::{Ctx, Status};
use crate::containers::image::{DEFAULT_TAG, Recipe};
use crate::containers::{self, BuildProgress, ImageBuild};

/// The musl target the runner is built for (static binary for a `FROM scratch` image).
const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

/// Manage the agent container image.
#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build the agent image (works offline: the minimal recipe is `FROM scratch`).
    ///
    /// The static runner comes from --runner, else
    /// target/x86_64-unknown-linux-musl/release/agent-runner in the source tree, else it is
    /// compiled with `cargo build -p agent-runner --release --target x86_64-unknown-linux-musl`.
    ///
    /// Example: nanoclaw image build --tag nanoclaw-agent:latest
    Build(BuildArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Image tag. Shared by every install on this machine.
    #[arg(long, default_value = DEFAULT_TAG)]
    pub tag: String,
    /// Static agent-runner binary to put in the image.
    #[arg(long, value_name = "PATH")]
    pub runner: Option<PathBuf>,
    /// Recipe: a folder under container/.
    #[arg(long, value_enum, default_value_t = RecipeArg::Minimal)]
    pub recipe: RecipeArg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RecipeArg {
    /// `FROM scratch` + the runner (tests, mock provider).
    Minimal,
}

pub fn run(args: ImageArgs, _ctx: &Ctx) -> anyhow::Result<Status> {
    match args.command {
        ImageCommand::Build(build) => run_build(build),
    }
}

fn run_build(args: BuildArgs) -> anyhow::Result<Status> {
    let recipe = match args.recipe {
        RecipeArg::Minimal => Recipe::Minimal,
    };
    let runner = locate_runner(args.runner)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let docker = containers::connect().await?;
        build(&docker, &args.tag, recipe, &runner).await
    })?;
    println!("built {}", args.tag);
    Ok(Status::Ok)
}

/// Builds `tag` from `recipe` with `runner`, streaming progress to stderr.
async fn build(
    docker: &containers::Docker,
    tag: &str,
    recipe: Recipe,
    runner: &Path,
) -> anyhow::Result<()> {
    let tty = std::io::stderr().is_terminal();
    say!(
        "building `{tag}` (recipe {}) with runner {}",
        recipe.name(),
        runner.display()
    );
    let spec = ImageBuild {
        tag: tag.to_string(),
        recipe,
        runner: runner.to_path_buf(),
    };
    containers::build_image(docker, spec, |progress| print_progress(&progress, tty)).await?;
    Ok(())
}

/// For `nanoclaw run`: makes sure `tag` exists and, when this binary's source tree is at
/// hand, that it holds the current runner (the runner is rebuilt with cargo, a no-op when
/// fresh, and the image is rebuilt when its runner-digest label differs). Without a source
/// tree an existing image is used as it is.
pub(crate) async fn ensure_image(docker: &containers::Docker, tag: &str) -> anyhow::Result<()> {
    let current = containers::image::image_runner_digest(docker, tag).await?;
    let exists = current.is_some() || containers::image_exists(docker, tag).await?;
    let repo = source_tree();
    if exists && !repo.join("agent-runner/Cargo.toml").is_file() {
        return Ok(());
    }
    let runner = tokio::task::spawn_blocking(|| locate_runner(None)).await??;
    let bytes =
        std::fs::read(&runner).with_context(|| format!("reading `{}`", runner.display()))?;
    if current.as_deref() == Some(containers::image::runner_digest(&bytes).as_str()) {
        return Ok(());
    }
    let why = if exists {
        "its agent-runner is out of date"
    } else {
        "it is missing"
    };
    tracing::info!(image = %tag, "building the agent image: {why}");
    build(docker, tag, Recipe::Minimal, &runner).await
}

/// Steps stand out on a terminal (bold); other lines are indented. Plain text otherwise.
fn print_progress(progress: &BuildProgress, tty: bool) {
    match (progress, tty) {
        (BuildProgress::Step(line), true) => say!("\x1b[1m{line}\x1b[0m"),
        (BuildProgress::Step(line), false) => say!("{line}"),
        (BuildProgress::Output(line), true) => say!("\x1b[2m  {line}\x1b[0m"),
        (BuildProgress::Output(line), false) => say!("  {line}"),
    }
}

/// The source tree this binary was built from (for the default runner path).
fn source_tree() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The runner to put in the image: `--runner`, else a fresh build from this binary's source
/// tree (cargo is incremental: a no-op when nothing changed, so the image never gets a stale
/// runner), else a previously built one.
fn locate_runner(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        anyhow::ensure!(path.is_file(), "runner `{}` does not exist", path.display());
        return Ok(path);
    }
    let repo = source_tree();
    let built = repo
        .join("target")
        .join(MUSL_TARGET)
        .join("release/agent-runner");
    let have_source = repo.join("agent-runner/Cargo.toml").is_file();
    let have_cargo = Command::new("cargo")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    match (have_source && have_cargo, built.is_file()) {
        (true, _) => {}
        (false, true) => return Ok(built),
        (false, false) => anyhow::bail!(
            "no agent-runner binary at `{}` and no source tree and cargo to build it from\n\nhint: pass --runner PATH (a static x86_64 musl build of agent-runner)",
            built.display()
        ),
    }
    provision_musl()?;
    say!(
        "building the static agent-runner: cargo build -p agent-runner --release --target {MUSL_TARGET}"
    );
    let output = Command::new("cargo")
        .args([
            "build",
            "-p",
            "agent-runner",
            "--release",
            "--target",
            MUSL_TARGET,
        ])
        .current_dir(&repo)
        .stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::piped())
        .output()
        .context("cannot run `cargo` to build the agent-runner")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let lines: Vec<&str> = stderr.lines().collect();
        for line in &lines[lines.len().saturating_sub(40)..] {
            say!("{line}");
        }
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
        anyhow::bail!("building the agent-runner failed ({})", output.status);
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
