//! Getting a session ready for its container (host.md §4.2 steps 1–5, §4.8, §4.9, §8):
//! the agent's folder, `container.json`, the composed `CLAUDE.md`, the destinations
//! projection and the default reply address in `inbound.db`.
//!
//! Everything here is read from the central DB at spawn time, which is why the effect table
//! calls these fields `restart`. The result is a [`Prepared`] the waker hands to
//! `containers`. No Docker code here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agent_runner::session_db::{self, DestinationRow};
use anyhow::Context;
use rusqlite::{Connection, OptionalExtension};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::db::sessions::Session;
use crate::paths::Paths;
use crate::resources::Resources;
use crate::state::Network;

/// What the container runner needs to start the session's container.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    pub session_id: String,
    pub agent: String,
    pub session_dir: PathBuf,
    pub group_dir: PathBuf,
    /// The image: the agent's override, else the install default.
    pub image: String,
    pub extra_mounts: Vec<ExtraMount>,
    /// Hash of everything read at spawn; a container labelled with another hash is stale.
    pub config_hash: String,
    /// The agent's container limits.
    pub resources: Resources,
    /// The agent's container network.
    pub network: Network,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraMount {
    pub host: PathBuf,
    pub container: String,
    pub readonly: bool,
}

/// The agent's row and container config as read at spawn.
#[derive(Clone, Debug)]
struct AgentConfig {
    name: String,
    provider: Option<String>,
    model: Option<String>,
    effort: Option<String>,
    image_tag: Option<String>,
    assistant_name: Option<String>,
    max_messages_per_prompt: Option<i64>,
    skills: Value,
    mcp_servers: Value,
    packages_apt: Value,
    packages_npm: Value,
    additional_mounts: Value,
    instructions: Option<String>,
    resources: Resources,
    network: Network,
}

const AGENT_CONFIG: &str =
    "SELECT a.name, c.provider, c.model, c.effort, c.image_tag, c.assistant_name,
    c.max_messages_per_prompt, c.skills, c.mcp_servers, c.packages_apt, c.packages_npm,
    c.additional_mounts, c.instructions, c.memory_bytes, c.cpu_millis, c.pids_limit, c.network
  FROM agent_groups a JOIN container_configs c ON c.agent_group_id = a.id WHERE a.id = ?1";

fn agent_config(conn: &Connection, agent: &str) -> anyhow::Result<Option<AgentConfig>> {
    let json = |text: String| serde_json::from_str::<Value>(&text).unwrap_or(Value::Null);
    conn.prepare_cached(AGENT_CONFIG)?
        .query_row([agent], |row| {
            Ok(AgentConfig {
                name: row.get(0)?,
                provider: row.get(1)?,
                model: row.get(2)?,
                effort: row.get(3)?,
                image_tag: row.get(4)?,
                assistant_name: row.get(5)?,
                max_messages_per_prompt: row.get(6)?,
                skills: json(row.get(7)?),
                mcp_servers: json(row.get(8)?),
                packages_apt: json(row.get(9)?),
                packages_npm: json(row.get(10)?),
                additional_mounts: json(row.get(11)?),
                instructions: row.get(12)?,
                resources: Resources::from_columns(row.get(13)?, row.get(14)?, row.get(15)?),
                // The column's CHECK allows only these two; anything else reads as the default.
                network: match row.get::<_, String>(16)?.as_str() {
                    "none" => Network::None,
                    _ => Network::Full,
                },
            })
        })
        .optional()
        .context("reading the agent's container config")
}

