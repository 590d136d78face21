//! Planted links and FIFOs against every `Dir` operation: the file outside stays untouched.

use std::os::unix::fs::MetadataExt;

use super::*;

/// A data dir and a file outside it that no operation may change.
struct World {
    _root: tempfile::TempDir,
    data: PathBuf,
    outside: PathBuf,
}

const SECRET: &str = "outside the data dir\n";

fn world() -> World {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let outside = root.path().join("outside.txt");
    std::fs::write(&outside, SECRET).unwrap();
    World {
        data,
        outside,
        _root: root,
    }
}

#[derive(Clone, Copy, Debug)]
enum Plant {
    Symlink,
    HardLink,
    Fifo,
}

const PLANTS: [Plant; 3] = [Plant::Symlink, Plant::HardLink, Plant::Fifo];

impl World {
    fn dir(&self) -> Dir {
        Dir::open(&self.data).unwrap()
    }

    fn plant(&self, name: &str, plant: Plant) {
        let at = self.data.join(name);
        match plant {
            Plant::Symlink => std::os::unix::fs::symlink(&self.outside, &at).unwrap(),
            Plant::HardLink => std::fs::hard_link(&self.outside, &at).unwrap(),
            Plant::Fifo => {
                let dir = self.dir();
                rfs::mknodat(&dir.fd, name, FileType::Fifo, Mode::from_raw_mode(0o644), 0).unwrap()
            }
        }
    }

    #[track_caller]
    fn assert_outside_untouched(&self) {
        assert_eq!(std::fs::read_to_string(&self.outside).unwrap(), SECRET);
    }
}

#[test]
fn replace_swaps_a_planted_link_or_fifo_for_a_file_and_never_writes_through_it() {
    for plant in PLANTS {
        let world = world();
        world.plant("CLAUDE.md", plant);
        world
            .dir()
            .replace("CLAUDE.md", b"composed\n", 0o644, None)
            .unwrap();
        world.assert_outside_untouched();
        let meta = std::fs::symlink_metadata(world.data.join("CLAUDE.md")).unwrap();
        assert!(meta.is_file(), "{plant:?}: a regular file now");
        assert_eq!(meta.nlink(), 1, "{plant:?}: its own inode");
        assert_eq!(meta.mode() & 0o777, 0o644);
        assert_eq!(
            std::fs::read_to_string(world.data.join("CLAUDE.md")).unwrap(),
            "composed\n"
        );
        let leftovers: Vec<_> = world
            .dir()
            .names()
            .unwrap()
            .into_iter()
            .filter(|name| name.to_string_lossy().starts_with(".nanoclaw-"))
            .collect();
        assert!(leftovers.is_empty(), "no temp file left: {leftovers:?}");
    }
}

#[test]
fn temp_names_are_unpredictable() {
    let names: std::collections::BTreeSet<String> =
        (0..100).map(|_| temp_name().unwrap()).collect();
    assert_eq!(names.len(), 100);
    for name in &names {
        let random = name.strip_prefix(".nanoclaw-").expect("prefix");
        assert_eq!(random.len(), 32, "{name}");
        assert!(random.chars().all(|c| c.is_ascii_hexdigit()), "{name}");
    }
}

#[test]
fn create_new_leaves_any_existing_entry_alone() {
    for plant in PLANTS {
        let world = world();
        world.plant("CLAUDE.local.md", plant);
        let created = world
            .dir()
            .create_new("CLAUDE.local.md", b"seed\n", 0o644, None)
            .unwrap();
        assert!(!created, "{plant:?}");
        world.assert_outside_untouched();
    }
    let world = world();
    assert!(
        world
            .dir()
            .create_new("new.md", b"seed\n", 0o600, None)
            .unwrap()
    );
    let meta = std::fs::metadata(world.data.join("new.md")).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
}

#[test]
fn read_regular_reads_only_regular_files_within_the_limit() {
    let world = world();
    std::fs::write(world.data.join("notes.md"), "mine\n").unwrap();
    let dir = world.dir();
    assert_eq!(
        dir.read_regular("notes.md", 100).unwrap(),
        Read::Bytes(b"mine\n".to_vec())
    );
    assert_eq!(dir.read_regular("notes.md", 3).unwrap(), Read::TooLarge(5));
    assert_eq!(dir.read_regular("absent.md", 3).unwrap(), Read::Absent);
    world.plant("link.md", Plant::Symlink);
    assert_eq!(
        dir.read_regular("link.md", 100).unwrap(),
        Read::NotRegular(Kind::Symlink)
    );
    // A FIFO without a writer would block a plain open forever.
    world.plant("fifo.md", Plant::Fifo);
    assert_eq!(
        dir.read_regular("fifo.md", 100).unwrap(),
        Read::NotRegular(Kind::Fifo)
    );
}

