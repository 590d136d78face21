//! `nanoclaw restart AGENT [--session ID] [--rebuild] [--message TEXT]`: restarts an agent's
//! running containers at their next safe point through the daemon (`ops::restart`), and says
//! clearly when no daemon runs.

use clap::Args;

use super::{Ctx, Status};
use crate::ops::restart::{self, RestartRequest, Restarted};

const AFTER_HELP: &str = "\
Examples:
  nanoclaw restart andy                         restart andy's running containers
  nanoclaw restart andy --session sess-123      only that session's container
  nanoclaw restart andy --message 'You were restarted: check your tools.'
                                                the fresh container's first turn sees the message

A container is replaced between turns: it finishes the turn in flight and writes its replies,
then a fresh one starts (with the current configuration) when its session has work.
It also ends an `apply --no-restart` deferral of the agent.";

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
    /// Rebuild the agent's image first (not done by the daemon yet: it says so).
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
    match restart::restart(&ctx.paths, &request)? {
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
        Restarted::Queued { holder } => println!(
            "The daemon (pid {}) has not taken the request yet; it restarts `{}` at its next pass.",
            holder.pid, args.agent
        ),
    }
    Ok(Status::Ok)
}
