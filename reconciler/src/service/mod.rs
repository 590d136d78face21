//! `nanoclaw service`: the daemon (`nanoclaw run`) as a service of the host's service manager,
//! systemd (a user unit by default, a system unit as root) or launchd on macOS.
//!
//! ```text
//! Service (what to run: binary, manifests, data dir, slug, scope)
//!   → systemd::unit / launchd::plist   the file's text (pure, snapshot-tested)
//!   → Manager                          where it goes and the commands that load, start,
//!                                      stop and query it (systemctl / launchctl)
//! ```
//!
//! Every name derives from the install slug ([`crate::paths::Paths::slug`]): two data dirs on
//! one host get two units (`nanoclaw-<slug>.service`, `com.nanoclaw.<slug>`) that never share
//! a file, a name or a log identifier. A crash loop stops: systemd's start limit (5 starts in
//! 10 minutes), launchd's throttle. Writing files and running the manager is here; deciding
//! what to say about it is `ops::service`.

pub mod launchd;
pub mod systemd;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::env;

/// Restarts within [`START_LIMIT_INTERVAL_SECS`] after which systemd stops restarting.
pub const START_LIMIT_BURST: u32 = 5;
pub const START_LIMIT_INTERVAL_SECS: u32 = 600;
/// Wait before a restart (systemd `RestartSec`, launchd `ThrottleInterval`).
pub const RESTART_SECS: u32 = 10;
/// How long a stop may take before the manager kills: the daemon stops its containers first.
pub const STOP_TIMEOUT_SECS: u32 = 90;

/// Which service manager instance holds the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The user's own manager (`systemctl --user`, a LaunchAgent): runs while the user has a
    /// session, or always with lingering.
    User,
    /// The system manager (root only): runs from boot, as the data dir's owner.
    System,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::System => "system",
        }
    }
}

/// The host's service manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    Systemd,
    Launchd,
}

impl Platform {
    /// launchd on macOS, systemd elsewhere.
    pub fn host() -> Platform {
        if cfg!(target_os = "macos") {
            Platform::Launchd
        } else {
            Platform::Systemd
        }
    }
}

/// One install's service: everything the unit file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub slug: String,
    pub scope: Scope,
    /// The `nanoclaw` binary (absolute).
    pub exe: PathBuf,
    /// The manifest folder `run` applies (absolute).
    pub manifests: PathBuf,
    /// The data dir (absolute).
    pub data: PathBuf,
    /// A system service runs as this uid (the data dir's owner) unless it is root.
    pub uid: Option<u32>,
    /// Variables the daemon needs from the installing shell (`DOCKER_HOST`, `NANOCLAW_LOG`, …).
    pub environment: Vec<(String, String)>,
}

/// Variables copied from the installing shell into the service when set: the daemon reads them
/// and a service manager starts with an almost empty environment.
pub const PASSED_ENV: &[&str] = &[
    env::DOCKER_HOST,
    env::NANOCLAW_LOG,
    env::NANOCLAW_RUNNER,
    env::TZ,
    env::XDG_CONFIG_HOME,
];

impl Service {
    /// The unit's name: `nanoclaw-<slug>` (systemd) or `com.nanoclaw.<slug>` (launchd).
    pub fn name(&self, platform: Platform) -> String {
        name(&self.slug, platform)
    }

    /// The arguments of the daemon's command line, after the binary.
    pub fn run_args(&self) -> Vec<String> {
        vec![
            "run".to_string(),
            self.manifests.display().to_string(),
            "--data".to_string(),
            self.data.display().to_string(),
        ]
    }

    /// The file's text for `platform`.
    pub fn render(&self, platform: Platform) -> String {
        match platform {
            Platform::Systemd => systemd::unit(self),
            Platform::Launchd => launchd::plist(self),
        }
    }
}

/// The service name of the install `slug`.
pub fn name(slug: &str, platform: Platform) -> String {
    match platform {
        Platform::Systemd => format!("nanoclaw-{slug}"),
        Platform::Launchd => format!("com.nanoclaw.{slug}"),
    }
}

/// Where a scope's service files go, and the manager's commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manager {
    pub platform: Platform,
    pub scope: Scope,
    /// The folder the unit file or plist is written to.
    pub dir: PathBuf,
}

