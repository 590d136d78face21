//! End-to-end tests of the executor (issue 11): configuration changes reach running agents
//! through fresh containers at a safe point, `nanoclaw restart`, `apply --no-restart`,
//! `nanoclaw status`, and the per-agent images the daemon builds itself when `packages` change
//! (`restart --rebuild` too), against a real dockerd with the mock provider.
//!
//! The image tests run the agent on the production test image (`support::production_image`,
//! built once per run) and install `tree`, a package that image does not hold (it has `jq`
//! already, so `jq` would prove nothing).

use std::process::Command;
use std::time::Duration;

use crate::agent_images::Images;
use crate::runtime::{CLI_AGENT, Client, Daemon};
use crate::support::{self, Env};

/// Ids of this install's running containers.
fn container_ids(env: &Env) -> Vec<String> {
    let output = Command::new("docker")
        .args(["ps", "-q", "--no-trunc", "--filter"])
        .arg(format!(
            "label=nanoclaw.install={}",
            reconciler::paths::slug_of(&env.data())
        ))
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn with_model(model: &str) -> String {
    CLI_AGENT.replace(
        "provider: mock\n",
        &format!("provider: mock\nmodel: {model}\n"),
    )
}

/// The model the agent's `!config` reply reports.
fn model_of(reply: &str) -> String {
    let config: serde_json::Value =
        serde_json::from_str(reply.trim()).expect("the mock answers with its config JSON");
    config["model"].as_str().unwrap_or_default().to_string()
}

/// Replies until the one answering `message_id`, each as `(text, in_reply_to)`.
fn replies_until(client: &mut Client, message_id: &str) -> Vec<(String, String)> {
    let mut replies = Vec::new();
    loop {
        let reply = client.reply();
        let done = reply.1.starts_with(message_id);
        replies.push(reply);
        if done {
            return replies;
        }
    }
}

#[test]
fn issue_11_a_changed_model_reaches_the_running_agent_through_a_fresh_container() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("exec-model");
    env.write("agents.yaml", &with_model("model-a"));
    let daemon = Daemon::start_args(&env, &["--sweep-interval", "1h"]);
    let mut client = Client::connect(&env);
    client.say("m1", "!config");
    let (text, _) = client.reply();
    assert_eq!(model_of(&text), "model-a");
    let before = container_ids(&env);
    assert_eq!(before.len(), 1, "{}", daemon.log());

    env.write("agents.yaml", &with_model("model-b"));
    let applied = env.run(&["apply", "manifests", "--yes"]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    assert!(
        applied
            .stdout
            .contains("1 container will restart at its next safe point"),
        "{}",
        applied.stdout
    );
    // Sent during the switch: answered exactly once, by whichever container takes it.
    client.say("m2", "during the switch");
    let mut replies = replies_until(&mut client, "m2");
    support::wait_until(
        "the old container to be replaced",
        Duration::from_secs(60),
        || !container_ids(&env).contains(&before[0]),
    );
    client.say("m3", "!config");
    replies.extend(replies_until(&mut client, "m3"));
    let answers_to_m2 = replies
        .iter()
        .filter(|(_, in_reply_to)| in_reply_to.starts_with("m2"))
        .count();
    assert_eq!(answers_to_m2, 1, "{replies:?}\n{}", daemon.log());
    let (config, _) = replies.last().expect("m3's reply");
    assert_eq!(model_of(config), "model-b", "{}", daemon.log());
    let after = container_ids(&env);
    assert_eq!(after.len(), 1, "{}", daemon.log());
    assert_ne!(before, after, "a fresh container answers");
    assert!(
        daemon
            .log()
            .contains("configuration changed: replacing the container at its next safe point"),
        "{}",
        daemon.log()
    );
}

#[test]
fn issue_11_a_change_with_effect_none_restarts_nothing_and_takes_effect_on_the_next_message() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("exec-none");
    env.write("agents.yaml", CLI_AGENT);
    let daemon = Daemon::start_args(&env, &["--sweep-interval", "1h"]);
    let mut client = Client::connect(&env);
    client.say("m1", "hello");
    assert_eq!(client.reply().0, "echo: hello");
    let before = container_ids(&env);

    // The wiring's pattern (effect `none`): only messages starting with `!` engage now.
    env.write(
        "agents.yaml",
        &CLI_AGENT.replace("engage_pattern: \".\"", "engage_pattern: \"^!\""),
    );
    let applied = env.run(&["apply", "manifests", "--yes"]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    client.say("m2", "not engaged");
    client.say("m3", "!engaged");
    let replies = replies_until(&mut client, "m3");
    assert_eq!(
        replies,
        [("echo: !engaged".to_string(), "m3:echo".to_string())],
        "{}",
        daemon.log()
    );
    assert_eq!(container_ids(&env), before, "nothing restarted");
    assert!(!daemon.log().contains("configuration changed: replacing"));
}

#[test]
fn issue_11_restart_with_a_message_is_seen_once_by_the_fresh_container() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("exec-restart");
    env.write("agents.yaml", CLI_AGENT);
    let daemon = Daemon::start_args(&env, &["--sweep-interval", "1h"]);
    let mut client = Client::connect(&env);
    client.say("m1", "hello");
    assert_eq!(client.reply().0, "echo: hello");
    let before = container_ids(&env);

    let restarted = env.run(&["restart", "echo", "--message", "you were restarted"]);
    assert_eq!(restarted.code, 0, "{}\n{}", restarted.stderr, daemon.log());
    assert!(
        restarted
            .stdout
            .contains("restarting 1 container at its next safe point"),
        "{}",
        restarted.stdout
    );
    let (text, in_reply_to) = client.reply();
    assert_eq!(text, "echo: you were restarted", "{}", daemon.log());
    assert!(in_reply_to.starts_with("restart-"), "{in_reply_to}");
    let after = container_ids(&env);
    assert_eq!(after.len(), 1, "{}", daemon.log());
    assert_ne!(before, after, "the fresh container took the on-wake row");
    // Exactly once: the next reply answers the next message.
    client.say("m2", "and now");
    assert_eq!(
        replies_until(&mut client, "m2"),
        [("echo: and now".to_string(), "m2:echo".to_string())]
    );
}

