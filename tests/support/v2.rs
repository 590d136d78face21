//! NanoClaw v2 installs made by tests: a folder with `data/v2.db` built from v2's documented
//! schema (host.md §1; the SQL is written here, not taken from v2), `groups/<folder>/` files
//! and `data/v2-sessions/` session folders. `Shape::Legacy` is a DB from before v2's
//! `agent-destinations`, `engage-modes`, `channel-registration`, `container-configs` and
//! `cli-scope` migrations. Writes leave the WAL behind, as v2 does.

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite::config::DbConfig;

/// Which migrations the DB has seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Every migration up to `cli-scope` (v2 2.0.64).
    Current,
    /// Only `initial-v2-schema` and `chat-sdk-state`: wirings with `trigger_rules` and
    /// `response_scope`, configuration in `groups/<folder>/container.json`.
    Legacy,
}

/// A v2 install folder, removed on drop.
pub struct V2Install {
    pub root: tempfile::TempDir,
}

const INITIAL: &str = "
CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied TEXT NOT NULL);
CREATE TABLE agent_groups (id TEXT PRIMARY KEY, name TEXT NOT NULL, folder TEXT NOT NULL UNIQUE,
  agent_provider TEXT, created_at TEXT NOT NULL);
CREATE TABLE messaging_groups (id TEXT PRIMARY KEY, channel_type TEXT NOT NULL, platform_id TEXT NOT NULL,
  name TEXT, is_group INTEGER DEFAULT 0, unknown_sender_policy TEXT NOT NULL DEFAULT 'strict',
  created_at TEXT NOT NULL, UNIQUE (channel_type, platform_id));
CREATE TABLE messaging_group_agents (id TEXT PRIMARY KEY,
  messaging_group_id TEXT NOT NULL REFERENCES messaging_groups(id),
  agent_group_id TEXT NOT NULL REFERENCES agent_groups(id),
  trigger_rules TEXT, response_scope TEXT DEFAULT 'all', session_mode TEXT DEFAULT 'shared',
  priority INTEGER DEFAULT 0, created_at TEXT NOT NULL, UNIQUE (messaging_group_id, agent_group_id));
CREATE TABLE users (id TEXT PRIMARY KEY, kind TEXT NOT NULL, display_name TEXT, created_at TEXT NOT NULL);
CREATE TABLE user_roles (user_id TEXT NOT NULL REFERENCES users(id), role TEXT NOT NULL,
  agent_group_id TEXT REFERENCES agent_groups(id), granted_by TEXT REFERENCES users(id),
  granted_at TEXT NOT NULL, PRIMARY KEY (user_id, role, agent_group_id));
CREATE TABLE agent_group_members (user_id TEXT NOT NULL REFERENCES users(id),
  agent_group_id TEXT NOT NULL REFERENCES agent_groups(id), added_by TEXT REFERENCES users(id),
  added_at TEXT NOT NULL, PRIMARY KEY (user_id, agent_group_id));
CREATE TABLE user_dms (user_id TEXT NOT NULL, channel_type TEXT NOT NULL,
  messaging_group_id TEXT NOT NULL, resolved_at TEXT NOT NULL, PRIMARY KEY (user_id, channel_type));
CREATE TABLE sessions (id TEXT PRIMARY KEY, agent_group_id TEXT NOT NULL REFERENCES agent_groups(id),
  messaging_group_id TEXT REFERENCES messaging_groups(id), thread_id TEXT, agent_provider TEXT,
  status TEXT DEFAULT 'active', container_status TEXT DEFAULT 'stopped', last_active TEXT,
  created_at TEXT NOT NULL);
CREATE TABLE pending_questions (question_id TEXT PRIMARY KEY, session_id TEXT NOT NULL,
  message_out_id TEXT NOT NULL, platform_id TEXT, channel_type TEXT, thread_id TEXT,
  title TEXT NOT NULL, options_json TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE chat_sdk_kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at INTEGER);
