//! Issue 14 point 3: two installs (two data dirs) on one host run side by side, each daemon
//! exercised against the other: container names and labels, the daemon lock, the CLI and
//! credential proxy sockets, orphan cleanup at start (after a crash) and shutdown. Each step
//! checks that the other install's containers and files are untouched.
//!
//! Restart, rebuild and per-agent image pruning do not exist yet (issue 11): add them to
//! [`side_by_side`]'s steps when they do.

use std::process::Command;

use crate::runtime::{CLI_AGENT, Daemon};
use crate::support::{self, Env};

/// Ids of the containers (running or not) labelled with `slug`.
fn container_ids(slug: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args(["ps", "-a", "--format", "{{.ID}}", "--filter"])
        .arg(format!("label=nanoclaw.install={slug}"))
        .output()
        .expect("docker ps");
    let mut ids: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    ids.sort();
    ids
}

fn chat(env: &Env, text: &str) {
    let run = env.run(&["chat", "--message", text, "--timeout", "60s"]);
    assert_eq!(run.code, 0, "chat on {}: {}", env.name, run.stderr);
    assert_eq!(run.stdout.trim(), format!("echo: {text}"));
}

#[test]
fn issue_14_two_installs_run_side_by_side_and_never_touch_each_other() {
    let Some(()) = support::docker() else {
        return;
    };
    side_by_side();
}

fn side_by_side() {
    let first = Env::new("multi-a");
    let second = Env::new("multi-b");
    for env in [&first, &second] {
        env.write("agents.yaml", CLI_AGENT);
    }
    let first_slug = reconciler::paths::slug_of(&first.data());
    let second_slug = reconciler::paths::slug_of(&second.data());
    assert_ne!(first_slug, second_slug);

    // Both daemons at once: each its own lock, sockets and containers.
    let mut a = Daemon::start(&first);
    let b = Daemon::start(&second);
    chat(&first, "to a");
    chat(&second, "to b");
    let a_containers = a.containers();
    let b_ids = container_ids(&second_slug);
    assert_eq!(a_containers.len(), 1, "{}", a.log());
    assert_eq!(b_ids.len(), 1, "{}", b.log());
    assert!(
        a_containers[0].contains(&first_slug),
        "container names carry the slug: {a_containers:?}"
    );
    for env in [&first, &second] {
        assert!(env.data().join("cli.sock").exists());
        assert!(
            reconciler::credentials::proxy::socket_dir(&env.data())
                .read_dir()
                .map(|mut entries| entries.next().is_some())
                .unwrap_or(false),
            "{}: its own credential proxy socket",
            env.name
        );
    }
    let holder = |env: &Env| {
        reconciler::lockfile::holder_of(&env.data().join("run.lock"))
            .expect("probe")
            .expect("held")
            .pid
    };
    assert_eq!(holder(&first), a.pid().to_string());
    assert_eq!(holder(&second), b.pid().to_string());

    // A crash of `a` leaves its container; its next start cleans it up, and only it.
    a.crash();
    assert_eq!(
        container_ids(&first_slug).len(),
        1,
        "the crash left a container"
    );
    let a = Daemon::start(&first);
    support::wait_until(
        "a's orphan cleanup",
        std::time::Duration::from_secs(60),
        || container_ids(&first_slug).is_empty(),
    );
    assert_eq!(
        container_ids(&second_slug),
        b_ids,
        "b's container survives a's orphan cleanup"
    );
    chat(&second, "b still answers");

    // Stopping `a` stops its containers only.
    chat(&first, "a again");
    let mut a = a;
    assert_eq!(a.stop(), 0, "{}", a.log());
    assert!(container_ids(&first_slug).is_empty());
    assert_eq!(
        container_ids(&second_slug),
        b_ids,
        "b's container survives a's stop"
    );
    assert!(
        second.data().join("cli.sock").exists(),
        "a's shutdown leaves b's socket alone"
    );
    chat(&second, "b after a stopped");
    drop(b);
}
