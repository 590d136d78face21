//! New chats (docs/runtime.md#new-chats): the bot mentioned in, or DM'd from, a chat no
//! agent is wired to → a card to the approver: connect it to an existing agent, create a new
//! agent (the approver is asked for its name, answered with their next message in that chat),
//! or reject it. Every row it writes is runtime-owned: the chat, its wiring, the new agent,
//! the sender's membership (`plan` lists them as unmanaged; `nanoclaw adopt` takes them over).

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::approvals::{self, Decision, Effects, Handler, Requested};
use crate::channels::{Adapters, InboundEvent, Outbound};
use crate::db::{approvals as rows, pairing, routing};

/// The approval kind of a new chat.
pub const NEW_CHAT: &str = "new_chat";
/// The pending question "what is the new agent's name?": subject = the approver, card chat =
/// where they answer.
pub const AGENT_NAME: &str = "new_agent_name";
/// Most agents offered as buttons; with more, the approver connects by name with
/// `nanoclaw chat --answer CARD connect:NAME`.
const MAX_OFFERED: usize = 8;

/// Asks the approver what to do with `chat`, where `sender` addressed the bot with `event`.
pub fn ask(
    conn: &Connection,
    adapters: &Adapters,
    chat: &routing::Chat,
    event: &InboundEvent,
    sender: Option<&str>,
    ttl: std::time::Duration,
) -> anyhow::Result<Option<(String, Outbound)>> {
    let agents = agent_names(conn)?;
    if agents.is_empty() {
        warn!(chat = %chat.id, "new chat not asked about: no agent is configured");
        return Ok(None);
    }
    let who = event
        .message
        .content
        .sender_name
        .clone()
        .or_else(|| sender.map(|sender| format!("`{sender}`")))
        .unwrap_or_else(|| "Someone".to_string());
    let (title, body) = if chat.is_group {
        (
            "📣 Bot mentioned in a new chat",
            format!(
                "{who} mentioned your bot in the {} chat `{}`. How should it be handled?",
                chat.channel_type, chat.platform_id
            ),
        )
    } else {
        (
            "💬 New direct message",
            format!(
                "{who} sent your bot a DM on {}. How should it be handled?",
                chat.channel_type
            ),
        )
    };
    let connects: Vec<(String, String, String)> = agents
        .iter()
        .take(MAX_OFFERED)
        .map(|agent| {
            (
                format!("connect:{agent}"),
                format!("Connect to {agent}"),
                format!("✅ Connected to {agent}"),
            )
        })
        .collect();
    let mut options: Vec<(&str, &str, &str)> = connects
        .iter()
        .map(|(id, label, chosen)| (id.as_str(), label.as_str(), chosen.as_str()))
        .collect();
    options.push((
        "new_agent",
        "Create a new agent",
        "🆕 Creating a new agent…",
    ));
    options.push(("reject", "Reject", "🙅 Rejected"));
    let request = approvals::Request {
        kind: NEW_CHAT,
        subject: chat.id.clone(),
        agent: None,
        origin: Some(&chat.channel_type),
        payload: json!({"chat": chat.id, "sender": sender, "event": event}),
        title: title.to_string(),
        body,
        options,
    };
    Ok(match approvals::request(conn, adapters, &request, ttl)? {
        Requested::Card {
            channel_type,
            outbound,
            ..
        } => Some((channel_type, *outbound)),
        Requested::AlreadyPending => None,
        Requested::NoApprover | Requested::NoDm => {
            warn!(chat = %chat.id, "new chat not asked about: no owner or admin with a reachable DM");
            None
        }
    })
}

fn agent_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached("SELECT id FROM agent_groups ORDER BY id")?
        .query_map([], |row| row.get(0))?
        .collect()
}

/// Connect, create (asks for the name) or reject.
pub struct NewChatHandler;

impl Handler for NewChatHandler {
    fn decided(&self, conn: &Connection, decision: &Decision) -> anyhow::Result<Effects> {
        let payload: Value = serde_json::from_str(&decision.approval.payload)?;
        let chat = payload["chat"].as_str().unwrap_or_default();
        if let Some(agent) = decision.option.strip_prefix("connect:") {
            if !agent_names(conn)?.iter().any(|known| known == agent) {
                anyhow::bail!("there is no agent `{agent}` to connect to");
            }
            return connect(conn, &payload, chat, agent, &decision.by);
        }
        match decision.option.as_str() {
            "new_agent" => {
                let (channel_type, platform_id) = &decision.at;
                let question = rows::Approval {
                    id: format!(
                        "apv-{}{}",
                        agent_runner::session_db::ids::rand6(),
                        agent_runner::session_db::ids::rand6()
                    ),
                    kind: AGENT_NAME.to_string(),
                    subject: decision.by.clone(),
                    agent: None,
                    payload: decision.approval.payload.clone(),
                    approver: decision.by.clone(),
                    card_channel_type: channel_type.clone(),
                    card_platform_id: platform_id.clone(),
                    card_json: "{}".to_string(),
                    expires_at_ms: decision.approval.expires_at_ms,
                };
                conn.execute(
                    "UPDATE approvals SET status = 'expired' WHERE kind = ?1 AND subject = ?2 AND status = 'pending'",
                    params![AGENT_NAME, decision.by],
                )?;
                rows::insert(conn, &question, approvals::now_ms())?;
                Ok(Effects {
                    replay: Vec::new(),
                    followups: Vec::new(),
                    notes: vec![note(
                        (channel_type, platform_id),
                        "Reply with the name for your new agent:".to_string(),
                    )],
                })
            }
            _ => {
                conn.execute(
                    "UPDATE messaging_groups SET denied_at = ?2 WHERE id = ?1",
                    params![chat, agent_runner::session_db::now_iso()],
                )?;
                info!(chat, by = %decision.by, "new chat rejected");
                Ok(Effects::default())
            }
        }
    }
}

