//! `nanoclaw image build`: decide which images to provide (the recipes the manifests' agents
//! need, or `--recipe`), reuse an image that already holds this recipe and runner, else build
//! it (making the Debian base first for the production recipe) with a progress display, and
//! keep the full log when a build fails. `nanoclaw run` provides its images the same way.
//!
//! Which recipe an agent needs and whether an image is current are decided in
//! `containers::image` (pure); building is `containers::build` and `containers::base`. The
//! runner put in an image is found by `image/runner.rs` (`--runner`, `NANOCLAW_RUNNER`, beside
//! `nanoclaw`); only in a source checkout without one does `image/dev_runner.rs` build it.

mod dev_runner;
mod progress;
mod runner;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use self::progress::{BuildDisplay, duration_text, size_text};
use super::{Ctx, Status};
use crate::containers::base::{self, BOOKWORM, BaseOutcome};
use crate::containers::image::{self, CLAUDE_CODE_VERSION, Freshness, Recipe};
use crate::containers::{self, AgentImages, ImageBuild};
use crate::ops;
use crate::state::{Agent, Resource};
use crate::style;

const BUILD_AFTER_HELP: &str = "\
Which images: without --recipe, the ones the agents in DIR need: agents with the `mock` provider
run in the small `minimal` image (FROM scratch + the runner, nanoclaw-agent:latest); every other
provider (`claude`, the default) needs the `production` image (Debian bookworm, tini, git, curl,
jq, ripgrep, python3, Node, Claude Code, the runner; nanoclaw-agent:production). Agents with
their own `image` need nothing. Both tags are shared by every install on this machine.

An image that already holds this recipe and runner (its labels say so) is reused, not rebuilt.
The production recipe starts from a Debian base made here with debootstrap (needs root; as
another user the command to run is printed) and downloads Claude Code from the npm registry
with the host's CA bundle, which stays out of the final image. No container registry is used.

On a terminal the build shows a progress bar; otherwise one line per step and output line.
When a build fails, its full log is kept in <data>/logs/ and its path printed.

Examples:
  nanoclaw image build                          the images the agents in ./manifests need
  nanoclaw image build ~/agents                 the images the agents in ~/agents need
  nanoclaw image build --recipe production      the production image
  nanoclaw image build --recipe minimal --tag my-agent:dev --runner ./agent-runner";

/// Manage the agent container images.
#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build the agent images the manifests need (no container registry involved).
    ///
    /// The static agent-runner put in the image comes from --runner, else NANOCLAW_RUNNER,
    /// else `agent-runner` beside the nanoclaw executable; no Rust toolchain is needed. Only
    /// when none is there and nanoclaw runs from its source checkout is the runner built
    /// there (developer build: `cargo build -p agent-runner --release --target
    /// x86_64-unknown-linux-musl`, installing the musl target and musl-tools when it can).
    #[command(after_help = BUILD_AFTER_HELP)]
    Build(BuildArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Manifest directory whose agents decide which images to build (not with --recipe).
    #[arg(default_value = "manifests", conflicts_with = "recipe")]
    pub dir: PathBuf,
    /// Build this recipe (a folder under container/) instead of what the manifests need.
    #[arg(long, value_enum)]
    pub recipe: Option<RecipeArg>,
    /// Image tag for --recipe. Default: the recipe's tag, shared by every install here.
    #[arg(long, requires = "recipe")]
    pub tag: Option<String>,
    /// Static agent-runner binary to put in the image (default: NANOCLAW_RUNNER, else
    /// `agent-runner` beside nanoclaw).
    #[arg(long, value_name = "PATH")]
    pub runner: Option<PathBuf>,
    /// Debian bookworm image the production recipe starts from, instead of the base made
    /// here with debootstrap.
    #[arg(long, value_name = "IMAGE")]
    pub base: Option<String>,
    /// Build even when an image with this recipe and runner exists (Docker's layer cache
    /// still applies).
    #[arg(long)]
    pub force: bool,
    /// Redo every step (fresh Debian packages, a new Claude Code download); implies --force.
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RecipeArg {
    /// `FROM scratch` + the runner (tests, mock provider).
    Minimal,
    /// Debian bookworm + tools + Node + Claude Code + the runner (every other provider).
    Production,
}

impl From<RecipeArg> for Recipe {
    fn from(arg: RecipeArg) -> Recipe {
        match arg {
            RecipeArg::Minimal => Recipe::Minimal,
            RecipeArg::Production => Recipe::Production,
        }
    }
}

/// How to provide one image.
#[derive(Clone, Debug, Default)]
pub(crate) struct Options {
    /// `--base`: start the production recipe from this image instead of the local base.
    pub base: Option<String>,
    /// `--force`: build even when current.
    pub force: bool,
    /// `--no-cache`: no layer cache.
    pub no_cache: bool,
}

/// What providing one image did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Provided {
    /// It already held this recipe and runner.
    Reused,
    /// It was built.
    Built,
}

