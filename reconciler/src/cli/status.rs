//! `nanoclaw status [--json]`: per agent Ready / Reconciling / Pending / Failed, its running
//! containers with the generation and configuration hash they run and whether that is current,
//! the last apply, deferred restarts and the watcher's last error (`ops::status` reads).

use std::fmt::Write as _;

use clap::Args;

use super::{Ctx, Status};
use crate::db::executor::Verdict;
use crate::ops::status::{self, Report};

const AFTER_HELP: &str = "\
Examples:
  nanoclaw status            agents, their containers, the last apply
  nanoclaw status --json     the same as JSON (versioned: `version`)";

/// Show what runs and whether it runs the current configuration.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct StatusArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: StatusArgs, ctx: &Ctx) -> anyhow::Result<Status> {
    let report = status::status(&ctx.paths)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(Status::Ok)
}

/// The text form.
fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = match &report.daemon {
        Some(daemon) => writeln!(
            out,
            "Daemon: running (pid {}, since {})",
            daemon.pid, daemon.since
        ),
        None => writeln!(out, "Daemon: not running"),
    };
    let _ = match &report.last_apply {
        Some(apply) => writeln!(
            out,
            "Last apply: generation {} at {}{}",
            apply.generation,
            apply.applied_at,
            apply
                .git_commit
                .as_deref()
                .map(|commit| format!(" (commit {commit})"))
                .unwrap_or_default()
        ),
        None => writeln!(out, "Last apply: none"),
    };
    if report.agents.is_empty() {
        let _ = writeln!(out, "No agents.");
    }
    for agent in &report.agents {
        let _ = writeln!(out, "\nagent {}: {}", agent.name, agent.state.text());
        if let Some(tag) = agent.image.as_ref().and_then(|image| image.tag.as_deref()) {
            let _ = writeln!(out, "  image {tag}");
        }
        for container in &agent.containers {
            let generation = container
                .generation
                .map_or_else(|| "?".to_string(), |generation| generation.to_string());
            let current = match container.verdict {
                Verdict::Current => "current".to_string(),
                verdict => format!(
                    "{}: {}",
                    verdict.as_str(),
                    container.reason.as_deref().unwrap_or_default()
                ),
            };
            let _ = writeln!(
                out,
                "  session {}: generation {generation}, config {} ({current})",
                container.session_id, container.config_hash
            );
        }
    }
    if let Some(watch) = &report.watch
        && let Some(error) = &watch.error
    {
        let _ = writeln!(
            out,
            "\nWatch ({}): the last save is invalid (since {}):",
            watch.dir,
            watch.error_at.as_deref().unwrap_or("?")
        );
        for line in error.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    if let Some(watch) = &report.watch
        && let Some(held) = &watch.held
    {
        let _ = writeln!(
            out,
            "\nHeld by the watcher until confirmed with `nanoclaw apply {}`:",
            watch.dir
        );
        for line in held.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}
