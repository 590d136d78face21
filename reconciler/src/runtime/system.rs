//! System actions (docs/runtime.md#system-actions): an outbound row of kind `system` asks the
//! host to do something on the agent's behalf (`{action, …}` in its content). [`parse`] turns
//! the untrusted content into a typed [`Action`], validating every field (sizes, names,
//! characters) the way the container's tool did, and [`handle`] runs it through the registry
//! ([`Action::run`]).
//!
//! Nothing is dropped silently: an unknown or invalid action is recorded as failed (its reason
//! logged) and the agent is told why in a system note, as is the result of every known action.
//! The note is a waking row in the session's own `inbound.db`; the caller wakes the session.
//!
//! `install_packages` and `add_mcp_server` ask the agent's approver on a card
//! (docs/runtime.md#self-modification); what follows the decision is `runtime::self_modify`'s.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use agent_runner::session_db::{self, AGENT_CHANNEL_TYPE, Content, Kind, NewInbound, ids};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::approvals::Requested;
use crate::channels::{Adapters, Outbound};
use crate::db::sessions;
use crate::manifest::patch::Change;
use crate::manifest::validate::normalise;
use crate::paths::Paths;

/// Most packages one `install_packages` request may name (v2's limit).
pub const MAX_PACKAGES: usize = 20;
/// Longest agent name, MCP server name, command, argument, env key or value, in bytes.
pub const MAX_FIELD: usize = 4096;
/// Longest `instructions` or `reason`, in bytes.
pub const MAX_TEXT: usize = 64 * 1024;
/// Most arguments or env entries of one MCP server.
pub const MAX_ENTRIES: usize = 64;

/// One system action, typed and validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A companion agent with destinations both ways (docs/runtime.md#system-actions).
    CreateAgent {
        name: String,
        instructions: Option<String>,
    },
    /// Packages for the agent's image; needs an approver.
    InstallPackages {
        apt: Vec<String>,
        npm: Vec<String>,
        reason: String,
    },
    /// An MCP server for the agent; needs an approver.
    AddMcpServer {
        name: String,
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
    },
}

/// Why an action was not done: the text of the note to the agent (and of the log line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused(pub String);

/// What a handled row became.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handled {
    /// Done (or accepted for approval): the note the agent gets.
    Done { note: String },
    /// Refused: recorded as failed; the agent gets the reason.
    Refused { note: String },
}

impl Action {
    /// The action's name in the content (`action`).
    pub fn name(&self) -> &'static str {
        match self {
            Action::CreateAgent { .. } => "create_agent",
            Action::InstallPackages { .. } => "install_packages",
            Action::AddMcpServer { .. } => "add_mcp_server",
        }
    }

    /// Whether only a session an owner or admin speaks in may ask for it.
    pub fn is_admin_only(&self) -> bool {
        matches!(self, Action::CreateAgent { .. })
    }
}

/// Reads and validates a `system` row's content. The error is the note for the agent.
pub fn parse(content: &Value) -> Result<Action, Refused> {
    let action = content.get("action").and_then(Value::as_str);
    match action {
        Some("create_agent") => parse_create_agent(content),
        Some("install_packages") => parse_install_packages(content),
        Some("add_mcp_server") => parse_add_mcp_server(content),
        Some(other) => Err(Refused(format!(
            "unknown system action \"{}\": this host handles create_agent, install_packages and add_mcp_server.",
            clip(other)
        ))),
        None => Err(Refused(
            "system action without an \"action\" name was ignored.".to_string(),
        )),
    }
}

fn parse_create_agent(content: &Value) -> Result<Action, Refused> {
    let fail = |why: &str| Refused(format!("create_agent failed: {why}."));
    let name = string(content, "name").unwrap_or_default();
    if name.trim().is_empty() {
        return Err(fail("name is required"));
    }
    if name.len() > MAX_FIELD || name.chars().any(char::is_control) {
        return Err(fail(
            "the name must be at most 4096 bytes without control characters",
        ));
    }
    let instructions = string(content, "instructions").filter(|text| !text.is_empty());
    if instructions
        .as_ref()
        .is_some_and(|text| text.len() > MAX_TEXT)
    {
        return Err(fail("instructions are longer than 64 KiB"));
    }
    Ok(Action::CreateAgent {
        name: name.to_string(),
        instructions: instructions.map(str::to_string),
    })
}

