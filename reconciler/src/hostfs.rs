//! Host file operations that a planted link cannot redirect (issue 7 point 1).
//!
//! Everything works relative to a [`Dir`]: a directory opened once with `O_DIRECTORY |
//! O_NOFOLLOW`. An entry inside it is reached by one name through `openat`, `mkdirat`,
//! `renameat` or `unlinkat`, never by joining paths through a directory an agent controls, and
//! nothing here writes through an existing entry:
//!
//! - [`Dir::replace`] writes a temp file with an unpredictable name (`O_CREAT | O_EXCL |
//!   O_NOFOLLOW`, drawn again if taken) and `renameat`s it over the name. A symlink, hard link or
//!   FIFO at the name is replaced, never written through.
//! - [`Dir::create_new`] creates a missing file exclusively and leaves any existing entry alone.
//! - [`Dir::read_regular`] opens with `O_NOFOLLOW | O_NONBLOCK` (a FIFO cannot block it), checks
//!   with `fstat` that it holds a regular file, and reads at most a given number of bytes.
//!
//! This module knows nothing about sessions or agents; `runtime::layout` decides what goes where
//! and who owns it.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

/// Deepest directory nesting [`Dir::chown_tree`] and [`Dir::remove`] descend into.
pub const MAX_DEPTH: usize = 64;
/// How many temp names [`Dir::replace`] draws before it gives up.
const TEMP_ATTEMPTS: usize = 16;

const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC)
    .union(OFlags::RDONLY);

/// An open directory: the anchor of every operation in this module.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// For messages only; never used to reach an entry.
    path: PathBuf,
}

/// What kind of entry a name holds (from `lstat`: a symlink is never followed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    /// Sockets and device nodes.
    Other,
}

/// An entry's metadata, read without following it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    /// `(st_dev, st_ino)`: tells a file from its replacement.
    pub id: (u64, u64),
    /// Hard links to the inode.
    pub links: u64,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: SystemTime,
}

/// The uid and gid a created entry is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// The outcome of [`Dir::read_regular`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    Absent,
    /// Something other than a regular file: not read.
    NotRegular(Kind),
    /// A regular file larger than the limit: not read.
    TooLarge(u64),
    Bytes(Vec<u8>),
}

