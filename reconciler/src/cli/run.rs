//! `nanoclaw run [DIR]`: take the data dir's daemon lock, validate and apply the manifests
//! (`ops::apply` in `Mode::Run`, through `apply`'s display: deletions only when confirmed), make sure Docker and the agent
//! image are there, then run the runtime until SIGINT/SIGTERM.
//!
//! Nothing here may panic on a broken stderr: the plan and messages go through
//! `logging::stderr()`, and the signal task cancels before it logs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::apply::apply_dir;
use super::chat::parse_duration;
use super::{Ctx, Status};
use crate::containers::{self, AgentImages, Recipe};
use crate::ops::{self, Applied, ApplyRequest, Mode};
use crate::runtime::{self, Settings};
use crate::{credentials, env};

const AFTER_HELP: &str = "\
What `run DIR` does to the database: it applies DIR like `nanoclaw apply` (the same checks,
one transaction). Additions and changes are written without asking. Deletions (resources an
earlier apply wrote that DIR no longer lists, agents with their sessions) are written only with
`--yes` or a `y` on a terminal; otherwise they are held back: listed, left in the database, and
the daemon starts with them (apply them later with `nanoclaw apply DIR`). Rows made at runtime
(paired users, auto-created chats) are deleted only with `--prune`, which is a deletion too.

Startup: take the data dir's lock (one `run` per data dir: a second one refuses at once, naming
the first's pid and start time), validate the manifests (refuse to start on errors), apply them
as above, check Docker (install and start it when run as root and no daemon answers), build the agent
images the agents need when missing or out of date (`mock` agents: the minimal image
nanoclaw-agent:latest; every other provider: the production image nanoclaw-agent:production,
whose first build takes a few minutes; see `nanoclaw image build --help`), remove containers this
install left behind, then route messages until Ctrl-C / SIGTERM (stop and remove this install's
containers, then exit).

The agent-runner those images get comes from --runner, else NANOCLAW_RUNNER, else `agent-runner`
beside the nanoclaw executable: no Rust toolchain is needed. Only when none is there and nanoclaw
runs from its source checkout is the runner built there with cargo (a developer build); without
either, existing images are used as they are.

Examples:
  nanoclaw run                              the bundled manifests in ./manifests
  nanoclaw run ~/agents --data ~/.nanoclaw  your own manifests and state directory
  nanoclaw run --yes                        also apply deletions without asking
  nanoclaw run --watch                      also apply every saved change (see `nanoclaw watch --help`)
  nanoclaw run --runner ./agent-runner      the static runner for the agent images
  nanoclaw run --log-format json            machine-readable logs on stderr";

/// Apply the manifests and run the agents (channels, router, containers, delivery, sweep).
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct RunArgs {
    /// Manifest directory.
    #[arg(default_value = "manifests")]
    pub dir: PathBuf,
    /// Also apply deletions (and prunes) without asking; without it they are asked about on a
    /// terminal, and held back otherwise.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Also delete configuration made at runtime that the manifests do not list (a deletion:
    /// needs `--yes` or a yes on a terminal).
    #[arg(long)]
    pub prune: bool,
    /// Allow a manifest set with no resources to delete every managed resource.
    #[arg(long)]
    pub allow_empty: bool,
    /// Agent image for every agent without its own `image`, whatever its provider (built with
    /// the production recipe when some agent needs it, else the minimal one). Default: each
    /// agent gets the image of its provider's recipe.
    #[arg(long, value_name = "TAG")]
    pub image: Option<String>,
    /// Most agent containers running at once.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub max_containers: usize,
    /// Stop an agent's container after this long with nothing to do.
    #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// How often the sweep checks sessions (due messages, stuck or idle containers).
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_duration)]
    pub sweep_interval: Duration,
    /// How long an approval card (an unknown sender, a new chat, a pairing) may be answered;
    /// unanswered, it expires and what it asked about stays refused.
    #[arg(long, default_value = "24h", value_name = "DURATION", value_parser = parse_duration)]
    pub approval_ttl: Duration,
    /// Leave agent containers running at shutdown (the next start removes them).
    #[arg(long)]
    pub keep_containers: bool,
    /// Never install or start Docker; fail with instructions instead.
    #[arg(long)]
    pub no_docker_setup: bool,
    /// Watch DIR and apply every change while running (`nanoclaw watch --help`): deletions
    /// and image rebuilds are held until `nanoclaw apply`.
    #[arg(long)]
    pub watch: bool,
    #[command(flatten)]
    pub watch_confirm: super::watch::WatchConfirm,
    /// Static agent-runner binary for the agent images built or refreshed at startup (default:
    /// NANOCLAW_RUNNER, else `agent-runner` beside nanoclaw; see `nanoclaw image build --help`).
    #[arg(long, value_name = "PATH")]
    pub runner: Option<PathBuf>,
}

