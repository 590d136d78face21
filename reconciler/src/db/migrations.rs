//! The central DB schema as an ordered list of named migrations
//! (docs/runtime.md#central-db-tables-and-migrations).
//!
//! A migration is pending iff its name is absent from `schema_version`. Never edit or reorder an
//! applied migration: add a new one at the end. The schema follows v2's tables after all of its
//! migrations (docs/runtime.md#central-db-tables-and-migrations), with the documented NOT NULL
//! defaults for the wiring columns (host quirk 15 in docs/runtime.md#decisions-on-v2s-quirks) and
//! CHECK constraints on every enum, plus nanoclaw's own bookkeeping: `managed_by` on manifest-owned
//! rows, `managed_resources` (the last-applied spec of every manifest resource, for drift),
//! `reconcile_state` (the generation), `apply_history` and `pending_effects` (what the runtime
//! still has to do after an apply).

/// One schema step: a unique name and the SQL it runs inside its own transaction.
pub struct Migration {
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in the order they run.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "001-initial-schema",
        sql: INITIAL_SCHEMA,
    },
    Migration {
        name: "002-container-resources",
        sql: CONTAINER_RESOURCES,
    },
    Migration {
        name: "003-delivered-outbound",
        sql: DELIVERED_OUTBOUND,
    },
    Migration {
        name: "004-agent-network",
        sql: AGENT_NETWORK,
    },
    Migration {
        name: "005-container-failures",
        sql: CONTAINER_FAILURES,
    },
    Migration {
        name: "006-agent-images-and-watch",
        sql: AGENT_IMAGES_AND_WATCH,
    },
    Migration {
        name: "007-executor",
        sql: EXECUTOR,
    },
    Migration {
        name: "008-approvals",
        sql: APPROVALS,
    },
    Migration {
        name: "009-agent-image-builds",
        sql: AGENT_IMAGE_BUILDS,
    },
    Migration {
        name: "010-self-modify-approvals",
        sql: SELF_MODIFY_APPROVALS,
    },
    Migration {
        name: "011-question-answers",
        sql: QUESTION_ANSWERS,
    },
];

/// The per-agent image build the daemon runs now (`db::agent_images`): its tag, since when and
/// its last output line, for `status`; cleared when the build ends.
const AGENT_IMAGE_BUILDS: &str = r#"
ALTER TABLE agent_images ADD COLUMN building_tag TEXT;
ALTER TABLE agent_images ADD COLUMN building_since TEXT;
ALTER TABLE agent_images ADD COLUMN building_line TEXT;
"#;

/// `install_packages` and `add_mcp_server` ask on cards (`approvals`, kinds of the same names)
/// instead of waiting in `pending_approvals`, which nothing ever decided: a request left there
/// by an earlier build is marked expired (the agent may ask again). The table stays, as in v2's
/// schema.
const SELF_MODIFY_APPROVALS: &str = "
UPDATE pending_approvals SET status = 'expired'
  WHERE status = 'pending' AND action IN ('install_packages', 'add_mcp_server');
";

/// Questions agents ask (`db::questions`): v2's `pending_questions` keeps a row after its
/// answer or expiry (so a second tap is told "already answered"), with when it was asked, when
/// it expires and who answered what. Times are unix milliseconds.
const QUESTION_ANSWERS: &str = r#"
ALTER TABLE pending_questions ADD COLUMN status TEXT NOT NULL DEFAULT 'pending'
  CHECK (status IN ('pending', 'answered', 'expired'));
ALTER TABLE pending_questions ADD COLUMN asked_at INTEGER;
ALTER TABLE pending_questions ADD COLUMN expires_at INTEGER;
ALTER TABLE pending_questions ADD COLUMN answer TEXT;
ALTER TABLE pending_questions ADD COLUMN answered_by TEXT;
ALTER TABLE pending_questions ADD COLUMN answered_at INTEGER;
"#;

