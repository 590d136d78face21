//! Lending the Anthropic credential to a container without giving it away (issue 10 point 5;
//! docs/security.md#credentials): before a container whose provider calls the API is
//! created, [`Leases::lend`] registers a fresh placeholder key for it in the proxy's
//! [`Placeholders`] and adds the environment that points its Claude Code at the runner's
//! forwarder with that key (`credentials::container_env`); [`Leases::release`] voids the key when
//! the container ends or could not be started. The composed spec already mounts the proxy's
//! socket folder read-only (`runtime::compose`).
//!
//! One lease per session, each registered under its own owner name (the container's name and a
//! spawn number), so voiding a finished container's key never voids its successor's. The
//! placeholder is added after the config hash is taken: a new key per container does not make
//! a running container look stale. No credential on the host → [`Leases::lend`] refuses
//! ([`CredentialError::Missing`], whose text is the chat's message) and nothing is started.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::debug;

use crate::containers::SpawnSpec;
use crate::containers::labels::container_name;
use crate::credentials::{self, Credential, CredentialError, Placeholders, Source, Store};

/// The credential's lender: shared by the waker's start tasks. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Leases {
    placeholders: Placeholders,
    store: Store,
    /// The daemon's environment credential, used when none is stored.
    env_credential: Option<(Credential, Source)>,
    slug: String,
    /// Session → the owner name its live placeholder is registered under. Written by `lend`
    /// and `release` (the waker's tasks and the waker), read by nobody else.
    held: Arc<Mutex<HashMap<String, String>>>,
    /// Numbers each lease, so owner names are never reused.
    serial: Arc<AtomicU64>,
}

impl Leases {
    pub fn new(
        placeholders: Placeholders,
        store: Store,
        env_credential: Option<(Credential, Source)>,
        slug: String,
    ) -> Leases {
        Leases {
            placeholders,
            store,
            env_credential,
            slug,
            held: Arc::default(),
            serial: Arc::default(),
        }
    }

    /// Whether a usable credential is configured (stored, else the daemon's environment).
    pub fn has_credential(&self) -> bool {
        self.store.resolve(self.env_credential.as_ref()).is_ok()
    }

    /// Gives a container that calls the API (`spec.credentials`) a fresh placeholder and the
    /// environment that uses it; a no-op for any other. A previous lease of the session (its
    /// container has ended) is voided. Refuses when no usable credential is configured.
    pub fn lend(&self, spec: &mut SpawnSpec) -> Result<(), CredentialError> {
        if !spec.credentials {
            return Ok(());
        }
        let (credential, _) = self.store.resolve(self.env_credential.as_ref())?;
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let owner = format!("{}#{serial}", container_name(&self.slug, &spec.session_id));
        let placeholder =
            self.placeholders
                .register(&owner)
                .map_err(|source| CredentialError::Read {
                    path: "/dev/urandom".into(),
                    source,
                })?;
        if let Some(previous) = self.held().insert(spec.session_id.clone(), owner) {
            self.placeholders.revoke(&previous);
        }
        spec.env
            .extend(credentials::container_env(credential.kind, &placeholder));
        debug!(session = %spec.session_id, "placeholder lent");
        Ok(())
    }

    /// Voids the session's placeholder (its container ended or never started).
    pub fn release(&self, session: &str) {
        if let Some(owner) = self.held().remove(session) {
            self.placeholders.revoke(&owner);
            debug!(session, "placeholder voided");
        }
    }

    fn held(&self) -> MutexGuard<'_, HashMap<String, String>> {
        // A panic while holding the lock leaves a plain map behind: still consistent.
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::credentials::{Kind, Secret};
    use crate::resources::Resources;
    use crate::state::Network;

    fn spec(session: &str, credentials: bool) -> SpawnSpec {
        SpawnSpec {
            session_id: session.into(),
            agent: "andy".into(),
            session_dir: PathBuf::from("/data/sessions/andy").join(session),
            group_dir: "/data/groups/andy".into(),
            image: "img".into(),
            system_mounts: Vec::new(),
            extra_mounts: Vec::new(),
            env: Vec::new(),
            config_hash: "h".into(),
            credentials,
            resources: Resources::default(),
            network: Network::None,
        }
    }

    fn key_of(spec: &SpawnSpec, name: &str) -> Option<String> {
        spec.env
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    }

    fn leases(data: &std::path::Path, credential: Option<Kind>) -> (Leases, Placeholders) {
        let placeholders = Placeholders::new();
        let env = credential.map(|kind| {
            (
                Credential {
                    kind,
                    secret: Secret::new("sk-ant-real"),
                },
                Source::Environment("ANTHROPIC_API_KEY"),
            )
        });
        let leases = Leases::new(
            placeholders.clone(),
            Store::new(data),
            env,
            "0a1b2c3d".into(),
        );
        (leases, placeholders)
    }

    #[test]
    fn a_container_gets_a_live_placeholder_until_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let (leases, placeholders) = leases(dir.path(), Some(Kind::ApiKey));
        let mut first = spec("s1", true);
        leases.lend(&mut first).unwrap();
        let key = key_of(&first, "ANTHROPIC_API_KEY").expect("the placeholder");
        assert!(key.starts_with(credentials::placeholders::PREFIX));
        assert!(
            !first
                .env
                .iter()
                .any(|(_, value)| value.contains("sk-ant-real"))
        );
        assert_eq!(
            placeholders.check(&key).as_deref(),
            Some("nanoclaw-0a1b2c3d-s1#0")
        );
        leases.release("s1");
        assert_eq!(placeholders.check(&key), None, "voided when it ends");
        assert!(placeholders.is_empty());
    }

    #[test]
    fn a_new_container_of_the_session_voids_the_previous_key_and_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let (leases, placeholders) = leases(dir.path(), Some(Kind::OauthToken));
        let mut first = spec("s1", true);
        leases.lend(&mut first).unwrap();
        let mut second = spec("s1", true);
        leases.lend(&mut second).unwrap();
        let old = key_of(&first, "CLAUDE_CODE_OAUTH_TOKEN").unwrap();
        let new = key_of(&second, "CLAUDE_CODE_OAUTH_TOKEN").unwrap();
        assert_eq!(placeholders.check(&old), None);
        assert!(placeholders.check(&new).is_some());
        let mut other = spec("s2", true);
        leases.lend(&mut other).unwrap();
        leases.release("s1");
        assert!(
            placeholders
                .check(&key_of(&other, "CLAUDE_CODE_OAUTH_TOKEN").unwrap())
                .is_some(),
            "another session's key lives on"
        );
    }

    #[test]
    fn a_provider_without_the_api_gets_nothing_and_no_credential_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let (leases, placeholders) = leases(dir.path(), None);
        let mut mock = spec("s1", false);
        leases.lend(&mut mock).unwrap();
        assert!(mock.env.is_empty());
        assert!(!leases.has_credential());
        let mut claude = spec("s2", true);
        let refused = leases.lend(&mut claude).unwrap_err();
        assert!(matches!(refused, CredentialError::Missing), "{refused}");
        assert!(claude.env.is_empty());
        assert!(placeholders.is_empty());
        Store::new(dir.path())
            .save(&Credential {
                kind: Kind::ApiKey,
                secret: Secret::new("sk-ant-stored"),
            })
            .unwrap();
        assert!(
            leases.has_credential(),
            "a stored credential is seen at once"
        );
        leases.lend(&mut claude).unwrap();
        assert!(key_of(&claude, "ANTHROPIC_API_KEY").is_some());
    }
}
