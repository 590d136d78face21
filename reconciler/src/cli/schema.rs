//! `nanoclaw schema`: print the manifests' JSON Schema (draft-07) for editors and CI.

use clap::Args;

use super::{Ctx, Status};
use crate::manifest;

const AFTER_HELP: &str = "\
Examples:
  nanoclaw schema > schemas/nanoclaw.schema.json
  # in a manifest, for yaml-language-server (VS Code YAML, Helix, Neovim):
  # yaml-language-server: $schema=../schemas/nanoclaw.schema.json";

/// Print the JSON Schema (draft-07) of manifest documents.
///
/// One document is `oneOf` an agent, a channel or a user, told apart by `kind`. Each field's
/// description states its default and what changing it does to running agents.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct SchemaArgs {}

pub fn run(_args: SchemaArgs, _ctx: &Ctx) -> anyhow::Result<Status> {
    println!(
        "{}",
        serde_json::to_string_pretty(&manifest::json_schema())?
    );
    Ok(Status::Ok)
}
