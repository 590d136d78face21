//! `nanoclaw plan`: show what `apply` would change in the central DB and what each change does
//! to running agents (`ops::plan`). Never creates or writes the DB. Also holds
//! [`load_manifests`], the loading step `apply`, `run` and `image build` share: `ops::load`
//! with its warnings and diagnostics shown.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use super::{Ctx, Status};
use crate::manifest::diagnostic::render_styled;
use crate::ops::{self, Loaded, OpsError, PlanRequest};
use crate::plan;

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
    let request = PlanRequest {
        prune: args.prune,
        allow_empty: args.allow_empty,
    };
    let planned = ops::plan(&ctx.paths, &loaded.state, request)?;
    let plan = &planned.plan;
    if args.json {
        println!("{}", plan::json::to_string_pretty(plan, &loaded.digest));
    } else {
        print!("{}", plan::render::render(plan, ctx.color));
    }
    if let Some(out) = &args.out {
        ops::plan::save(&planned, &loaded, out)?;
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

/// Loads `dir` (`ops::load`, checking mounts on this machine); prints the diagnostics and
/// returns `None` when any is an error. Warnings are printed (to stderr) and do not stop
/// `plan`, `apply` or `run`.
pub(crate) fn load_manifests(dir: &Path, ctx: &Ctx) -> anyhow::Result<Option<Loaded>> {
    match ops::load(dir, &ctx.paths.data) {
        Ok(loaded) => {
            if !loaded.warnings.is_empty() {
                let text = render_styled(&loaded.warnings, ctx.color_stderr) + "\n";
                let _ = crate::logging::stderr().write_all(text.as_bytes());
            }
            Ok(Some(loaded))
        }
        Err(OpsError::Invalid { diagnostics }) => {
            let text = render_styled(&diagnostics, ctx.color_stderr);
            let _ = crate::logging::stderr().write_all(text.as_bytes());
            Ok(None)
        }
        Err(err) => Err(err.into()),
    }
}
