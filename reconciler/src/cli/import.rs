//! `nanoclaw import V2_DIR [OUTDIR]`: a NanoClaw v2 install's configuration written as
//! manifests, with a report of what did not come across unchanged; `--sessions` also applies
//! them to the data dir and moves the conversations there.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{Ctx, Status};
use crate::ops::import::ImportRequest;
use crate::ops::{self, Answer, Confirm, Question};
use crate::plan::Plan;

const AFTER_HELP: &str = "\
What comes across (docs/moving-from-v2.md): agents (every container_configs value, their
CLAUDE.local.md as `instructions`), chats and wirings, users, roles (scoped admins too),
memberships and destinations. Agents are named by their v2 folder, chats by the name their
agents use for them. v2's data/v2.db is read from a private copy (with its -wal file), so the
v2 folder is never written; stop v2 first. Mounts are checked against this machine's mount
allowlist, which also reads v2's ~/.config/nanoclaw/mount-allowlist.json.

Every value that does not come across unchanged (a provider nanoclaw lacks, a JavaScript-only
regex, timestamps, pending approvals, …) is listed in the report, printed and written to
OUTDIR/import-report.txt.

--sessions also applies the manifests to the data dir (which must be fresh, or already hold
exactly this configuration) and moves every session there: its messages (inbound.db, migrated
on open), the agent's replies (outbound/outbound.db), files, the agents' memory (groups/) and
Claude state, and what v2 already delivered, so nothing is sent twice and each chat continues
where it stopped.

Examples:
  nanoclaw import ~/nanoclaw-v2                     manifests in ./imported-manifests
  nanoclaw import ~/nanoclaw-v2 manifests --sessions
  nanoclaw run manifests                            then run the imported agents";

/// Import a NanoClaw v2 install: its configuration as manifests (and, with --sessions, its
/// conversations into the data dir).
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ImportArgs {
    /// The v2 install: the folder holding `data/v2.db` and `groups/`.
    #[arg(value_name = "V2_DIR")]
    pub v2: PathBuf,
    /// Directory to write the manifests to; must be empty or absent unless --force.
    #[arg(default_value = "imported-manifests", value_name = "OUTDIR")]
    pub out: PathBuf,
    /// Overwrite files in a non-empty OUTDIR.
    #[arg(long)]
    pub force: bool,
    /// Also apply the manifests to the data dir (--data) and move v2's sessions, agent memory
    /// and Claude state into it.
    #[arg(long)]
    pub sessions: bool,
}

pub fn run(args: ImportArgs, ctx: &Ctx) -> anyhow::Result<Status> {
    let request = ImportRequest {
        v2: &args.v2,
        out: &args.out,
        force: args.force,
        sessions: args.sessions,
    };
    let mut shown = PlanOnStderr { color: ctx.color };
    let outcome = ops::import::import(&ctx.paths, &request, &mut shown)
        .with_context(|| format!("importing `{}`", args.v2.display()))?;
    print!("{}", outcome.report);
    let out = args.out.display();
    let next = if outcome.moved.is_some() {
        format!("Next: `nanoclaw run {out}`.")
    } else {
        format!("Next: `nanoclaw plan {out}`, then `nanoclaw run {out}`.")
    };
    println!(
        "\nWrote the manifests and this report ({}) to {out}. {next}",
        outcome
            .report_path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    Ok(Status::Ok)
}

/// `--sessions` applies without asking (the data dir is fresh); the plan goes to stderr so
/// stdout holds the report alone.
struct PlanOnStderr {
    color: bool,
}

impl Confirm for PlanOnStderr {
    fn show(&mut self, plan: &Plan) -> std::io::Result<()> {
        write!(
            std::io::stderr(),
            "{}",
            crate::plan::render::render(plan, self.color)
        )
    }

    fn ask(&mut self, _question: Question) -> std::io::Result<Answer> {
        Ok(Answer::CannotAsk)
    }
}
