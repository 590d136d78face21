//! Which CLI chat `nanoclaw chat [AGENT|CHANNEL]` talks on and whose replies it waits for.
//!
//! [`target`] reads the CLI chats and their wired agents (`db::routing::chats_of_type`) and
//! [`choose`] decides, purely; the caller prints the note.
//!
//! An agent's own chat (wired only to it) wins over a shared one; on a shared chat every wired
//! agent may answer, so the client waits for the named agent's reply and says so. When there
//! is a choice, the note says which chat was used.

use super::OpsError;
use crate::channels::cli_protocol::DEFAULT_PLATFORM_ID;
use crate::channels::cli_socket::CHANNEL_TYPE;
use crate::db::routing::{self, WiredChat};
use crate::paths::Paths;

/// The chat for `name` (an agent or a CLI chat; `None`: the default chat) in the install at
/// `paths`. Without a DB yet, only the default chat can be talked on.
pub fn target(paths: &Paths, name: Option<&str>, mode: Mode) -> Result<Target, OpsError> {
    let chats = cli_chats(paths, name.is_some())?;
    choose(name, &chats, mode).map_err(OpsError::ChatTarget)
}

/// Every CLI chat with its agents; none when nothing was applied yet and no target needs them.
fn cli_chats(paths: &Paths, needed: bool) -> Result<Vec<WiredChat>, OpsError> {
    let path = paths.db();
    if !path.exists() {
        if needed {
            return Err(OpsError::NoConfiguration { path });
        }
        return Ok(Vec::new());
    }
    let conn = crate::db::open_readonly(&path).map_err(|source| OpsError::OpenChats {
        path: path.clone(),
        source,
    })?;
    routing::chats_of_type(&conn, CHANNEL_TYPE)
        .map_err(|source| OpsError::ReadChats { path, source })
}

/// Where the client talks, and whose replies it shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The chat's manifest name, when the chat is configured.
    pub chat: Option<String>,
    pub platform_id: String,
    /// The agent named on the command line: a one-shot client waits for its reply.
    pub agent: Option<String>,
    /// Agents wired to the chat (empty when unknown).
    pub agents: Vec<String>,
    /// How the chat was chosen, when there was a choice or it is shared; for stderr.
    pub note: Option<String>,
}

impl Target {
    /// More than one agent may answer here, so replies are labelled with their agent.
    pub fn is_shared(&self) -> bool {
        self.agents.len() > 1
    }

    fn of(chat: &WiredChat, agent: Option<&str>, note: Option<String>) -> Target {
        Target {
            chat: Some(chat.name.clone()),
            platform_id: chat.platform_id.clone(),
            agent: agent.map(str::to_string),
            agents: chat.agents.clone(),
            note,
        }
    }
}

/// How the client shows replies, which the note mentions for a shared chat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `--message`: waits for the named agent's reply.
    OneShot,
    /// Shows every reply, naming its agent on a shared chat.
    Interactive,
}

/// Chooses the chat for `target` (an agent or a CLI chat, by name; `None`: the default chat)
/// among `chats` (every CLI chat, by name). The error is the message to print.
pub fn choose(target: Option<&str>, chats: &[WiredChat], mode: Mode) -> Result<Target, String> {
    let Some(target) = target else {
        return Ok(default_chat(chats));
    };
    if let Some(chat) = chats.iter().find(|chat| chat.name == target) {
        let note = chat.agents.iter().any(|agent| agent == target).then(|| {
            format!("`{target}` names a CLI chat and an agent; talking on the chat `{target}`")
        });
        let note = note.or_else(|| shared_note(chat, None));
        return Ok(Target::of(chat, None, note));
    }
    let wired: Vec<&WiredChat> = chats
        .iter()
        .filter(|chat| chat.agents.iter().any(|agent| agent == target))
        .collect();
    let own: Vec<&WiredChat> = wired
        .iter()
        .copied()
        .filter(|chat| chat.agents.len() == 1)
        .collect();
    if let Some(chat) = own.first() {
        let note = (wired.len() > 1).then(|| {
            let others = names(wired.iter().filter(|other| other.name != chat.name));
            format!(
                "talking on the CLI chat `{}`, the one wired only to `{target}` (also wired to it: {others})",
                chat.name
            )
        });
        return Ok(Target::of(chat, Some(target), note));
    }
    // Only shared chats: the one with the fewest other agents (then by name).
    let Some(chat) = wired.iter().min_by_key(|chat| chat.agents.len()) else {
        return Err(unknown(target, chats));
    };
    let waiting_for = (mode == Mode::OneShot).then_some(target);
    let mut note = shared_note(chat, waiting_for).unwrap_or_default();
    if wired.len() > 1 {
        let others = names(wired.iter().filter(|other| other.name != chat.name));
        note.push_str(&format!(" (also wired to it: {others})"));
    }
    Ok(Target::of(chat, Some(target), Some(note)))
}

