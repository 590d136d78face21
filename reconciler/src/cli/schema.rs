//! `nanoclaw schema`: print the manifests' JSON Schema (draft-07) for editors and CI, or
//! install it at a stable place and print the modeline that points editors at it.

use anyhow::Context;
use clap::Args;

use super::{Ctx, Status};
use crate::manifest;

const AFTER_HELP: &str = "\
Examples:
  nanoclaw schema > schemas/nanoclaw.schema.json
  nanoclaw schema --install     # then paste the printed line at the top of each manifest

The installed schema lives at <data dir>/nanoclaw.schema.json (by default
~/.local/state/nanoclaw/nanoclaw.schema.json), whatever folder the manifests are in; run
`nanoclaw schema --install` again after upgrading nanoclaw to refresh it. The modeline is
read by yaml-language-server (VS Code YAML, Helix, Neovim):
  # yaml-language-server: $schema=/home/me/.local/state/nanoclaw/nanoclaw.schema.json";

/// Print the JSON Schema (draft-07) of manifest documents.
///
/// One document is `oneOf` an agent, a channel or a user, told apart by `kind`. Each field's
/// description states its default and what changing it does to running agents. With
/// `--install`, write it to the data directory instead and print the editor modeline to use.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct SchemaArgs {
    /// Write the schema to `<data dir>/nanoclaw.schema.json` and print the
    /// `# yaml-language-server: $schema=…` line that points at it.
    #[arg(long)]
    pub install: bool,
}

/// The installed schema's file name inside the data directory.
pub const FILE_NAME: &str = "nanoclaw.schema.json";

pub fn run(args: SchemaArgs, ctx: &Ctx) -> anyhow::Result<Status> {
    let text = serde_json::to_string_pretty(&manifest::json_schema())? + "\n";
    if !args.install {
        print!("{text}");
        return Ok(Status::Ok);
    }
    ctx.paths
        .ensure()
        .with_context(|| format!("creating `{}`", ctx.paths.data.display()))?;
    let path = ctx.paths.data.join(FILE_NAME);
    std::fs::write(&path, text).with_context(|| format!("writing `{}`", path.display()))?;
    let path =
        std::fs::canonicalize(&path).with_context(|| format!("resolving `{}`", path.display()))?;
    eprintln!(
        "Wrote the schema to {}; put this line at the top of each manifest file:",
        path.display()
    );
    println!("# yaml-language-server: $schema={}", path.display());
    Ok(Status::Ok)
}
