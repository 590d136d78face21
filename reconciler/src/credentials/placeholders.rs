//! The placeholder registry: one fresh random key per container, valid while that container
//! lives. The runtime registers a placeholder when it spawns a container and revokes it when the
//! container ends; the proxy accepts only keys registered here, so a container cannot use another
//! install's key (each install has its own registry and socket) or a stopped container's.
//!
//! Keys are kept as SHA-256 digests: the registry never holds a usable key, and a lookup compares
//! digests rather than the presented text.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::Secret;

/// What a placeholder key starts with (docs/security.md#credentials).
pub const PREFIX: &str = "nanoclaw-placeholder-";

/// A container's placeholder: the key its Claude Code presents, and the container it belongs to.
#[derive(Clone, Debug)]
pub struct Placeholder {
    pub key: Secret,
    pub container: String,
}

/// Shared by the runtime (register, revoke) and the proxy (check). Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Placeholders {
    /// Digest of a key → the container it was made for. Written by `register`/`revoke`
    /// (the runtime), read by `check` (the proxy, per request).
    inner: Arc<Mutex<HashMap<[u8; 32], String>>>,
}

impl Placeholders {
    pub fn new() -> Placeholders {
        Placeholders::default()
    }

    /// Makes a fresh key for `container` (its Docker name). Fails only when the system has no
    /// random source.
    pub fn register(&self, container: &str) -> std::io::Result<Placeholder> {
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        let key = format!("{PREFIX}{hex}");
        self.lock().insert(digest(&key), container.to_string());
        Ok(Placeholder {
            key: Secret::new(key),
            container: container.to_string(),
        })
    }

    /// Voids every key of `container`; returns how many there were. Called when it ends.
    pub fn revoke(&self, container: &str) -> usize {
        let mut map = self.lock();
        let before = map.len();
        map.retain(|_, owner| owner != container);
        before - map.len()
    }

    /// The container a presented key belongs to, if it is a live placeholder.
    pub fn check(&self, presented: &str) -> Option<String> {
        self.lock().get(&digest(presented)).cloned()
    }

    /// How many keys are live (logs and tests).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], String>> {
        // A panic while holding this lock leaves a plain map behind: still consistent.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_valid_until_its_container_is_revoked() {
        let placeholders = Placeholders::new();
        let first = placeholders.register("nanoclaw-abc-1").unwrap();
        let second = placeholders.register("nanoclaw-abc-2").unwrap();
        assert_ne!(first.key, second.key);
        assert!(first.key.expose().starts_with(PREFIX));
        assert_eq!(first.key.expose().len(), PREFIX.len() + 64);
        assert_eq!(
            placeholders.check(first.key.expose()).as_deref(),
            Some("nanoclaw-abc-1")
        );
        assert_eq!(placeholders.revoke("nanoclaw-abc-1"), 1);
        assert_eq!(placeholders.check(first.key.expose()), None);
        assert_eq!(
            placeholders.check(second.key.expose()).as_deref(),
            Some("nanoclaw-abc-2")
        );
        assert_eq!(placeholders.check("sk-ant-api03-guess"), None);
        assert_eq!(placeholders.len(), 1);
    }

    #[test]
    fn another_registry_does_not_know_the_key() {
        let install_a = Placeholders::new();
        let install_b = Placeholders::new();
        let key = install_a.register("nanoclaw-a-1").unwrap().key;
        assert_eq!(install_b.check(key.expose()), None);
    }
}