/// The executor's rows (`db::executor`): the containers the daemon runs and whether each runs
/// the current configuration (written by the daemon, read by `status` and `apply`), restart
/// requests (`nanoclaw restart`, taken by the daemon), restarts deferred by
/// `apply --no-restart` until `nanoclaw restart`, and the changes the watcher holds.
const EXECUTOR: &str = r#"
CREATE TABLE running_containers (
  session_id TEXT PRIMARY KEY,
  agent_group_id TEXT NOT NULL,
  config_hash TEXT NOT NULL,
  generation INTEGER,
  started_at TEXT NOT NULL,
  verdict TEXT NOT NULL,
  reason TEXT,
  seen_at TEXT NOT NULL
);
CREATE TABLE restart_requests (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  agent_group_id TEXT NOT NULL,
  session_id TEXT,
  rebuild INTEGER NOT NULL DEFAULT 0,
  message TEXT,
  requested_at TEXT NOT NULL,
  done_at TEXT,
  outcome TEXT
);
CREATE TABLE deferred_restarts (
  agent_group_id TEXT PRIMARY KEY,
  generation INTEGER NOT NULL,
  since TEXT NOT NULL
);
ALTER TABLE watch_state ADD COLUMN held TEXT;
"#;

/// Approvals (`db::approvals`): one row per card sent to an approver, kept after the decision
/// as its audit; at most one pending row per `(kind, subject)`. Pairing codes (`db::pairing`),
/// stored as their SHA-256 only. Times are unix milliseconds.
const APPROVALS: &str = r#"
CREATE TABLE approvals (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  subject TEXT NOT NULL,
  agent_group_id TEXT,
  payload TEXT NOT NULL,
  approver_user_id TEXT NOT NULL,
  card_channel_type TEXT NOT NULL,
  card_platform_id TEXT NOT NULL,
  card_json TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'decided', 'expired')),
  decision TEXT,
  decided_by TEXT,
  decided_at INTEGER,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX idx_approvals_pending_subject ON approvals (kind, subject)
  WHERE status = 'pending';
CREATE INDEX idx_approvals_expiry ON approvals (status, expires_at);
CREATE TABLE pairing_codes (
  code_hash TEXT PRIMARY KEY,
  channel_type TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at INTEGER,
  used_by TEXT
);
"#;

/// The per-agent image each agent runs and its last failed build (`db::agent_images`), and
/// the manifest watcher's last outcome (`db::watch`): what `status` reads.
const AGENT_IMAGES_AND_WATCH: &str = r#"
CREATE TABLE agent_images (
  agent_group_id TEXT PRIMARY KEY,
  tag TEXT,
  built_at TEXT,
  error TEXT,
  failed_tag TEXT,
  failed_at TEXT
);
CREATE TABLE watch_state (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  dir TEXT NOT NULL,
  error TEXT,
  error_at TEXT,
  applied_generation INTEGER,
  applied_at TEXT
);
"#;

/// An agent's container network (`network` in its manifest, `state::Network`); every agent
/// of an older DB keeps the default, `full`.
const AGENT_NETWORK: &str = r#"
ALTER TABLE container_configs ADD COLUMN network TEXT NOT NULL DEFAULT 'full'
  CHECK (network IN ('full', 'none'));
"#;

/// An agent's container limits (`resources` in its manifest); NULL = the default
/// (`crate::resources`). Units are in the names: bytes, thousandths of a CPU, tasks.
const CONTAINER_RESOURCES: &str = r#"
ALTER TABLE container_configs ADD COLUMN memory_bytes INTEGER
  CHECK (memory_bytes IS NULL OR memory_bytes > 0);
ALTER TABLE container_configs ADD COLUMN cpu_millis INTEGER
  CHECK (cpu_millis IS NULL OR cpu_millis > 0);
ALTER TABLE container_configs ADD COLUMN pids_limit INTEGER
  CHECK (pids_limit IS NULL OR pids_limit > 0);
"#;

/// The host's own record of what it delivered from each session's `outbound.db` (issue 8
/// point 12): `inbound.db`'s `delivered` table is a projection the host rebuilds from it, so a
/// lost or recreated `inbound.db` never re-sends a reply.
const DELIVERED_OUTBOUND: &str = "
CREATE TABLE delivered_outbound (
  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  message_out_id TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('delivered', 'failed')),
  platform_message_id TEXT,
  delivered_at TEXT NOT NULL,
  PRIMARY KEY (session_id, message_out_id)
) WITHOUT ROWID;
";

/// Agent containers that failed: exited with an error nobody asked for (`exit_code` set) or
/// could not be started (`exit_code` NULL), with the last lines they wrote or the reason
/// (`nanoclaw history --failures`). Kept bounded by `db::failures::record`.
const CONTAINER_FAILURES: &str = r#"
CREATE TABLE container_failures (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  session_id TEXT NOT NULL,
  agent_group_id TEXT NOT NULL,
  exit_code INTEGER,
  failed_at TEXT NOT NULL,
  tail TEXT NOT NULL
);
CREATE INDEX idx_container_failures_failed_at ON container_failures (failed_at);
"#;

