//! `nanoclaw chat [AGENT|CHANNEL]`: a terminal client of the CLI channel socket.
//!
//! Interactive mode (line editing and history by rustyline) shows replies as they arrive,
//! above the prompt; Ctrl-D leaves. `--message TEXT` sends one message, waits for the reply
//! (or `--replies N` replies, for fan-out) and prints it: for scripts.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use rusqlite::OptionalExtension;

use super::{Ctx, Status};
use crate::channels::cli_socket::{CHANNEL_TYPE, DEFAULT_PLATFORM_ID};
use crate::db;

const AFTER_HELP: &str = "\
The runtime must be running (`nanoclaw run`) on the same --data directory.

Examples:
  nanoclaw chat                          talk to whoever is wired to the default CLI chat
  nanoclaw chat andy                     talk to the agent `andy` (through its CLI channel)
  nanoclaw chat --message 'hello'        send one message, print the reply, exit
  nanoclaw chat --message hi --replies 2 wait for two replies (a chat wired to two agents)";

/// Talk to agents from the terminal through the CLI channel.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ChatArgs {
    /// An agent (its CLI channel is used) or a CLI channel, by manifest name.
    /// Default: the CLI chat `local`.
    pub target: Option<String>,
    /// Send this one message, print the reply and exit (0 on a reply, 1 on timeout).
    #[arg(long, short = 'm', value_name = "TEXT")]
    pub message: Option<String>,
    /// With --message: how many replies to wait for (0: only until the runtime has stored it).
    #[arg(long, default_value_t = 1, value_name = "N", requires = "message")]
    pub replies: usize,
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

pub fn run(args: ChatArgs, ctx: &Ctx) -> anyhow::Result<Status> {
    let platform_id = resolve_target(&ctx.paths.db(), args.target.as_deref())?;
    let socket = ctx.paths.cli_socket();
    let stream = UnixStream::connect(&socket).with_context(|| {
        format!(
            "no runtime is listening at {}: start it with `nanoclaw run --data {}`",
            socket.display(),
            ctx.paths.data.display()
        )
    })?;
    let mut writer = stream.try_clone().context("cloning the socket")?;
    let hello = serde_json::json!({ "hello": { "platform_id": platform_id } });
    writeln!(writer, "{hello}").context("sending hello")?;
    match args.message {
        Some(text) => one_shot(stream, writer, &text, args.replies, args.timeout),
        None => interactive(
            stream,
            writer,
            &platform_id,
            &ctx.paths.data.join("chat_history"),
        ),
    }
}

