//! nanoclaw host library. Map of the modules (details in docs/ARCHITECTURE.md):
//!
//! - [`cli`]: clap types and one file per subcommand; the only place that prints.
//! - [`ops`]: the operations the commands call (load, plan, apply, export, history, chat
//!   target): typed outcomes and errors, no printing, no stdin.
//! - [`manifest`]: YAML loading with spans, the manifest model, validation, diagnostics.
//! - [`state`]: the configuration as typed resources keyed by address (desired and current).
//! - [`provider`]: which provider runs an agent's session (precedence, pure).
//! - [`resources`]: an agent's container limits (memory, CPUs, pids): parsing, bounds, defaults.
//! - [`plan`]: diff desired vs. current, the field → effect table, rendering, saved plans.
//! - [`apply`]: one transaction, the apply lock, generations and history.
//! - [`export`]: the DB's configuration written back as manifests.
//! - [`import`]: a NanoClaw v2 install read into manifests, a report, and (optionally) its
//!   sessions moved into a data dir.
//! - [`db`]: the central SQLite DB (open, migrations).
//! - [`runtime`]: the long-running daemon (router, delivery, sweep).
//! - [`containers`]: the only Docker code.
//! - [`doctor`]: `nanoclaw doctor`'s checks judged and rendered (the facts are `ops::doctor`'s).
//! - [`service`]: the daemon as a systemd unit or launchd agent, named by the install slug.
//! - [`credentials`]: the Anthropic credential (store, `auth`), the placeholder registry and the
//!   credential proxy containers reach it through.
//! - [`mount_policy`]: which host paths an agent may mount (resolved paths, the allowlist).
//! - [`channels`]: channel adapters (CLI socket, …).
//! - [`hostfs`]: file writes and reads a planted link cannot redirect.
//! - [`env`], [`paths`], [`logging`]: environment, file layout (and the data dir's checks),
//!   tracing.
//! - [`lockfile`]: OS file locks that name their holder (apply lock, daemon lock).

pub mod apply;
pub mod channels;
pub mod cli;
pub mod containers;
pub mod credentials;
pub mod db;
pub mod doctor;
pub mod env;
pub mod export;
pub mod hostfs;
pub mod import;
pub mod lockfile;
pub mod logging;
pub mod manifest;
pub mod mount_policy;
pub mod ops;
pub mod paths;
pub mod plan;
pub mod provider;
pub mod resources;
pub mod runtime;
pub mod service;
pub mod state;
pub mod style;