/// Why a service could not be managed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("`{}` failed ({status}): {}", command, stderr.trim())]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("cannot run `{program}`: {source}\n\nhint: {hint}")]
    Spawn {
        program: String,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("`{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot tell where {scope} services go: neither `XDG_CONFIG_HOME` nor `HOME` is set")]
    NoHome { scope: &'static str },
}

impl Manager {
    /// The manager of `scope` on this host.
    pub fn new(platform: Platform, scope: Scope) -> Result<Manager, ServiceError> {
        let home = || env::get(env::HOME).map(PathBuf::from);
        let dir = match (platform, scope) {
            (Platform::Systemd, Scope::System) => PathBuf::from("/etc/systemd/system"),
            (Platform::Systemd, Scope::User) => env::get(env::XDG_CONFIG_HOME)
                .map(PathBuf::from)
                .or_else(|| home().map(|home| home.join(".config")))
                .ok_or(ServiceError::NoHome { scope: "user" })?
                .join("systemd/user"),
            (Platform::Launchd, Scope::System) => PathBuf::from("/Library/LaunchDaemons"),
            (Platform::Launchd, Scope::User) => home()
                .ok_or(ServiceError::NoHome { scope: "user" })?
                .join("Library/LaunchAgents"),
        };
        Ok(Manager {
            platform,
            scope,
            dir,
        })
    }

    /// The service file of the install `slug`.
    pub fn file(&self, slug: &str) -> PathBuf {
        let name = name(slug, self.platform);
        match self.platform {
            Platform::Systemd => self.dir.join(format!("{name}.service")),
            Platform::Launchd => self.dir.join(format!("{name}.plist")),
        }
    }

    /// Writes the service file (owner-only writable, atomically), loads and (re)starts it.
    pub fn install(&self, service: &Service) -> Result<PathBuf, ServiceError> {
        let path = self.file(&service.slug);
        write_atomic(&path, &service.render(self.platform))?;
        match self.platform {
            Platform::Systemd => systemd::install(self, &service.name(self.platform))?,
            Platform::Launchd => launchd::install(self, &service.name(self.platform), &path)?,
        }
        Ok(path)
    }

    /// Stops and disables the service of `slug` and removes its file; `false` when there was
    /// no file.
    pub fn uninstall(&self, slug: &str) -> Result<bool, ServiceError> {
        let path = self.file(slug);
        if !path.exists() {
            return Ok(false);
        }
        let name = name(slug, self.platform);
        match self.platform {
            Platform::Systemd => systemd::stop(self, &name)?,
            Platform::Launchd => launchd::stop(self, &name, &path)?,
        }
        std::fs::remove_file(&path).map_err(|source| ServiceError::Io {
            path: path.clone(),
            source,
        })?;
        if self.platform == Platform::Systemd {
            systemd::reload(self)?;
        }
        Ok(true)
    }

    /// What the manager says about the service of `slug`.
    pub fn state(&self, slug: &str) -> Result<UnitState, ServiceError> {
        let name = name(slug, self.platform);
        match self.platform {
            Platform::Systemd => systemd::state(self, &name),
            Platform::Launchd => launchd::state(self, &name),
        }
    }
}

/// The manager's view of a service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnitState {
    /// `active (running)`, `failed`, `inactive (dead)`, `not loaded`, …
    pub state: String,
    pub running: bool,
    /// The manager gave up restarting (systemd's start limit).
    pub failed: bool,
    /// Restarts since it was started, when the manager counts them.
    pub restarts: Option<u64>,
    /// Whether it starts by itself (enabled at boot or login).
    pub enabled: Option<bool>,
}

/// Runs `program args` and returns its stdout; a non-zero exit is an error with its stderr.
fn run(program: &str, args: &[&str], hint: &'static str) -> Result<String, ServiceError> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| ServiceError::Spawn {
            program: program.to_string(),
            source,
            hint,
        })?;
    if !output.status.success() {
        return Err(ServiceError::Command {
            command: format!("{program} {}", args.join(" ")),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Writes `text` to a temp file beside `path` (mode 0644: managers read it as another user),
/// then renames it over `path`; creates the folder.
fn write_atomic(path: &Path, text: &str) -> Result<(), ServiceError> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let io = |source| ServiceError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut temp = tempfile::Builder::new()
        .prefix(".nanoclaw-service-")
        .tempfile_in(dir)
        .map_err(io)?;
    temp.write_all(text.as_bytes()).map_err(io)?;
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(io)?;
    temp.persist(path).map_err(|err| io(err.error))?;
    Ok(())
}

#[cfg(test)]
mod tests;
