//! The agent image: recipes (embedded from `container/<recipe>/Dockerfile`), the build context
//! (a tar made in memory), building it through the daemon with progress, and existence checks.
//!
//! It does not find or compile the agent-runner binary (the CLI does) and never pulls from a
//! registry: the minimal recipe is `FROM scratch`.

use std::path::{Path, PathBuf};

use bollard::models::BuildInfo;
use bollard::query_parameters::BuildImageOptions;
use futures_util::StreamExt;

use super::{ContainerError, Docker, is_not_found};

/// Tag used when none is given: shared by installs on this machine (the image is code).
pub const DEFAULT_TAG: &str = "nanoclaw-agent:latest";

/// An image recipe (a folder under `container/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipe {
    /// `FROM scratch` + the static runner (tests, mock provider).
    Minimal,
}

impl Recipe {
    pub fn name(self) -> &'static str {
        match self {
            Recipe::Minimal => "minimal",
        }
    }

    /// The recipe's Dockerfile, embedded at compile time.
    pub fn dockerfile(self) -> &'static str {
        match self {
            Recipe::Minimal => include_str!("../../../container/minimal/Dockerfile"),
        }
    }
}

/// One image build request.
#[derive(Clone, Debug)]
pub struct ImageBuild {
    pub tag: String,
    pub recipe: Recipe,
    /// The static (musl) agent-runner binary copied to `/agent-runner`.
    pub runner: PathBuf,
}

/// One line of build progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildProgress {
    /// A Dockerfile step starts (`Step 2/5 : COPY …`).
    Step(String),
    /// Other output of the build (layer ids, `Successfully built …`).
    Output(String),
}

/// Image label holding the SHA-256 of the agent-runner inside, so a stale image can be told
/// from a fresh one without running it.
pub const LABEL_RUNNER_DIGEST: &str = "nanoclaw.runner-sha256";

