//! Reading the configuration rows into typed resources: every row (managed or made at runtime)
//! as a `State`, which addresses the manifests own, and the last-applied spec of each (for
//! drift).
//!
//! Reads only; one bulk query per table (no per-row queries: a 1,000-agent fleet plans in
//! milliseconds). The row ↔ resource mapping is the mirror of [`super::Writer`]; the JSON column
//! shapes (`additional_mounts` in camelCase) follow
//! docs/runtime.md#central-db-tables-and-migrations.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Row};

use super::{MountRow, ReadError};
use crate::state::{
    Address, Agent, Channel, CliScope, Current, Destination, DestinationTarget, Member, Mount,
    Network, Resource, Resources, Role, Skills, TextEnum, User, Wiring,
};

/// Reads the whole configuration.
pub fn read(conn: &Connection) -> Result<Current, ReadError> {
    let mut current = Current {
        generation: crate::db::generation(conn)?,
        ..Current::default()
    };
    read_agents(conn, &mut current)?;
    read_channels(conn, &mut current)?;
    read_wirings(conn, &mut current)?;
    read_users(conn, &mut current)?;
    read_roles(conn, &mut current)?;
    read_members(conn, &mut current)?;
    read_destinations(conn, &mut current)?;
    read_specs(conn, &mut current)?;
    Ok(current)
}

fn add(current: &mut Current, resource: Resource, managed_by: Option<String>) {
    let address = resource.address();
    if managed_by.as_deref() == Some("manifest") {
        current.managed.insert(address);
    }
    current.state.insert(resource);
}

fn json<T: serde::de::DeserializeOwned>(
    address: &Address,
    column: &'static str,
    text: Option<String>,
    default: T,
) -> Result<T, ReadError> {
    match text {
        None => Ok(default),
        Some(text) => serde_json::from_str(&text).map_err(|source| ReadError::Json {
            address: address.clone(),
            column,
            source,
        }),
    }
}

/// An enum column: its declared texts (`TextEnum`) are the only values the CHECKs allow.
fn parse<T: TextEnum>(address: &Address, column: &'static str, text: &str) -> Result<T, ReadError> {
    T::parse(text).ok_or_else(|| ReadError::Value {
        address: address.clone(),
        column,
        value: text.to_string(),
    })
}

const SELECT_AGENTS: &str = "SELECT g.id, g.managed_by, g.agent_provider, c.agent_group_id,
  c.provider, c.model, c.effort, c.image_tag, c.assistant_name, c.max_messages_per_prompt,
  c.cli_scope, c.instructions, c.skills, c.mcp_servers, c.packages_apt, c.packages_npm,
  c.additional_mounts, c.memory_bytes, c.cpu_millis, c.pids_limit, c.network
FROM agent_groups g LEFT JOIN container_configs c ON c.agent_group_id = g.id";

fn read_agents(conn: &Connection, current: &mut Current) -> Result<(), ReadError> {
    let mut statement = conn.prepare(SELECT_AGENTS)?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let agent = agent_of(row)?;
        add(current, Resource::Agent(agent), row.get(1)?);
    }
    Ok(())
}

/// One agent as `plan` compares it (an agent made at runtime without a container config reads
/// with the defaults), or `None` when there is no agent `name`. The runtime reads an agent's
/// configuration at spawn through this, so both see the same value.
pub fn agent(conn: &Connection, name: &str) -> Result<Option<Agent>, ReadError> {
    let sql = format!("{SELECT_AGENTS} WHERE g.id = ?1");
    let mut statement = conn.prepare_cached(&sql)?;
    let row = statement
        .query_row([name], |row| Ok(agent_of(row)))
        .optional()?;
    row.transpose()
}

/// The two provider columns of an agent's rows, unmerged: `provider::resolve` ranks them
/// (the group's before the configuration's), where [`agent`] shows the plan one value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderColumns {
    /// `agent_groups.agent_provider` (a v2 column; nanoclaw's apply leaves it unset).
    pub group: Option<String>,
    /// `container_configs.provider` (the manifest's `provider`).
    pub config: Option<String>,
}

/// The provider columns of agent `name`, or `None` when there is no such agent.
pub fn provider_columns(
    conn: &Connection,
    name: &str,
) -> Result<Option<ProviderColumns>, ReadError> {
    const SQL: &str = "SELECT g.agent_provider, c.provider
        FROM agent_groups g LEFT JOIN container_configs c ON c.agent_group_id = g.id
        WHERE g.id = ?1";
    Ok(conn
        .prepare_cached(SQL)?
        .query_row([name], |row| {
            Ok(ProviderColumns {
                group: row.get(0)?,
                config: row.get(1)?,
            })
        })
        .optional()?)
}