const INITIAL_SCHEMA: &str = r#"
CREATE TABLE agent_groups (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  folder TEXT NOT NULL UNIQUE,
  agent_provider TEXT,
  created_at TEXT NOT NULL,
  managed_by TEXT CHECK (managed_by IN ('manifest'))
);

CREATE TABLE messaging_groups (
  id TEXT PRIMARY KEY,
  channel_type TEXT NOT NULL,
  platform_id TEXT NOT NULL,
  name TEXT,
  is_group INTEGER NOT NULL DEFAULT 0 CHECK (is_group IN (0, 1)),
  unknown_sender_policy TEXT NOT NULL DEFAULT 'strict'
    CHECK (unknown_sender_policy IN ('strict', 'request_approval', 'public')),
  created_at TEXT NOT NULL,
  denied_at TEXT,
  managed_by TEXT CHECK (managed_by IN ('manifest')),
  UNIQUE (channel_type, platform_id)
);

CREATE TABLE messaging_group_agents (
  id TEXT PRIMARY KEY,
  messaging_group_id TEXT NOT NULL REFERENCES messaging_groups(id),
  agent_group_id TEXT NOT NULL REFERENCES agent_groups(id),
  session_mode TEXT NOT NULL DEFAULT 'shared'
    CHECK (session_mode IN ('shared', 'per-thread', 'agent-shared')),
  priority INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  engage_mode TEXT NOT NULL DEFAULT 'mention'
    CHECK (engage_mode IN ('pattern', 'mention', 'mention-sticky')),
  engage_pattern TEXT,
  sender_scope TEXT NOT NULL DEFAULT 'all' CHECK (sender_scope IN ('all', 'known')),
  ignored_message_policy TEXT NOT NULL DEFAULT 'drop'
    CHECK (ignored_message_policy IN ('drop', 'accumulate')),
  managed_by TEXT CHECK (managed_by IN ('manifest')),
  UNIQUE (messaging_group_id, agent_group_id)
);

CREATE TABLE users (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  display_name TEXT,
  created_at TEXT NOT NULL,
  managed_by TEXT CHECK (managed_by IN ('manifest'))
);

CREATE TABLE user_roles (
  user_id TEXT NOT NULL REFERENCES users(id),
  role TEXT NOT NULL CHECK (role IN ('owner', 'admin')),
  agent_group_id TEXT REFERENCES agent_groups(id),
  granted_by TEXT REFERENCES users(id),
  granted_at TEXT NOT NULL,
  managed_by TEXT CHECK (managed_by IN ('manifest')),
  CHECK (role = 'admin' OR agent_group_id IS NULL),
  PRIMARY KEY (user_id, role, agent_group_id)
);
CREATE INDEX idx_user_roles_group ON user_roles (agent_group_id, role);
-- NULLs are distinct in a PRIMARY KEY, so global grants get their own uniqueness.
CREATE UNIQUE INDEX idx_user_roles_global ON user_roles (user_id, role) WHERE agent_group_id IS NULL;

CREATE TABLE agent_group_members (
  user_id TEXT NOT NULL REFERENCES users(id),
  agent_group_id TEXT NOT NULL REFERENCES agent_groups(id),
  added_by TEXT REFERENCES users(id),
  added_at TEXT NOT NULL,
  managed_by TEXT CHECK (managed_by IN ('manifest')),
  PRIMARY KEY (user_id, agent_group_id)
);

CREATE TABLE user_dms (
  user_id TEXT NOT NULL REFERENCES users(id),
  channel_type TEXT NOT NULL,
  messaging_group_id TEXT NOT NULL REFERENCES messaging_groups(id),
  resolved_at TEXT NOT NULL,
  PRIMARY KEY (user_id, channel_type)
);

CREATE TABLE sessions (
  id TEXT PRIMARY KEY,
  agent_group_id TEXT NOT NULL REFERENCES agent_groups(id),
  messaging_group_id TEXT REFERENCES messaging_groups(id),
  thread_id TEXT,
  agent_provider TEXT,
  status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed')),
  container_status TEXT NOT NULL DEFAULT 'stopped'
    CHECK (container_status IN ('running', 'idle', 'stopped')),
  last_active TEXT,
  created_at TEXT NOT NULL
);
CREATE INDEX idx_sessions_agent_group ON sessions (agent_group_id);
CREATE INDEX idx_sessions_lookup ON sessions (messaging_group_id, thread_id);

