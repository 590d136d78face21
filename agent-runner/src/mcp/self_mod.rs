//! Self-modification tools (docs/agent-runner.md#tools): install_packages and add_mcp_server
//! ask an admin to change this agent. The names are checked here as the host checks them again
//! (docs/runtime.md#system-actions), so the agent hears at once what would be refused.

use serde_json::{Value, json};

use super::agents::submit;
use super::{Module, Tool, Tools, text_arg};
use crate::session_db::new_id;

/// Most packages per request.
pub const MAX_PACKAGES: usize = 20;

pub const MODULE: Module = Module {
    name: "self-mod",
    fragment: include_str!("self_mod.md"),
    tools: &[
        Tool {
            name: "install_packages",
            description: "Ask an admin to install apt or npm packages into your container image for good (the image is rebuilt after approval). Returns at once; a note tells you the outcome.",
            schema: || {
                json!({"type": "object", "properties": {
                    "apt": {"type": "array", "items": {"type": "string"}, "description": "Debian package names"},
                    "npm": {"type": "array", "items": {"type": "string"}, "description": "npm package names (no versions)"},
                    "reason": {"type": "string", "description": "why you need them, shown to the admin"}
                }})
            },
            call: install_packages,
        },
        Tool {
            name: "add_mcp_server",
            description: "Ask an admin to add an MCP server (a command run over stdio) to your configuration. Returns at once; a note tells you the outcome.",
            schema: || {
                json!({"type": "object", "properties": {
                    "name": {"type": "string", "description": "the server's name"},
                    "command": {"type": "string", "description": "the program to run"},
                    "args": {"type": "array", "items": {"type": "string"}},
                    "env": {"type": "object", "additionalProperties": {"type": "string"}}
                }, "required": ["name", "command"]})
            },
            call: add_mcp_server,
        },
    ],
};

/// A list of strings (absent: empty).
fn strings(args: &Value, key: &str) -> Result<Vec<String>, String> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{key} must be a list of strings"))
            })
            .collect(),
        Some(_) => Err(format!("{key} must be a list of strings")),
    }
}

/// `^[a-z0-9][a-z0-9._+-]*$`.
fn is_apt_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'+' | b'-')
        })
}

/// `^(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*$`.
fn is_npm_name(name: &str) -> bool {
    fn part(text: &str) -> bool {
        let mut bytes = text.bytes();
        bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && bytes.all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
    }
    match name.strip_prefix('@') {
        Some(scoped) => scoped
            .split_once('/')
            .is_some_and(|(scope, base)| part(scope) && part(base)),
        None => part(name),
    }
}

fn install_packages(tools: &Tools, args: &Value) -> Result<String, String> {
    let apt = strings(args, "apt")?;
    let npm = strings(args, "npm")?;
    if apt.is_empty() && npm.is_empty() {
        return Err("At least one apt or npm package is required".into());
    }
    if apt.len() + npm.len() > MAX_PACKAGES {
        return Err(format!("Maximum {MAX_PACKAGES} packages per request"));
    }
    if let Some(bad) = apt.iter().find(|name| !is_apt_name(name)) {
        return Err(format!(
            "Invalid apt package name: \"{}\". Only lowercase letters, digits, and ._+- allowed.",
            bad.escape_debug()
        ));
    }
    if let Some(bad) = npm.iter().find(|name| !is_npm_name(name)) {
        return Err(format!(
            "Invalid npm package name: \"{}\". No version specs or shell characters.",
            bad.escape_debug()
        ));
    }
    let content = json!({
        "action": "install_packages",
        "apt": apt,
        "npm": npm,
        "reason": text_arg(args, "reason").unwrap_or(""),
    });
    submit(tools, new_id("msg"), content)?;
    Ok(
        "Package install request submitted. You will be notified when admin approves or rejects."
            .into(),
    )
}

fn add_mcp_server(tools: &Tools, args: &Value) -> Result<String, String> {
    let (Some(name), Some(command)) = (text_arg(args, "name"), text_arg(args, "command")) else {
        return Err("name and command are required".into());
    };
    let args_list = strings(args, "args")?;
    let env = match args.get("env") {
        None | Some(Value::Null) => json!({}),
        Some(env @ Value::Object(_)) => env.clone(),
        Some(_) => return Err("env must be an object of strings".into()),
    };
    let content = json!({
        "action": "add_mcp_server",
        "name": name,
        "command": command,
        "args": args_list,
        "env": env,
    });
    submit(tools, new_id("msg"), content)?;
    Ok("MCP server request submitted. You will be notified when admin approves or rejects.".into())
}
