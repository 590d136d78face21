//! The bad-input catalog (STYLE.md §10) and the `validate`/`schema` commands, through the real
//! binary: every folder under `tests/fixtures/bad/` must be rejected by `nanoclaw validate`
//! with exactly its `expected.txt`, and `nanoclaw apply` must leave an applied DB unchanged.
//!
//! Mount cases run in a fake host ([`mount_world`]): HOME is `$ROOT/home` with allowed roots,
//! credentials and symlinks, and the allowlist is `$ROOT/config/nanoclaw/mount-allowlist.yaml`.
//! A case folder may replace that allowlist with `allowlist.yaml.txt` and/or
//! `allowlist.json.txt` (`$ROOT` is substituted), or remove it with an empty `no-allowlist.txt`.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::support::{Env, Run, repo_root};

/// Files of a case folder that set up the host, not manifests.
const SETUP_FILES: &[&str] = &[
    "expected.txt",
    "allowlist.yaml.txt",
    "allowlist.json.txt",
    "no-allowlist.txt",
];

/// The default allowlist of the catalog's fake host.
const WORLD_ALLOWLIST: &str =
    "allowed_roots:\n  - path: ~/projects\n    allow_read_write: true\n  - path: ~/docs\n";

fn cases() -> Vec<PathBuf> {
    let dir = repo_root().join("tests/fixtures/bad");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fixtures/bad exists")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.is_dir())
        .collect();
    cases.sort();
    cases
}