/// Prepares `session` for a container. Errors (missing agent or config, unwritable files)
/// make the wake fail; the messages stay pending for the sweep.
pub fn prepare(
    conn: &Connection,
    paths: &Paths,
    session: &Session,
    default_image: &str,
) -> anyhow::Result<Prepared> {
    let config = agent_config(conn, &session.agent)?.with_context(|| {
        format!(
            "agent `{}` or its container config no longer exists",
            session.agent
        )
    })?;
    let session_dir = paths.session(&session.agent, &session.id);
    session_db::create(&session_dir)?;
    let group_dir = paths.group(&session.agent);
    init_group(
        &group_dir,
        &paths.claude_shared(&session.agent),
        config.instructions.as_deref(),
    )?;
    let container_json = container_json(&config);
    let container_text = serde_json::to_string_pretty(&container_json)? + "\n";
    write_atomic(&group_dir.join("container.json"), &container_text)?;
    let claude_md = compose_claude_md(&group_dir, &config)?;

    let mut inbound = session_db::open_inbound_host(&session_dir.join(session_db::INBOUND_FILE))?;
    let destinations = destinations(conn, &session.agent)?;
    session_db::write_destinations(&mut inbound, &destinations)?;
    let routing = default_routing(conn, session)?;
    session_db::write_session_routing(
        &inbound,
        routing
            .as_ref()
            .map(|(channel_type, _)| channel_type.as_str()),
        routing
            .as_ref()
            .map(|(_, platform_id)| platform_id.as_str()),
        session.thread_id.as_deref(),
    )?;

    let image = config
        .image_tag
        .clone()
        .filter(|tag| !tag.is_empty())
        .unwrap_or_else(|| default_image.to_string());
    let extra_mounts = extra_mounts(&config.additional_mounts, paths, &session.agent);
    let mut hasher = Sha256::new();
    for part in [container_text.as_str(), claude_md.as_str(), image.as_str()] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hasher.update(format!("{extra_mounts:?}").as_bytes());
    hasher.update(format!("{:?}", config.resources).as_bytes());
    hasher.update(config.network.as_str().as_bytes());
    let config_hash = hasher
        .finalize()
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    Ok(Prepared {
        session_id: session.id.clone(),
        agent: session.agent.clone(),
        session_dir,
        group_dir,
        image,
        extra_mounts,
        config_hash,
        resources: config.resources,
        network: config.network,
    })
}

/// `container.json` as the runner reads it (host.md §4.8; cli_scope stays host-side).
fn container_json(config: &AgentConfig) -> Value {
    let mut map = serde_json::Map::new();
    map.insert("mcpServers".into(), config.mcp_servers.clone());
    map.insert(
        "packages".into(),
        json!({ "apt": config.packages_apt, "npm": config.packages_npm }),
    );
    if let Some(tag) = &config.image_tag {
        map.insert("imageTag".into(), json!(tag));
    }
    map.insert("additionalMounts".into(), config.additional_mounts.clone());
    map.insert("skills".into(), config.skills.clone());
    if let Some(provider) = &config.provider {
        map.insert("provider".into(), json!(provider.to_lowercase()));
    }
    map.insert("groupName".into(), json!(config.name));
    let assistant = config
        .assistant_name
        .clone()
        .unwrap_or_else(|| config.name.clone());
    map.insert("assistantName".into(), json!(assistant));
    map.insert("agentGroupId".into(), json!(config.name));
    if let Some(max) = config.max_messages_per_prompt {
        map.insert("maxMessagesPerPrompt".into(), json!(max));
    }
    if let Some(model) = &config.model {
        map.insert("model".into(), json!(model));
    }
    if let Some(effort) = &config.effort {
        map.insert("effort".into(), json!(effort));
    }
    Value::Object(map)
}

/// Idempotent folder setup (host.md §4.9): the group dir, `CLAUDE.local.md` seeded from the
/// manifest's instructions, and the per-agent Claude state dir.
///
/// Re-seeding: the seed is written again when the manifest's instructions change *and* the
/// agent has not edited the file since the last seed (its content still equals the old seed,
/// remembered in `.claude-local.seed`). An agent's own edits always win.
fn init_group(
    group_dir: &Path,
    claude_shared: &Path,
    instructions: Option<&str>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(group_dir)
        .with_context(|| format!("creating {}", group_dir.display()))?;
    std::fs::create_dir_all(claude_shared.join("skills"))
        .with_context(|| format!("creating {}", claude_shared.display()))?;
    let seed = instructions
        .map(|text| format!("{}\n", text.trim_end()))
        .unwrap_or_default();
    let local = group_dir.join("CLAUDE.local.md");
    let seed_file = group_dir.join(".claude-local.seed");
    let current = std::fs::read_to_string(&local).ok();
    let previous_seed = std::fs::read_to_string(&seed_file).ok();
    let untouched = match (&current, &previous_seed) {
        (None, _) => true,
        (Some(current), Some(previous)) => current == previous,
        (Some(current), None) => current.is_empty(),
    };
    if untouched && current.as_deref() != Some(seed.as_str()) {
        write_atomic(&local, &seed)?;
    }
    if untouched {
        write_atomic(&seed_file, &seed)?;
    }
    Ok(())
}

