//! `nanoclaw adopt ADDRESS…`: runtime-made resources into the manifests (`ops::adopt`).

use std::path::PathBuf;

use clap::Args;

use super::{Ctx, Status};
use crate::env;
use crate::ops::{self, OpsError};

const AFTER_HELP: &str = "\
Approvals, pairing, new chats and `create_agent` make chats, wirings, agents, roles,
memberships and destinations at runtime. `nanoclaw plan` lists them at its end (an apply keeps
them unless `--prune`). Adopting writes them into DIR and marks them managed: from then on they
are changed and deleted through the manifests like any other resource.

An address adopts its whole document: a wiring its channel, a role or membership its user, a
destination its agent. Documents the manifests do not declare go into a new file
(`adopted.yaml`, `adopted-2.yaml`, …); adopt a new agent together with the chat wired to it.
A destination, role or membership of an agent or user the manifests declare is added to that
document's `destinations:`, `roles:` or `member_of:` list in place, comments and layout kept.
Every file is validated with the folder before any is written; nothing is committed (commit
the change yourself). A file nanoclaw cannot write, or NANOCLAW_MANIFESTS_READONLY=1, refuses
the adoption with the entry and the patch to add by hand; nothing is written then.

Examples:
  nanoclaw adopt channel.telegram-6037840640 user.telegram:6037840640
  nanoclaw adopt agent.helper destination.echo/helper";

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
    let writable = !env::flag(env::NANOCLAW_MANIFESTS_READONLY);
    match ops::adopt::adopt(&ctx.paths, &args.dir, &args.addresses, writable) {
        Ok(adopted) => {
            for address in &adopted.addresses {
                say!("adopted {address}");
            }
            for written in &adopted.files {
                let added: Vec<String> = written.added.iter().map(ToString::to_string).collect();
                let how = if written.created { "new file" } else { "added" };
                say!(
                    "wrote {} ({how}: {})",
                    written.file.display(),
                    added.join(", ")
                );
            }
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