pub fn run(args: ImageArgs, ctx: &Ctx) -> anyhow::Result<Status> {
    match args.command {
        ImageCommand::Build(build) => run_build(build, ctx),
    }
}

fn run_build(args: BuildArgs, ctx: &Ctx) -> anyhow::Result<Status> {
    // A runner that was asked for is checked before anything else: a typo fails at once.
    let found = runner::find(args.runner.as_deref())?;
    let mut with_packages: Vec<Agent> = Vec::new();
    let targets = match args.recipe {
        Some(recipe) => {
            let recipe = Recipe::from(recipe);
            let tag = args.tag.clone();
            vec![(
                tag.unwrap_or_else(|| recipe.default_tag().to_string()),
                recipe,
            )]
        }
        None => {
            anyhow::ensure!(
                args.dir.is_dir(),
                "no manifest directory `{}`: nothing says which images the agents need\n\nhint: pass the folder holding your manifests (`nanoclaw image build DIR`) or a recipe (`nanoclaw image build --recipe minimal` or `--recipe production`)",
                args.dir.display()
            );
            let Some(loaded) = super::plan::load_manifests(&args.dir, ctx)? else {
                return Ok(Status::Invalid);
            };
            let needed = AgentImages::default().needed(agents(loaded.state.resources.values()));
            with_packages = loaded
                .state
                .resources
                .values()
                .filter_map(|resource| match resource {
                    Resource::Agent(agent) if ops::agent_images::has_packages(agent) => {
                        Some(agent.clone())
                    }
                    _ => None,
                })
                .collect();
            if needed.is_empty() && with_packages.is_empty() {
                say!(
                    "no agent in `{}` needs an image from nanoclaw (each names its own `image`)",
                    args.dir.display()
                );
                return Ok(Status::Ok);
            }
            needed.into_iter().collect()
        }
    };
    let runner = match found {
        Some(path) => path,
        None => runner::fallback()?,
    };
    let options = Options {
        base: args.base.clone(),
        force: args.force || args.no_cache,
        no_cache: args.no_cache,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let docker = containers::connect().await?;
        for (tag, recipe) in &targets {
            match provide(&docker, tag, *recipe, &runner, &options, ctx).await? {
                Provided::Reused => {
                    say!(
                        "reused `{tag}`: it already holds recipe {} and this runner (its labels say so); `--force` rebuilds",
                        recipe.name()
                    );
                    println!("{} {tag}", style::paint(style::ADDED, "reused", ctx.color));
                }
                Provided::Built => {
                    println!("{} {tag}", style::paint(style::ADDED, "built", ctx.color));
                }
            }
        }
        if with_packages.is_empty() {
            return anyhow::Ok(Status::Ok);
        }
        ctx.paths.ensure()?;
        let agents: Vec<&Agent> = with_packages.iter().collect();
        let provided = provide_agent_images(&docker, &AgentImages::default(), &agents, ctx).await?;
        for (agent, tag) in &provided.per_agent {
            let built = provided.built.iter().any(|(name, _)| name == agent);
            println!("{} {tag} (agent {agent})", if built { "built" } else { "reused" });
        }
        anyhow::Ok(if provided.failures.is_empty() {
            Status::Ok
        } else {
            Status::Error
        })
    })
}