#[test]
fn issue_11_restart_says_so_when_no_daemon_runs() {
    let env = Env::new("exec-no-daemon");
    env.write("agents.yaml", CLI_AGENT);
    env.run(&["apply", "manifests", "--yes"]).success();
    let run = env.run(&["restart", "echo"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("No daemon running"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    let unknown = env.run(&["restart", "nobody"]);
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("no agent `nobody`"),
        "{}",
        unknown.stderr
    );
    let message = env.run(&["restart", "echo", "--message", "hi"]);
    assert_eq!(message.code, 1);
    assert!(
        message.stderr.contains("no daemon running"),
        "{}",
        message.stderr
    );
}

#[test]
fn issue_11_apply_no_restart_defers_until_nanoclaw_restart() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("exec-defer");
    env.write("agents.yaml", &with_model("model-a"));
    let daemon = Daemon::start_args(&env, &["--sweep-interval", "1h"]);
    let mut client = Client::connect(&env);
    client.say("m1", "!config");
    assert_eq!(model_of(&client.reply().0), "model-a");

    env.write("agents.yaml", &with_model("model-b"));
    let applied = env.run(&["apply", "manifests", "--yes", "--no-restart"]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    assert!(
        applied.stdout.contains("nanoclaw restart echo"),
        "{}",
        applied.stdout
    );
    support::wait_until(
        "status to show the deferral",
        Duration::from_secs(30),
        || {
            let status = env.run(&["status", "--json"]);
            status.stdout.contains("\"deferred\"")
        },
    );
    client.say("m2", "!config");
    assert_eq!(
        model_of(&client.reply().0),
        "model-a",
        "still the old container"
    );
    let status = env.run(&["status"]);
    assert!(status.stdout.contains("Pending"), "{}", status.stdout);

    let old = container_ids(&env);
    env.run(&["restart", "echo"]).success();
    support::wait_until("the old container to stop", Duration::from_secs(60), || {
        !container_ids(&env).contains(&old[0])
    });
    client.say("m3", "!config");
    let replies = replies_until(&mut client, "m3");
    assert_eq!(
        model_of(&replies.last().expect("reply").0),
        "model-b",
        "{}",
        daemon.log()
    );
    support::wait_until(
        "status to show the agent ready",
        Duration::from_secs(30),
        || env.run(&["status"]).stdout.contains("Ready"),
    );
}

#[test]
fn issue_11_a_daemon_killed_between_apply_and_restart_comes_back_with_the_new_configuration() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("exec-crash");
    env.write("agents.yaml", &with_model("model-a"));
    let mut daemon = Daemon::start_args(&env, &["--sweep-interval", "1h"]);
    let mut client = Client::connect(&env);
    client.say("m1", "!config");
    assert_eq!(model_of(&client.reply().0), "model-a");
    let old = container_ids(&env);
    daemon.crash();
    drop(client);

    env.write("agents.yaml", &with_model("model-b"));
    let applied = env.run(&["apply", "manifests", "--yes"]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    assert!(
        applied.stdout.contains("No daemon running"),
        "{}",
        applied.stdout
    );
    assert_eq!(
        container_ids(&env),
        old,
        "the old container outlived its daemon"
    );

    let daemon = Daemon::start_args(&env, &["--sweep-interval", "1h"]);
    let mut client = Client::connect(&env);
    client.say("m2", "!config");
    assert_eq!(model_of(&client.reply().0), "model-b", "{}", daemon.log());
    assert!(!container_ids(&env).contains(&old[0]));
}

/// The CLI agent on the production test image, with `apt` packages when given.
fn on_production(apt: &[&str]) -> String {
    let packages = if apt.is_empty() {
        String::new()
    } else {
        format!("packages:\n  apt: [{}]\n", apt.join(", "))
    };
    CLI_AGENT.replace(
        "provider: mock\n",
        &format!(
            "provider: mock\nimage: {}\n{packages}",
            support::production_test_image()
        ),
    )
}

/// The agent's row in `agent_images`, if any.
fn image_row(env: &Env) -> Option<reconciler::db::agent_images::AgentImageRow> {
    let conn = reconciler::db::open_readonly(&env.db()).ok()?;
    reconciler::db::agent_images::get(&conn, "echo").ok()?
}

/// `(id, image)` of this install's running containers.
fn containers_with_images(env: &Env) -> Vec<(String, String)> {
    let output = Command::new("docker")
        .args([
            "ps",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Image}}",
            "--filter",
        ])
        .arg(format!(
            "label=nanoclaw.install={}",
            reconciler::paths::slug_of(&env.data())
        ))
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(id, image)| (id.to_string(), image.to_string()))
        .collect()
}