/// SHA-256 (hex) of a runner binary, as stored in [`LABEL_RUNNER_DIGEST`].
pub fn runner_digest(runner: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(runner)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The runner digest label of the image with this tag; `None` when there is no such image
/// (or it was built without the label).
pub async fn image_runner_digest(
    docker: &Docker,
    tag: &str,
) -> Result<Option<String>, ContainerError> {
    match docker.client.inspect_image(tag).await {
        Ok(image) => Ok(image
            .config
            .and_then(|config| config.labels)
            .and_then(|labels| labels.get(LABEL_RUNNER_DIGEST).cloned())),
        Err(err) if is_not_found(&err) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// True when the daemon has an image with this tag.
pub async fn image_exists(docker: &Docker, tag: &str) -> Result<bool, ContainerError> {
    match docker.client.inspect_image(tag).await {
        Ok(_) => Ok(true),
        Err(err) if is_not_found(&err) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// Builds the image, reporting each output line; an error names the failing step.
pub async fn build_image(
    docker: &Docker,
    spec: ImageBuild,
    mut progress: impl FnMut(BuildProgress),
) -> Result<(), ContainerError> {
    let runner = std::fs::read(&spec.runner).map_err(|source| ContainerError::Io {
        path: spec.runner.clone(),
        source,
    })?;
    let context =
        build_context(spec.recipe.dockerfile(), &runner).map_err(|source| ContainerError::Io {
            path: PathBuf::from("<build context>"),
            source,
        })?;
    let labels = std::collections::HashMap::from([(
        LABEL_RUNNER_DIGEST.to_string(),
        runner_digest(&runner),
    )]);
    let options = BuildImageOptions {
        dockerfile: "Dockerfile".to_string(),
        t: Some(spec.tag.clone()),
        rm: true,
        forcerm: true,
        labels: Some(labels),
        ..Default::default()
    };
    let mut stream =
        docker
            .client
            .build_image(options, None, Some(bollard::body_full(context.into())));
    let mut step = String::from("the start of the build");
    while let Some(item) = stream.next().await {
        let info = item.map_err(|err| match err {
            bollard::errors::Error::DockerStreamError { error } => ContainerError::Build {
                step: step.clone(),
                message: error,
            },
            other => ContainerError::Docker(other),
        })?;
        read_build_info(info, &mut step, &mut progress)?;
    }
    Ok(())
}

/// One item of the build stream: progress lines, or the error naming the current step.
/// `step` remembers the last `Step n/m : …` line.
fn read_build_info(
    info: BuildInfo,
    step: &mut String,
    progress: &mut impl FnMut(BuildProgress),
) -> Result<(), ContainerError> {
    if let Some(detail) = info.error_detail {
        return Err(ContainerError::Build {
            step: step.clone(),
            message: detail.message.unwrap_or_default().trim().to_string(),
        });
    }
    for line in info
        .stream
        .iter()
        .chain(info.status.iter())
        .flat_map(|text| text.lines())
        .map(str::trim_end)
        .filter(|line| !line.trim().is_empty())
    {
        if line.starts_with("Step ") {
            *step = format!("`{line}`");
            progress(BuildProgress::Step(line.to_string()));
        } else {
            progress(BuildProgress::Output(line.to_string()));
        }
    }
    Ok(())
}

/// The build context tar: the Dockerfile, `agent-runner` (0755) and `rootfs/` with `/tmp`
/// (1777: HOME of whatever uid the container runs as) and `/workspace`.
pub fn build_context(dockerfile: &str, runner: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    append_file(&mut tar, "Dockerfile", dockerfile.as_bytes(), 0o644)?;
    append_file(&mut tar, "agent-runner", runner, 0o755)?;
    append_dir(&mut tar, "rootfs/", 0o755)?;
    append_dir(&mut tar, "rootfs/tmp/", 0o1777)?;
    append_dir(&mut tar, "rootfs/workspace/", 0o755)?;
    tar.into_inner()
}

fn append_file(
    tar: &mut tar::Builder<Vec<u8>>,
    path: &str,
    data: &[u8],
    mode: u32,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    tar.append_data(&mut header, Path::new(path), data)
}

fn append_dir(tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    header.set_mode(mode);
    header.set_mtime(0);
    tar.append_data(&mut header, Path::new(path), std::io::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_holds_dockerfile_runner_and_rootfs() {
        let tar_bytes = build_context("FROM scratch\n", b"\x7fELF").unwrap();
        let mut archive = tar::Archive::new(tar_bytes.as_slice());
        let entries: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                format!(
                    "{} {:o} {}",
                    entry.path().unwrap().display(),
                    entry.header().mode().unwrap(),
                    entry.header().size().unwrap()
                )
            })
            .collect();
        expect_test::expect![[r#"
            [
                "Dockerfile 644 13",
                "agent-runner 755 4",
                "rootfs/ 755 0",
                "rootfs/tmp/ 1777 0",
                "rootfs/workspace/ 755 0",
            ]
        "#]]
        .assert_debug_eq(&entries);
    }

    #[test]
    fn build_errors_name_the_failing_step() {
        let mut step = String::from("the start of the build");
        let mut lines = Vec::new();
        let mut record = |progress: BuildProgress| lines.push(format!("{progress:?}"));
        let items = [
            BuildInfo {
                stream: Some("Step 3/6 : COPY agent-runner /agent-runner\n".into()),
                ..Default::default()
            },
            BuildInfo {
                stream: Some(" ---> 6d5d9316ee72\n".into()),
                ..Default::default()
            },
            BuildInfo {
                error_detail: Some(bollard::models::ErrorDetail {
                    message: Some("COPY failed: file not found in build context\n".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ];
        let mut result = Ok(());
        for info in items {
            result = read_build_info(info, &mut step, &mut record);
            if result.is_err() {
                break;
            }
        }
        let err = result.unwrap_err().to_string();
        expect_test::expect![[r#"
            [
                "Step(\"Step 3/6 : COPY agent-runner /agent-runner\")",
                "Output(\" ---> 6d5d9316ee72\")",
            ]
            image build failed at `Step 3/6 : COPY agent-runner /agent-runner`: COPY failed: file not found in build context"#]].assert_eq(&format!("{lines:#?}\n{err}"));
    }

    #[test]
    fn minimal_recipe_runs_the_runner_from_scratch() {
        let dockerfile = Recipe::Minimal.dockerfile();
        assert!(dockerfile.contains("FROM scratch"));
        assert!(dockerfile.contains("ENTRYPOINT [\"/agent-runner\"]"));
    }
}