pub fn run(args: RunArgs, ctx: &Ctx) -> anyhow::Result<Status> {
    let base_url = env::get(env::NANOCLAW_ANTHROPIC_BASE_URL)
        .unwrap_or_else(|| credentials::upstream::DEFAULT_BASE_URL.to_string());
    let anthropic_upstream = credentials::Upstream::parse(&base_url).with_context(|| {
        format!("`{}` is not usable\n\nhint: give a URL such as `https://api.anthropic.com` or `http://127.0.0.1:8080`", env::NANOCLAW_ANTHROPIC_BASE_URL)
    })?;
    // A runner that was asked for is checked before anything starts: a typo fails at once.
    let runner = super::image::find_runner(args.runner.as_deref())?;
    ctx.paths.ensure()?;
    // Before anything touches the DB, containers or the socket: they are this daemon's only
    // while it holds the lock.
    let lock = runtime::lock::acquire(&ctx.paths)?;
    let request = ApplyRequest {
        dir: &args.dir,
        yes: args.yes,
        prune: args.prune,
        allow_empty: args.allow_empty,
        saved_plan: None,
        mode: Mode::Run,
        no_restart: false,
    };
    // The plan goes to stderr (stdout stays free for tools), through a writer a closed pipe
    // cannot turn into a panic.
    match apply_dir(ctx, &request, &mut crate::logging::stderr())? {
        None => {
            say!(
                "error: refusing to start: fix the manifests in `{}` first",
                args.dir.display()
            );
            return Ok(Status::Invalid);
        }
        Some(Applied::Unchanged) => info!("configuration up to date"),
        Some(Applied::Cancelled) => {}
        Some(Applied::Written {
            generation,
            changed,
            held,
            ..
        }) => {
            if changed {
                info!(generation, "manifests applied");
            }
            if !held.is_empty() {
                warn!(
                    held = held.len(),
                    "deletions held back: not applied without `--yes`"
                );
            }
        }
    }

    let (mut images, needed) = images_needed(args.image.as_deref(), ctx)?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    tokio.block_on(async {
        let docker = if args.no_docker_setup {
            containers::connect().await?
        } else {
            containers::daemon::ensure_daemon(&ctx.paths.data).await?
        };
        super::image::ensure_images(&docker, &needed, runner, ctx).await?;
        let current = ops::current::read(&ctx.paths)?;
        let agents: Vec<&crate::state::Agent> = current
            .state
            .resources
            .values()
            .filter_map(|resource| match resource {
                crate::state::Resource::Agent(agent) => Some(agent),
                _ => None,
            })
            .collect();
        images.per_agent = super::image::provide_agent_images(&docker, &images, &agents, ctx)
            .await?
            .per_agent;
        let stop = CancellationToken::new();
        let signals = stop.clone();
        let tasks = tokio_util::task::TaskTracker::new();
        tasks.spawn(async move {
            wait_for_signal().await;
            // Cancel first: shutdown must never wait on a log line (stderr may be gone).
            signals.cancel();
            info!("signal received (a second signal forces exit)");
            wait_for_signal().await;
            warn!("second signal: exiting now");
            std::process::exit(130);
        });
        if args.watch {
            tasks.spawn(crate::ops::watch::run(
                ctx.paths.clone(),
                args.dir.clone(),
                args.watch_confirm.into(),
                stop.child_token(),
            ));
        }
        tasks.close();
        let settings = Settings {
            paths: ctx.paths.clone(),
            images,
            max_containers: args.max_containers,
            idle_timeout: args.idle_timeout,
            sweep_interval: args.sweep_interval,
            approval_ttl: args.approval_ttl,
            keep_containers: args.keep_containers,
            anthropic_upstream,
            env_credential: credentials::from_env(),
            self_modify: Some(lander(&ctx.paths, &args.dir)),
            claude_code_env: env::PASSED_TO_CLAUDE_CODE
                .iter()
                .filter_map(|name| Some((name.to_string(), env::get(name)?)))
                .collect(),
        };
        runtime::run(settings, docker, stop, &lock).await
    })?;
    Ok(Status::Ok)
}

/// Lands approved self-modifications in the manifests in `dir` through `ops::self_modify`
/// (docs/runtime.md#self-modification); the sentence the approver reads.
fn lander(paths: &crate::paths::Paths, dir: &std::path::Path) -> runtime::approvals::Lander {
    let paths = paths.clone();
    // The daemon may change its directory; the manifests stay where they were.
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let writable = !env::flag(env::NANOCLAW_MANIFESTS_READONLY);
    runtime::approvals::Lander(std::sync::Arc::new(move |modification| {
        let request = &modification.request;
        let landed = ops::self_modify::land(
            &paths,
            &ops::self_modify::Request {
                dir: &dir,
                agent: &request.agent,
                change: &request.change,
                approver: &modification.approver,
                approval: &modification.approval,
                writable,
            },
        )
        .map_err(|err| err.to_string())?;
        Ok(ops::self_modify::summary(
            &request.agent,
            &request.change,
            &landed,
        ))
    }))
}

/// The images of this run and the ones to provide, from the agents in the DB after the apply
/// (held-back ones included: the runtime runs them too). `--image` is always provided.
fn images_needed(
    image: Option<&str>,
    ctx: &Ctx,
) -> anyhow::Result<(AgentImages, Vec<(String, Recipe)>)> {
    let images = image.map_or_else(AgentImages::default, AgentImages::single);
    let current = ops::current::read(&ctx.paths)?;
    let mut needed = images.needed(super::image::agents(current.state.resources.values()));
    if let Some(tag) = image {
        needed.entry(tag.to_string()).or_insert(Recipe::Minimal);
    }
    Ok((images, needed.into_iter().collect()))
}

pub(super) async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
