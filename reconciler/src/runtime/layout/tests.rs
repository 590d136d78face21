//! The session layout on real folders: ownership, mount points, the previous layout's move.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::*;

fn paths() -> (tempfile::TempDir, Paths) {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path().join("data"));
    paths.ensure().unwrap();
    (dir, paths)
}

#[test]
fn a_fresh_session_gets_host_owned_and_agent_writable_folders() {
    let (_dir, paths) = paths();
    let dirs = prepare(
        &paths,
        "andy",
        "s1",
        &[
            MountPoint {
                container: "notes".into(),
                is_file: false,
            },
            MountPoint {
                container: "deep/er/config.toml".into(),
                is_file: true,
            },
        ],
    )
    .unwrap();
    let session = paths.session("andy", "s1");
    assert_eq!(dirs.session.path(), session);
    for host_owned in ["", "agent", "extra", "extra/notes", "extra/deep/er"] {
        let meta = std::fs::symlink_metadata(session.join(host_owned)).unwrap();
        assert!(meta.is_dir(), "{host_owned}");
        assert_eq!(meta.permissions().mode() & 0o777, 0o755, "{host_owned}");
        assert_eq!(
            meta.uid(),
            rustix::process::geteuid().as_raw(),
            "{host_owned}"
        );
    }
    assert!(session.join("extra/deep/er/config.toml").is_file());
    let inbound = std::fs::metadata(session.join("inbound.db")).unwrap();
    assert_eq!(inbound.permissions().mode() & 0o777, 0o644);
    assert!(
        !session.join("outbound/outbound.db").exists(),
        "the container creates outbound.db"
    );
    let (uid, gid) = agent_owner()
        .map(|owner| (owner.uid, owner.gid))
        .unwrap_or_else(|| {
            (
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            )
        });
    for agent_writable in [
        session.join("outbound"),
        session.join("outbound/outbox"),
        paths.group("andy"),
        paths.claude_shared("andy"),
        paths.claude_shared("andy").join("skills"),
    ] {
        let meta = std::fs::symlink_metadata(&agent_writable).unwrap();
        assert!(meta.is_dir(), "{}", agent_writable.display());
        assert_eq!(
            (meta.uid(), meta.gid()),
            (uid, gid),
            "{}",
            agent_writable.display()
        );
    }
    if rustix::process::geteuid().is_root() {
        assert_eq!(
            uid,
            containers::UNPRIVILEGED_UID,
            "as root, agents get the unprivileged user"
        );
    }
}

#[test]
fn the_previous_layout_moves_into_outbound_without_following_links() {
    let (root, paths) = paths();
    let session = paths.session("andy", "s1");
    std::fs::create_dir_all(session.join("outbox/m1")).unwrap();
    std::fs::write(session.join("outbox/m1/file.txt"), "sent").unwrap();
    std::fs::write(session.join(".heartbeat"), "").unwrap();
    agent_runner::session_db::create_inbound(&session).unwrap();
    agent_runner::session_db::open_outbound_container(&session.join("outbound.db")).unwrap();
    let outside = root.path().join("outside.txt");
    std::fs::write(&outside, "keep").unwrap();
    std::os::unix::fs::symlink(&outside, session.join("outbound.db-journal")).unwrap();
    std::os::unix::fs::symlink(&outside, session.join("agent")).unwrap();
    prepare(&paths, "andy", "s1", &[]).unwrap();
    assert!(session.join("outbound/outbound.db").is_file());
    assert!(session.join("outbound/.heartbeat").is_file());
    assert_eq!(
        std::fs::read_to_string(session.join("outbound/outbox/m1/file.txt")).unwrap(),
        "sent"
    );
    assert!(!session.join("outbound.db").exists());
    assert!(
        !session.join("outbound/outbound.db-journal").exists(),
        "a link is not moved in"
    );
    assert!(
        std::fs::symlink_metadata(session.join("agent"))
            .unwrap()
            .is_dir()
    );
    let aside: Vec<String> = std::fs::read_dir(&session)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".unsafe-"))
        .collect();
    assert_eq!(aside.len(), 2, "both links moved aside: {aside:?}");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep");
    if let Some(owner) = agent_owner() {
        let meta = std::fs::symlink_metadata(session.join("outbound/outbound.db")).unwrap();
        assert_eq!(
            meta.uid(),
            owner.uid,
            "the container can write its moved DB"
        );
        let meta = std::fs::metadata(&outside).unwrap();
        assert_eq!(meta.uid(), 0);
    }
    // Idempotent.
    prepare(&paths, "andy", "s1", &[]).unwrap();
    assert!(session.join("outbound/outbound.db").is_file());
}

#[test]
fn a_symlinked_agent_folder_is_moved_aside_not_followed() {
    let (root, paths) = paths();
    let victim = root.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::create_dir_all(paths.groups()).unwrap();
    std::os::unix::fs::symlink(&victim, paths.group("andy")).unwrap();
    let dirs = prepare(&paths, "andy", "s1", &[]).unwrap();
    assert!(
        std::fs::symlink_metadata(paths.group("andy"))
            .unwrap()
            .is_dir()
    );
    assert_eq!(dirs.group.path(), paths.group("andy"));
    let meta = std::fs::metadata(&victim).unwrap();
    assert_eq!(
        meta.uid(),
        rustix::process::geteuid().as_raw(),
        "the target keeps its owner"
    );
}
