//! Row writes of one apply: each resource kind ↔ its table rows (the mirror of the reads in
//! `read.rs`), plus its `managed_resources` spec. Runs inside the caller's
//! transaction; statements are cached so a 1,000-agent apply prepares each SQL once.
//!
//! Upserts update by the natural key first and insert when no row matched, so a row made at
//! runtime (another id, `managed_by` NULL) is adopted in place.

use rusqlite::{Connection, params};

use super::MountRow;
use crate::state::{DestinationTarget, Resource};

pub struct Writer<'a> {
    conn: &'a Connection,
    now: &'a str,
    generation: i64,
}

const UPSERT_SPEC: &str = "INSERT INTO managed_resources (address, kind, spec_json, generation)
  VALUES (?1, ?2, ?3, ?4)
  ON CONFLICT (address) DO UPDATE SET kind = excluded.kind, spec_json = excluded.spec_json,
    generation = excluded.generation";

impl<'a> Writer<'a> {
    pub fn new(conn: &'a Connection, now: &'a str, generation: i64) -> Writer<'a> {
        Writer {
            conn,
            now,
            generation,
        }
    }

    /// Runs an UPDATE; when it matched no row, runs the INSERT with the same parameters.
    fn update_or_insert(
        &self,
        update: &str,
        insert: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> rusqlite::Result<()> {
        let n_rows = self.conn.prepare_cached(update)?.execute(params)?;
        if n_rows == 0 {
            self.conn.prepare_cached(insert)?.execute(params)?;
        }
        Ok(())
    }

    /// Creates, updates or adopts `resource`'s rows and records its spec. Long on purpose: one
    /// arm per kind, so the resource → row mapping reads as one table.
    pub fn upsert(&self, resource: &Resource) -> rusqlite::Result<()> {
        match resource {
            Resource::Agent(agent) => {
                self.update_or_insert(
                    "UPDATE agent_groups SET name = ?1, managed_by = 'manifest' WHERE id = ?1 AND ?2 = ?2",
                    "INSERT INTO agent_groups (id, name, folder, created_at, managed_by)
                     VALUES (?1, ?1, ?1, ?2, 'manifest')",
                    params![agent.name, self.now],
                )?;
                let mounts: Vec<MountRow> = agent.mounts.iter().map(MountRow::from).collect();
                let [memory_bytes, cpu_millis, pids_limit] = agent.resources.to_columns();
                self.conn.prepare_cached(UPSERT_CONFIG)?.execute(params![
                    agent.name,
                    agent.provider,
                    agent.model,
                    agent.effort,
                    agent.image,
                    agent.assistant_name,
                    agent.max_messages_per_prompt,
                    to_json(&agent.skills),
                    to_json(&agent.mcp_servers),
                    to_json(&agent.packages.apt),
                    to_json(&agent.packages.npm),
                    to_json(&mounts),
                    self.now,
                    agent.cli_scope.as_str(),
                    agent.instructions,
                    memory_bytes,
                    cpu_millis,
                    pids_limit,
                    agent.network.as_str(),
                ])?;
            }
            Resource::Channel(channel) => self.update_or_insert(
                "UPDATE messaging_groups SET channel_type = ?2, platform_id = ?3, name = ?4,
                   is_group = ?5, unknown_sender_policy = ?6, managed_by = 'manifest'
                 WHERE id = ?1 AND ?7 = ?7",
                "INSERT INTO messaging_groups (id, channel_type, platform_id, name, is_group,
                   unknown_sender_policy, created_at, managed_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'manifest')",
                params![
                    channel.name,
                    channel.channel_type,
                    channel.platform_id,
                    channel.display_name,
                    channel.is_group,
                    channel.unknown_sender_policy.as_str(),
                    self.now
                ],
            )?,
            Resource::Wiring(wiring) => self.update_or_insert(
                "UPDATE messaging_group_agents SET engage_mode = ?4, engage_pattern = ?5,
                   sender_scope = ?6, ignored_message_policy = ?7, session_mode = ?8,
                   priority = ?9, managed_by = 'manifest'
                 WHERE messaging_group_id = ?2 AND agent_group_id = ?3 AND ?1 = ?1 AND ?10 = ?10",
                "INSERT INTO messaging_group_agents (id, messaging_group_id, agent_group_id,
                   engage_mode, engage_pattern, sender_scope, ignored_message_policy,
                   session_mode, priority, created_at, managed_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'manifest')",
                params![
                    format!("{}/{}", wiring.channel, wiring.agent),
                    wiring.channel,
                    wiring.agent,
                    wiring.engage_mode.as_str(),
                    wiring.engage_pattern,
                    wiring.sender_scope.as_str(),
                    wiring.ignored_message_policy.as_str(),
                    wiring.session_mode.as_str(),
                    wiring.priority,
                    self.now
                ],
            )?,
            Resource::User(user) => self.update_or_insert(
                "UPDATE users SET kind = ?2, display_name = ?3, managed_by = 'manifest'
                 WHERE id = ?1 AND ?4 = ?4",
                "INSERT INTO users (id, kind, display_name, created_at, managed_by)
                 VALUES (?1, ?2, ?3, ?4, 'manifest')",
                params![user.id, user.kind(), user.display_name, self.now],
            )?,
            Resource::Role(role) => self.update_or_insert(
                "UPDATE user_roles SET managed_by = 'manifest'
                 WHERE user_id = ?1 AND role = ?2 AND agent_group_id IS ?3 AND ?4 = ?4",
                "INSERT INTO user_roles (user_id, role, agent_group_id, granted_at, managed_by)
                 VALUES (?1, ?2, ?3, ?4, 'manifest')",
                params![role.user, role.role.as_str(), role.agent, self.now],
            )?,
            Resource::Member(member) => self.update_or_insert(
                "UPDATE agent_group_members SET managed_by = 'manifest'
                 WHERE user_id = ?1 AND agent_group_id = ?2 AND ?3 = ?3",
                "INSERT INTO agent_group_members (user_id, agent_group_id, added_at, managed_by)
                 VALUES (?1, ?2, ?3, 'manifest')",
                params![member.user, member.agent, self.now],
            )?,
            Resource::Destination(destination) => {
                let (target_type, target_id) = target(&destination.target);
                self.update_or_insert(
                    "UPDATE agent_destinations SET target_type = ?3, target_id = ?4,
                       managed_by = 'manifest'
                     WHERE agent_group_id = ?1 AND local_name = ?2 AND ?5 = ?5",
                    "INSERT INTO agent_destinations (agent_group_id, local_name, target_type,
                       target_id, created_at, managed_by)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'manifest')",
                    params![
                        destination.agent,
                        destination.local_name,
                        target_type,
                        target_id,
                        self.now
                    ],
                )?
            }
        }
        let spec = serde_json::to_string(resource).unwrap_or_default();
        self.conn.prepare_cached(UPSERT_SPEC)?.execute(params![
            resource.address().to_string(),
            resource.kind().as_str(),
            spec,
            self.generation
        ])?;
        Ok(())
    }

    /// Forgets the last-applied spec of an address that is neither desired nor in the DB.
    pub fn forget(&self, address: &str) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached("DELETE FROM managed_resources WHERE address = ?1")?
            .execute([address])?;
        Ok(())
    }

    /// Deletes `resource`'s rows (the plan lists its children before it) and its spec.
    pub fn delete(&self, resource: &Resource) -> rusqlite::Result<()> {
        let run = |sql: &str, params: &[&dyn rusqlite::ToSql]| -> rusqlite::Result<()> {
            self.conn.prepare_cached(sql)?.execute(params)?;
            Ok(())
        };
        match resource {
            Resource::Agent(agent) => {
                // The agent's runtime rows go with it (its sessions and what waits on them):
                // they reference the agent, so the agent row could not be deleted otherwise.
                // Its session folders and containers are the runtime's to clean up.
                for sql in DELETE_AGENT_RUNTIME_ROWS {
                    run(sql, params![agent.name])?;
                }
                run(
                    "DELETE FROM container_configs WHERE agent_group_id = ?1",
                    params![agent.name],
                )?;
                run(
                    "DELETE FROM pending_effects WHERE agent_group_id = ?1",
                    params![agent.name],
                )?;
                run(
                    "DELETE FROM deferred_restarts WHERE agent_group_id = ?1",
                    params![agent.name],
                )?;
                run(
                    "DELETE FROM agent_groups WHERE id = ?1",
                    params![agent.name],
                )?;
            }
            Resource::Channel(channel) => {
                for sql in DELETE_CHANNEL_RUNTIME_ROWS {
                    run(sql, params![channel.name])?;
                }
                run(
                    "DELETE FROM messaging_groups WHERE id = ?1",
                    params![channel.name],
                )?;
            }
            Resource::Wiring(wiring) => run(
                "DELETE FROM messaging_group_agents
                 WHERE messaging_group_id = ?1 AND agent_group_id = ?2",
                params![wiring.channel, wiring.agent],
            )?,
            Resource::User(user) => {
                run(
                    "UPDATE user_roles SET granted_by = NULL WHERE granted_by = ?1",
                    params![user.id],
                )?;
                run(
                    "UPDATE agent_group_members SET added_by = NULL WHERE added_by = ?1",
                    params![user.id],
                )?;
                run("DELETE FROM user_dms WHERE user_id = ?1", params![user.id])?;
                run("DELETE FROM users WHERE id = ?1", params![user.id])?;
            }
            Resource::Role(role) => run(
                "DELETE FROM user_roles WHERE user_id = ?1 AND role = ?2 AND agent_group_id IS ?3",
                params![role.user, role.role.as_str(), role.agent],
            )?,
            Resource::Member(member) => run(
                "DELETE FROM agent_group_members WHERE user_id = ?1 AND agent_group_id = ?2",
                params![member.user, member.agent],
            )?,
            Resource::Destination(destination) => run(
                "DELETE FROM agent_destinations WHERE agent_group_id = ?1 AND local_name = ?2",
                params![destination.agent, destination.local_name],
            )?,
        }
        run(
            "DELETE FROM managed_resources WHERE address = ?1",
            params![resource.address().to_string()],
        )
    }
}