fn parse_install_packages(content: &Value) -> Result<Action, Refused> {
    let fail = |why: String| Refused(format!("install_packages failed: {why}."));
    let apt = string_list(content, "apt").map_err(fail)?;
    let npm = string_list(content, "npm").map_err(fail)?;
    if apt.is_empty() && npm.is_empty() {
        return Err(fail("at least one apt or npm package is required".into()));
    }
    if apt.len() + npm.len() > MAX_PACKAGES {
        return Err(fail(format!("max {MAX_PACKAGES} packages per request")));
    }
    if let Some(bad) = apt.iter().find(|name| !is_apt_name(name)) {
        return Err(fail(format!("invalid apt package name \"{}\"", clip(bad))));
    }
    if let Some(bad) = npm.iter().find(|name| !is_npm_name(name)) {
        return Err(fail(format!("invalid npm package name \"{}\"", clip(bad))));
    }
    let reason = string(content, "reason").unwrap_or_default();
    if reason.len() > MAX_TEXT {
        return Err(fail("the reason is longer than 64 KiB".into()));
    }
    Ok(Action::InstallPackages {
        apt,
        npm,
        reason: reason.to_string(),
    })
}

fn parse_add_mcp_server(content: &Value) -> Result<Action, Refused> {
    let fail = |why: String| Refused(format!("add_mcp_server failed: {why}."));
    let name = string(content, "name").unwrap_or_default();
    let command = string(content, "command").unwrap_or_default();
    if name.is_empty() || command.is_empty() {
        return Err(fail("name and command are required".into()));
    }
    let name_ok = name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !name_ok {
        return Err(fail(format!(
            "server name \"{}\" may only use letters, digits, `-`, `_` and `.` (at most 64)",
            clip(name)
        )));
    }
    if !is_single_line(command) {
        return Err(fail(
            "the command must be one line of at most 4096 bytes".into(),
        ));
    }
    let args = string_list(content, "args").map_err(fail)?;
    if args.len() > MAX_ENTRIES || !args.iter().all(|arg| is_single_line(arg)) {
        return Err(fail(format!(
            "args must be at most {MAX_ENTRIES} one-line strings of at most 4096 bytes"
        )));
    }
    let mut env = BTreeMap::new();
    match content.get("env") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            if map.len() > MAX_ENTRIES {
                return Err(fail(format!("env may hold at most {MAX_ENTRIES} entries")));
            }
            for (key, value) in map {
                let key_ok = !key.is_empty()
                    && key.len() <= 256
                    && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && !key.as_bytes()[0].is_ascii_digit();
                if !key_ok {
                    return Err(fail(format!(
                        "env name \"{}\" must be letters, digits and `_`, not starting with a digit",
                        clip(key)
                    )));
                }
                let Some(value) = value.as_str().filter(|value| is_single_line(value)) else {
                    return Err(fail(format!(
                        "env `{key}` must be a one-line string of at most 4096 bytes"
                    )));
                };
                env.insert(key.clone(), value.to_string());
            }
        }
        Some(_) => return Err(fail("env must be an object of strings".into())),
    }
    Ok(Action::AddMcpServer {
        name: name.to_string(),
        command: command.to_string(),
        args,
        env,
    })
}

/// `^[a-z0-9][a-z0-9._+-]*$`, at most 128 bytes.
pub fn is_apt_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    name.len() <= 128
        && bytes
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'+' | b'-')
        })
}

/// `^(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*$`, at most 214 bytes (npm's own limit).
pub fn is_npm_name(name: &str) -> bool {
    fn part(text: &str) -> bool {
        let bytes = text.as_bytes();
        bytes
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && bytes.iter().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
    }
    if name.len() > 214 {
        return false;
    }
    match name.strip_prefix('@') {
        Some(scoped) => scoped
            .split_once('/')
            .is_some_and(|(scope, base)| part(scope) && part(base)),
        None => part(name),
    }
}

fn is_single_line(text: &str) -> bool {
    text.len() <= MAX_FIELD && !text.chars().any(char::is_control)
}

fn string<'a>(content: &'a Value, key: &str) -> Option<&'a str> {
    content.get(key).and_then(Value::as_str)
}

