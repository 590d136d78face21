//! The Debian base of the production image, made on this machine: `debootstrap
//! --variant=minbase bookworm` into a temporary folder, piped as a tar into `docker import`,
//! and kept as a local image whose tag and label carry the digest of this recipe
//! (`nanoclaw-base:bookworm-<digest>`), so it is made once per machine and recipe. No
//! container registry is involved.
//!
//! Making it needs root (debootstrap chroots and makes device nodes): as root it runs here,
//! installing `debootstrap` with apt-get when missing; otherwise the error gives the exact
//! commands. It does not build the production image ([`super::build`]).

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use bollard::query_parameters::CreateImageOptions;
use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::build::BuildProgress;
use super::image::{hex, image_labels};
use super::{ContainerError, Docker};

/// Repository of the base images (the tag is `<suite>-<digest prefix>`).
pub const BASE_REPOSITORY: &str = "nanoclaw-base";
/// Image label: the full SHA-256 of the recipe the base was made from.
pub const LABEL_BASE_DIGEST: &str = "nanoclaw.base-sha256";
/// Where the root filesystem is made: on disk (debootstrap needs exec and device nodes, which
/// a tmpfs `/tmp` may forbid).
const WORK_DIR: &str = "/var/tmp";

/// How the base is made. Every field is part of the digest in the tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Debootstrap {
    pub suite: &'static str,
    pub variant: &'static str,
    pub mirror: &'static str,
    /// Left out of the image (what debootstrap leaves in caches and logs): paths relative to
    /// the root whose last component may hold one `*`.
    pub prune: &'static [&'static str],
    /// `PATH` of the imported image (an imported image has no environment).
    pub path: &'static str,
}

/// The base of the production recipe.
pub const BOOKWORM: Debootstrap = Debootstrap {
    suite: "bookworm",
    variant: "minbase",
    mirror: "http://deb.debian.org/debian",
    prune: &[
        "var/cache/apt/archives/*.deb",
        "var/cache/apt/*.bin",
        "var/lib/apt/lists/*",
        "var/log/bootstrap.log",
    ],
    path: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
};

/// What [`ensure_base`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseOutcome {
    /// An image with this recipe's digest was there.
    Reused,
    /// It was made now.
    Made,
}

impl Debootstrap {
    /// SHA-256 (hex) of the recipe: the commands that make the base, with the folder left out.
    pub fn digest(&self) -> String {
        hex(&Sha256::digest(self.recipe_text().as_bytes()))
    }

    /// `nanoclaw-base:bookworm-<first 12 hex digits of the digest>`.
    pub fn tag(&self) -> String {
        format!("{BASE_REPOSITORY}:{}", self.tag_suffix())
    }

    fn tag_suffix(&self) -> String {
        format!("{}-{}", self.suite, &self.digest()[..12])
    }

    fn recipe_text(&self) -> String {
        format!(
            "debootstrap {}\nprune {}\ntar {}\nimport ENV PATH={}\n",
            self.debootstrap_args(Path::new("DIR")).join(" "),
            self.prune.join(" "),
            tar_args(Path::new("DIR")).join(" "),
            self.path
        )
    }

    /// The arguments of `debootstrap` making the root filesystem in `dir`.
    pub fn debootstrap_args(&self, dir: &Path) -> Vec<String> {
        vec![
            format!("--variant={}", self.variant),
            self.suite.to_string(),
            dir.display().to_string(),
            self.mirror.to_string(),
        ]
    }

    /// The `docker import --change` instructions: the digest label and `PATH`.
    pub fn import_changes(&self) -> Vec<String> {
        vec![
            format!("LABEL {LABEL_BASE_DIGEST}={}", self.digest()),
            format!("ENV PATH={}", self.path),
        ]
    }

