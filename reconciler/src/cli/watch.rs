//! `nanoclaw watch [DIR]`: watch the manifest folder and apply each burst of changes
//! (`ops::watch`), as its own process against a data dir, with or without a daemon running.
//! `nanoclaw run --watch` runs the same watcher inside the daemon.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::{Ctx, Status};
use crate::ops::watch::{self, WatchOptions};

const AFTER_HELP: &str = "\
Every burst of saves in DIR (one save, twenty saves, a `git checkout` rewriting many files) is
applied once, after the folder has been quiet for 400 ms (at most 5 s after the first change).
Editor temp and swap files (`*.swp`, `*~`, `4913`, `.#*`), hidden folders and `.git/` are
ignored. The whole set is validated first: an invalid set changes nothing (the last applied
generation keeps serving), its `file:line` errors are logged and recorded for `nanoclaw status`.

Changes whose effect is `none`, `restart` or `recreate` (see `nanoclaw plan`) are applied at
once. Deletions and changes that rebuild an agent's image (`packages`) are held until you
confirm them with `nanoclaw apply DIR`, or applied too with `--allow-destroy` /
`--auto-rebuild`. The folder is applied once when the watch starts.

Examples:
  nanoclaw watch                          watch ./manifests
  nanoclaw watch ~/agents --data ~/.nanoclaw
  nanoclaw watch --auto-rebuild           also apply package changes at once";

/// Watch the manifests and apply every change (held: deletions and image rebuilds).
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct WatchArgs {
    /// Manifest directory.
    #[arg(default_value = "manifests")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub confirm: WatchConfirm,
}

/// What the watcher applies without `nanoclaw apply` (shared with `run --watch`).
#[derive(Clone, Copy, Debug, Default, Args)]
pub struct WatchConfirm {
    /// Also apply changes that rebuild an agent's image (`packages`) without waiting for
    /// `nanoclaw apply`.
    #[arg(long)]
    pub auto_rebuild: bool,
    /// Also apply deletions without waiting for `nanoclaw apply`.
    #[arg(long)]
    pub allow_destroy: bool,
}

impl From<WatchConfirm> for WatchOptions {
    fn from(confirm: WatchConfirm) -> WatchOptions {
        WatchOptions {
            auto_rebuild: confirm.auto_rebuild,
            allow_destroy: confirm.allow_destroy,
        }
    }
}

pub fn run(args: WatchArgs, ctx: &Ctx) -> anyhow::Result<Status> {
    anyhow::ensure!(
        args.dir.is_dir(),
        "no manifest directory `{}`\n\nhint: pass the folder holding your manifests: `nanoclaw watch DIR`",
        args.dir.display()
    );
    ctx.paths.ensure()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let stop = CancellationToken::new();
        let tasks = tokio_util::task::TaskTracker::new();
        let signals = stop.clone();
        tasks.spawn(async move {
            super::run::wait_for_signal().await;
            signals.cancel();
        });
        tasks.close();
        watch::run(
            ctx.paths.clone(),
            args.dir.clone(),
            args.confirm.into(),
            stop,
        )
        .await
    })?;
    Ok(Status::Ok)
}
