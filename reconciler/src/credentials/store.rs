//! Stored credentials: `<data>/credentials/<service>.json`, 0600 in a 0700 folder, written
//! atomically. The Anthropic credential ([`Store`]) is read per proxied request (a small file),
//! so `nanoclaw auth set` takes effect on a running daemon without a restart; the Telegram bot
//! token ([`TokenStore`]) is read when the Telegram channel starts. Nothing here prints or logs
//! a secret.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Credential, CredentialError, Secret, Source};

/// The credential file of one data dir.
#[derive(Clone, Debug)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// The store of the data dir `data`.
    pub fn new(data: &Path) -> Store {
        Store {
            path: data.join("credentials").join("anthropic.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored credential; `None` when none is stored. A file others can read is refused
    /// rather than used: the secret may already have leaked, and the owner should know.
    pub fn load(&self) -> Result<Option<Credential>, CredentialError> {
        let Some(credential) = load_private::<Credential>(&self.path)? else {
            return Ok(None);
        };
        if credential.secret.expose().is_empty() {
            return Err(CredentialError::Invalid {
                path: self.path.clone(),
                why: "the secret is empty".into(),
            });
        }
        Ok(Some(credential))
    }

    /// Writes the credential: a temporary file created 0600 next to it, synced, then renamed
    /// over the old one, so a reader sees the old or the new credential, never half of one.
    pub fn save(&self, credential: &Credential) -> Result<(), CredentialError> {
        save_private(&self.path, credential)
    }

    /// Deletes the stored credential; returns whether there was one.
    pub fn remove(&self) -> Result<bool, CredentialError> {
        remove_private(&self.path)
    }

    /// The credential in force: the stored one, else the daemon's environment (`env`, read once
    /// at startup by [`super::from_env`]), else [`CredentialError::Missing`].
    pub fn resolve(
        &self,
        env: Option<&(Credential, Source)>,
    ) -> Result<(Credential, Source), CredentialError> {
        if let Some(credential) = self.load()? {
            return Ok((credential, Source::Stored(self.path.clone())));
        }
        env.cloned().ok_or(CredentialError::Missing)
    }
}

/// The Telegram bot token (`nanoclaw auth set telegram`): `<data>/credentials/telegram.json`,
/// `{"token": …}`, kept like the Anthropic credential.
#[derive(Clone, Debug)]
pub struct TokenStore {
    path: PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredToken {
    token: Secret,
}

impl TokenStore {
    /// The token store of the data dir `data`.
    pub fn telegram(data: &Path) -> TokenStore {
        TokenStore {
            path: data.join("credentials").join("telegram.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored token; `None` when none is stored; refused when others can read the file.
    pub fn load(&self) -> Result<Option<Secret>, CredentialError> {
        let Some(stored) = load_private::<StoredToken>(&self.path)? else {
            return Ok(None);
        };
        if stored.token.expose().is_empty() {
            return Err(CredentialError::Invalid {
                path: self.path.clone(),
                why: "the token is empty".into(),
            });
        }
        Ok(Some(stored.token))
    }

    pub fn save(&self, token: &Secret) -> Result<(), CredentialError> {
        save_private(
            &self.path,
            &StoredToken {
                token: token.clone(),
            },
        )
    }

    /// Deletes the stored token; returns whether there was one.
    pub fn remove(&self) -> Result<bool, CredentialError> {
        remove_private(&self.path)
    }

    /// The token in force: the stored one, else `env` (`TELEGRAM_BOT_TOKEN`, read by the
    /// caller), with where it came from.
    pub fn resolve(
        &self,
        env: Option<Secret>,
    ) -> Result<Option<(Secret, Source)>, CredentialError> {
        if let Some(token) = self.load()? {
            return Ok(Some((token, Source::Stored(self.path.clone()))));
        }
        Ok(env.map(|token| (token, Source::Environment(crate::env::TELEGRAM_BOT_TOKEN))))
    }
}

/// Reads a private JSON file: `None` when absent; refused when group or others can read it.
fn load_private<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, CredentialError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CredentialError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CredentialError::Exposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| CredentialError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|err| CredentialError::Invalid {
            path: path.to_path_buf(),
            why: err.to_string(),
        })
}

/// Writes a private JSON file: a temporary file created 0600 next to it, synced, then renamed
/// over the old one, so a reader sees the old or the new content, never half of it.
fn save_private<T: Serialize>(path: &Path, value: &T) -> Result<(), CredentialError> {
    let write_error = |source| CredentialError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().expect("a credential path has a folder");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(write_error)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(write_error)?;
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .expect("a credential file has a name");
    let temporary = dir.join(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(write_error)?;
    let text = serde_json::to_string(value).expect("a credential serialises");
    file.write_all(text.as_bytes()).map_err(write_error)?;
    file.sync_all().map_err(write_error)?;
    std::fs::rename(&temporary, path).map_err(write_error)
}

fn remove_private(path: &Path) -> Result<bool, CredentialError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(CredentialError::Write {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::credentials::{Kind, Secret};

    fn key(value: &str) -> Credential {
        Credential {
            kind: Kind::ApiKey,
            secret: Secret::new(value),
        }
    }

    #[test]
    fn a_saved_credential_is_private_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert_eq!(store.load().unwrap(), None);
        store.save(&key("sk-ant-api03-one")).unwrap();
        store.save(&key("sk-ant-api03-two")).unwrap();
        assert_eq!(store.load().unwrap(), Some(key("sk-ant-api03-two")));
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(store.path()), 0o600);
        assert_eq!(mode(store.path().parent().unwrap()), 0o700);
        assert!(store.remove().unwrap());
        assert!(!store.remove().unwrap());
    }

    #[test]
    fn a_credential_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        store.save(&key("sk-ant-api03-one")).unwrap();
        std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = store.load().unwrap_err();
        assert!(
            matches!(err, CredentialError::Exposed { mode: 0o644, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_telegram_token_is_stored_privately_beside_the_anthropic_credential() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = TokenStore::telegram(dir.path());
        assert_eq!(tokens.resolve(None).unwrap(), None);
        let env = Some(Secret::new("1:from-env"));
        let (_, source) = tokens.resolve(env.clone()).unwrap().unwrap();
        assert_eq!(source, Source::Environment("TELEGRAM_BOT_TOKEN"));
        tokens.save(&Secret::new("123:stored")).unwrap();
        let (token, source) = tokens.resolve(env).unwrap().unwrap();
        assert_eq!(token.expose(), "123:stored");
        assert_eq!(
            source,
            Source::Stored(dir.path().join("credentials/telegram.json"))
        );
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(tokens.path()), 0o600);
        std::fs::set_permissions(tokens.path(), std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            tokens.load(),
            Err(CredentialError::Exposed { .. })
        ));
        assert!(tokens.remove().unwrap());
    }

    #[test]
    fn the_stored_credential_wins_over_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let env = (key("from-env"), Source::Environment("ANTHROPIC_API_KEY"));
        assert!(matches!(store.resolve(None), Err(CredentialError::Missing)));
        assert_eq!(store.resolve(Some(&env)).unwrap(), env);
        store.save(&key("stored")).unwrap();
        let (credential, source) = store.resolve(Some(&env)).unwrap();
        assert_eq!(credential, key("stored"));
        assert_eq!(source, Source::Stored(store.path().to_path_buf()));
    }
}
