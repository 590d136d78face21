//! An outage of the model's API as the chat sees it
//! (docs/agent-runner.md#when-the-model-api-cannot-be-reached): a turn that could not reach the
//! API is not answered with its error; its messages are given back to the host, which retries
//! them with the backoff of every retry (docs/runtime.md#stuck-containers-and-retries), and the
//! chat hears of the outage once, and of a message's last try.
//!
//! Pure: the poll loop reads the facts (the messages' tries, whether the chat was told of this
//! outage), asks [`on_give_back`], and writes what it says. Whether the chat was told is kept in
//! the session DB (`session_db::container::outage_told`), not in the runner's memory: the
//! retries of one outage may be run by different containers (an idle one is stopped between
//! them, a restart replaces it).

use crate::session_db::MAX_TRIES;

/// What the chat hears when a turn's messages are given back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tell {
    /// Nothing: it heard of this outage already.
    Nothing,
    /// The provider's outage notice: the first word of this outage.
    Notice,
    /// A message had its last try: the host marks it failed; `text` tells the chat so, and why,
    /// as the answer to `message_id`.
    Failure { message_id: String, text: String },
}

impl Tell {
    /// Whether the chat knows of an outage still going on after this: a failure ends the story
    /// of its message, so a message sent after it hears of the outage again.
    pub fn told_after(&self, told_before: bool) -> bool {
        match self {
            Tell::Nothing => told_before,
            Tell::Notice => true,
            Tell::Failure { .. } => false,
        }
    }
}

/// Decides what the chat hears when the messages `tries` (id, retries so far) are given back
/// after `error`; `told`: the chat heard of this outage already.
pub fn on_give_back(tries: &[(String, i64)], told: bool, error: &str) -> Tell {
    let last = tries.iter().find(|(_, tries)| *tries >= MAX_TRIES);
    match last {
        Some((message_id, tries)) => Tell::Failure {
            message_id: message_id.clone(),
            text: failure_text(error, tries + 1),
        },
        None if told => Tell::Nothing,
        None => Tell::Notice,
    }
}

/// The chat's answer to a message given up after `attempts` attempts that all met `error`.
pub fn failure_text(error: &str, attempts: i64) -> String {
    format!(
        "❌ I gave up on your message after {attempts} tries: {}. Please send it again later.",
        error.trim().trim_end_matches('.')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tries(list: &[(&str, i64)]) -> Vec<(String, i64)> {
        list.iter().map(|(id, n)| (id.to_string(), *n)).collect()
    }

    #[test]
    fn the_first_give_back_of_an_outage_tells_the_notice_and_later_ones_nothing() {
        let error = "Anthropic could not be reached (API Error: Connection refused)";
        assert_eq!(
            on_give_back(&tries(&[("m1", 0)]), false, error),
            Tell::Notice
        );
        assert_eq!(
            on_give_back(&tries(&[("m1", 1)]), true, error),
            Tell::Nothing
        );
        assert_eq!(
            on_give_back(&[], false, error),
            Tell::Notice,
            "a turn without messages (a nudge) still hears of the outage"
        );
        assert!(Tell::Notice.told_after(false));
        assert!(Tell::Nothing.told_after(true));
        assert!(!Tell::Nothing.told_after(false));
    }

    #[test]
    fn the_last_try_is_told_as_a_failure_naming_what_happened() {
        let error = "Anthropic could not be reached (API Error: Connection refused.)";
        let tell = on_give_back(&tries(&[("m2", 2), ("m1", MAX_TRIES)]), true, error);
        assert_eq!(
            tell,
            Tell::Failure {
                message_id: "m1".into(),
                text: "❌ I gave up on your message after 6 tries: Anthropic could not be reached (API Error: Connection refused.). Please send it again later.".into(),
            }
        );
        assert!(
            !tell.told_after(true),
            "a later message hears of the outage again"
        );
        assert_eq!(
            on_give_back(&tries(&[("m1", MAX_TRIES - 1)]), true, error),
            Tell::Nothing,
            "one more try is left"
        );
    }
}
