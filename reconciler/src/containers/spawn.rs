//! Turning a [`SpawnSpec`] into a running container: the mount list and the create request
//! (pure, snapshot-tested), then create + start against the daemon.
//!
//! Every container is confined ([`confinement`]: no capabilities, read-only root, limits, own
//! namespaces), and no mount may hand it the container runtime's socket ([`mount_exposing`]).
//! It does not track running containers or wait for exits (that is [`super::wake`]), and it
//! never validates additional mounts (the caller passes only validated ones,
//! docs/manifests.md#additional-mounts). It decides who a container runs as ([`container_user`]:
//! never root); the runtime's layout gives the agent-writable folders to that user.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard::models::{
    ContainerCreateBody, HostConfig, HostConfigCgroupnsModeEnum, Mount, MountType,
};
use bollard::query_parameters::{CreateContainerOptions, RemoveContainerOptions};

use super::labels::{container_labels, container_name, is_valid_name};
use super::{ContainerError, Docker, is_not_found};
use crate::env;
use crate::resources::Resources;
use crate::state::Network;

/// Where the session folder appears inside the container (the runner's `--workspace`),
/// read-only: everything in it is written by the host.
pub const WORKSPACE: &str = "/workspace";
/// Where the agent's group folder appears inside the container (read-write).
pub const AGENT_DIR: &str = "/workspace/agent";
/// Where the session's agent-writable `outbound/` folder appears (read-write).
pub const OUTBOUND_DIR: &str = "/workspace/outbound";
/// Parent of additional mounts inside the container.
pub const EXTRA_DIR: &str = "/workspace/extra";
/// Seconds Docker waits after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT_SECS: i64 = 2;
/// The length of one CPU scheduling period; the CPU limit is a quota of it (`--cpu-period`).
pub const CPU_PERIOD_MICROS: i64 = 100_000;
/// Where the writable scratch space is: `HOME` of the agent, caches, temp files.
pub const TMP_DIR: &str = "/tmp";
/// The uid containers run as when the daemon runs as root: a fixed unprivileged user, so a
/// container is never root and never the daemon's own uid (docs/containers.md).
pub const UNPRIVILEGED_UID: u32 = 10001;
/// The gid that goes with [`UNPRIVILEGED_UID`].
pub const UNPRIVILEGED_GID: u32 = 10001;

/// `(uid, gid)` every container runs as: the daemon's own effective ids when they are not
/// root (its files stay its own), else [`UNPRIVILEGED_UID`]:[`UNPRIVILEGED_GID`].
pub fn container_user() -> (u32, u32) {
    let uid = rustix::process::geteuid().as_raw();
    if uid == 0 {
        (UNPRIVILEGED_UID, UNPRIVILEGED_GID)
    } else {
        (uid, rustix::process::getegid().as_raw())
    }
}

/// Everything needed to start one session's container.
#[derive(Clone, Debug)]
pub struct SpawnSpec {
    pub session_id: String,
    /// Agent (group) name, for the label.
    pub agent: String,
    /// `sessions/<agent>/<session>/`, mounted read-only at `/workspace`; its `outbound/` is
    /// mounted read-write at `/workspace/outbound`.
    pub session_dir: PathBuf,
    /// `groups/<agent>/`, mounted at `/workspace/agent`.
    pub group_dir: PathBuf,
    pub image: String,
    /// Mounts at absolute container paths that the host composes for every container of this
    /// kind (the credential proxy's socket folder, the shared instructions and skills, the
    /// agent's Claude state), after the session's and before the additional ones.
    pub system_mounts: Vec<MountSpec>,
    /// Additional mounts, already validated; each lands at `/workspace/extra/<container>`.
    pub extra_mounts: Vec<MountSpec>,
    /// Extra environment (provider contributions).
    pub env: Vec<(String, String)>,
    /// The container calls the Anthropic API through the credential proxy: the runtime lends
    /// it a placeholder key (added to `env` after the hash is taken) before creating it, and
    /// voids the key when it ends.
    pub credentials: bool,
    /// Hash of the container configuration, stored as a label so a config change can be seen.
    pub config_hash: String,
    /// The agent's limits (unset ones take `crate::resources`' defaults).
    pub resources: Resources,
    /// `full`: Docker's bridge; `none`: only the container's own loopback.
    pub network: Network,
}

