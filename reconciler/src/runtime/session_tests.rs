//! Tests of session preparation: the seed rule, the previous layout's migration, planted links
//! (issue 7), and the default reply address (ported from v2's `writeSessionRouting` tests).

use std::path::PathBuf;

use serde_json::json;

use super::*;

#[test]
fn seed_is_rewritten_only_while_the_agent_has_not_edited_it() {
    let dir = tempfile::tempdir().unwrap();
    let group_path = dir.path().join("g");
    std::fs::create_dir(&group_path).unwrap();
    let group = Dir::open(&group_path).unwrap();
    let state = Dir::open(dir.path()).unwrap();
    init_group(&group, &state, None, "first\n").unwrap();
    assert_eq!(
        std::fs::read_to_string(group_path.join("CLAUDE.local.md")).unwrap(),
        "first\n"
    );
    init_group(&group, &state, None, "second\n").unwrap();
    assert_eq!(
        std::fs::read_to_string(group_path.join("CLAUDE.local.md")).unwrap(),
        "second\n"
    );
    std::fs::write(group_path.join("CLAUDE.local.md"), "my own notes\n").unwrap();
    init_group(&group, &state, None, "third\n").unwrap();
    assert_eq!(
        std::fs::read_to_string(group_path.join("CLAUDE.local.md")).unwrap(),
        "my own notes\n"
    );
    assert!(
        !group_path.join(".claude-local.seed").exists(),
        "the remembered seed is kept host-side, not in the agent's folder"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join(SEED_FILE)).unwrap(),
        "second\n"
    );
}

// ---- issue 7: planted links never redirect a host write ----

/// An install with agent `ag-1` (instructions, one MCP server with a fragment, one extra mount)
/// and one session; a file outside the data dir that nothing may change.
struct Attack {
    root: tempfile::TempDir,
    paths: Paths,
    conn: Connection,
    session: Session,
    outside: PathBuf,
}

const SECRET: &str = "outside the data dir\n";

fn attack() -> Attack {
    let root = tempfile::tempdir().unwrap();
    let paths = Paths::new(root.path().join("data"));
    paths.ensure().unwrap();
    let conn = crate::db::open(&paths.db()).unwrap();
    let notes = root.path().join("notes");
    std::fs::create_dir(&notes).unwrap();
    conn.execute(
        "INSERT INTO agent_groups (id, name, folder, created_at) VALUES ('ag-1', 'Agent', 'ag-1', 't');",
        [],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO container_configs (agent_group_id, updated_at, instructions, mcp_servers, additional_mounts)
         VALUES ('ag-1', 't', 'be kind', ?1, ?2)",
        [
            json!({"notes": {"command": "notes", "instructions": "use notes"}}).to_string(),
            json!([{"hostPath": notes.display().to_string()}]).to_string(),
        ],
    )
    .unwrap();
    let session = crate::db::sessions::create(&conn, "ag-1", None, None).unwrap();
    let outside = root.path().join("outside.txt");
    std::fs::write(&outside, SECRET).unwrap();
    Attack {
        root,
        paths,
        conn,
        session,
        outside,
    }
}

#[derive(Clone, Copy, Debug)]
enum Plant {
    Symlink,
    HardLink,
    Fifo,
}

impl Attack {
    fn plant(&self, at: &std::path::Path, plant: Plant) {
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(at);
        match plant {
            Plant::Symlink => std::os::unix::fs::symlink(&self.outside, at).unwrap(),
            Plant::HardLink => std::fs::hard_link(&self.outside, at).unwrap(),
            Plant::Fifo => {
                let status = std::process::Command::new("mkfifo")
                    .arg(at)
                    .status()
                    .unwrap();
                assert!(status.success());
            }
        }
    }

    /// Every name the host writes, in the agent's folder, the session folder (which the
    /// previous layout let the container write) and the agent's host-side folder, plus the
    /// predictable temp names the previous version used.
    fn targets(&self) -> Vec<PathBuf> {
        let group = self.paths.group("ag-1");
        let session = self.paths.session("ag-1", &self.session.id);
        let state = self.paths.agent_state("ag-1");
        let mut targets = vec![
            group.join("CLAUDE.local.md"),
            group.join("container.json"),
            group.join("CLAUDE.md"),
            group.join(".claude-local.seed"),
            group.join(".claude-fragments/mcp-notes.md"),
            session.join("container.json"),
            session.join("CLAUDE.md"),
            session.join(".claude-fragments/mcp-notes.md"),
            session.join("inbound.db"),
            session.join("inbound.db-journal"),
            session.join("outbound.db"),
            session.join(".heartbeat"),
            session.join("outbound/.heartbeat"),
            state.join(SEED_FILE),
        ];
        // `write_atomic` named its temp files `<stem>.nanoclaw-tmp-<pid>-<n>` next to the target.
        let pid = std::process::id();
        for dir in [&group, &session, &session.join(".claude-fragments"), &state] {
            for stem in [
                "container",
                "CLAUDE",
                "CLAUDE.local",
                ".claude-local",
                "mcp-notes",
                "claude-local",
            ] {
                for n in 0..8 {
                    targets.push(dir.join(format!("{stem}.nanoclaw-tmp-{pid}-{n}")));
                }
            }
        }
        targets
    }

