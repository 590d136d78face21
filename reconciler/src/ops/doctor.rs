//! `nanoclaw doctor`: gathers the facts of one install (data dir, disk, manifests and the DB,
//! Docker and the images, credentials, channels, the service, other installs on the host) and
//! hands them to `crate::doctor` to judge. Reads only: nothing is created, started or fixed.

use std::collections::BTreeSet;
use std::path::Path;

use crate::containers::{self, image};
use crate::doctor::{self, Check, Findings};
use crate::paths::Paths;
use crate::service::{Manager, Platform, Scope};
use crate::state::{Resource, State};

/// Runs every check for the install at `paths` with the manifests in `dir`. `runner` is the
/// digest of the agent-runner `nanoclaw run` would put into the images (the CLI finds it:
/// `--runner`, `NANOCLAW_RUNNER`, beside `nanoclaw`); `None` when there is none to compare.
pub fn doctor(paths: &Paths, dir: &Path, runner: Option<&str>) -> Findings {
    let mut checks = Vec::new();
    let exists = match paths.check() {
        Ok(true) => {
            checks.push(Check::ok("data-dir", "private to its owner (this user)"));
            true
        }
        Ok(false) => {
            checks.push(Check::warn(
                "data-dir",
                format!("`{}` does not exist yet", paths.data.display()),
                format!("`nanoclaw run {}` creates it", dir.display()),
            ));
            false
        }
        Err(err) => {
            let text = err.to_string();
            let (what, hint) = text.split_once("\n\nhint: ").unwrap_or((&text, ""));
            checks.push(Check::fail("data-dir", what, hint));
            true
        }
    };
    checks.push(disk(paths));
    let state = manifests(paths, dir, exists, &mut checks);
    let docker = docker(&mut checks);
    checks.push(images(docker.as_ref(), state.as_ref(), runner));
    checks.push(credentials(paths, state.as_ref()));
    let channel_types: Vec<String> = state
        .iter()
        .flat_map(|state| state.resources.values())
        .filter_map(|resource| match resource {
            Resource::Channel(channel) => Some(channel.channel_type.clone()),
            _ => None,
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    checks.push(doctor::channels(&channel_types, &|_| false));
    checks.push(service(paths, dir));
    checks.push(other_installs(paths, docker.as_ref()));
    Findings {
        data_dir: paths.data.display().to_string(),
        slug: paths.slug(),
        checks,
    }
}

fn disk(paths: &Paths) -> Check {
    let mut path = paths.data.as_path();
    while !path.exists() {
        match path.parent() {
            Some(parent) => path = parent,
            None => break,
        }
    }
    match rustix::fs::statvfs(path) {
        Ok(stat) => doctor::disk(
            stat.f_bavail.saturating_mul(stat.f_frsize),
            &path.display().to_string(),
        ),
        Err(err) => Check::warn(
            "disk",
            format!("cannot read the free space of `{}`: {err}", path.display()),
            "check the file system by hand (`df -h`)",
        ),
    }
}

/// Valid, and applied (the plan against the DB has no changes); the desired state when valid.
fn manifests(paths: &Paths, dir: &Path, exists: bool, checks: &mut Vec<Check>) -> Option<State> {
    let manifests = match super::validate(dir, &paths.data) {
        Ok(manifests) => manifests,
        Err(diagnostics) => {
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            checks.push(Check::fail(
                "manifests",
                format!("`{}` has {errors} errors", dir.display()),
                format!(
                    "`nanoclaw validate {}` lists them with their fixes",
                    dir.display()
                ),
            ));
            checks.push(Check::skipped("applied", "the manifests are invalid"));
            return None;
        }
    };
    checks.push(Check::ok(
        "manifests",
        format!(
            "`{}`: {} resources, valid",
            dir.display(),
            manifests.state.len()
        ),
    ));
    let applied = if !exists || !paths.db().exists() {
        Check::warn(
            "applied",
            "nothing is applied yet (no central DB)",
            format!(
                "`nanoclaw run {}` (or `nanoclaw apply {}`)",
                dir.display(),
                dir.display()
            ),
        )
    } else {
        match super::plan(
            paths,
            &manifests.state,
            super::PlanRequest {
                prune: false,
                allow_empty: true,
            },
        ) {
            Ok(planned) if planned.plan.is_empty() => {
                Check::ok("applied", "the DB matches the manifests")
            }
            Ok(planned) => Check::warn(
                "applied",
                format!(
                    "the DB differs from the manifests: {}",
                    planned.plan.summary().line()
                ),
                format!(
                    "`nanoclaw plan {}` shows it; `nanoclaw apply {}` applies it (a running daemon picks it up)",
                    dir.display(),
                    dir.display()
                ),
            ),
            Err(err) => Check::fail(
                "applied",
                format!("cannot plan: {err}"),
                "fix the error above, then `nanoclaw plan`",
            ),
        }
    };
    checks.push(applied);
    Some(manifests.state)
}

/// Docker answers, with a supported API; the client when it does.
fn docker(checks: &mut Vec<Check>) -> Option<containers::Docker> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            checks.push(Check::fail(
                "docker",
                format!("cannot start an async runtime: {err}"),
                "report this",
            ));
            return None;
        }
    };
    let connected = runtime.block_on(async {
        let docker = containers::connect().await?;
        let version = containers::version(&docker).await?;
        Ok::<_, containers::ContainerError>((docker, version))
    });
    match connected {
        Ok((docker, (engine, api))) if doctor::api_supported(&api) => {
            checks.push(Check::ok("docker", format!("Engine {engine}, API {api}")));
            Some(docker)
        }
        Ok((_, (engine, api))) => {
            checks.push(Check::fail(
                "docker",
                format!(
                    "Engine {engine} speaks API {api}; nanoclaw needs 1.41 (Engine 20.10) or later"
                ),
                "upgrade Docker Engine",
            ));
            None
        }
        Err(err) => {
            checks.push(Check::fail(
                "docker",
                err.to_string(),
                "start Docker (`sudo systemctl start docker`), or point `DOCKER_HOST` at its socket; `nanoclaw run` as root installs and starts one",
            ));
            None
        }
    }
}

