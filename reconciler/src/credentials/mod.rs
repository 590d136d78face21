//! Credentials that never enter a container (issue 10, point 5): the Anthropic credential, where
//! it is kept, and the proxy that lends it to containers without showing it to them.
//!
//! ```text
//! container: Claude Code ──http://127.0.0.1:<port>──▶ agent-runner forwarder (agent_runner::forward)
//!                                                        │ mounted Unix socket
//! host:      <data>/proxy/anthropic.sock ◀───────────────┘
//!            Proxy: placeholder checked (Placeholders), real credential injected (Store / env)
//!                   ──http(s)──▶ NANOCLAW_ANTHROPIC_BASE_URL (default https://api.anthropic.com)
//! ```
//!
//! A container holds only a placeholder key: [`Placeholders::register`] makes one per container
//! and [`Placeholders::revoke`] voids it when the container ends. The proxy swaps it for the real
//! credential on the wire. This module never prints and never logs a secret ([`Secret`]'s
//! `Debug` and `Display` are redacted). `store` owns the file, `placeholders` the registry,
//! `proxy` the server, `headers` its header rewrite, `upstream` the connection to the API,
//! `redact` the response scrubber.

pub mod headers;
pub mod placeholders;
pub mod proxy;
pub mod redact;
pub mod store;
pub mod upstream;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use placeholders::{Placeholder, Placeholders};
pub use proxy::{Proxy, ProxySettings};
pub use store::{Store, TokenStore};
pub use upstream::Upstream;

/// Which kind of Anthropic credential: they travel in different headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A Console API key (`sk-ant-api…`), sent as `x-api-key`.
    ApiKey,
    /// A Claude subscription OAuth token (`sk-ant-oat…`, from `claude setup-token`), sent as
    /// `Authorization: Bearer` with the `oauth-2025-04-20` beta.
    OauthToken,
}

impl Kind {
    /// Guesses the kind from the token's prefix; anything unrecognised is taken for an API key.
    pub fn detect(secret: &str) -> Kind {
        if secret.starts_with("sk-ant-oat") {
            Kind::OauthToken
        } else {
            Kind::ApiKey
        }
    }

    /// How `auth status` and messages name it.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::ApiKey => "an API key",
            Kind::OauthToken => "a Claude subscription OAuth token",
        }
    }

    /// The variable a container's Claude Code gets its placeholder in, so it speaks the same
    /// header form as the real credential (docs/claude-code.md#credentials-and-headers).
    pub fn container_env(self) -> &'static str {
        match self {
            Kind::ApiKey => "ANTHROPIC_API_KEY",
            Kind::OauthToken => "CLAUDE_CODE_OAUTH_TOKEN",
        }
    }
}

/// A secret string that never shows itself in `Debug`, `Display` or logs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The Anthropic credential the proxy injects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub kind: Kind,
    pub secret: Secret,
}

/// Where the credential in use comes from (`auth status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `nanoclaw auth set anthropic`, kept in this file.
    Stored(std::path::PathBuf),
    /// The daemon's environment variable of this name.
    Environment(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Stored(path) => write!(f, "stored in `{}`", path.display()),
            Source::Environment(name) => write!(f, "from the environment variable `{name}`"),
        }
    }
}

/// The credential from the daemon's environment, if any: `ANTHROPIC_API_KEY` first, then
/// `CLAUDE_CODE_OAUTH_TOKEN` (reconciler/src/env.rs). Read once at startup.
pub fn from_env() -> Option<(Credential, Source)> {
    use crate::env;
    if let Some(key) = env::get(env::ANTHROPIC_API_KEY) {
        let credential = Credential {
            kind: Kind::ApiKey,
            secret: Secret::new(key),
        };
        return Some((credential, Source::Environment(env::ANTHROPIC_API_KEY)));
    }
    env::get(env::CLAUDE_CODE_OAUTH_TOKEN).map(|token| {
        let credential = Credential {
            kind: Kind::OauthToken,
            secret: Secret::new(token),
        };
        (
            credential,
            Source::Environment(env::CLAUDE_CODE_OAUTH_TOKEN),
        )
    })
}

