//! `nanoclaw import V2_DIR [OUTDIR]`: a NanoClaw v2 install's configuration written as
//! manifests, with a report of what did not come across unchanged; `--sessions` also applies
//! them to the data dir and moves the conversations there.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::apply::{Applied, Caller, Request, apply_dir};
use super::{Ctx, Status};
use crate::import::{self, REPORT_FILE};

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
    let policy = crate::mount_policy::Policy::load(&ctx.paths.data);
    let mut imported = import::read(&args.v2, &policy)
        .with_context(|| format!("importing `{}`", args.v2.display()))?;
    let lock = if args.sessions {
        ctx.paths.ensure()?;
        // No daemon may run on the data dir while sessions move into it.
        let lock = crate::runtime::lock::acquire(&ctx.paths)?;
        guard_fresh(ctx, &imported)?;
        Some(lock)
    } else {
        None
    };
    crate::export::write(&args.out, &imported.state, args.force)?;
    if lock.is_some() {
        let request = Request {
            dir: &args.out,
            yes: true,
            prune: false,
            allow_empty: true,
            saved_plan: None,
            caller: Caller::Apply,
        };
        if let Applied::Invalid = apply_dir(ctx, &request, &mut crate::logging::stderr())? {
            anyhow::bail!(
                "the imported manifests in `{}` do not validate; nothing was applied",
                args.out.display()
            );
        }
        let mut report = std::mem::take(&mut imported.report);
        let moved = import::sessions::move_all(&imported, &ctx.paths, &mut report)
            .context("moving the sessions")?;
        imported.report = report;
        imported.report.note(
            import::report::Section::Files,
            "moved",
            format!(
                "{} sessions ({} replies already delivered by v2 recorded, never sent again) and the folders of {} agents into `{}`",
                moved.sessions,
                moved.delivered,
                moved.agents,
                ctx.paths.data.display()
            ),
        );
    }
    let text = imported
        .report
        .render(&args.v2.display().to_string(), &imported.summary());
    let report_path = args.out.join(REPORT_FILE);
    std::fs::write(&report_path, &text)
        .with_context(|| format!("writing `{}`", report_path.display()))?;
    print!("{text}");
    println!(
        "\nWrote the manifests and this report to {}.{}",
        args.out.display(),
        if args.sessions {
            format!(" Next: `nanoclaw run {}`.", args.out.display())
        } else {
            format!(
                " Next: `nanoclaw plan {}`, then `nanoclaw run {}`.",
                args.out.display(),
                args.out.display()
            )
        }
    );
    Ok(Status::Ok)
}

/// `--sessions` needs a data dir without configuration, or one already holding exactly the
/// imported configuration (a second import of the same install after a failed move).
fn guard_fresh(ctx: &Ctx, imported: &import::Imported) -> anyhow::Result<()> {
    let path = ctx.paths.db();
    if !path.exists() {
        return Ok(());
    }
    let conn =
        crate::db::open_readonly(&path).with_context(|| format!("opening `{}`", path.display()))?;
    let current = crate::plan::current::read(&conn)?;
    if current.state.is_empty() || current.state == imported.state {
        return Ok(());
    }
    anyhow::bail!(
        "the data dir `{}` already holds another configuration ({} resources): moving v2's sessions into it would mix two installs\n\nhint: import into a fresh data dir with `--data DIR`",
        ctx.paths.data.display(),
        current.state.len()
    )
}