impl Dir {
    /// Opens a directory by path. Only the last component is refused when it is a symlink, so
    /// call this only on paths whose parents the host owns.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = rfs::open(path, DIR_FLAGS, Mode::empty())
            .map_err(|errno| with_path(errno, path, "opening directory"))?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Opens the directory `path`, creating it and its missing parents (mode `mode`, exactly).
    /// The same rule as [`Dir::open`] applies to the parents that already exist.
    pub fn create_all(path: &Path, mode: u32) -> io::Result<Dir> {
        match Dir::open(path) {
            Ok(dir) => return Ok(dir),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        let name = path.file_name().and_then(|name| name.to_str());
        match (parent, name) {
            (Some(parent), Some(name)) => {
                Dir::create_all(parent, mode)?.ensure_dir(name, mode, None)
            }
            _ => Dir::open(path),
        }
    }

    /// The path this directory was opened by (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A second handle on the same directory.
    pub fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.fd.try_clone()?,
            path: self.path.clone(),
        })
    }

    /// Sets this directory's mode (exactly, whatever the umask).
    pub fn set_mode(&self, mode: u32) -> io::Result<()> {
        rfs::fchmod(&self.fd, Mode::from_raw_mode(mode))
            .map_err(|errno| with_path(errno, &self.path, "setting the mode of"))
    }

    /// Opens the subdirectory `name`; a symlink or any non-directory there is an error.
    pub fn child(&self, name: &str) -> io::Result<Dir> {
        check_name(name)?;
        let fd = rfs::openat(&self.fd, name, DIR_FLAGS, Mode::empty())
            .map_err(|errno| self.err(errno, name, "opening directory"))?;
        Ok(Dir {
            fd,
            path: self.path.join(name),
        })
    }

    /// Opens the subdirectory `name`, creating it when missing (mode `mode` exactly, owned by
    /// `owner` when given). An existing non-directory (a symlink, a file) is an error: nothing
    /// is created through it.
    pub fn ensure_dir(&self, name: &str, mode: u32, owner: Option<Owner>) -> io::Result<Dir> {
        check_name(name)?;
        let created = match rfs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode)) {
            Ok(()) => true,
            Err(Errno::EXIST) => false,
            Err(errno) => return Err(self.err(errno, name, "creating directory")),
        };
        let dir = self.child(name)?;
        if created {
            rfs::fchmod(&dir.fd, Mode::from_raw_mode(mode))
                .map_err(|errno| self.err(errno, name, "setting the mode of"))?;
            dir.chown(owner)?;
        }
        Ok(dir)
    }

    /// Metadata of this directory itself.
    pub fn stat(&self) -> io::Result<Entry> {
        let stat = rfs::fstat(&self.fd).map_err(|errno| with_path(errno, &self.path, "stat"))?;
        Ok(entry_of(&stat))
    }

    /// Metadata of the entry `name` without following it; `None` when absent.
    pub fn entry(&self, name: &str) -> io::Result<Option<Entry>> {
        check_name(name)?;
        match rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(entry_of(&stat))),
            Err(Errno::NOENT) => Ok(None),
            Err(errno) => Err(self.err(errno, name, "stat")),
        }
    }

    /// Atomically makes `name` a regular file holding `bytes` (mode `mode`, owned by `owner`
    /// when given): a fresh temp file with an unpredictable name, then `renameat` over `name`.
    /// Whatever `name` was (a symlink, a hard link, a FIFO) is replaced, never written through.
    /// A directory at `name` makes it fail.
    pub fn replace(
        &self,
        name: &str,
        bytes: &[u8],
        mode: u32,
        owner: Option<Owner>,
    ) -> io::Result<()> {
        check_name(name)?;
        let (temp, file) = self.create_temp(mode)?;
        let written = write_file(file, bytes, mode, owner)
            .map_err(|err| {
                io::Error::new(
                    err.kind(),
                    format!("writing `{}`: {err}", self.path.join(&temp).display()),
                )
            })
            .and_then(|()| {
                rfs::renameat(&self.fd, temp.as_str(), &self.fd, name)
                    .map_err(|errno| self.err(errno, name, "renaming a temp file over"))
            });
        if written.is_err() {
            let _ = rfs::unlinkat(&self.fd, temp.as_str(), AtFlags::empty());
        }
        written
    }

    /// Creates `name` holding `bytes` only when no entry of that name exists (`O_CREAT |
    /// O_EXCL | O_NOFOLLOW`). Returns whether it created the file.
    pub fn create_new(
        &self,
        name: &str,
        bytes: &[u8],
        mode: u32,
        owner: Option<Owner>,
    ) -> io::Result<bool> {
        check_name(name)?;
        let flags =
            OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::WRONLY | OFlags::CLOEXEC;
        match rfs::openat(&self.fd, name, flags, Mode::from_raw_mode(mode)) {
            Ok(fd) => {
                write_file(File::from(fd), bytes, mode, owner).map_err(|err| {
                    io::Error::new(
                        err.kind(),
                        format!("writing `{}`: {err}", self.path.join(name).display()),
                    )
                })?;
                Ok(true)
            }
            Err(Errno::EXIST) => Ok(false),
            Err(errno) => Err(self.err(errno, name, "creating")),
        }
    }

    /// [`Dir::create_new`] with the content streamed from `source` (files too large to hold in
    /// memory, such as the session DBs `nanoclaw import` moves). Returns whether it created it.
    pub fn create_new_from(
        &self,
        name: &str,
        source: &mut dyn io::Read,
        mode: u32,
        owner: Option<Owner>,
    ) -> io::Result<bool> {
        check_name(name)?;
        let flags =
            OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::WRONLY | OFlags::CLOEXEC;
        let fd = match rfs::openat(&self.fd, name, flags, Mode::from_raw_mode(mode)) {
            Ok(fd) => fd,
            Err(Errno::EXIST) => return Ok(false),
            Err(errno) => return Err(self.err(errno, name, "creating")),
        };
        let mut file = File::from(fd);
        io::copy(source, &mut file)
            .and_then(|_| write_file(file, b"", mode, owner))
            .map_err(|err| {
                io::Error::new(
                    err.kind(),
                    format!("writing `{}`: {err}", self.path.join(name).display()),
                )
            })?;
        Ok(true)
    }

    /// Reads `name` when it is a regular file of at most `max` bytes. Opened with `O_NOFOLLOW |
    /// O_NONBLOCK`, so neither a symlink nor a FIFO is followed or waited on.
    pub fn read_regular(&self, name: &str, max: u64) -> io::Result<Read> {
        check_name(name)?;
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        let fd = match rfs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(Read::Absent),
            Err(Errno::LOOP) => return Ok(Read::NotRegular(Kind::Symlink)),
            Err(Errno::NXIO) => return Ok(Read::NotRegular(Kind::Other)),
            Err(errno) => return Err(self.err(errno, name, "opening")),
        };
        let entry = entry_of(&rfs::fstat(&fd).map_err(|errno| self.err(errno, name, "stat"))?);
        if entry.kind != Kind::File {
            return Ok(Read::NotRegular(entry.kind));
        }
        if entry.size > max {
            return Ok(Read::TooLarge(entry.size));
        }
        let mut bytes = Vec::new();
        File::from(fd)
            .take(max.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|err| {
                io::Error::new(
                    err.kind(),
                    format!("reading `{}`: {err}", self.path.join(name).display()),
                )
            })?;
        if bytes.len() as u64 > max {
            return Ok(Read::TooLarge(bytes.len() as u64));
        }
        Ok(Read::Bytes(bytes))
    }

    /// Removes the entry `name` without following it: a file, symlink, FIFO or socket is
    /// unlinked; a directory is emptied the same way (at most [`MAX_DEPTH`] deep) and removed.
    /// Returns whether something was there.
    pub fn remove(&self, name: &str) -> io::Result<bool> {
        self.remove_at(name, 0)
    }

    fn remove_at(&self, name: &str, depth: usize) -> io::Result<bool> {
        check_name(name)?;
        match rfs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) => return Ok(true),
            Err(Errno::NOENT) => return Ok(false),
            Err(Errno::ISDIR) => {}
            Err(errno) => return Err(self.err(errno, name, "removing")),
        }
        if depth >= MAX_DEPTH {
            return Err(io::Error::other(format!(
                "`{}` is nested deeper than {MAX_DEPTH} directories; not removed",
                self.path.join(name).display()
            )));
        }
        let child = self.child(name)?;
        for entry in child.names()? {
            if let Some(entry) = entry.to_str() {
                child.remove_at(entry, depth + 1)?;
            }
        }
        match rfs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => Ok(true),
            Err(errno) => Err(self.err(errno, name, "removing directory")),
        }
    }

    /// Renames `from` to `to` in `target` without replacing anything there; the entry itself
    /// (whatever it is) moves, nothing is followed. Returns false when `to` already exists.
    pub fn rename_new(&self, from: &str, target: &Dir, to: &str) -> io::Result<bool> {
        check_name(from)?;
        check_name(to)?;
        match rfs::renameat_with(&self.fd, from, &target.fd, to, RenameFlags::NOREPLACE) {
            Ok(()) => Ok(true),
            Err(Errno::EXIST) => Ok(false),
            Err(errno) => Err(self.err(errno, from, "renaming")),
        }
    }

    /// Names in this directory (without `.` and `..`).
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        let mut listing = rfs::Dir::read_from(&self.fd)
            .map_err(|errno| with_path(errno, &self.path, "listing"))?;
        let mut names = Vec::new();
        while let Some(entry) = listing.read() {
            let entry = entry.map_err(|errno| with_path(errno, &self.path, "listing"))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name.to_vec()));
            }
        }
        Ok(names)
    }

    /// Gives this directory to `owner` (`None`: nothing to do).
    pub fn chown(&self, owner: Option<Owner>) -> io::Result<()> {
        let Some(owner) = owner else { return Ok(()) };
        rfs::fchown(
            &self.fd,
            Some(rfs::Uid::from_raw(owner.uid)),
            Some(rfs::Gid::from_raw(owner.gid)),
        )
        .map_err(|errno| with_path(errno, &self.path, "changing the owner of"))
    }

    /// Gives this directory and everything inside it to `owner`, never following a symlink
    /// (a symlink itself is re-owned) and skipping files with more than one hard link, at most
    /// [`MAX_DEPTH`] deep.
    pub fn chown_tree(&self, owner: Owner) -> io::Result<()> {
        self.chown_tree_at(owner, 0)
    }

    fn chown_tree_at(&self, owner: Owner, depth: usize) -> io::Result<()> {
        self.chown(Some(owner))?;
        if depth >= MAX_DEPTH {
            return Ok(());
        }
        for name in self.names()? {
            let Some(name) = name.to_str() else { continue };
            match self.entry(name)? {
                Some(entry) if entry.kind == Kind::Dir => match self.child(name) {
                    Ok(child) => child.chown_tree_at(owner, depth + 1)?,
                    // Replaced meanwhile: nothing of ours to re-own.
                    Err(_) => continue,
                },
                // A file with a second hard link may be someone else's file (a link the agent
                // made when it could still see it): never hand that inode over.
                Some(entry) if entry.kind == Kind::File && entry.links > 1 => {}
                Some(_) => {
                    match rfs::chownat(
                        &self.fd,
                        name,
                        Some(rfs::Uid::from_raw(owner.uid)),
                        Some(rfs::Gid::from_raw(owner.gid)),
                        AtFlags::SYMLINK_NOFOLLOW,
                    ) {
                        Ok(()) | Err(Errno::NOENT) => {}
                        Err(errno) => return Err(self.err(errno, name, "changing the owner of")),
                    }
                }
                None => {}
            }
        }
        Ok(())
    }

    /// A new, empty temp file with an unpredictable name, created exclusively.
    fn create_temp(&self, mode: u32) -> io::Result<(String, File)> {
        let flags =
            OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::WRONLY | OFlags::CLOEXEC;
        for _ in 0..TEMP_ATTEMPTS {
            let name = temp_name()?;
            match rfs::openat(&self.fd, name.as_str(), flags, Mode::from_raw_mode(mode)) {
                Ok(fd) => return Ok((name, File::from(fd))),
                // Something sits at that name (planted, or a freak collision): draw again.
                Err(Errno::EXIST) => continue,
                Err(errno) => return Err(self.err(errno, &name, "creating")),
            }
        }
        Err(io::Error::other(format!(
            "no free temp name in `{}` after {TEMP_ATTEMPTS} attempts",
            self.path.display()
        )))
    }

    fn err(&self, errno: Errno, name: &str, doing: &str) -> io::Error {
        with_path(errno, &self.path.join(name), doing)
    }
}

