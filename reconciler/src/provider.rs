//! Which provider runs an agent's session (issue 10 point 3), decided by one pure function.
//!
//! The name comes from the first of, in order: the session's own override
//! (`sessions.agent_provider`), the agent group's (`agent_groups.agent_provider`, a v2 column
//! nanoclaw's manifests never write), the agent's configuration (`container_configs.provider`,
//! the manifest's `provider`), else [`DEFAULT`]. A value that is empty or only blanks counts as
//! unset (a form that writes `''` for "no override" must not pick a provider called `''`), and the
//! name is lower-cased: the runner's registry is case-sensitive. Whether the name is one the
//! runner has is `validate`'s business, not this module's.
//!
//! The resolved name picks the agent's image (`containers::Recipe::for_provider`), goes into
//! `container.json`, and says whether the container gets the credential proxy
//! ([`needs_credentials`]).

use agent_runner::container_config::DEFAULT_PROVIDER;

/// The provider when nothing names one.
pub const DEFAULT: &str = DEFAULT_PROVIDER;
/// The offline echo provider of the tests and the bundled manifests.
pub const MOCK: &str = "mock";

/// Where a provider name may be set, most specific first. `None`, `""` and blanks mean unset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sources<'a> {
    /// `sessions.agent_provider`: one session's override.
    pub session: Option<&'a str>,
    /// `agent_groups.agent_provider`: the agent group's.
    pub group: Option<&'a str>,
    /// `container_configs.provider`: the agent's configuration (the manifest's `provider`).
    pub config: Option<&'a str>,
}

impl<'a> Sources<'a> {
    /// Only the agent's configuration (the manifests: no session, no group column).
    pub fn config(config: Option<&'a str>) -> Sources<'a> {
        Sources {
            config,
            ..Sources::default()
        }
    }
}

/// The provider's registry name: the first set source, trimmed and lower-cased, else
/// [`DEFAULT`].
pub fn resolve(sources: Sources<'_>) -> String {
    [sources.session, sources.group, sources.config]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|name| !name.is_empty())
        .unwrap_or(DEFAULT)
        .to_lowercase()
}

/// Whether an agent of this (resolved) provider calls the Anthropic API, so its container gets
/// the credential proxy's socket, a placeholder key and the forwarder: `claude` does; the
/// offline `mock` does not, and a name the runner does not know gets nothing (its container
/// fails with the runner's "unknown provider", which names the fix).
pub fn needs_credentials(provider: &str) -> bool {
    provider == DEFAULT
}

/// Whether an agent of this (resolved) provider runs Claude Code in its container, so it gets
/// its Claude state folder, skills and settings.
pub fn runs_claude_code(provider: &str) -> bool {
    provider == DEFAULT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(session: Option<&str>, group: Option<&str>, config: Option<&str>, expected: &str) {
        let sources = Sources {
            session,
            group,
            config,
        };
        assert_eq!(resolve(sources), expected, "{sources:?}");
    }

    #[test]
    fn the_session_wins_then_the_group_then_the_config() {
        check(Some("mock"), Some("codex"), Some("opencode"), "mock");
        check(None, Some("codex"), Some("opencode"), "codex");
        check(None, None, Some("opencode"), "opencode");
    }

    #[test]
    fn nothing_set_is_claude() {
        check(None, None, None, "claude");
    }

    #[test]
    fn an_unset_source_falls_through_to_the_next() {
        check(Some("mock"), None, None, "mock");
        check(None, Some("mock"), None, "mock");
        check(Some("mock"), None, Some("codex"), "mock");
    }

    #[test]
    fn empty_strings_count_as_unset() {
        check(Some(""), Some("codex"), None, "codex");
        check(Some(""), Some(""), Some("mock"), "mock");
        check(Some("  "), Some("\t"), Some(""), "claude");
    }

    #[test]
    fn names_are_lower_cased_and_trimmed() {
        check(Some("MOCK"), None, None, "mock");
        check(None, Some("Claude"), None, "claude");
        check(None, None, Some(" Mock "), "mock");
    }

    #[test]
    fn only_claude_gets_the_credential_proxy() {
        assert!(!needs_credentials("mock"));
        assert!(!needs_credentials("no-such-provider"));
        assert!(needs_credentials("claude"));
        assert!(needs_credentials(&resolve(Sources::default())));
    }
}