/// The CLI platform id to talk on: a CLI channel by name, the CLI channel wired to an agent,
/// or the default `local`.
fn resolve_target(db_path: &Path, target: Option<&str>) -> anyhow::Result<String> {
    let Some(target) = target else {
        return Ok(DEFAULT_PLATFORM_ID.to_string());
    };
    if !db_path.exists() {
        bail!(
            "no configuration yet at {}: run `nanoclaw run` or `nanoclaw apply` first",
            db_path.display()
        );
    }
    let conn =
        db::open_readonly(db_path).with_context(|| format!("opening {}", db_path.display()))?;
    let by_channel: Option<String> = conn
        .query_row(
            "SELECT platform_id FROM messaging_groups WHERE id = ?1 AND channel_type = ?2",
            [target, CHANNEL_TYPE],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(platform_id) = by_channel {
        return Ok(platform_id);
    }
    let by_agent: Option<String> = conn
        .query_row(
            "SELECT m.platform_id FROM messaging_group_agents w JOIN messaging_groups m ON m.id = w.messaging_group_id
             WHERE w.agent_group_id = ?1 AND m.channel_type = ?2 ORDER BY m.id LIMIT 1",
            [target, CHANNEL_TYPE],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(platform_id) = by_agent {
        return Ok(platform_id);
    }
    let mut statement = conn.prepare(
        "SELECT m.id || ' (agents: ' || COALESCE(group_concat(w.agent_group_id, ', '), 'none') || ')'
         FROM messaging_groups m LEFT JOIN messaging_group_agents w ON w.messaging_group_id = m.id
         WHERE m.channel_type = ?1 GROUP BY m.id ORDER BY m.id",
    )?;
    let available: Vec<String> = statement
        .query_map([CHANNEL_TYPE], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    bail!(
        "`{target}` is neither a CLI channel nor an agent wired to one\n\nhint: CLI channels: {}",
        if available.is_empty() {
            "none — add a channel with `channel_type: cli`".to_string()
        } else {
            available.join("; ")
        }
    )
}

/// A line from the host.
#[derive(Debug, serde::Deserialize)]
struct HostLine {
    text: Option<String>,
    in_reply_to: Option<String>,
    accepted: Option<String>,
    error: Option<String>,
    /// A newer client of the same chat now receives its replies.
    superseded: Option<bool>,
}

fn one_shot(
    stream: UnixStream,
    mut writer: UnixStream,
    text: &str,
    replies: usize,
    timeout: Duration,
) -> anyhow::Result<Status> {
    let id = crate::runtime::ids::generate("cli");
    let line = serde_json::json!({ "text": text, "id": id });
    writeln!(writer, "{line}").context("sending the message")?;
    let deadline = Instant::now() + timeout;
    let mut reader = BufReader::new(stream);
    let prefix = format!("{id}:");
    let mut received = 0;
    let mut accepted = false;
    while !accepted || received < replies {
        let left = deadline.saturating_duration_since(Instant::now());
        let waiting = || format!("no reply within {timeout:?} ({received} of {replies} received)");
        if left.is_zero() {
            bail!(waiting());
        }
        reader
            .get_ref()
            .set_read_timeout(Some(left))
            .context("setting a read timeout")?;
        let mut buffer = String::new();
        match reader.read_line(&mut buffer) {
            Ok(0) => bail!("the runtime closed the connection before replying"),
            Ok(_) => {}
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                bail!(waiting())
            }
            Err(err) => return Err(err).context("reading from the runtime"),
        }
        let Ok(host) = serde_json::from_str::<HostLine>(&buffer) else {
            continue;
        };
        if let Some(error) = host.error {
            bail!("the runtime rejected the message: {error}");
        }
        if host.accepted.as_deref() == Some(id.as_str()) {
            accepted = true;
        }
        if host.superseded == Some(true) {
            bail!(
                "another client of this chat connected and now receives its replies{}; \
                 give concurrent scripts their own CLI channels",
                if accepted {
                    " (the message was stored)"
                } else {
                    ""
                }
            );
        }
        match (host.text, host.in_reply_to) {
            (Some(text), Some(reply_to)) if reply_to.starts_with(&prefix) => {
                println!("{text}");
                received += 1;
            }
            // A notice from the runtime itself (e.g. the agent cannot start): show it.
            (Some(text), None) => eprintln!("{text}"),
            _ => {}
        }
    }
    Ok(Status::Ok)
}

fn interactive(
    stream: UnixStream,
    mut writer: UnixStream,
    platform_id: &str,
    history: &Path,
) -> anyhow::Result<Status> {
    let mut editor = rustyline::DefaultEditor::new().context("starting the line editor")?;
    // History persists across chat sessions (best effort: a missing file is a first run).
    let _ = editor.load_history(history);
    let mut printer = editor
        .create_external_printer()
        .context("starting the reply printer")?;
    let reader_thread = std::thread::spawn(move || {
        use rustyline::ExternalPrinter;
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let Ok(host) = serde_json::from_str::<HostLine>(&line) else {
                continue;
            };
            let shown = match (host.text, host.error, host.accepted) {
                (Some(text), _, _) => Some(text),
                (_, Some(error), _) => Some(format!("error: {error}")),
                _ => None,
            };
            if let Some(shown) = shown {
                let _ = printer.print(format!("{shown}\n"));
            }
        }
        let _ = printer.print("(the runtime closed the connection)\n".to_string());
    });
    println!("Connected to the CLI chat `{platform_id}`. Type a message; Ctrl-D leaves.");
    loop {
        match editor.readline("> ") {
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => {
                let _ = editor.add_history_entry(line.as_str());
                let message = serde_json::json!({ "text": line });
                if writeln!(writer, "{message}").is_err() {
                    eprintln!("error: the runtime is gone");
                    return Ok(Status::Error);
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(err) => return Err(err).context("reading input"),
        }
    }
    let _ = editor.save_history(history);
    let _ = writer.shutdown(std::net::Shutdown::Both);
    let _ = reader_thread.join();
    Ok(Status::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_shot_client_taken_over_by_another_fails_at_once_with_the_reason() {
        let (ours, mut host) = UnixStream::pair().unwrap();
        let writer = ours.try_clone().unwrap();
        writeln!(
            host,
            r#"{{"text":"[superseded by a newer client]","superseded":true}}"#
        )
        .unwrap();
        let err = one_shot(ours, writer, "hi", 1, Duration::from_secs(2)).unwrap_err();
        assert!(
            err.to_string().contains("another client"),
            "unexpected error: {err}"
        );
    }
}
