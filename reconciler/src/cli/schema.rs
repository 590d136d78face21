//! `nanoclaw schema` (placeholder until its issue lands).

use clap::Args;

use super::{Ctx, Status};

/// Not implemented yet.
#[derive(Debug, Args)]
pub struct SchemaArgs {}

pub fn run(_args: SchemaArgs, _ctx: &Ctx) -> anyhow::Result<Status> {
    anyhow::bail!("`nanoclaw schema` is not implemented yet")
}
