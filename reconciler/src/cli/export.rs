//! `nanoclaw export`: write the DB's configuration (managed or made at runtime) as manifests
//! (`ops::export`).

use std::path::PathBuf;

use clap::Args;

use super::{Ctx, Status};
use crate::ops;

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
    let exported = ops::export::export(&ctx.paths, &args.out, args.force)?;
    println!(
        "Exported {} resources to {} ({}).",
        exported.n_resources,
        args.out.display(),
        exported
            .files
            .iter()
            .filter_map(|path| path.file_name())
            .map(|name| name.to_string_lossy())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Status::Ok)
}