    #[track_caller]
    fn assert_outside_untouched(&self, plant: Plant) {
        assert_eq!(
            std::fs::read_to_string(&self.outside).unwrap(),
            SECRET,
            "{plant:?}: the file outside the data dir was written"
        );
        let outside: Vec<_> = std::fs::read_dir(self.root.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let mut outside = outside;
        outside.sort();
        assert_eq!(
            outside,
            ["data", "notes", "outside.txt"],
            "{plant:?}: nothing new outside"
        );
    }
}

#[test]
fn issue_7_planted_links_at_every_final_and_temp_name_never_redirect_a_write() {
    for plant in [Plant::Symlink, Plant::HardLink, Plant::Fifo] {
        let world = attack();
        for target in world.targets() {
            world.plant(&target, plant);
        }
        let prepared = prepare(
            &world.conn,
            &world.paths,
            &world.session,
            &AgentImages::single("image:latest"),
            &[],
        )
        .unwrap();
        world.assert_outside_untouched(plant);
        // The host's files are its own regular files now; the agent's CLAUDE.local.md is left
        // as the agent made it (a link or FIFO there is the agent's business, never written).
        let session = prepared.session_dir.clone();
        for own in [
            "container.json",
            "CLAUDE.md",
            ".claude-fragments/mcp-notes.md",
            "inbound.db",
        ] {
            let meta = std::fs::symlink_metadata(session.join(own)).unwrap();
            assert!(meta.is_file(), "{plant:?}: {own}");
            assert_eq!(
                std::os::unix::fs::MetadataExt::nlink(&meta),
                1,
                "{plant:?}: {own} is not a link to anything"
            );
        }
        let local = std::fs::symlink_metadata(prepared.group_dir.join("CLAUDE.local.md")).unwrap();
        let kept = match plant {
            Plant::Symlink => local.file_type().is_symlink(),
            // Its content equals the planted old seed, so it counts as unedited and is
            // re-seeded: by a rename that replaces the link.
            Plant::HardLink => {
                std::os::unix::fs::MetadataExt::nlink(&local) == 1
                    && std::fs::read_to_string(prepared.group_dir.join("CLAUDE.local.md")).unwrap()
                        == "be kind\n"
            }
            Plant::Fifo => std::os::unix::fs::FileTypeExt::is_fifo(&local.file_type()),
        };
        assert!(
            kept,
            "{plant:?}: the agent's CLAUDE.local.md is left alone or replaced"
        );
        // A second prepare (the next wake) is just as harmless.
        prepare(
            &world.conn,
            &world.paths,
            &world.session,
            &AgentImages::single("image:latest"),
            &[],
        )
        .unwrap();
        world.assert_outside_untouched(plant);
    }
}

#[test]
fn the_previous_layouts_composed_files_leave_the_agents_folder_once() {
    let world = attack();
    let group = world.paths.group("ag-1");
    std::fs::create_dir_all(group.join(".claude-fragments")).unwrap();
    std::fs::write(group.join("container.json"), "{}").unwrap();
    std::fs::write(group.join("CLAUDE.md"), "@./old\n").unwrap();
    std::fs::write(group.join(".claude-fragments/mcp-old.md"), "old").unwrap();
    std::fs::write(group.join(".claude-local.seed"), "old seed\n").unwrap();
    std::fs::write(group.join("CLAUDE.local.md"), "old seed\n").unwrap();
    std::fs::write(group.join("work.txt"), "the agent's own").unwrap();
    let prepared = prepare(
        &world.conn,
        &world.paths,
        &world.session,
        &AgentImages::single("image:latest"),
        &[],
    )
    .unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&group)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["CLAUDE.local.md", "work.txt"]);
    assert_eq!(
        std::fs::read_to_string(group.join("CLAUDE.local.md")).unwrap(),
        "be kind\n",
        "the old seed was adopted, so the unedited file is re-seeded"
    );
    let session = &prepared.session_dir;
    assert!(
        std::fs::read_to_string(session.join("container.json"))
            .unwrap()
            .contains("\"agentGroupId\"")
    );
    assert!(
        std::fs::read_to_string(session.join("CLAUDE.md"))
            .unwrap()
            .contains("<!-- .claude-fragments/mcp-notes.md -->")
    );
    // Later, the agent's own CLAUDE.md in its folder is its own: not removed again.
    std::fs::write(group.join("CLAUDE.md"), "mine").unwrap();
    prepare(
        &world.conn,
        &world.paths,
        &world.session,
        &AgentImages::single("image:latest"),
        &[],
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(group.join("CLAUDE.md")).unwrap(),
        "mine"
    );
}