INSERT INTO schema_version VALUES (1, 'initial-v2-schema', '2026-01-01T00:00:00.000Z');
INSERT INTO schema_version VALUES (2, 'chat-sdk-state', '2026-01-01T00:00:00.000Z');
";

/// What the later migrations add (host.md §1.1), for `Shape::Current`.
const LATER: &str = "
CREATE TABLE agent_destinations (agent_group_id TEXT NOT NULL, local_name TEXT NOT NULL,
  target_type TEXT NOT NULL, target_id TEXT NOT NULL, created_at TEXT NOT NULL,
  PRIMARY KEY (agent_group_id, local_name));
ALTER TABLE messaging_group_agents ADD COLUMN engage_mode TEXT;
ALTER TABLE messaging_group_agents ADD COLUMN engage_pattern TEXT;
ALTER TABLE messaging_group_agents ADD COLUMN sender_scope TEXT;
ALTER TABLE messaging_group_agents ADD COLUMN ignored_message_policy TEXT;
ALTER TABLE messaging_group_agents DROP COLUMN trigger_rules;
ALTER TABLE messaging_group_agents DROP COLUMN response_scope;
ALTER TABLE messaging_groups ADD COLUMN denied_at TEXT;
CREATE TABLE pending_approvals (approval_id TEXT PRIMARY KEY, session_id TEXT, request_id TEXT NOT NULL,
  action TEXT NOT NULL, payload TEXT NOT NULL, created_at TEXT NOT NULL, agent_group_id TEXT,
  channel_type TEXT, platform_id TEXT, platform_message_id TEXT, expires_at TEXT,
  status TEXT NOT NULL DEFAULT 'pending', title TEXT NOT NULL DEFAULT '', options_json TEXT NOT NULL DEFAULT '[]');
CREATE TABLE unregistered_senders (channel_type TEXT NOT NULL, platform_id TEXT NOT NULL, user_id TEXT,
  sender_name TEXT, reason TEXT NOT NULL, messaging_group_id TEXT, agent_group_id TEXT,
  message_count INTEGER NOT NULL DEFAULT 1, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
  PRIMARY KEY (channel_type, platform_id));
CREATE TABLE container_configs (agent_group_id TEXT PRIMARY KEY REFERENCES agent_groups(id) ON DELETE CASCADE,
  provider TEXT, model TEXT, effort TEXT, image_tag TEXT, assistant_name TEXT,
  max_messages_per_prompt INTEGER, skills TEXT NOT NULL DEFAULT '\"all\"',
  mcp_servers TEXT NOT NULL DEFAULT '{}', packages_apt TEXT NOT NULL DEFAULT '[]',
  packages_npm TEXT NOT NULL DEFAULT '[]', additional_mounts TEXT NOT NULL DEFAULT '[]',
  updated_at TEXT NOT NULL);
ALTER TABLE container_configs ADD COLUMN cli_scope TEXT NOT NULL DEFAULT 'group';
";

/// v2's session DB schemas as an older v2 wrote them: `messages_in` without the lazily added
/// `series_id`, `trigger`, `source_session_id` and `on_wake` (host.md §2.4), `delivered`
/// without `platform_message_id` and `status`.
pub const OLD_INBOUND: &str = "
CREATE TABLE messages_in (id TEXT PRIMARY KEY, seq INTEGER UNIQUE, kind TEXT NOT NULL,
  timestamp TEXT NOT NULL, status TEXT DEFAULT 'pending', process_after TEXT, recurrence TEXT,
  tries INTEGER DEFAULT 0, platform_id TEXT, channel_type TEXT, thread_id TEXT, content TEXT NOT NULL);
CREATE TABLE delivered (message_out_id TEXT PRIMARY KEY, delivered_at TEXT NOT NULL);
";
pub const OUTBOUND: &str = "
CREATE TABLE messages_out (id TEXT PRIMARY KEY, seq INTEGER UNIQUE, in_reply_to TEXT,
  timestamp TEXT NOT NULL, deliver_after TEXT, recurrence TEXT, kind TEXT NOT NULL,
  platform_id TEXT, channel_type TEXT, thread_id TEXT, content TEXT NOT NULL);