/// No target: the chat on platform `local`, else the only CLI chat, else `local` unconfigured
/// (the runtime then refuses the first message, naming the chat).
fn default_chat(chats: &[WiredChat]) -> Target {
    if let Some(chat) = chats
        .iter()
        .find(|chat| chat.platform_id == DEFAULT_PLATFORM_ID)
    {
        return Target::of(chat, None, shared_note(chat, None));
    }
    if let [chat] = chats {
        let note = format!("talking on `{}`, the only CLI chat", chat.name);
        let note =
            shared_note(chat, None).map_or(note.clone(), |shared| format!("{note}; {shared}"));
        return Target::of(chat, None, Some(note));
    }
    Target {
        chat: None,
        platform_id: DEFAULT_PLATFORM_ID.to_string(),
        agent: None,
        agents: Vec::new(),
        note: None,
    }
}

/// "the CLI chat `x` is shared by `a`, `b`: …" for a chat with more than one agent.
fn shared_note(chat: &WiredChat, waiting_for: Option<&str>) -> Option<String> {
    if chat.agents.len() < 2 {
        return None;
    }
    let agents = chat
        .agents
        .iter()
        .map(|agent| format!("`{agent}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let what = match waiting_for {
        Some(agent) => format!("waiting for `{agent}`'s reply"),
        None => "each reply names its agent".to_string(),
    };
    Some(format!(
        "the CLI chat `{}` is shared by {agents}: {what}",
        chat.name
    ))
}

fn names<'a>(chats: impl Iterator<Item = &'a &'a WiredChat>) -> String {
    chats
        .map(|chat| format!("`{}`", chat.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unknown(target: &str, chats: &[WiredChat]) -> String {
    let available = if chats.is_empty() {
        "none; add a channel with `channel_type: cli` wired to an agent".to_string()
    } else {
        chats
            .iter()
            .map(|chat| {
                let agents = if chat.agents.is_empty() {
                    "none".to_string()
                } else {
                    chat.agents.join(", ")
                };
                format!("{} (agents: {agents})", chat.name)
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    format!(
        "`{target}` is neither a CLI chat nor an agent wired to one\n\nhint: CLI chats: {available}"
    )
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn chat(name: &str, platform_id: &str, agents: &[&str]) -> WiredChat {
        WiredChat {
            name: name.into(),
            platform_id: platform_id.into(),
            agents: agents.iter().map(|agent| agent.to_string()).collect(),
        }
    }

    #[track_caller]
    fn check(target: Option<&str>, chats: &[WiredChat], expect: Expect) {
        let shown = match choose(target, chats, Mode::OneShot) {
            Ok(target) => format!(
                "platform {} (chat {:?}), waiting for {:?}, shared: {}\nnote: {}",
                target.platform_id,
                target.chat,
                target.agent,
                target.is_shared(),
                target.note.as_deref().unwrap_or("-")
            ),
            Err(error) => format!("error: {error}"),
        };
        expect.assert_eq(&shown);
    }

    #[test]
    fn issue_8_an_agent_s_own_chat_wins_over_a_shared_one_that_sorts_first() {
        check(
            Some("helper"),
            &[
                chat("chat", "local", &["andy", "helper"]),
                chat("helper-only", "helper", &["helper"]),
            ],
            expect![[r#"
                platform helper (chat Some("helper-only")), waiting for Some("helper"), shared: false
                note: talking on the CLI chat `helper-only`, the one wired only to `helper` (also wired to it: `chat`)"#]],
        );
    }

    #[test]
    fn an_agent_with_one_chat_of_its_own_needs_no_note() {
        check(
            Some("helper"),
            &[
                chat("chat", "local", &["andy"]),
                chat("helper-only", "helper", &["helper"]),
            ],
            expect![[r#"
                platform helper (chat Some("helper-only")), waiting for Some("helper"), shared: false
                note: -"#]],
        );
    }

    #[test]
    fn issue_8_on_a_shared_chat_the_client_waits_for_the_named_agent_and_says_so() {
        check(
            Some("helper"),
            &[
                chat("big", "big", &["andy", "bob", "helper"]),
                chat("chat", "local", &["andy", "helper"]),
            ],
            expect![[r#"
                platform local (chat Some("chat")), waiting for Some("helper"), shared: true
                note: the CLI chat `chat` is shared by `andy`, `helper`: waiting for `helper`'s reply (also wired to it: `big`)"#]],
        );
    }

    #[test]
    fn interactive_mode_on_a_shared_chat_names_each_reply_s_agent() {
        let chats = [chat("chat", "local", &["andy", "helper"])];
        let target = choose(Some("helper"), &chats, Mode::Interactive).unwrap();
        expect![[
            r#"the CLI chat `chat` is shared by `andy`, `helper`: each reply names its agent"#
        ]]
        .assert_eq(target.note.as_deref().unwrap_or_default());
    }

    #[test]
    fn a_chat_by_name() {
        check(
            Some("chat"),
            &[chat("chat", "local", &["andy", "helper"])],
            expect![[r#"
                platform local (chat Some("chat")), waiting for None, shared: true
                note: the CLI chat `chat` is shared by `andy`, `helper`: each reply names its agent"#]],
        );
        check(
            Some("andy"),
            &[chat("andy", "a", &["andy", "bob"])],
            expect![[r#"
                platform a (chat Some("andy")), waiting for None, shared: true
                note: `andy` names a CLI chat and an agent; talking on the chat `andy`"#]],
        );
    }

    #[test]
    fn the_default_chat() {
        check(
            None,
            &[
                chat("a", "a", &["andy"]),
                chat("terminal", "local", &["andy"]),
            ],
            expect![[r#"
                platform local (chat Some("terminal")), waiting for None, shared: false
                note: -"#]],
        );
        check(
            None,
            &[chat("side", "side", &["andy", "bob"])],
            expect![[r#"
                platform side (chat Some("side")), waiting for None, shared: true
                note: talking on `side`, the only CLI chat; the CLI chat `side` is shared by `andy`, `bob`: each reply names its agent"#]],
        );
        check(
            None,
            &[],
            expect![[r#"
                platform local (chat None), waiting for None, shared: false
                note: -"#]],
        );
    }

    #[test]
    fn an_unknown_name_lists_the_chats() {
        check(
            Some("zed"),
            &[
                chat("chat", "local", &["andy"]),
                chat("spare", "spare", &[]),
            ],
            expect![[r#"
                error: `zed` is neither a CLI chat nor an agent wired to one

                hint: CLI chats: chat (agents: andy); spare (agents: none)"#]],
        );
        check(
            Some("zed"),
            &[],
            expect![[r#"
                error: `zed` is neither a CLI chat nor an agent wired to one

                hint: CLI chats: none; add a channel with `channel_type: cli` wired to an agent"#]],
        );
    }
}