/// Before a spawn the previous container's heartbeat goes, or the sweep would judge the new
/// container by it (moved here from `containers`, which touches no session file): a stale one
/// is deleted; one the agent made a link loses the link, never its target.
#[test]
fn a_stale_heartbeat_is_deleted_before_the_spawn_and_a_planted_link_only_unlinked() {
    let world = attack();
    let images = AgentImages::single("image:latest");
    let spec = prepare(&world.conn, &world.paths, &world.session, &images, &[]).unwrap();
    let heartbeat = session_db::heartbeat_path(&spec.session_dir);
    std::fs::write(&heartbeat, "").unwrap();
    prepare(&world.conn, &world.paths, &world.session, &images, &[]).unwrap();
    assert!(
        !heartbeat.exists(),
        "the stale heartbeat is deleted before the spawn"
    );
    std::os::unix::fs::symlink(&world.outside, &heartbeat).unwrap();
    prepare(&world.conn, &world.paths, &world.session, &images, &[]).unwrap();
    assert!(std::fs::symlink_metadata(&heartbeat).is_err());
    assert_eq!(std::fs::read_to_string(&world.outside).unwrap(), SECRET);
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
    let session = crate::db::sessions::create(&conn, "ag-1", chat.map(|_| "mg-1"), thread).unwrap();
    let prepared = prepare(
        &conn,
        &paths,
        &session,
        &AgentImages::single("image:latest"),
        &[],
    )
    .unwrap();
    let inbound =
        session_db::open_inbound_container(&prepared.session_dir.join(session_db::INBOUND_FILE))
            .unwrap();
    inbound
        .as_connection()
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
#[test]
fn the_image_follows_the_provider_unless_the_agent_names_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path().join("data"));
    paths.ensure().unwrap();
    let conn = crate::db::open(&paths.db()).unwrap();
    conn.execute_batch(
        "INSERT INTO agent_groups (id, name, folder, created_at) VALUES
           ('mock', 'M', 'mock', 't'), ('claude', 'C', 'claude', 't'), ('own', 'O', 'own', 't');
         INSERT INTO container_configs (agent_group_id, provider, image_tag, updated_at) VALUES
           ('mock', 'mock', NULL, 't'), ('claude', NULL, NULL, 't'), ('own', 'claude', 'mine:1', 't');",
    )
    .unwrap();
    let images = AgentImages {
        minimal: "small:1".into(),
        production: "big:1".into(),
        ..AgentImages::default()
    };
    let image_of = |agent: &str| {
        let session = crate::db::sessions::create(&conn, agent, None, None).unwrap();
        prepare(&conn, &paths, &session, &images, &[])
            .unwrap()
            .image
    };
    assert_eq!(image_of("mock"), "small:1");
    assert_eq!(image_of("claude"), "big:1", "no provider is `claude`");
    assert_eq!(image_of("own"), "mine:1");
}