/// One bind mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountSpec {
    pub host: PathBuf,
    /// For [`SpawnSpec::extra_mounts`]: the name under `/workspace/extra`; for
    /// [`SpawnSpec::system_mounts`] and in [`mounts`]' output: the absolute container path.
    pub container: String,
    pub readonly: bool,
}

/// The mounts of a session container, in order (docs/containers.md#a-session-container, changed
/// from v2): the session folder read-only at `/workspace`, then the agent-writable leaves inside it
/// (the agent's folder and the session's `outbound/`), then the composed system mounts, then
/// extras. Every writable mount's parent is host-owned, so the host can trust a directory path
/// and distrust only the entries inside a writable one. The mount points (`agent/`, `outbound/`,
/// `extra/<name>`) must exist in the session folder: the read-only mount keeps Docker from
/// creating them (`runtime::layout` does).
pub fn mounts(spec: &SpawnSpec) -> Vec<MountSpec> {
    let mut list = vec![
        MountSpec {
            host: spec.session_dir.clone(),
            container: WORKSPACE.to_string(),
            readonly: true,
        },
        MountSpec {
            host: spec.group_dir.clone(),
            container: AGENT_DIR.to_string(),
            readonly: false,
        },
        MountSpec {
            host: agent_runner::session_db::outbound_dir(&spec.session_dir),
            container: OUTBOUND_DIR.to_string(),
            readonly: false,
        },
    ];
    list.extend(spec.system_mounts.iter().cloned());
    for extra in &spec.extra_mounts {
        list.push(MountSpec {
            host: extra.host.clone(),
            container: format!("{EXTRA_DIR}/{}", extra.container.trim_start_matches('/')),
            readonly: extra.readonly,
        });
    }
    list
}

/// What the image says about itself (its labels), read at every spawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImageFacts {
    /// The image's entrypoint is an init (label `nanoclaw.init`: tini in the production
    /// image), so Docker must not add its own (`--init`): there would be two.
    pub own_init: bool,
}

impl ImageFacts {
    /// Reads the image's labels; `None` when the daemon has no such image.
    pub async fn inspect(
        docker: &Docker,
        image: &str,
    ) -> Result<Option<ImageFacts>, ContainerError> {
        let labels = super::image::image_labels(docker, image).await?;
        Ok(labels.map(|labels| ImageFacts {
            own_init: labels.contains_key(super::image::LABEL_INIT),
        }))
    }
}

/// Host facts the create request depends on, gathered once per spawn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFacts {
    /// `uid:gid` the container runs as ([`container_user`]; never `0`).
    pub user: String,
    /// IANA zone handed to the container as `TZ`.
    pub timezone: String,
}

impl HostFacts {
    /// The container user and the timezone (`TZ`, else the system zone, else UTC).
    pub fn gather() -> HostFacts {
        let timezone = env::get(env::TZ)
            .or_else(|| {
                jiff::tz::TimeZone::try_system()
                    .ok()
                    .and_then(|zone| zone.iana_name().map(str::to_string))
            })
            .unwrap_or_else(|| "UTC".to_string());
        let (uid, gid) = container_user();
        HostFacts {
            user: format!("{uid}:{gid}"),
            timezone,
        }
    }
}

/// The create-container request for a spec (pure).
pub fn create_body(
    spec: &SpawnSpec,
    slug: &str,
    mounts: &[MountSpec],
    facts: &HostFacts,
    image: ImageFacts,
) -> ContainerCreateBody {
    let mut env_vars = vec![format!("TZ={}", facts.timezone), "HOME=/tmp".to_string()];
    env_vars.extend(spec.env.iter().map(|(key, value)| format!("{key}={value}")));
    let docker_mounts = mounts
        .iter()
        .map(|mount| Mount {
            target: Some(mount.container.clone()),
            source: Some(mount.host.display().to_string()),
            typ: Some(MountType::BIND),
            read_only: Some(mount.readonly),
            ..Default::default()
        })
        .collect();
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        user: Some(facts.user.clone()),
        env: Some(env_vars),
        working_dir: Some(WORKSPACE.to_string()),
        labels: Some(container_labels(
            slug,
            &spec.session_id,
            &spec.agent,
            &spec.config_hash,
        )),
        stop_timeout: Some(STOP_TIMEOUT_SECS),
        attach_stdin: Some(false),
        open_stdin: Some(false),
        tty: Some(false),
        host_config: Some(HostConfig {
            // An init process forwards SIGTERM to the runner and reaps children: Docker's,
            // unless the image brings its own.
            init: Some(!image.own_init),
            mounts: Some(docker_mounts),
            extra_hosts: (spec.network == Network::Full)
                .then(|| vec!["host.docker.internal:host-gateway".to_string()]),
            // Not `--rm`: the exit code is read by `wait` first, then the container is removed.
            auto_remove: Some(false),
            // The agent's `network` (state::Network): its own network namespace either way.
            network_mode: Some(network_mode(spec.network).to_string()),
            ..confinement(&spec.resources)
        }),
        ..Default::default()
    }
}