/// Every image the agents need exists and was built from this nanoclaw's recipe and, when
/// `runner` is known, with that agent-runner.
fn images(
    docker: Option<&containers::Docker>,
    state: Option<&State>,
    runner: Option<&str>,
) -> Check {
    let (Some(docker), Some(state)) = (docker, state) else {
        return Check::skipped("images", "needs Docker and valid manifests");
    };
    let agents = state.agents().map(|agent| {
        let has_packages = !(agent.packages.apt.is_empty() && agent.packages.npm.is_empty());
        (
            agent.provider.as_deref(),
            agent.image.as_deref(),
            has_packages,
        )
    });
    let needed = image::AgentImages::default().needed(agents);
    if needed.is_empty() {
        return Check::ok("images", "no agent needs an image nanoclaw builds");
    }
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Check::skipped("images", "cannot start an async runtime");
    };
    let mut missing = Vec::new();
    let mut stale = Vec::new();
    for (tag, recipe) in &needed {
        let base = recipe
            .needs_base()
            .then(|| containers::base::BOOKWORM.tag());
        let inputs = recipe.inputs(base.as_deref());
        match runtime.block_on(image::image_labels(docker, tag)) {
            Ok(None) => missing.push(format!("`{tag}`")),
            Ok(Some(labels)) => {
                if let Some(why) = not_current(&labels, &inputs.digest, runner) {
                    stale.push(format!("`{tag}` ({why})"));
                }
            }
            Err(err) => {
                return Check::fail(
                    "images",
                    format!("cannot inspect `{tag}`: {err}"),
                    "check Docker",
                );
            }
        }
    }
    let tags = needed
        .keys()
        .map(|t| format!("`{t}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if !missing.is_empty() {
        Check::fail(
            "images",
            format!("missing: {}", missing.join(", ")),
            "`nanoclaw image build` builds them (`nanoclaw run` does too, before it starts)",
        )
    } else if !stale.is_empty() {
        Check::warn(
            "images",
            format!("not current: {}", stale.join(", ")),
            "`nanoclaw run` rebuilds them at start; `nanoclaw image build` does it now",
        )
    } else {
        let runner = if runner.is_some() {
            ""
        } else {
            " (agent-runner not compared: none given, in NANOCLAW_RUNNER or beside `nanoclaw`)"
        };
        Check::ok("images", format!("{tags} present and current{runner}"))
    }
}

