//! Unit tests of the mount policy on real temp folders: a fake home with an allowlist, roots,
//! credentials and symlinks. Paths in expectations are relative to the world (`$W`).

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use expect_test::{Expect, expect};
use serde_json::json;

use super::*;

/// `$W/home` (HOME) with `projects/site` under the read-write root `~/projects`, `docs/manual`
/// under the read-only root `~/docs`, a real `~/.ssh`; `$W/config/nanoclaw` for the allowlist;
/// `$W/data` as the data dir.
struct World {
    dir: tempfile::TempDir,
}

const ALLOWLIST: &str =
    "allowed_roots:\n  - path: ~/projects\n    allow_read_write: true\n  - path: ~/docs\n";

impl World {
    fn new() -> World {
        let world = World::bare();
        world.allowlist(ALLOWLIST);
        world
    }

    /// The world without an allowlist file.
    fn bare() -> World {
        let dir = tempfile::tempdir().unwrap();
        let world = World { dir };
        for folder in [
            "home/projects/site",
            "home/docs/manual",
            "home/.ssh",
            "config/nanoclaw",
            "data",
        ] {
            std::fs::create_dir_all(world.path(folder)).unwrap();
        }
        std::fs::write(world.path("home/.ssh/id_ed25519"), "key").unwrap();
        world
    }

    fn root(&self) -> PathBuf {
        std::fs::canonicalize(self.dir.path()).unwrap()
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root().join(relative)
    }

    fn allowlist(&self, yaml: &str) -> PathBuf {
        let path = self.path("config/nanoclaw/mount-allowlist.yaml");
        std::fs::write(
            &path,
            yaml.replace("$W", &self.root().display().to_string()),
        )
        .unwrap();
        path
    }

    fn policy(&self) -> Policy {
        Policy::for_host(Host::new(
            Some(self.path("home")),
            Some(self.path("config/nanoclaw")),
            &self.path("data"),
            Some(self.path("run/docker.sock")),
        ))
    }

    fn check(&self, host_path: &str, readonly: bool) -> Result<Resolved, Refusal> {
        let request = Request {
            host_path,
            container_path: None,
            readonly,
        };
        self.policy().check(&request)
    }

    /// The outcome as text with the world's path replaced by `$W`.
    fn outcome(&self, host_path: &str, readonly: bool) -> String {
        let text = match self.check(host_path, readonly) {
            Ok(resolved) => format!(
                "ok: {} -> {} {}",
                resolved.host.display(),
                resolved.container,
                if resolved.readonly { "ro" } else { "rw" }
            ),
            Err(refusal) => refusal.to_string(),
        };
        text.replace(&self.root().display().to_string(), "$W")
    }
}

#[track_caller]
fn check(world: &World, host_path: &str, readonly: bool, expected: Expect) {
    expected.assert_eq(&world.outcome(host_path, readonly));
}

#[test]
fn an_allowlisted_folder_resolves_to_its_real_path_read_only_by_default() {
    let world = World::new();
    check(
        &world,
        "~/projects/site/",
        true,
        expect!["ok: $W/home/projects/site -> site ro"],
    );
    check(
        &world,
        "~/projects/site",
        false,
        expect!["ok: $W/home/projects/site -> site rw"],
    );
}

