//! `<workspace>/container.json` (agent-runner.md §1.1, moved out of the agent's folder): read once
//! at startup; any read or parse error means all defaults. Every field is "falsy → default". The
//! host writes it at every spawn into the session folder, which the container sees read-only.

use std::path::Path;

use serde_json::Value;

/// Default pending window (§3.3).
pub const DEFAULT_MAX_MESSAGES: usize = 10;

/// The runner's view of `container.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Provider name, lowercased (default `claude`).
    pub provider: String,
    /// Identity for the system prompt; `None` when empty.
    pub assistant_name: Option<String>,
    /// Pending window N (0 or missing → 10).
    pub max_messages_per_prompt: usize,
    pub model: Option<String>,
    pub effort: Option<String>,
    /// Extra MCP servers, verbatim (unused by the mock provider).
    pub mcp_servers: serde_json::Map<String, Value>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            provider: "claude".into(),
            assistant_name: None,
            max_messages_per_prompt: DEFAULT_MAX_MESSAGES,
            model: None,
            effort: None,
            mcp_servers: serde_json::Map::new(),
        }
    }
}

/// Why the file was not used (the caller logs it and runs on defaults).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("failed to parse `{path}`: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
}

/// Loads the file; on any error returns the error (callers fall back to [`Config::default`]).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.display().to_string(),
        source,
    })?;
    Ok(from_value(&value))
}

/// Maps parsed JSON with falsy → default semantics.
pub fn from_value(v: &Value) -> Config {
    let text = |key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let d = Config::default();
    Config {
        provider: text("provider").map_or(d.provider, |p| p.to_lowercase()),
        assistant_name: text("assistantName"),
        max_messages_per_prompt: v
            .get("maxMessagesPerPrompt")
            .and_then(Value::as_u64)
            .filter(|n| *n > 0)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(DEFAULT_MAX_MESSAGES),
        model: text("model"),
        effort: text("effort"),
        mcp_servers: v
            .get("mcpServers")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falsy_fields_take_defaults() {
        let c = from_value(&serde_json::json!({
            "provider": "", "assistantName": "", "maxMessagesPerPrompt": 0, "model": null
        }));
        assert_eq!(c, Config::default());
    }

    #[test]
    fn reads_fields_and_lowercases_provider() {
        let c = from_value(&serde_json::json!({
            "provider": "Mock", "assistantName": "Andy", "maxMessagesPerPrompt": 3,
            "model": "opus", "effort": "high", "packages": ["ignored"]
        }));
        assert_eq!(c.provider, "mock");
        assert_eq!(c.assistant_name.as_deref(), Some("Andy"));
        assert_eq!(c.max_messages_per_prompt, 3);
        assert_eq!(
            (c.model.as_deref(), c.effort.as_deref()),
            (Some("opus"), Some("high"))
        );
    }

    #[test]
    fn unreadable_or_broken_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(&dir.path().join("missing.json")).is_err());
        let p = dir.path().join("c.json");
        std::fs::write(&p, "{not json").unwrap();
        assert!(matches!(load(&p), Err(ConfigError::Parse { .. })));
    }
}
