//! Making sure a Docker daemon answers before `nanoclaw run` starts containers.
//!
//! The decision (ready / install + start / start / explain) is a pure function of a few host
//! facts; the IO around it installs `docker.io` with apt-get and starts `dockerd` in the
//! background only when we are root. As a normal user it never escalates: it returns an error
//! naming the exact commands to run.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{ContainerError, Docker, connect};

/// How long a freshly started dockerd may take to answer.
pub const START_DEADLINE: Duration = Duration::from_secs(30);
/// File (in the data directory) receiving a started dockerd's output.
pub const DOCKERD_LOG: &str = "dockerd.log";
/// What a non-root user is told to run.
pub const MANUAL_SETUP: &str = "sudo apt-get install -y docker.io && sudo systemctl start docker && sudo usermod -aG docker $USER   # then log in again";

/// What we know about the host when the daemon did not answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostFacts {
    pub daemon_answers: bool,
    pub is_root: bool,
    pub has_dockerd: bool,
}

/// What [`ensure_daemon`] will do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaemonPlan {
    /// A daemon answers: nothing to do.
    Ready,
    /// We are root: (install `docker.io` if needed, then) start dockerd and wait for it.
    Start { install: bool },
    /// Not root: tell the user what to run.
    Explain(String),
}

/// The decision, without IO.
pub fn decide(facts: HostFacts) -> DaemonPlan {
    if facts.daemon_answers {
        DaemonPlan::Ready
    } else if facts.is_root {
        DaemonPlan::Start {
            install: !facts.has_dockerd,
        }
    } else if facts.has_dockerd {
        DaemonPlan::Explain("Docker is installed but no daemon answers, and starting it needs root\n\nhint: run `sudo systemctl start docker`; if you still cannot connect, add yourself to the `docker` group: `sudo usermod -aG docker $USER` (then log in again)".to_string())
    } else {
        DaemonPlan::Explain(format!(
            "Docker is not installed and installing it needs root\n\nhint: run `{MANUAL_SETUP}`"
        ))
    }
}

/// Returns a connected client, starting (and if needed installing) dockerd when we are root.
pub async fn ensure_daemon(data_dir: &Path) -> Result<Docker, ContainerError> {
    let first_error = match connect().await {
        Ok(docker) => return Ok(docker),
        Err(err) => err,
    };
    let facts = HostFacts {
        daemon_answers: false,
        is_root: is_root(),
        has_dockerd: has_dockerd(),
    };
    match decide(facts) {
        DaemonPlan::Ready => connect().await,
        DaemonPlan::Explain(text) => {
            Err(ContainerError::Daemon(format!("{first_error}\n\n{text}")))
        }
        DaemonPlan::Start { install } => {
            if install {
                tracing::info!("installing docker.io with apt-get");
                run_blocking(install_docker).await?;
            }
            start_dockerd(data_dir)?;
            wait_for_daemon().await
        }
    }
}

/// Effective uid 0, read from `/proc/self` (owned by the process's effective uid).
pub(crate) fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

fn has_dockerd() -> bool {
    Command::new("dockerd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn install_docker() -> Result<(), ContainerError> {
    for args in [
        &["update"][..],
        &["install", "-y", "--no-install-recommends", "docker.io"][..],
    ] {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .map_err(|source| ContainerError::Io {
                path: "apt-get".into(),
                source,
            })?;
        if !status.success() {
            return Err(ContainerError::Daemon(format!(
                "`apt-get {}` failed ({status})",
                args.join(" ")
            )));
        }
    }
    Ok(())
}

fn start_dockerd(data_dir: &Path) -> Result<(), ContainerError> {
    let log_path = data_dir.join(DOCKERD_LOG);
    let io_error = |source| ContainerError::Io {
        path: log_path.clone(),
        source,
    };
    std::fs::create_dir_all(data_dir).map_err(io_error)?;
    let log = std::fs::File::create(&log_path).map_err(io_error)?;
    let log_err = log.try_clone().map_err(io_error)?;
    tracing::info!(log = %log_path.display(), "starting dockerd in the background");
    // Detached on purpose: the daemon outlives nanoclaw, like a system service would. Its own
    // process group keeps Ctrl-C on `nanoclaw run` (sent to the terminal's foreground group)
    // from stopping it, and every container of every install with it.
    use std::os::unix::process::CommandExt;
    Command::new("dockerd")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|source| ContainerError::Io {
            path: "dockerd".into(),
            source,
        })?;
    Ok(())
}

async fn wait_for_daemon() -> Result<Docker, ContainerError> {
    let deadline = tokio::time::Instant::now() + START_DEADLINE;
    loop {
        match connect().await {
            Ok(docker) => return Ok(docker),
            Err(err) if tokio::time::Instant::now() >= deadline => {
                return Err(ContainerError::Daemon(format!(
                    "dockerd did not answer within {}s (see {DOCKERD_LOG} in the data directory): {err}",
                    START_DEADLINE.as_secs()
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

async fn run_blocking(work: fn() -> Result<(), ContainerError>) -> Result<(), ContainerError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| ContainerError::Daemon(format!("installer task failed: {err}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(daemon_answers: bool, is_root: bool, has_dockerd: bool) -> HostFacts {
        HostFacts {
            daemon_answers,
            is_root,
            has_dockerd,
        }
    }

    #[test]
    fn an_answering_daemon_needs_nothing() {
        assert_eq!(decide(facts(true, false, false)), DaemonPlan::Ready);
        assert_eq!(decide(facts(true, true, true)), DaemonPlan::Ready);
    }

    #[test]
    fn root_installs_only_when_dockerd_is_missing() {
        assert_eq!(
            decide(facts(false, true, false)),
            DaemonPlan::Start { install: true }
        );
        assert_eq!(
            decide(facts(false, true, true)),
            DaemonPlan::Start { install: false }
        );
    }

    #[test]
    fn a_user_is_told_what_to_run() {
        let DaemonPlan::Explain(missing) = decide(facts(false, false, false)) else {
            panic!("non-root must not install");
        };
        expect_test::expect![[r#"
            Docker is not installed and installing it needs root

            hint: run `sudo apt-get install -y docker.io && sudo systemctl start docker && sudo usermod -aG docker $USER   # then log in again`"#]].assert_eq(&missing);
        let DaemonPlan::Explain(stopped) = decide(facts(false, false, true)) else {
            panic!("non-root must not start dockerd");
        };
        expect_test::expect![[r#"
            Docker is installed but no daemon answers, and starting it needs root

            hint: run `sudo systemctl start docker`; if you still cannot connect, add yourself to the `docker` group: `sudo usermod -aG docker $USER` (then log in again)"#]].assert_eq(&stopped);
    }
}