/// Issue 10 point 3: at spawn, the session's provider wins over the agent group's, which wins
/// over the agent's configuration; `''` counts as unset and case is normalised. The resolved
/// name picks the image, goes into `container.json`, and only a provider that calls the API
/// gets the credential proxy's socket folder.
#[test]
fn issue_10_the_spawn_resolves_the_provider_session_then_group_then_config() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path().join("data"));
    paths.ensure().unwrap();
    let conn = crate::db::open(&paths.db()).unwrap();
    conn.execute_batch(
        "INSERT INTO agent_groups (id, name, folder, agent_provider, created_at) VALUES
           ('a', 'A', 'a', NULL, 't'), ('b', 'B', 'b', 'MOCK', 't'), ('c', 'C', 'c', '', 't');
         INSERT INTO container_configs (agent_group_id, provider, updated_at) VALUES
           ('a', 'Mock', 't'), ('b', 'claude', 't'), ('c', 'mock', 't');",
    )
    .unwrap();
    let images = AgentImages {
        minimal: "small:1".into(),
        production: "big:1".into(),
        ..AgentImages::default()
    };
    let spawn = |agent: &str, session_provider: Option<&str>| {
        let session = crate::db::sessions::create(&conn, agent, None, None).unwrap();
        conn.execute(
            "UPDATE sessions SET agent_provider = ?1 WHERE id = ?2",
            rusqlite::params![session_provider, session.id],
        )
        .unwrap();
        let session = crate::db::sessions::get(&conn, &session.id)
            .unwrap()
            .unwrap();
        let spec = prepare(&conn, &paths, &session, &images, &[]).unwrap();
        let config = std::fs::read_to_string(agent_runner::session_db::container_config_path(
            &spec.session_dir,
        ))
        .unwrap();
        let config = agent_runner::container_config::ContainerConfig::parse(
            &config,
            std::path::Path::new("container.json"),
        )
        .unwrap();
        let proxy = spec.system_mounts.iter().any(|mount| {
            mount.container == crate::credentials::proxy::CONTAINER_SOCKET_DIR
                && mount.readonly
                && mount.host == crate::credentials::proxy::socket_dir(&paths.data)
        });
        (config.provider, spec.image, spec.credentials, proxy)
    };
    let mock = ("mock".to_string(), "small:1".to_string(), false, false);
    let claude = ("claude".to_string(), "big:1".to_string(), true, true);
    assert_eq!(spawn("a", None), mock, "the configuration's, lower-cased");
    assert_eq!(spawn("a", Some("Claude")), claude, "the session's first");
    assert_eq!(
        spawn("a", Some("")),
        mock,
        "an empty session value is unset"
    );
    assert_eq!(
        spawn("b", None),
        mock,
        "the group's before the configuration's"
    );
    assert_eq!(spawn("c", None), mock, "an empty group value is unset");
}

#[test]
fn issue_11_an_agent_with_packages_runs_the_per_agent_image_the_db_records() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path().join("data"));
    paths.ensure().unwrap();
    let conn = crate::db::open(&paths.db()).unwrap();
    conn.execute_batch(
        "INSERT INTO agent_groups (id, name, folder, created_at) VALUES
           ('pkg', 'P', 'pkg', 't'), ('plain', 'L', 'plain', 't');
         INSERT INTO container_configs (agent_group_id, provider, packages_apt, updated_at) VALUES
           ('pkg', 'mock', '[\"jq\"]', 't'), ('plain', 'mock', '[]', 't');",
    )
    .unwrap();
    let images = AgentImages {
        minimal: "small:1".into(),
        production: "big:1".into(),
        per_agent: [("pkg".to_string(), "nanoclaw-agent-x-pkg:old".to_string())].into(),
    };
    let image_of = |agent: &str| {
        let session = crate::db::sessions::create(&conn, agent, None, None).unwrap();
        composition(&conn, &paths, &session, &images, &[])
            .unwrap()
            .spec
            .image
    };
    assert_eq!(
        image_of("pkg"),
        "nanoclaw-agent-x-pkg:old",
        "the run's image until one is recorded"
    );
    crate::db::agent_images::record_built(&conn, "pkg", "nanoclaw-agent-x-pkg:new").unwrap();
    crate::db::agent_images::record_built(&conn, "plain", "nanoclaw-agent-x-plain:stale").unwrap();
    assert_eq!(image_of("pkg"), "nanoclaw-agent-x-pkg:new");
    assert_eq!(
        image_of("plain"),
        "small:1",
        "no packages: the provider's image"
    );
    // Packages removed while the daemon runs: back to the provider's image, whatever the
    // run's images list for it.
    conn.execute(
        "UPDATE container_configs SET packages_apt = '[]' WHERE agent_group_id = 'pkg'",
        [],
    )
    .unwrap();
    assert_eq!(image_of("pkg"), "small:1");
    // An agent naming its own `image` runs its per-agent image (built `FROM` it).
    conn.execute(
        "UPDATE container_configs SET packages_apt = '[\"jq\"]', image_tag = 'own:1'
         WHERE agent_group_id = 'pkg'",
        [],
    )
    .unwrap();
    assert_eq!(image_of("pkg"), "nanoclaw-agent-x-pkg:new");
}
