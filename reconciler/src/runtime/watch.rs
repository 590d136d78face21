//! File watching: changes to `sessions/<agent>/<session>/outbound/outbound.db` become delivery work
//! within milliseconds (v2 polled every second, host.md §6.1). The delivery polls stay as a
//! backstop, so a missed or coalesced event costs latency, never a message.

use std::path::{Component, Path};
use std::sync::mpsc as std_mpsc;

use agent_runner::session_db;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tracing::warn;

use super::delivery::Work;
use crate::paths::Paths;

/// Watches the sessions folder; the watcher stops when the returned value is dropped.
pub fn sessions(paths: &Paths, work: std_mpsc::Sender<Work>) -> notify::Result<RecommendedWatcher> {
    let root = paths.sessions();
    std::fs::create_dir_all(&root).map_err(notify::Error::io)?;
    let base = root.clone();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) => {
                for path in &event.paths {
                    if let Some(item) = work_for(&base, path) {
                        let _ = work.send(item);
                    }
                }
            }
            Err(err) => warn!(error = %err, "session watcher error"),
        })?;
    watcher.watch(&root, RecursiveMode::Recursive)?;
    Ok(watcher)
}

/// `sessions/<agent>/<session>/outbound/outbound.db[-journal]` → the session to drain.
fn work_for(root: &Path, path: &Path) -> Option<Work> {
    let relative = path.strip_prefix(root).ok()?;
    let parts: Vec<&str> = relative
        .components()
        .filter_map(|component| match component {
            Component::Normal(part) => part.to_str(),
            _ => None,
        })
        .collect();
    match parts.as_slice() {
        [agent, session, dir, file]
            if *dir == session_db::OUTBOUND_DIR && file.starts_with(session_db::OUTBOUND_FILE) =>
        {
            Some(Work::Session {
                agent: (*agent).to_string(),
                session: (*session).to_string(),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_outbound_files_of_a_session_are_work() {
        let root = Path::new("/d/sessions");
        assert_eq!(
            work_for(
                root,
                Path::new("/d/sessions/andy/sess-1/outbound/outbound.db")
            ),
            Some(Work::Session {
                agent: "andy".into(),
                session: "sess-1".into()
            })
        );
        assert!(
            work_for(
                root,
                Path::new("/d/sessions/andy/sess-1/outbound/outbound.db-journal")
            )
            .is_some()
        );
        assert_eq!(
            work_for(root, Path::new("/d/sessions/andy/sess-1/outbound.db")),
            None,
            "the previous layout's place"
        );
        assert_eq!(
            work_for(
                root,
                Path::new("/d/sessions/andy/sess-1/outbound/.heartbeat")
            ),
            None
        );
        assert_eq!(
            work_for(root, Path::new("/d/sessions/andy/sess-1/inbound.db")),
            None
        );
        assert_eq!(
            work_for(root, Path::new("/d/sessions/andy/.claude-shared/x")),
            None
        );
        assert_eq!(work_for(root, Path::new("/elsewhere/outbound.db")), None);
    }
}
