//! The static agent-runner an image gets, found without a Rust toolchain: `--runner PATH`,
//! else `NANOCLAW_RUNNER`, else `agent-runner` beside the `nanoclaw` executable (where an
//! install puts it). Only when none of them names one and this binary's source checkout is at
//! hand is it built from source, by [`super::dev_runner`] (developer tooling, kept apart).
//!
//! A runner must be a static x86_64 Linux binary: the minimal image is `FROM scratch`, with no
//! dynamic loader. A given one that is not is refused; one beside `nanoclaw` that is not (the
//! glibc `agent-runner` cargo leaves in `target/debug/` next to `nanoclaw`) is passed over.

use std::path::{Path, PathBuf};

use anyhow::bail;

use super::dev_runner;
use crate::env;

/// Where a runner was given or found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Source {
    /// `--runner PATH`.
    Flag,
    /// `NANOCLAW_RUNNER`.
    Env,
    /// `agent-runner` in the folder of the `nanoclaw` executable.
    BesideExecutable,
}

/// What a file is, as far as running it in an agent image goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Binary {
    Missing,
    /// A static x86_64 Linux executable: runs in any image.
    Static,
    /// Anything else, and why it cannot run in the minimal image.
    Unusable(&'static str),
}

/// When [`find`] found none: a runner built from the source checkout, else an error that says
/// how to provide one.
pub(super) fn fallback() -> anyhow::Result<PathBuf> {
    match dev_runner::checkout() {
        Some(checkout) => dev_runner::build(&checkout),
        None => bail!(no_runner_message()),
    }
}

/// The runner given (`--runner`, `NANOCLAW_RUNNER`) or installed beside `nanoclaw`, checked;
/// `None` when there is none. A given runner that is missing or not static is an error.
pub(super) fn find(flag: Option<&Path>) -> anyhow::Result<Option<PathBuf>> {
    let given = flag
        .map(|path| (Source::Flag, path.to_path_buf()))
        .or_else(|| env::get(env::NANOCLAW_RUNNER).map(|path| (Source::Env, PathBuf::from(path))));
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(RUNNER_FILE)));
    let candidates = given.into_iter().chain(
        beside
            .into_iter()
            .map(|path| (Source::BesideExecutable, path)),
    );
    for (source, path) in candidates {
        let binary = examine(&path);
        match choose(source, &path, &binary) {
            Choice::Use => return Ok(Some(path)),
            Choice::PassOver => {
                tracing::debug!(path = %path.display(), ?binary, "not using the agent-runner beside nanoclaw");
            }
            Choice::Refuse(message) => bail!(message),
        }
    }
    Ok(None)
}

/// The runner's file name beside `nanoclaw`.
pub(super) const RUNNER_FILE: &str = "agent-runner";

/// What to do with one candidate.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Choice {
    Use,
    /// Not usable, and nobody asked for it: look further.
    PassOver,
    /// Asked for and not usable: the message says why and what to do.
    Refuse(String),
}

/// Decides about one candidate (pure): a given runner must exist and be static; the one
/// beside `nanoclaw` is used only when it is.
fn choose(source: Source, path: &Path, binary: &Binary) -> Choice {
    let named = match source {
        Source::Flag => format!("runner `{}`", path.display()),
        Source::Env => format!(
            "runner `{}` (from `{}`)",
            path.display(),
            env::NANOCLAW_RUNNER
        ),
        Source::BesideExecutable => String::new(),
    };
    match (source, binary) {
        (_, Binary::Static) => Choice::Use,
        (Source::BesideExecutable, _) => Choice::PassOver,
        (_, Binary::Missing) => Choice::Refuse(format!("{named} does not exist")),
        (_, Binary::Unusable(why)) => Choice::Refuse(format!(
            "{named} cannot run in an agent image: {why}\n\nhint: give a static x86_64 Linux \
             build of agent-runner, such as the `{RUNNER_FILE}` shipped beside `nanoclaw`, or \
             build one with `cargo build -p agent-runner --release --target {}`",
            dev_runner::MUSL_TARGET
        )),
    }
}

/// Reads enough of `path` to tell a static x86_64 Linux executable from anything else.
pub(super) fn examine(path: &Path) -> Binary {
    use std::io::Read;
    let Ok(mut file) = std::fs::File::open(path) else {
        return Binary::Missing;
    };
    if !file.metadata().is_ok_and(|meta| meta.is_file()) {
        return Binary::Missing;
    }
    // The program headers sit near the start; 64 KiB holds the header table of any sane binary.
    let mut head = Vec::new();
    if file
        .by_ref()
        .take(64 * 1024)
        .read_to_end(&mut head)
        .is_err()
    {
        return Binary::Unusable("it cannot be read");
    }
    elf_verdict(&head)
}

