//! Which channel adapters this build has, and which a runtime starts.
//!
//! [`FACTORIES`] lists every adapter kind by channel type; adding a channel (Telegram, …) is
//! one file implementing [`Adapter`] and one line here. A runtime starts the adapters whose
//! channel type its chats use, plus those marked `always` (the CLI channel, which
//! `nanoclaw chat` talks to); [`select`] decides that (pure), [`start`] builds and starts them.
//! A chat whose channel type no factory knows gets a warning and no adapter: its messages are
//! not received and replies to it fail after their retries.

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::Context;
use tracing::{info, warn};

use super::{Adapter, Adapters, Start, cli_socket, telegram};
use crate::paths::Paths;

/// Builds one adapter from the runtime's paths (its own settings come from `env.rs` or files
/// under the data dir). An error stops the runtime's start.
pub type Build = fn(&Paths) -> anyhow::Result<Arc<dyn Adapter>>;

/// One kind of adapter this build can start.
pub struct Factory {
    /// The `channel_type` of manifests and the central DB that this adapter serves.
    pub channel_type: &'static str,
    /// Started even when no chat uses it.
    pub always: bool,
    pub build: Build,
}

/// Every adapter this build has, by channel type.
pub const FACTORIES: &[Factory] = &[cli_socket::FACTORY, telegram::adapter::FACTORY];

/// What a runtime starts for the channel types its chats use.
#[derive(Debug, PartialEq, Eq)]
pub struct Selection {
    /// Channel types to start, in [`FACTORIES`] order.
    pub start: Vec<&'static str>,
    /// Channel types in use that no factory serves.
    pub unknown: Vec<String>,
}

/// The adapters to start for `in_use` (the channel types of the configured chats).
pub fn select(factories: &[Factory], in_use: &BTreeSet<String>) -> Selection {
    let start = factories
        .iter()
        .filter(|factory| factory.always || in_use.contains(factory.channel_type))
        .map(|factory| factory.channel_type)
        .collect();
    let unknown = in_use
        .iter()
        .filter(|channel_type| {
            !factories
                .iter()
                .any(|factory| factory.channel_type == channel_type.as_str())
        })
        .cloned()
        .collect();
    Selection { start, unknown }
}

/// Builds and starts the adapters [`select`] picks, in order; each gets its own copy of
/// `start`'s senders. Stops the ones already started when one fails.
pub async fn start(
    paths: &Paths,
    in_use: &BTreeSet<String>,
    start: Start,
) -> anyhow::Result<Adapters> {
    let selection = select(FACTORIES, in_use);
    for channel_type in &selection.unknown {
        warn!(
            channel = %channel_type,
            known = ?FACTORIES.iter().map(|factory| factory.channel_type).collect::<Vec<_>>(),
            "no adapter for this channel type in this build: its chats get no messages or replies"
        );
    }
    let mut adapters = Adapters::default();
    for factory in FACTORIES
        .iter()
        .filter(|factory| selection.start.contains(&factory.channel_type))
    {
        let started = async {
            let adapter = (factory.build)(paths)?;
            Arc::clone(&adapter)
                .start(Start {
                    inbound: start.inbound.clone(),
                    answers: start.answers.clone(),
                    ready: start.ready.clone(),
                    stop: start.stop.child_token(),
                })
                .await?;
            anyhow::Ok(adapter)
        }
        .await
        .with_context(|| format!("starting the `{}` channel", factory.channel_type));
        match started {
            Ok(adapter) => {
                info!(channel = factory.channel_type, "channel started");
                adapters.register(adapter);
            }
            Err(err) => {
                adapters.stop_all().await;
                return Err(err);
            }
        }
    }
    Ok(adapters)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unbuildable(_: &Paths) -> anyhow::Result<Arc<dyn Adapter>> {
        anyhow::bail!("not in this test")
    }

    const TELEGRAM: Factory = Factory {
        channel_type: "telegram",
        always: false,
        build: unbuildable,
    };

    fn in_use(types: &[&str]) -> BTreeSet<String> {
        types.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn the_cli_channel_always_starts_and_others_only_when_a_chat_uses_them() {
        let factories = [cli_socket::FACTORY, TELEGRAM];
        assert_eq!(
            select(&factories, &in_use(&[])),
            Selection {
                start: vec!["cli"],
                unknown: vec![]
            }
        );
        assert_eq!(
            select(&factories, &in_use(&["telegram", "cli"])).start,
            ["cli", "telegram"]
        );
    }

    #[test]
    fn a_channel_type_without_a_factory_is_named() {
        let selection = select(FACTORIES, &in_use(&["cli", "discord"]));
        assert_eq!(selection.start, ["cli"]);
        assert_eq!(selection.unknown, ["discord"]);
    }
}