/// Provides the per-agent images of `agents` (those with packages) on the images of this run,
/// showing each build like a recipe's and saying what failed (the agent keeps its previous
/// image). `nanoclaw run` and `nanoclaw image build` both call it.
pub(crate) async fn provide_agent_images(
    docker: &containers::Docker,
    images: &AgentImages,
    agents: &[&Agent],
    ctx: &Ctx,
) -> anyhow::Result<ops::agent_images::Provided> {
    let terminal = std::io::stderr().is_terminal();
    let mut display = BuildDisplay::new(terminal, ctx.color && terminal);
    let mut current = String::new();
    let mut progress = |agent: &str, event: containers::BuildProgress| {
        if agent != current {
            current = agent.to_string();
            display.note(&format!(
                "building the image of agent `{agent}` (its `packages`)"
            ));
        }
        display.event(event);
    };
    let provided =
        ops::agent_images::provide(&ctx.paths, docker, images, agents, &mut progress).await?;
    display.finish();
    for (agent, tag) in &provided.built {
        say!("built `{tag}` for agent `{agent}`");
    }
    for failure in &provided.failures {
        let kept = provided
            .per_agent
            .get(&failure.agent)
            .map_or("its provider's image".to_string(), |tag| format!("`{tag}`"));
        say!(
            "error: {failure}\n\nhint: the agent keeps running on {kept}; fix its `packages` and apply again (the error is recorded for `nanoclaw status`)"
        );
    }
    for tag in &provided.pruned {
        say!("removed the old agent image `{tag}`");
    }
    Ok(provided)
}

/// `(provider, own image, has packages)` of every agent among `resources`.
pub(crate) fn agents<'a>(
    resources: impl IntoIterator<Item = &'a Resource>,
) -> impl Iterator<Item = (Option<&'a str>, Option<&'a str>, bool)> {
    resources.into_iter().filter_map(|resource| match resource {
        Resource::Agent(agent) => Some((
            agent.provider.as_deref(),
            agent.image.as_deref(),
            !agent.packages.apt.is_empty() || !agent.packages.npm.is_empty(),
        )),
        _ => None,
    })
}

/// Provides `tag` from `recipe` with `runner`: reused when its labels say it already holds
/// them (unless `--force`), else built (the Debian base first, when the recipe needs one).
/// A failed build keeps its full log in `<data>/logs/` and says where.
pub(crate) async fn provide(
    docker: &containers::Docker,
    tag: &str,
    recipe: Recipe,
    runner: &Path,
    options: &Options,
    ctx: &Ctx,
) -> anyhow::Result<Provided> {
    let runner_bytes =
        std::fs::read(runner).with_context(|| format!("reading `{}`", runner.display()))?;
    let runner_digest = image::runner_digest(&runner_bytes);
    let base_tag = recipe
        .needs_base()
        .then(|| options.base.clone().unwrap_or_else(|| BOOKWORM.tag()));
    let inputs = recipe.inputs(base_tag.as_deref());
    let labels = image::image_labels(docker, tag).await?;
    let why = match image::freshness(labels.as_ref(), &inputs.digest, &runner_digest) {
        Freshness::Current if !options.force => return Ok(Provided::Reused),
        Freshness::Current => "rebuilding as asked (`--force`)",
        Freshness::Missing => "it is missing",
        Freshness::Stale(why) => why,
    };
    let terminal = std::io::stderr().is_terminal();
    let mut display = BuildDisplay::new(terminal, ctx.color_stderr && terminal);
    let started = Instant::now();
    let what = match recipe {
        Recipe::Production => format!("recipe production, Claude Code {CLAUDE_CODE_VERSION}"),
        Recipe::Minimal => "recipe minimal".to_string(),
    };
    display.note(&format!(
        "building `{tag}` ({what}) with runner {}: {why}",
        runner.display()
    ));
    let result = build(docker, tag, recipe, runner, base_tag, options, &mut display).await;
    display.finish();
    if let Err(err) = result {
        display.record(&format!("error: {err:#}"));
        keep_log(&display, ctx, recipe);
        return Err(err);
    }
    let size = image::image_size(docker, tag)
        .await?
        .map(|bytes| format!(", {}", size_text(bytes)))
        .unwrap_or_default();
    say!(
        "built `{tag}` in {}{size}",
        duration_text(started.elapsed())
    );
    Ok(Provided::Built)
}

