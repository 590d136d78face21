//! `nanoclaw history`: every apply (generation, time, git commit, manifest digest, summary),
//! newest first, as a table or JSON; with `--failures`, the agent containers that failed
//! (exit code, last output lines). Read-only (`ops::history` reads).

use clap::Args;

use super::{Ctx, Status};
use crate::db::failures::Failure;
use crate::db::history::HistoryEntry;
use crate::ops;
use crate::plan::saved::short;

const AFTER_HELP: &str = "\
Examples:
  nanoclaw history                 past applies, newest first
  nanoclaw history --json          the same as JSON
  nanoclaw history --failures      agent containers that exited with an error or could not
                                   start, with their last output lines (why they failed)";

/// List past applies (or, with --failures, failed agent containers), newest first.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct HistoryArgs {
    /// Print JSON (an array of objects) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Show agent containers that failed (exit code, time, their last output lines) instead
    /// of applies.
    #[arg(long)]
    pub failures: bool,
    /// With --failures: how many to show.
    #[arg(long, default_value_t = 20, value_name = "N", requires = "failures")]
    pub limit: usize,
}

pub fn run(args: HistoryArgs, ctx: &Ctx) -> anyhow::Result<Status> {
    if args.failures {
        let failures = ops::history::failures(&ctx.paths, args.limit)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&failures)?);
        } else {
            print!("{}", render_failures(&failures));
        }
        return Ok(Status::Ok);
    }
    let entries = ops::history::applies(&ctx.paths)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(Status::Ok);
    }
    if entries.is_empty() {
        println!("No applies yet.");
    } else {
        print_applies(&entries);
    }
    let failed = ops::history::failures(&ctx.paths, 1).unwrap_or_default();
    if let Some(latest) = failed.first() {
        println!(
            "\nAgent containers have failed (latest: `{}` at {}); see `nanoclaw history --failures`.",
            latest.agent, latest.failed_at
        );
    }
    Ok(Status::Ok)
}

fn print_applies(entries: &[HistoryEntry]) {
    let commit = |entry: &HistoryEntry| match &entry.git_commit {
        Some(commit) => match commit.strip_suffix("-dirty") {
            Some(sha) => format!("{}-dirty", short(sha)),
            None => short(commit).to_string(),
        },
        None => "-".to_string(),
    };
    let width = entries
        .iter()
        .map(|entry| commit(entry).len())
        .max()
        .unwrap_or(0)
        .max(6);
    println!(
        "{:>10}  {:<20}  {:<width$}  {:<12}  SUMMARY",
        "GENERATION", "APPLIED AT", "COMMIT", "DIGEST"
    );
    for entry in entries {
        println!(
            "{:>10}  {:<20}  {:<width$}  {:<12}  {}",
            entry.generation,
            entry.applied_at,
            commit(entry),
            short(&entry.manifest_digest),
            entry.summary
        );
    }
}

/// The failures as a table, each followed by its output lines, indented.
fn render_failures(failures: &[Failure]) -> String {
    if failures.is_empty() {
        return "No container failures recorded.\n".to_string();
    }
    let agent_width = failures
        .iter()
        .map(|failure| failure.agent.len())
        .max()
        .unwrap_or(0)
        .max(5);
    let mut text = format!(
        "{:<24}  {:<agent_width$}  {:<6}  SESSION\n",
        "FAILED AT", "AGENT", "EXIT"
    );
    for failure in failures {
        let exit = failure
            .exit_code
            .map_or_else(|| "start".to_string(), |code| code.to_string());
        text.push_str(&format!(
            "{:<24}  {:<agent_width$}  {:<6}  {}\n",
            failure.failed_at, failure.agent, exit, failure.session_id
        ));
        for line in &failure.tail {
            text.push_str(&format!("    {line}\n"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_render_with_their_output_lines() {
        let failures = [
            Failure {
                session_id: "sess-2".into(),
                agent: "echo".into(),
                exit_code: Some(1),
                failed_at: "2026-11-30T00:00:05.000Z".into(),
                tail: vec!["ERROR agent_runner: Fatal error error=Unknown provider: claude".into()],
            },
            Failure {
                session_id: "sess-1".into(),
                agent: "helper".into(),
                exit_code: None,
                failed_at: "2026-11-30T00:00:01.000Z".into(),
                tail: vec!["docker: image `nope:1` not found".into()],
            },
        ];
        expect_test::expect![[r#"
            FAILED AT                 AGENT   EXIT    SESSION
            2026-11-30T00:00:05.000Z  echo    1       sess-2
                ERROR agent_runner: Fatal error error=Unknown provider: claude
            2026-11-30T00:00:01.000Z  helper  start   sess-1
                docker: image `nope:1` not found
        "#]]
        .assert_eq(&render_failures(&failures));
        assert_eq!(render_failures(&[]), "No container failures recorded.\n");
    }
}
