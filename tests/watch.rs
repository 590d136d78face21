//! `nanoclaw watch` end to end with the real binary and real files: a burst of saves applies
//! once, an invalid save keeps the last generation (its `file:line` error logged and recorded
//! for `status`), a deletion is held until `nanoclaw apply`, a `git checkout` applies once,
//! and editor temp files trigger nothing. No Docker: the watcher only writes the central DB.
//!
//! "Applies once" is counted in `apply_history`: every save writes a different model, so a
//! burst split in two would write two generations.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{self, Env};

const DEADLINE: Duration = Duration::from_secs(30);

/// A running `nanoclaw watch manifests`, killed when dropped; its stderr goes to a file.
struct Watcher {
    child: Child,
    stderr: PathBuf,
}

impl Watcher {
    /// Starts the watcher and waits for its first apply (generation 1).
    fn start(env: &Env, args: &[&str]) -> Watcher {
        let stderr = env.root.path().join("watch.stderr");
        let mut full = vec!["watch", "manifests"];
        full.extend_from_slice(args);
        let child = env
            .command(&full)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("start nanoclaw watch");
        let watcher = Watcher { child, stderr };
        support::wait_until("the watcher's first apply", DEADLINE, || {
            watcher.log().contains("watch: applied generation 1")
        });
        watcher
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The `files=…` of every "manifests changed" line.
    fn bursts(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|line| line.contains("manifests changed"))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn query_i64(env: &Env, sql: &str) -> i64 {
    let conn = reconciler::db::open_readonly(&env.db()).expect("open the DB");
    conn.query_row(sql, [], |row| row.get(0)).expect(sql)
}

fn generation(env: &Env) -> i64 {
    query_i64(
        env,
        "SELECT COALESCE(MAX(generation), 0) FROM apply_history",
    )
}

fn n_applies(env: &Env) -> i64 {
    query_i64(env, "SELECT COUNT(*) FROM apply_history")
}

fn model(env: &Env, agent: &str) -> Option<String> {
    let conn = reconciler::db::open_readonly(&env.db()).expect("open the DB");
    conn.query_row(
        "SELECT model FROM container_configs WHERE agent_group_id = ?1",
        [agent],
        |row| row.get(0),
    )
    .ok()
    .flatten()
}

fn agent_yaml(name: &str, model: &str) -> String {
    format!("kind: agent\nname: {name}\nprovider: mock\nmodel: {model}\n")
}

#[track_caller]
fn wait_for_generation(env: &Env, generation_wanted: i64) {
    support::wait_until(&format!("generation {generation_wanted}"), DEADLINE, || {
        generation(env) >= generation_wanted
    });
}

#[test]
fn watch_applies_a_burst_of_twenty_saves_once() {
    let env = Env::new("watch-burst");
    env.write("andy.yaml", &agent_yaml("andy", "m0"));
    let watcher = Watcher::start(&env, &[]);
    for n_save in 1..=20 {
        env.write("andy.yaml", &agent_yaml("andy", &format!("m{n_save}")));
    }
    wait_for_generation(&env, 2);
    assert_eq!(model(&env, "andy").as_deref(), Some("m20"));
    // A later, separate save: bursts are handled in order, so a split burst would show up as
    // a generation before this one.
    env.write("andy.yaml", &agent_yaml("andy", "after"));
    wait_for_generation(&env, 3);
    assert_eq!(model(&env, "andy").as_deref(), Some("after"));
    assert_eq!(
        n_applies(&env),
        3,
        "start, the burst, the later save:\n{}",
        watcher.log()
    );
}

#[test]
fn watch_keeps_the_last_generation_on_an_invalid_save_and_records_the_error() {
    let env = Env::new("watch-invalid");
    env.write("andy.yaml", &agent_yaml("andy", "good"));
    let watcher = Watcher::start(&env, &[]);
    env.write(
        "andy.yaml",
        "kind: agent\nname: andy\nprovider: mock\nnmae: typo\n",
    );
    support::wait_until("the invalid set's error in the log", DEADLINE, || {
        watcher.log().contains("the manifests are invalid")
    });
    let log = watcher.log();
    assert!(
        log.contains("andy.yaml:4:1") && log.contains("unknown key `nmae`"),
        "the error names file:line:\n{log}"
    );
    assert_eq!(generation(&env), 1, "nothing applied");
    assert_eq!(model(&env, "andy").as_deref(), Some("good"));
    let conn = reconciler::db::open_readonly(&env.db()).expect("open the DB");
    let state = reconciler::db::watch::get(&conn)
        .expect("read watch_state")
        .expect("a watch_state row");
    let error = state.error.expect("the error is recorded");
    assert!(
        error.contains("andy.yaml:4:1") && error.contains("nmae"),
        "{error}"
    );
    assert_eq!(state.applied_generation, Some(1));
    // `nanoclaw status` shows it (issue 11 point 6).
    let status = env.run(&["status"]);
    assert!(
        status.stdout.contains("the last save is invalid")
            && status.stdout.contains("andy.yaml:4:1"),
        "{}\n{}",
        status.stdout,
        status.stderr
    );
    env.write("andy.yaml", &agent_yaml("andy", "fixed"));
    wait_for_generation(&env, 2);
    support::wait_until("the error cleared", DEADLINE, || {
        let conn = reconciler::db::open_readonly(&env.db()).expect("open the DB");
        let state = reconciler::db::watch::get(&conn)
            .expect("read")
            .expect("row");
        state.error.is_none() && state.applied_generation == Some(2)
    });
}

#[test]
fn watch_holds_a_deletion_until_nanoclaw_apply() {
    let env = Env::new("watch-delete");
    env.write("andy.yaml", &agent_yaml("andy", "a"));
    env.write("bob.yaml", &agent_yaml("bob", "b"));
    let watcher = Watcher::start(&env, &[]);
    std::fs::remove_file(env.manifests().join("bob.yaml")).expect("remove bob.yaml");
    support::wait_until("the deletion held", DEADLINE, || {
        watcher.log().contains("changes held until confirmed")
    });
    assert!(watcher.log().contains("agent.bob"), "{}", watcher.log());
    assert_eq!(generation(&env), 1);
    // `nanoclaw status` lists it (issue 11 point 6).
    support::wait_until("status to list the held deletion", DEADLINE, || {
        env.run(&["status"]).stdout.contains("agent.bob (delete)")
    });
    assert_eq!(
        model(&env, "bob").as_deref(),
        Some("b"),
        "bob is still there"
    );
    env.run(&["apply", "manifests", "--yes"]).success();
    assert_eq!(generation(&env), 2);
    assert_eq!(model(&env, "bob"), None, "confirmed: bob is gone");
}

#[test]
fn watch_applies_a_git_checkout_of_another_branch_once() {
    let env = Env::new("watch-git");
    let names = ["andy", "bob", "carl", "dora", "emil"];
    for name in names {
        env.write(&format!("{name}.yaml"), &agent_yaml(name, "main"));
    }
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args([
                "-c",
                "init.defaultBranch=main",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .current_dir(env.manifests())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run git");
        assert!(status.success(), "git {}", args.join(" "));
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "main"]);
    git(&["checkout", "-q", "-b", "other"]);
    for name in names {
        env.write(&format!("{name}.yaml"), &agent_yaml(name, "other"));
    }
    git(&["commit", "-q", "-am", "other"]);
    git(&["checkout", "-q", "main"]);
    let watcher = Watcher::start(&env, &[]);
    git(&["checkout", "-q", "other"]);
    wait_for_generation(&env, 2);
    for name in names {
        assert_eq!(model(&env, name).as_deref(), Some("other"), "{name}");
    }
    env.write("andy.yaml", &agent_yaml("andy", "after"));
    wait_for_generation(&env, 3);
    assert_eq!(
        n_applies(&env),
        3,
        "start, the checkout, the later save:\n{}",
        watcher.log()
    );
    assert!(
        watcher.bursts().iter().all(|line| !line.contains(".git")),
        "{:#?}",
        watcher.bursts()
    );
}

#[test]
fn watch_ignores_editor_temp_files() {
    let env = Env::new("watch-temp");
    env.write("andy.yaml", &agent_yaml("andy", "a"));
    let watcher = Watcher::start(&env, &[]);
    for temp in [
        ".andy.yaml.swp",
        "andy.yaml~",
        "4913",
        ".#andy.yaml",
        ".hidden/notes.txt",
    ] {
        env.write(temp, "kind: agent\nname: broken\n");
    }
    env.write("andy.yaml", &agent_yaml("andy", "b"));
    wait_for_generation(&env, 2);
    let bursts = watcher.bursts();
    assert!(!bursts.is_empty(), "{}", watcher.log());
    for line in &bursts {
        for temp in [".swp", "~", "4913", ".#", ".hidden"] {
            assert!(!line.contains(temp), "`{temp}` triggered: {line}");
        }
    }
    assert_eq!(n_applies(&env), 2, "{}", watcher.log());
}
