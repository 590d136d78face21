//! Harness of the runner's end-to-end tests: the npm-installed Claude Code of the host's
//! tests (`tests/support/claude_code.rs`, shared by path) and `wait_until`.

use std::time::{Duration, Instant};

#[path = "../../../tests/support/claude_code.rs"]
#[allow(dead_code)] // its `run` and `Home` serve the host's protocol tests
pub mod claude_code;

/// Polls `cond` every 20 ms until it holds or `deadline` passes; panics with `what`.
#[track_caller]
pub fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {deadline:?} waiting for: {what}");
}
