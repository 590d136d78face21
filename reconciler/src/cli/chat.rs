//! `nanoclaw chat [AGENT|CHANNEL]`: a terminal client of the CLI channel socket.
//!
//! Interactive mode (line editing and history by rustyline; plain lines when not on a
//! terminal, `interactive.rs`) shows replies as they arrive, above the prompt; Ctrl-D leaves.
//! `--message TEXT` sends one message, waits for its reply (or `--replies N` replies, for
//! fan-out) and prints it: for scripts. Either way a reply is acknowledged only once shown, so
//! the runtime records it as delivered only then; the chosen chat is `ops::chat`'s decision.

mod interactive;
mod link;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use self::link::{Link, Next, Shown};
use super::{Ctx, Status};
use crate::channels::cli_protocol::{AnswerLine, ClientLine, HostLine, Message, Reply};
use crate::ops::chat::{Mode, Target};

const AFTER_HELP: &str = "\
The runtime must be running (`nanoclaw run`) on the same --data directory.

Which chat: `nanoclaw chat AGENT` talks on the agent's own CLI chat (one wired only to it)
when it has one. Otherwise it uses a CLI chat the agent shares with other agents, where every
wired agent may answer: --message then waits for AGENT's reply, and interactive mode prefixes
each reply with its agent's name. When there was a choice, the chat used is named on stderr.
A CLI chat can also be named directly; without a target the chat on platform `local` (or the
only CLI chat) is used.

A reply counts as delivered only once this client has shown it. --message shows the replies to
its own message (and notices from the runtime) and leaves others queued for the next reader of
the chat. A reply that comes again (after a reconnect) is shown once.

Examples:
  nanoclaw chat                          talk on the default CLI chat
  nanoclaw chat andy                     talk to the agent `andy`
  nanoclaw chat andy --message 'hello'   send one message, print andy's reply, exit
  nanoclaw chat --message hi --replies 2 wait for two replies (a chat wired to two agents)
  nanoclaw chat --answer apv-1a2b3c allow answer a card shown in the chat (as its person)

Cards (an approval: a new sender, a new chat, a pairing; a question an agent asks) are shown
with numbered options. In interactive mode answer the last card shown by typing its option's
number (or `/answer N`), or any card with `/answer CARD OPTION`; --message names the card's id
on stderr for `--answer`.";

/// Talk to agents from the terminal through the CLI channel.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ChatArgs {
    /// An agent (its own CLI chat is preferred, see below) or a CLI chat, by manifest name.
    /// Default: the CLI chat on platform `local`.
    pub target: Option<String>,
    /// Send this one message, print the reply and exit (0 on a reply, 1 on timeout).
    #[arg(long, short = 'm', value_name = "TEXT")]
    pub message: Option<String>,
    /// With --message: how many replies to wait for (0: only until the runtime has stored it).
    #[arg(long, default_value_t = 1, value_name = "N", requires = "message")]
    pub replies: usize,
    /// Answer a card: its id and the option (its id or number), as the person of the chat
    /// (`cli:<platform id>`); prints the outcome (exit 0) or why it was refused (exit 1).
    #[arg(long, num_args = 2, value_names = ["CARD", "OPTION"], conflicts_with = "message")]
    pub answer: Option<Vec<String>>,
    /// With --message: how long to wait for the replies.
    #[arg(long, default_value = "120s", value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// Parses `30s`, `2m`, `1h 30m`, `500ms` (jiff's friendly duration format).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let signed: jiff::SignedDuration = text
        .parse()
        .map_err(|err| format!("`{text}` is not a duration like `30s` or `2m`: {err}"))?;
    Duration::try_from(signed).map_err(|_| format!("`{text}` must not be negative"))
}

/// How often a client whose runtime went away tries to reconnect.
const RECONNECT_EVERY: Duration = Duration::from_millis(250);