/// What a container that may call the API needs in its environment, besides the mount of
/// [`proxy::socket_dir`] at [`proxy::CONTAINER_SOCKET_DIR`] (read-only): the runner's
/// forwarder settings, Claude Code's base URL and placeholder (in the variable of the real
/// credential's `kind`), and Claude Code's non-essential traffic switched off
/// (docs/claude-code.md#environment).
pub fn container_env(kind: Kind, placeholder: &Placeholder) -> Vec<(String, String)> {
    use agent_runner::forward::DEFAULT_PORT;
    let socket = format!("{}/{}", proxy::CONTAINER_SOCKET_DIR, proxy::SOCKET_NAME);
    [
        ("NANOCLAW_CREDENTIAL_SOCKET", socket),
        ("NANOCLAW_CREDENTIAL_PORT", DEFAULT_PORT.to_string()),
        (
            "ANTHROPIC_BASE_URL",
            format!("http://127.0.0.1:{DEFAULT_PORT}"),
        ),
        (kind.container_env(), placeholder.key.expose().to_string()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".to_string()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect()
}

/// Why no credential can be lent. The runtime turns [`CredentialError::Missing`] into the chat
/// message (its `Display` is written for the chat) and keeps the message pending.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "no Anthropic credential is set on the host, so the agent cannot answer yet; run `nanoclaw auth set anthropic` on the host (or give the daemon `ANTHROPIC_API_KEY` or `CLAUDE_CODE_OAUTH_TOKEN`) and the message will be answered"
    )]
    Missing,
    #[error("cannot read the credential file `{path}`")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the credential file `{path}` is not valid: {why}")]
    Invalid {
        path: std::path::PathBuf,
        why: String,
    },
    #[error(
        "the credential file `{path}` can be read by other users (mode {mode:o})\n\nhint: run `chmod 600 {path}`, and replace the credential (`nanoclaw auth set anthropic`) if someone may have read it"
    )]
    Exposed { path: std::path::PathBuf, mode: u32 },
    #[error("cannot write the credential file `{path}`")]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_themselves() {
        let credential = Credential {
            kind: Kind::ApiKey,
            secret: Secret::new("sk-ant-api03-very-secret"),
        };
        let shown = format!("{credential:?} {}", credential.secret);
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn kinds_are_recognised_by_prefix() {
        assert_eq!(Kind::detect("sk-ant-oat01-abc"), Kind::OauthToken);
        assert_eq!(Kind::detect("sk-ant-api03-abc"), Kind::ApiKey);
        assert_eq!(Kind::detect("something-else"), Kind::ApiKey);
    }

    #[test]
    fn a_container_gets_the_forwarder_the_placeholder_and_no_secret() {
        let placeholders = Placeholders::new();
        let placeholder = placeholders.register("nanoclaw-x-1").unwrap();
        let env = container_env(Kind::OauthToken, &placeholder);
        let get = |name: &str| {
            env.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        assert_eq!(
            get("NANOCLAW_CREDENTIAL_SOCKET").as_deref(),
            Some("/run/nanoclaw-proxy/anthropic.sock")
        );
        assert_eq!(
            get("ANTHROPIC_BASE_URL"),
            get("NANOCLAW_CREDENTIAL_PORT").map(|port| format!("http://127.0.0.1:{port}"))
        );
        assert_eq!(
            get("CLAUDE_CODE_OAUTH_TOKEN").as_deref(),
            Some(placeholder.key.expose())
        );
        assert_eq!(get("ANTHROPIC_API_KEY"), None);
        assert_eq!(
            get("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC").as_deref(),
            Some("1")
        );
    }

    #[test]
    fn the_missing_credential_message_names_the_command() {
        let message = CredentialError::Missing.to_string();
        assert!(
            message.contains("`nanoclaw auth set anthropic`"),
            "{message}"
        );
    }
}
