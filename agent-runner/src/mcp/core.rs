//! Core tools (docs/agent-runner.md#tools): send_message, send_file, edit_message,
//! add_reaction. Parameters, checks and result texts follow v2's; nanoclaw adds size checks
//! (a message the host would refuse is refused here, naming the limit) and a plain-name check
//! on send_file's `filename`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::route::{self, Resolved};
use super::{Module, Tool, Tools, check_content_size, text_arg};
use crate::session_db::container::{self as db, NewOutbound};
use crate::session_db::{self, Kind, new_id};

/// Largest file send_file takes (Telegram's upload limit).
pub const MAX_FILE_BYTES: u64 = 50 * 1024 * 1024;

pub const MODULE: Module = Module {
    name: "core",
    fragment: include_str!("core.md"),
    tools: &[
        Tool {
            name: "send_message",
            description: "Send a message to a destination now, mid-turn (a progress update, or a message to another chat or agent). Without `to` it goes to the current conversation.",
            schema: || {
                json!({"type": "object", "properties": {
                    "to": {"type": "string", "description": "destination name; omit for the current conversation"},
                    "text": {"type": "string", "description": "the message"}
                }, "required": ["text"]})
            },
            call: send_message,
        },
        Tool {
            name: "send_file",
            description: "Send a file (an image, a document, a generated artifact) to a destination. Relative paths are read from /workspace/agent.",
            schema: || {
                json!({"type": "object", "properties": {
                    "path": {"type": "string", "description": "the file to send"},
                    "to": {"type": "string", "description": "destination name; omit for the current conversation"},
                    "text": {"type": "string", "description": "an optional caption"},
                    "filename": {"type": "string", "description": "the name the recipient sees; default: the file's own name"}
                }, "required": ["path"]})
            },
            call: send_file,
        },
        Tool {
            name: "edit_message",
            description: "Replace the text of a message sent earlier, referred to by its integer message id.",
            schema: || {
                json!({"type": "object", "properties": {
                    "messageId": {"type": "integer", "description": "the message's id as shown to you"},
                    "text": {"type": "string", "description": "the new text"}
                }, "required": ["messageId", "text"]})
            },
            call: edit_message,
        },
        Tool {
            name: "add_reaction",
            description: "React to a message with an emoji, referred to by its integer message id.",
            schema: || {
                json!({"type": "object", "properties": {
                    "messageId": {"type": "integer", "description": "the message's id as shown to you"},
                    "emoji": {"type": "string", "description": "an emoji shortcode, e.g. thumbs_up"}
                }, "required": ["messageId", "emoji"]})
            },
            call: add_reaction,
        },
    ],
};

fn chat_row(to: &Resolved, in_reply_to: Option<String>, content: String) -> NewOutbound {
    NewOutbound {
        id: new_id("msg"),
        in_reply_to,
        kind: Kind::Chat,
        platform_id: to.platform_id.clone(),
        channel_type: to.channel_type.clone(),
        thread_id: to.thread_id.clone(),
        content,
    }
}

fn send_message(tools: &Tools, args: &Value) -> Result<String, String> {
    let Some(text) = text_arg(args, "text") else {
        return Err("text is required".into());
    };
    let to = route::resolve(&tools.inbound()?, text_arg(args, "to"))?;
    let content = json!({ "text": text }).to_string();
    check_content_size(&content, "text")?;
    let seq = tools.write(&chat_row(&to, tools.in_reply_to(), content))?;
    Ok(format!("Message sent to {} (id: {seq})", to.name))
}

fn send_file(tools: &Tools, args: &Value) -> Result<String, String> {
    let Some(path) = text_arg(args, "path") else {
        return Err("path is required".into());
    };
    let to = route::resolve(&tools.inbound()?, text_arg(args, "to"))?;
    let source = resolve_path(&tools.workspace, path);
    let meta = std::fs::metadata(&source).map_err(|_| format!("File not found: {path}"))?;
    if !meta.is_file() {
        return Err(format!("not a regular file: {path}"));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "file too large: {path} is {} bytes, at most {MAX_FILE_BYTES}",
            meta.len()
        ));
    }
    let filename = match text_arg(args, "filename") {
        Some(name) => name.to_string(),
        None => source
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    if !is_plain_name(&filename) {
        return Err(format!(
            "filename \"{}\" must be a plain file name: no \"/\", \"\\\", \"..\" or control characters, at most 255 bytes",
            filename.escape_debug()
        ));
    }
    let text = text_arg(args, "text").unwrap_or("");
    let content = json!({ "text": text, "files": [filename] }).to_string();
    check_content_size(&content, "text")?;
    let id = new_id("msg");
    copy_to_outbox(&tools.workspace, &id, &filename, &source)?;
    let mut row = chat_row(&to, tools.in_reply_to(), content);
    row.id = id.clone();
    tools.write(&row)?;
    Ok(format!(
        "File sent to {} (id: {id}, filename: {filename})",
        to.name
    ))
}

