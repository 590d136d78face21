//! The sent log: a host-only, append-only file (`<data>/delivery.sent`) naming every outbound
//! row an adapter accepted but whose `delivered` row is not committed yet.
//!
//! Why: recording a delivery is a commit to the session's `inbound.db`, which the router and the
//! container contend for. SQLite's busy handler sleeps 1, 2, 5, 10, 15, 20… ms while it waits, so
//! during a burst a reply stayed "sent but not recorded" for ~50 ms (measured with strace), and
//! a `kill -9` in that window re-sent it after restart (issue 8 point 11). Appending one line
//! with `write(2)` takes microseconds and survives the death of the process (the data is in the
//! page cache; only an OS crash can lose it, which costs a re-send, never a lost reply).
//! Delivery records the logged rows in `inbound.db` in one transaction per drain and then
//! clears the log; at startup it records whatever a killed predecessor left here.
//!
//! A line that cannot be parsed (a write torn by the kill) is skipped: at worst that row is
//! sent again, which the reply's id lets a client drop.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

/// File name of the sent log inside the data directory.
pub const FILE_NAME: &str = "delivery.sent";

/// One outbound row an adapter accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub agent: String,
    pub session: String,
    /// The `messages_out` id.
    pub id: String,
    /// The platform's id for the sent message, when it returned one.
    pub platform_message_id: Option<String>,
}

/// The open log. Owned by the delivery thread.
pub struct SentLog {
    path: PathBuf,
    file: File,
}

impl SentLog {
    /// Opens (creating) the log and returns what a previous process left in it.
    pub fn open(path: &Path) -> std::io::Result<(SentLog, Vec<Sent>)> {
        let leftover = match File::open(path) {
            Ok(file) => parse(BufReader::new(file), path),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(err),
        };
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok((
            SentLog {
                path: path.to_path_buf(),
                file,
            },
            leftover,
        ))
    }

    /// Appends one entry with a single `write`. No fsync: the log guards against the process
    /// dying, not the machine.
    pub fn append(&mut self, sent: &Sent) -> std::io::Result<()> {
        let mut line = serde_json::to_string(sent).map_err(std::io::Error::other)?;
        line.push('\n');
        self.file.write_all(line.as_bytes())
    }

    /// Replaces the log's content with `keep` (empty: everything is recorded).
    pub fn reset(&mut self, keep: &[Sent]) -> std::io::Result<()> {
        self.file.set_len(0)?;
        for sent in keep {
            self.append(sent)?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn parse(reader: impl BufRead, path: &Path) -> Vec<Sent> {
    let mut entries = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(&line) {
            Ok(sent) => entries.push(sent),
            Err(err) => warn!(file = %path.display(), line = index + 1, error = %err,
                "unreadable sent-log line skipped (that reply may be sent again)"),
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(id: &str) -> Sent {
        Sent {
            agent: "andy".into(),
            session: "sess-1".into(),
            id: id.into(),
            platform_message_id: None,
        }
    }

    #[test]
    fn entries_survive_a_reopen_until_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let (mut log, leftover) = SentLog::open(&path).unwrap();
        assert!(leftover.is_empty());
        log.append(&sent("out-1")).unwrap();
        log.append(&sent("out-2")).unwrap();
        drop(log);
        let (mut log, leftover) = SentLog::open(&path).unwrap();
        assert_eq!(leftover, [sent("out-1"), sent("out-2")]);
        log.reset(&[sent("out-2")]).unwrap();
        log.append(&sent("out-3")).unwrap();
        drop(log);
        let (_, leftover) = SentLog::open(&path).unwrap();
        assert_eq!(leftover, [sent("out-2"), sent("out-3")]);
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let whole = serde_json::to_string(&sent("out-1")).unwrap();
        std::fs::write(&path, format!("{whole}\n{{\"agent\":\"an")).unwrap();
        let (_, leftover) = SentLog::open(&path).unwrap();
        assert_eq!(leftover, [sent("out-1")]);
    }
}
