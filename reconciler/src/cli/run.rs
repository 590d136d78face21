//! `nanoclaw run [DIR]`: take the data dir's daemon lock, validate and apply the manifests, make
//! sure Docker and the agent image are there, then run the runtime until SIGINT/SIGTERM.
//!
//! Nothing here may panic on a broken stderr: the plan and messages go through
//! `logging::stderr()`, and the signal task cancels before it logs.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::chat::parse_duration;
use super::plan::{guard_empty, load_manifests, open_for_apply};
use super::{Ctx, Status};
use crate::apply::{self, Meta};
use crate::containers::{self, image::DEFAULT_TAG};
use crate::plan::{self, Options};
use crate::runtime::{self, Settings};

const AFTER_HELP: &str = "\
Startup: take the data dir's lock (one `run` per data dir: a second one refuses at once, naming
the first's pid and start time), validate the manifests (refuse to start on errors), apply them,
check Docker (install and start it when run as root and no daemon answers), build the agent
image when missing, remove containers this install left behind, then route messages until
Ctrl-C / SIGTERM (stop and remove this install's containers, then exit).

Examples:
  nanoclaw run                              the bundled manifests in ./manifests
  nanoclaw run ~/agents --data ~/.nanoclaw  your own manifests and state directory
  nanoclaw run --log-format json            machine-readable logs on stderr";

/// Apply the manifests and run the agents (channels, router, containers, delivery, sweep).
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct RunArgs {
    /// Manifest directory.
    #[arg(default_value = "manifests")]
    pub dir: PathBuf,
    /// Agent image for agents without an `image` override.
    #[arg(long, default_value = DEFAULT_TAG, value_name = "TAG")]
    pub image: String,
    /// Most agent containers running at once.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub max_containers: usize,
    /// Stop an agent's container after this long with nothing to do.
    #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// How often the sweep checks sessions (due messages, stuck or idle containers).
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_duration)]
    pub sweep_interval: Duration,
    /// Leave agent containers running at shutdown (the next start removes them).
    #[arg(long)]
    pub keep_containers: bool,
    /// Never install or start Docker; fail with instructions instead.
    #[arg(long)]
    pub no_docker_setup: bool,
}

pub fn run(args: RunArgs, ctx: &Ctx) -> anyhow::Result<Status> {
    ctx.paths.ensure()?;
    // Before anything touches the DB, containers or the socket: they are this daemon's only
    // while it holds the lock.
    let lock = runtime::lock::acquire(&ctx.paths)?;
    let Some(loaded) = load_manifests(&args.dir)? else {
        say!(
            "error: refusing to start: fix the manifests in `{}` first",
            args.dir.display()
        );
        return Ok(Status::Invalid);
    };
    apply_manifests(ctx, &args.dir, loaded)?;

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
        super::image::ensure_image(&docker, &args.image).await?;
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
        tasks.close();
        let settings = Settings {
            paths: ctx.paths.clone(),
            default_image: args.image.clone(),
            max_containers: args.max_containers,
            idle_timeout: args.idle_timeout,
            sweep_interval: args.sweep_interval,
            keep_containers: args.keep_containers,
        };
        runtime::run(settings, docker, stop, &lock).await
    })?;
    Ok(Status::Ok)
}

/// Applies the manifests before starting, like `nanoclaw apply --yes` (the plan goes to
/// stderr: stdout stays free for tools).
fn apply_manifests(
    ctx: &Ctx,
    dir: &std::path::Path,
    loaded: super::plan::Loaded,
) -> anyhow::Result<()> {
    let (_lock, mut conn) = open_for_apply(ctx)?;
    let current = plan::current::read(&conn)?;
    // Holding the daemon lock, no container of this install survives startup (leftovers are
    // removed), so nothing counts as running and nothing is restarted.
    let plan = plan::diff_with(
        &loaded.state,
        &current,
        Options { prune: false },
        &plan::Running::default(),
    );
    guard_empty(&loaded.state, &plan, false)?;
    if plan.is_empty() {
        info!(generation = plan.generation, "configuration up to date");
        return Ok(());
    }
    // Through a writer a closed stderr cannot turn into a panic.
    let _ = write!(
        crate::logging::stderr(),
        "{}",
        plan::render::render(&plan, false)
    );
    let meta = Meta {
        manifest_digest: loaded.digest,
        git_commit: apply::git_commit(dir),
    };
    let outcome = apply::apply(&mut conn, &loaded.state, &plan, &current, &meta)?;
    info!(generation = outcome.generation, "manifests applied");
    Ok(())
}

async fn wait_for_signal() {
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
