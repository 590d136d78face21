//! `nanoclaw export`: write the DB's configuration (managed or made at runtime) as manifests.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{Ctx, Status};

/// Write the central DB's configuration as manifest files (agents.yaml, channels.yaml,
/// users.yaml; past 1,000 documents a kind continues in agents-2.yaml, …), e.g. to start
/// managing an install that was set up from chat.
///
/// Example: nanoclaw export my-manifests && nanoclaw plan my-manifests
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Directory to write; must be empty or absent unless --force.
    #[arg(default_value = "exported-manifests", value_name = "OUTDIR")]
    pub out: PathBuf,
    /// Overwrite files in a non-empty OUTDIR.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: ExportArgs, ctx: &Ctx) -> anyhow::Result<Status> {
    let path = ctx.paths.db();
    if !path.exists() {
        // Most likely the wrong `--data`: an empty export would look like success.
        anyhow::bail!(
            "there is no central DB at `{}`, so there is nothing to export; pass the state \
             directory with `--data DIR` (or NANOCLAW_DATA_DIR)",
            path.display()
        );
    }
    let conn =
        crate::db::open_readonly(&path).with_context(|| format!("opening `{}`", path.display()))?;
    let state = crate::export::read(&conn)?;
    let written = crate::export::write(&args.out, &state, args.force)?;
    println!(
        "Exported {} resources to {} ({}).",
        state.len(),
        args.out.display(),
        written
            .iter()
            .filter_map(|path| path.file_name())
            .map(|name| name.to_string_lossy())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Status::Ok)
}
