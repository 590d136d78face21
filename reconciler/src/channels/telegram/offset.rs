//! The durable update offset: `<data>/channels/telegram/offset.json`, `{bot_id, next}`, the id
//! of the first update not yet stored.
//!
//! The poller advances it only after the router answered that the updates before it are
//! stored in the central and session DBs (`Receipt`), and passes it to `getUpdates` as
//! `offset`, which is also what tells Telegram to forget the updates before it. A `kill -9`
//! therefore loses nothing (unstored updates are fetched again) and repeats nothing that could
//! be processed twice: an update stored but not yet counted here arrives again with the same
//! message id, and the router skips a message id a session already holds. The file is keyed by
//! the bot's id, so a new token (another bot) starts from Telegram's own position. Written
//! atomically (temp file + `renameat`, `hostfs`), 0600.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::hostfs::{Dir, Read};

/// The file name inside the channel's state folder.
pub const FILE_NAME: &str = "offset.json";

/// One bot's position in its update stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offset {
    pub bot_id: i64,
    /// The first update id not yet stored.
    pub next: i64,
}

/// The offset file of one data dir.
#[derive(Clone, Debug)]
pub struct OffsetStore {
    dir: PathBuf,
}

impl OffsetStore {
    /// The store in `dir` (`Paths::channel_state("telegram")`).
    pub fn new(dir: &Path) -> OffsetStore {
        OffsetStore {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The stored next update id for `bot_id`; `None` when none is stored, it is another bot's,
    /// or the file is unreadable (then Telegram's own position is used: it keeps every update
    /// not confirmed by an `offset`).
    pub fn load(&self, bot_id: i64) -> io::Result<Option<i64>> {
        let dir = match Dir::open(&self.dir) {
            Ok(dir) => dir,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        match dir.read_regular(FILE_NAME, 4096)? {
            Read::Bytes(bytes) => Ok(serde_json::from_slice::<Offset>(&bytes)
                .ok()
                .filter(|offset| offset.bot_id == bot_id)
                .map(|offset| offset.next)),
            _ => Ok(None),
        }
    }

    /// Records that every update before `next` is stored.
    pub fn save(&self, offset: Offset) -> io::Result<()> {
        let dir = Dir::create_all(&self.dir, 0o700)?;
        let text = serde_json::to_vec(&offset).expect("an offset serialises");
        dir.replace(FILE_NAME, &text, 0o600, None)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_offset_survives_a_restart_and_belongs_to_one_bot() {
        let data = tempfile::tempdir().unwrap();
        let store = OffsetStore::new(&data.path().join("channels/telegram"));
        assert_eq!(store.load(7).unwrap(), None);
        store
            .save(Offset {
                bot_id: 7,
                next: 41,
            })
            .unwrap();
        store
            .save(Offset {
                bot_id: 7,
                next: 42,
            })
            .unwrap();
        let reopened = OffsetStore::new(&data.path().join("channels/telegram"));
        assert_eq!(reopened.load(7).unwrap(), Some(42));
        assert_eq!(
            reopened.load(8).unwrap(),
            None,
            "another bot's offset is not used"
        );
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_damaged_offset_file_falls_back_to_telegrams_position() {
        let data = tempfile::tempdir().unwrap();
        let store = OffsetStore::new(data.path());
        std::fs::write(store.path(), "{not json").unwrap();
        assert_eq!(store.load(7).unwrap(), None);
        std::fs::remove_file(store.path()).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", store.path()).unwrap();
        assert_eq!(store.load(7).unwrap(), None, "a symlink is not followed");
    }
}