/// Runtime rows that reference an agent group, deleted (children first) with the agent.
const DELETE_AGENT_RUNTIME_ROWS: &[&str] = &[
    "DELETE FROM pending_questions
     WHERE session_id IN (SELECT id FROM sessions WHERE agent_group_id = ?1)",
    "DELETE FROM pending_approvals WHERE agent_group_id = ?1
       OR session_id IN (SELECT id FROM sessions WHERE agent_group_id = ?1)",
    "DELETE FROM pending_sender_approvals WHERE agent_group_id = ?1",
    "DELETE FROM pending_channel_approvals WHERE agent_group_id = ?1",
    "DELETE FROM sessions WHERE agent_group_id = ?1",
];

/// Runtime rows that reference a chat: sessions keep living without it (they belong to their
/// agent), approvals waiting in it and DM shortcuts to it go.
const DELETE_CHANNEL_RUNTIME_ROWS: &[&str] = &[
    "UPDATE sessions SET messaging_group_id = NULL WHERE messaging_group_id = ?1",
    "DELETE FROM pending_sender_approvals WHERE messaging_group_id = ?1",
    "DELETE FROM pending_channel_approvals WHERE messaging_group_id = ?1",
    "DELETE FROM user_dms WHERE messaging_group_id = ?1",
];