#[test]
fn without_an_allowlist_nothing_is_mounted_and_the_message_says_how_to_allow_it() {
    let world = World::bare();
    check(
        &world,
        "~/projects/site",
        true,
        expect![[r#"
            `host_path` `~/projects/site` cannot be mounted: there is no mount allowlist at `$W/config/nanoclaw/mount-allowlist.yaml`

            hint: additional mounts need an allowlist outside the manifests; create `$W/config/nanoclaw/mount-allowlist.yaml` holding, for example:
            allowed_roots:
              - path: ~/projects
                allow_read_write: false"#]],
    );
}

#[test]
fn read_write_needs_a_root_that_allows_it() {
    let world = World::new();
    check(
        &world,
        "~/docs/manual",
        false,
        expect![[r#"
            `host_path` `~/docs/manual` asks for read-write (`readonly: false`), but its allowed root `~/docs` is read-only

            hint: drop `readonly: false`, or set `allow_read_write: true` on that root in `$W/config/nanoclaw/mount-allowlist.yaml`"#]],
    );
    check(
        &world,
        "~/docs/manual",
        true,
        expect!["ok: $W/home/docs/manual -> manual ro"],
    );
    world.allowlist(&format!("{ALLOWLIST}non_main_read_only: true\n"));
    check(
        &world,
        "~/projects/site",
        false,
        expect![[r#"
            `host_path` `~/projects/site` asks for read-write (`readonly: false`), but the allowlist makes every mount read-only

            hint: drop `readonly: false`, or remove `non_main_read_only` from `$W/config/nanoclaw/mount-allowlist.yaml`"#]],
    );
}

#[test]
fn symlinks_are_judged_by_their_target() {
    let world = World::new();
    symlink("/etc", world.path("home/projects/etc-link")).unwrap();
    symlink("../.ssh", world.path("home/projects/notes")).unwrap();
    symlink(world.path("data"), world.path("home/projects/state")).unwrap();
    check(
        &world,
        "~/projects/etc-link",
        true,
        expect![[r#"
            `host_path` `~/projects/etc-link` resolves to `/etc`, which is in the system folder `/etc`

            hint: system folders (`/`, `/proc`, `/sys`, `/dev`, `/etc`, `/boot`, `/root`) are never mounted"#]],
    );
    check(
        &world,
        "~/projects/notes",
        true,
        expect![[r#"
            `host_path` `~/projects/notes` resolves to `$W/home/.ssh`, which is blocked: `.ssh` is a credential name

            hint: credential folders and files are never mounted; mount a folder that holds none (names are checked 3 levels deep)"#]],
    );
    check(
        &world,
        "~/projects/state",
        true,
        expect![[r#"
            `host_path` `~/projects/state` resolves to `$W/data`, which overlaps nanoclaw's data directory `$W/data`

            hint: the data directory holds every agent's sessions and the central DB: mount a folder outside it"#]],
    );
}

#[test]
fn issue_7_a_path_swapped_for_a_symlink_after_validation_is_refused_at_spawn() {
    let world = World::new();
    let policy = world.policy();
    let stored =
        [json!({"hostPath": "~/projects/site", "containerPath": "site", "readonly": true})];
    assert_eq!(
        policy.check_stored("andy", &stored).len(),
        1,
        "valid at first"
    );
    // After validation the folder is replaced by a link to the key folder.
    std::fs::remove_dir(world.path("home/projects/site")).unwrap();
    symlink(world.path("home/.ssh"), world.path("home/projects/site")).unwrap();
    assert_eq!(policy.check_stored("andy", &stored), []);
    // The spawn re-reads the policy too; the refusal names the new target.
    check(
        &world,
        "~/projects/site",
        true,
        expect![[r#"
            `host_path` `~/projects/site` resolves to `$W/home/.ssh`, which is blocked: `.ssh` is a credential name

            hint: credential folders and files are never mounted; mount a folder that holds none (names are checked 3 levels deep)"#]],
    );
}

#[test]
fn a_swap_to_another_allowed_folder_binds_the_resolved_target() {
    let world = World::new();
    std::fs::create_dir_all(world.path("home/projects/other")).unwrap();
    std::fs::remove_dir(world.path("home/projects/site")).unwrap();
    symlink("other", world.path("home/projects/site")).unwrap();
    let resolved = world
        .policy()
        .check_stored("andy", &[json!({"hostPath": "~/projects/site"})]);
    assert_eq!(
        resolved,
        [Resolved {
            host: world.path("home/projects/other"),
            container: "site".into(),
            readonly: true,
        }]
    );
}

#[test]
fn spawn_skips_refused_and_malformed_entries_and_keeps_the_rest() {
    let world = World::new();
    let stored = [
        json!({"hostPath": "/etc"}),
        json!({"containerPath": "x"}),
        json!({"hostPath": "~/docs/manual", "containerPath": "manual"}),
        json!({"hostPath": "~/docs/manual", "containerPath": "m2", "readonly": false}),
    ];
    let resolved = world.policy().check_stored("andy", &stored);
    assert_eq!(
        resolved,
        [Resolved {
            host: world.path("home/docs/manual"),
            container: "manual".into(),
            readonly: true,
        }]
    );
}

#[test]
fn credentials_below_a_mount_are_found_down_to_the_scan_depth() {
    let world = World::new();
    std::fs::create_dir_all(world.path("home/projects/app/config")).unwrap();
    std::fs::write(world.path("home/projects/app/config/.env"), "TOKEN=x").unwrap();
    check(
        &world,
        "~/projects/app",
        true,
        expect![[r#"
            `host_path` `~/projects/app` holds `config/.env`, which matches the credential pattern `.env`

            hint: credential folders and files are never mounted; mount a folder that holds none (names are checked 3 levels deep)"#]],
    );
    // Deeper than SCAN_DEPTH levels is not looked at (documented in docs/security.md).
    std::fs::create_dir_all(world.path("home/projects/deep/a/b/c")).unwrap();
    std::fs::write(world.path("home/projects/deep/a/b/c/id_rsa"), "key").unwrap();
    check(
        &world,
        "~/projects/deep",
        true,
        expect!["ok: $W/home/projects/deep -> deep ro"],
    );
    std::fs::create_dir_all(world.path("home/projects/cfg/.config/gcloud")).unwrap();
    check(
        &world,
        "~/projects/cfg",
        true,
        expect![[r#"
            `host_path` `~/projects/cfg` holds `.config/gcloud`, which matches the credential pattern `.config/gcloud`

            hint: credential folders and files are never mounted; mount a folder that holds none (names are checked 3 levels deep)"#]],
    );
}

#[test]
fn outside_every_root_is_refused_with_the_roots_listed() {
    let world = World::new();
    std::fs::create_dir_all(world.path("elsewhere")).unwrap();
    let outcome = world.outcome(&world.path("elsewhere").display().to_string(), true);
    expect![[r#"
        `host_path` `$W/elsewhere` is not under an allowed root of `$W/config/nanoclaw/mount-allowlist.yaml`

        hint: allowed roots: `~/projects`, `~/docs`; add a root holding it to `$W/config/nanoclaw/mount-allowlist.yaml`"#]]
    .assert_eq(&outcome);
}

#[test]
fn special_files_and_the_docker_socket_are_refused() {
    let world = World::new();
    let socket = world.path("home/projects/docker.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    check(
        &world,
        "~/projects/docker.sock",
        true,
        expect![[r#"
            `host_path` `~/projects/docker.sock` is a socket, not a folder or file

            hint: only folders and regular files are mounted"#]],
    );
    // DOCKER_HOST's socket folder, even under an allowed root.
    std::fs::create_dir_all(world.path("run")).unwrap();
    world.allowlist("allowed_roots: [{path: $W/run}]\n");
    let outcome = world.outcome(&world.path("run").display().to_string(), true);
    expect![[r#"
        `host_path` `$W/run` is or holds the Docker socket `$W/run/docker.sock`

        hint: the Docker socket gives root on the host: it is never mounted"#]]
    .assert_eq(&outcome);
}

#[test]
fn text_rules_refuse_before_touching_the_disk() {
    let refusal = |path: &str| match check_text(path, &[]) {
        Ok(()) => "ok".to_string(),
        Err(refusal) => refusal.reason(),
    };
    expect![[r#"
        [
            "`host_path` `~` is a whole home directory (or holds one)",
            "`host_path` `~/` is a whole home directory (or holds one)",
            "`host_path` `/home/someone/` is a whole home directory (or holds one)",
            "`host_path` `~user/x` must be absolute or start with `~/`",
            "`host_path` `/srv/site/../../etc` contains a `..` segment",
            "`host_path` `/etc/` is in the system folder `/etc`",
            "`host_path` `//` is the root folder `/`",
            "`host_path` `/proc/self/root` is in the system folder `/proc`",
            "`host_path` `~/.aws/config` is blocked: `.aws` is a credential name",
            "`host_path` `/srv/Site-Credentials.txt` is blocked: `site-credentials.txt` matches the credential pattern `*credentials*`",
            "`host_path` `~/．ssh` uses look-alike characters: it reads as `~/.ssh`, which is blocked: `.ssh` is a credential name",
            "`host_path` `/еtc` uses look-alike characters: it reads as `/etc`, which is in the system folder `/etc`",
            "`host_path` `/srv/site\\u{200B}` contains the invisible character U+200B",
            "`host_path` `∕srv∕site` must be absolute or start with `~/`",
            "`host_path` `/var/run/` is or holds the Docker socket `/var/run/docker.sock`",
            "ok",
            "ok",
        ]
    "#]]
    .assert_debug_eq(
        &[
            "~",
            "~/",
            "/home/someone/",
            "~user/x",
            "/srv/site/../../etc",
            "/etc/",
            "//",
            "/proc/self/root",
            "~/.aws/config",
            "/srv/Site-Credentials.txt",
            "~/．ssh",
            "/еtc",
            "/srv/site\u{200B}",
            "∕srv∕site",
            "/var/run/",
            "~/projects/Документы",
            "/srv/site/",
        ]
        .map(refusal),
    );
}

#[test]
fn the_allowlist_is_refused_where_an_agent_could_reach_it() {
    let world = World::new();
    let file = world.path("config/nanoclaw/mount-allowlist.yaml");
    let refusal = |world: &World| match &world.policy().allowlist {
        Ok(_) => "ok".to_string(),
        Err(err) => format!("{err}\n\nhint: {}", err.hint())
            .replace(&world.root().display().to_string(), "$W"),
    };
    // Under an allowed root: a read-write mount could rewrite it.
    world.allowlist("allowed_roots: [{path: $W/config, allow_read_write: true}]\n");
    expect![[r#"
        the mount allowlist `$W/config/nanoclaw/mount-allowlist.yaml` is refused: it is under the allowed root `$W/config`, so a mount could expose or rewrite it

        hint: allow narrower roots (for example `~/projects`) that do not hold the allowlist"#]]
    .assert_eq(&refusal(&world));
    // Writable by others.
    world.allowlist(ALLOWLIST);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    expect![[r#"
        the mount allowlist `$W/config/nanoclaw/mount-allowlist.yaml` is refused: the file `$W/config/nanoclaw/mount-allowlist.yaml` is writable by group or others (mode 666)

        hint: run `chmod go-w $W/config/nanoclaw/mount-allowlist.yaml`"#]]
    .assert_eq(&refusal(&world));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(refusal(&world), "ok");
    // Inside the data dir (through a link from the config dir).
    std::fs::rename(&file, world.path("data/allow.yaml")).unwrap();
    symlink(world.path("data/allow.yaml"), &file).unwrap();
    expect![[r#"
        the mount allowlist `$W/data/allow.yaml` is refused: it is inside nanoclaw's data directory `$W/data`

        hint: keep it in `~/.config/nanoclaw/` (or `$XDG_CONFIG_HOME/nanoclaw/`), outside `$W/data`"#]]
    .assert_eq(&refusal(&world));
}

#[test]
fn an_allowlist_owned_by_another_user_is_refused() {
    let world = World::new();
    let file = world.path("config/nanoclaw/mount-allowlist.yaml");
    if rustix::process::getuid().is_root() {
        std::os::unix::fs::chown(&file, Some(4242), None).unwrap();
        let err = world.policy().allowlist.unwrap_err();
        assert!(
            err.to_string()
                .contains("belongs to uid 4242, not to you (uid 0) or root"),
            "{err}"
        );
    } else {
        // Not root: we cannot give a file away, but our own file is accepted.
        assert!(world.policy().allowlist.is_ok());
    }
}

#[test]
fn v2_json_allowlist_is_read_and_merged() {
    let world = World::bare();
    std::fs::write(
        world.path("config/nanoclaw/mount-allowlist.json"),
        r#"{"allowedRoots": [{"path": "~/docs", "allowReadWrite": true, "description": "manuals"}],
            "blockedPatterns": ["manual"], "nonMainReadOnly": false}"#,
    )
    .unwrap();
    std::fs::create_dir_all(world.path("home/docs/guide")).unwrap();
    check(
        &world,
        "~/docs/guide",
        false,
        expect!["ok: $W/home/docs/guide -> guide rw"],
    );
    // v2 patterns match when a component contains them.
    check(
        &world,
        "~/docs/manual",
        true,
        expect![[r#"
            `host_path` `~/docs/manual` is blocked: `manual` is a credential name

            hint: credential folders and files are never mounted; mount a folder that holds none (names are checked 3 levels deep)"#]],
    );
    // Both files: roots are merged.
    world.allowlist("allowed_roots: [{path: ~/projects}]\n");
    check(
        &world,
        "~/projects/site",
        true,
        expect!["ok: $W/home/projects/site -> site ro"],
    );
}

#[test]
fn a_malformed_allowlist_refuses_every_mount_and_names_the_file() {
    let world = World::new();
    world.allowlist("alowed_roots: []\n");
    let outcome = world.outcome("~/projects/site", true);
    assert!(
        outcome.starts_with("`host_path` `~/projects/site` cannot be mounted: the mount allowlist `$W/config/nanoclaw/mount-allowlist.yaml` is invalid: "),
        "{outcome}"
    );
    assert!(outcome.contains("alowed_roots"), "{outcome}");
    world.allowlist("allowed_roots: [{path: projects}]\n");
    expect![[r#"
        `host_path` `~/projects/site` cannot be mounted: the mount allowlist `$W/config/nanoclaw/mount-allowlist.yaml` is invalid: allowed root `projects` must be absolute or start with `~/`

        hint: the file holds `allowed_roots` (each `path`, `allow_read_write`, `description`), `blocked_patterns` and `non_main_read_only`; for example:
        allowed_roots:
          - path: ~/projects
            allow_read_write: false"#]]
    .assert_eq(&world.outcome("~/projects/site", true));
}

#[test]
fn container_paths_default_to_the_last_component_and_stay_in_a_safe_alphabet() {
    let name = |host_path: &str, container_path: Option<&str>| {
        let request = Request {
            host_path,
            container_path,
            readonly: true,
        };
        match super::container_path(&request) {
            Ok(name) => name,
            Err(refusal) => refusal.reason(),
        }
    };
    assert_eq!(name("~/projects/site/", None), "site");
    assert_eq!(name("/srv/x", Some("data/")), "data");
    assert_eq!(
        name("/srv/x", Some("a b")),
        "`container_path` `a b` may only hold letters, digits, `.`, `_`, `-` and `/`"
    );
    assert_eq!(
        name("~/projects/Документы", None),
        "`host_path` `~/projects/Документы` gives the mount name `Документы`, which may only hold letters, digits, `.`, `_`, `-` and `/`"
    );
}

#[test]
fn the_data_dir_is_resolved_even_before_it_exists() {
    let world = World::new();
    let later = world.path("home/projects/site/state/nanoclaw");
    let host = Host::new(
        Some(world.path("home")),
        Some(world.path("config/nanoclaw")),
        &later,
        None,
    );
    assert_eq!(host.data_dir, later);
    let policy = Policy::for_host(host);
    let refusal = policy
        .check(&Request {
            host_path: "~/projects/site",
            container_path: None,
            readonly: true,
        })
        .unwrap_err();
    assert!(
        matches!(refusal.reason, Reason::DataDir { .. }),
        "{refusal}"
    );
    assert!(Path::new(&world.path("home")).is_dir());
}
