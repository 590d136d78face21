//! `nanoclaw status [--json]`: per agent Ready / Reconciling / Pending / Failed, its image (a
//! build in progress with its last output line, a failed build with its error), its running
//! containers with the generation and configuration hash they run and whether that is current,
//! the last apply, deferred restarts and the watcher's last error (`ops::status` reads).

use std::fmt::Write as _;

use clap::Args;

use super::{Ctx, Status};
use crate::db::agent_images::AgentImageRow;
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
        if let Some(image) = &agent.image {
            render_image(&mut out, image);
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

/// An agent's per-agent image: the one it runs, the build in progress, the last failure.
fn render_image(out: &mut String, image: &AgentImageRow) {
    if let Some(tag) = &image.tag {
        let _ = writeln!(out, "  image {tag}");
    }
    if let Some(building) = &image.building {
        let _ = writeln!(
            out,
            "  building image {} since {}",
            building.tag, building.since
        );
        if let Some(line) = &building.last_line {
            let _ = writeln!(out, "    last output: {line}");
        }
    }
    if let Some(error) = &image.error {
        let _ = writeln!(
            out,
            "  image build failed{} at {}:",
            image
                .failed_tag
                .as_deref()
                .filter(|tag| !tag.is_empty())
                .map(|tag| format!(" ({tag})"))
                .unwrap_or_default(),
            image.failed_at.as_deref().unwrap_or("?")
        );
        for line in error.lines().take(ERROR_LINES) {
            let _ = writeln!(out, "    {line}");
        }
    }
}

/// Lines of a failed build's error shown (`--json` has all of it).
const ERROR_LINES: usize = 10;
