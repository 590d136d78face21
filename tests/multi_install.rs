//! Issue 14 point 3: two installs (two data dirs) on one host run side by side, each daemon
//! exercised against the other: container names and labels, the daemon lock, the CLI and
//! credential proxy sockets, `restart --message`, `restart --rebuild` of an agent with
//! packages, the daemon's build and its prune of old per-agent images, orphan cleanup at start
//! (after a crash) and shutdown. Each step checks that the other install's containers, images,
//! sessions and answers are untouched.

use std::process::Command;
use std::time::Duration;

use crate::agent_images::{Images, fake_agent_image, image_exists};
use crate::runtime::{CLI_AGENT, Client, Daemon};
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
    support::production_image();
    side_by_side();
}

/// An agent with `apt` packages on the production test image (no chat: only its image counts).
fn packaged(apt: &str) -> String {
    format!(
        "kind: agent\nname: pkg\nprovider: mock\nimage: {}\npackages:\n  apt: [{apt}]\n",
        support::production_test_image()
    )
}

/// The per-agent image the install records for `pkg`.
fn pkg_tag(env: &Env) -> Option<String> {
    let conn = reconciler::db::open_readonly(&env.db()).ok()?;
    reconciler::db::agent_images::get(&conn, "pkg").ok()??.tag
}

/// The session ids the install's central DB holds.
fn sessions(env: &Env) -> Vec<String> {
    let conn = reconciler::db::open_readonly(&env.db()).expect("open the DB");
    let mut ids: Vec<String> = reconciler::db::sessions::active(&conn)
        .expect("sessions")
        .into_iter()
        .map(|session| session.id)
        .collect();
    ids.sort();
    ids
}

/// `a` restarts (with a message), rebuilds and prunes while `b` runs: b's containers, images,
/// sessions and answers are untouched.
fn restart_rebuild_and_prune(first: &Env, second: &Env, images: &mut Images) {
    let first_slug = reconciler::paths::slug_of(&first.data());
    let second_slug = reconciler::paths::slug_of(&second.data());
    for env in [first, second] {
        env.write("pkg.yaml", &packaged("tree"));
        let applied = env.run(&["apply", "manifests", "--yes"]);
        assert_eq!(applied.code, 0, "{}: {}", env.name, applied.stderr);
    }
    support::wait_until(
        "both daemons to build their per-agent image",
        Duration::from_secs(900),
        || pkg_tag(first).is_some() && pkg_tag(second).is_some(),
    );
    let b_image = pkg_tag(second).expect("b's image");
    images.0.push(pkg_tag(first).expect("a's image"));
    images.0.push(b_image.clone());
    assert!(b_image.starts_with(&format!("nanoclaw-agent-{second_slug}-pkg:")));
    let a_stale = format!("nanoclaw-agent-{first_slug}-gone:000000000000");
    let b_stale = format!("nanoclaw-agent-{second_slug}-gone:000000000000");
    images.0.extend([a_stale.clone(), b_stale.clone()]);
    fake_agent_image(&a_stale, &first_slug);
    fake_agent_image(&b_stale, &second_slug);
    chat(second, "b before a's restarts");
    let b_ids = container_ids(&second_slug);
    let b_sessions = sessions(second);

    // `restart --message`: a's fresh container answers it; b's container stays.
    let mut client = Client::connect(first);
    let restarted = first.run(&["restart", "echo", "--message", "a restarted"]);
    assert_eq!(restarted.code, 0, "{}", restarted.stderr);
    assert_eq!(client.reply().0, "echo: a restarted");
    drop(client);
    chat(second, "b during a's restarts");

    // `restart --rebuild` of a's agent with packages: its image is up to date, reused.
    let rebuilt = first.run(&["restart", "pkg", "--rebuild"]);
    assert_eq!(rebuilt.code, 0, "{}", rebuilt.stderr);
    assert!(
        rebuilt.stdout.contains("is up to date"),
        "{}",
        rebuilt.stdout
    );

    // A packages change: a's daemon builds, then prunes its own old images only.
    first.write("pkg.yaml", &packaged("tree, jq"));
    let applied = first.run(&["apply", "manifests", "--yes"]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    support::wait_until(
        "a's daemon to prune its stale image after its build",
        Duration::from_secs(900),
        || !image_exists(&a_stale),
    );
    images.0.extend(pkg_tag(first));
    assert!(
        image_exists(&b_image),
        "b's per-agent image survives a's prune"
    );
    assert!(image_exists(&b_stale), "b's images are never a's to prune");
    assert_eq!(pkg_tag(second).as_deref(), Some(b_image.as_str()));
    assert_eq!(container_ids(&second_slug), b_ids, "b's container survives");
    assert_eq!(sessions(second), b_sessions, "b's sessions are untouched");
    chat(second, "b after a's restarts");
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

    let mut images = Images(Vec::new());
    restart_rebuild_and_prune(&first, &second, &mut images);
    let b_ids = container_ids(&second_slug);

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
