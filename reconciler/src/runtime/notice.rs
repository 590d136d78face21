//! Telling a chat that its agent is not answering: the container could not be started, or it
//! failed. Otherwise the person waits for a reply that is not coming. The waker decides when
//! (once per failure streak, and only while messages wait, see `waker.rs`); this file words the
//! notice ([`text`], pure) and sends it to the session's chat.

use std::time::Duration;

use super::outbox::Outboxes;
use crate::channels::Outbound;
use crate::db;
use crate::paths::Paths;

/// Why the agent is not answering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Its container could not be started (prepare or spawn failed).
    CannotStart {
        agent: String,
        reason: String,
        retry_in: Duration,
    },
    /// Its container needs the Anthropic credential and none is configured (`reason` says how
    /// to set one); nothing was started and the messages wait.
    NoCredential { agent: String, reason: String },
    /// Its container exited with an error nobody asked for.
    Failed {
        agent: String,
        exit_code: i64,
        /// The container's last output line, if any.
        last_line: Option<String>,
        retry_in: Duration,
    },
}

/// Longest reason quoted in a notice, in characters.
const REASON_CHARS: usize = 300;

/// The notice's text (one paragraph; details stay in the log and `nanoclaw history --failures`).
pub fn text(notice: &Notice) -> String {
    let (opening, reason, retry_in) = match notice {
        Notice::NoCredential { agent, reason } => {
            return format!(
                "⚠️ The agent `{agent}` cannot reach its model: {}. Your message is kept.",
                reason.trim_end_matches('.')
            );
        }
        Notice::CannotStart {
            agent,
            reason,
            retry_in,
        } => (
            format!("⚠️ The agent `{agent}` could not be started, so it cannot answer yet"),
            Some(reason.as_str()),
            *retry_in,
        ),
        Notice::Failed {
            agent,
            exit_code,
            last_line,
            retry_in,
        } => (
            format!(
                "⚠️ The agent `{agent}` stopped with an error (exit code {exit_code}{})",
                if *exit_code == 137 { ", killed" } else { "" }
            ),
            last_line.as_deref(),
            *retry_in,
        ),
    };
    let reason = reason
        .map(|reason| format!(": {}", shorten(reason.trim())))
        .unwrap_or_default();
    let retry = if retry_in.is_zero() {
        "it is being retried now".to_string()
    } else {
        format!("the next try is in {} s", retry_in.as_secs())
    };
    format!(
        "{opening}{reason}. Your message is kept and {retry}; `nanoclaw history --failures` and the nanoclaw log say more."
    )
}

/// The line of a failed container's output that says why: the last line that is not a
/// routine `tracing` line (INFO and below), without the timestamp, level and target such a line
/// starts with. `None` when the output holds only routine lines (a container killed from
/// outside says nothing about why).
pub fn last_line(tail: &[String]) -> Option<String> {
    tail.iter().rev().find_map(|line| {
        let line = line.trim();
        if line.is_empty() {
            return None;
        }
        match split_log_line(line) {
            Some((level, message)) => {
                matches!(level, "ERROR" | "WARN").then(|| message.to_string())
            }
            None => Some(line.to_string()),
        }
    })
}

/// `<timestamp> <LEVEL> <target>: <message>` → `(LEVEL, message)`; `None` for other lines.
fn split_log_line(line: &str) -> Option<(&str, &str)> {
    let (first, rest) = line.split_once(' ')?;
    let is_timestamp = first.len() >= 10
        && first.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && first.as_bytes()[4] == b'-';
    if !is_timestamp {
        return None;
    }
    let (level, rest) = rest.trim_start().split_once(' ')?;
    if !["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level) {
        return None;
    }
    let rest = rest.trim_start();
    let message = match rest.split_once(": ") {
        Some((target, message))
            if !target.is_empty()
                && target
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') =>
        {
            message
        }
        _ => rest,
    };
    Some((level, message))
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(REASON_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Sends a notice to the session's chat. The missing-credential notice answers the oldest
/// message waiting there (`in_reply_to`): it is that message's answer for now, so a one-shot
/// `nanoclaw chat --message` shows it as the reply. The others stay unaddressed notices (the
/// container's failure is not about one message). Sessions without a chat (agent-to-agent) and
/// chats without a running adapter get nothing; errors are logged.
pub fn tell(paths: &Paths, outboxes: &Outboxes, session: &str, notice: &Notice) {
    let address = db::open(&paths.db()).and_then(|conn| {
        conn.query_row(
            "SELECT m.channel_type, m.platform_id, s.thread_id, s.agent_group_id
             FROM sessions s JOIN messaging_groups m ON m.id = s.messaging_group_id WHERE s.id = ?1",
            [session],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get(2)?,
                    row.get::<_, String>(3)?,
                ))
            },
        )
    });
    let Ok((channel_type, platform_id, thread_id, agent)) = address else {
        return;
    };
    let in_reply_to = match notice {
        Notice::NoCredential { .. } => waiting_message(paths, &agent, session),
        Notice::CannotStart { .. } | Notice::Failed { .. } => None,
    };
    let message = Outbound {
        id: agent_runner::session_db::new_id("notice"),
        agent: Some(agent),
        platform_id,
        thread_id,
        kind: "chat".to_string(),
        content: serde_json::json!({ "text": text(notice) }),
        in_reply_to,
        files: Vec::new(),
    };
    outboxes.notice(&channel_type, message, "agent not answering");
}

