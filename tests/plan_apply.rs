//! plan / apply / history / export end to end: the real binary on a temp data dir, asserting on
//! its output and on the central DB it wrote (opened through `reconciler::db`).

use std::fs::File;
use std::io::Write;

use crate::support::Env;

const AGENTS: &str = "kind: agent
name: andy
provider: mock
instructions: |
  Be brief.
  Answer in English.
packages:
  apt: [git]
";

const CHANNELS: &str = "kind: channel
name: main
channel_type: cli
platform_id: local
wirings:
  - agent: andy
    engage_mode: pattern
    engage_pattern: \".\"
";

const USERS: &str = "kind: user
id: \"cli:me\"
display_name: Me
roles: [owner]
member_of: [andy]
";

fn fixture(name: &str) -> Env {
    let env = Env::new(name);
    env.write("agents.yaml", AGENTS);
    env.write("channels.yaml", CHANNELS);
    env.write("users.yaml", USERS);
    env
}

fn generation(env: &Env) -> i64 {
    let conn = reconciler::db::open_readonly(&env.db()).expect("open the DB");
    reconciler::db::generation(&conn).expect("read the generation")
}

fn count(env: &Env, sql: &str) -> i64 {
    let conn = reconciler::db::open_readonly(&env.db()).expect("open the DB");
    conn.query_row(sql, [], |row| row.get(0))
        .expect("count rows")
}

/// Every config row, for before/after comparisons.
fn config_rows(env: &Env) -> Vec<String> {
    let conn = reconciler::db::open_readonly(&env.db()).expect("open the DB");
    let current = reconciler::db::config::read(&conn).expect("read the configuration");
    vec![format!("{:?}", current)]
}

#[test]
fn plan_on_an_empty_db_lists_creates_and_writes_nothing() {
    let env = fixture("plan-empty");
    let run = env.run(&["plan"]);
    run.success();
    let first = run.stdout.lines().next().unwrap();
    assert_eq!(
        first,
        "Plan: 7 to add, 0 to change, 0 to destroy · 1 new agent"
    );
    assert!(
        run.stdout.contains("+ agent.andy  # new agent: created"),
        "{}",
        run.stdout
    );
    assert!(!env.data().exists(), "plan must not create the data dir");
}

#[test]
fn apply_then_apply_again_is_no_changes_without_a_new_generation() {
    let env = fixture("apply-twice");
    let run = env.run(&["apply", "--yes"]);
    run.success();
    assert!(
        run.stdout.contains(
            "Apply complete: 7 to add, 0 to change, 0 to destroy · 1 new agent (generation 1)."
        ),
        "{}",
        run.stdout
    );
    assert_eq!(generation(&env), 1);
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM agent_groups WHERE managed_by = 'manifest'"
        ),
        1
    );
    assert_eq!(count(&env, "SELECT COUNT(*) FROM managed_resources"), 7);
    // Nothing acts on pending effects yet, so none are recorded (issue 8).
    assert_eq!(count(&env, "SELECT COUNT(*) FROM pending_effects"), 0);
    let again = env.run(&["apply", "--yes"]);
    again.success();
    assert_eq!(
        again.stdout,
        "No changes. The database matches the manifests.\n"
    );
    assert_eq!(generation(&env), 1);
}

#[test]
fn detailed_exitcode_is_2_with_changes_0_without_and_1_on_error() {
    let env = fixture("exitcode");
    assert_eq!(env.run(&["plan", "--detailed-exitcode"]).code, 2);
    assert_eq!(env.run(&["plan"]).code, 0);
    env.run(&["apply", "--yes"]).success();
    assert_eq!(env.run(&["plan", "--detailed-exitcode"]).code, 0);
    env.write("agents.yaml", "kind: agent\nnmae: andy\n");
    let bad = env.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("error"), "{}", bad.stderr);
}