#[test]
fn ensure_dir_refuses_a_symlink_and_creates_with_the_exact_mode() {
    let world = world();
    std::os::unix::fs::symlink(world.outside.parent().unwrap(), world.data.join("outbound"))
        .unwrap();
    let err = world.dir().ensure_dir("outbound", 0o755, None).unwrap_err();
    assert!(err.to_string().contains("outbound"), "{err}");
    let made = world.dir().ensure_dir("fresh", 0o750, None).unwrap();
    assert_eq!(made.stat().unwrap().kind, Kind::Dir);
    let meta = std::fs::metadata(world.data.join("fresh")).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o750);
}

#[test]
fn remove_never_follows_a_symlinked_directory() {
    let world = world();
    let victim = world.outside.parent().unwrap().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("keep.txt"), "keep").unwrap();
    std::fs::create_dir_all(world.data.join(".claude-fragments/sub")).unwrap();
    std::fs::write(world.data.join(".claude-fragments/sub/a.md"), "a").unwrap();
    std::os::unix::fs::symlink(&victim, world.data.join(".claude-fragments/escape")).unwrap();
    std::os::unix::fs::symlink(&victim, world.data.join("container.json")).unwrap();
    let dir = world.dir();
    assert!(dir.remove(".claude-fragments").unwrap());
    assert!(dir.remove("container.json").unwrap());
    assert!(!dir.remove("container.json").unwrap(), "already gone");
    assert!(victim.join("keep.txt").exists());
    assert!(dir.names().unwrap().is_empty());
}

#[test]
fn rename_new_moves_the_entry_itself_and_never_replaces() {
    let world = world();
    world.plant("outbound.db", Plant::Symlink);
    let dir = world.dir();
    let target = dir.ensure_dir("outbound", 0o755, None).unwrap();
    assert!(
        dir.rename_new("outbound.db", &target, "outbound.db")
            .unwrap()
    );
    let moved = std::fs::symlink_metadata(world.data.join("outbound/outbound.db")).unwrap();
    assert!(moved.file_type().is_symlink());
    std::fs::write(world.data.join("again"), "x").unwrap();
    assert!(!dir.rename_new("again", &target, "outbound.db").unwrap());
    world.assert_outside_untouched();
}

#[test]
fn chown_tree_re_owns_links_not_their_targets() {
    if rustix::process::geteuid().as_raw() != 0 {
        return; // only root can give files away; the e2e suite runs as root
    }
    let world = world();
    std::fs::create_dir_all(world.data.join("tree/deeper")).unwrap();
    std::fs::write(world.data.join("tree/deeper/file"), "x").unwrap();
    std::os::unix::fs::symlink(&world.outside, world.data.join("tree/deeper/link")).unwrap();
    std::fs::hard_link(&world.outside, world.data.join("tree/hard")).unwrap();
    let owner = Owner {
        uid: 10001,
        gid: 10001,
    };
    world
        .dir()
        .child("tree")
        .unwrap()
        .chown_tree(owner)
        .unwrap();
    for path in [
        "tree",
        "tree/deeper",
        "tree/deeper/file",
        "tree/deeper/link",
    ] {
        let meta = std::fs::symlink_metadata(world.data.join(path)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (10001, 10001), "{path}");
    }
    let outside = std::fs::metadata(&world.outside).unwrap();
    assert_eq!(
        outside.uid(),
        0,
        "neither a symlink's target nor a hard-linked file changes owner"
    );
}

#[test]
fn concurrent_replaces_of_one_file_all_succeed() {
    // Two wakes preparing the same session at once write the same files; each write has its
    // own temp file, so neither rename can lose the other's.
    let world = world();
    let failures: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|n| {
                let data = &world.data;
                scope.spawn(move || {
                    let dir = Dir::open(data).unwrap();
                    (0..200)
                        .filter(|_| {
                            dir.replace(
                                "CLAUDE.md",
                                format!("writer {n}\n").as_bytes(),
                                0o644,
                                None,
                            )
                            .is_err()
                        })
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(failures, 0);
    assert!(
        std::fs::read_to_string(world.data.join("CLAUDE.md"))
            .unwrap()
            .starts_with("writer ")
    );
}
