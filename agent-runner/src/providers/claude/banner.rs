//! Claude Code's "you are not authenticated" banners (issue 10 point 2): a result text that
//! starts with one of them is replaced by a message telling the chat user what the operator must
//! do, because nobody can run `/login` from a chat.
//!
//! The banners of Claude Code 2.1.332 (docs/claude-code.md, "Errors and retries"), all with the
//! U+00B7 (`·`) separator: `Not logged in · Please run /login`, `Invalid API key · Please run
//! /login`, `Invalid API key · Fix external API key`; and `Failed to authenticate. API Error:
//! 401 …` for any other 401 (the credential proxy's refusals arrive that way). Only the start of
//! the text counts: an agent quoting a banner mid-sentence is not an auth failure.

use std::sync::LazyLock;

use regex::Regex;

/// What the chat user reads instead of a banner.
pub const AUTH_REQUIRED_MESSAGE: &str = "I can't reach Claude: the Anthropic credential of this nanoclaw install is missing or was rejected. \
The operator must set a valid one on the host with `nanoclaw auth set anthropic`; then send your message again.";

static BANNER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^\s*(?:(?:Not logged in|Invalid API key) \x{00B7} (?:Please run /login|Fix external API key)|Failed to authenticate\. API Error: 401\b)",
    )
    .expect("valid regex")
});

/// Whether a result text is Claude Code's auth-required banner (start of the text only).
pub fn is_auth_required(text: &str) -> bool {
    BANNER.is_match(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(text: &str, expect: bool) {
        assert_eq!(is_auth_required(text), expect, "{text:?}");
    }

    #[test]
    fn both_login_banners_are_recognised() {
        check("Not logged in · Please run /login", true);
        check("Invalid API key · Please run /login", true);
    }

    #[test]
    fn the_banners_claude_code_2_1_332_prints_are_recognised() {
        check("Invalid API key · Fix external API key", true);
        check(
            "Failed to authenticate. API Error: 401 credential proxy: the key is not a live nanoclaw placeholder",
            true,
        );
        check(
            "Failed to authenticate. API Error: 401 {\"type\":\"error\"}",
            true,
        );
    }

    #[test]
    fn trailing_content_and_leading_whitespace_still_match() {
        check("Not logged in · Please run /login\n\nmore text", true);
        check("Invalid API key · Please run /login.", true);
        check("  \nNot logged in · Please run /login", true);
    }

    #[test]
    fn quoting_a_banner_mid_sentence_does_not_match() {
        check(
            "When Claude Code says \"Not logged in · Please run /login\" you must log in.",
            false,
        );
        check(
            "<message to=\"cli\">The banner reads Invalid API key · Fix external API key</message>",
            false,
        );
    }

    #[test]
    fn leading_prose_before_a_banner_does_not_match() {
        check(
            "Here is the error: Not logged in · Please run /login",
            false,
        );
        check("Note. Failed to authenticate. API Error: 401 x", false);
    }

    #[test]
    fn other_separators_do_not_match() {
        check("Not logged in - Please run /login", false);
        check("Not logged in | Please run /login", false);
        check("Invalid API key • Please run /login", false);
        check("Not logged in \u{2219} Please run /login", false);
        check("Not logged in \u{30FB} Please run /login", false);
        check("Not logged in·Please run /login", false);
    }

    #[test]
    fn unrelated_text_and_other_api_errors_do_not_match() {
        check("", false);
        check("Hello there.", false);
        check("Failed to authenticate. API Error: 403 forbidden", false);
        check("API Error: Repeated 529 Overloaded errors.", false);
        check("Not logged in", false);
    }

    #[test]
    fn the_message_names_the_operator_command() {
        assert!(AUTH_REQUIRED_MESSAGE.contains("`nanoclaw auth set anthropic`"));
    }
}
