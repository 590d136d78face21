//! The daemon's own guarantees, end to end with real `nanoclaw run` processes: one daemon per
//! data dir (the lock, its message, a crash freeing it, the data dir's permissions), a broken
//! stderr that cannot deafen it, and what `run` may apply without asking.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::runtime::{CLI_AGENT, Daemon};
use crate::support::{self, Env, Run};

/// A child process that is killed (SIGKILL) if the test ends before it exited.
struct Process(Child);

impl Process {
    /// Sends `signal` (`TERM`, `INT`, …) with kill(1).
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.0.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the exit, failing the test after `deadline`; returns the exit code.
    #[track_caller]
    fn wait(&mut self, what: &str, deadline: Duration) -> i32 {
        let mut code = None;
        support::wait_until(what, deadline, || {
            code = self
                .0
                .try_wait()
                .expect("wait for the child")
                .map(|status| status.code().unwrap_or(-1));
            code.is_some()
        });
        code.expect("exited")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `nanoclaw ARGS` to completion with output in files, killing it after `deadline` (a
/// `run` that should refuse must not hang the test when it starts instead).
fn run_with_deadline(env: &Env, args: &[&str], deadline: Duration) -> Run {
    let stdout_path = env.root.path().join("second.stdout");
    let stderr_path = env.root.path().join("second.stderr");
    let child = env
        .command(args)
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("start nanoclaw");
    let mut process = Process(child);
    let code = process.wait(&format!("`nanoclaw {}` to exit", args.join(" ")), deadline);
    Run {
        code,
        stdout: std::fs::read_to_string(stdout_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(stderr_path).unwrap_or_default(),
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn issue_7_a_second_run_on_one_data_dir_refuses_and_names_the_holder() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("one-daemon");
    env.write("agents.yaml", CLI_AGENT);
    let daemon = Daemon::start(&env);
    let hello = env.run(&["chat", "--message", "hello", "--timeout", "60s"]);
    assert_eq!(hello.stdout.trim(), "echo: hello", "{}", hello.stderr);
    let containers = daemon.containers();
    assert_eq!(containers.len(), 1, "{}", daemon.log());

    let image = support::agent_image().tag;
    let second = run_with_deadline(
        &env,
        &["run", "manifests", "--image", image],
        Duration::from_secs(60),
    );
    assert_eq!(second.code, 1, "the second run must refuse: {second:?}");
    let holder = regex::Regex::new(&format!(
        r"pid {}, started \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
        daemon.pid()
    ))
    .expect("regex");
    assert!(
        holder.is_match(&second.stderr),
        "names the holder's pid and start time: {}",
        second.stderr
    );
    assert!(second.stderr.contains("hint: "), "{}", second.stderr);

    assert_eq!(
        daemon.containers(),
        containers,
        "the first daemon's container survives\n{}",
        daemon.log()
    );
    let again = env.run(&["chat", "--message", "still there?", "--timeout", "60s"]);
    assert_eq!(
        again.stdout.trim(),
        "echo: still there?",
        "the first daemon keeps answering: {}\n{}",
        again.stderr,
        daemon.log()
    );
}

#[test]
fn issue_7_kill_9_of_the_holder_frees_the_lock() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("lock-crash");
    env.write("agents.yaml", CLI_AGENT);
    let mut daemon = Daemon::start(&env);
    let first = env.run(&["chat", "--message", "one", "--timeout", "60s"]);
    assert_eq!(first.stdout.trim(), "echo: one", "{}", first.stderr);
    daemon.crash();
    let daemon = Daemon::start(&env);
    let second = env.run(&["chat", "--message", "two", "--timeout", "60s"]);
    assert_eq!(
        second.stdout.trim(),
        "echo: two",
        "{}\n{}",
        second.stderr,
        daemon.log()
    );
}

#[test]
fn issue_7_a_data_dir_others_can_write_is_refused_with_the_fix() {
    let env = Env::new("data-dir-mode");
    env.write("agents.yaml", CLI_AGENT);
    std::fs::create_dir_all(env.data()).expect("data dir");
    for writable in [0o777, 0o770, 0o702] {
        std::fs::set_permissions(env.data(), std::fs::Permissions::from_mode(writable))
            .expect("chmod");
        for command in [&["run", "manifests"][..], &["apply", "--yes"][..]] {
            let run = run_with_deadline(&env, command, Duration::from_secs(60));
            assert_eq!(run.code, 1, "{command:?} with mode {writable:o}: {run:?}");
            let fix = format!("hint: run `chmod 700 {}`", env.data().display());
            assert!(
                run.stderr.contains(&fix),
                "{command:?} with mode {writable:o}: {}",
                run.stderr
            );
        }
    }
    assert!(!env.db().exists(), "nothing was written");
    assert!(!env.data().join("cli.sock").exists());
}

#[test]
fn issue_7_a_new_data_dir_and_its_files_are_private() {
    let env = Env::new("data-dir-private");
    env.write("agents.yaml", CLI_AGENT);
    env.run(&["apply", "--yes"]).success();
    assert_eq!(mode(&env.data()), 0o700);
    assert_eq!(mode(&env.db()), 0o600);
    assert_eq!(mode(&env.data().join("apply.lock")), 0o600);
}

/// Starts `nanoclaw run` with stderr on a pipe, has a container answer, closes the pipe's
/// read end (the `tee` of `nanoclaw run 2>&1 | tee log` dying), then sends `signal`. Needs
/// Docker (the caller opens with the gate).
fn stops_cleanly_with_a_closed_stderr(name: &str, signal: &str) {
    let env = Env::new(name);
    env.write("agents.yaml", CLI_AGENT);
    let image = support::agent_image().tag;
    std::fs::create_dir_all(env.data()).expect("data dir");
    let guard = support::DockerGuard::new(&reconciler::paths::slug_of(&env.data()));
    let child = env
        .command(&["run", "manifests", "--image", image])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nanoclaw run");
    let mut daemon = Process(child);
    let stderr = daemon.0.stderr.take().expect("piped stderr");
    let socket = env.data().join("cli.sock");
    support::wait_until("the runtime to listen", Duration::from_secs(60), || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    });
    let chat = env.run(&["chat", "--message", "hi", "--timeout", "60s"]);
    assert_eq!(chat.stdout.trim(), "echo: hi", "{}", chat.stderr);
    assert_eq!(guard.containers().len(), 1, "a container runs");

    drop(stderr);
    daemon.signal(signal);
    let code = daemon.wait(
        &format!("the daemon to stop on SIG{signal} with its stderr closed"),
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "a clean shutdown");
    assert!(
        guard.containers().is_empty(),
        "shutdown removed the container: {:?}",
        guard.containers()
    );
}

#[test]
fn issue_8_a_daemon_whose_stderr_pipe_closed_still_stops_on_sigterm() {
    let Some(()) = support::docker() else {
        return;
    };
    stops_cleanly_with_a_closed_stderr("closed-stderr-term", "TERM");
}

#[test]
fn issue_8_a_daemon_whose_stderr_pipe_closed_still_stops_on_sigint() {
    let Some(()) = support::docker() else {
        return;
    };
    stops_cleanly_with_a_closed_stderr("closed-stderr-int", "INT");
}

/// The configuration rows `run` may or may not have deleted.
fn agents_and_sessions(env: &Env) -> (Vec<String>, Vec<String>) {
    let conn = reconciler::db::open_readonly(&env.db()).expect("open the DB");
    let column = |sql: &str| -> Vec<String> {
        let mut statement = conn.prepare(sql).expect("query");
        statement
            .query_map([], |row| row.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("column")
    };
    (
        column("SELECT id FROM agent_groups ORDER BY id"),
        column("SELECT id FROM sessions ORDER BY id"),
    )
}

#[test]
fn issue_8_run_holds_deletions_nobody_confirmed_and_applies_the_rest() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("held-deletions");
    env.write("agents.yaml", CLI_AGENT);
    env.write("helper.yaml", "kind: agent\nname: helper\nprovider: mock\n");
    env.run(&["apply", "--yes"]).success();
    {
        let conn = reconciler::db::open(&env.db()).expect("open the DB");
        conn.execute(
            "INSERT INTO sessions (id, agent_group_id, created_at) VALUES ('s-helper', 'helper', 'now')",
            [],
        )
        .expect("a session of helper");
    }
    // `helper` came from elsewhere; this directory has a new agent instead.
    std::fs::remove_file(env.manifests().join("helper.yaml")).expect("remove helper");
    env.write("newbie.yaml", "kind: agent\nname: newbie\nprovider: mock\n");

    let mut daemon = Daemon::start(&env);
    assert_eq!(
        agents_and_sessions(&env),
        (
            vec!["echo".to_string(), "helper".into(), "newbie".into()],
            vec!["s-helper".to_string()]
        ),
        "the addition is applied, the deletion (and its session) held\n{}",
        daemon.log()
    );
    let log = daemon.log();
    assert!(log.contains("Held back 1 deletion"), "{log}");
    assert!(log.contains("  - agent.helper\n"), "{log}");
    let apply_hint = format!("`nanoclaw --data {} apply manifests`", env.data().display());
    assert!(log.contains(&apply_hint), "{log}");
    assert!(log.contains("`nanoclaw run manifests --yes`"), "{log}");
    let hello = env.run(&["chat", "--message", "hello", "--timeout", "60s"]);
    assert_eq!(hello.stdout.trim(), "echo: hello", "{}", hello.stderr);
    assert_eq!(daemon.stop(), 0);

    let daemon = Daemon::start_with(&env, &["--yes"]);
    let (agents, sessions) = agents_and_sessions(&env);
    assert_eq!(agents, ["echo", "newbie"], "{}", daemon.log());
    assert!(
        !sessions.contains(&"s-helper".to_string()),
        "the deleted agent's session went with it: {sessions:?}"
    );
}

#[test]
fn issue_8_run_runs_the_conflict_guard_that_apply_runs() {
    let env = Env::new("run-conflict");
    env.write("agents.yaml", CLI_AGENT);
    env.run(&["apply", "--yes"]).success();
    {
        let conn = reconciler::db::open(&env.db()).expect("open the DB");
        conn.execute(
            "INSERT INTO messaging_groups (id, channel_type, platform_id, unknown_sender_policy, created_at)
             VALUES ('mg-abc', 'telegram', '555', 'request_approval', 'now')",
            [],
        )
        .expect("a chat registered at runtime");
    }
    env.write(
        "family.yaml",
        "kind: channel\nname: family\nchannel_type: telegram\nplatform_id: \"555\"\n",
    );
    let run = run_with_deadline(&env, &["run", "manifests"], Duration::from_secs(60));
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(
            "channel.family: chat telegram/555 is already in the DB as `channel.mg-abc` \
             (registered at runtime); name the channel `mg-abc` to adopt it"
        ),
        "{}",
        run.stderr
    );
    assert!(!env.data().join("cli.sock").exists(), "nothing was started");
}

#[test]
fn issue_8_run_refuses_an_addition_that_needs_a_held_deletion() {
    let env = Env::new("run-needs-held");
    env.write("agents.yaml", CLI_AGENT);
    env.run(&["apply", "--yes"]).success();
    // The channel is renamed: the new name wants the chat the old (held) one still holds.
    env.write(
        "agents.yaml",
        &CLI_AGENT.replace("name: terminal", "name: console"),
    );
    let before = agents_and_sessions(&env);
    let run = run_with_deadline(&env, &["run", "manifests"], Duration::from_secs(60));
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(
            "`channel.console` needs `channel.terminal` deleted first (both are chat cli/local)"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("hint: confirm the deletions with `nanoclaw run manifests --yes`"),
        "{}",
        run.stderr
    );
    assert_eq!(agents_and_sessions(&env), before);
    let generation = {
        let conn = reconciler::db::open_readonly(&env.db()).expect("open the DB");
        reconciler::db::generation(&conn).expect("generation")
    };
    assert_eq!(generation, 1, "nothing was applied");
}
