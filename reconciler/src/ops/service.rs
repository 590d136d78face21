//! The service operations: install (the manifests validated first, the unit written, enabled
//! and started), uninstall, and status (the manager's view and the daemon's own health: who
//! holds the data dir's daemon lock). The files and the manager's commands are `service`'s.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::OpsError;
use crate::env;
use crate::lockfile::{self, Holder};
use crate::paths::Paths;
use crate::service::{Manager, PASSED_ENV, Platform, Scope, Service, UnitState};

/// Which manager: `--user`, `--system`, or neither (system as root, else user).
pub fn scope(asked: Option<Scope>) -> Result<Scope, OpsError> {
    let root = rustix::process::geteuid().is_root();
    match asked {
        Some(Scope::System) if !root => Err(OpsError::SystemServiceNeedsRoot),
        Some(scope) => Ok(scope),
        None if root => Ok(Scope::System),
        None => Ok(Scope::User),
    }
}

/// What `install` did.
#[derive(Clone, Debug)]
pub struct Installed {
    pub name: String,
    pub file: PathBuf,
    pub scope: Scope,
    pub platform: Platform,
}

/// Validates `manifests`, writes the service of the install at `paths` and starts it.
pub fn install(
    paths: &Paths,
    manifests: &Path,
    asked: Option<Scope>,
) -> Result<Installed, OpsError> {
    let scope = scope(asked)?;
    if let Err(diagnostics) = super::validate(manifests, &paths.data) {
        return Err(OpsError::Invalid { diagnostics });
    }
    paths.ensure()?;
    let absolute = |path: &Path| {
        path.canonicalize().map_err(|source| OpsError::Resolve {
            path: path.to_path_buf(),
            source,
        })
    };
    let data = absolute(&paths.data)?;
    let exe = std::env::current_exe()
        .and_then(|exe| exe.canonicalize())
        .map_err(|source| OpsError::Resolve {
            path: PathBuf::from("nanoclaw"),
            source,
        })?;
    let owner = std::fs::metadata(&data)
        .map_err(|source| OpsError::Resolve {
            path: data.clone(),
            source,
        })?
        .uid();
    let service = Service {
        slug: paths.slug(),
        scope,
        exe,
        manifests: absolute(manifests)?,
        data,
        uid: (owner != 0).then_some(owner),
        environment: PASSED_ENV
            .iter()
            .filter_map(|key| Some((key.to_string(), env::get(key)?)))
            .collect(),
    };
    let platform = Platform::host();
    let manager = Manager::new(platform, scope)?;
    let file = manager.install(&service)?;
    Ok(Installed {
        name: service.name(platform),
        file,
        scope,
        platform,
    })
}

/// What `uninstall` did.
#[derive(Clone, Debug)]
pub struct Uninstalled {
    pub name: String,
    pub file: PathBuf,
    /// False when no service was installed.
    pub removed: bool,
}

/// Stops, disables and removes the service of the install at `paths`.
pub fn uninstall(paths: &Paths, asked: Option<Scope>) -> Result<Uninstalled, OpsError> {
    let platform = Platform::host();
    let manager = Manager::new(platform, scope(asked)?)?;
    let slug = paths.slug();
    let removed = manager.uninstall(&slug)?;
    Ok(Uninstalled {
        name: crate::service::name(&slug, platform),
        file: manager.file(&slug),
        removed,
    })
}

/// The service and daemon of one install.
#[derive(Clone, Debug)]
pub struct ServiceStatus {
    pub name: String,
    pub scope: Scope,
    pub file: PathBuf,
    pub installed: bool,
    /// The manager's view; `None` when the file is absent.
    pub unit: Option<UnitState>,
    /// The daemon holding the data dir's lock, if one runs (started by the service or not).
    pub daemon: Option<Holder>,
}

impl ServiceStatus {
    /// Installed, started by the manager, and the daemon holds its lock.
    pub fn healthy(&self) -> bool {
        self.installed
            && self.unit.as_ref().is_some_and(|unit| unit.running)
            && self.daemon.is_some()
    }
}

/// Reads the service's state and the daemon's health.
pub fn status(paths: &Paths, asked: Option<Scope>) -> Result<ServiceStatus, OpsError> {
    let platform = Platform::host();
    let scope = scope(asked)?;
    let manager = Manager::new(platform, scope)?;
    let slug = paths.slug();
    let file = manager.file(&slug);
    let installed = file.exists();
    let unit = if installed {
        Some(manager.state(&slug)?)
    } else {
        None
    };
    let daemon = lockfile::holder_of(&paths.run_lock()).map_err(OpsError::Probe)?;
    Ok(ServiceStatus {
        name: crate::service::name(&slug, platform),
        scope,
        file,
        installed,
        unit,
        daemon,
    })
}
