//! `nanoclaw export` (placeholder until its issue lands).

use clap::Args;

use super::{Ctx, Status};

/// Not implemented yet.
#[derive(Debug, Args)]
pub struct ExportArgs {}

pub fn run(_args: ExportArgs, _ctx: &Ctx) -> anyhow::Result<Status> {
    anyhow::bail!("`nanoclaw export` is not implemented yet")
}
