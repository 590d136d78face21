//! The naming scheme of nanoclaw's Docker objects: container names, label keys and the filters
//! that select one install's containers.
//!
//! Pure string building, no Docker calls. Every name and label is namespaced by the install slug
//! (`Paths::slug`) so installs sharing one daemon never touch each other
//! (docs/containers.md#names-and-labels).

use std::collections::HashMap;

/// Label naming the install (data directory slug) that owns a container.
pub const LABEL_INSTALL: &str = "nanoclaw.install";
/// Label naming the session a container serves.
pub const LABEL_SESSION: &str = "nanoclaw.session";
/// Label naming the agent (agent group) of the session.
pub const LABEL_AGENT: &str = "nanoclaw.agent";
/// Label carrying the hash of the container configuration it was started with.
pub const LABEL_CONFIG_HASH: &str = "nanoclaw.config-hash";
/// Prefix of every container name: `nanoclaw-<slug>-<session>`.
pub const NAME_PREFIX: &str = "nanoclaw";

/// `nanoclaw-<slug>-<session id>`.
pub fn container_name(slug: &str, session_id: &str) -> String {
    format!("{NAME_PREFIX}-{slug}-{session_id}")
}

/// True when `name` is usable as a Docker container name (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`).
/// Session ids come from our own DB, but a name built from them is checked before use
/// (docs/containers.md#names-and-labels).
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The four labels of a session container.
pub fn container_labels(
    slug: &str,
    session_id: &str,
    agent: &str,
    config_hash: &str,
) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_INSTALL.to_string(), slug.to_string()),
        (LABEL_SESSION.to_string(), session_id.to_string()),
        (LABEL_AGENT.to_string(), agent.to_string()),
        (LABEL_CONFIG_HASH.to_string(), config_hash.to_string()),
    ])
}

/// The `label` filter value selecting one install's containers: `nanoclaw.install=<slug>`.
pub fn install_filter(slug: &str) -> String {
    format!("{LABEL_INSTALL}={slug}")
}

/// The `label` filter value selecting one session's containers: `nanoclaw.session=<id>`.
pub fn session_filter(session_id: &str) -> String {
    format!("{LABEL_SESSION}={session_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_slug_and_session() {
        assert_eq!(
            container_name("0a1b2c3d", "sess-42"),
            "nanoclaw-0a1b2c3d-sess-42"
        );
        assert_eq!(install_filter("0a1b2c3d"), "nanoclaw.install=0a1b2c3d");
        assert_eq!(session_filter("s1"), "nanoclaw.session=s1");
    }

    #[test]
    fn name_validation_follows_docker() {
        assert!(is_valid_name("nanoclaw-0a1b2c3d-sess_1.x"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("-leading-dash"));
        assert!(!is_valid_name("nanoclaw-abc-a/b"));
        assert!(!is_valid_name("nanoclaw-abc-a b"));
    }

    #[test]
    fn labels_name_install_session_agent_and_hash() {
        let labels = container_labels("0a1b2c3d", "s1", "andy", "h1");
        let mut pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.sort();
        assert_eq!(
            pairs,
            [
                "nanoclaw.agent=andy",
                "nanoclaw.config-hash=h1",
                "nanoclaw.install=0a1b2c3d",
                "nanoclaw.session=s1"
            ]
        );
    }
}