fn image_id(tag: &str) -> String {
    let output = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", tag])
        .output()
        .expect("docker image inspect");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Runs `args` in the running container `id`; its stdout, or `None` when it failed.
fn exec_in(id: &str, args: &[&str]) -> Option<String> {
    let output = Command::new("docker")
        .args(["exec", id])
        .args(args)
        .output()
        .expect("docker exec");
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn issue_11_packages_applied_while_the_daemon_runs_are_built_by_it_and_reach_the_next_container() {
    let Some(()) = support::docker() else {
        return;
    };
    support::production_image();
    let env = Env::new("exec-build");
    env.write("agents.yaml", &on_production(&[]));
    let daemon = Daemon::start_args(&env, &["--sweep-interval", "1h"]);
    let mut made = Images(Vec::new());
    let mut client = Client::connect(&env);
    client.say("m1", "hello");
    assert_eq!(client.reply().0, "echo: hello");
    let before = containers_with_images(&env);
    assert_eq!(before.len(), 1, "{}", daemon.log());
    assert!(exec_in(&before[0].0, &["tree", "--version"]).is_none());

    env.write("agents.yaml", &on_production(&["tree"]));
    let applied = env.run(&["apply", "manifests", "--yes"]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    assert!(
        applied.stdout.contains(
            "agent echo: image rebuild (packages changed) — the daemon builds it now; see `nanoclaw status`"
        ),
        "{}",
        applied.stdout
    );
    // Sent while the daemon builds: answered exactly once (by the old container, which
    // serves until the build ends, or by the fresh one).
    client.say("m2", "during the build");
    let mut replies = replies_until(&mut client, "m2");
    support::wait_until(
        "the daemon to build and record the image",
        Duration::from_secs(900),
        || image_row(&env).and_then(|row| row.tag).is_some(),
    );
    let tag = image_row(&env).and_then(|row| row.tag).expect("recorded");
    made.0.push(tag.clone());
    let slug = reconciler::paths::slug_of(&env.data());
    assert!(
        tag.starts_with(&format!("nanoclaw-agent-{slug}-echo:")),
        "{tag}"
    );
    support::wait_until(
        "the old container to be replaced",
        Duration::from_secs(60),
        || {
            !containers_with_images(&env)
                .iter()
                .any(|(id, _)| *id == before[0].0)
        },
    );
    client.say("m3", "after the build");
    replies.extend(replies_until(&mut client, "m3"));
    let answers_to_m2 = replies
        .iter()
        .filter(|(_, in_reply_to)| in_reply_to.starts_with("m2"))
        .count();
    assert_eq!(answers_to_m2, 1, "{replies:?}\n{}", daemon.log());
    let after = containers_with_images(&env);
    assert_eq!(after.len(), 1, "{}", daemon.log());
    assert_eq!(
        after[0].1, tag,
        "the next container runs the per-agent image"
    );
    let tree = exec_in(&after[0].0, &["tree", "--version"]).expect("tree in the container");
    assert!(tree.starts_with("tree v"), "{tree}");
    let log = daemon.log();
    assert!(
        log.contains("per-agent image: providing it in the background")
            && log.contains("per-agent image build ended"),
        "{log}"
    );
    let id = image_id(&tag);

    // A no-op apply and a daemon restart build nothing: the image stays the same image.
    let noop = env.run(&["apply", "manifests", "--yes"]);
    assert_eq!(noop.code, 0, "{}", noop.stderr);
    drop(client);
    drop(daemon);
    let daemon = Daemon::start_args(&env, &["--sweep-interval", "1h"]);
    let mut client = Client::connect(&env);
    client.say("m4", "after the restart");
    assert_eq!(
        replies_until(&mut client, "m4").last().expect("reply").0,
        "echo: after the restart"
    );
    assert_eq!(image_id(&tag), id, "not rebuilt");
    assert!(
        !daemon.log().contains("providing it in the background"),
        "{}",
        daemon.log()
    );

    // `restart --rebuild` with unchanged inputs: the image is reused, the container replaced.
    let running = containers_with_images(&env);
    let restarted = env.run(&["restart", "echo", "--rebuild"]);
    assert_eq!(restarted.code, 0, "{}\n{}", restarted.stderr, daemon.log());
    assert!(
        restarted
            .stdout
            .contains(&format!("image `{tag}` is up to date"))
            && restarted
                .stdout
                .contains("restarting 1 container at its next safe point"),
        "{}",
        restarted.stdout
    );
    assert!(!restarted.stdout.contains("does not rebuild"));
    support::wait_until(
        "the container to be replaced",
        Duration::from_secs(60),
        || !containers_with_images(&env).contains(&running[0]),
    );
    client.say("m5", "after the rebuild");
    assert_eq!(
        replies_until(&mut client, "m5").last().expect("reply").0,
        "echo: after the rebuild"
    );
    assert_eq!(image_id(&tag), id, "unchanged inputs are not built again");
}

#[test]
fn issue_11_a_failing_build_leaves_the_agent_answering_on_its_previous_image() {
    let Some(()) = support::docker() else {
        return;
    };
    support::production_image();
    let env = Env::new("exec-build-fail");
    env.write("agents.yaml", &on_production(&[]));
    let daemon = Daemon::start_args(&env, &["--sweep-interval", "1h"]);
    let mut made = Images(Vec::new());
    let mut client = Client::connect(&env);
    client.say("m1", "hello");
    assert_eq!(client.reply().0, "echo: hello");

    env.write("agents.yaml", &on_production(&["no-such-pkg-xyz"]));
    let applied = env.run(&["apply", "manifests", "--yes"]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    support::wait_until(
        "the failed build to be recorded",
        Duration::from_secs(900),
        || image_row(&env).is_some_and(|row| row.error.is_some() && row.building.is_none()),
    );
    let row = image_row(&env).expect("a row");
    made.0
        .extend(row.failed_tag.clone().filter(|tag| !tag.is_empty()));
    assert_eq!(row.tag, None, "nothing was built");
    assert!(
        row.error
            .as_deref()
            .unwrap_or_default()
            .contains("no-such-pkg-xyz"),
        "{row:?}"
    );
    let status = env.run(&["status"]);
    assert!(
        status
            .stdout
            .contains("agent echo: Failed (image build failed")
            && status.stdout.contains("no-such-pkg-xyz"),
        "{}",
        status.stdout
    );
    let json = env.run(&["status", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).expect("status JSON");
    assert_eq!(report["agents"][0]["state"], "failed", "{}", json.stdout);
    assert!(report["agents"][0]["image"]["error"].is_string());

    client.say("m2", "still here?");
    assert_eq!(
        replies_until(&mut client, "m2").last().expect("reply").0,
        "echo: still here?",
        "{}",
        daemon.log()
    );
    let running = containers_with_images(&env);
    assert_eq!(running.len(), 1, "{}", daemon.log());
    assert_eq!(
        running[0].1,
        support::production_test_image(),
        "its previous image"
    );
    assert!(
        daemon.log().contains("per-agent image build failed"),
        "{}",
        daemon.log()
    );
}