#[test]
fn invalid_manifests_write_nothing() {
    let env = Env::new("invalid");
    env.write("agents.yaml", "kind: agent\nname: andy\nbogus: 1\n");
    let run = env.run(&["apply", "--yes"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("agents.yaml"), "{}", run.stderr);
    assert!(!env.db().exists());
}

#[test]
fn plan_json_is_versioned() {
    let env = fixture("plan-json");
    let run = env.run(&["plan", "--json"]);
    run.success();
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["format_version"], 2);
    assert_eq!(json["generation"], 0);
    assert_eq!(json["summary"]["add"], 7);
    assert_eq!(json["changes"][0]["address"], "agent.andy");
    assert_eq!(json["changes"][0]["action"], "create");
    assert_eq!(json["effects"][0]["impact"], "new");
    assert_eq!(json["summary"]["new_agents"], 1);
    assert_eq!(json["summary"]["restart"], 0);
}

#[test]
fn a_saved_plan_applies_exactly_and_a_stale_one_is_refused() {
    let env = fixture("saved-plan");
    let plan_file = env.root.path().join("plan.json");
    let plan_arg = plan_file.to_str().unwrap();
    env.run(&["plan", "--out", plan_arg]).success();
    env.run(&["apply", "--plan", plan_arg]).success();
    assert_eq!(generation(&env), 1);

    // Stale by generation: the DB moved on after the plan was saved.
    env.write("agents.yaml", &AGENTS.replace("[git]", "[git, curl]"));
    env.run(&["plan", "--out", plan_arg]).success();
    env.write("agents.yaml", &AGENTS.replace("[git]", "[git, jq]"));
    env.run(&["apply", "--yes"]).success();
    let stale = env.run(&["apply", "--plan", plan_arg]);
    assert_eq!(stale.code, 1);
    assert!(
        stale
            .stderr
            .contains("is stale: the DB is at generation 2, the plan was made at generation 1"),
        "{}",
        stale.stderr
    );

    // Stale by manifests: edited after the plan was saved.
    env.run(&["plan", "--out", plan_arg]).success();
    env.write("agents.yaml", AGENTS);
    let stale = env.run(&["apply", "--plan", plan_arg]);
    assert_eq!(stale.code, 1);
    assert!(
        stale
            .stderr
            .contains("is stale: the manifests changed since the plan was made"),
        "{}",
        stale.stderr
    );
    assert_eq!(generation(&env), 2);
}

#[test]
fn a_held_lock_refuses_apply_and_names_the_holder() {
    let env = fixture("lock");
    std::fs::create_dir_all(env.data()).unwrap();
    let mut lock = File::create(env.data().join("apply.lock")).unwrap();
    lock.try_lock().unwrap();
    writeln!(lock, "pid 1234\nsince 2026-01-02T03:04:05Z").unwrap();
    let run = env.run(&["apply", "--yes"]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr.trim(),
        "error: apply is locked by pid 1234 since 2026-01-02T03:04:05Z"
    );
    drop(lock);
    env.run(&["apply", "--yes"]).success();
    let content = std::fs::read_to_string(env.data().join("apply.lock")).unwrap();
    assert!(content.starts_with("pid "), "{content}");
}

#[test]
fn runtime_rows_survive_apply_unless_pruned() {
    let env = fixture("prune");
    env.run(&["apply", "--yes"]).success();
    {
        let conn = reconciler::db::open(&env.db()).unwrap();
        conn.execute(
            "INSERT INTO users (id, kind, display_name, created_at)
             VALUES ('telegram:99', 'telegram', 'paired', 'now')",
            [],
        )
        .unwrap();
    }
    // Issue 12: the plan lists what was made at runtime, so it can be adopted or pruned.
    let plan = env.run(&["plan"]);
    assert_eq!(
        plan.stdout,
        "No changes. The database matches the manifests.\n\nMade at runtime and not in the \
         manifests (kept; `nanoclaw adopt ADDRESS…` manages them, `--prune` deletes them):\n  \
         user.telegram:99\n"
    );
    let pruning = env.run(&["plan", "--prune"]);
    assert!(
        pruning
            .stdout
            .starts_with("Plan: 0 to add, 0 to change, 1 to destroy\n"),
        "{}",
        pruning.stdout
    );
    assert!(
        pruning.stdout.contains("- user.telegram:99"),
        "{}",
        pruning.stdout
    );
    env.run(&["apply", "--yes"]).success();
    assert_eq!(count(&env, "SELECT COUNT(*) FROM users"), 2);
    env.run(&["apply", "--yes", "--prune"]).success();
    assert_eq!(count(&env, "SELECT COUNT(*) FROM users"), 1);
}