/// Docker's network mode for an agent's `network`.
pub fn network_mode(network: Network) -> &'static str {
    match network {
        Network::Full => "bridge",
        Network::None => "none",
    }
}

/// What an agent may do to its host, as Docker settings (docs/containers.md#confinement).
/// Agents are untrusted code: no capabilities, no privilege gain, nothing writable but the
/// mounts and a bounded `/tmp`, bounded memory, CPU and tasks, no host namespaces, no devices.
pub fn confinement(resources: &Resources) -> HostConfig {
    let memory = i64::try_from(resources.memory_or_default().bytes()).unwrap_or(i64::MAX);
    // Half the memory limit: filling /tmp (which is memory) fails with ENOSPC before the
    // kernel has to kill the agent.
    let tmp = format!("rw,nosuid,nodev,size={},mode=1777", memory / 2);
    let cpu_quota = i64::from(resources.cpus_or_default().millis()) * CPU_PERIOD_MICROS / 1000;
    HostConfig {
        cap_drop: Some(vec!["ALL".to_string()]),
        cap_add: None,
        security_opt: Some(vec!["no-new-privileges".to_string()]),
        privileged: Some(false),
        readonly_rootfs: Some(true),
        tmpfs: Some(HashMap::from([(TMP_DIR.to_string(), tmp)])),
        memory: Some(memory),
        // Swap limit = memory limit: no swap beyond it.
        memory_swap: Some(memory),
        cpu_period: Some(CPU_PERIOD_MICROS),
        cpu_quota: Some(cpu_quota),
        pids_limit: Some(i64::from(resources.pids_or_default())),
        // Own namespaces: PID, UTS and user namespace modes stay unset (Docker's private
        // default; only `host` would share them), the rest are named.
        network_mode: Some("bridge".to_string()),
        ipc_mode: Some("private".to_string()),
        cgroupns_mode: Some(HostConfigCgroupnsModeEnum::PRIVATE),
        devices: Some(Vec::new()),
        ..Default::default()
    }
}

/// Sockets of the container runtime an agent must never reach: whoever can talk to them can
/// start a privileged container, i.e. is root on the host. The one we use, and the usual paths.
fn runtime_sockets() -> Vec<PathBuf> {
    let mut sockets: Vec<PathBuf> = [
        super::DEFAULT_SOCKET,
        "/run/docker.sock",
        "/run/containerd/containerd.sock",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    if let Ok(socket) = super::socket_path() {
        sockets.push(PathBuf::from(socket));
    }
    sockets
}

/// The first mount whose host side is one of `sockets` or a folder holding one (compared as
/// resolved by `canonical`, so symlinks do not hide them), with that socket.
pub fn mount_exposing<'a>(
    mounts: &'a [MountSpec],
    sockets: &'a [PathBuf],
    canonical: impl Fn(&Path) -> Option<PathBuf>,
) -> Option<(&'a MountSpec, &'a PathBuf)> {
    mounts.iter().find_map(|mount| {
        let host = canonical(&mount.host)?;
        sockets
            .iter()
            .find(|socket| socket.starts_with(&host))
            .map(|socket| (mount, socket))
    })
}