/// A list of strings under `key` (absent or null: empty).
fn string_list(content: &Value, key: &str) -> Result<Vec<String>, String> {
    match content.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() <= 1000 => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("`{key}` must be a list of strings"))
            })
            .collect(),
        Some(_) => Err(format!("`{key}` must be a list of strings")),
    }
}

/// At most 80 characters of untrusted text, for a note or a log line.
fn clip(text: &str) -> String {
    let clipped: String = text.chars().take(80).collect();
    let clipped = clipped.escape_debug().to_string();
    if text.chars().count() > 80 {
        format!("{clipped}…")
    } else {
        clipped
    }
}

/// Runs one `system` row of `agent`'s `session` (docs/runtime.md#system-actions) and writes
/// the note telling the agent the outcome into the session's `inbound.db`. `Err` is trouble
/// on the host's side (a DB error): the row is retried.
pub fn handle(
    host: &Host<'_>,
    session: &str,
    request_id: &str,
    content: &Value,
) -> Result<Handled, String> {
    let Host {
        conn, paths, agent, ..
    } = *host;
    let session_dir = paths.session(agent, session);
    let handled = match parse(content) {
        Err(Refused(note)) => Handled::Refused { note },
        Ok(action) => {
            if action.is_admin_only()
                && !requested_by_admin(conn, &session_dir, agent).map_err(|e| e.to_string())?
            {
                Handled::Refused {
                    note: format!(
                        "{} failed: only an owner or admin of this agent may ask for it, and the latest message in this conversation is not from one.",
                        action.name()
                    ),
                }
            } else {
                action
                    .run(host, session, request_id)
                    .map_err(|err| format!("{err:#}"))?
            }
        }
    };
    let (Handled::Done { note } | Handled::Refused { note }) = &handled;
    write_note(&session_dir, agent, note).map_err(|err| format!("{err:#}"))?;
    Ok(handled)
}

impl Action {
    /// The registry: each action's handler.
    fn run(&self, host: &Host<'_>, session: &str, request_id: &str) -> anyhow::Result<Handled> {
        let Host {
            conn, paths, agent, ..
        } = *host;
        match self {
            Action::CreateAgent { name, instructions } => {
                create_agent(conn, paths, agent, session, name, instructions.as_deref())
            }
            Action::InstallPackages { .. } | Action::AddMcpServer { .. } => {
                ask_approval(host, self, session, request_id)
            }
        }
    }
}

/// What the self-modification actions need beside the DB: the adapters an approver's DM is
/// found through, how long a card may be answered, and where the cards go (sent by the caller
/// once the row is handled).
pub struct Host<'a> {
    pub conn: &'a Connection,
    pub paths: &'a Paths,
    /// The agent whose session wrote the row.
    pub agent: &'a str,
    pub adapters: &'a Adapters,
    pub approval_ttl: Duration,
    /// Cards to hand to the outboxes: `(channel type, message)`.
    pub cards: &'a RefCell<Vec<(String, Outbound)>>,
}

/// What an approved `install_packages` or `add_mcp_server` does, as the approval stores it
/// (its handler reads it back: docs/runtime.md#self-modification).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRequest {
    pub agent: String,
    pub session: String,
    /// The `system` row that asked.
    pub request_id: String,
    /// `install_packages` or `add_mcp_server`.
    pub action: String,
    pub change: Change,
}