/// The verdict on an ELF file's first bytes (pure): a 64-bit little-endian x86_64 executable
/// without a `PT_INTERP` program header (static or static-pie) is static.
fn elf_verdict(head: &[u8]) -> Binary {
    const PT_INTERP: u32 = 3;
    const EM_X86_64: u16 = 62;
    let u16_at = |at: usize| {
        head.get(at..at + 2)
            .map(|bytes| u16::from_le_bytes([bytes[0], bytes[1]]))
    };
    let u32_at = |at: usize| {
        head.get(at..at + 4)
            .map(|bytes| u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    };
    let u64_at = |at: usize| {
        head.get(at..at + 8).map(|bytes| {
            let mut array = [0; 8];
            array.copy_from_slice(bytes);
            u64::from_le_bytes(array)
        })
    };
    if head.get(..4) != Some(b"\x7fELF") {
        return Binary::Unusable("it is not an executable (no ELF header)");
    }
    if head.get(4..6) != Some(&[2, 1]) || u16_at(0x12) != Some(EM_X86_64) {
        return Binary::Unusable("it is not an x86_64 Linux executable");
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return Binary::Unusable("its ELF header is cut short");
    };
    for index in 0..usize::from(phnum) {
        let at = usize::try_from(phoff)
            .ok()
            .and_then(|phoff| phoff.checked_add(index * usize::from(phentsize)));
        match at.and_then(u32_at) {
            Some(PT_INTERP) => {
                return Binary::Unusable(
                    "it is dynamically linked (it needs a loader such as `/lib64/ld-linux-x86-64.so.2`, which a `FROM scratch` image lacks)",
                );
            }
            Some(_) => {}
            None => return Binary::Unusable("its program headers are cut short"),
        }
    }
    Binary::Static
}

/// Why no runner could be found, and the ways to provide one.
fn no_runner_message() -> String {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(RUNNER_FILE)))
        .map_or_else(
            || format!("`{RUNNER_FILE}` beside `nanoclaw`"),
            |path| format!("`{}`", path.display()),
        );
    format!(
        "no agent-runner to put in the image: none given and no static one at {beside}\n\n\
         hint: pass `--runner PATH` or set `{}` to a static x86_64 Linux build of agent-runner, \
         or install it as {beside}",
        env::NANOCLAW_RUNNER
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(interp: bool, machine: u16) -> Vec<u8> {
        let mut head = vec![0u8; 0x40 + 2 * 56];
        head[..4].copy_from_slice(b"\x7fELF");
        head[4] = 2;
        head[5] = 1;
        head[0x12..0x14].copy_from_slice(&machine.to_le_bytes());
        head[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        head[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        head[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        // PT_LOAD, then PT_INTERP or PT_DYNAMIC (a static-pie binary has DYNAMIC, no INTERP).
        head[0x40..0x44].copy_from_slice(&1u32.to_le_bytes());
        let second: u32 = if interp { 3 } else { 2 };
        head[0x40 + 56..0x40 + 60].copy_from_slice(&second.to_le_bytes());
        head
    }

    #[test]
    fn only_a_static_x86_64_executable_can_run_in_the_minimal_image() {
        assert_eq!(elf_verdict(&elf(false, 62)), Binary::Static);
        assert!(
            matches!(elf_verdict(&elf(true, 62)), Binary::Unusable(why) if why.contains("dynamically linked"))
        );
        assert!(
            matches!(elf_verdict(&elf(false, 183)), Binary::Unusable(why) if why.contains("x86_64"))
        );
        assert!(
            matches!(elf_verdict(b"#!/bin/sh\n"), Binary::Unusable(why) if why.contains("no ELF header"))
        );
        let cut = &elf(false, 62)[..0x50];
        assert!(matches!(elf_verdict(cut), Binary::Unusable(why) if why.contains("cut short")));
    }

    #[test]
    fn the_binaries_cargo_builds_are_told_apart() {
        // This test binary is a glibc build: dynamically linked.
        let me = std::env::current_exe().unwrap();
        assert!(matches!(examine(&me), Binary::Unusable(_)), "{me:?}");
        assert_eq!(
            examine(Path::new("/nonexistent/agent-runner")),
            Binary::Missing
        );
    }

    #[test]
    fn a_given_runner_must_be_usable_and_one_beside_nanoclaw_is_passed_over_when_not() {
        let path = Path::new("/opt/agent-runner");
        let dynamic = Binary::Unusable("it is dynamically linked");
        assert_eq!(choose(Source::Flag, path, &Binary::Static), Choice::Use);
        assert_eq!(
            choose(Source::BesideExecutable, path, &Binary::Static),
            Choice::Use
        );
        assert_eq!(
            choose(Source::BesideExecutable, path, &dynamic),
            Choice::PassOver
        );
        assert_eq!(
            choose(Source::BesideExecutable, path, &Binary::Missing),
            Choice::PassOver
        );
        assert_eq!(
            choose(Source::Flag, path, &Binary::Missing),
            Choice::Refuse("runner `/opt/agent-runner` does not exist".into())
        );
        assert_eq!(
            choose(Source::Env, path, &Binary::Missing),
            Choice::Refuse(
                "runner `/opt/agent-runner` (from `NANOCLAW_RUNNER`) does not exist".into()
            )
        );
        let Choice::Refuse(message) = choose(Source::Flag, path, &dynamic) else {
            panic!("refused");
        };
        expect_test::expect![[r#"
            runner `/opt/agent-runner` cannot run in an agent image: it is dynamically linked

            hint: give a static x86_64 Linux build of agent-runner, such as the `agent-runner` shipped beside `nanoclaw`, or build one with `cargo build -p agent-runner --release --target x86_64-unknown-linux-musl`"#]]
        .assert_eq(&message);
    }
}