/// Why an image with `labels` is not what `nanoclaw run` would start agents on: built from
/// another recipe than `recipe` (its digest), or with another agent-runner than `runner` (when
/// known). `None` when it is current.
fn not_current(
    labels: &std::collections::HashMap<String, String>,
    recipe: &str,
    runner: Option<&str>,
) -> Option<&'static str> {
    if labels.get(image::LABEL_RECIPE_DIGEST).map(String::as_str) != Some(recipe) {
        Some("another recipe")
    } else if runner.is_some()
        && labels.get(image::LABEL_RUNNER_DIGEST).map(String::as_str) != runner
    {
        Some("another agent-runner")
    } else {
        None
    }
}

/// What each provider needs: `claude` (the default) the Anthropic credential, `mock` nothing.
fn credentials(paths: &Paths, state: Option<&State>) -> Check {
    let Some(state) = state else {
        return Check::skipped("credentials", "needs valid manifests");
    };
    let providers: BTreeSet<String> = state
        .agents()
        .map(|agent| {
            agent
                .provider
                .clone()
                .unwrap_or_else(|| "claude".to_string())
                .to_lowercase()
        })
        .collect();
    let needs_anthropic: Vec<&String> = providers.iter().filter(|p| p.as_str() != "mock").collect();
    if needs_anthropic.is_empty() {
        return Check::ok("credentials", "no provider in use needs a credential");
    }
    let env = crate::credentials::from_env();
    let store = crate::credentials::store::Store::new(&paths.data);
    let names = needs_anthropic
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match store.resolve(env.as_ref()) {
        Ok((credential, source)) => Check::ok(
            "credentials",
            format!("{names}: {} from {source}", credential.kind.describe()),
        ),
        Err(err) => Check::fail(
            "credentials",
            format!("{names}: no Anthropic credential ({err})"),
            "`nanoclaw auth set anthropic` stores one (read from stdin); or set ANTHROPIC_API_KEY / CLAUDE_CODE_OAUTH_TOKEN for the daemon",
        ),
    }
}

fn service(paths: &Paths, dir: &Path) -> Check {
    match super::service::status(paths, None) {
        Ok(status) if !status.installed => Check::warn(
            "service",
            format!("{} is not installed", status.name),
            format!(
                "`nanoclaw service install {}` runs the daemon at login/boot and restarts it after a crash",
                dir.display()
            ),
        ),
        Ok(status) if status.healthy() => {
            Check::ok("service", format!("{} is running", status.name))
        }
        Ok(status) => Check::fail(
            "service",
            format!(
                "{} is installed but {}",
                status.name,
                status.unit.map(|unit| unit.state).unwrap_or_default()
            ),
            format!(
                "read its log (`journalctl --user -u {}`), fix the cause, then `nanoclaw service install` again",
                status.name
            ),
        ),
        Err(err) => Check::warn(
            "service",
            format!("cannot ask the service manager: {err}"),
            "run `nanoclaw service status` for details",
        ),
    }
}

