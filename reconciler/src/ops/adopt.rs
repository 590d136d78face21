//! `nanoclaw adopt ADDRESS…`: resources made at runtime (approvals, pairing, new chats) written
//! into the manifest folder as a new file and marked managed, so the manifests own them from
//! now on and a plan afterwards shows no changes (docs/manifests.md#rows-made-at-runtime).
//!
//! An address adopts its whole manifest document: `wiring.<channel>/<agent>` its channel,
//! `destination.<agent>/…` its agent, `role.<user>/…` and `member.<user>/…` their user. The
//! new file must load with the rest of the folder (a wiring's agent must be declared, or be
//! adopted in the same call); otherwise it is removed again and the diagnostics returned.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{OpsError, current};
use crate::apply::Meta;
use crate::plan::{self, Action, Running};
use crate::state::{Address, Kind, State, TextEnum};

/// What an adoption did.
#[derive(Clone, Debug)]
pub struct Adopted {
    /// The manifest file written.
    pub file: PathBuf,
    /// Every resource now managed, by address.
    pub addresses: Vec<Address>,
}

/// Adopts `addresses` (as `plan` prints them) into the manifest folder `dir`.
pub fn adopt(
    paths: &crate::paths::Paths,
    dir: &Path,
    addresses: &[String],
) -> Result<Adopted, OpsError> {
    let before = super::load(dir, &paths.data)?;
    let (_lock, mut conn) = current::open_for_apply(paths)?;
    let current = crate::db::config::read(&conn)?;
    let mut roots = BTreeSet::new();
    for text in addresses {
        let address = parse(text).ok_or_else(|| {
            OpsError::Adopt(format!(
                "`{text}` is not an address\n\nhint: copy one from the list at the end of `nanoclaw plan`"
            ))
        })?;
        if current.state.get(&address).is_none() {
            return Err(OpsError::Adopt(format!(
                "`{address}` is not in the database\n\nhint: `nanoclaw plan` lists what was made at runtime"
            )));
        }
        if current.managed.contains(&address) || before.state.get(&address).is_some() {
            return Err(OpsError::Adopt(format!(
                "`{address}` is already in the manifests"
            )));
        }
        if let Some(source) = before.sources.get(&root(&address)) {
            return Err(OpsError::Adopt(in_declared_document(
                &address,
                &current.state,
                source,
            )));
        }
        roots.insert(root(&address));
    }
    let mut subset = State::default();
    for (address, resource) in &current.state.resources {
        if roots.contains(&root(address)) && before.state.get(address).is_none() {
            subset.insert(resource.clone());
        }
    }
    let file = free_name(dir);
    let text = format!(
        "# Adopted by `nanoclaw adopt`: made at runtime, managed by these manifests from now on.\n{}",
        crate::manifest::to_yaml(&subset)
    );
    write_new(&file, &text)?;
    let after = match super::load(dir, &paths.data) {
        Ok(after) => after,
        Err(err) => {
            let _ = std::fs::remove_file(&file);
            return Err(err);
        }
    };
    // Only what the new file brought in (its documents and what they imply, such as a
    // wiring's destination) is adopted now; other edits wait for `nanoclaw apply`.
    let full = plan::diff(&after.state, &current);
    let (plan, _others) = full.hold(&Running::default(), |change| {
        change.action != Action::Adopt || before.state.get(&change.address).is_some()
    });
    let adopted: Vec<Address> = plan
        .changes
        .iter()
        .map(|change| change.address.clone())
        .collect();
    let meta = Meta {
        manifest_digest: after.digest,
        git_commit: crate::apply::git_commit(dir),
        defer_restarts: Vec::new(),
    };
    if let Err(err) = crate::apply::apply(&mut conn, &after.state, &plan, &current, &meta) {
        let _ = std::fs::remove_file(&file);
        return Err(err.into());
    }
    Ok(Adopted {
        file,
        addresses: adopted,
    })
}

/// Why a runtime row inside a document the manifests declare (a destination `create_agent` gave
/// a declared agent) is not adopted into a new file: it belongs in that document, which this
/// command does not edit. Names the file and what to add.
fn in_declared_document(
    address: &Address,
    current: &State,
    source: &crate::manifest::Source,
) -> String {
    let root = root(address);
    let place = format!("{}:{}", source.file.display(), source.line);
    let what = match current.get(address) {
        Some(crate::state::Resource::Destination(destination)) => {
            let target = match &destination.target {
                crate::state::DestinationTarget::Agent(agent) => format!("agent: {agent}"),
                crate::state::DestinationTarget::Channel(channel) => format!("channel: {channel}"),
            };
            format!(
                "under `{root}`'s `destinations:` add `- {{ name: {}, {target} }}`",
                destination.local_name
            )
        }
        _ => "add it to that document".to_string(),
    };
    format!(
        "`{address}` belongs to `{root}`, declared in {place}: adopt it by editing that document\n\nhint: {what}, then `nanoclaw apply` adopts it"
    )
}

/// `kind.key` as `plan` prints it.
fn parse(text: &str) -> Option<Address> {
    let (kind, key) = text.trim().split_once('.')?;
    Some(Address::new(Kind::parse(kind)?, key))
}

/// The address of the manifest document that holds `address`.
fn root(address: &Address) -> Address {
    let first = || {
        address
            .key
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string()
    };
    match address.kind {
        Kind::Wiring => Address::new(Kind::Channel, first()),
        Kind::Destination => Address::new(Kind::Agent, first()),
        Kind::Role | Kind::Member => Address::new(Kind::User, first()),
        Kind::Agent | Kind::Channel | Kind::User => address.clone(),
    }
}

/// `adopted.yaml`, else `adopted-2.yaml`, … : a file name not taken in `dir`.
fn free_name(dir: &Path) -> PathBuf {
    let mut n = 1;
    loop {
        let name = match n {
            1 => "adopted.yaml".to_string(),
            n => format!("adopted-{n}.yaml"),
        };
        let path = dir.join(name);
        if !path.exists() {
            return path;
        }
        n += 1;
    }
}

fn write_new(path: &Path, text: &str) -> Result<(), OpsError> {
    use std::io::Write;
    let io = |source| OpsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)
}