/// Relative paths resolve against the agent's folder (`/workspace/agent`).
fn resolve_path(workspace: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        workspace.join("agent").join(path)
    }
}

/// The host's safe-name rule (docs/security.md), checked before anything is written.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

/// Copies `source` to `outbound/outbox/<id>/<filename>` (a fresh folder and file; nothing is
/// replaced or followed at the destination).
fn copy_to_outbox(workspace: &Path, id: &str, filename: &str, source: &Path) -> Result<(), String> {
    let outbox = session_db::outbound_dir(workspace).join(session_db::OUTBOX_DIR);
    let folder = outbox.join(id);
    let failed = |err: std::io::Error| format!("cannot copy the file into the outbox: {err}");
    std::fs::create_dir_all(&outbox).map_err(failed)?;
    std::fs::create_dir(&folder).map_err(failed)?;
    let mut reader = std::fs::File::open(source).map_err(failed)?;
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(folder.join(filename))
        .map_err(failed)?;
    let copied = std::io::copy(
        &mut std::io::Read::take(&mut reader, MAX_FILE_BYTES + 1),
        &mut writer,
    )
    .and_then(|n| writer.flush().map(|()| n))
    .map_err(failed)?;
    if copied > MAX_FILE_BYTES {
        let _ = std::fs::remove_dir_all(&folder);
        return Err(format!("file too large: at most {MAX_FILE_BYTES} bytes"));
    }
    Ok(())
}

/// `messageId` as an integer (a numeric string works too); 0 counts as missing.
fn message_id(args: &Value) -> Option<i64> {
    let id = match args.get("messageId")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }?;
    (id != 0).then_some(id)
}

/// The row for an operation on message `seq` (edit, reaction), addressed like that message.
fn operation(tools: &Tools, seq: i64, content: Value) -> Result<(), String> {
    let inbound = tools.inbound()?;
    let outbound = tools.outbound()?;
    let found = db::message_by_seq(&inbound, &outbound, seq)
        .map_err(|err| err.to_string())?
        .ok_or_else(|| format!("Message #{seq} not found"))?;
    if found.channel_type.is_none() || found.platform_id.is_none() {
        return Err(format!("Cannot determine destination for message #{seq}"));
    }
    let mut content = content;
    content["messageId"] = json!(found.platform_message_id);
    let content = content.to_string();
    check_content_size(&content, "text")?;
    tools.write(&NewOutbound {
        id: new_id("msg"),
        in_reply_to: None,
        kind: Kind::Chat,
        platform_id: found.platform_id,
        channel_type: found.channel_type,
        thread_id: found.thread_id,
        content,
    })?;
    Ok(())
}

fn edit_message(tools: &Tools, args: &Value) -> Result<String, String> {
    let (Some(seq), Some(text)) = (message_id(args), text_arg(args, "text")) else {
        return Err("messageId and text are required".into());
    };
    operation(tools, seq, json!({"operation": "edit", "text": text}))?;
    Ok(format!("Message edit queued for #{seq}"))
}

fn add_reaction(tools: &Tools, args: &Value) -> Result<String, String> {
    let (Some(seq), Some(emoji)) = (message_id(args), text_arg(args, "emoji")) else {
        return Err("messageId and emoji are required".into());
    };
    if emoji.len() > 64 || emoji.chars().any(char::is_control) {
        return Err("emoji must be a shortcode of at most 64 bytes".into());
    }
    operation(tools, seq, json!({"operation": "reaction", "emoji": emoji}))?;
    Ok(format!("Reaction queued for #{seq}"))
}