const UPSERT_CONFIG: &str = "INSERT INTO container_configs (agent_group_id, provider, model,
  effort, image_tag, assistant_name, max_messages_per_prompt, skills, mcp_servers, packages_apt,
  packages_npm, additional_mounts, updated_at, cli_scope, instructions, memory_bytes,
  cpu_millis, pids_limit, network)
  VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
  ON CONFLICT (agent_group_id) DO UPDATE SET provider = excluded.provider,
    model = excluded.model, effort = excluded.effort, image_tag = excluded.image_tag,
    assistant_name = excluded.assistant_name,
    max_messages_per_prompt = excluded.max_messages_per_prompt, skills = excluded.skills,
    mcp_servers = excluded.mcp_servers, packages_apt = excluded.packages_apt,
    packages_npm = excluded.packages_npm, additional_mounts = excluded.additional_mounts,
    updated_at = excluded.updated_at, cli_scope = excluded.cli_scope,
    instructions = excluded.instructions, memory_bytes = excluded.memory_bytes,
    cpu_millis = excluded.cpu_millis, pids_limit = excluded.pids_limit,
    network = excluded.network";

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn target(target: &DestinationTarget) -> (&'static str, &str) {
    match target {
        DestinationTarget::Agent(name) => ("agent", name),
        DestinationTarget::Channel(name) => ("channel", name),
    }
}
