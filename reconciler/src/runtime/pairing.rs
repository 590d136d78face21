//! Pairing (docs/runtime.md#pairing): a message that is exactly a code printed by
//! `nanoclaw pair <channel>` is taken by the router before anything else. With no owner yet,
//! its sender becomes the owner (first pair wins), and their chat is registered and wired to
//! the default agent. With an owner, the owner is asked on a card ([`kinds::PAIRING`]); allowed,
//! the sender becomes a member of the default agent and their chat is wired to it. Every row
//! it writes is runtime-owned (`plan` lists it as unmanaged; `nanoclaw adopt` takes it over).

use rusqlite::Connection;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::approvals::{self, Decision, Effects, Handler, Requested};
use crate::channels::{Adapters, InboundEvent, Outbound};
use crate::db::{approvals as rows, pairing};

/// The approval kind of a pairing while an owner exists.
pub const PAIRING: &str = "pairing";

/// What a message with a valid code led to: messages to send once the batch commits.
pub type Notes = Vec<(String, Outbound)>;

/// Takes `event` if its text is a valid pairing code for its channel: `None` when it is not
/// one (route it as usual).
pub fn take(
    conn: &Connection,
    adapters: &Adapters,
    event: &InboundEvent,
    sender: &str,
    ttl: std::time::Duration,
) -> anyhow::Result<Option<Notes>> {
    let Some(text) = event.message.content.text.as_deref() else {
        return Ok(None);
    };
    if pairing::normalise(text).is_none()
        || !pairing::redeem(conn, text, &event.channel_type, sender, approvals::now_ms())?
    {
        return Ok(None);
    }
    let is_group = event.message.is_group.unwrap_or(false);
    let here = (event.channel_type.as_str(), event.platform_id.as_str());
    if !pairing::has_owner(conn)? {
        pairing::grant_owner(conn, sender)?;
        let agent = connect(conn, sender, here, is_group, false)?;
        info!(user = sender, agent = ?agent, "paired: the first owner");
        let text = match agent {
            Some(agent) => format!(
                "✅ Paired: `{sender}` is now the owner of this nanoclaw, and this chat talks to `{agent}`."
            ),
            None => format!(
                "✅ Paired: `{sender}` is now the owner of this nanoclaw. No agent is configured yet to talk to here."
            ),
        };
        return Ok(Some(vec![note(here, text)]));
    }
    let who = match &event.message.content.sender_name {
        Some(name) => format!("{name} (`{sender}`)"),
        None => format!("`{sender}`"),
    };
    let request = approvals::Request {
        kind: PAIRING,
        subject: sender.to_string(),
        agent: None,
        origin: Some(&event.channel_type),
        payload: json!({"user": sender, "channel_type": here.0, "platform_id": here.1, "is_group": is_group}),
        title: "🔗 Pairing request".to_string(),
        body: format!(
            "{who} used a pairing code on {}. Let them talk to your agent there?",
            here.0
        ),
        options: vec![
            ("allow", "Allow", "✅ Paired"),
            ("deny", "Deny", "❌ Declined"),
        ],
    };
    let mut notes = Vec::new();
    let text = match approvals::request(conn, adapters, &request, ttl)? {
        Requested::Card {
            channel_type,
            outbound,
            ..
        } => {
            notes.push((channel_type, *outbound));
            "⏳ Code accepted: the owner is asked to approve this pairing.".to_string()
        }
        Requested::AlreadyPending => {
            "⏳ A pairing of yours already waits for the owner's approval.".to_string()
        }
        Requested::NoApprover | Requested::NoDm => {
            warn!(
                user = sender,
                "pairing not asked about: the owner has no reachable DM"
            );
            "❌ The owner cannot be reached to approve this pairing; ask them for a new code."
                .to_string()
        }
    };
    notes.push(note(here, text));
    Ok(Some(notes))
}

/// Registers the chat (and, for a DM, remembers it as the user's DM) and wires it to the
/// default agent when nothing is wired to it yet; with `member`, the user becomes a member
/// of that agent. Returns the agent the chat talks to.
fn connect(
    conn: &Connection,
    user: &str,
    (channel_type, platform_id): (&str, &str),
    is_group: bool,
    member: bool,
) -> rusqlite::Result<Option<String>> {
    let chat = pairing::ensure_chat(conn, channel_type, platform_id, is_group)?;
    if !is_group {
        rows::remember_dm(conn, user, channel_type, platform_id)?;
    }
    let wired: Option<String> = crate::db::routing::wirings(conn, &chat)?
        .into_iter()
        .next()
        .map(|wiring| wiring.agent);
    let agent = match wired {
        Some(agent) => Some(agent),
        None => {
            let agent = pairing::default_agent(conn)?;
            if let Some(agent) = &agent {
                pairing::wire(conn, &chat, agent)?;
            }
            agent
        }
    };
    if member && let Some(agent) = &agent {
        rows::add_member(conn, user, agent, user)?;
    }
    Ok(agent)
}

/// Allow: the chat is connected and the user a member of its agent; deny: they are told.
pub struct PairingHandler;

impl Handler for PairingHandler {
    fn decided(&self, conn: &Connection, decision: &Decision) -> anyhow::Result<Effects> {
        let payload: Value = serde_json::from_str(&decision.approval.payload)?;
        let text = |key: &str| payload[key].as_str().unwrap_or_default().to_string();
        let (user, channel_type, platform_id) =
            (text("user"), text("channel_type"), text("platform_id"));
        let here = (channel_type.as_str(), platform_id.as_str());
        let message = if decision.option == "allow" {
            let is_group = payload["is_group"].as_bool().unwrap_or(false);
            let agent = connect(conn, &user, here, is_group, true)?;
            info!(user, agent = ?agent, by = %decision.by, "pairing approved");
            match agent {
                Some(agent) => format!("✅ Paired: this chat talks to `{agent}`."),
                None => "✅ Paired. No agent is configured yet to talk to here.".to_string(),
            }
        } else {
            info!(user, by = %decision.by, "pairing declined");
            "❌ The owner declined this pairing.".to_string()
        };
        Ok(Effects {
            replay: Vec::new(),
            followups: Vec::new(),
            notes: vec![note(here, message)],
        })
    }
}

fn note((channel_type, platform_id): (&str, &str), text: String) -> (String, Outbound) {
    (
        channel_type.to_string(),
        Outbound {
            id: agent_runner::session_db::new_id("pairing"),
            agent: None,
            platform_id: platform_id.to_string(),
            thread_id: None,
            kind: "chat".to_string(),
            content: json!({ "text": text }),
            in_reply_to: None,
            files: Vec::new(),
        },
    )
}