/// Composes `CLAUDE.md` from imports only (host.md §8.2): the shared base, then one fragment
/// per MCP server with instructions. Returns the text written.
fn compose_claude_md(group_dir: &Path, config: &AgentConfig) -> anyhow::Result<String> {
    let fragments_dir = group_dir.join(".claude-fragments");
    std::fs::create_dir_all(&fragments_dir)?;
    let mut desired: BTreeMap<String, String> = BTreeMap::new();
    if let Value::Object(servers) = &config.mcp_servers {
        for (name, server) in servers {
            if let Some(Value::String(instructions)) = server.get("instructions") {
                desired.insert(
                    format!("mcp-{name}.md"),
                    format!("{}\n", instructions.trim_end()),
                );
            }
        }
    }
    for entry in std::fs::read_dir(&fragments_dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !desired.contains_key(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let mut text = String::from(
        "<!-- Composed by nanoclaw at every container start; do not edit. Per-agent memory belongs in CLAUDE.local.md. -->\n",
    );
    text.push_str("@./.claude-shared.md\n");
    for (name, content) in &desired {
        write_atomic(&fragments_dir.join(name), content)?;
        text.push_str(&format!("@./.claude-fragments/{name}\n"));
    }
    write_atomic(&group_dir.join("CLAUDE.md"), &text)?;
    Ok(text)
}

/// The agent's destinations as the container sees them (host.md §2.3); dangling ones skipped.
fn destinations(conn: &Connection, agent: &str) -> anyhow::Result<Vec<DestinationRow>> {
    let mut statement = conn.prepare_cached(
        "SELECT d.local_name, d.target_type, d.target_id, m.channel_type, m.platform_id, m.name, a.name
         FROM agent_destinations d
         LEFT JOIN messaging_groups m ON d.target_type = 'channel' AND m.id = d.target_id
         LEFT JOIN agent_groups a ON d.target_type = 'agent' AND a.id = d.target_id
         WHERE d.agent_group_id = ?1 ORDER BY d.local_name",
    )?;
    let rows = statement.query_map([agent], |row| {
        let name: String = row.get(0)?;
        let kind: String = row.get(1)?;
        let target: String = row.get(2)?;
        let channel_type: Option<String> = row.get(3)?;
        let platform_id: Option<String> = row.get(4)?;
        let chat_name: Option<String> = row.get(5)?;
        let agent_name: Option<String> = row.get(6)?;
        Ok((
            name,
            kind,
            target,
            channel_type,
            platform_id,
            chat_name,
            agent_name,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, kind, target, channel_type, platform_id, chat_name, agent_name) = row?;
        let destination = match kind.as_str() {
            "channel" if platform_id.is_some() => DestinationRow {
                display_name: Some(chat_name.unwrap_or_else(|| name.clone())),
                name,
                kind: "channel".to_string(),
                channel_type,
                platform_id,
                agent_group_id: None,
            },
            "agent" if agent_name.is_some() => DestinationRow {
                display_name: agent_name,
                name,
                kind: "agent".to_string(),
                channel_type: None,
                platform_id: None,
                agent_group_id: Some(target),
            },
            _ => continue,
        };
        out.push(destination);
    }
    Ok(out)
}

/// The session's default reply address: its chat (host.md §2.3 `session_routing`).
fn default_routing(
    conn: &Connection,
    session: &Session,
) -> anyhow::Result<Option<(String, String)>> {
    let Some(chat_id) = &session.chat_id else {
        return Ok(None);
    };
    Ok(conn
        .prepare_cached("SELECT channel_type, platform_id FROM messaging_groups WHERE id = ?1")?
        .query_row([chat_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?)
}

/// The agent's additional mounts, checked again now (`mount_policy`): refused ones are logged
/// and left out, and each is bound by its resolved real path.
fn extra_mounts(additional: &Value, paths: &Paths, agent: &str) -> Vec<ExtraMount> {
    crate::mount_policy::at_spawn(agent, additional, &paths.data)
        .into_iter()
        .map(|resolved| ExtraMount {
            host: resolved.host,
            container: resolved.container,
            readonly: resolved.readonly,
        })
        .collect()
}

/// Writes via a temp file and rename so the container never reads a half-written file.
/// The temp name is unique per call: concurrent wakes of one agent group write the same files.
fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("nanoclaw-tmp-{}-{n}", std::process::id()));
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writes_of_one_file_all_succeed() {
        // Two wakes preparing the same agent group at once used to share one temp file name,
        // and the loser's rename failed ("No such file or directory"), failing its wake.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("CLAUDE.md");
        let failures: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|n| {
                    let path = &path;
                    scope.spawn(move || {
                        (0..200)
                            .filter(|_| write_atomic(path, &format!("writer {n}\n")).is_err())
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(failures, 0);
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .starts_with("writer ")
        );
    }

    #[test]
    fn seed_is_rewritten_only_while_the_agent_has_not_edited_it() {
        let dir = tempfile::tempdir().unwrap();
        let group = dir.path().join("g");
        let shared = dir.path().join("s");
        init_group(&group, &shared, Some("first")).unwrap();
        assert_eq!(
            std::fs::read_to_string(group.join("CLAUDE.local.md")).unwrap(),
            "first\n"
        );
        init_group(&group, &shared, Some("second")).unwrap();
        assert_eq!(
            std::fs::read_to_string(group.join("CLAUDE.local.md")).unwrap(),
            "second\n"
        );
        std::fs::write(group.join("CLAUDE.local.md"), "my own notes\n").unwrap();
        init_group(&group, &shared, Some("third")).unwrap();
        assert_eq!(
            std::fs::read_to_string(group.join("CLAUDE.local.md")).unwrap(),
            "my own notes\n"
        );
    }

    // ---- ported from v2's host-core `writeSessionRouting` tests ----

    /// Prepares a session of agent `ag-1` created on `chat` (`None` = an agent-shared session
    /// without a chat) and thread, and returns its `session_routing` row.
    fn routing_after_prepare(
        chat: Option<(&str, &str, bool)>,
        thread: Option<&str>,
    ) -> (Option<String>, Option<String>, Option<String>) {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path().join("data"));
        paths.ensure().unwrap();
        let conn = crate::db::open(&paths.db()).unwrap();
        conn.execute_batch(
            "INSERT INTO agent_groups (id, name, folder, created_at) VALUES ('ag-1', 'Agent', 'ag-1', 't');
             INSERT INTO container_configs (agent_group_id, updated_at) VALUES ('ag-1', 't');",
        )
        .unwrap();
        if let Some((channel_type, platform_id, is_group)) = chat {
            conn.execute(
                "INSERT INTO messaging_groups (id, channel_type, platform_id, is_group, created_at)
                 VALUES ('mg-1', ?1, ?2, ?3, 't')",
                rusqlite::params![channel_type, platform_id, is_group],
            )
            .unwrap();
        }
        let session =
            crate::db::sessions::create(&conn, "ag-1", chat.map(|_| "mg-1"), thread).unwrap();
        let prepared = prepare(&conn, &paths, &session, "image:latest").unwrap();
        let inbound = session_db::open_inbound_container(
            &prepared.session_dir.join(session_db::INBOUND_FILE),
        )
        .unwrap();
        inbound
            .query_row(
                "SELECT channel_type, platform_id, thread_id FROM session_routing WHERE id = 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap()
    }

    #[test]
    fn session_routing_is_populated_from_the_messaging_group() {
        assert_eq!(
            routing_after_prepare(Some(("telegram", "tg:12345", false)), None),
            (Some("telegram".into()), Some("tg:12345".into()), None)
        );
    }

    #[test]
    fn session_routing_is_null_for_an_agent_shared_session_without_a_chat() {
        assert_eq!(routing_after_prepare(None, None), (None, None, None));
    }

    #[test]
    fn session_routing_includes_the_thread_of_a_per_thread_session() {
        assert_eq!(
            routing_after_prepare(Some(("discord", "chan-123", true)), Some("thread-77")),
            (
                Some("discord".into()),
                Some("chan-123".into()),
                Some("thread-77".into())
            )
        );
    }
}