/// Creates and starts the session's container; returns its name. A leftover container of the
/// same name (ours by construction) is removed first.
pub async fn spawn(
    docker: &Docker,
    slug: &str,
    spec: &SpawnSpec,
) -> Result<String, ContainerError> {
    let name = container_name(slug, &spec.session_id);
    if !is_valid_name(&name) {
        return Err(ContainerError::Daemon(format!(
            "session id `{}` does not make a valid container name",
            spec.session_id
        )));
    }
    let facts = HostFacts::gather();
    let mount_list = mounts(spec);
    let sockets: Vec<PathBuf> = runtime_sockets()
        .iter()
        .filter_map(|socket| socket.canonicalize().ok())
        .collect();
    if let Some((mount, socket)) =
        mount_exposing(&mount_list, &sockets, |path| path.canonicalize().ok())
    {
        return Err(ContainerError::Daemon(format!(
            "mount `{}` → `{}` would hand the agent the container runtime's socket `{}`: not starting the container\n\nhint: remove that mount from the agent's `mounts`; whoever holds that socket is root on the host",
            mount.host.display(),
            mount.container,
            socket.display()
        )));
    }
    let Some(image) = ImageFacts::inspect(docker, &spec.image).await? else {
        return Err(image_not_found(&spec.image, "no such image"));
    };
    let body = create_body(spec, slug, &mount_list, &facts, image);
    remove_quietly(docker, &name).await?;
    let options = CreateContainerOptions {
        name: Some(name.clone()),
        ..Default::default()
    };
    match docker.client.create_container(Some(options), body).await {
        Ok(_) => {}
        Err(err) if is_not_found(&err) => {
            return Err(image_not_found(&spec.image, &err.to_string()));
        }
        Err(err) => return Err(err.into()),
    }
    if let Err(err) = docker.client.start_container(&name, None).await {
        remove_quietly(docker, &name).await?;
        return Err(err.into());
    }
    Ok(name)
}

fn image_not_found(image: &str, why: &str) -> ContainerError {
    ContainerError::Daemon(format!(
        "image `{image}` not found: {why}\n\nhint: `nanoclaw run` builds the images its agents need when it starts; to build this one: `nanoclaw image build --recipe production --tag {image}` (`--recipe minimal` for agents with the mock provider)"
    ))
}

