//! THE id generator and time formats of nanoclaw (v2's formats), used by both sides: the host's
//! central DB rows (sessions, chats, failures), the rows it writes into `inbound.db`, the
//! runner's `messages_out` rows.
//!
//! - Ids: `<prefix>-<unix ms>-<6 base-36 chars>` ([`new_id`]), e.g. `sess-1767225600000-k3j9x0`.
//!   Randomness comes from std's per-process random hasher keys: ids must be unique, not secret.
//! - Times written by Rust: ISO-8601 UTC with milliseconds and `Z` ([`now_iso`]), e.g.
//!   `2026-04-29T10:00:00.000Z`. Times written by SQL statements are SQLite's `datetime('now')`
//!   (`2026-04-29 10:00:00`, UTC) as in v2; [`parse_time`] reads both.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh `<prefix>-<unix ms>-<rand6>` id.
pub fn new_id(prefix: &str) -> String {
    let ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    format!("{prefix}-{ms}-{}", rand6())
}

/// Six random lowercase base-36 characters.
pub fn rand6() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let mut value = hasher.finish();
    let alphabet = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..6)
        .map(|_| {
            let digit = usize::try_from(value % 36).unwrap_or(0);
            value /= 36;
            char::from(alphabet[digit])
        })
        .collect()
}

/// Now as ISO-8601 UTC with milliseconds and `Z` (e.g. `2026-04-29T10:00:00.000Z`).
pub fn now_iso() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Reads a protocol time: SQLite's `YYYY-MM-DD HH:MM:SS` (UTC) or ISO-8601 with any zone
/// marker; zone-less text is UTC. `None` when it is neither.
pub fn parse_time(text: &str) -> Option<SystemTime> {
    let text = text.trim().replacen(' ', "T", 1);
    // A zone marker sits after the date: `Z`/`z`, or a `+`/`-` offset in the time part (the
    // date's own dashes must not count). Only zone-less text is read as UTC.
    let time = text.get(10..).unwrap_or_default();
    let zoned = time.ends_with(['Z', 'z']) || time.contains(['+', '-']);
    let normalised = if zoned { text } else { format!("{text}Z") };
    let timestamp: jiff::Timestamp = normalised.parse().ok()?;
    let millis = u64::try_from(timestamp.as_millisecond()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_v2_shape_and_differ() {
        let id_pattern = regex::Regex::new(r"^sess-\d{13}-[0-9a-z]{6}$").unwrap();
        let first = new_id("sess");
        let second = new_id("sess");
        assert!(id_pattern.is_match(&first), "{first}");
        assert_ne!(first, second);
        let time_pattern = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$").unwrap();
        assert!(time_pattern.is_match(&now_iso()), "{}", now_iso());
    }

    #[test]
    fn both_time_formats_parse_to_the_same_instant() {
        let sqlite = parse_time("2026-04-29 10:00:00").unwrap();
        assert_eq!(parse_time("2026-04-29T10:00:00.000Z"), Some(sqlite));
        assert_eq!(parse_time("2026-04-29T12:00:00+02:00"), Some(sqlite));
        assert_eq!(parse_time("not a time"), None);
        assert!(parse_time(&now_iso()).is_some());
    }
}
