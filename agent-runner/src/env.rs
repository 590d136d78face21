//! Every environment variable the runner reads. Config otherwise comes from `container.json`.

/// `TZ`: the user's IANA zone for prompt times (invalid or unset → UTC, see `timezone`).
pub const TZ: &str = "TZ";

/// Reads one variable; unset or non-UTF-8 reads as `None`.
pub fn get(name: &str) -> Option<String> {
    #[allow(clippy::disallowed_methods)] // the one permitted reader of the environment
    std::env::var(name).ok()
}
