//! `nanoclaw history`: every apply (generation, time, git commit, manifest digest, summary),
//! newest first, as a table or JSON. Read-only.

use anyhow::Context;
use clap::Args;

use super::{Ctx, Status};
use crate::plan::saved::short;

/// List past applies, newest first.
///
/// Example: nanoclaw history --json
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Print JSON (an array of objects) instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: HistoryArgs, ctx: &Ctx) -> anyhow::Result<Status> {
    let path = ctx.paths.db();
    let entries = if path.exists() {
        let conn = crate::db::open_readonly(&path)
            .with_context(|| format!("opening `{}`", path.display()))?;
        crate::apply::history(&conn).context("reading apply_history")?
    } else {
        Vec::new()
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(Status::Ok);
    }
    if entries.is_empty() {
        println!("No applies yet.");
        return Ok(Status::Ok);
    }
    let commit = |entry: &crate::apply::HistoryEntry| match &entry.git_commit {
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
    for entry in &entries {
        println!(
            "{:>10}  {:<20}  {:<width$}  {:<12}  {}",
            entry.generation,
            entry.applied_at,
            commit(entry),
            short(&entry.manifest_digest),
            entry.summary
        );
    }
    Ok(Status::Ok)
}
