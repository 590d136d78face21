//! End-to-end tests of the executor (issue 11): configuration changes reach running agents
//! through fresh containers at a safe point, `nanoclaw restart`, `apply --no-restart` and
//! `nanoclaw status`, against a real dockerd with the mock provider.

use std::process::Command;
use std::time::Duration;

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
