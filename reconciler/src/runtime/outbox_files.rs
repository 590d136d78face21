//! Outbox files (docs/runtime.md#the-message-path): the files an outbound row names (`content.files`), read from
//! `<session>/outbound/outbox/<row id>/` for the channel, and the folder removed once the
//! message was sent.
//!
//! The outbox is agent-writable, so nothing in it is trusted: the row id and each file name
//! must be plain names, `outbox` and `<row id>` must be real directories (a symlink is never
//! followed), each file a regular file (no symlink, FIFO or device) of at most
//! [`MAX_FILE_BYTES`], and at most [`MAX_FILES`] files are read. A file that fails a check is
//! skipped with a warning; the message goes without it. Everything goes through `hostfs`.

use std::path::Path;

use serde_json::Value;
use tracing::warn;

use super::attachments::is_safe_name;
use crate::channels::OutFile;
use crate::hostfs::{Dir, Read};

/// Largest file sent (Telegram's Bot API takes uploads up to 50 MB).
pub const MAX_FILE_BYTES: u64 = 50 * 1024 * 1024;
/// Most files one message sends.
pub const MAX_FILES: usize = 10;

/// The file names an outbound content asks to send: `files`, a list of strings.
pub fn requested(content: &Value) -> Vec<String> {
    content
        .get("files")
        .and_then(Value::as_array)
        .map(|files| {
            files
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Reads the files `names` of the outbound row `row_id` of the session at `session_dir`.
pub fn read(session_dir: &Path, row_id: &str, names: &[String]) -> Vec<OutFile> {
    if names.is_empty() {
        return Vec::new();
    }
    let Some(folder) = folder(session_dir, row_id) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for name in names.iter().take(MAX_FILES) {
        if !is_safe_name(name) {
            warn!(msg = %row_id, file = %name, "outbox file name is not a plain name; skipped");
            continue;
        }
        match folder.read_regular(name, MAX_FILE_BYTES) {
            Ok(Read::Bytes(bytes)) => files.push(OutFile {
                filename: name.clone(),
                data: bytes.into(),
            }),
            Ok(Read::Absent) => warn!(msg = %row_id, file = %name, "outbox file missing; skipped"),
            Ok(Read::TooLarge(size)) => {
                warn!(msg = %row_id, file = %name, size, "outbox file too large; skipped");
            }
            Ok(Read::NotRegular(kind)) => {
                warn!(msg = %row_id, file = %name, ?kind, "outbox entry is not a regular file; skipped");
            }
            Err(err) => {
                warn!(msg = %row_id, file = %name, error = %err, "outbox file unreadable; skipped")
            }
        }
    }
    if names.len() > MAX_FILES {
        warn!(msg = %row_id, asked = names.len(), sent = MAX_FILES, "too many outbox files; the rest are skipped");
    }
    files
}

/// Removes `<session>/outbound/outbox/<row id>/` after a successful delivery; errors are
/// logged, never a reason to send again.
pub fn clear(session_dir: &Path, row_id: &str) {
    if !is_safe_name(row_id) {
        return;
    }
    let outbox = Dir::open(&session_dir.join(agent_runner::session_db::OUTBOUND_DIR))
        .and_then(|outbound| outbound.child(agent_runner::session_db::OUTBOX_DIR));
    match outbox.and_then(|outbox| outbox.remove(row_id)) {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => warn!(msg = %row_id, error = %err, "outbox folder not removed"),
    }
}

fn folder(session_dir: &Path, row_id: &str) -> Option<Dir> {
    if !is_safe_name(row_id) {
        warn!(msg = %row_id, "outbound id is not a plain name; its files are not read");
        return None;
    }
    let opened = Dir::open(&session_dir.join(agent_runner::session_db::OUTBOUND_DIR))
        .and_then(|outbound| outbound.child(agent_runner::session_db::OUTBOX_DIR))
        .and_then(|outbox| outbox.child(row_id));
    match opened {
        Ok(folder) => Some(folder),
        Err(err) => {
            warn!(msg = %row_id, error = %err, "outbox folder missing or not a real folder; message sent without files");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn session() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let outbox = dir.path().join("outbound/outbox/msg-1");
        std::fs::create_dir_all(&outbox).unwrap();
        (dir, outbox)
    }

    #[test]
    fn named_files_are_read_and_cleared_after_sending() {
        let (dir, outbox) = session();
        std::fs::write(outbox.join("report.txt"), "the report").unwrap();
        let names = requested(&json!({"text": "here", "files": ["report.txt", "missing.txt", 3]}));
        assert_eq!(names, ["report.txt", "missing.txt"]);
        let files = read(dir.path(), "msg-1", &names);
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].filename, "report.txt");
        assert_eq!(&files[0].data[..], b"the report");
        clear(dir.path(), "msg-1");
        assert!(!outbox.exists());
    }

    #[test]
    fn links_traversal_and_special_files_are_never_read() {
        let (dir, outbox) = session();
        std::os::unix::fs::symlink("/etc/passwd", outbox.join("passwd")).unwrap();
        std::fs::create_dir(outbox.join("sub")).unwrap();
        let names: Vec<String> = ["passwd", "../outbox/msg-1/passwd", "sub", "/etc/passwd"]
            .map(String::from)
            .to_vec();
        assert_eq!(read(dir.path(), "msg-1", &names), vec![]);
        assert_eq!(read(dir.path(), "../msg-1", &["x".into()]), vec![]);
        // A linked row folder is not followed either.
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(elsewhere.path().join("secret"), "no").unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("outbound/outbox/msg-2"))
            .unwrap();
        assert_eq!(read(dir.path(), "msg-2", &["secret".into()]), vec![]);
        clear(dir.path(), "msg-2");
        assert!(
            elsewhere.path().join("secret").exists(),
            "clearing removes the link only"
        );
    }
}
