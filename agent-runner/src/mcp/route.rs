//! Where send_message and send_file go (docs/agent-runner.md#tools): `to` omitted → the
//! session's reply address when the host set one, else the only destination; `to` given → that
//! destination, in the session's thread when it is the session's own chat.

use crate::destinations;
use crate::session_db::container::{self as db, Routing};
use crate::session_db::{DestinationRow, InboundDb};

/// A resolved address and the name reported back to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The destination's name, or `(current conversation)`.
    pub name: String,
    pub channel_type: Option<String>,
    pub platform_id: Option<String>,
    pub thread_id: Option<String>,
}

/// Resolves `to` against the live destinations and the session's reply address.
pub fn resolve(inbound: &InboundDb, to: Option<&str>) -> Result<Resolved, String> {
    let all = db::destinations(inbound).map_err(|err| err.to_string())?;
    let routing = db::session_routing(inbound).map_err(|err| err.to_string())?;
    decide(&all, &routing, to)
}

/// The decision, pure.
pub fn decide(
    all: &[DestinationRow],
    routing: &Routing,
    to: Option<&str>,
) -> Result<Resolved, String> {
    let Some(to) = to else {
        if let (Some(channel_type), Some(platform_id)) =
            (&routing.channel_type, &routing.platform_id)
        {
            return Ok(Resolved {
                name: "(current conversation)".to_string(),
                channel_type: Some(channel_type.clone()),
                platform_id: Some(platform_id.clone()),
                thread_id: routing.thread_id.clone(),
            });
        }
        return match all {
            [] => Err("No destinations configured.".to_string()),
            [only] => Ok(to_destination(only, routing)),
            _ => Err(format!(
                "You have multiple destinations — specify \"to\". Options: {}",
                names(all)
            )),
        };
    };
    match destinations::by_name(all, to) {
        Some(found) => Ok(to_destination(found, routing)),
        None => Err(format!(
            "Unknown destination \"{to}\". Known: {}",
            if all.is_empty() {
                "(none)".to_string()
            } else {
                names(all)
            }
        )),
    }
}

fn to_destination(found: &DestinationRow, routing: &Routing) -> Resolved {
    let (channel_type, platform_id) = destinations::address(found);
    let own_chat = channel_type.is_some()
        && channel_type == routing.channel_type
        && platform_id == routing.platform_id
        && channel_type.as_deref() != Some(crate::session_db::AGENT_CHANNEL_TYPE);
    Resolved {
        name: found.name.clone(),
        thread_id: if own_chat {
            routing.thread_id.clone()
        } else {
            None
        },
        channel_type,
        platform_id,
    }
}

fn names(all: &[DestinationRow]) -> String {
    all.iter()
        .map(|d| d.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
