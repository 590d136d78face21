//! Tests of `walk`: real folders in a temp dir, with FIFOs, sockets, symlinks and limits.

use std::os::unix::fs::symlink;

use super::*;
use crate::manifest::{load, render};

fn agent(name: &str) -> String {
    format!("kind: agent\nname: {name}\n")
}

/// The rendered diagnostics of loading `root`, with the temp path replaced by `ROOT`.
fn errors(root: &Path) -> String {
    match load(root) {
        Ok(manifests) => format!("ok: {} resources\n", manifests.state.len()),
        Err(diagnostics) => render(&diagnostics).replace(&root.display().to_string(), "ROOT"),
    }
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
}

#[test]
fn a_fifo_socket_or_device_named_like_a_manifest_is_refused_without_being_opened() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("a.yaml"), agent("a")).unwrap();
    mkfifo(&root.join("fifo.yaml"));
    let _socket = std::os::unix::net::UnixListener::bind(root.join("socket.yaml")).unwrap();
    mkfifo(&root.join("fifo-not-read"));
    let text = errors(root);
    expect_test::expect![[r#"
        error: ROOT/fifo.yaml: `fifo.yaml` is a FIFO, not a regular file

        hint: only regular files are read; remove it or rename it so it does not end in `.yaml`

        error: ROOT/socket.yaml: `socket.yaml` is a socket, not a regular file

        hint: only regular files are read; remove it or rename it so it does not end in `.yaml`
    "#]]
    .assert_eq(&text);
}

#[test]
fn issue_7_a_symlink_to_proc_kmsg_or_a_device_is_refused_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("a.yaml"), agent("a")).unwrap();
    symlink("/proc/kmsg", root.join("kmsg.yaml")).unwrap();
    symlink("/dev/zero", root.join("zero.yaml")).unwrap();
    let text = errors(root);
    assert!(
        text.contains("error: ROOT/kmsg.yaml: symlink `kmsg.yaml` points outside the manifest folder, to `/proc/kmsg`"),
        "{text}"
    );
    assert!(
        text.contains("error: ROOT/zero.yaml: symlink `zero.yaml` points outside the manifest folder, to `/dev/zero`"),
        "{text}"
    );
}

#[test]
fn a_symlink_inside_the_folder_to_a_fifo_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join(".private")).unwrap();
    mkfifo(&root.join(".private/pipe"));
    symlink(root.join(".private/pipe"), root.join("pipe.yaml")).unwrap();
    expect_test::expect![[r#"
        error: ROOT/pipe.yaml: `pipe.yaml` is a FIFO, not a regular file

        hint: only regular files are read; remove it or rename it so it does not end in `.yaml`
    "#]]
    .assert_eq(&errors(root));
}

#[test]
fn issue_7_a_symlinked_folder_pointing_at_the_root_filesystem_is_not_walked() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("x.yaml"), agent("x")).unwrap();
    std::fs::write(root.join("a.yaml"), agent("a")).unwrap();
    symlink("/", root.join("everything")).unwrap();
    symlink(outside.path(), root.join("elsewhere")).unwrap();
    symlink(outside.path().join("x.yaml"), root.join("x.yaml")).unwrap();
    // Not named like a manifest and not a folder: never followed, never an error.
    symlink("/etc/hostname", root.join("notes.txt")).unwrap();
    let text = errors(root).replace(&outside.path().display().to_string(), "OUTSIDE");
    expect_test::expect![[r#"
        error: ROOT/elsewhere: symlink `elsewhere` points outside the manifest folder, to `OUTSIDE`

        hint: symlinks are followed only to files and folders inside the manifest folder; copy the file in instead

        error: ROOT/everything: symlink `everything` points outside the manifest folder, to `/`

        hint: symlinks are followed only to files and folders inside the manifest folder; copy the file in instead

        error: ROOT/x.yaml: symlink `x.yaml` points outside the manifest folder, to `OUTSIDE/x.yaml`

        hint: symlinks are followed only to files and folders inside the manifest folder; copy the file in instead
    "#]]
    .assert_eq(&text);
}

#[test]
fn symlinks_inside_the_folder_are_followed_and_broken_ones_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join(".shared")).unwrap();
    std::fs::write(root.join(".shared/b.yaml"), agent("b")).unwrap();
    symlink(root.join(".shared/b.yaml"), root.join("link.yaml")).unwrap();
    let manifests = load(root).unwrap_or_else(|d| panic!("{}", render(&d)));
    assert_eq!(manifests.files, [root.join("link.yaml")]);
    symlink(root.join("missing.yaml"), root.join("broken.yaml")).unwrap();
    let text = errors(root);
    assert!(
        text.starts_with("error: ROOT/broken.yaml: symlink `broken.yaml` cannot be followed: "),
        "{text}"
    );
    assert!(text.contains("hint: remove the broken symlink"), "{text}");
}

#[test]
fn issue_7_deeply_nested_folders_stop_at_the_depth_limit() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut deep = root.to_path_buf();
    for _ in 0..(MAX_WALK_DEPTH + 5) {
        deep.push("d");
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("x.yaml"), agent("x")).unwrap();
    let mut at_limit = root.to_path_buf();
    for _ in 0..MAX_WALK_DEPTH {
        at_limit.push("d");
    }
    std::fs::write(at_limit.join("ok.yaml"), agent("ok")).unwrap();
    let text = errors(root);
    let too_deep = format!("ROOT{}", "/d".repeat(MAX_WALK_DEPTH + 1));
    assert_eq!(
        text,
        format!(
            "error: {too_deep}: folders nest deeper than 16 levels below the manifest folder\n\nhint: keep manifests in a shallow tree; this folder is not read\n"
        )
    );
}

