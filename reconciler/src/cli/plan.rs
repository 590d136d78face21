//! `nanoclaw plan` (placeholder until its issue lands).

use clap::Args;

use super::{Ctx, Status};

/// Not implemented yet.
#[derive(Debug, Args)]
pub struct PlanArgs {}

pub fn run(_args: PlanArgs, _ctx: &Ctx) -> anyhow::Result<Status> {
    anyhow::bail!("`nanoclaw plan` is not implemented yet")
}
