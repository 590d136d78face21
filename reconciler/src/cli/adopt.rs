//! `nanoclaw adopt ADDRESS…`: runtime-made resources into the manifests (`ops::adopt`).

use std::path::PathBuf;

use clap::Args;

use super::{Ctx, Status};
use crate::ops::{self, OpsError};

const AFTER_HELP: &str = "\
Approvals, pairing and new chats create chats, wirings, agents, roles and memberships at
runtime. `nanoclaw plan` lists them at its end (an apply keeps them unless `--prune`). Adopting
writes them into DIR as a new file (`adopted.yaml`, `adopted-2.yaml`, …) and marks them managed:
from then on they are changed and deleted through the manifests like any other resource.

An address adopts its whole document: a wiring adopts its channel, a role or membership its
user. Adopt a new agent together with the chat wired to it.

Examples:
  nanoclaw adopt channel.telegram-6037840640 user.telegram:6037840640
  nanoclaw adopt agent.team-helper channel.cli-team";

/// Write resources made at runtime into the manifests, so they become managed.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct AdoptArgs {
    /// Addresses as `nanoclaw plan` prints them (`channel.NAME`, `user.ID`, `agent.NAME`, …).
    #[arg(required = true, value_name = "ADDRESS")]
    pub addresses: Vec<String>,
    /// The manifest folder.
    #[arg(long, default_value = "manifests", value_name = "DIR")]
    pub dir: PathBuf,
}

pub fn run(args: AdoptArgs, ctx: &Ctx) -> anyhow::Result<Status> {
    match ops::adopt::adopt(&ctx.paths, &args.dir, &args.addresses) {
        Ok(adopted) => {
            for address in &adopted.addresses {
                say!("adopted {address}");
            }
            say!("wrote {}", adopted.file.display());
            Ok(Status::Ok)
        }
        Err(OpsError::Invalid { diagnostics }) => {
            let text = crate::manifest::diagnostic::render_styled(&diagnostics, ctx.color_stderr);
            say!("{text}");
            say!(
                "nothing adopted: the adopted documents do not load with the manifests\n\nhint: adopt what they refer to in the same call (a wiring's agent, a role's agent)"
            );
            Ok(Status::Invalid)
        }
        Err(err) => Err(err.into()),
    }
}