/// Maps a row of [`SELECT_AGENTS`] to its agent.
fn agent_of(row: &Row<'_>) -> Result<Agent, ReadError> {
    let name: String = row.get(0)?;
    let address = Address::new(crate::state::Kind::Agent, name.clone());
    let has_config = row.get::<_, Option<String>>(3)?.is_some();
    let provider: Option<String> = row.get(4)?;
    let legacy_provider: Option<String> = row.get(2)?;
    let cli_scope: Option<String> = row.get(10)?;
    let cli_scope = match cli_scope {
        Some(text) => parse(&address, "cli_scope", &text)?,
        None => CliScope::default(),
    };
    let network = match row.get::<_, Option<String>>(20)? {
        Some(text) => parse(&address, "network", &text)?,
        None => Network::default(),
    };
    let mounts: Vec<MountRow> = json(&address, "additional_mounts", row.get(16)?, Vec::new())?;
    Ok(Agent {
        name,
        assistant_name: row.get(8)?,
        provider: if has_config {
            provider
        } else {
            legacy_provider
        },
        model: row.get(5)?,
        effort: row.get(6)?,
        image: row.get(7)?,
        max_messages_per_prompt: row.get(9)?,
        cli_scope,
        instructions: row.get(11)?,
        skills: json(&address, "skills", row.get(12)?, Skills::All)?,
        mcp_servers: json(&address, "mcp_servers", row.get(13)?, BTreeMap::new())?,
        packages: crate::state::Packages {
            apt: json(&address, "packages_apt", row.get(14)?, Vec::new())?,
            npm: json(&address, "packages_npm", row.get(15)?, Vec::new())?,
        },
        mounts: mounts.into_iter().map(mount_of).collect(),
        resources: Resources::from_columns(row.get(17)?, row.get(18)?, row.get(19)?),
        network,
    })
}

fn mount_of(row: MountRow) -> Mount {
    let container_path = row.container_path.unwrap_or_else(|| {
        std::path::Path::new(&row.host_path)
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    Mount {
        host_path: row.host_path,
        container_path,
        readonly: row.readonly.unwrap_or(true),
    }
}

const SELECT_CHANNELS: &str = "SELECT id, channel_type, platform_id, name, is_group,
  unknown_sender_policy, managed_by FROM messaging_groups";

fn read_channels(conn: &Connection, current: &mut Current) -> Result<(), ReadError> {
    let mut statement = conn.prepare(SELECT_CHANNELS)?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let name: String = row.get(0)?;
        let address = Address::new(crate::state::Kind::Channel, name.clone());
        let policy: String = row.get(5)?;
        let channel = Channel {
            name,
            channel_type: row.get(1)?,
            platform_id: row.get(2)?,
            display_name: row.get(3)?,
            is_group: row.get(4)?,
            unknown_sender_policy: parse(&address, "unknown_sender_policy", &policy)?,
        };
        add(current, Resource::Channel(channel), row.get(6)?);
    }
    Ok(())
}

const SELECT_WIRINGS: &str = "SELECT messaging_group_id, agent_group_id, engage_mode,
  engage_pattern, sender_scope, ignored_message_policy, session_mode, priority, managed_by
FROM messaging_group_agents";

fn read_wirings(conn: &Connection, current: &mut Current) -> Result<(), ReadError> {
    let mut statement = conn.prepare(SELECT_WIRINGS)?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let channel: String = row.get(0)?;
        let agent: String = row.get(1)?;
        let address = Address::new(crate::state::Kind::Wiring, format!("{channel}/{agent}"));
        let (engage, scope, ignored, session): (String, String, String, String) =
            (row.get(2)?, row.get(4)?, row.get(5)?, row.get(6)?);
        let wiring = Wiring {
            channel,
            agent,
            engage_mode: parse(&address, "engage_mode", &engage)?,
            engage_pattern: row.get(3)?,
            sender_scope: parse(&address, "sender_scope", &scope)?,
            ignored_message_policy: parse(&address, "ignored_message_policy", &ignored)?,
            session_mode: parse(&address, "session_mode", &session)?,
            priority: row.get(7)?,
        };
        add(current, Resource::Wiring(wiring), row.get(8)?);
    }
    Ok(())
}

fn read_users(conn: &Connection, current: &mut Current) -> Result<(), ReadError> {
    let mut statement = conn.prepare("SELECT id, display_name, managed_by FROM users")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let user = User {
            id: row.get(0)?,
            display_name: row.get(1)?,
        };
        add(current, Resource::User(user), row.get(2)?);
    }
    Ok(())
}

fn read_roles(conn: &Connection, current: &mut Current) -> Result<(), ReadError> {
    let mut statement =
        conn.prepare("SELECT user_id, role, agent_group_id, managed_by FROM user_roles")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let user: String = row.get(0)?;
        let role: String = row.get(1)?;
        let agent: Option<String> = row.get(2)?;
        let key = match &agent {
            Some(agent) => format!("{user}/{role}/{agent}"),
            None => format!("{user}/{role}"),
        };
        let address = Address::new(crate::state::Kind::Role, key);
        let role = Role {
            user,
            role: parse(&address, "role", &role)?,
            agent,
        };
        add(current, Resource::Role(role), row.get(3)?);
    }
    Ok(())
}

