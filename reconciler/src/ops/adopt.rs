//! `nanoclaw adopt ADDRESS…`: resources made at runtime (approvals, pairing, new chats,
//! `create_agent`) written into the manifest folder and marked managed, so the manifests own
//! them from now on and a plan afterwards shows no changes (docs/manifests.md#rows-made-at-runtime).
//!
//! An address adopts its whole manifest document: `wiring.<channel>/<agent>` its channel,
//! `destination.<agent>/…` its agent, `role.<user>/…` and `member.<user>/…` their user. A
//! document the manifests do not declare goes into a new file (`adopted.yaml`, …); a row whose
//! document they declare (the destination `create_agent` gives its declared creator, a role a
//! pairing gives a declared user) becomes an entry of that document, edited in place by
//! `manifest::patch::add_entry` (comments and layout kept).
//!
//! Nothing is half done: every edited and new file is validated together with the rest of the
//! folder before one is written; an edit nanoclaw cannot make (a file it may not write, a
//! layout the edit does not handle) refuses the whole call with the entry (and the patch) to
//! add by hand; a failed write, reload or apply puts every file back as it was. No git commit:
//! `adopt` is the user's command, the user commits.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::self_modify::{read_only, write_replacing};
use super::{OpsError, current};
use crate::apply::Meta;
use crate::manifest::{Source, patch};
use crate::mount_policy::Policy;
use crate::plan::{self, Action, Running};
use crate::state::{Address, DestinationTarget, Kind, Resource, State, TextEnum};

/// What an adoption did.
#[derive(Clone, Debug)]
pub struct Adopted {
    /// Every manifest file written, with what was added to it.
    pub files: Vec<Written>,
    /// Every resource now managed, by address.
    pub addresses: Vec<Address>,
}

/// One manifest file `adopt` wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// As the loader names it (the folder joined with the path below it).
    pub file: PathBuf,
    /// A new file of whole documents, rather than a declared document edited in place.
    pub created: bool,
    /// The resources written into it, by address.
    pub added: Vec<Address>,
}

/// One declared file's edit, before it is written.
struct FileEdit {
    /// As the loader names it.
    file: PathBuf,
    /// The original bytes, put back when a later step fails.
    original: String,
    edited: String,
    added: Vec<Address>,
}

/// Adopts `addresses` (as `plan` prints them) into the manifest folder `dir`. `writable` is
/// false with `NANOCLAW_MANIFESTS_READONLY=1`: then no existing file is edited.
pub fn adopt(
    paths: &crate::paths::Paths,
    dir: &Path,
    addresses: &[String],
    writable: bool,
) -> Result<Adopted, OpsError> {
    let before = super::load(dir, &paths.data)?;
    let (_lock, mut conn) = current::open_for_apply(paths)?;
    let current = crate::db::config::read(&conn)?;
    let mut roots = BTreeSet::new();
    let mut inside = BTreeMap::new();
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
        match before.sources.get(&root(&address)) {
            Some(source) => {
                inside.insert(address, source.clone());
            }
            None => {
                roots.insert(root(&address));
            }
        }
    }
    let edits = edit_declared(&current.state, &inside)?;
    let mut subset = State::default();
    for (address, resource) in &current.state.resources {
        if roots.contains(&root(address)) && before.state.get(address).is_none() {
            subset.insert(resource.clone());
        }
    }
    let new_file = (!roots.is_empty()).then(|| {
        let text = format!(
            "# Adopted by `nanoclaw adopt`: made at runtime, managed by these manifests from now on.\n{}",
            crate::manifest::to_yaml(&subset)
        );
        (free_name(dir), text)
    });
    let mut changed: Vec<(PathBuf, Vec<u8>)> = edits
        .iter()
        .map(|edit| (edit.file.clone(), edit.edited.clone().into_bytes()))
        .collect();
    if let Some((file, text)) = &new_file {
        changed.push((file.clone(), text.clone().into_bytes()));
    }
    crate::manifest::load_for_host_changed(dir, &Policy::load(&paths.data), &changed)
        .map_err(|diagnostics| OpsError::Invalid { diagnostics })?;
    for edit in &edits {
        if let Some(why) = read_only(writable, &real(&edit.file)) {
            return Err(OpsError::Adopt(not_writable(
                edit,
                &inside,
                &current.state,
                &why,
            )));
        }
    }
    let mut undo = Undo::default();
    let written = write_all(&edits, new_file.as_ref(), &mut undo);
    let after = match written.and_then(|()| super::load(dir, &paths.data)) {
        Ok(after) => after,
        Err(err) => {
            undo.run();
            return Err(err);
        }
    };
    // Only what the written files brought in (the rows and what they imply, such as a
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
        undo.run();
        return Err(err.into());
    }
    let mut files = Vec::new();
    if let Some((file, _)) = new_file {
        files.push(Written {
            file,
            created: true,
            added: subset.resources.keys().cloned().collect(),
        });
    }
    files.extend(edits.into_iter().map(|edit| Written {
        file: edit.file,
        created: false,
        added: edit.added,
    }));
    Ok(Adopted {
        files,
        addresses: adopted,
    })
}

