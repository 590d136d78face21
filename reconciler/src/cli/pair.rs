//! `nanoclaw pair CHANNEL`: prints a one-time code; the first person who sends it to the bot
//! on that channel becomes the owner, or, once there is one, is paired with the owner's
//! approval (docs/runtime.md#pairing).

use clap::Args;

use super::{Ctx, Status};

const AFTER_HELP: &str = "\
The runtime (`nanoclaw run`) must use the same --data directory; it need not be running yet.

The code works once, on the channel named, until it expires. Send it to the bot as a message of
its own (a DM on Telegram). With no owner yet, its sender becomes the owner and their chat is
wired to the default agent (the first agent by name). With an owner, the owner gets a card to
allow or deny the pairing.

Examples:
  nanoclaw pair telegram            a code to send to the bot on Telegram
  nanoclaw pair cli --ttl 5m        a code for a CLI chat (`nanoclaw chat CHAT`), for 5 minutes";

/// Print a one-time pairing code for a channel.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct PairArgs {
    /// The channel type the code will be sent on (`telegram`, `cli`).
    pub channel: String,
    /// How long the code works.
    #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = super::chat::parse_duration)]
    pub ttl: std::time::Duration,
}

pub fn run(args: PairArgs, ctx: &Ctx) -> anyhow::Result<Status> {
    let issued = crate::ops::pair::issue(&ctx.paths, &args.channel, args.ttl)?;
    println!("{}", issued.code);
    let minutes = issued.ttl.as_secs().div_ceil(60);
    if issued.needs_approval {
        say!(
            "send this code to the bot on {} within {minutes} min; the owner will be asked to approve",
            issued.channel_type
        );
    } else {
        say!(
            "send this code to the bot on {} within {minutes} min: its sender becomes the owner",
            issued.channel_type
        );
    }
    Ok(Status::Ok)
}