CREATE TABLE processing_ack (message_id TEXT PRIMARY KEY, status TEXT NOT NULL, status_changed TEXT NOT NULL);
CREATE TABLE session_state (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL);
";

impl V2Install {
    pub fn new(shape: Shape) -> V2Install {
        let root = tempfile::Builder::new()
            .prefix("nanoclaw-v2-")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir_all(root.path().join("data")).expect("data dir");
        let install = V2Install { root };
        let conn = install.open();
        conn.execute_batch(INITIAL).expect("initial schema");
        if shape == Shape::Current {
            conn.execute_batch(LATER).expect("later migrations");
        }
        install
    }

    pub fn path(&self) -> &Path {
        self.root.path()
    }

    pub fn db(&self) -> PathBuf {
        self.path().join("data/v2.db")
    }

    /// A connection in WAL mode that leaves its WAL behind when closed (no checkpoint on close).
    #[allow(clippy::disallowed_methods)] // builds v2's DB, which no nanoclaw opener makes
    pub fn open(&self) -> Connection {
        let conn = Connection::open(self.db()).expect("open v2.db");
        conn.pragma_update(None, "journal_mode", "WAL")
            .expect("wal");
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .expect("no autocheckpoint");
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .expect("no checkpoint on close");
        conn
    }

    /// Runs SQL on `data/v2.db`; the rows stay in `v2.db-wal`. The `-shm` index SQLite keeps
    /// beside it is removed once the connection is closed (it is rebuilt from the WAL by any
    /// reader), so a test can tell whether the import created one in v2's folder.
    pub fn sql(&self, sql: &str) {
        let conn = self.open();
        conn.execute_batch(sql).expect("v2 sql");
        drop(conn);
        let shm = self.path().join("data/v2.db-shm");
        if shm.exists() {
            std::fs::remove_file(shm).expect("remove v2.db-shm");
        }
        assert!(
            self.path().join("data/v2.db-wal").exists(),
            "the fixture leaves the WAL behind, as v2 does"
        );
    }

    /// Writes `groups/<folder>/<relative>`.
    pub fn group_file(&self, folder: &str, relative: &str, text: &str) -> PathBuf {
        let path = self.path().join("groups").join(folder).join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write group file");
        path
    }

    /// `data/v2-sessions/<agent group>/<session>/`.
    pub fn session_dir(&self, agent_group: &str, session: &str) -> PathBuf {
        self.path()
            .join("data/v2-sessions")
            .join(agent_group)
            .join(session)
    }

    /// A session DB file (journal mode DELETE, as v2's) built with `sql`.
    #[allow(clippy::disallowed_methods)] // builds v2's session DBs
    pub fn session_db(&self, agent_group: &str, session: &str, file: &str, sql: &str) {
        let dir = self.session_dir(agent_group, session);
        std::fs::create_dir_all(&dir).expect("session dir");
        let conn = Connection::open(dir.join(file)).expect("open session db");
        conn.pragma_update(None, "journal_mode", "DELETE")
            .expect("delete journal");
        conn.execute_batch(sql).expect("session sql");
    }

    /// Every file under the install with its bytes (to prove an import wrote nothing).
    pub fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            let mut entries: Vec<_> = std::fs::read_dir(dir)
                .expect("read dir")
                .map(|entry| entry.expect("entry").path())
                .collect();
            entries.sort();
            for path in entries {
                let meta = std::fs::symlink_metadata(&path).expect("stat");
                if meta.is_dir() {
                    walk(&path, out);
                } else {
                    let bytes = if meta.is_file() {
                        std::fs::read(&path).expect("read")
                    } else {
                        Vec::new()
                    };
                    out.push((path, bytes));
                }
            }
        }
        let mut out = Vec::new();
        walk(self.path(), &mut out);
        out
    }
}