/// Asks the agent's approver (docs/runtime.md#self-modification) on a card naming the agent,
/// the packages or the server (command, arguments, env names: never env values) and the
/// reason.
fn ask_approval(
    host: &Host<'_>,
    action: &Action,
    session: &str,
    request_id: &str,
) -> anyhow::Result<Handled> {
    let agent = host.agent;
    let (kind, title, body, change, what) = match action {
        Action::InstallPackages { apt, npm, reason } => {
            let mut list: Vec<String> = apt.iter().map(|p| format!("apt: {p}")).collect();
            list.extend(npm.iter().map(|p| format!("npm: {p}")));
            let mut body = format!(
                "Agent \"{agent}\" is attempting to install a package + rebuild container:\n{}",
                list.join(", ")
            );
            if !reason.trim().is_empty() {
                body.push_str(&format!("\nReason: {}", shorten(reason.trim(), 1000)));
            }
            let change = Change::Packages {
                apt: apt.clone(),
                npm: npm.clone(),
            };
            (
                super::approvals::kinds::INSTALL_PACKAGES,
                "Install Packages Request",
                body,
                change,
                format!("({})", list.join(", ")),
            )
        }
        Action::AddMcpServer {
            name,
            command,
            args,
            env,
        } => {
            let mut line = command.clone();
            for arg in args {
                line.push(' ');
                line.push_str(arg);
            }
            let mut body = format!(
                "Agent \"{agent}\" is attempting to add a new MCP server:\n{name} ({})",
                shorten(&line, 1000)
            );
            if !env.is_empty() {
                // Only the names: the values may be secrets.
                let keys: Vec<&str> = env.keys().map(String::as_str).collect();
                body.push_str(&format!("\nenv: {} (values not shown)", keys.join(", ")));
            }
            let change = Change::McpServer {
                name: name.clone(),
                command: command.clone(),
                args: args.clone(),
                env: env.clone(),
            };
            (
                super::approvals::kinds::ADD_MCP_SERVER,
                "Add MCP Request",
                body,
                change,
                format!("for \"{name}\" ({command})"),
            )
        }
        Action::CreateAgent { .. } => anyhow::bail!("create_agent needs no approval"),
    };
    let payload = ChangeRequest {
        agent: agent.to_string(),
        session: session.to_string(),
        request_id: request_id.to_string(),
        action: action.name().to_string(),
        change,
    };
    let origin = sessions::get(host.conn, session)?
        .map(|row| super::session::default_routing(host.conn, &row))
        .transpose()?
        .flatten()
        .map(|(channel_type, _)| channel_type);
    let request = super::approvals::Request {
        kind,
        subject: format!("{session}|{request_id}"),
        agent: Some(agent),
        origin: origin.as_deref(),
        payload: serde_json::to_value(&payload)?,
        title: title.to_string(),
        body,
        options: vec![
            ("approve", "Approve", "✅ Approved"),
            ("reject", "Reject", "❌ Rejected"),
        ],
    };
    let name = action.name();
    Ok(
        match super::approvals::request(host.conn, host.adapters, &request, host.approval_ttl)? {
            Requested::Card {
                id,
                channel_type,
                outbound,
            } => {
                info!(agent, session, approval = %id, action = name, "self-modification awaits approval");
                host.cards.borrow_mut().push((channel_type, *outbound));
                Handled::Done {
                    note: format!(
                        "Your {name} request {what} was sent to an admin for approval; you will be told the outcome."
                    ),
                }
            }
            Requested::AlreadyPending => Handled::Done {
                note: format!("Your {name} request {what} already awaits an admin's approval."),
            },
            Requested::NoApprover => Handled::Refused {
                note: format!("{name} failed: no owner or admin configured to approve."),
            },
            Requested::NoDm => Handled::Refused {
                note: format!("{name} failed: no DM channel found for any eligible approver."),
            },
        },
    )
}

/// At most `max` characters of `text`, marked when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// Whether the newest chat message from a person in the session came from an owner, a global
/// admin or an admin of `agent` (the gate of admin-only actions; v2 had none). Messages from
/// agents do not count: an agent cannot lend itself privileges.
fn requested_by_admin(conn: &Connection, session_dir: &Path, agent: &str) -> anyhow::Result<bool> {
    let inbound = session_db::open_inbound_reader(&session_db::inbound_path(session_dir))?;
    let Some((channel_type, content)) = session_db::newest_chat_from_people(&inbound)? else {
        return Ok(false);
    };
    let Some(user) = super::route::sender_id(&Content::parse(&content), &channel_type) else {
        return Ok(false);
    };
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM user_roles WHERE user_id = ?1
           AND (role = 'owner' OR (role = 'admin' AND (agent_group_id IS NULL OR agent_group_id = ?2))))",
        params![user, agent],
        |row| row.get(0),
    )?)
}

