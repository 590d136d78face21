//! `nanoclaw apply`: make the central DB match the manifests (or a saved plan), all or nothing.
//! Shows the plan, asks on a terminal, then writes in one transaction under the apply lock.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;

use super::plan::{guard_conflicts, guard_empty, load_manifests, open_for_apply};
use super::{Ctx, Status};
use crate::apply::{self, Meta};
use crate::plan::saved::SavedPlan;
use crate::plan::{self, Options, Running};

/// Make the central DB match the manifests. Shows the plan first and asks for confirmation on
/// a terminal (`--yes` skips the question). Every change is written in one transaction.
///
/// Example: nanoclaw apply --yes
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Manifest directory.
    #[arg(default_value = "manifests", value_name = "DIR")]
    pub dir: PathBuf,
    /// Apply without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Also delete configuration made at runtime that the manifests do not list.
    #[arg(long)]
    pub prune: bool,
    /// Allow a manifest set with no resources to delete every managed resource.
    #[arg(long)]
    pub allow_empty: bool,
    /// Apply exactly this saved plan (from `plan --out FILE`); refused when stale.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
}

pub fn run(args: ApplyArgs, ctx: &Ctx) -> anyhow::Result<Status> {
    let Some(loaded) = load_manifests(&args.dir)? else {
        return Ok(Status::Invalid);
    };
    let (_lock, mut conn) = open_for_apply(ctx)?;
    let current = plan::current::read(&conn)?;
    let running = Running(crate::db::sessions::running_agents(&conn)?);
    let (desired, options) = match &args.plan {
        Some(path) => {
            let saved = SavedPlan::read(path)?;
            saved.check(path, &current, &loaded.digest, &loaded.state)?;
            (saved.desired, saved.options)
        }
        None => (loaded.state, Options { prune: args.prune }),
    };
    let plan = plan::diff_with(&desired, &current, options, &running);
    guard_empty(&desired, &plan, args.allow_empty)?;
    guard_conflicts(&desired, &current, &plan)?;
    print!("{}", plan::render::render(&plan, ctx.color));
    if plan.is_empty() {
        return Ok(Status::Ok);
    }
    if !args.yes && args.plan.is_none() && !confirm()? {
        println!("Apply cancelled.");
        return Ok(Status::Ok);
    }
    let meta = Meta {
        manifest_digest: loaded.digest,
        git_commit: apply::git_commit(&args.dir),
    };
    let outcome = apply::apply(&mut conn, &desired, &plan, &current, &meta)?;
    println!(
        "\nApply complete: {} (generation {}).",
        plan.summary().line().trim_start_matches("Plan: "),
        outcome.generation
    );
    Ok(Status::Ok)
}

/// Asks `Apply these changes? [y/N]` on a terminal; refuses without one.
fn confirm() -> anyhow::Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        anyhow::bail!(
            "refusing to apply without confirmation: stdin is not a terminal; pass `--yes` to \
             apply anyway"
        );
    }
    print!("\nApply these changes? [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
