//! `nanoclaw restart AGENT [--session ID] [--rebuild] [--message TEXT]`: restarts an agent's
//! running containers at their next safe point through the daemon (`ops::restart`), and says
//! clearly when no daemon runs. With `--rebuild` it shows the daemon's build progress (its last
//! output line, on stderr) until the daemon reports the outcome.

use clap::Args;

use super::{Ctx, Status};
use crate::ops::restart::{self, RestartRequest, Restarted};

const AFTER_HELP: &str = "\
Examples:
  nanoclaw restart andy                         restart andy's running containers
  nanoclaw restart andy --session sess-123      only that session's container
  nanoclaw restart andy --message 'You were restarted: check your tools.'
                                                the fresh container's first turn sees the message
  nanoclaw restart andy --rebuild               bring andy's image (its `packages`) up to date,
                                                then restart; a failed build is tried again

A container is replaced between turns: it finishes the turn in flight and writes its replies,
then a fresh one starts (with the current configuration) when its session has work.
It also ends an `apply --no-restart` deferral of the agent.

--rebuild: the daemon builds the agent's per-agent image when its inputs (base image, package
lists) give another one than it runs, or when its last build failed; an image whose inputs are
unchanged is reused, not built again (pin a version, `jq=1.7.1-3`, to get a newer package).
The command shows the build's progress until the daemon reports the outcome; interrupting it
leaves the build running (`nanoclaw status` shows it). A failed build restarts nothing: the
agent keeps running on its previous image.";

/// Restart an agent's containers at their next safe point (needs the daemon, `nanoclaw run`).
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct RestartArgs {
    /// The agent whose containers to restart.
    #[arg(value_name = "AGENT")]
    pub agent: String,
    /// Only this session's container.
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// Bring the agent's image up to date first (a failed build is tried again), then restart.
    #[arg(long)]
    pub rebuild: bool,
    /// A message only the fresh container's first poll sees (an on-wake row); it answers in the
    /// session's chat.
    #[arg(long, value_name = "TEXT")]
    pub message: Option<String>,
}

pub fn run(args: RestartArgs, ctx: &Ctx) -> anyhow::Result<Status> {
    let request = RestartRequest {
        agent: &args.agent,
        session: args.session.as_deref(),
        rebuild: args.rebuild,
        message: args.message.as_deref(),
    };
    let mut progress = |line: &str| say!("{line}");
    match restart::restart(&ctx.paths, &request, &mut progress)? {
        Restarted::NoDaemon => println!(
            "No daemon running for {}: no container runs, so there is nothing to restart; the next `nanoclaw run` starts fresh containers.",
            ctx.paths.data.display()
        ),
        Restarted::Done { outcome } => {
            println!("`{}`: {outcome}.", args.agent);
            if outcome.starts_with("failed") {
                return Ok(Status::Error);
            }
        }
        Restarted::Queued { holder } if args.rebuild => println!(
            "The daemon (pid {}) has not reported on the rebuild yet; it restarts `{}` once its image build ends (`nanoclaw status` shows the build).",
            holder.pid, args.agent
        ),
        Restarted::Queued { holder } => println!(
            "The daemon (pid {}) has not taken the request yet; it restarts `{}` at its next pass.",
            holder.pid, args.agent
        ),
    }
    Ok(Status::Ok)
}