/// create_agent (docs/runtime.md#system-actions): a runtime-owned agent (not in any manifest,
/// shown by `plan` as unmanaged) using the creator's provider, with destinations both ways,
/// projected into the calling session at once.
fn create_agent(
    conn: &Connection,
    paths: &Paths,
    creator: &str,
    session: &str,
    name: &str,
    instructions: Option<&str>,
) -> anyhow::Result<Handled> {
    let local = normalise(name);
    let refused = |why: String| Ok(Handled::Refused { note: why });
    let taken = |table_sql: &str, a: &str, b: &str| -> rusqlite::Result<bool> {
        conn.query_row(table_sql, params![a, b], |row| row.get(0))
    };
    const DEST_TAKEN: &str = "SELECT EXISTS (SELECT 1 FROM agent_destinations
        WHERE agent_group_id = ?1 AND local_name = ?2)";
    if taken(DEST_TAKEN, creator, &local)? {
        return refused(format!(
            "Cannot create agent \"{}\": you already have a destination named \"{local}\".",
            clip(name)
        ));
    }
    let provider: Option<String> = conn
        .query_row(
            "SELECT COALESCE(c.provider, g.agent_provider) FROM agent_groups g
             LEFT JOIN container_configs c ON c.agent_group_id = g.id WHERE g.id = ?1",
            [creator],
            |row| row.get(0),
        )
        .optional()?
        .flatten();
    let mut folder = local.clone();
    let mut n = 2;
    while conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM agent_groups WHERE id = ?1 OR folder = ?1)",
        [&folder],
        |row| row.get::<_, bool>(0),
    )? {
        folder = format!("{local}-{n}");
        n += 1;
    }
    let mut parent = "parent".to_string();
    let mut n = 2;
    while taken(DEST_TAKEN, &folder, &parent)? {
        parent = format!("parent-{n}");
        n += 1;
    }
    let now = ids::now_iso();
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let written = (|| -> rusqlite::Result<()> {
        conn.execute(
            "INSERT INTO agent_groups (id, name, folder, agent_provider, created_at)
             VALUES (?1, ?1, ?1, ?2, ?3)",
            params![folder, provider, now],
        )?;
        conn.execute(
            "INSERT INTO agent_destinations (agent_group_id, local_name, target_type, target_id, created_at)
             VALUES (?1, ?2, 'agent', ?3, ?4), (?3, ?5, 'agent', ?1, ?4)",
            params![creator, local, folder, now, parent],
        )?;
        Ok(())
    })();
    match written {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(err) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(err.into());
        }
    }
    if let Some(text) = instructions {
        seed_instructions(paths, &folder, text);
    }
    if let Some(row) = sessions::get(conn, session)? {
        let dir = paths.session(creator, session);
        let mut inbound = session_db::open_inbound_host(&session_db::inbound_path(&dir))?;
        super::session::write_projections(conn, &row, &mut inbound)?;
    }
    info!(creator, agent = %folder, "agent created at an agent's request");
    Ok(Handled::Done {
        note: format!(
            "Agent \"{local}\" created. You can now message it with <message to=\"{local}\">...</message>."
        ),
    })
}

/// Seeds the new agent's `CLAUDE.local.md` (created exclusively in its new folder; a failure is
/// logged, the agent exists without it).
fn seed_instructions(paths: &Paths, folder: &str, text: &str) {
    let seeded = crate::hostfs::Dir::create_all(&paths.group(folder), super::layout::DIR_MODE)
        .and_then(|dir| dir.create_new("CLAUDE.local.md", text.as_bytes(), 0o644, None));
    if let Err(err) = seeded {
        warn!(agent = folder, error = %err, "the new agent's instructions were not written");
    }
}

/// Writes a system note for the agent into the session's `inbound.db`: a waking chat row from
/// the agent's own address, sender `system`.
pub fn write_note(session_dir: &Path, agent: &str, text: &str) -> anyhow::Result<()> {
    let row = NewInbound {
        id: ids::new_id("sys"),
        kind: Kind::Chat,
        timestamp: ids::now_iso(),
        platform_id: Some(agent.to_string()),
        channel_type: Some(AGENT_CHANNEL_TYPE.to_string()),
        content: json!({"text": text, "sender": "system", "senderId": "system"}).to_string(),
        trigger: true,
        ..NewInbound::default()
    };
    let mut inbound = session_db::open_inbound_host(&session_db::inbound_path(session_dir))?;
    session_db::insert_inbound(&mut inbound, &[row])?;
    Ok(())
}

#[cfg(test)]
#[path = "system_tests.rs"]
mod tests;
