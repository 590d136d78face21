//! `nanoclaw validate` (placeholder until its issue lands).

use clap::Args;

use super::{Ctx, Status};

/// Not implemented yet.
#[derive(Debug, Args)]
pub struct ValidateArgs {}

pub fn run(_args: ValidateArgs, _ctx: &Ctx) -> anyhow::Result<Status> {
    anyhow::bail!("`nanoclaw validate` is not implemented yet")
}
