//! `nanoclaw apply`: make the central DB match the manifests (or a saved plan), all or nothing.
//! Shows the plan, asks on a terminal, then writes in one transaction under the apply lock.
//!
//! [`apply_dir`] is the one apply pipeline, shared with `run`: load, lock, plan, the same
//! guards, show, confirm, write. The callers differ only in [`Caller`]: what needs asking and
//! where the text goes.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::plan::{guard_conflicts, guard_empty, load_manifests, open_for_apply};
use super::{Ctx, Status};
use crate::apply::{self, Meta};
use crate::plan::saved::SavedPlan;
use crate::plan::{self, Change, Options, Running};

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
    let request = Request {
        dir: &args.dir,
        yes: args.yes,
        prune: args.prune,
        allow_empty: args.allow_empty,
        saved_plan: args.plan.as_deref(),
        caller: Caller::Apply,
    };
    let mut stdout = std::io::stdout();
    Ok(match apply_dir(ctx, &request, &mut stdout)? {
        Applied::Invalid => Status::Invalid,
        Applied::Unchanged | Applied::Cancelled | Applied::Written { .. } => Status::Ok,
    })
}

/// Who applies, which decides what needs asking, which containers count as running, and where
/// the text goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    /// `nanoclaw apply`: the whole plan is confirmed (`--yes`, a saved plan, or a `y` on a
    /// terminal; refused without one). A daemon may be running, so running containers are read
    /// from the sessions.
    Apply,
    /// `nanoclaw run`, holding the daemon lock: additions and changes are applied unasked;
    /// deletions (and prunes) need `--yes` or a `y` on a terminal, else they are held back and
    /// listed. No container of this install survives its startup, so none is restarted.
    Run,
}

/// One apply's inputs.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub dir: &'a Path,
    pub yes: bool,
    pub prune: bool,
    pub allow_empty: bool,
    pub saved_plan: Option<&'a Path>,
    pub caller: Caller,
}

/// What an apply did.
#[derive(Debug)]
pub(crate) enum Applied {
    /// The manifests have errors (printed); nothing was written.
    Invalid,
    /// The DB already matched.
    Unchanged,
    /// Declined at the prompt; nothing was written.
    Cancelled,
    /// Applied: written as generation `generation`, or nothing written (`changed` false) when
    /// every change was a held deletion; `held` lists the deletions that were not written.
    Written {
        generation: i64,
        changed: bool,
        held: Vec<Change>,
    },
}

/// The apply pipeline of `apply` and `run`: load and validate `dir` (or check a saved plan),
/// take the apply lock, plan, refuse what the guards refuse, show the plan on `out`, confirm as
/// `request.caller` needs, and write in one transaction.
pub(crate) fn apply_dir(
    ctx: &Ctx,
    request: &Request,
    out: &mut dyn Write,
) -> anyhow::Result<Applied> {
    let Some(loaded) = load_manifests(request.dir, ctx)? else {
        return Ok(Applied::Invalid);
    };
    let (_lock, mut conn) = open_for_apply(ctx)?;
    let current = crate::db::config::read(&conn)?;
    let running = match request.caller {
        Caller::Apply => Running(crate::db::sessions::running_agents(&conn)?),
        Caller::Run => Running::default(),
    };
    let (desired, options) = match request.saved_plan {
        Some(path) => {
            let saved = SavedPlan::read(path)?;
            saved.check(path, &current, &loaded.digest, &loaded.state)?;
            (saved.desired, saved.options)
        }
        None => (
            loaded.state,
            Options {
                prune: request.prune,
            },
        ),
    };
    let full = plan::diff_with(&desired, &current, options, &running);
    guard_empty(&desired, &full, request.allow_empty)?;
    guard_conflicts(&desired, &current, &full)?;
    let color = ctx.color && request.caller == Caller::Apply;
    write!(out, "{}", plan::render::render(&full, color))?;
    if full.is_empty() {
        return Ok(Applied::Unchanged);
    }
    let (plan, held) = match request.caller {
        Caller::Apply => {
            if !request.yes && request.saved_plan.is_none() && !confirm_plan(out)? {
                writeln!(out, "Apply cancelled.")?;
                return Ok(Applied::Cancelled);
            }
            (full, Vec::new())
        }
        Caller::Run => {
            let n_deletes = full.deletes().len();
            if n_deletes == 0 || request.yes || confirm_deletions(out, n_deletes)? {
                (full, Vec::new())
            } else {
                let (plan, held) = full.hold_deletions(&running);
                guard_needs_held(&desired, &current, &plan, ctx, request.dir)?;
                (plan, held)
            }
        }
    };
    let meta = Meta {
        manifest_digest: loaded.digest,
        git_commit: apply::git_commit(request.dir),
    };
    let outcome = apply::apply(&mut conn, &desired, &plan, &current, &meta)?;
    if !held.is_empty() {
        write!(out, "{}", held_note(&held, ctx, request.dir))?;
    }
    if outcome.changed {
        writeln!(
            out,
            "\nApply complete: {} (generation {}).",
            plan.summary().line().trim_start_matches("Plan: "),
            outcome.generation
        )?;
    }
    Ok(Applied::Written {
        generation: outcome.generation,
        changed: outcome.changed,
        held,
    })
}