pub fn run(args: ChatArgs, ctx: &Ctx) -> anyhow::Result<Status> {
    let mode = match args.message {
        Some(_) => Mode::OneShot,
        None => Mode::Interactive,
    };
    let target = crate::ops::chat::target(&ctx.paths, args.target.as_deref(), mode)?;
    let socket = ctx.paths.cli_socket();
    if let Some(answer) = args.answer {
        let [card, option] = <[String; 2]>::try_from(answer)
            .map_err(|_| anyhow::anyhow!("`--answer` takes a card id and an option"))?;
        return answer_card(&socket, &target, card, option, args.timeout);
    }
    let link = Link::connect(&socket, &target.platform_id).with_context(|| {
        format!(
            "no runtime is listening at {}: start it with `nanoclaw run --data {}`",
            socket.display(),
            ctx.paths.data.display()
        )
    })?;
    match args.message {
        Some(text) => {
            if let Some(note) = &target.note {
                eprintln!("note: {note}");
            }
            let request = Request {
                text: &text,
                replies: args.replies,
                timeout: args.timeout,
            };
            let mut stdout = std::io::stdout();
            let mut stderr = std::io::stderr();
            one_shot(link, &socket, &target, &request, &mut stdout, &mut stderr)
        }
        None => interactive::run(link, &socket, &target, &ctx.paths.data.join("chat_history")),
    }
}

/// `--answer CARD OPTION`: sends the answer as the person of the target chat and prints the
/// outcome.
fn answer_card(
    socket: &Path,
    target: &Target,
    card: String,
    option: String,
    timeout: Duration,
) -> anyhow::Result<Status> {
    let mut link = Link::open(socket)
        .with_context(|| format!("no runtime is listening at {}", socket.display()))?;
    link.send(&ClientLine::Answer {
        answer: AnswerLine {
            card,
            option,
            platform_id: Some(target.platform_id.clone()),
        },
    })
    .context("sending the answer")?;
    let deadline = Instant::now() + timeout;
    loop {
        match link
            .next(Some(deadline))
            .context("reading from the runtime")?
        {
            Next::Line(HostLine::Answered { outcome, .. }) => {
                println!("{outcome}");
                return Ok(Status::Ok);
            }
            Next::Line(HostLine::Error { error }) => bail!("the answer was refused: {error}"),
            Next::Line(_) => {}
            Next::Closed => bail!("the runtime closed the connection before deciding"),
            Next::TimedOut => bail!("no verdict within {timeout:?}"),
        }
    }
}

/// A `--message` run.
struct Request<'a> {
    text: &'a str,
    replies: usize,
    timeout: Duration,
}