/// Wires the chat to `agent`, makes the original sender a member, and routes their message
/// again.
fn connect(
    conn: &Connection,
    payload: &Value,
    chat: &str,
    agent: &str,
    by: &str,
) -> anyhow::Result<Effects> {
    pairing::wire(conn, chat, agent)?;
    if let Some(sender) = payload["sender"].as_str() {
        rows::add_member(conn, sender, agent, by)?;
    }
    info!(chat, agent, by, "new chat connected");
    let event: InboundEvent = serde_json::from_value(payload["event"].clone())?;
    Ok(Effects {
        replay: vec![event],
        followups: Vec::new(),
        notes: Vec::new(),
    })
}

/// Takes `event` when it answers a pending "name of the new agent" question of its sender in
/// that chat: creates the agent (like the default agent: its provider and model) and connects
/// the chat. `None` when it answers nothing.
pub fn take_name(
    conn: &Connection,
    event: &InboundEvent,
    sender: &str,
) -> anyhow::Result<Option<Effects>> {
    let pending: Option<(String, String)> = conn
        .query_row(
            "SELECT id, payload FROM approvals WHERE kind = ?1 AND subject = ?2
               AND status = 'pending' AND card_channel_type = ?3 AND card_platform_id = ?4
               AND expires_at > ?5",
            params![
                AGENT_NAME,
                sender,
                event.channel_type,
                event.platform_id,
                approvals::now_ms()
            ],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let Some((id, payload)) = pending else {
        return Ok(None);
    };
    let here = (event.channel_type.as_str(), event.platform_id.as_str());
    let text = event.message.content.text.as_deref().unwrap_or_default();
    let Some(base) = agent_name(text) else {
        return Ok(Some(Effects {
            replay: Vec::new(),
            followups: Vec::new(),
            notes: vec![note(
                here,
                "That cannot be an agent name: use letters, digits and `-`. Reply with the name for your new agent:".to_string(),
            )],
        }));
    };
    rows::decide(conn, &id, text, sender, approvals::now_ms())?;
    let payload: Value = serde_json::from_str(&payload)?;
    let chat = payload["chat"].as_str().unwrap_or_default();
    let pending_chat = conn
        .prepare_cached(
            "SELECT 1 FROM messaging_groups WHERE id = ?1 AND denied_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM messaging_group_agents WHERE messaging_group_id = ?1)",
        )?
        .exists([chat])?;
    if !pending_chat {
        return Ok(Some(Effects {
            replay: Vec::new(),
            followups: Vec::new(),
            notes: vec![note(
                here,
                "That chat was handled in the meantime; no agent created.".to_string(),
            )],
        }));
    }
    let name = create_agent(conn, &base)?;
    info!(agent = %name, chat, by = sender, "new agent created for a new chat");
    let mut effects = connect(conn, &payload, chat, &name, sender)?;
    effects.notes.push(note(
        here,
        format!("✅ Agent `{name}` created and connected."),
    ));
    Ok(Some(effects))
}

/// A manifest agent name from what was typed: lowercase letters, digits and single `-`.
fn agent_name(text: &str) -> Option<String> {
    let mut name = String::new();
    for c in text.trim().chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            name.push(c);
        } else if matches!(c, '-' | '_' | ' ') && !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        } else if !matches!(c, '-' | '_' | ' ') {
            return None;
        }
    }
    let name: String = name.trim_end_matches('-').chars().take(56).collect();
    (!name.is_empty() && name != "global").then_some(name)
}

/// Creates agent `base` (`base-2`, … when taken) with the default agent's provider and model.
fn create_agent(conn: &Connection, base: &str) -> rusqlite::Result<String> {
    let mut name = base.to_string();
    let mut n = 2;
    while conn
        .prepare_cached("SELECT 1 FROM agent_groups WHERE id = ?1 OR folder = ?1")?
        .exists([&name])?
    {
        name = format!("{base}-{n}");
        n += 1;
    }
    let now = agent_runner::session_db::now_iso();
    let template = pairing::default_agent(conn)?;
    conn.execute(
        "INSERT INTO agent_groups (id, name, folder, created_at) VALUES (?1, ?1, ?1, ?2)",
        params![name, now],
    )?;
    conn.execute(
        "INSERT INTO container_configs (agent_group_id, provider, model, updated_at)
         VALUES (?1, (SELECT provider FROM container_configs WHERE agent_group_id = ?3),
                 (SELECT model FROM container_configs WHERE agent_group_id = ?3), ?2)",
        params![name, now, template],
    )?;
    Ok(name)
}

fn note((channel_type, platform_id): (&str, &str), text: String) -> (String, Outbound) {
    (
        channel_type.to_string(),
        Outbound {
            id: agent_runner::session_db::new_id("newchat"),
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

#[cfg(test)]
mod tests {
    #[test]
    fn agent_names_from_what_was_typed() {
        assert_eq!(
            super::agent_name(" Family Bot ").as_deref(),
            Some("family-bot")
        );
        assert_eq!(super::agent_name("a_b").as_deref(), Some("a-b"));
        assert_eq!(super::agent_name("../x"), None);
        assert_eq!(super::agent_name("global"), None);
        assert_eq!(super::agent_name("  "), None);
    }
}
