//! Slash commands: THE one table of which chat texts are commands and what each side does with
//! them. The host's command gate (`reconciler::runtime::route`) and the runner's formatter
//! (`format`) both read [`category`], so they cannot disagree.
//!
//! | category | commands | host (router) | runner |
//! |---|---|---|---|
//! | [`Command::Admin`] | `/clear` `/compact` `/context` `/cost` `/files` | owners and admins only; others get a denial | a command: `/clear` resets the session, the rest go raw to a provider with native commands and end an open query |
//! | [`Command::Filtered`] | `/help` `/login` `/logout` `/doctor` `/config` `/remote-control` | dropped silently | text (it arrives only as accumulated context) |
//! | [`Command::Plain`] | `/start` | passed | text: formatted as chat, never raw |
//! | [`Command::Passthrough`] | any other `/…` | passed | a command, as admin ones |
//! | [`Command::None`] | text not starting with `/` | passed | text |
//!
//! Deliberate differences from v2 (docs/agent-runner.md#slash-commands): v2's host dropped
//! `/remote-control` while its runner passed it raw as an admin command, and its host passed
//! `/start` while its runner filtered it. Here `/remote-control` is filtered on both sides
//! (never handed raw to a provider), and `/start` (the bot command Telegram sends when a user
//! opens a chat) is plain text on both sides: the agent sees that someone said hello.

/// The category of a chat text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Not a command: the text does not start with `/`.
    None,
    /// Admin-only: the host lets only owners and admins send it; the runner acts on it.
    Admin,
    /// The host drops it; should the runner see it (accumulated context), it is text.
    Filtered,
    /// A platform's bot command that is a message to the agent: passed, and text.
    Plain,
    /// Any other `/…`: passed by the host, a native command for the runner.
    Passthrough,
}

/// Admin-only commands.
pub const ADMIN: &[&str] = &["/clear", "/compact", "/context", "/cost", "/files"];
/// Commands the host drops.
pub const FILTERED: &[&str] = &[
    "/help",
    "/login",
    "/logout",
    "/doctor",
    "/config",
    "/remote-control",
];
/// Commands that reach the agent as chat text.
pub const PLAIN: &[&str] = &["/start"];

/// The command of a text: its first whitespace-separated token, lowercased, when the trimmed
/// text starts with `/`.
pub fn command(text: &str) -> Option<String> {
    let text = text.trim();
    if !text.starts_with('/') {
        return None;
    }
    Some(
        text.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_lowercase(),
    )
}

/// Categorises a chat text (the message's `text`; see the module table).
pub fn category(text: &str) -> Command {
    let Some(command) = command(text) else {
        return Command::None;
    };
    let command = command.as_str();
    if ADMIN.contains(&command) {
        Command::Admin
    } else if FILTERED.contains(&command) {
        Command::Filtered
    } else if PLAIN.contains(&command) {
        Command::Plain
    } else {
        Command::Passthrough
    }
}

impl Command {
    /// Whether the runner acts on it as a command (admin or passthrough): `/clear` resets the
    /// session, the others go raw to a native-command provider and end an open query.
    pub fn is_runner_command(self) -> bool {
        matches!(self, Command::Admin | Command::Passthrough)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_command_has_exactly_one_category() {
        let mut all: Vec<&str> = ADMIN.iter().chain(FILTERED).chain(PLAIN).copied().collect();
        let listed = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), listed, "a command is listed twice");
        for command in ADMIN {
            assert_eq!(category(command), Command::Admin, "{command}");
        }
        for command in FILTERED {
            assert_eq!(category(command), Command::Filtered, "{command}");
        }
        for command in PLAIN {
            assert_eq!(category(command), Command::Plain, "{command}");
        }
    }

    #[test]
    fn the_command_is_the_first_token_lowercased() {
        assert_eq!(command("  /Compact now").as_deref(), Some("/compact"));
        assert_eq!(command("hello /clear"), None);
        assert_eq!(category("/START"), Command::Plain);
        assert_eq!(category("/remote-control on"), Command::Filtered);
        assert!(category("/shrug").is_runner_command());
        assert!(!category("/start").is_runner_command());
        assert!(!category("/help").is_runner_command());
    }
}