    /// The commands a user runs to make the base without nanoclaw being root (the same steps
    /// [`ensure_base`] takes).
    pub fn manual_commands(&self) -> String {
        let changes: Vec<String> = self
            .import_changes()
            .iter()
            .map(|change| format!("--change '{change}'"))
            .collect();
        let tar: Vec<String> = tar_args(Path::new("\"$dir\""))
            .iter()
            .map(|arg| match arg.strip_prefix("--exclude=") {
                Some(pattern) => format!("--exclude='{pattern}'"),
                None => arg.clone(),
            })
            .collect();
        format!(
            "dir=$(sudo mktemp -d {WORK_DIR}/nanoclaw-base.XXXXXX)\nsudo debootstrap {}\nsudo sh -c 'cd \"$1\" && rm -rf {}' sh \"$dir\"\nsudo tar {} | docker import {} - {}\nsudo rm -rf \"$dir\"",
            self.debootstrap_args(Path::new("\"$dir\"")).join(" "),
            self.prune.join(" "),
            tar.join(" "),
            changes.join(" "),
            self.tag()
        )
    }
}

/// GNU tar making the image's layer from `dir`: numeric owners (the host's names mean
/// nothing in the image), `/dev` empty (Docker provides its own).
fn tar_args(dir: &Path) -> Vec<String> {
    vec![
        "--numeric-owner".to_string(),
        "-C".to_string(),
        dir.display().to_string(),
        "--exclude=./dev/*".to_string(),
        "-c".to_string(),
        ".".to_string(),
    ]
}

/// Makes sure the base image of `recipe` exists: reused when an image with its digest is
/// there, made when we are root, otherwise an error with the commands to run.
pub async fn ensure_base(
    docker: &Docker,
    recipe: &Debootstrap,
    progress: &mut impl FnMut(BuildProgress),
) -> Result<BaseOutcome, ContainerError> {
    let tag = recipe.tag();
    let digest = recipe.digest();
    let labels = image_labels(docker, &tag).await?;
    if labels.is_some_and(|labels| labels.get(LABEL_BASE_DIGEST) == Some(&digest)) {
        return Ok(BaseOutcome::Reused);
    }
    if !super::daemon::is_root() {
        return Err(needs_root(recipe));
    }
    if !has_debootstrap() {
        progress(BuildProgress::Step(
            "installing debootstrap: apt-get install -y debootstrap".to_string(),
        ));
        run_logged("apt-get", &["update"], progress).await?;
        run_logged(
            "apt-get",
            &["install", "-y", "--no-install-recommends", "debootstrap"],
            progress,
        )
        .await?;
    }
    let work = tempfile::Builder::new()
        .prefix("nanoclaw-base.")
        .tempdir_in(WORK_DIR)
        .map_err(|source| ContainerError::Io {
            path: WORK_DIR.into(),
            source,
        })?;
    let args = recipe.debootstrap_args(work.path());
    progress(BuildProgress::Step(format!(
        "making the Debian base `{tag}`: debootstrap {}",
        args.join(" ")
    )));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_logged("debootstrap", &args, progress).await?;
    for pattern in recipe.prune {
        prune(work.path(), pattern).map_err(|source| ContainerError::Io {
            path: work.path().join(pattern),
            source,
        })?;
    }
    progress(BuildProgress::Step(format!(
        "importing the base into Docker as `{tag}`"
    )));
    import(docker, recipe, work.path(), progress).await?;
    Ok(BaseOutcome::Made)
}