/// The oldest message waiting in the session (the one the notice is about), if it can be read.
fn waiting_message(paths: &Paths, agent: &str, session: &str) -> Option<String> {
    use agent_runner::session_db;
    let inbound = session_db::inbound_path(&paths.session(agent, session));
    let inbound = session_db::open_inbound_host(&inbound).ok()?;
    session_db::oldest_pending_trigger(&inbound).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_is_the_last_error_line_without_the_log_prefix() {
        let tail = [
            "2026-11-30T00:03:21.2Z  INFO agent_runner::poll: Starting".to_string(),
            "2026-11-30T00:03:21.203394Z ERROR agent_runner: Fatal error error=Unknown provider: claude. Registered: mock".to_string(),
            "2026-11-30T00:03:21.3Z  INFO agent_runner::poll: Stopped".to_string(),
            "   ".to_string(),
        ];
        assert_eq!(
            last_line(&tail).as_deref(),
            Some("Fatal error error=Unknown provider: claude. Registered: mock")
        );
        assert_eq!(
            last_line(&["thread 'main' panicked at src/x.rs:1: boom".to_string()]).as_deref(),
            Some("thread 'main' panicked at src/x.rs:1: boom")
        );
        let killed = [
            "2026-11-30T01:41:46.09Z  INFO agent_runner::poll: Session session=mock-1".to_string(),
        ];
        assert_eq!(
            last_line(&killed),
            None,
            "routine lines say nothing about why"
        );
        assert_eq!(last_line(&[]), None);
    }

    #[test]
    fn notices_name_the_agent_the_reason_and_the_retry() {
        let cannot = Notice::CannotStart {
            agent: "echo".into(),
            reason: "image `nope:1` not found".into(),
            retry_in: Duration::ZERO,
        };
        expect_test::expect!["⚠️ The agent `echo` could not be started, so it cannot answer yet: image `nope:1` not found. Your message is kept and it is being retried now; `nanoclaw history --failures` and the nanoclaw log say more."]
            .assert_eq(&text(&cannot));
        let failed = Notice::Failed {
            agent: "echo".into(),
            exit_code: 1,
            last_line: Some("Fatal error error=Unknown provider: claude. Registered: mock".into()),
            retry_in: Duration::from_secs(5),
        };
        expect_test::expect!["⚠️ The agent `echo` stopped with an error (exit code 1): Fatal error error=Unknown provider: claude. Registered: mock. Your message is kept and the next try is in 5 s; `nanoclaw history --failures` and the nanoclaw log say more."]
            .assert_eq(&text(&failed));
        let silent = Notice::Failed {
            agent: "echo".into(),
            exit_code: 137,
            last_line: None,
            retry_in: Duration::ZERO,
        };
        assert!(text(&silent).starts_with(
            "⚠️ The agent `echo` stopped with an error (exit code 137, killed). Your"
        ));
    }

    #[test]
    fn no_credential_names_the_command_and_keeps_the_message() {
        let notice = Notice::NoCredential {
            agent: "andy".into(),
            reason: crate::credentials::CredentialError::Missing.to_string(),
        };
        expect_test::expect!["⚠️ The agent `andy` cannot reach its model: no Anthropic credential is set on the host, so the agent cannot answer yet; run `nanoclaw auth set anthropic` on the host (or give the daemon `ANTHROPIC_API_KEY` or `CLAUDE_CODE_OAUTH_TOKEN`) and the message will be answered. Your message is kept."].assert_eq(&text(&notice));
    }
}
