//! The agent tool (docs/agent-runner.md#tools): create_agent asks the host for a companion
//! agent; the host checks the request came from an owner or admin, creates it and tells this
//! agent in a system note.

use serde_json::{Value, json};

use super::{Module, Tool, Tools, check_content_size, text_arg};
use crate::session_db::container::NewOutbound;
use crate::session_db::{Kind, new_id};

pub const MODULE: Module = Module {
    name: "agents",
    fragment: include_str!("agents.md"),
    tools: &[Tool {
        name: "create_agent",
        description: "Create a persistent companion agent you can message as a destination (admin only: the host refuses unless an owner or admin asked). Returns at once; a note tells you when it is ready.",
        schema: || {
            json!({"type": "object", "properties": {
                "name": {"type": "string", "description": "the agent's name; its destination name is the name lower-cased with dashes"},
                "instructions": {"type": "string", "description": "its initial CLAUDE.local.md: who it is and what it does"}
            }, "required": ["name"]})
        },
        call: create_agent,
    }],
};

/// Writes a `system` row without routing (the host's business), refusing content the host
/// would refuse for its size.
pub fn submit(tools: &Tools, id: String, content: Value) -> Result<(), String> {
    let content = content.to_string();
    check_content_size(&content, "the request")?;
    tools.write(&NewOutbound {
        id,
        in_reply_to: None,
        kind: Kind::System,
        platform_id: None,
        channel_type: None,
        thread_id: None,
        content,
    })?;
    Ok(())
}

fn create_agent(tools: &Tools, args: &Value) -> Result<String, String> {
    let Some(name) = text_arg(args, "name") else {
        return Err("name is required".into());
    };
    if name.len() > 4096 || name.chars().any(char::is_control) {
        return Err("name must be at most 4096 bytes without control characters".into());
    }
    let instructions = text_arg(args, "instructions");
    if instructions.is_some_and(|text| text.len() > 64 * 1024) {
        return Err("instructions are longer than 64 KiB".into());
    }
    let id = new_id("msg");
    let content = json!({
        "action": "create_agent",
        "requestId": id,
        "name": name,
        "instructions": instructions,
    });
    submit(tools, id, content)?;
    Ok(format!(
        "Creating agent \"{name}\". You will be notified when it is ready."
    ))
}
