//! `nanoclaw apply` (placeholder until its issue lands).

use clap::Args;

use super::{Ctx, Status};

/// Not implemented yet.
#[derive(Debug, Args)]
pub struct ApplyArgs {}

pub fn run(_args: ApplyArgs, _ctx: &Ctx) -> anyhow::Result<Status> {
    anyhow::bail!("`nanoclaw apply` is not implemented yet")
}