/// `.nanoclaw-<32 random hex digits>`: the OS random source, so no other process can guess it.
pub fn temp_name() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty())?;
    Ok(format!(
        ".nanoclaw-{}",
        bytes
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<String>()
    ))
}

fn write_file(mut file: File, bytes: &[u8], mode: u32, owner: Option<Owner>) -> io::Result<()> {
    file.write_all(bytes)?;
    // The umask shaped the create mode; the exact mode matters (containers read these files).
    rfs::fchmod(file.as_fd(), Mode::from_raw_mode(mode))?;
    if let Some(owner) = owner {
        rfs::fchown(
            file.as_fd(),
            Some(rfs::Uid::from_raw(owner.uid)),
            Some(rfs::Gid::from_raw(owner.gid)),
        )?;
    }
    Ok(())
}

/// One path component: not empty, not `.` or `..`, no `/` or NUL.
fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{name}` is not a single file name"),
        ));
    }
    Ok(())
}

// `st_nlink` is u64 on x86_64 but u32 on other targets.
#[allow(clippy::useless_conversion)]
fn entry_of(stat: &rfs::Stat) -> Entry {
    let kind = match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => Kind::File,
        FileType::Directory => Kind::Dir,
        FileType::Symlink => Kind::Symlink,
        FileType::Fifo => Kind::Fifo,
        _ => Kind::Other,
    };
    let seconds = u64::try_from(stat.st_mtime).unwrap_or(0);
    let nanos = u32::try_from(stat.st_mtime_nsec)
        .unwrap_or(0)
        .min(999_999_999);
    Entry {
        kind,
        id: (stat.st_dev, stat.st_ino),
        links: u64::from(stat.st_nlink),
        uid: stat.st_uid,
        gid: stat.st_gid,
        size: u64::try_from(stat.st_size).unwrap_or(0),
        mtime: SystemTime::UNIX_EPOCH + Duration::new(seconds, nanos),
    }
}

fn with_path(errno: Errno, path: &Path, doing: &str) -> io::Error {
    let err = io::Error::from(errno);
    io::Error::new(err.kind(), format!("{doing} `{}`: {err}", path.display()))
}

#[cfg(test)]
mod tests;