/// Force-removes a container; a missing one is not an error.
pub(crate) async fn remove_quietly(docker: &Docker, name: &str) -> Result<(), ContainerError> {
    let options = RemoveContainerOptions {
        force: true,
        ..Default::default()
    };
    match docker.client.remove_container(name, Some(options)).await {
        Ok(()) => Ok(()),
        Err(err) if is_not_found(&err) => Ok(()),
        // 409: removal already in progress (e.g. the exit watcher got there first).
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SpawnSpec {
        SpawnSpec {
            session_id: "sess-1".into(),
            agent: "andy".into(),
            session_dir: "/data/sessions/andy/sess-1".into(),
            group_dir: "/data/groups/andy".into(),
            image: "nanoclaw-agent:latest".into(),
            system_mounts: Vec::new(),
            extra_mounts: vec![MountSpec {
                host: "/home/me/notes".into(),
                container: "notes".into(),
                readonly: true,
            }],
            env: vec![(
                "ANTHROPIC_BASE_URL".into(),
                "http://host.docker.internal:8080".into(),
            )],
            config_hash: "cafe".into(),
            credentials: false,
            resources: Resources::default(),
            network: Network::default(),
        }
    }

    /// JSON with object keys sorted, so HashMap order does not leak into snapshots.
    fn sorted_json(value: serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::Value::Object(
                    entries
                        .into_iter()
                        .map(|(key, value)| (key, sorted_json(value)))
                        .collect(),
                )
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.into_iter().map(sorted_json).collect())
            }
            other => other,
        }
    }

    #[test]
    fn the_session_folder_is_read_only_and_only_its_leaves_are_writable() {
        let text: Vec<String> = mounts(&spec())
            .iter()
            .map(|m| {
                format!(
                    "{} -> {} {}",
                    m.host.display(),
                    m.container,
                    if m.readonly { "ro" } else { "rw" }
                )
            })
            .collect();
        expect_test::expect![[r#"
            [
                "/data/sessions/andy/sess-1 -> /workspace ro",
                "/data/groups/andy -> /workspace/agent rw",
                "/data/sessions/andy/sess-1/outbound -> /workspace/outbound rw",
                "/home/me/notes -> /workspace/extra/notes ro",
            ]
        "#]]
        .assert_debug_eq(&text);
    }

    #[test]
    fn create_request_snapshot() {
        let spec = spec();
        let facts = HostFacts {
            user: "1000:1000".into(),
            timezone: "Europe/Berlin".into(),
        };
        let body = create_body(
            &spec,
            "0a1b2c3d",
            &mounts(&spec),
            &facts,
            ImageFacts::default(),
        );
        let json = sorted_json(serde_json::to_value(&body).unwrap());
        expect_test::expect![[r#"
            {
              "AttachStdin": false,
              "Env": [
                "TZ=Europe/Berlin",
                "HOME=/tmp",
                "ANTHROPIC_BASE_URL=http://host.docker.internal:8080"
              ],
              "HostConfig": {
                "AutoRemove": false,
                "CapDrop": [
                  "ALL"
                ],
                "CgroupnsMode": "private",
                "CpuPeriod": 100000,
                "CpuQuota": 100000,
                "Devices": [],
                "ExtraHosts": [
                  "host.docker.internal:host-gateway"
                ],
                "Init": true,
                "IpcMode": "private",
                "Memory": 2147483648,
                "MemorySwap": 2147483648,
                "Mounts": [
                  {
                    "ReadOnly": true,
                    "Source": "/data/sessions/andy/sess-1",
                    "Target": "/workspace",
                    "Type": "bind"
                  },
                  {
                    "ReadOnly": false,
                    "Source": "/data/groups/andy",
                    "Target": "/workspace/agent",
                    "Type": "bind"
                  },
                  {
                    "ReadOnly": false,
                    "Source": "/data/sessions/andy/sess-1/outbound",
                    "Target": "/workspace/outbound",
                    "Type": "bind"
                  },
                  {
                    "ReadOnly": true,
                    "Source": "/home/me/notes",
                    "Target": "/workspace/extra/notes",
                    "Type": "bind"
                  }
                ],
                "NetworkMode": "bridge",
                "PidsLimit": 512,
                "Privileged": false,
                "ReadonlyRootfs": true,
                "SecurityOpt": [
                  "no-new-privileges"
                ],
                "Tmpfs": {
                  "/tmp": "rw,nosuid,nodev,size=1073741824,mode=1777"
                }
              },
              "Image": "nanoclaw-agent:latest",
              "Labels": {
                "nanoclaw.agent": "andy",
                "nanoclaw.config-hash": "cafe",
                "nanoclaw.install": "0a1b2c3d",
                "nanoclaw.session": "sess-1"
              },
              "OpenStdin": false,
              "StopTimeout": 2,
              "Tty": false,
              "User": "1000:1000",
              "WorkingDir": "/workspace"
            }"#]]
        .assert_eq(&serde_json::to_string_pretty(&json).unwrap());
    }

    #[test]
    fn an_image_with_its_own_init_gets_no_second_one() {
        let facts = HostFacts {
            user: "1000:1000".into(),
            timezone: "UTC".into(),
        };
        let init = |own_init| {
            create_body(&spec(), "0a1b2c3d", &[], &facts, ImageFacts { own_init })
                .host_config
                .and_then(|host| host.init)
        };
        assert_eq!(init(true), Some(false), "tini in the image is PID 1");
        assert_eq!(init(false), Some(true), "Docker's init is PID 1");
    }

    #[test]
    fn a_mount_of_the_docker_socket_or_a_folder_holding_it_is_found() {
        let sockets = [PathBuf::from("/run/docker.sock")];
        let mount = |host: &str| MountSpec {
            host: host.into(),
            container: format!("/workspace/extra{host}"),
            readonly: true,
        };
        // `/var/run` is a symlink to `/run` on most systems.
        let canonical = |path: &Path| {
            Some(match path.strip_prefix("/var/run") {
                Ok(rest) => Path::new("/run").join(rest),
                Err(_) => path.to_path_buf(),
            })
        };
        for host in ["/var/run/docker.sock", "/run", "/var/run", "/"] {
            let list = [mount("/home/me/notes"), mount(host)];
            let found = mount_exposing(&list, &sockets, canonical);
            assert_eq!(
                found.map(|(mount, _)| mount.host.clone()),
                Some(PathBuf::from(host)),
                "{host}"
            );
        }
        let harmless = [mount("/home/me/notes"), mount("/run/user/1000/app")];
        assert_eq!(mount_exposing(&harmless, &sockets, canonical), None);
    }

    #[test]
    fn a_container_never_runs_as_root() {
        let facts = HostFacts::gather();
        let (uid, gid) = container_user();
        assert_eq!(facts.user, format!("{uid}:{gid}"));
        assert_ne!(uid, 0);
        if rustix::process::geteuid().is_root() {
            assert_eq!((uid, gid), (UNPRIVILEGED_UID, UNPRIVILEGED_GID));
        } else {
            assert_eq!(
                uid,
                rustix::process::geteuid().as_raw(),
                "the daemon's own uid"
            );
        }
        assert!(!facts.timezone.is_empty());
    }
}
