//! `nanoclaw history` (placeholder until its issue lands).

use clap::Args;

use super::{Ctx, Status};

/// Not implemented yet.
#[derive(Debug, Args)]
pub struct HistoryArgs {}

pub fn run(_args: HistoryArgs, _ctx: &Ctx) -> anyhow::Result<Status> {
    anyhow::bail!("`nanoclaw history` is not implemented yet")
}
