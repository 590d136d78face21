//! `nanoclaw validate [DIR]`: load and check the manifests (`ops::validate`), print every
//! problem or a summary.

use std::path::PathBuf;

use clap::Args;

use super::{Ctx, Status};
use crate::manifest::diagnostic::render_styled;
use crate::{manifest, ops, style};

const AFTER_HELP: &str = "\
Examples:
  nanoclaw validate                    check ./manifests
  nanoclaw validate ~/my-setup         check another directory
  nanoclaw validate --json | jq .      machine-readable diagnostics";

/// Check the manifests and list every error with its file, line and column.
///
/// Reads every `*.yaml`/`*.yml` file under DIR (hidden folders and editor temp files are
/// skipped; only regular files, within the limits of docs/manifests.md), validates names,
/// references, enums, regexes, packages and mounts, and changes nothing. Mounts are resolved
/// on this machine and checked against its mount allowlist
/// (`~/.config/nanoclaw/mount-allowlist.yaml`, see docs/manifests.md). Warnings (an agent
/// wired to nothing, a CLI chat that can never engage, …) are printed too but do not fail.
/// Exit code 0 when valid (with or without warnings), 1 when there is any error.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ValidateArgs {
    /// Directory holding the manifests.
    #[arg(value_name = "DIR", default_value = "manifests")]
    pub dir: PathBuf,
    /// Print `{"valid", "diagnostics", "resources"}` as JSON on stdout instead of text; each
    /// diagnostic has a `severity` (`error` or `warning`).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ValidateArgs, ctx: &Ctx) -> anyhow::Result<Status> {
    let result = ops::validate(&args.dir, &ctx.paths.data);
    if args.json {
        let (valid, diagnostics, resources) = match &result {
            Ok(manifests) => (true, manifests.warnings.clone(), manifests.state.len()),
            Err(diagnostics) => (false, diagnostics.clone(), 0),
        };
        let json = serde_json::json!({
            "valid": valid,
            "diagnostics": diagnostics,
            "resources": resources,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(if valid { Status::Ok } else { Status::Invalid });
    }
    match result {
        Ok(manifests) => {
            if !manifests.warnings.is_empty() {
                let text = render_styled(&manifests.warnings, ctx.color_stderr);
                eprint!("{text}");
                eprintln!("\n{}", manifest::summary(&manifests.warnings));
            }
            let tick = if ctx.color {
                style::paint(style::ADDED, "✓", true) + " "
            } else {
                String::new()
            };
            println!(
                "{tick}{} in {} {} valid",
                plural(manifests.state.len(), "resource"),
                plural(manifests.files.len(), "file"),
                if manifests.state.len() == 1 {
                    "is"
                } else {
                    "are"
                }
            );
            Ok(Status::Ok)
        }
        Err(diagnostics) => {
            eprint!("{}", render_styled(&diagnostics, ctx.color_stderr));
            eprintln!("\n{}", manifest::summary(&diagnostics));
            Ok(Status::Invalid)
        }
    }
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("{count} {noun}")
    } else {
        format!("{count} {noun}s")
    }
}
