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
    let spec = ImageBuild {
        tag: args.tag.clone(),
        recipe,
        runner: runner.clone(),
    };
    let tty = std::io::stderr().is_terminal();
    eprintln!(
        "building `{}` (recipe {}) with runner {}",
        args.tag,
        recipe.name(),
        runner.display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let docker = containers::connect().await?;
        containers::build_image(&docker, spec, |progress| print_progress(&progress, tty)).await
    })?;
    println!("built {}", args.tag);
    Ok(Status::Ok)
}

/// Steps stand out on a terminal (bold); other lines are indented. Plain text otherwise.
fn print_progress(progress: &BuildProgress, tty: bool) {
    match (progress, tty) {
        (BuildProgress::Step(line), true) => eprintln!("\x1b[1m{line}\x1b[0m"),
        (BuildProgress::Step(line), false) => eprintln!("{line}"),
        (BuildProgress::Output(line), true) => eprintln!("\x1b[2m  {line}\x1b[0m"),
        (BuildProgress::Output(line), false) => eprintln!("  {line}"),
    }
}

/// The source tree this binary was built from (for the default runner path).
fn source_tree() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

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
    if built.is_file() {
        return Ok(built);
    }
    anyhow::ensure!(
        repo.join("agent-runner/Cargo.toml").is_file(),
        "no agent-runner binary at `{}` and no source tree to build it from\n\nhint: pass --runner PATH (a static x86_64 musl build of agent-runner)",
        built.display()
    );
    eprintln!(
        "no runner at {}; building it: cargo build -p agent-runner --release --target {MUSL_TARGET}",
        built.display()
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
            eprintln!("{line}");
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
    fn missing_musl_target_is_recognised() {
        let rustc = "error[E0463]: can't find crate for `core`\n  = note: the `x86_64-unknown-linux-musl` target may not be installed\n";
        assert!(is_missing_target(rustc));
        assert!(!is_missing_target("error[E0308]: mismatched types\n"));
    }
}