/// The refusal of a user who is not root: what to run instead.
fn needs_root(recipe: &Debootstrap) -> ContainerError {
    ContainerError::BaseNeedsRoot {
        tag: recipe.tag(),
        commands: recipe
            .manual_commands()
            .lines()
            .map(|line| format!("  {line}"))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn has_debootstrap() -> bool {
    Command::new("debootstrap")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Runs a host command, handing each line of its output (stdout and stderr interleaved) to
/// `progress`; fails naming the command when it does not exit 0.
async fn run_logged(
    program: &str,
    args: &[&str],
    progress: &mut impl FnMut(BuildProgress),
) -> Result<(), ContainerError> {
    let shown = format!("{program} {}", args.join(" "));
    let (sender, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    let program_owned = program.to_string();
    let args_owned: Vec<OsString> = args.iter().map(OsString::from).collect();
    let waiter = tokio::task::spawn_blocking(move || -> std::io::Result<ExitStatus> {
        let (reader, writer) = std::io::pipe()?;
        let mut command = Command::new(program_owned);
        command
            .args(args_owned)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer);
        let mut child = command.spawn()?;
        // The command holds our copies of the pipe's write end: without dropping it, the
        // reader below never sees the end of the output.
        drop(command);
        let mut reader = BufReader::new(reader);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line)? > 0 {
            let _ = sender.send(String::from_utf8_lossy(&line).trim_end().to_string());
            line.clear();
        }
        child.wait()
    });
    while let Some(line) = lines.recv().await {
        if !line.trim().is_empty() {
            progress(BuildProgress::Output(line));
        }
    }
    let status = waiter
        .await
        .map_err(|err| ContainerError::Base(format!("`{shown}`: {err}")))?
        .map_err(|source| ContainerError::Io {
            path: program.into(),
            source,
        })?;
    if !status.success() {
        return Err(ContainerError::Base(format!("`{shown}` failed ({status})")));
    }
    Ok(())
}

/// Streams `tar` of `dir` into `docker import` (never the whole tree in memory).
async fn import(
    docker: &Docker,
    recipe: &Debootstrap,
    dir: &Path,
    progress: &mut impl FnMut(BuildProgress),
) -> Result<(), ContainerError> {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let args = tar_args(dir);
    let reader = tokio::task::spawn_blocking(move || stream_tar(&args, &sender));
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    let options = CreateImageOptions {
        from_src: Some("-".to_string()),
        repo: Some(BASE_REPOSITORY.to_string()),
        tag: Some(recipe.tag_suffix()),
        message: Some(format!(
            "nanoclaw: debootstrap --variant={} {}",
            recipe.variant, recipe.suite
        )),
        changes: recipe.import_changes(),
        ..Default::default()
    };
    let mut stream =
        docker
            .client
            .create_image(Some(options), Some(bollard::body_try_stream(body)), None);
    let mut failure = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(status) = info.status.filter(|status| !status.trim().is_empty()) {
                    progress(BuildProgress::Output(status));
                }
            }
            Err(err) => {
                failure = Some(err);
                break;
            }
        }
    }
    drop(stream);
    let tar_result = reader
        .await
        .map_err(|err| ContainerError::Base(format!("`tar` of the base: {err}")))?;
    tar_result.map_err(ContainerError::Base)?;
    match failure {
        Some(err) => Err(ContainerError::Base(format!(
            "`docker import` of the base failed: {err}"
        ))),
        None => Ok(()),
    }
}

/// Runs GNU tar and sends its output in chunks; an error names tar's complaint.
fn stream_tar(
    args: &[String],
    sender: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), String> {
    let mut child = Command::new("tar")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| format!("cannot run `tar`: {err}"))?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n_read = match stdout.read(&mut buffer) {
            Ok(0) => break,
            Ok(n_read) => n_read,
            Err(err) => return Err(format!("reading `tar`'s output: {err}")),
        };
        if sender
            .blocking_send(Ok(Bytes::copy_from_slice(&buffer[..n_read])))
            .is_err()
        {
            // Docker stopped reading (its error is reported by the caller).
            break;
        }
    }
    // Closing our end first: a tar still writing gets EPIPE instead of blocking forever.
    drop(stdout);
    let mut complaint = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut complaint);
    }
    let status = child
        .wait()
        .map_err(|err| format!("waiting for `tar`: {err}"))?;
    if status.success() {
        return Ok(());
    }
    let message = format!(
        "`tar {}` failed ({status}): {}",
        args.join(" "),
        complaint.trim()
    );
    let _ = sender.blocking_send(Err(std::io::Error::other(message.clone())));
    Err(message)
}

