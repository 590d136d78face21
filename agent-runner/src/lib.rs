//! The in-container agent runner: polls `inbound.db`, prompts a provider, writes `outbound.db`.
//!
//! `session_db` is the protocol shared with the host (which imports it); everything else is the
//! runner. It must stay small (static musl binary, `FROM scratch`): std threads, no async runtime.

pub mod session_db;

pub mod commands;
pub mod config;
pub mod destinations;
pub mod env;
pub mod format;
pub mod forward;
pub mod output;
pub mod poll;
pub mod providers;
pub mod timezone;
