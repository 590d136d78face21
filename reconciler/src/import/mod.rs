//! `nanoclaw import`: a NanoClaw v2 install (its `data/v2.db` and `groups/`) turned into
//! manifests, with a report of every value that did not come across unchanged; optionally its
//! sessions moved into a data dir (`sessions`).
//!
//! ```text
//! read(v2 dir, policy) -> Imported      db::v2::read (a private snapshot of the DB, WAL included)
//!                                       + the group folders → map (pure) → repair (validates)
//! sessions::move_all(imported, paths)   the conversations, memory and Claude state
//! ```
//!
//! The v2 folder is only ever read. Writing the manifests is `export::write`; printing is the
//! CLI's. Mounts are decided by this machine's mount policy, which also reads v2's
//! `mount-allowlist.json`, so an imported mount keeps working where v2 allowed it.

pub mod map;
pub mod repair;
pub mod report;
pub mod sessions;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use self::map::{GroupFiles, Inputs, Names};
use self::report::{Report, Section};
use crate::db::v2::{self as v2db, V2};
use crate::manifest::limits::MAX_STRING_BYTES;
use crate::mount_policy::Policy;
use crate::state::{Kind, State, TextEnum};

/// Largest legacy `container.json` read.
const MAX_CONTAINER_JSON: u64 = 1024 * 1024;
/// The file v2 keeps an agent's memory in, in its group folder.
pub const LOCAL_MD: &str = "CLAUDE.local.md";
/// The file name the report is written to, next to the manifests (not YAML: never loaded).
pub const REPORT_FILE: &str = "import-report.txt";

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    V2Db(#[from] v2db::V2DbError),
    #[error(transparent)]
    Repair(#[from] repair::RepairError),
}

/// A v2 install read and mapped.
#[derive(Clone, Debug)]
pub struct Imported {
    pub v2_dir: PathBuf,
    /// The desired state, exactly as the written manifests load.
    pub state: State,
    pub names: Names,
    pub report: Report,
    pub v2: V2,
}

impl Imported {
    /// `Imported 2 agents, 1 channel, …` for the top of the report.
    pub fn summary(&self) -> String {
        let mut counts: BTreeMap<Kind, usize> = BTreeMap::new();
        for address in self.state.resources.keys() {
            *counts.entry(address.kind).or_default() += 1;
        }
        let parts: Vec<String> = Kind::ALL
            .iter()
            .filter_map(|kind| {
                let n = *counts.get(kind)?;
                let word = kind.as_str();
                Some(if n == 1 {
                    format!("1 {word}")
                } else {
                    format!("{n} {word}s")
                })
            })
            .collect();
        if parts.is_empty() {
            "Imported nothing: the v2 install has no configuration.".to_string()
        } else {
            format!("Imported {}.", parts.join(", "))
        }
    }
}

/// Reads the v2 install at `v2_dir` and maps it, checking mounts against `policy`.
pub fn read(v2_dir: &Path, policy: &Policy) -> Result<Imported, ImportError> {
    let v2 = v2db::read(v2_dir)?;
    let groups = group_files(v2_dir, &v2);
    let check = |request: &crate::mount_policy::Request<'_>| policy.check(request);
    let mut providers = agent_runner::providers::provider_names();
    // The default provider (Claude Code, in the production image).
    providers.insert(0, "claude");
    let inputs = Inputs {
        groups: &groups,
        check_mount: &check,
        providers: &providers,
    };
    let (state, names, mut report) = map::map(&v2, &inputs);
    let state = repair::until_valid(state, &mut report, policy)?;
    if !v2.sessions.is_empty() {
        report.note(
            Section::Files,
            "sessions",
            format!(
                "{} sessions (their messages, agent memory in `groups/`, Claude state) are moved only with `--sessions`",
                v2.sessions.len()
            ),
        );
    }
    Ok(Imported {
        v2_dir: v2_dir.to_path_buf(),
        state,
        names,
        report,
        v2,
    })
}

/// What each agent group's folder holds: `CLAUDE.local.md` (its memory, which becomes the
/// agent's `instructions`) and a legacy `container.json`.
fn group_files(v2_dir: &Path, v2: &V2) -> BTreeMap<String, GroupFiles> {
    let mut out = BTreeMap::new();
    for group in &v2.agent_groups {
        let folder = v2_dir.join(sessions::GROUPS_DIR).join(&group.folder);
        let local_md = read_small(&folder.join(LOCAL_MD), MAX_STRING_BYTES as u64);
        let container_json =
            read_small(&folder.join("container.json"), MAX_CONTAINER_JSON).map(|text| {
                text.and_then(|text| serde_json::from_str(&text).map_err(|err| err.to_string()))
            });
        out.insert(
            group.folder.clone(),
            GroupFiles {
                local_md,
                container_json,
            },
        );
    }
    out
}

/// A regular file's text (links not followed); `None` when absent, `Err` saying why when it
/// cannot be used (not a regular file, over `max` bytes, not UTF-8).
fn read_small(path: &Path, max: u64) -> Option<Result<String, String>> {
    use std::io::Read;
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() {
        return Some(Err("it is not a regular file".to_string()));
    }
    if meta.len() > max {
        return Some(Err(format!(
            "it holds {} bytes, more than a manifest value may ({max}); `--sessions` moves the file itself",
            meta.len()
        )));
    }
    let mut text = String::new();
    let read = std::fs::File::open(path)
        .and_then(|file| file.take(max).read_to_string(&mut text))
        .map_err(|err| err.to_string());
    Some(read.map(|_| text))
}