/// The edits of declared documents, one per file, every row of `inside` added to its
/// document; a row the edit cannot add refuses the whole adoption with what to add by hand.
fn edit_declared(
    current: &State,
    inside: &BTreeMap<Address, Source>,
) -> Result<Vec<FileEdit>, OpsError> {
    let mut edits: BTreeMap<PathBuf, FileEdit> = BTreeMap::new();
    for (address, source) in inside {
        let refuse = |why: String| {
            OpsError::Adopt(format!(
                "{}, and that document cannot be edited automatically ({why}): nothing was adopted\n\nhint: {}, then `nanoclaw apply` adopts it",
                belongs(address, source),
                by_hand(address, current)
            ))
        };
        let edit = match edits.entry(source.file.clone()) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => {
                let text = std::fs::read_to_string(&source.file)
                    .map_err(|err| refuse(format!("reading it: {err}")))?;
                entry.insert(FileEdit {
                    file: source.file.clone(),
                    original: text.clone(),
                    edited: text,
                    added: Vec::new(),
                })
            }
        };
        let row = current
            .get(address)
            .expect("every address was checked to be in the database");
        let edited = patch::add_entry(&edit.edited, row).map_err(|err| match err {
            patch::PatchError::Unsupported(why) => refuse(why),
            other => refuse(other.to_string()),
        })?;
        edit.edited = edited.text;
        edit.added.push(address.clone());
    }
    Ok(edits.into_values().collect())
}

/// The refusal of an edit into a file nanoclaw may not write: the entries and the patch.
fn not_writable(
    edit: &FileEdit,
    inside: &BTreeMap<Address, Source>,
    current: &State,
    why: &str,
) -> String {
    let first = &edit.added[0];
    let hints: Vec<String> = edit
        .added
        .iter()
        .map(|address| by_hand(address, current))
        .collect();
    let shown = edit.file.display().to_string();
    format!(
        "{}, and `{shown}` is not written by nanoclaw ({why}): nothing was adopted\n\nhint: {}, then `nanoclaw apply` adopts it; as a patch:\n{}",
        belongs(first, &inside[first]),
        hints.join("; "),
        patch::unified_diff(&shown, &edit.original, &edit.edited)
    )
}

/// `` `destination.echo/helper` belongs to `agent.echo`, declared in agents.yaml:1 ``.
fn belongs(address: &Address, source: &Source) -> String {
    format!(
        "`{address}` belongs to `{}`, declared in {}:{}",
        root(address),
        source.file.display(),
        source.line
    )
}

/// What to add by hand for `address`, a row inside a declared document.
fn by_hand(address: &Address, current: &State) -> String {
    let root = root(address);
    match current.get(address) {
        Some(Resource::Destination(destination)) => {
            let target = match &destination.target {
                DestinationTarget::Agent(agent) => format!("agent: {agent}"),
                DestinationTarget::Channel(channel) => format!("channel: {channel}"),
            };
            format!(
                "under `{root}`'s `destinations:` add `- {{ name: {}, {target} }}`",
                destination.local_name
            )
        }
        Some(Resource::Role(role)) => match &role.agent {
            None => format!("under `{root}`'s `roles:` add `- {}`", role.role.as_str()),
            Some(agent) => format!(
                "under `{root}`'s `roles:` add `- {{ role: {}, agent: {agent} }}`",
                role.role.as_str()
            ),
        },
        Some(Resource::Member(member)) => {
            format!("under `{root}`'s `member_of:` add `- {}`", member.agent)
        }
        Some(Resource::Wiring(_)) => {
            format!("under `{root}`'s `wirings:` add its entry (`nanoclaw export` writes it out)")
        }
        _ => "add it to that document".to_string(),
    }
}

/// Files written so far, to put back when a later step fails.
#[derive(Default)]
struct Undo {
    created: Option<PathBuf>,
    replaced: Vec<(PathBuf, String)>,
}

impl Undo {
    /// Best effort: the error that made it run is the one reported.
    fn run(&self) {
        for (file, original) in self.replaced.iter().rev() {
            if let Err(err) = write_replacing(file, original.as_bytes()) {
                tracing::error!(file = %file.display(), %err, "adopt could not put the file back");
            }
        }
        if let Some(file) = &self.created {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// Writes the new file, then each edited file through a temp file renamed over it.
fn write_all(
    edits: &[FileEdit],
    new_file: Option<&(PathBuf, String)>,
    undo: &mut Undo,
) -> Result<(), OpsError> {
    if let Some((file, text)) = new_file {
        write_new(file, text)?;
        undo.created = Some(file.clone());
    }
    for edit in edits {
        // Write through links to the real file (the loader only follows links inside the folder).
        let target = real(&edit.file);
        write_replacing(&target, edit.edited.as_bytes()).map_err(|source| OpsError::Write {
            path: edit.file.clone(),
            source,
        })?;
        undo.replaced.push((target, edit.original.clone()));
    }
    Ok(())
}

fn real(file: &Path) -> PathBuf {
    std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf())
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

/// Writes `text` as the new file `path` through a temp file beside it, renamed into place
/// only if `path` is still free: a reader never sees half of it.
fn write_new(path: &Path, text: &str) -> Result<(), OpsError> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let io = |source| OpsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let folder = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".nanoclaw-tmp")
        .tempfile_in(folder)
        .map_err(io)?;
    temp.write_all(text.as_bytes()).map_err(io)?;
    temp.as_file().sync_all().map_err(io)?;
    // Like a file the user made: readable by the daemon whatever user it runs as.
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(io)?;
    temp.persist_noclobber(path).map_err(|err| io(err.error))?;
    Ok(())
}