/// Hash of every `nanoclaw.db*` file in the data dir (DB, WAL, shared memory).
fn db_hash(data: &Path) -> String {
    let mut names: Vec<PathBuf> = std::fs::read_dir(data)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| {
                    path.file_name()
                        .is_some_and(|name| name.to_string_lossy().starts_with("nanoclaw.db"))
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut hasher = Sha256::new();
    for name in names {
        hasher.update(name.to_string_lossy().as_bytes());
        hasher.update(std::fs::read(&name).expect("read db file"));
    }
    format!("{:x}", hasher.finalize())
}

fn reset_manifests(env: &Env, case: &Path) {
    let manifests = env.manifests();
    if manifests.exists() {
        std::fs::remove_dir_all(&manifests).expect("clear manifests");
    }
    std::fs::create_dir_all(&manifests).expect("manifests dir");
    env.copy_from(case);
    for name in SETUP_FILES {
        let _ = std::fs::remove_file(manifests.join(name));
    }
    reset_allowlist(env, case);
}

/// The fake host of the mount cases, under `$ROOT/home` (HOME):
///
/// ```text
/// .ssh/id_ed25519                 a real key folder
/// projects/                       allowed root, read-write
///   site/index.html               a folder that may be mounted
///   etc-link -> /etc              notes -> ../.ssh          state -> $ROOT/data
///   up -> /etc/ssl                everything -> /           home-link -> ..
///   app/.env                      deploy/keys/id_rsa        docker.sock (a socket)
/// docs/manual/                    allowed root, read-only
/// ```
fn mount_world(env: &Env) {
    let home = env.root.path().join("home");
    for folder in [
        ".ssh",
        "projects/site",
        "projects/app",
        "projects/deploy/keys",
        "docs/manual",
    ] {
        std::fs::create_dir_all(home.join(folder)).expect("mkdir");
    }
    for (file, text) in [
        (".ssh/id_ed25519", "key"),
        ("projects/site/index.html", "<p>hi</p>"),
        ("projects/app/.env", "TOKEN=x"),
        ("projects/deploy/keys/id_rsa", "key"),
    ] {
        std::fs::write(home.join(file), text).expect("write");
    }
    let links: [(&Path, &str); 6] = [
        (Path::new("/etc"), "etc-link"),
        (Path::new("../.ssh"), "notes"),
        (&env.data(), "state"),
        (Path::new("/etc/ssl"), "up"),
        (Path::new("/"), "everything"),
        (Path::new(".."), "home-link"),
    ];
    for (target, name) in links {
        std::os::unix::fs::symlink(target, home.join("projects").join(name)).expect("symlink");
    }
    std::os::unix::net::UnixListener::bind(home.join("projects/docker.sock")).expect("socket");
}

/// The case's allowlist files, or the world's default one.
fn reset_allowlist(env: &Env, case: &Path) {
    let dir = env.config_home().join("nanoclaw");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("config dir");
    if case.join("no-allowlist.txt").exists() {
        return;
    }
    let root = env.root.path().display().to_string();
    let mut custom = false;
    for (fixture, name) in [
        ("allowlist.yaml.txt", "mount-allowlist.yaml"),
        ("allowlist.json.txt", "mount-allowlist.json"),
    ] {
        if let Ok(text) = std::fs::read_to_string(case.join(fixture)) {
            std::fs::write(dir.join(name), text.replace("$ROOT", &root)).expect("write allowlist");
            custom = true;
        }
    }
    if !custom {
        env.allowlist(WORLD_ALLOWLIST);
    }
}

/// Runs the binary with HOME set to the fake host's home.
fn run_at_home(env: &Env, args: &[&str]) -> Run {
    let output = env
        .command(args)
        .env("HOME", env.root.path().join("home"))
        .output()
        .expect("run nanoclaw");
    Run::from(output)
}

#[test]
fn bad_manifest_catalog() {
    let cases = cases();
    assert!(
        cases.len() >= 30,
        "the catalog has only {} cases",
        cases.len()
    );
    let env = Env::new("bad-catalog");
    // An applied, valid state the bad inputs must not touch.
    env.copy_from(&repo_root().join("manifests"));
    run_at_home(&env, &["apply", "--yes", "manifests"]).success();
    mount_world(&env);
    let before = db_hash(&env.data());
    assert!(env.db().exists(), "apply created the DB");

    #[allow(clippy::disallowed_methods)] // the snapshot switch, as expect-test reads it
    let update = std::env::var("UPDATE_EXPECT").is_ok_and(|value| value == "1");
    let mut failures = Vec::new();
    for case in &cases {
        let name = case
            .file_name()
            .expect("case name")
            .to_string_lossy()
            .into_owned();
        reset_manifests(&env, case);
        let run = run_at_home(&env, &["validate", "manifests"]);
        let actual = env.normalize(&format!(
            "$ nanoclaw validate manifests\nexit: {}\n--- stdout\n{}--- stderr\n{}",
            run.code, run.stdout, run.stderr
        ));
        let expected_path = case.join("expected.txt");
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if actual != expected {
            if update {
                std::fs::write(&expected_path, &actual).expect("write expected.txt");
            } else {
                failures.push(format!(
                    "{name}:\n--- expected\n{expected}--- actual\n{actual}"
                ));
            }
        }
        if run.code != 1 {
            failures.push(format!("{name}: validate exited {} (expected 1)", run.code));
        }
        let apply = run_at_home(&env, &["apply", "--yes", "manifests"]);
        if apply.code == 0 {
            failures.push(format!(
                "{name}: apply accepted bad manifests:\n{}",
                apply.stdout
            ));
        }
        if db_hash(&env.data()) != before {
            failures.push(format!("{name}: apply changed the DB"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed (UPDATE_EXPECT=1 rewrites expected.txt):\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn validate_reports_success_and_json() {
    let env = Env::new("validate-ok");
    env.copy_from(&repo_root().join("manifests"));
    let run = env.run(&["validate"]);
    run.success();
    assert_eq!(run.stdout, "4 resources in 2 files are valid\n");
    let single = Env::new("validate-one");
    single.write("a.yaml", "kind: agent\nname: andy\nprovider: mock\n");
    assert_eq!(
        single.run(&["validate"]).stdout,
        "1 resource in 1 file is valid\n"
    );

    let json = env.run(&["validate", "--json", "manifests"]);
    json.success();
    let value: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(value["valid"], true);
    assert_eq!(value["resources"], 4);

    env.write(
        "broken.yaml",
        "kind: agent\nname: x\nnmae: y\nprovider: mock\n",
    );
    let bad = env.run(&["validate", "--json"]);
    assert_eq!(bad.code, 1);
    let value: serde_json::Value = serde_json::from_str(&bad.stdout).expect("json");
    assert_eq!(value["valid"], false);
    // The unwired agent `x` also gets a warning; the error is the unknown key.
    let errors: Vec<&serde_json::Value> = value["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .filter(|diagnostic| diagnostic["severity"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "{}", bad.stdout);
    assert_eq!(errors[0]["line"], 3);
    assert_eq!(errors[0]["file"], "manifests/broken.yaml");
    assert_eq!(errors[0]["hint"], "did you mean `name`?");
}

#[test]
fn validate_names_a_missing_directory() {
    let env = Env::new("validate-missing");
    let run = env.run(&["validate", "nowhere"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .starts_with("error: nowhere: cannot read the manifest directory"),
        "{}",
        run.stderr
    );
}

#[test]
fn schema_prints_the_checked_in_schema() {
    let env = Env::new("schema");
    let run = env.run(&["schema"]);
    run.success();
    let checked_in = std::fs::read_to_string(repo_root().join("schemas/nanoclaw.schema.json"))
        .expect("schema file");
    assert_eq!(run.stdout, checked_in);
}

#[test]
fn issue_7_a_symlink_to_proc_kmsg_fails_validate_plan_and_apply_at_once() {
    let env = Env::new("kmsg");
    env.copy_from(&repo_root().join("manifests"));
    std::os::unix::fs::symlink("/proc/kmsg", env.manifests().join("x.yaml")).expect("symlink");
    std::os::unix::fs::symlink("/", env.manifests().join("root")).expect("symlink");
    for command in ["validate", "plan", "apply"] {
        let run = env.run(&[command, "manifests"]);
        assert_eq!(run.code, 1, "{command}: {}", run.stderr);
        let stderr = env.normalize(&run.stderr);
        assert!(
            stderr.contains(
                "error: manifests/root: symlink `root` points outside the manifest folder, to `/`"
            ),
            "{command}: {stderr}"
        );
        assert!(
            stderr.contains("error: manifests/x.yaml: symlink `x.yaml` points outside the manifest folder, to `/proc/kmsg`"),
            "{command}: {stderr}"
        );
    }
    assert!(!env.db().exists(), "apply wrote nothing");
}

#[test]
fn issue_8_warnings_are_shown_but_do_not_fail_validate_plan_or_apply() {
    let env = Env::new("warnings");
    env.write(
        "agents.yaml",
        "kind: agent\nname: andy\nprovider: mock\n---\nkind: agent\nname: lonely\nprovider: mock\n",
    );
    env.write(
        "cli.yaml",
        "kind: channel\nname: cli\nchannel_type: cli\nplatform_id: local\nwirings: [{agent: andy, engage_mode: mention}]\n",
    );
    let lonely = "warning: manifests/agents.yaml:6:7: agent.lonely: agent `lonely` is wired to no channel and no other agent sends to it: it never receives a message";
    let mention = "warning: manifests/cli.yaml:5:38: wiring.cli/andy: the CLI channel cannot mention, so `engage_mode: mention` never engages";

    let validate = env.run(&["validate", "manifests"]);
    validate.success();
    assert_eq!(
        validate.stdout, "5 resources in 2 files are valid\n",
        "{}",
        validate.stderr
    );
    assert!(validate.stderr.contains(lonely), "{}", validate.stderr);
    assert!(validate.stderr.contains(mention), "{}", validate.stderr);
    assert!(
        validate.stderr.ends_with("\n2 warnings\n"),
        "{}",
        validate.stderr
    );

    let json = env.run(&["validate", "--json", "manifests"]);
    json.success();
    let value: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(value["valid"], true);
    assert_eq!(value["diagnostics"][0]["severity"], "warning");
    assert_eq!(value["diagnostics"].as_array().map(Vec::len), Some(2));

    for command in [&["plan", "manifests"][..], &["apply", "--yes", "manifests"]] {
        let run = env.run(command);
        run.success();
        assert!(run.stderr.contains(lonely), "{command:?}: {}", run.stderr);
        assert!(run.stderr.contains(mention), "{command:?}: {}", run.stderr);
    }
    assert!(env.db().exists(), "apply applied despite the warnings");

    env.write("broken.yaml", "kind: agent\nname: Bad\nprovider: mock\n");
    let both = env.run(&["validate", "manifests"]);
    assert_eq!(both.code, 1);
    assert!(both.stderr.contains(lonely), "{}", both.stderr);
    assert!(
        both.stderr.ends_with("\n1 error, 3 warnings\n"),
        "{}",
        both.stderr
    );
}

#[test]
fn issue_8_schema_install_writes_a_stable_schema_and_prints_its_modeline() {
    let env = Env::new("schema-install");
    let run = env.run(&["schema", "--install"]);
    run.success();
    let installed = std::fs::canonicalize(env.data().join("nanoclaw.schema.json"))
        .expect("the schema is installed in the data dir");
    assert_eq!(
        run.stdout,
        format!("# yaml-language-server: $schema={}\n", installed.display())
    );
    let checked_in = std::fs::read_to_string(repo_root().join("schemas/nanoclaw.schema.json"))
        .expect("schema file");
    assert_eq!(
        std::fs::read_to_string(&installed).expect("installed"),
        checked_in
    );
}