/// Sends one message and prints its replies to `out` (notices to `err`), acknowledging each.
/// Replies to other messages are neither shown nor acknowledged: they stay queued.
fn one_shot(
    mut link: Link,
    socket: &Path,
    target: &Target,
    request: &Request<'_>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<Status> {
    let deadline = Instant::now() + request.timeout;
    let id = agent_runner::session_db::new_id("cli");
    let message = ClientLine::Message(Message {
        text: request.text.to_string(),
        id: Some(id.clone()),
        platform_id: None,
        mention: None,
    });
    link.send(&message).context("sending the message")?;
    let mut shown = Shown::default();
    let mut accepted = false;
    let mut received = 0;
    let waiting = |received: usize| {
        format!(
            "no reply within {:?} ({received} of {} received)",
            request.timeout, request.replies
        )
    };
    while !accepted || received < request.replies {
        let line = match link
            .next(Some(deadline))
            .context("reading from the runtime")?
        {
            Next::Line(line) => line,
            Next::TimedOut => bail!(waiting(received)),
            Next::Closed if !accepted => {
                bail!("the runtime closed the connection before storing the message")
            }
            Next::Closed => {
                // The message is stored; its reply comes once the runtime is back.
                writeln!(
                    err,
                    "note: the runtime went away; waiting for it to come back"
                )?;
                link = reconnect(socket, &target.platform_id, deadline)
                    .with_context(|| waiting(received))?;
                continue;
            }
        };
        match line {
            HostLine::Welcome { .. } | HostLine::Answered { .. } => {}
            HostLine::Accepted {
                accepted: stored,
                agents,
            } => {
                if stored == id {
                    accepted = true;
                    if request.replies > 0 {
                        expect_an_answer(target, &agents)?;
                    }
                }
            }
            HostLine::Error { error } => bail!("the runtime rejected the message: {error}"),
            HostLine::Superseded { .. } => bail!(
                "another client of this chat connected and now receives its replies{}; \
                 give concurrent scripts their own CLI channels",
                if accepted {
                    " (the message was stored)"
                } else {
                    ""
                }
            ),
            HostLine::Reply(reply) => match addressed(&reply, &id, target.agent.as_deref()) {
                Addressed::Answer => {
                    if shown.first_time(&reply.id) {
                        if !reply.text.is_empty() || reply.files.is_empty() {
                            writeln!(out, "{}", reply.text)?;
                        }
                        for file in &reply.files {
                            writeln!(out, "file saved: {file}")?;
                        }
                        out.flush()?;
                        if let Some(card) = reply.card.as_ref().filter(|card| !card.decided) {
                            writeln!(
                                err,
                                "(answer with `nanoclaw chat --answer {} N`, N the option's number)",
                                card.id
                            )?;
                        }
                        received += 1;
                    }
                    link.ack(&reply.id).context("acknowledging a reply")?;
                }
                Addressed::Notice => {
                    if shown.first_time(&reply.id) {
                        writeln!(err, "{}", reply.text)?;
                    }
                    link.ack(&reply.id).context("acknowledging a notice")?;
                }
                Addressed::Other => {}
            },
        }
    }
    Ok(Status::Ok)
}

/// Fails early when the runtime says nobody (or not the named agent) will answer.
fn expect_an_answer(target: &Target, answering: &[String]) -> anyhow::Result<()> {
    let chat = target.chat.as_deref().unwrap_or(&target.platform_id);
    if answering.is_empty() {
        bail!(
            "the message was stored, but no agent on the CLI chat `{chat}` answers it, so no reply will come\n\n\
             hint: check the engage mode and pattern of the chat's wirings"
        );
    }
    if let Some(agent) = &target.agent
        && !answering.contains(agent)
    {
        bail!(
            "the message was stored, but `{agent}` does not answer it on the CLI chat `{chat}` (answering: {})\n\n\
             hint: check the engage mode and pattern of `{agent}`'s wiring",
            answering.join(", ")
        );
    }
    Ok(())
}

/// Who a reply is for, from a one-shot client's point of view.
#[derive(Debug, PartialEq, Eq)]
enum Addressed {
    /// It answers our message (from the agent we wait for): show it on stdout.
    Answer,
    /// It answers no message (a notice, e.g. the agent cannot start): show it on stderr.
    Notice,
    /// It answers another message or comes from another agent: leave it queued.
    Other,
}

fn addressed(reply: &Reply, message_id: &str, agent: Option<&str>) -> Addressed {
    match (&reply.in_reply_to, agent) {
        (Some(to), Some(agent)) if *to == format!("{message_id}:{agent}") => Addressed::Answer,
        (Some(to), None)
            if to
                .strip_prefix(message_id)
                .is_some_and(|rest| rest.starts_with(':')) =>
        {
            Addressed::Answer
        }
        (Some(_), _) => Addressed::Other,
        (None, Some(agent)) if reply.agent.as_deref().is_some_and(|from| from != agent) => {
            Addressed::Other
        }
        (None, _) => Addressed::Notice,
    }
}

/// Connects again until `deadline`.
fn reconnect(socket: &Path, platform_id: &str, deadline: Instant) -> anyhow::Result<Link> {
    loop {
        match Link::connect(socket, platform_id) {
            Ok(link) => return Ok(link),
            Err(err) if Instant::now() >= deadline => {
                return Err(err).context("the runtime did not come back");
            }
            Err(_) => std::thread::sleep(RECONNECT_EVERY),
        }
    }
}

#[cfg(test)]
mod tests;