CREATE TABLE pending_questions (
  question_id TEXT PRIMARY KEY,
  session_id TEXT NOT NULL REFERENCES sessions(id),
  message_out_id TEXT NOT NULL,
  platform_id TEXT,
  channel_type TEXT,
  thread_id TEXT,
  title TEXT NOT NULL,
  options_json TEXT NOT NULL,
  created_at TEXT NOT NULL
);

CREATE TABLE pending_approvals (
  approval_id TEXT PRIMARY KEY,
  session_id TEXT REFERENCES sessions(id),
  request_id TEXT NOT NULL,
  action TEXT NOT NULL,
  payload TEXT NOT NULL,
  created_at TEXT NOT NULL,
  agent_group_id TEXT REFERENCES agent_groups(id),
  channel_type TEXT,
  platform_id TEXT,
  platform_message_id TEXT,
  expires_at TEXT,
  status TEXT NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
  title TEXT NOT NULL DEFAULT '',
  options_json TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX idx_pending_approvals_action ON pending_approvals (action, status);

CREATE TABLE pending_sender_approvals (
  id TEXT PRIMARY KEY,
  messaging_group_id TEXT NOT NULL REFERENCES messaging_groups(id),
  agent_group_id TEXT NOT NULL REFERENCES agent_groups(id),
  sender_identity TEXT NOT NULL,
  sender_name TEXT,
  original_message TEXT NOT NULL,
  approver_user_id TEXT NOT NULL,
  created_at TEXT NOT NULL,
  title TEXT NOT NULL DEFAULT '',
  options_json TEXT NOT NULL DEFAULT '[]',
  UNIQUE (messaging_group_id, sender_identity)
);
CREATE INDEX idx_pending_sender_approvals_mg ON pending_sender_approvals (messaging_group_id);

CREATE TABLE pending_channel_approvals (
  messaging_group_id TEXT PRIMARY KEY REFERENCES messaging_groups(id),
  agent_group_id TEXT NOT NULL REFERENCES agent_groups(id),
  original_message TEXT NOT NULL,
  approver_user_id TEXT NOT NULL,
  created_at TEXT NOT NULL,
  title TEXT NOT NULL DEFAULT '',
  options_json TEXT NOT NULL DEFAULT '[]'
);

CREATE TABLE agent_destinations (
  agent_group_id TEXT NOT NULL REFERENCES agent_groups(id),
  local_name TEXT NOT NULL,
  target_type TEXT NOT NULL CHECK (target_type IN ('channel', 'agent')),
  target_id TEXT NOT NULL,
  created_at TEXT NOT NULL,
  managed_by TEXT CHECK (managed_by IN ('manifest')),
  PRIMARY KEY (agent_group_id, local_name)
);
CREATE INDEX idx_agent_destinations_target ON agent_destinations (target_type, target_id);

CREATE TABLE unregistered_senders (
  channel_type TEXT NOT NULL,
  platform_id TEXT NOT NULL,
  user_id TEXT,
  sender_name TEXT,
  reason TEXT NOT NULL,
  messaging_group_id TEXT,
  agent_group_id TEXT,
  message_count INTEGER NOT NULL DEFAULT 1,
  first_seen TEXT NOT NULL,
  last_seen TEXT NOT NULL,
  PRIMARY KEY (channel_type, platform_id)
);
CREATE INDEX idx_unregistered_senders_last_seen ON unregistered_senders (last_seen);

CREATE TABLE container_configs (
  agent_group_id TEXT PRIMARY KEY REFERENCES agent_groups(id) ON DELETE CASCADE,
  provider TEXT,
  model TEXT,
  effort TEXT,
  image_tag TEXT,
  assistant_name TEXT,
  max_messages_per_prompt INTEGER CHECK (max_messages_per_prompt IS NULL OR max_messages_per_prompt > 0),
  skills TEXT NOT NULL DEFAULT '"all"',
  mcp_servers TEXT NOT NULL DEFAULT '{}',
  packages_apt TEXT NOT NULL DEFAULT '[]',
  packages_npm TEXT NOT NULL DEFAULT '[]',
  additional_mounts TEXT NOT NULL DEFAULT '[]',
  updated_at TEXT NOT NULL,
  cli_scope TEXT NOT NULL DEFAULT 'group' CHECK (cli_scope IN ('disabled', 'group', 'global')),
  instructions TEXT
);

CREATE TABLE chat_sdk_kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at INTEGER);
CREATE TABLE chat_sdk_subscriptions (
  thread_id TEXT PRIMARY KEY,
  subscribed_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE chat_sdk_locks (thread_id TEXT PRIMARY KEY, token TEXT NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE chat_sdk_lists (
  key TEXT NOT NULL,
  idx INTEGER NOT NULL,
  value TEXT NOT NULL,
  expires_at INTEGER,
  PRIMARY KEY (key, idx)
);

CREATE TABLE reconcile_state (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  generation INTEGER NOT NULL DEFAULT 0
);
INSERT INTO reconcile_state (id, generation) VALUES (1, 0);

CREATE TABLE managed_resources (
  address TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  spec_json TEXT NOT NULL,
  generation INTEGER NOT NULL
);

CREATE TABLE apply_history (
  generation INTEGER PRIMARY KEY,
  applied_at TEXT NOT NULL,
  manifest_digest TEXT NOT NULL,
  git_commit TEXT,
  summary TEXT NOT NULL,
  plan_json TEXT NOT NULL
);

CREATE TABLE pending_effects (
  agent_group_id TEXT PRIMARY KEY,
  effect TEXT NOT NULL CHECK (effect IN ('restart', 'recreate', 'rebuild')),
  reasons TEXT NOT NULL,
  generation INTEGER NOT NULL
);
"#;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::state::effect::Effect;
    use crate::state::{
        CliScope, EngageMode, IgnoredMessagePolicy, Network, RoleKind, SenderScope, SessionMode,
        TextEnum, UnknownSenderPolicy,
    };

    /// `(table, column)` → the values its `CHECK (column IN (…))` allows, read from the schema
    /// SQLite holds after every migration (an `ALTER TABLE … ADD COLUMN` is part of it).
    fn check_lists() -> BTreeMap<(String, String), Vec<String>> {
        let conn = crate::db::open_in_memory().unwrap();
        let mut statement = conn
            .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL")
            .unwrap();
        let tables: Vec<(String, String)> = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let check = regex::Regex::new(r"CHECK \((\w+) IN \(([^)]*)\)\)").unwrap();
        let mut lists = BTreeMap::new();
        for (table, sql) in tables {
            for found in check.captures_iter(&sql) {
                let values = found[2]
                    .split(',')
                    .map(|value| value.trim().trim_matches('\'').to_string())
                    .collect();
                lists.insert((table.clone(), found[1].to_string()), values);
            }
        }
        lists
    }

    fn names<T: TextEnum>() -> Vec<String> {
        T::NAMES.iter().map(|name| name.to_string()).collect()
    }

    /// The migrations' CHECK lists are SQL text written once and never edited; the enums are
    /// the declarations everything else derives from. This keeps the two equal.
    #[test]
    fn check_lists_equal_the_enums_values() {
        let lists = check_lists();
        let expected: Vec<(&str, &str, Vec<String>)> = vec![
            ("container_configs", "cli_scope", names::<CliScope>()),
            ("container_configs", "network", names::<Network>()),
            (
                "messaging_groups",
                "unknown_sender_policy",
                names::<UnknownSenderPolicy>(),
            ),
            (
                "messaging_group_agents",
                "engage_mode",
                names::<EngageMode>(),
            ),
            (
                "messaging_group_agents",
                "sender_scope",
                names::<SenderScope>(),
            ),
            (
                "messaging_group_agents",
                "ignored_message_policy",
                names::<IgnoredMessagePolicy>(),
            ),
            (
                "messaging_group_agents",
                "session_mode",
                names::<SessionMode>(),
            ),
            ("user_roles", "role", names::<RoleKind>()),
            // `none` needs nothing done after an apply, so it is never pending.
            (
                "pending_effects",
                "effect",
                Effect::ALL
                    .iter()
                    .filter(|effect| **effect != Effect::None)
                    .map(|effect| effect.as_str().to_string())
                    .collect(),
            ),
        ];
        for (table, column, values) in expected {
            let key = (table.to_string(), column.to_string());
            assert_eq!(lists.get(&key), Some(&values), "{table}.{column}");
        }
    }
}
