//! File watching: a container's writes to `sessions/<agent>/<session>/outbound.db` become
//! delivery work within milliseconds (v2 polled every second, host.md §6.1). The delivery polls
//! stay as a backstop, so a missed or coalesced event costs latency, never a message.
//!
//! Only events that a *write* causes count ([`is_write`]): data modified, a file closed after
//! writing, the journal created, removed or renamed. inotify also reports every open and every
//! read-only close; the host's own drains open `outbound.db` read-only, so reacting to those
//! would make each drain schedule the next one (issue 8: an idle daemon busy-looped at ~100
//! drains a second per session).

use std::path::{Component, Path};

use agent_runner::session_db;
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tracing::warn;

use super::work::{Inbox, Work};
use crate::paths::Paths;

/// Folders between a session folder and its `outbound.db`: the agent-writable `outbound/`
/// (docs/containers.md, the session layout).
const OUTBOUND_SUBDIR: &[&str] = &[session_db::OUTBOUND_DIR];

/// Watches the sessions folder; the watcher stops when the returned value is dropped.
pub fn sessions(paths: &Paths, work: Inbox) -> notify::Result<RecommendedWatcher> {
    let root = paths.sessions();
    std::fs::create_dir_all(&root).map_err(notify::Error::io)?;
    let base = root.clone();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) if event.need_rescan() => {
                // The kernel dropped events: drain everything once.
                work.send(Work::All);
            }
            Ok(event) => {
                for item in work_for(&base, &event) {
                    work.send(item);
                }
            }
            Err(err) => {
                warn!(error = %err, "session watcher error; draining every session");
                work.send(Work::All);
            }
        })?;
    watcher.watch(&root, RecursiveMode::Recursive)?;
    Ok(watcher)
}

/// The delivery work one file event asks for: the session whose `outbound.db` (or its journal)
/// a writer changed. Opens, reads and read-only closes are never work (see the module comment).
fn work_for(root: &Path, event: &Event) -> Vec<Work> {
    if !is_write(&event.kind) {
        return Vec::new();
    }
    event
        .paths
        .iter()
        .filter_map(|path| outbound_session(root, path))
        .collect()
}

/// Event kinds a writer causes. Metadata changes (the heartbeat's mtime, a chmod) are not
/// writes of `outbound.db`.
fn is_write(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    }
}

/// `sessions/<agent>/<session>/[OUTBOUND_SUBDIR/]outbound.db[-journal]` → the session to drain.
fn outbound_session(root: &Path, path: &Path) -> Option<Work> {
    let relative = path.strip_prefix(root).ok()?;
    let parts: Vec<&str> = relative
        .components()
        .map(|component| match component {
            Component::Normal(part) => part.to_str(),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let [agent, session, rest @ ..] = parts.as_slice() else {
        return None;
    };
    let (file, subdir) = rest.split_last()?;
    let is_outbound = *file == session_db::OUTBOUND_FILE
        || file
            .strip_prefix(session_db::OUTBOUND_FILE)
            .is_some_and(|suffix| suffix == "-journal");
    (subdir == OUTBOUND_SUBDIR && is_outbound && !session.starts_with('.')).then(|| Work::Session {
        agent: (*agent).to_string(),
        session: (*session).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use notify::event::{CreateKind, DataChange, MetadataKind, RemoveKind};

    use super::*;

    const ROOT: &str = "/d/sessions";

    fn event(kind: EventKind, path: &str) -> Vec<Work> {
        work_for(Path::new(ROOT), &Event::new(kind).add_path(path.into()))
    }

    fn session() -> Vec<Work> {
        vec![Work::Session {
            agent: "andy".into(),
            session: "sess-1".into(),
        }]
    }

    const OUTBOUND: &str = "/d/sessions/andy/sess-1/outbound/outbound.db";
    const JOURNAL: &str = "/d/sessions/andy/sess-1/outbound/outbound.db-journal";

    #[test]
    fn writes_of_outbound_files_of_a_session_are_work() {
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert_eq!(event(data, OUTBOUND), session());
        assert_eq!(
            event(
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                OUTBOUND
            ),
            session()
        );
        assert_eq!(
            event(EventKind::Create(CreateKind::File), JOURNAL),
            session()
        );
        assert_eq!(
            event(EventKind::Remove(RemoveKind::File), JOURNAL),
            session()
        );
    }

    #[test]
    fn idle_daemon_does_not_drain_on_its_own_reads() {
        // Issue 8: the drain's own read-only open of `outbound.db` was reported as an event
        // and scheduled the next drain, ~100 times a second per session.
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
            EventKind::Any,
        ] {
            assert_eq!(event(kind, OUTBOUND), [], "{kind:?}");
            assert_eq!(event(kind, JOURNAL), [], "{kind:?}");
        }
    }

    #[test]
    fn other_files_are_not_work() {
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        for path in [
            "/d/sessions/andy/sess-1/inbound.db",
            "/d/sessions/andy/sess-1/outbound/.heartbeat",
            "/d/sessions/andy/sess-1/outbound/outbound.db-wal",
            "/d/sessions/andy/sess-1/outbound.db",
            "/d/sessions/andy/sess-1/outbound/outbox/outbound.db",
            "/d/sessions/andy/.claude-shared/outbound.db",
            "/d/sessions/andy/outbound.db",
            "/elsewhere/andy/sess-1/outbound.db",
        ] {
            assert_eq!(event(data, path), [], "{path}");
        }
    }
}