fn read_members(conn: &Connection, current: &mut Current) -> Result<(), ReadError> {
    let mut statement =
        conn.prepare("SELECT user_id, agent_group_id, managed_by FROM agent_group_members")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let member = Member {
            user: row.get(0)?,
            agent: row.get(1)?,
        };
        add(current, Resource::Member(member), row.get(2)?);
    }
    Ok(())
}

const SELECT_DESTINATIONS: &str = "SELECT agent_group_id, local_name, target_type, target_id,
  managed_by FROM agent_destinations";

fn read_destinations(conn: &Connection, current: &mut Current) -> Result<(), ReadError> {
    let mut statement = conn.prepare(SELECT_DESTINATIONS)?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let agent: String = row.get(0)?;
        let local_name: String = row.get(1)?;
        let target_type: String = row.get(2)?;
        let target_id: String = row.get(3)?;
        let target = match target_type.as_str() {
            "agent" => DestinationTarget::Agent(target_id),
            "channel" => DestinationTarget::Channel(target_id),
            other => {
                return Err(ReadError::Value {
                    address: Address::new(
                        crate::state::Kind::Destination,
                        format!("{agent}/{local_name}"),
                    ),
                    column: "target_type",
                    value: other.to_string(),
                });
            }
        };
        let destination = Destination {
            agent,
            local_name,
            target,
        };
        add(current, Resource::Destination(destination), row.get(4)?);
    }
    Ok(())
}

fn read_specs(conn: &Connection, current: &mut Current) -> Result<(), ReadError> {
    let mut statement = conn.prepare("SELECT address, spec_json FROM managed_resources")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let address: String = row.get(0)?;
        let spec: String = row.get(1)?;
        // A spec we cannot read (older format, hand edit) only loses drift detection.
        let (Ok(address), Ok(resource)) = (
            Address::try_from(address),
            serde_json::from_str::<Resource>(&spec),
        ) else {
            continue;
        };
        current.specs.insert(address, resource);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Kind;

    #[test]
    fn runtime_rows_without_a_config_read_with_defaults_and_unmanaged() {
        let conn = crate::db::open_in_memory().unwrap();
        conn.execute_batch(
            "INSERT INTO agent_groups (id, name, folder, agent_provider, created_at)
               VALUES ('helper', 'helper', 'helper', 'claude', 'now');
             INSERT INTO messaging_groups (id, channel_type, platform_id, created_at)
               VALUES ('tg-1', 'telegram', '-100', 'now');
             INSERT INTO messaging_group_agents (id, messaging_group_id, agent_group_id, created_at)
               VALUES ('w1', 'tg-1', 'helper', 'now');
             INSERT INTO users (id, kind, created_at) VALUES ('telegram:7', 'telegram', 'now');
             INSERT INTO user_roles (user_id, role, agent_group_id, granted_at)
               VALUES ('telegram:7', 'admin', 'helper', 'now');",
        )
        .unwrap();
        let current = read(&conn).unwrap();
        assert!(current.managed.is_empty());
        let addresses: Vec<String> = current
            .state
            .resources
            .keys()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            addresses,
            [
                "agent.helper",
                "channel.tg-1",
                "wiring.tg-1/helper",
                "user.telegram:7",
                "role.telegram:7/admin/helper"
            ]
        );
        let Some(Resource::Agent(agent)) = current.state.get(&Address::new(Kind::Agent, "helper"))
        else {
            panic!("agent read");
        };
        assert_eq!(agent.provider.as_deref(), Some("claude"));
        assert_eq!(agent.skills, Skills::All);
        assert_eq!(agent.cli_scope, CliScope::Group);
        assert_eq!(
            super::agent(&conn, "helper").unwrap().as_ref(),
            Some(agent),
            "one agent reads as the whole read has it"
        );
        assert_eq!(super::agent(&conn, "nobody").unwrap(), None);
    }

    #[test]
    fn one_agent_reads_back_as_applied() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::db::open(&dir.path().join("nanoclaw.db")).unwrap();
        let desired = crate::plan::fixture::state();
        let current = read(&conn).unwrap();
        let plan = crate::plan::diff(&desired, &current);
        crate::apply::apply(
            &mut conn,
            &desired,
            &plan,
            &current,
            &crate::apply::Meta::default(),
        )
        .unwrap();
        let Some(Resource::Agent(andy)) = desired.get(&Address::new(Kind::Agent, "andy")) else {
            panic!("the fixture has andy");
        };
        assert_eq!(super::agent(&conn, "andy").unwrap().as_ref(), Some(andy));
    }

    #[test]
    fn a_bad_json_column_names_the_resource() {
        let conn = crate::db::open_in_memory().unwrap();
        conn.execute_batch(
            "INSERT INTO agent_groups (id, name, folder, created_at) VALUES ('a', 'a', 'a', 'now');
             INSERT INTO container_configs (agent_group_id, updated_at, skills)
               VALUES ('a', 'now', 'not json');",
        )
        .unwrap();
        let err = read(&conn).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`agent.a`: column `skills` holds invalid JSON"
        );
    }
}