/// Small bounds, so a test need not write 100,000 files.
fn small(bounds: impl FnOnce(&mut Bounds)) -> Bounds {
    let mut small = BOUNDS;
    bounds(&mut small);
    small
}

fn errors_within(root: &Path, bounds: Bounds) -> String {
    match read_tree_within(root, bounds) {
        Ok(files) => format!("ok: {} files\n", files.len()),
        Err(diagnostics) => render(&diagnostics).replace(&root.display().to_string(), "ROOT"),
    }
}

#[test]
fn the_number_of_manifest_files_is_limited() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for index in 0..=3 {
        std::fs::write(root.join(format!("{index}.yaml")), "").unwrap();
    }
    let bounds = small(|bounds| bounds.files = 3);
    expect_test::expect![[r#"
        error: ROOT/3.yaml: the manifest folder holds more than 3 manifest files

        hint: put several documents in one file, separated by `---`
    "#]]
    .assert_eq(&errors_within(root, bounds));
    std::fs::remove_file(root.join("3.yaml")).unwrap();
    assert_eq!(errors_within(root, bounds), "ok: 3 files\n");
}

#[test]
fn file_and_total_sizes_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let big = vec![b'#'; MAX_FILE_BYTES as usize + 1];
    std::fs::write(root.join("big.yaml"), &big).unwrap();
    expect_test::expect![[r#"
        error: ROOT/big.yaml: file is larger than 4 MiB

        hint: split it into several files
    "#]]
    .assert_eq(&errors(root));
    std::fs::remove_file(root.join("big.yaml")).unwrap();
    for index in 0..3 {
        std::fs::write(root.join(format!("{index}.yaml")), vec![b'#'; 1024]).unwrap();
    }
    let bounds = small(|bounds| bounds.total_bytes = 2048);
    expect_test::expect![[r#"
        error: ROOT/2.yaml: the manifest files are larger than 2 KiB together

        hint: manifests are small: remove generated or data files from the manifest folder
    "#]]
    .assert_eq(&errors_within(root, bounds));
    let bounds = small(|bounds| bounds.total_bytes = 3072);
    assert_eq!(errors_within(root, bounds), "ok: 3 files\n");
}

#[test]
fn the_number_of_entries_walked_is_limited() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("data")).unwrap();
    for index in 0..10 {
        File::create(root.join("data").join(index.to_string())).unwrap();
    }
    // The root's one entry (`data`) and its ten.
    let bounds = small(|bounds| bounds.entries = 10);
    expect_test::expect![[r#"
        error: ROOT/data: the manifest folder holds more than 10 files and folders

        hint: keep only manifests in the manifest folder
    "#]]
    .assert_eq(&errors_within(root, bounds));
    let bounds = small(|bounds| bounds.entries = 11);
    assert_eq!(errors_within(root, bounds), "ok: 0 files\n");
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    let diagnostics = load(Path::new("/nonexistent/nanoclaw-manifests")).unwrap_err();
    assert_eq!(diagnostics.len(), 1);
    assert!(
        diagnostics[0].to_string().starts_with(
            "error: /nonexistent/nanoclaw-manifests: cannot read the manifest directory"
        ),
        "{}",
        diagnostics[0]
    );
}

#[test]
fn the_walk_skips_temp_files_hidden_dirs_and_symlink_loops() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let agent = |name: &str| format!("kind: agent\nname: {name}\n");
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(root.join("a.yaml"), agent("a")).unwrap();
    std::fs::write(root.join("sub/b.yml"), agent("b")).unwrap();
    std::fs::write(root.join("sub/deeper/c.yaml"), agent("c")).unwrap();
    for ignored in [
        ".git/x.yaml",
        "a.yaml~",
        ".a.yaml.swp",
        ".#a.yaml",
        "#a.yaml#",
        "x.tmp",
        "x.bak",
        "notes.txt",
        "sub/.hidden.yaml",
    ] {
        std::fs::write(root.join(ignored), "not: [valid").unwrap();
    }
    std::os::unix::fs::symlink(root, root.join("sub/loop")).unwrap();
    std::os::unix::fs::symlink(root.join("sub"), root.join("sub/deeper/up")).unwrap();
    let manifests = load(root).unwrap();
    let files: Vec<String> = manifests
        .files
        .iter()
        .map(|file| file.strip_prefix(root).unwrap().display().to_string())
        .collect();
    assert_eq!(files, ["a.yaml", "sub/b.yml", "sub/deeper/c.yaml"]);
    assert_eq!(manifests.state.len(), 3);
    assert_eq!(manifests.digest.len(), 64);
}

#[test]
fn the_digest_covers_paths_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), "kind: agent\nname: a\n").unwrap();
    let first = load(dir.path()).unwrap().digest;
    std::fs::write(dir.path().join("a.yaml"), "kind: agent\nname: a # same\n").unwrap();
    let second = load(dir.path()).unwrap().digest;
    std::fs::rename(dir.path().join("a.yaml"), dir.path().join("b.yaml")).unwrap();
    let third = load(dir.path()).unwrap().digest;
    assert_ne!(first, second);
    assert_ne!(second, third);
}

#[test]
fn file_selection_rules() {
    assert!(is_manifest_file("agents.yaml"));
    assert!(is_manifest_file("agents.yml"));
    assert!(!is_manifest_file("agents.yaml~"));
    assert!(!is_manifest_file(".#agents.yaml"));
    assert!(!is_manifest_file("#agents.yaml#"));
    assert!(!is_manifest_file("agents.json"));
    // Upper-case extensions (common from Windows and macOS editors) are read too.
    assert!(is_manifest_file("Agents.YAML"));
    assert!(is_manifest_file("agents.Yml"));
    assert!(!is_manifest_file("agents.YAML.swp"));
}
