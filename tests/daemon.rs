//! The daemon's own guarantees, end to end with real `nanoclaw run` processes: a broken stderr
//! that cannot deafen it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::runtime::CLI_AGENT;
use crate::support::{self, Env};

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