/// Asks `Apply these changes? [y/N]` on a terminal; refuses without one.
fn confirm_plan(out: &mut dyn Write) -> anyhow::Result<bool> {
    match ask(out, "\nApply these changes? [y/N] ")? {
        Some(answer) => Ok(answer),
        None => anyhow::bail!(
            "refusing to apply without confirmation: stdin is not a terminal; pass `--yes` to \
             apply anyway"
        ),
    }
}

/// Asks whether to apply `run`'s deletions on a terminal; without one, they are held.
fn confirm_deletions(out: &mut dyn Write, n_deletes: usize) -> anyhow::Result<bool> {
    let what = if n_deletes == 1 {
        "1 resource".to_string()
    } else {
        format!("{n_deletes} resources")
    };
    let question = format!(
        "\nThis deletes {what} (the `-` lines above; an agent's sessions go with it). Delete \
         now? Otherwise they are held back and the rest is applied. [y/N] "
    );
    Ok(ask(out, &question)?.unwrap_or(false))
}

/// Asks `question` on a terminal: `Some(true)` for y/yes, `None` when stdin is no terminal.
fn ask(out: &mut dyn Write, question: &str) -> anyhow::Result<Option<bool>> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Ok(None);
    }
    write!(out, "{question}")?;
    out.flush()?;
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .context("reading the answer")?;
    Ok(Some(matches!(answer.trim(), "y" | "Y" | "yes")))
}

/// Refuses to apply additions that need a held deletion first (a renamed channel whose chat the
/// old name still holds): applying them alone would break the DB's unique key.
fn guard_needs_held(
    desired: &crate::state::State,
    current: &plan::Current,
    plan: &plan::Plan,
    ctx: &Ctx,
    dir: &Path,
) -> anyhow::Result<()> {
    let conflicts = plan::conflicts(desired, current, plan);
    if conflicts.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = conflicts
        .iter()
        .map(|conflict| {
            format!(
                "`{}` needs `{}` deleted first (both are chat {}/{})",
                conflict.address, conflict.existing, conflict.channel_type, conflict.platform_id
            )
        })
        .collect();
    anyhow::bail!(
        "{}\n\nhint: confirm the deletions with `nanoclaw run {} --yes`, or apply them first \
         with `{}`",
        lines.join("\n"),
        dir.display(),
        apply_command(ctx, dir)
    )
}

/// What `run` says about the deletions it held back, with the commands that apply them.
fn held_note(held: &[Change], ctx: &Ctx, dir: &Path) -> String {
    let addresses: Vec<String> = held
        .iter()
        .map(|change| format!("  - {}\n", change.address))
        .collect();
    let plural = if held.len() == 1 { "" } else { "s" };
    format!(
        "\nHeld back {} deletion{plural} (not applied: `run` deletes only when asked):\n{}\
         Review and apply them with `{}`, or start with `nanoclaw run {} --yes`.\n",
        held.len(),
        addresses.concat(),
        apply_command(ctx, dir),
        dir.display()
    )
}

/// `nanoclaw --data <data> apply <dir>`: the command that applies `dir` to this data dir.
fn apply_command(ctx: &Ctx, dir: &Path) -> String {
    format!(
        "nanoclaw --data {} apply {}",
        ctx.paths.data.display(),
        dir.display()
    )
}
