//! Inbound attachments (docs/runtime.md#inbound-attachments): base64 `data` of a message's typed
//! [`Content`] → files in the session's `inbox/<message id>/`, and the content rewritten to point
//! at them.
//!
//! Both the message id and the file name come from untrusted senders, and the session folder
//! is writable by the container, which may pre-place symlinks there. So every write is
//! defended: safe names only, no symlinked inbox directories, the real target directory must
//! sit inside the real inbox, and files are created exclusively (never followed, never
//! overwritten). This module only touches files under the session's `inbox/`; it never
//! opens a DB and never fails the message: a refused attachment keeps its element as it was.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use agent_runner::session_db::Content;
use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use serde_json::{Map, Value};
use tracing::{debug, warn};

/// Folder of a session that receives inbound attachments (`/workspace/inbox` in the container).
pub const INBOX_DIR: &str = "inbox";

/// MIME type → file extension for attachments without a name (docs/runtime.md#inbound-attachments).
const MIME_EXTENSIONS: &[(&str, &str)] = &[
    ("image/jpeg", "jpg"),
    ("image/png", "png"),
    ("image/webp", "webp"),
    ("image/gif", "gif"),
    ("image/heic", "heic"),
    ("audio/ogg", "ogg"),
    ("audio/mpeg", "mp3"),
    ("audio/wav", "wav"),
    ("audio/mp4", "m4a"),
    ("video/mp4", "mp4"),
    ("video/webm", "webm"),
    ("video/quicktime", "mov"),
    ("application/pdf", "pdf"),
    ("text/plain", "txt"),
    ("application/json", "json"),
    ("application/zip", "zip"),
];

/// Coarse media class (`type`, set by bridges that give no MIME) → extension. Telegram's
/// "GIFs" are MP4 videos, hence `animation`.
const TYPE_EXTENSIONS: &[(&str, &str)] = &[
    ("image", "jpg"),
    ("photo", "jpg"),
    ("sticker", "webp"),
    ("voice", "ogg"),
    ("audio", "mp3"),
    ("video", "mp4"),
    ("animation", "mp4"),
];

/// Why one attachment was not stored.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("`{0}` is a symlink or not a directory")]
    UnsafeDir(PathBuf),
    #[error("`{0}` resolves outside the session inbox")]
    Escapes(PathBuf),
    #[error("`{0}` already exists; not overwritten")]
    Exists(PathBuf),
    #[error("`{path}`: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Is `name` usable as the last segment of a path (a message id or a file name)? Rejects the
/// empty name, `.` and `..`, separators (`/`, `\`) and NUL, and anything that is not its own
/// basename.
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && Path::new(name).file_name() == Some(OsStr::new(name))
}

/// The extension for a MIME type (parameters after `;` ignored, case-insensitive), or `""`
/// when the value is not a string or the type is not in the map.
pub fn extension_for_mime(mime: Option<&Value>) -> &'static str {
    let Some(Value::String(mime)) = mime else {
        return "";
    };
    let clean = mime
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_lowercase();
    lookup(MIME_EXTENSIONS, &clean)
}

/// The file name for an attachment: its `name` when that is a non-empty string, else
/// `attachment-<stamp>` with an extension from `mimeType`, failing that from `type`. The
/// stamp is the time in milliseconds (`-<n>` appended for the n-th unnamed attachment of a
/// message, so several unnamed photos of one message do not collide and get lost).
/// The result still has to pass [`is_safe_name`].
pub fn attachment_name(attachment: &Map<String, Value>, stamp: &str) -> String {
    if let Some(Value::String(name)) = attachment.get("name")
        && !name.is_empty()
    {
        return name.clone();
    }
    let mut extension = extension_for_mime(attachment.get("mimeType"));
    if extension.is_empty()
        && let Some(Value::String(kind)) = attachment.get("type")
    {
        extension = lookup(TYPE_EXTENSIONS, &kind.to_lowercase());
    }
    if extension.is_empty() {
        format!("attachment-{stamp}")
    } else {
        format!("attachment-{stamp}.{extension}")
    }
}