#[test]
fn an_empty_manifest_set_needs_allow_empty_to_delete_everything() {
    let env = fixture("allow-empty");
    env.run(&["apply", "--yes"]).success();
    for file in ["agents.yaml", "channels.yaml", "users.yaml"] {
        std::fs::remove_file(env.manifests().join(file)).unwrap();
    }
    let refused = env.run(&["apply", "--yes"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("pass `--allow-empty`"),
        "{}",
        refused.stderr
    );
    assert_eq!(count(&env, "SELECT COUNT(*) FROM agent_groups"), 1);
    env.run(&["apply", "--yes", "--allow-empty"]).success();
    assert_eq!(count(&env, "SELECT COUNT(*) FROM agent_groups"), 0);
    assert_eq!(count(&env, "SELECT COUNT(*) FROM managed_resources"), 0);
}

#[test]
fn apply_without_a_terminal_or_yes_refuses() {
    let env = fixture("no-tty");
    let run = env.run(&["apply"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains(
            "refusing to apply without confirmation: stdin is not a terminal; pass `--yes`"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(generation(&env), 0);
    assert_eq!(count(&env, "SELECT COUNT(*) FROM agent_groups"), 0);
}

#[test]
fn a_failing_apply_leaves_the_db_unchanged() {
    let env = fixture("apply-fails");
    env.run(&["plan"]).success();
    std::fs::create_dir_all(env.data()).unwrap();
    {
        // Writing the user fails after the agent and channel rows were written. (A chat held
        // by a runtime row is refused before writing: see the `chat_conflict` test.)
        let conn = reconciler::db::open(&env.db()).unwrap();
        conn.execute(
            "CREATE TRIGGER refuse_users BEFORE INSERT ON users
             BEGIN SELECT RAISE(ABORT, 'users are read-only today'); END",
            [],
        )
        .unwrap();
    }
    let before = config_rows(&env);
    let run = env.run(&["apply", "--yes"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("writing `user.cli:me`"),
        "{}",
        run.stderr
    );
    assert_eq!(config_rows(&env), before);
    assert_eq!(generation(&env), 0);
}

#[test]
fn export_round_trips_through_plan_and_apply() {
    let env = fixture("export");
    env.run(&["apply", "--yes"]).success();
    let export = env.run(&["export", "out"]);
    export.success();
    assert_eq!(
        export.stdout,
        "Exported 7 resources to out (agents.yaml, channels.yaml, users.yaml).\n"
    );
    let plan = env.run(&["plan", "out"]);
    assert_eq!(
        plan.stdout,
        "No changes. The database matches the manifests.\n"
    );
    let before = config_rows(&env);
    env.run(&["apply", "out", "--yes"]).success();
    assert_eq!(config_rows(&env), before);
    assert_eq!(generation(&env), 1);
    let again = env.run(&["export", "out"]);
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("pass `--force`"), "{}", again.stderr);
    env.run(&["export", "out", "--force"]).success();
}

#[test]
fn history_lists_generations_newest_first() {
    let env = fixture("history");
    assert_eq!(env.run(&["history"]).stdout, "No applies yet.\n");
    env.run(&["apply", "--yes"]).success();
    env.write("agents.yaml", &AGENTS.replace("[git]", "[git, curl]"));
    env.run(&["apply", "--yes"]).success();
    let table = env.normalize(&env.run(&["history"]).stdout);
    let digest = regex::Regex::new(r"\b[0-9a-f]{12}\b").unwrap();
    let table = digest.replace_all(&table, "$$DIGEST");
    expect_test::expect![[r#"
        GENERATION  APPLIED AT            COMMIT  DIGEST        SUMMARY
                 2  $TIME  -       $DIGEST  Plan: 0 to add, 1 to change, 0 to destroy · 1 rebuild
                 1  $TIME  -       $DIGEST  Plan: 7 to add, 0 to change, 0 to destroy · 1 new agent
    "#]]
    .assert_eq(&table);
    let json: serde_json::Value =
        serde_json::from_str(&env.run(&["history", "--json"]).stdout).unwrap();
    assert_eq!(json[0]["generation"], 2);
    assert_eq!(
        json[1]["summary"],
        "Plan: 7 to add, 0 to change, 0 to destroy · 1 new agent"
    );
}

#[test]
fn history_records_the_manifest_commit_and_dirty_state() {
    let env = fixture("history-git");
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .arg("-C")
            .arg(env.manifests())
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "fleet"]);
    env.run(&["apply", "--yes"]).success();
    env.write("agents.yaml", &AGENTS.replace("[git]", "[git, curl]"));
    env.run(&["apply", "--yes"]).success();
    let json: serde_json::Value =
        serde_json::from_str(&env.run(&["history", "--json"]).stdout).unwrap();
    let commit = |idx: usize| json[idx]["git_commit"].as_str().unwrap().to_string();
    let sha = regex::Regex::new("^[0-9a-f]{40}$").unwrap();
    assert!(sha.is_match(&commit(1)), "{}", commit(1));
    assert_eq!(commit(0), format!("{}-dirty", commit(1)));
}

#[test]
fn a_db_edit_outside_manifests_shows_as_drift_and_apply_reverts_it() {
    let env = fixture("drift");
    env.run(&["apply", "--yes"]).success();
    {
        let conn = reconciler::db::open(&env.db()).unwrap();
        conn.execute(
            "UPDATE container_configs SET model = 'edited-by-hand' WHERE agent_group_id = 'andy'",
            [],
        )
        .unwrap();
    }
    let plan = env.run(&["plan"]);
    expect_test::expect![[r#"
        Plan: 0 to add, 1 to change, 0 to destroy

        Agents affected:
          andy  next start  agent.andy: model

        ~ agent.andy  # at its next start: model
            ! drift: model: the DB has "edited-by-hand", the last apply wrote null; apply reverts it
            model: "edited-by-hand" → null  # at its next start: written to container.json at spawn
            # (14 unchanged fields hidden)
    "#]]
    .assert_eq(&plan.stdout);
    env.run(&["apply", "--yes"]).success();
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM container_configs WHERE model IS NULL"
        ),
        1
    );
    assert_eq!(
        env.run(&["plan"]).stdout,
        "No changes. The database matches the manifests.\n"
    );
}

/// Runs `nanoclaw apply` on a pseudo-terminal (util-linux `script`) answering `answer`.
#[allow(clippy::print_stderr)] // says why the test is skipped
fn apply_on_a_terminal(env: &Env, answer: &str) -> Option<String> {
    let found = std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        eprintln!("skipping: util-linux `script` (a pseudo-terminal) is not installed");
        return None;
    }
    let command = format!(
        "{} --data {} apply {}",
        crate::support::BIN,
        env.data().display(),
        env.manifests().display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn script");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(answer.as_bytes())
        .expect("write the answer");
    let output = child.wait_with_output().expect("wait for script");
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn apply_on_a_terminal_asks_and_only_yes_applies() {
    let env = fixture("tty");
    let Some(declined) = apply_on_a_terminal(&env, "n\n") else {
        return;
    };
    assert!(
        declined.contains("Apply these changes? [y/N]"),
        "{declined}"
    );
    assert!(declined.contains("Apply cancelled."), "{declined}");
    assert_eq!(generation(&env), 0);
    let accepted = apply_on_a_terminal(&env, "y\n").unwrap();
    assert!(accepted.contains("Apply complete"), "{accepted}");
    assert_eq!(generation(&env), 1);
}

#[test]
fn a_manifest_channel_for_a_chat_registered_at_runtime_under_another_name_is_refused_clearly() {
    let env = fixture("chat_conflict");
    env.run(&["apply", "--yes"]).success();
    {
        let conn = reconciler::db::open(&env.db()).unwrap();
        conn.execute(
            "INSERT INTO messaging_groups (id, channel_type, platform_id, unknown_sender_policy, created_at)
             VALUES ('mg-abc', 'telegram', '555', 'request_approval', 'now')",
            [],
        )
        .unwrap();
    }
    env.write(
        "family.yaml",
        "kind: channel\nname: family\nchannel_type: telegram\nplatform_id: \"555\"\n",
    );
    let before = config_rows(&env);
    for command in [&["plan"][..], &["apply", "--yes"][..]] {
        let out = env.run(command);
        assert_eq!(out.code, 1, "{command:?}: {}", out.stdout);
        assert!(
            out.stderr.contains(
                "channel.family: chat telegram/555 is already in the DB as `channel.mg-abc` \
                 (registered at runtime); name the channel `mg-abc` to adopt it"
            ),
            "{command:?}: {}",
            out.stderr
        );
    }
    assert_eq!(config_rows(&env), before);
    // Under the runtime row's name it is adopted.
    env.write(
        "family.yaml",
        "kind: channel\nname: mg-abc\nchannel_type: telegram\nplatform_id: \"555\"\n",
    );
    env.run(&["apply", "--yes"]).success();
}

#[test]
fn export_without_a_central_db_says_so_and_writes_nothing() {
    let env = Env::new("export-no-db");
    let run = env.run(&["export", "out"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr.contains("there is no central DB at `")
            && run.stderr.contains("nothing to export"),
        "{}",
        run.stderr
    );
    let root = env.manifests().parent().unwrap().to_path_buf();
    assert!(!root.join("out").exists());
    assert!(!env.data().exists());
}

#[test]
fn agent_network_is_stored_planned_as_recreate_and_exported() {
    let env = Env::new("network");
    let agent = |network: &str| format!("kind: agent\nname: andy\nprovider: mock\n{network}");
    env.write("agents.yaml", &agent(""));
    env.run(&["apply", "--yes"]).success();
    let network = || {
        let conn = reconciler::db::open_readonly(&env.db()).expect("open the DB");
        conn.query_row(
            "SELECT network FROM container_configs WHERE agent_group_id = 'andy'",
            [],
            |row| row.get::<_, String>(0),
        )
        .expect("the agent's network")
    };
    assert_eq!(network(), "full");
    // Writing the default is no change.
    env.write("agents.yaml", &agent("network: full\n"));
    assert_eq!(
        env.run(&["plan"]).stdout,
        "No changes. The database matches the manifests.\n"
    );
    env.write("agents.yaml", &agent("network: none\n"));
    {
        // A running container, so the plan counts the recreate it forces.
        let conn = reconciler::db::open(&env.db()).expect("open the DB");
        conn.execute(
            "INSERT INTO sessions (id, agent_group_id, created_at, container_status)
             VALUES ('s1', 'andy', 'now', 'running')",
            [],
        )
        .expect("a running session");
    }
    let plan = env.run(&["plan"]);
    expect_test::expect![[r#"
        Plan: 0 to add, 1 to change, 0 to destroy · 1 recreate

        Agents affected:
          andy  recreate    agent.andy: network

        ~ agent.andy  # forces recreate: network
            network: "full" → "none"  # forces recreate: the network is set when the container is created (`docker run --network`)
            # (14 unchanged fields hidden)
    "#]]
    .assert_eq(&plan.stdout);
    env.run(&["apply", "--yes"]).success();
    assert_eq!(network(), "none");
    env.run(&["export", "out"]).success();
    let exported =
        std::fs::read_to_string(env.root.path().join("out/agents.yaml")).expect("export");
    assert!(exported.contains("network: none\n"), "{exported}");
    assert_eq!(
        env.run(&["plan", "out"]).stdout,
        "No changes. The database matches the manifests.\n"
    );
}

#[test]
fn agent_resources_are_stored_planned_as_recreate_and_exported() {
    let env = Env::new("resources");
    let agent = |resources: &str| format!("kind: agent\nname: andy\nprovider: mock\n{resources}");
    env.write(
        "agents.yaml",
        &agent("resources:\n  memory: 1.5g\n  cpus: 0.5\n  pids: 64\n"),
    );
    env.run(&["apply", "--yes"]).success();
    let columns = {
        let conn = reconciler::db::open_readonly(&env.db()).expect("open the DB");
        conn.query_row(
            "SELECT memory_bytes, cpu_millis, pids_limit FROM container_configs WHERE agent_group_id = 'andy'",
            [],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?)),
        )
        .expect("the agent's limits")
    };
    assert_eq!(columns, (1_610_612_736, 500, 64));

    // The same size spelled another way is no change.
    env.write(
        "agents.yaml",
        &agent("resources: {memory: 1536MiB, cpus: '0.50', pids: 64}\n"),
    );
    assert_eq!(
        env.run(&["plan"]).stdout,
        "No changes. The database matches the manifests.\n"
    );

    env.write(
        "agents.yaml",
        &agent("resources: {memory: 1g, cpus: 0.5, pids: 64}\n"),
    );
    {
        // A running container, so the plan counts the recreate it forces.
        let conn = reconciler::db::open(&env.db()).expect("open the DB");
        conn.execute(
            "INSERT INTO sessions (id, agent_group_id, created_at, container_status)
             VALUES ('s1', 'andy', 'now', 'running')",
            [],
        )
        .expect("a running session");
    }
    let plan = env.run(&["plan"]);
    expect_test::expect![[r#"
        Plan: 0 to add, 1 to change, 0 to destroy · 1 recreate

        Agents affected:
          andy  recreate    agent.andy: resources.memory

        ~ agent.andy  # forces recreate: resources.memory
            resources.memory: "1536MiB" → "1GiB"  # forces recreate: the memory limit is set when the container is created (`docker run --memory`)
            # (14 unchanged fields hidden)
    "#]]
    .assert_eq(&plan.stdout);
    env.run(&["apply", "--yes"]).success();

    let export = env.run(&["export", "out"]);
    export.success();
    let exported =
        std::fs::read_to_string(env.root.path().join("out/agents.yaml")).expect("export");
    assert!(
        exported.contains("resources:\n  memory: 1GiB\n  cpus: 0.5\n  pids: 64\n"),
        "{exported}"
    );
    assert_eq!(
        env.run(&["plan", "out"]).stdout,
        "No changes. The database matches the manifests.\n"
    );

    // An agent applied before `resources` existed: no columns, no field in its saved spec.
    env.write("agents.yaml", &agent(""));
    env.run(&["apply", "--yes"]).success();
    {
        let conn = reconciler::db::open(&env.db()).expect("open the DB");
        conn.execute(
            "UPDATE managed_resources SET spec_json = json_remove(spec_json, '$.resources') WHERE address = 'agent.andy'",
            [],
        )
        .expect("drop the field from the saved spec");
    }
    assert_eq!(
        env.run(&["plan"]).stdout,
        "No changes. The database matches the manifests.\n",
        "no drift and no change for limits that were never set"
    );
}

#[test]
fn issue_8_plan_counts_a_restart_only_for_an_agent_with_a_running_container() {
    let env = fixture("running-facts");
    env.run(&["apply", "--yes"]).success();
    env.write("agents.yaml", &format!("{AGENTS}model: opus\n"));
    let set_status = |status: &str| {
        let conn = reconciler::db::open(&env.db()).unwrap();
        conn.execute(
            "INSERT OR REPLACE INTO sessions (id, agent_group_id, messaging_group_id, created_at,
               container_status) VALUES ('s1', 'andy', 'main', 'now', ?1)",
            [status],
        )
        .unwrap();
    };
    set_status("stopped");
    let idle = env.run(&["plan"]);
    let first = idle.stdout.lines().next().unwrap();
    assert_eq!(first, "Plan: 0 to add, 1 to change, 0 to destroy");
    assert!(
        idle.stdout
            .contains("  andy  next start  agent.andy: model\n"),
        "{}",
        idle.stdout
    );
    set_status("running");
    let busy = env.run(&["plan"]);
    let first = busy.stdout.lines().next().unwrap();
    assert_eq!(
        first,
        "Plan: 0 to add, 1 to change, 0 to destroy · 1 restart"
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.run(&["plan", "--json"]).stdout).unwrap();
    assert_eq!(json["effects"][0]["impact"], "restart");
    assert_eq!(json["summary"]["restart"], 1);
}

#[test]
fn issue_8_deleted_agents_are_counted_as_removed_not_restarts() {
    let env = fixture("removed-agents");
    env.write(
        "more.yaml",
        "kind: agent\nname: extra\nprovider: mock\n---\nkind: agent\nname: spare\nprovider: mock\n",
    );
    env.run(&["apply", "--yes"]).success();
    std::fs::remove_file(env.manifests().join("more.yaml")).unwrap();
    let plan = env.run(&["plan"]);
    let first = plan.stdout.lines().next().unwrap();
    assert_eq!(
        first,
        "Plan: 0 to add, 0 to change, 2 to destroy · 2 agents removed"
    );
    assert!(
        plan.stdout
            .contains("- agent.extra  # removed agent: deleted"),
        "{}",
        plan.stdout
    );
}
