//! `nanoclaw apply`: make the central DB match the manifests (or a saved plan), all or nothing.
//! Shows the plan, asks on a terminal, then writes in one transaction under the apply lock.
//!
//! [`apply_dir`] is how `apply` and `run` call the one apply pipeline (`ops::apply`): it loads
//! the manifests, shows the plan on their writer, asks on the terminal ([`Terminal`], the
//! `ops::Confirm` of the CLI) and says what was written and what was held back.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Args;

use super::plan::load_manifests;
use super::{Ctx, Status};
use crate::ops::{self, Answer, Applied, ApplyRequest, Confirm, Mode, Question};
use crate::plan::{self, Change, Plan};

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
    /// Leave running containers on their old configuration until `nanoclaw restart AGENT`
    /// (`nanoclaw status` shows the agent as pending meanwhile).
    #[arg(long)]
    pub no_restart: bool,
}

pub fn run(args: ApplyArgs, ctx: &Ctx) -> anyhow::Result<Status> {
    let request = ApplyRequest {
        dir: &args.dir,
        yes: args.yes,
        prune: args.prune,
        allow_empty: args.allow_empty,
        saved_plan: args.plan.as_deref(),
        mode: Mode::Apply,
        no_restart: args.no_restart,
    };
    let mut stdout = std::io::stdout();
    Ok(match apply_dir(ctx, &request, &mut stdout)? {
        None => Status::Invalid,
        Some(_) => Status::Ok,
    })
}

/// The apply of `apply` and `run`: loads and validates `request.dir` (`None` when invalid: the
/// diagnostics were printed), runs `ops::apply` with the plan shown on `out` and the questions
/// asked on the terminal, then says on `out` what was held back and written.
pub(crate) fn apply_dir(
    ctx: &Ctx,
    request: &ApplyRequest<'_>,
    out: &mut dyn Write,
) -> anyhow::Result<Option<Applied>> {
    let Some(loaded) = load_manifests(request.dir, ctx)? else {
        return Ok(None);
    };
    let mut terminal = Terminal {
        out,
        color: ctx.color && request.mode == Mode::Apply,
    };
    let applied = ops::apply(&ctx.paths, loaded, request, &mut terminal)?;
    let out = terminal.out;
    match &applied {
        Applied::Unchanged => {}
        Applied::Cancelled => writeln!(out, "Apply cancelled.")?,
        Applied::Written {
            generation,
            changed,
            held,
            summary,
            effects,
        } => {
            if !held.is_empty() {
                write!(out, "{}", held_note(held, ctx, request.dir))?;
            }
            if *changed {
                writeln!(
                    out,
                    "\nApply complete: {} (generation {generation}).",
                    summary.line().trim_start_matches("Plan: "),
                )?;
                // `run` applies before its runtime starts: nothing runs yet to tell about.
                if request.mode == Mode::Apply {
                    let after = ops::restart::after_apply(&ctx.paths, effects, request.no_restart)?;
                    writeln!(out, "{}", after.text(&ctx.paths.data))?;
                }
            }
        }
    }
    Ok(Some(applied))
}

/// The CLI's side of an apply: the plan as text on `out`, questions on the terminal.
struct Terminal<'a> {
    out: &'a mut dyn Write,
    color: bool,
}

impl Confirm for Terminal<'_> {
    fn show(&mut self, plan: &Plan) -> std::io::Result<()> {
        write!(self.out, "{}", plan::render::render(plan, self.color))
    }

    /// Asks on a terminal: y/yes is a yes; without a terminal nobody can answer.
    fn ask(&mut self, question: Question) -> std::io::Result<Answer> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Ok(Answer::CannotAsk);
        }
        write!(self.out, "{}", question_text(question))?;
        self.out.flush()?;
        let mut answer = String::new();
        stdin.lock().read_line(&mut answer)?;
        Ok(if matches!(answer.trim(), "y" | "Y" | "yes") {
            Answer::Yes
        } else {
            Answer::No
        })
    }
}

/// The words of a question, with its `[y/N]`.
fn question_text(question: Question) -> String {
    match question {
        Question::Apply => "\nApply these changes? [y/N] ".to_string(),
        Question::Deletions { n_deletes } => {
            let what = if n_deletes == 1 {
                "1 resource".to_string()
            } else {
                format!("{n_deletes} resources")
            };
            format!(
                "\nThis deletes {what} (the `-` lines above; an agent's sessions go with it). \
                 Delete now? Otherwise they are held back and the rest is applied. [y/N] "
            )
        }
    }
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
        ops::apply::apply_command(&ctx.paths.data, dir),
        dir.display()
    )
}
