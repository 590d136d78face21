//! The only Docker code: connecting, waking and stopping session containers, orphan cleanup,
//! the agent images (recipes, the local Debian base, builds) and making sure a daemon runs.
//!
//! Nothing outside this folder imports bollard. The runtime uses this face:
//!
//! ```text
//! connect() -> Docker                       fails with an actionable error when no daemon answers
//! Runner::new(docker, slug, max_concurrent) tracks running containers per session (Clone, Arc inside)
//!   wake(SpawnSpec) -> Woken                never errors: Running if a container runs for the session;
//!                                           concurrent wakes of one session share one spawn;
//!                                           Full at max_concurrent, Failed(reason) (logged)
//!   is_running(session) / running() / agent(session) / started_at(session)
//!   stop(session, reason) / stop_all()      stop + remove; no-op when not running
//!   exits() -> broadcast::Receiver<Exited>  one event per container end: session, agent, exit code,
//!                                           why we stopped it (if we did), how long it ran,
//!                                           whether it was killed at its memory limit, and
//!                                           for a failure its last output lines
//! remove_orphans(&docker, slug) -> usize    startup: removes THIS install's labelled containers
//! image_exists(&docker, tag) / build_image(&docker, ImageBuild, progress)
//! image::Recipe::for_provider(provider)     which recipe an agent needs (pure): mock → minimal,
//!                                           anything else → production
//! base::ensure_base(&docker, recipe, progress)  the local Debian base (debootstrap, as root)
//! daemon::ensure_daemon(data_dir)           `nanoclaw run`: start dockerd when root, else explain
//! ```
//!
//! Containers are named `nanoclaw-<slug>-<session>` and labelled `nanoclaw.install`,
//! `nanoclaw.session`, `nanoclaw.agent`, `nanoclaw.config-hash` ([`labels`]). The client pins
//! Docker API 1.41 (Debian's docker.io 20.10) and negotiates down when the daemon is older.
//! This module never touches the central DB: the runtime mirrors `Exited` events into it.

pub mod agent_image;
pub mod base;
pub mod build;
pub mod daemon;
pub mod image;
pub mod labels;
pub mod orphans;
pub mod spawn;
pub mod wake;

use std::path::PathBuf;

pub use build::{BuildProgress, ImageBuild, build_image};
pub use image::{AgentImages, Recipe, image_exists};
pub use orphans::remove_orphans;
pub use spawn::{MountSpec, SpawnSpec, UNPRIVILEGED_GID, UNPRIVILEGED_UID, container_user};
pub use wake::{Exited, Runner, Woken};

use crate::env;

/// Docker API version we speak: the newest Debian's docker.io (20.10) understands.
pub const API_VERSION: bollard::ClientVersion = bollard::ClientVersion {
    major_version: 1,
    minor_version: 41,
};
/// Socket used when `DOCKER_HOST` is unset.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// Seconds a request may take before bollard gives up (builds stream, so this is per read).
const REQUEST_TIMEOUT_SECS: u64 = 600;

/// Errors of the Docker layer.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(
        "no Docker daemon answers at `{socket}`: {why}\n\nhint: start it (`sudo systemctl start docker`, or run `dockerd` as root) and make sure your user may use the socket (`sudo usermod -aG docker $USER`, then log in again)"
    )]
    NoDaemon { socket: String, why: String },
    #[error(
        "`DOCKER_HOST={0}` is not supported: nanoclaw talks to Docker over a unix socket (`unix:///path`)"
    )]
    UnsupportedHost(String),
    #[error("image build failed at {step}: {message}")]
    Build { step: String, message: String },
    #[error(
        "the production image starts from the Debian base `{tag}`, which is not here, and making it (debootstrap) needs root\n\nhint: run `sudo nanoclaw image build --recipe production`, or make the base yourself and run this again:\n{commands}"
    )]
    BaseNeedsRoot { tag: String, commands: String },
    #[error("making the Debian base failed: {0}")]
    Base(String),
    #[error("`{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Daemon(String),
    #[error("docker: {0}")]
    Docker(#[from] bollard::errors::Error),
}

/// A connected Docker client (cheap to clone).
#[derive(Clone, Debug)]
pub struct Docker {
    pub(crate) client: bollard::Docker,
}

/// The unix socket path from `DOCKER_HOST` (or the default).
pub fn socket_path() -> Result<String, ContainerError> {
    socket_from(env::get(env::DOCKER_HOST).as_deref())
}

fn socket_from(docker_host: Option<&str>) -> Result<String, ContainerError> {
    match docker_host {
        None => Ok(DEFAULT_SOCKET.to_string()),
        Some(host) => match host.strip_prefix("unix://") {
            Some(path) => Ok(path.to_string()),
            None if host.starts_with('/') => Ok(host.to_string()),
            None => Err(ContainerError::UnsupportedHost(host.to_string())),
        },
    }
}

/// Connects to the daemon and checks that it answers (pinned to API 1.41, negotiated down).
pub async fn connect() -> Result<Docker, ContainerError> {
    connect_at(&socket_path()?).await
}

/// Connects to the daemon behind one unix socket path.
pub async fn connect_at(socket: &str) -> Result<Docker, ContainerError> {
    let no_daemon = |why: String| ContainerError::NoDaemon {
        socket: socket.to_string(),
        why,
    };
    let client = bollard::Docker::connect_with_unix(socket, REQUEST_TIMEOUT_SECS, &API_VERSION)
        .map_err(|err| no_daemon(err.to_string()))?;
    let client = client
        .negotiate_version()
        .await
        .map_err(|err| no_daemon(err.to_string()))?;
    client
        .ping()
        .await
        .map_err(|err| no_daemon(err.to_string()))?;
    tracing::trace!(socket, version = ?client.client_version(), "connected to docker");
    Ok(Docker { client })
}

/// The daemon's Engine version and the API version negotiated with it (`nanoclaw doctor`).
pub async fn version(docker: &Docker) -> Result<(String, String), ContainerError> {
    let version = docker.client.version().await?;
    let negotiated = docker.client.client_version();
    Ok((
        version.version.unwrap_or_else(|| "?".to_string()),
        format!("{}.{}", negotiated.major_version, negotiated.minor_version),
    ))
}

/// True when the daemon reported "no such container/image" (404).
pub(crate) fn is_not_found(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_selects_the_socket() {
        assert_eq!(socket_from(None).unwrap(), DEFAULT_SOCKET);
        assert_eq!(
            socket_from(Some("unix:///run/user/1000/docker.sock")).unwrap(),
            "/run/user/1000/docker.sock"
        );
        let err = socket_from(Some("tcp://10.0.0.1:2375")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`DOCKER_HOST=tcp://10.0.0.1:2375` is not supported: nanoclaw talks to Docker over a unix socket (`unix:///path`)"
        );
    }

    #[tokio::test]
    async fn missing_socket_is_an_actionable_error() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("nope.sock").display().to_string();
        let err = connect_at(&socket).await.unwrap_err();
        let text = err.to_string().replace(&socket, "$SOCKET");
        expect_test::expect![[r#"
            no Docker daemon answers at `$SOCKET`: Socket not found: $SOCKET

            hint: start it (`sudo systemctl start docker`, or run `dockerd` as root) and make sure your user may use the socket (`sudo usermod -aG docker $USER`, then log in again)"#]].assert_eq(&text);
    }
}
