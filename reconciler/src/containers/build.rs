//! Building an agent image through the daemon: the build context (a tar made in memory), the
//! build request (build arguments, labels) and the stream of progress lines, whose error names
//! the failing step.
//!
//! Docker 20.10's API offers the classic builder only (BuildKit and its secret mounts need a
//! gRPC session bollard only has behind a second TLS/HTTP stack), so the host's CA bundle
//! travels as a context file that only the production recipe's builder stage copies.
//! It never makes the Debian base ([`super::base`]) or decides whether a build is needed
//! ([`super::image::freshness`]).

use std::path::{Path, PathBuf};

use bollard::models::BuildInfo;
use bollard::query_parameters::BuildImageOptions;
use futures_util::StreamExt;

use super::image::{HOST_CA_BUNDLE, Recipe, runner_digest};
use super::{ContainerError, Docker};

/// One image build request.
#[derive(Clone, Debug)]
pub struct ImageBuild {
    pub tag: String,
    pub recipe: Recipe,
    /// The static (musl) agent-runner binary copied to `/agent-runner`.
    pub runner: PathBuf,
    /// The Debian base's tag (recipes that [`Recipe::needs_base`]); it must exist.
    pub base: Option<String>,
    /// Redo every step instead of reusing Docker's layer cache (fresh packages).
    pub no_cache: bool,
}

/// One line of build progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildProgress {
    /// A step starts: a Dockerfile step (`Step 2/5 : COPY …`) or a phase of making the base.
    Step(String),
    /// Other output of the build (layer ids, package downloads, `Successfully built …`).
    Output(String),
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
    let ca_bundle = match spec.recipe {
        Recipe::Production => Some(read_ca_bundle(Path::new(HOST_CA_BUNDLE))?),
        Recipe::Minimal => None,
    };
    let context = build_context(spec.recipe.dockerfile(), &runner, ca_bundle.as_deref()).map_err(
        |source| ContainerError::Io {
            path: PathBuf::from("<build context>"),
            source,
        },
    )?;
    let inputs = spec.recipe.inputs(spec.base.as_deref());
    let options = BuildImageOptions {
        dockerfile: "Dockerfile".to_string(),
        t: Some(spec.tag.clone()),
        rm: true,
        forcerm: true,
        nocache: spec.no_cache,
        buildargs: Some(inputs.build_args.clone().into_iter().collect()),
        labels: Some(spec.recipe.labels(&inputs, &runner_digest(&runner))),
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
                message: error.trim().to_string(),
            },
            other => ContainerError::Docker(other),
        })?;
        read_build_info(info, &mut step, &mut progress)?;
    }
    Ok(())
}

/// The host's CA bundle; an absent one is empty (npm then trusts the image's own CAs).
pub(super) fn read_ca_bundle(path: &Path) -> Result<Vec<u8>, ContainerError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(ContainerError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// One item of the build stream: progress lines, or the error naming the current step.
/// `step` remembers the last `Step n/m : …` line.
pub(super) fn read_build_info(
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
    let texts: Vec<String> = info
        .stream
        .iter()
        .chain(info.status.iter())
        .map(|text| strip_ansi(text))
        .collect();
    for line in texts
        .iter()
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

/// `text` without terminal escape sequences (the classic builder wraps a step's stderr in
/// `ESC[91m` … `ESC[0m`), so plain output and the kept log read as text.
fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(char) = chars.next() {
        if char != '\x1b' {
            plain.push(char);
            continue;
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            // Parameters and intermediates, then one final byte in `@`..=`~`.
            for next in chars.by_ref() {
                if ('@'..='~').contains(&next) {
                    break;
                }
            }
        }
    }
    plain
}

/// The build context tar: the Dockerfile, `agent-runner` (0755), `rootfs/` with `/tmp` (1777:
/// HOME of whatever uid the container runs as) and `/workspace`, and for recipes that download
/// with npm the host's CA bundle as `build-ca.crt` (0600; possibly empty).
pub fn build_context(
    dockerfile: &str,
    runner: &[u8],
    ca_bundle: Option<&[u8]>,
) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    append_file(&mut tar, "Dockerfile", dockerfile.as_bytes(), 0o644)?;
    append_file(&mut tar, "agent-runner", runner, 0o755)?;
    append_dir(&mut tar, "rootfs/", 0o755)?;
    append_dir(&mut tar, "rootfs/tmp/", 0o1777)?;
    append_dir(&mut tar, "rootfs/workspace/", 0o755)?;
    if let Some(bundle) = ca_bundle {
        append_file(&mut tar, "build-ca.crt", bundle, 0o600)?;
    }
    tar.into_inner()
}

pub(super) fn append_file(
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

    fn entries(tar_bytes: &[u8]) -> Vec<String> {
        let mut archive = tar::Archive::new(tar_bytes);
        archive
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
            .collect()
    }

    #[test]
    fn context_holds_dockerfile_runner_and_rootfs() {
        let tar_bytes = build_context("FROM scratch\n", b"\x7fELF", None).unwrap();
        expect_test::expect![[r#"
            [
                "Dockerfile 644 13",
                "agent-runner 755 4",
                "rootfs/ 755 0",
                "rootfs/tmp/ 1777 0",
                "rootfs/workspace/ 755 0",
            ]
        "#]]
        .assert_debug_eq(&entries(&tar_bytes));
    }

    #[test]
    fn production_context_carries_the_ca_bundle_for_the_builder_stage_only() {
        let dockerfile = Recipe::Production.dockerfile();
        let tar_bytes = build_context(dockerfile, b"\x7fELF", Some(b"PEM")).unwrap();
        assert_eq!(
            entries(&tar_bytes).last().map(String::as_str),
            Some("build-ca.crt 600 3")
        );
        // Copied in exactly one place: the `claude-code` stage, which the final stage only
        // copies `/opt/claude-code` out of.
        let copies: Vec<&str> = dockerfile
            .lines()
            .filter(|line| line.contains("build-ca.crt"))
            .filter(|line| !line.trim_start().starts_with('#'))
            .collect();
        assert_eq!(copies, ["COPY build-ca.crt /build/ca.crt"]);
        let stages: Vec<&str> = dockerfile
            .lines()
            .filter(|line| line.starts_with("FROM "))
            .collect();
        assert_eq!(
            stages,
            [
                "FROM ${BASE_IMAGE} AS system",
                "FROM system AS claude-code",
                "FROM system"
            ]
        );
        let copy_at = dockerfile.find("COPY build-ca.crt").unwrap();
        let final_at = dockerfile.find("\nFROM system\n").unwrap();
        assert!(
            copy_at < final_at,
            "the CA is copied before the final stage"
        );
    }

    #[test]
    fn a_missing_ca_bundle_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_ca_bundle(&dir.path().join("none.crt")).unwrap(), b"");
        std::fs::write(dir.path().join("ca.crt"), "PEM").unwrap();
        assert_eq!(read_ca_bundle(&dir.path().join("ca.crt")).unwrap(), b"PEM");
    }

    #[test]
    fn escape_sequences_are_stripped_from_build_output() {
        assert_eq!(
            strip_ansi("\x1b[91mnpm WARN EBADENGINE\x1b[0m done"),
            "npm WARN EBADENGINE done"
        );
        assert_eq!(strip_ansi("plain [91m text"), "plain [91m text");
        assert_eq!(strip_ansi("é\x1b[1;32mok"), "éok");
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
}