/// Removes what `pattern` (relative to `root`; one `*` allowed in its last component) names.
fn prune(root: &Path, pattern: &str) -> std::io::Result<()> {
    let (dir, name) = pattern.rsplit_once('/').unwrap_or(("", pattern));
    let entries = match std::fs::read_dir(root.join(dir)) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    for entry in entries {
        let entry = entry?;
        if !glob_matches(name, &entry.file_name().to_string_lossy()) {
            continue;
        }
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// `name` matches `pattern`, where `pattern` may hold one `*` (any run of characters).
fn glob_matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        Some((prefix, suffix)) => {
            name.len() >= prefix.len() + suffix.len()
                && name.starts_with(prefix)
                && name.ends_with(suffix)
        }
        None => pattern == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_carries_the_recipe_digest() {
        let tag = BOOKWORM.tag();
        let digest = BOOKWORM.digest();
        assert_eq!(tag, format!("nanoclaw-base:bookworm-{}", &digest[..12]));
        let other = Debootstrap {
            mirror: "http://mirror.example/debian",
            ..BOOKWORM
        };
        assert_ne!(other.tag(), tag, "another recipe is another image");
        assert_eq!(
            BOOKWORM.import_changes()[0],
            format!("LABEL nanoclaw.base-sha256={digest}")
        );
    }

    #[test]
    fn manual_commands_are_the_steps_nanoclaw_takes_as_root() {
        let text = BOOKWORM
            .manual_commands()
            .replace(&BOOKWORM.digest(), "$DIGEST")
            .replace(&BOOKWORM.digest()[..12], "$SHORT");
        expect_test::expect![[r#"
              dir=$(sudo mktemp -d /var/tmp/nanoclaw-base.XXXXXX)
              sudo debootstrap --variant=minbase bookworm "$dir" http://deb.debian.org/debian
              sudo sh -c 'cd "$1" && rm -rf var/cache/apt/archives/*.deb var/cache/apt/*.bin var/lib/apt/lists/* var/log/bootstrap.log' sh "$dir"
              sudo tar --numeric-owner -C "$dir" --exclude='./dev/*' -c . | docker import --change 'LABEL nanoclaw.base-sha256=$DIGEST' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - nanoclaw-base:bookworm-$SHORT
              sudo rm -rf "$dir""#]]
        .assert_eq(&text);
    }

    #[test]
    fn without_root_the_error_gives_the_commands() {
        let text = needs_root(&BOOKWORM).to_string();
        let short = &BOOKWORM.digest()[..12];
        let first_lines: Vec<&str> = text.lines().take(4).collect();
        assert_eq!(
            first_lines,
            [
                format!("the production image starts from the Debian base `nanoclaw-base:bookworm-{short}`, which is not here, and making it (debootstrap) needs root").as_str(),
                "",
                "hint: run `sudo nanoclaw image build --recipe production`, or make the base yourself and run this again:",
                "  dir=$(sudo mktemp -d /var/tmp/nanoclaw-base.XXXXXX)",
            ]
        );
        assert_eq!(text.lines().count(), 3 + 5, "the five commands follow");
    }

    #[test]
    fn prune_patterns_match_one_star() {
        assert!(glob_matches("*.deb", "apt_2.6.1_amd64.deb"));
        assert!(!glob_matches("*.deb", "partial"));
        assert!(glob_matches("*", "partial"));
        assert!(glob_matches("bootstrap.log", "bootstrap.log"));
        assert!(!glob_matches("bootstrap.log", "dpkg.log"));
        assert!(!glob_matches("a*a", "a"));
    }

    #[test]
    fn prune_removes_caches_and_keeps_the_rest() {
        let root = tempfile::tempdir().unwrap();
        let archives = root.path().join("var/cache/apt/archives");
        std::fs::create_dir_all(archives.join("partial")).unwrap();
        std::fs::write(archives.join("bash.deb"), "").unwrap();
        std::fs::create_dir_all(root.path().join("var/lib/apt/lists/partial")).unwrap();
        std::fs::write(root.path().join("var/lib/apt/lists/Packages"), "").unwrap();
        std::fs::create_dir_all(root.path().join("var/log")).unwrap();
        std::fs::write(root.path().join("var/log/bootstrap.log"), "").unwrap();
        std::fs::write(root.path().join("var/log/dpkg.log"), "").unwrap();
        for pattern in BOOKWORM.prune {
            prune(root.path(), pattern).unwrap();
        }
        assert!(archives.join("partial").is_dir());
        assert!(!archives.join("bash.deb").exists());
        assert_eq!(
            std::fs::read_dir(root.path().join("var/lib/apt/lists"))
                .unwrap()
                .count(),
            0
        );
        assert!(!root.path().join("var/log/bootstrap.log").exists());
        assert!(root.path().join("var/log/dpkg.log").exists());
        prune(root.path(), "no/such/dir/*").unwrap();
    }
}