/// Saves every attachment with base64 `data` of `content` into
/// `<session_dir>/inbox/<message_id>/` and returns the content to store: each saved attachment
/// gets `name` and `localPath` (relative to `/workspace`) and loses `data`. Content without
/// attachments, or whose message id is unsafe, is returned as is; a refused attachment keeps its
/// element as it was.
pub fn extract(session_dir: &Path, message_id: &str, content: &Content) -> Content {
    let mut stored = content.clone();
    if stored
        .attachments
        .iter()
        .all(|attachment| attachment.data().is_none())
    {
        return stored;
    }
    if !is_safe_name(message_id) {
        warn!(msg = %message_id, "unsafe message id: attachments not extracted");
        return stored;
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let inbox = session_dir.join(INBOX_DIR);
    let mut unnamed = 0;
    for attachment in &mut stored.attachments {
        let Some(data) = attachment.data() else {
            continue;
        };
        let Some(bytes) = decode(data) else {
            warn!(msg = %message_id, "attachment data is not base64; left in the message");
            continue;
        };
        let explicit = attachment.name().is_some_and(|name| !name.is_empty());
        let stamp = if explicit {
            now_ms.to_string()
        } else {
            unnamed += 1;
            match unnamed {
                1 => now_ms.to_string(),
                n => format!("{now_ms}-{n}"),
            }
        };
        let raw_name = attachment_name(attachment.as_map(), &stamp);
        let filename = if is_safe_name(&raw_name) {
            raw_name
        } else {
            let replacement = format!("attachment-{stamp}");
            warn!(msg = %message_id, name = %raw_name, %replacement, "unsafe attachment name replaced");
            replacement
        };
        match store(session_dir, &inbox, message_id, &filename, &bytes) {
            Ok(()) => {
                debug!(msg = %message_id, file = %filename, size = bytes.len(), "attachment saved");
                attachment.mark_saved(&filename, &format!("{INBOX_DIR}/{message_id}/{filename}"));
            }
            Err(refused) => {
                warn!(msg = %message_id, file = %filename, reason = %refused, "attachment not saved");
            }
        }
    }
    stored
}

fn lookup(table: &[(&str, &'static str)], key: &str) -> &'static str {
    table
        .iter()
        .find(|(name, _)| *name == key)
        .map_or("", |(_, extension)| extension)
}

/// Decodes base64 leniently like the bridges' encoders produce it: standard or URL-safe
/// alphabet, padding optional, line breaks ignored.
fn decode(data: &str) -> Option<Vec<u8>> {
    let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let config = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    GeneralPurpose::new(&base64::alphabet::STANDARD, config)
        .decode(&compact)
        .or_else(|_| general_purpose::URL_SAFE_NO_PAD.decode(compact.trim_end_matches('=')))
        .ok()
}

/// Writes one file with every defence of docs/runtime.md#inbound-attachments.
fn store(
    session_dir: &Path,
    inbox: &Path,
    message_id: &str,
    filename: &str,
    bytes: &[u8],
) -> Result<(), Refused> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Refused::Io { path, source }
    };
    let dir = inbox.join(message_id);
    // A pre-placed symlink (at `inbox` or `inbox/<id>`) would make `create_dir_all` a no-op
    // and redirect the write; refuse instead of following it.
    for candidate in [inbox, dir.as_path()] {
        match fs::symlink_metadata(candidate) {
            Ok(meta) if meta.file_type().is_symlink() || !meta.is_dir() => {
                return Err(Refused::UnsafeDir(candidate.to_path_buf()));
            }
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_err(candidate)(err)),
        }
    }
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let real_dir = fs::canonicalize(&dir).map_err(io_err(&dir))?;
    let real_inbox = fs::canonicalize(inbox).map_err(io_err(inbox))?;
    let real_session = fs::canonicalize(session_dir).map_err(io_err(session_dir))?;
    if !real_dir.starts_with(&real_inbox) || !real_inbox.starts_with(&real_session) {
        return Err(Refused::Escapes(dir));
    }
    let path = real_dir.join(filename);
    // `create_new` is O_CREAT|O_EXCL: it fails on any existing entry, symlinks included.
    let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            return Err(Refused::Exists(path));
        }
        Err(err) => return Err(io_err(&path)(err)),
    };
    file.write_all(bytes).map_err(io_err(&path))?;
    // The container reads these as another uid when the daemon is root: modes independent of
    // the daemon's umask (the folders were checked above to be real folders in the inbox).
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(io_err(&path))?;
    for folder in [&real_inbox, &real_dir] {
        fs::set_permissions(folder, fs::Permissions::from_mode(0o755)).map_err(io_err(folder))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[track_caller]
    fn check_name(attachment: Value, expected: &str) {
        assert_eq!(attachment_name(&object(attachment), "1234"), expected);
    }

    const PNG_BYTES: &str = "UE5HQllURVM="; // base64 of "PNGBYTES"

    fn message(name: &str) -> String {
        json!({"text": "hi", "attachments": [{"name": name, "data": PNG_BYTES, "size": 8}]})
            .to_string()
    }

    fn session() -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let session = root.path().join("sessions").join("ag-1").join("sess-1");
        fs::create_dir_all(&session).unwrap();
        (root, session)
    }

    #[test]
    fn ext_for_mime_is_empty_for_missing_or_non_string_values() {
        for value in [
            None,
            Some(json!("")),
            Some(json!({})),
            Some(json!(null)),
            Some(json!(42)),
        ] {
            assert_eq!(extension_for_mime(value.as_ref()), "", "{value:?}");
        }
    }

    #[test]
    fn ext_for_mime_maps_common_types_to_canonical_extensions() {
        assert_eq!(extension_for_mime(Some(&json!("image/jpeg"))), "jpg");
        assert_eq!(extension_for_mime(Some(&json!("application/pdf"))), "pdf");
        assert_eq!(extension_for_mime(Some(&json!("audio/ogg"))), "ogg");
    }

    #[test]
    fn ext_for_mime_strips_parameters_and_is_case_insensitive() {
        assert_eq!(
            extension_for_mime(Some(&json!("image/JPEG; foo=bar"))),
            "jpg"
        );
        assert_eq!(
            extension_for_mime(Some(&json!("  Application/PDF  "))),
            "pdf"
        );
        assert_eq!(
            extension_for_mime(Some(&json!("text/plain; charset=utf-8"))),
            "txt"
        );
    }

    #[test]
    fn ext_for_mime_is_empty_for_unknown_types() {
        assert_eq!(
            extension_for_mime(Some(&json!("application/octet-stream"))),
            ""
        );
        assert_eq!(
            extension_for_mime(Some(&json!("application/x-made-up"))),
            ""
        );
    }

    #[test]
    fn attachment_name_prefers_an_explicit_name() {
        check_name(
            json!({"name": "photo.jpg", "mimeType": "application/pdf"}),
            "photo.jpg",
        );
    }

    #[test]
    fn attachment_name_ignores_empty_or_non_string_names() {
        check_name(
            json!({"name": "", "mimeType": "application/pdf"}),
            "attachment-1234.pdf",
        );
        check_name(
            json!({"name": 42, "mimeType": "application/pdf"}),
            "attachment-1234.pdf",
        );
    }

    #[test]
    fn attachment_name_derives_the_extension_from_the_mime_type() {
        check_name(
            json!({"mimeType": "application/pdf"}),
            "attachment-1234.pdf",
        );
        check_name(json!({"mimeType": "image/jpeg"}), "attachment-1234.jpg");
    }

    #[test]
    fn attachment_name_falls_back_to_the_type_case_insensitively() {
        check_name(json!({"type": "photo"}), "attachment-1234.jpg");
        check_name(json!({"type": "sticker"}), "attachment-1234.webp");
        check_name(json!({"type": "voice"}), "attachment-1234.ogg");
        check_name(json!({"type": "animation"}), "attachment-1234.mp4");
        check_name(json!({"type": "PHOTO"}), "attachment-1234.jpg");
    }

    #[test]
    fn attachment_name_is_a_bare_timestamp_when_nothing_matches() {
        check_name(json!({}), "attachment-1234");
        check_name(
            json!({"mimeType": "application/octet-stream"}),
            "attachment-1234",
        );
        check_name(json!({"type": "mystery-class"}), "attachment-1234");
        check_name(json!({"mimeType": {"foo": "bar"}}), "attachment-1234");
    }

    #[test]
    fn safe_names_are_plain_basenames() {
        for good in ["photo.png", "msg-1:andy", "a..b", ".hidden"] {
            assert!(is_safe_name(good), "{good}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "a\\b", "nul\0", "/abs"] {
            assert!(!is_safe_name(bad), "{bad:?}");
        }
    }

    /// `extract` over content as an adapter reads it (`Content::parse`), stored form out.
    fn extract_json(session: &Path, message_id: &str, raw: &str) -> String {
        extract(session, message_id, &Content::parse(raw)).to_json()
    }

    #[test]
    fn saves_inbound_attachments_with_safe_basenames() {
        let (_root, session) = session();
        let stored = extract_json(&session, "msg-ok", &message("photo.png"));
        let file = session.join("inbox/msg-ok/photo.png");
        assert_eq!(fs::read_to_string(file).unwrap(), "PNGBYTES");
        expect_test::expect![[r#"{"text":"hi","attachments":[{"name":"photo.png","size":8,"localPath":"inbox/msg-ok/photo.png"}]}"#]]
            .assert_eq(&stored);
    }

    #[test]
    fn refuses_path_traversal_in_attachment_filenames_but_keeps_the_bytes() {
        let (root, session) = session();
        let content = json!({"text": "pwn", "attachments": [{
            "type": "document",
            "name": "../../../../../../canary",
            "data": "b3duZWQ=",
        }]})
        .to_string();
        let stored = extract_json(&session, "msg-attack", &content);
        assert!(!root.path().join("canary").exists());
        let written: Vec<String> = fs::read_dir(session.join("inbox/msg-attack"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(written.len(), 1);
        assert!(written[0].starts_with("attachment-"), "{written:?}");
        assert!(!written[0].contains('/') && !written[0].contains(".."));
        let value: Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(value["attachments"][0]["name"], json!(written[0]));
    }

    #[test]
    fn rejects_attachments_when_the_message_id_is_unsafe() {
        let (_root, session) = session();
        let content = message("photo.png");
        assert_eq!(extract_json(&session, "../../escape", &content), content);
        assert!(!session.join("inbox").exists());
        assert!(!session.parent().unwrap().join("escape").exists());
    }

    #[test]
    fn rejects_writes_through_a_pre_placed_symlinked_inbox_dir() {
        let (root, session) = session();
        let evil = root.path().join("evil-target");
        fs::create_dir_all(&evil).unwrap();
        fs::create_dir_all(session.join("inbox")).unwrap();
        std::os::unix::fs::symlink(&evil, session.join("inbox/msg-evil")).unwrap();
        let content = message("photo.png");
        assert_eq!(extract_json(&session, "msg-evil", &content), content);
        assert!(!evil.join("photo.png").exists());
    }

    #[test]
    fn rejects_writes_when_the_inbox_itself_is_a_symlink() {
        let (root, session) = session();
        let evil = root.path().join("evil-inbox");
        fs::create_dir_all(&evil).unwrap();
        std::os::unix::fs::symlink(&evil, session.join("inbox")).unwrap();
        extract_json(&session, "msg-1", &message("photo.png"));
        assert!(fs::read_dir(&evil).unwrap().next().is_none());
    }

    #[test]
    fn refuses_to_follow_a_pre_existing_symlink_at_the_target_path() {
        let (root, session) = session();
        let dir = session.join("inbox/msg-sym");
        fs::create_dir_all(&dir).unwrap();
        let outside = root.path().join("outside.txt");
        fs::write(&outside, "ORIGINAL").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("photo.png")).unwrap();
        let content = message("photo.png");
        assert_eq!(extract_json(&session, "msg-sym", &content), content);
        assert_eq!(fs::read_to_string(&outside).unwrap(), "ORIGINAL");
    }

    #[test]
    fn never_overwrites_an_existing_file() {
        let (_root, session) = session();
        let dir = session.join("inbox/msg-1");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("photo.png"), "FIRST").unwrap();
        extract_json(&session, "msg-1", &message("photo.png"));
        assert_eq!(fs::read_to_string(dir.join("photo.png")).unwrap(), "FIRST");
    }

    #[test]
    fn content_without_base64_data_is_returned_unchanged() {
        let (_root, session) = session();
        for raw in [
            "not json",
            r#"{"text":"no attachments"}"#,
            r#"{"attachments":"not a list"}"#,
            r#"{"attachments":[{"name":"a.png","url":"https://x"}]}"#,
        ] {
            let content = Content::parse(raw);
            assert_eq!(extract(&session, "msg-1", &content), content, "{raw}");
        }
        assert!(!session.join("inbox").exists());
    }

    #[test]
    fn decode_accepts_unpadded_url_safe_and_wrapped_base64() {
        assert_eq!(decode("UE5HQllURVM=").unwrap(), b"PNGBYTES");
        assert_eq!(decode("UE5HQllURVM").unwrap(), b"PNGBYTES");
        assert_eq!(decode("UE5HQl\nlURVM=").unwrap(), b"PNGBYTES");
        assert_eq!(decode("_-8").unwrap(), [0xff, 0xef]);
        assert_eq!(decode("not base64 !!"), None);
    }

    #[test]
    fn several_unnamed_attachments_of_one_message_are_all_saved() {
        let (_root, session) = session();
        let content = json!({"attachments": [
            {"type": "photo", "data": PNG_BYTES},
            {"type": "photo", "data": "b3duZWQ="},
        ]})
        .to_string();
        let stored: Value =
            serde_json::from_str(&extract_json(&session, "album", &content)).unwrap();
        let first = stored["attachments"][0]["localPath"].as_str().unwrap();
        let second = stored["attachments"][1]["localPath"].as_str().unwrap();
        assert_ne!(first, second);
        assert!(second.ends_with("-2.jpg"), "{second}");
        assert_eq!(fs::read(session.join(first)).unwrap(), b"PNGBYTES");
        assert_eq!(fs::read(session.join(second)).unwrap(), b"owned");
    }
}