/// Other installs on this host: their containers on the same Docker daemon (by slug label) and
/// their service units; isolated when no other unit runs this data dir.
fn other_installs(paths: &Paths, docker: Option<&containers::Docker>) -> Check {
    let slug = paths.slug();
    let mut others: BTreeSet<String> = BTreeSet::new();
    if let Some(docker) = docker
        && let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        && let Ok(installs) = runtime.block_on(containers::orphans::installs(docker))
    {
        others.extend(installs.into_keys().filter(|other| *other != slug));
    }
    let mut clashes = Vec::new();
    let scope = if rustix::process::geteuid().is_root() {
        Scope::System
    } else {
        Scope::User
    };
    if let Ok(manager) = Manager::new(Platform::host(), scope)
        && let Ok(entries) = std::fs::read_dir(&manager.dir)
    {
        let ours = crate::service::name(&slug, manager.platform);
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let Some(name) = file
                .strip_suffix(".service")
                .or_else(|| file.strip_suffix(".plist"))
            else {
                continue;
            };
            let Some(other) = name
                .strip_prefix("nanoclaw-")
                .or_else(|| name.strip_prefix("com.nanoclaw."))
            else {
                continue;
            };
            if name == ours {
                continue;
            }
            others.insert(other.to_string());
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            if runs_data_dir(&text, &paths.data) {
                clashes.push(file);
            }
        }
    }
    if !clashes.is_empty() {
        return Check::fail(
            "other-installs",
            format!("another service runs this data dir: {}", clashes.join(", ")),
            "two daemons cannot share a data dir (the second refuses to start); remove the other unit",
        );
    }
    if others.is_empty() {
        Check::ok("other-installs", "no other nanoclaw install on this host")
    } else {
        Check::ok(
            "other-installs",
            format!(
                "{} other installs ({}), isolated: their containers, labels, sockets and locks carry their own slug",
                others.len(),
                others.into_iter().collect::<Vec<_>>().join(", ")
            ),
        )
    }
}

/// Whether a unit or plist's text passes `--data` this data dir (compared canonically): the
/// first word after `--data` that is not plist markup.
fn runs_data_dir(text: &str, data: &Path) -> bool {
    let canonical = |path: &Path| path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let ours = canonical(data);
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || matches!(c, '"' | '<' | '>'))
        .filter(|word| !word.is_empty() && !matches!(*word, "string" | "/string"))
        .collect();
    words
        .windows(2)
        .any(|pair| pair[0] == "--data" && canonical(Path::new(pair[1])) == ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_built_with_another_recipe_or_runner_is_not_current() {
        let labels = |recipe: &str, runner: &str| {
            std::collections::HashMap::from([
                (image::LABEL_RECIPE_DIGEST.to_string(), recipe.to_string()),
                (image::LABEL_RUNNER_DIGEST.to_string(), runner.to_string()),
            ])
        };
        assert_eq!(not_current(&labels("r1", "x1"), "r1", Some("x1")), None);
        assert_eq!(
            not_current(&labels("r1", "x1"), "r2", Some("x1")),
            Some("another recipe")
        );
        assert_eq!(
            not_current(&labels("r1", "x1"), "r1", Some("x2")),
            Some("another agent-runner")
        );
        // No runner to compare with: only the recipe counts.
        assert_eq!(not_current(&labels("r1", "x1"), "r1", None), None);
        assert_eq!(
            not_current(&std::collections::HashMap::new(), "r1", None),
            Some("another recipe")
        );
    }

    #[test]
    fn a_unit_or_plist_running_this_data_dir_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let unit = format!(
            "ExecStart=\"/bin/nanoclaw\" \"run\" \"/m\" \"--data\" \"{}/./data\"\n",
            dir.path().display()
        );
        assert!(runs_data_dir(&unit, &data));
        let plist = format!(
            "<string>--data</string>\n    <string>{}</string>",
            data.display()
        );
        assert!(runs_data_dir(&plist, &data));
        assert!(!runs_data_dir(
            "ExecStart=\"/bin/nanoclaw\" \"run\" \"--data\" \"/elsewhere\"",
            &data
        ));
    }
}
