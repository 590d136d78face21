//! The in-container agent runner: polls `inbound.db`, prompts a provider, writes `outbound.db`.
//!
//! The host imports the contracts shared with it: `session_db` (the session DB protocol),
//! `container_config` (`container.json`) and `commands` (the slash-command table); everything
//! else is the runner. It must stay small (static musl binary, `FROM scratch`): std threads, no
//! async runtime.

pub mod commands;
pub mod container_config;
pub mod session_db;

pub mod destinations;
pub mod env;
pub mod format;
pub mod forward;
pub mod mcp;
pub mod outage;
pub mod output;
pub mod poll;
pub mod providers;
pub mod timezone;