/// The base (when the recipe needs one), then the image.
async fn build(
    docker: &containers::Docker,
    tag: &str,
    recipe: Recipe,
    runner: &Path,
    base_tag: Option<String>,
    options: &Options,
    display: &mut BuildDisplay,
) -> anyhow::Result<()> {
    if let Some(base_tag) = &base_tag {
        if options.base.is_some() {
            anyhow::ensure!(
                image::image_exists(docker, base_tag).await?,
                "base image `{base_tag}` not found\n\nhint: `docker images` lists the images here; leave out `--base` to use the Debian base nanoclaw makes"
            );
        } else {
            let started = Instant::now();
            let outcome =
                base::ensure_base(docker, &BOOKWORM, &mut |event| display.event(event)).await?;
            if outcome == BaseOutcome::Made {
                display.note(&format!(
                    "made the Debian base `{base_tag}` in {}",
                    duration_text(started.elapsed())
                ));
            }
        }
    }
    let spec = ImageBuild {
        tag: tag.to_string(),
        recipe,
        runner: runner.to_path_buf(),
        base: base_tag,
        no_cache: options.no_cache,
    };
    containers::build_image(docker, spec, |event| display.event(event)).await?;
    Ok(())
}

/// Writes the failed build's log to `<data>/logs/` (else the temp dir) and prints its path.
fn keep_log(display: &BuildDisplay, ctx: &Ctx, recipe: Recipe) {
    let kept = display
        .keep_log(&ctx.paths.data.join("logs"), recipe.name())
        .or_else(|_| display.keep_log(&std::env::temp_dir(), recipe.name()));
    match kept {
        Ok(path) => say!("the full build log is in {}", path.display()),
        Err(err) => say!("could not keep the build log: {err}"),
    }
}

/// The runner given with `--runner` (checked), else `NANOCLAW_RUNNER`'s, else the static one
/// beside `nanoclaw`; `None` when there is none. `run` asks before it starts anything.
pub(crate) fn find_runner(flag: Option<&Path>) -> anyhow::Result<Option<PathBuf>> {
    runner::find(flag)
}

/// For `nanoclaw run`: makes sure every `(tag, recipe)` in `needed` exists and holds the
/// current recipe and runner (rebuilt when its labels differ). The runner is `runner` (from
/// [`find_runner`]); without one, one is built from the source checkout when this binary has
/// one (developer build), else an existing image is used as it is.
pub(crate) async fn ensure_images(
    docker: &containers::Docker,
    needed: &[(String, Recipe)],
    mut runner: Option<PathBuf>,
    ctx: &Ctx,
) -> anyhow::Result<()> {
    for (tag, recipe) in needed {
        let path = match &runner {
            Some(path) => path.clone(),
            None if dev_runner::checkout().is_none()
                && image::image_exists(docker, tag).await? =>
            {
                continue;
            }
            None => {
                let path = tokio::task::spawn_blocking(runner::fallback).await??;
                runner = Some(path.clone());
                path
            }
        };
        if provide(docker, tag, *recipe, &path, &Options::default(), ctx).await? == Provided::Built
        {
            tracing::info!(image = %tag, recipe = recipe.name(), "agent image built");
        }
    }
    Ok(())
}
