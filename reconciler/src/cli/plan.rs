//! `nanoclaw plan`: show what `apply` would change in the central DB and what each change does
//! to running agents. Never creates or writes the DB. Also holds the loading steps and guards
//! `apply` and `run` share (manifests, the locked DB, the empty-manifest and conflict guards).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::{Ctx, Status};
use crate::plan::saved::SavedPlan;
use crate::plan::{self, Current, Options, Plan, Running};
use crate::state::State;

/// Show what `apply` would change: summary first, then what it does to each agent (new,
/// removed, restart, recreate, rebuild, or next start when none of its containers runs), each
/// resource's field changes with their effect, and any drift.
///
/// Example: nanoclaw plan manifests --detailed-exitcode
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Manifest directory.
    #[arg(default_value = "manifests", value_name = "DIR")]
    pub dir: PathBuf,
    /// Also delete configuration made at runtime (paired users, auto-created chats, …) that
    /// the manifests do not list.
    #[arg(long)]
    pub prune: bool,
    /// Allow a manifest set with no resources to delete every managed resource.
    #[arg(long)]
    pub allow_empty: bool,
    /// Print the plan as versioned JSON (docs/plan-format.md).
    #[arg(long)]
    pub json: bool,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Save the plan to FILE for `apply --plan FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn run(args: PlanArgs, ctx: &Ctx) -> anyhow::Result<Status> {
    let Some(loaded) = load_manifests(&args.dir, ctx)? else {
        return Ok(Status::Invalid);
    };
    let (current, running) = read_current_readonly(ctx)?;
    let options = Options { prune: args.prune };
    let plan = plan::diff_with(&loaded.state, &current, options, &running);
    guard_empty(&loaded.state, &plan, args.allow_empty)?;
    guard_conflicts(&loaded.state, &current, &plan)?;
    if args.json {
        println!("{}", plan::json::to_string_pretty(&plan, &loaded.digest));
    } else {
        print!("{}", plan::render::render(&plan, ctx.color));
    }
    if let Some(out) = &args.out {
        SavedPlan::new(&plan, &loaded.state, &current, &loaded.digest, options).write(out)?;
        if !args.json {
            println!(
                "\nSaved the plan to {}; run `nanoclaw apply --plan {}` to apply exactly it.",
                out.display(),
                out.display()
            );
        }
    }
    Ok(if args.detailed_exitcode && !plan.is_empty() {
        Status::Changes
    } else {
        Status::Ok
    })
}

/// Manifests loaded and validated: the desired state and its digest.
pub(crate) struct Loaded {
    pub state: State,
    pub digest: String,
}

/// Loads `dir`, checking mounts on this machine; prints the diagnostics and returns `None`
/// when any is an error. Warnings are printed (to stderr) and do not stop `plan`, `apply` or
/// `run`.
pub(crate) fn load_manifests(dir: &Path, ctx: &Ctx) -> anyhow::Result<Option<Loaded>> {
    let policy = crate::mount_policy::Policy::load(&ctx.paths.data);
    match crate::manifest::load_for_host(dir, &policy) {
        Ok(manifests) => {
            if !manifests.warnings.is_empty() {
                let text = crate::manifest::render(&manifests.warnings) + "\n";
                let _ = crate::logging::stderr().write_all(text.as_bytes());
            }
            Ok(Some(Loaded {
                state: manifests.state,
                digest: manifests.digest,
            }))
        }
        Err(diagnostics) => {
            let text = crate::manifest::render(&diagnostics);
            let _ = crate::logging::stderr().write_all(text.as_bytes());
            Ok(None)
        }
    }
}

/// The DB's configuration and the agents with a running container, read-only; an absent DB is
/// empty (plan never creates it).
fn read_current_readonly(ctx: &Ctx) -> anyhow::Result<(Current, Running)> {
    let path = ctx.paths.db();
    if !path.exists() {
        return Ok((Current::default(), Running::default()));
    }
    let conn =
        crate::db::open_readonly(&path).with_context(|| format!("opening `{}`", path.display()))?;
    let running = Running(crate::db::sessions::running_agents(&conn)?);
    Ok((crate::db::config::read(&conn)?, running))
}

/// Creates (or checks) the data dir, takes the apply lock and opens the central DB read-write:
/// the start of every command that writes the configuration (`apply`, `run`).
pub(crate) fn open_for_apply(
    ctx: &Ctx,
) -> anyhow::Result<(crate::apply::ApplyLock, rusqlite::Connection)> {
    ctx.paths.ensure()?;
    let lock = crate::apply::lock(&ctx.paths.apply_lock())?;
    let db_path = ctx.paths.db();
    let conn =
        crate::db::open(&db_path).with_context(|| format!("opening `{}`", db_path.display()))?;
    Ok((lock, conn))
}

/// Refuses a plan that would write a chat already held by a runtime row under another name.
pub(crate) fn guard_conflicts(
    desired: &State,
    current: &Current,
    plan: &Plan,
) -> anyhow::Result<()> {
    let conflicts = plan::conflicts(desired, current, plan);
    if conflicts.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = conflicts.iter().map(ToString::to_string).collect();
    anyhow::bail!("{}", lines.join("\n"))
}

/// Refuses a plan that deletes everything because the manifest set is empty.
pub(crate) fn guard_empty(desired: &State, plan: &Plan, allow_empty: bool) -> anyhow::Result<()> {
    let n_deletes = plan.deletes().len();
    if desired.is_empty() && n_deletes > 0 && !allow_empty {
        anyhow::bail!(
            "the manifests define no resources, so this would delete all {n_deletes} resources \
             in the DB; pass `--allow-empty` if that is what you want"
        );
    }
    Ok(())
}
