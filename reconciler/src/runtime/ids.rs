//! Identifier and timestamp formats (host.md §0.6): `<prefix>-<ms>-<rand6>` and ISO-8601 UTC.
//!
//! Randomness comes from std's per-process random hasher keys: these ids need to be unique,
//! not secret.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// `<prefix>-<unix ms>-<6 base-36 chars>`, e.g. `sess-1767225600000-k3j9x0`.
pub fn generate(prefix: &str) -> String {
    let ms = jiff::Timestamp::now().as_millisecond();
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
            let digit = (value % 36) as usize;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_v2_shape_and_differ() {
        let id_pattern = regex::Regex::new(r"^sess-\d{13}-[0-9a-z]{6}$").unwrap();
        let first = generate("sess");
        let second = generate("sess");
        assert!(id_pattern.is_match(&first), "{first}");
        assert_ne!(first, second);
        let time_pattern = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$").unwrap();
        assert!(time_pattern.is_match(&now_iso()), "{}", now_iso());
    }
}
