//! The `claude` provider (issue 10 point 1; docs/agent-runner.md#providers): drives the Claude Code
//! CLI headless, `claude -p --input-format stream-json --output-format stream-json --verbose`,
//! as one child process per query that stays open across its turns: follow-ups are written to
//! its stdin as user messages (so the prompt cache survives) and ending the query closes stdin,
//! after which Claude Code finishes the queued turns and exits.
//!
//! `args.rs` decides the command line and environment, `events.rs` translates its output and
//! classifies its failures, `banner.rs` recognises the auth banners, `hooks.rs` is the
//! `agent-runner hook …` mode Claude Code's hooks call, `archive.rs` the transcript archive of
//! the `PreCompact` hook. This file only runs the process: two reader threads (stdout lines into
//! a channel, stderr into the log) and the [`AgentQuery`] over them.

pub mod archive;
pub mod args;
pub mod banner;
pub mod events;
pub mod hooks;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tracing::{debug, info, warn};

use super::{AgentQuery, Next, Provider, ProviderEvent, ProviderOptions, QueryInput};
use crate::env;
use args::{Launch, Settings};
use events::ClaudeError;

/// Where the production image has Claude Code (container/production/Dockerfile).
pub const DEFAULT_BINARY: &str = "/usr/local/bin/claude";
/// Where the host mounts the agent's Claude Code state (`sessions/<agent>/.claude-shared/`);
/// Claude Code is pointed at it with `CLAUDE_CONFIG_DIR` (transcripts for `--resume`).
pub const DEFAULT_CONFIG_DIR: &str = "/home/agent/.claude";
/// Lines of Claude Code's stderr kept for the error message of a failed process.
const STDERR_TAIL: usize = 20;

/// The Claude Code provider.
pub struct ClaudeProvider {
    options: ProviderOptions,
    /// The message of the last failure that invalidates the stored continuation (written by
    /// the query that failed, read by [`Provider::is_session_invalid`]): the failure was
    /// classified as a type where it happened, and the loop asks about that message only.
    session_invalid: Rc<RefCell<Option<String>>>,
}

impl ClaudeProvider {
    pub fn new(options: ProviderOptions) -> ClaudeProvider {
        ClaudeProvider {
            options,
            session_invalid: Rc::default(),
        }
    }

    /// The runner-side settings of a launch, from the options and the environment.
    fn settings(&self) -> Settings {
        let workspace = self.options.workspace.clone();
        let config_dir = PathBuf::from(
            env::get(env::NANOCLAW_CLAUDE_CONFIG_DIR).unwrap_or_else(|| DEFAULT_CONFIG_DIR.into()),
        );
        let config_dir = if config_dir.is_dir() {
            Some(config_dir)
        } else {
            warn!(path = %config_dir.display(), "Claude Code's state folder is not mounted; conversations will not survive this container");
            None
        };
        Settings {
            binary: env::get(env::NANOCLAW_CLAUDE_CODE)
                .unwrap_or_else(|| DEFAULT_BINARY.into())
                .into(),
            base_url: self.options.base_url.clone(),
            config_dir,
            settings_file: hooks::settings_file(&workspace),
            extra_dirs: extra_dirs(&workspace),
            auto_compact_window: env::get(env::CLAUDE_CODE_AUTO_COMPACT_WINDOW),
            runner: std::env::current_exe().ok(),
            workspace,
        }
    }
}

impl Provider for ClaudeProvider {
    fn supports_native_slash_commands(&self) -> bool {
        true
    }

    fn query(&mut self, input: QueryInput) -> Box<dyn AgentQuery> {
        let launch = Launch::new(
            &self.options.config,
            &self.settings(),
            input.continuation.as_deref(),
            &input.system_prompt,
        );
        let mut query = ClaudeQuery::start(&launch, Rc::clone(&self.session_invalid));
        query.push(&input.prompt);
        Box::new(query)
    }

    fn is_session_invalid(&self, message: &str) -> bool {
        self.session_invalid.borrow().as_deref() == Some(message)
    }
}

/// `<workspace>/extra/*` folders (the agent's additional mounts), sorted.
fn extra_dirs(workspace: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(workspace.join("extra")) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// One running `claude` process.
struct ClaudeQuery {
    child: Option<Child>,
    /// `None` once the input is ended (closing it lets Claude Code finish and exit).
    stdin: Option<ChildStdin>,
    /// Stdout lines; disconnected when Claude Code closed its stdout.
    lines: Option<Receiver<String>>,
    /// Events of the last line not yet handed out.
    pending: VecDeque<ProviderEvent>,
    /// A failure reported in the output (`error_*` result), or the spawn's.
    failure: Option<ClaudeError>,
    /// Results seen: a process that ends non-zero after answering failed no turn of ours.
    results: usize,
    stderr: Arc<Mutex<VecDeque<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    /// Whether this turn's user was told the credential was refused (at the first
    /// `authentication_failed` retry).
    auth_noticed: bool,
    /// When this turn's API calls started failing to reach the API (reset at the end of a
    /// turn), and whether the loop was told (`events::UNREACHABLE_NOTICE_AFTER`; the loop tells
    /// the chat once per outage).
    unreachable_since: Option<std::time::Instant>,
    unreachable_noticed: bool,
    /// Stdin messages echoed since the last result (`--replay-user-messages`).
    replays_in_turn: usize,
    /// Whether the MCP servers of the first `init` were logged (every turn repeats them).
    mcp_logged: bool,
    session_invalid: Rc<RefCell<Option<String>>>,
}

impl ClaudeQuery {
    fn start(launch: &Launch, session_invalid: Rc<RefCell<Option<String>>>) -> ClaudeQuery {
        let mut query = ClaudeQuery {
            child: None,
            stdin: None,
            lines: None,
            pending: VecDeque::new(),
            failure: None,
            results: 0,
            stderr: Arc::default(),
            readers: Vec::new(),
            mcp_logged: false,
            replays_in_turn: 0,
            auth_noticed: false,
            unreachable_since: None,
            unreachable_noticed: false,
            session_invalid,
        };
        info!(program = %launch.program.display(), cwd = %launch.cwd.display(), "Starting Claude Code");
        debug!(args = ?launch.args, "Claude Code arguments");
        let spawned = Command::new(&launch.program)
            .args(&launch.args)
            .current_dir(&launch.cwd)
            .envs(&launch.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(source) => {
                query.failure = Some(ClaudeError::Spawn {
                    binary: launch.program.display().to_string(),
                    source,
                });
                return query;
            }
        };
        query.stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            query.readers.extend(reader("claude-stdout", move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }));
        }
        if let Some(stderr) = child.stderr.take() {
            let tail = Arc::clone(&query.stderr);
            query.readers.extend(reader("claude-stderr", move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    debug!(target: "claude_code", "{line}");
                    let mut tail = tail.lock().unwrap_or_else(|poison| poison.into_inner());
                    if tail.len() == STDERR_TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            }));
        }
        query.lines = Some(rx);
        query.child = Some(child);
        query
    }

    /// Handles one stdout line: its events are queued.
    fn on_line(&mut self, line: &str) {
        let Ok(value) = serde_json::from_str::<Value>(line) else {
            debug!(line, "Claude Code printed a line that is not JSON");
            self.pending.push_back(ProviderEvent::Activity);
            return;
        };
        if !self.mcp_logged && value.get("subtype").and_then(Value::as_str) == Some("init") {
            self.mcp_logged = true;
            log_mcp_servers(&value);
        }
        let translation = events::translate(&value);
        let mut events = translation.events;
        if translation.auth_failed && !self.auth_noticed {
            // Tell the user now, not when Claude Code's retries give up minutes later.
            self.auth_noticed = true;
            events.push(ProviderEvent::Notice {
                reply: banner::AUTH_REQUIRED_MESSAGE.to_string(),
            });
        }
        if translation.unreachable {
            events.extend(self.unreachable_notice(std::time::Instant::now()));
        }
        if translation.ends_turn {
            self.unreachable_since = None;
            self.unreachable_noticed = false;
            self.results += 1;
            self.replays_in_turn = 0;
            if std::mem::take(&mut self.auth_noticed) {
                // Said already: the banner ends the turn without a second message.
                for event in &mut events {
                    if matches!(event, ProviderEvent::TurnError { reply } if reply == banner::AUTH_REQUIRED_MESSAGE)
                    {
                        *event = ProviderEvent::Result { text: None };
                    }
                }
            }
        }
        if translation.replayed_input {
            // The first echo of a turn is its own message; a further one joined it.
            self.replays_in_turn += 1;
            if self.replays_in_turn > 1 {
                self.pending.push_back(ProviderEvent::FollowUpJoined);
            }
        }
        if let Some(failure) = translation.failure {
            warn!(error = %failure, "Claude Code reported a failure");
            self.failure = Some(failure);
        }
        self.pending.extend(events);
    }

    /// An API retry found the API unreachable at `now`: the event once the outage has lasted
    /// [`events::UNREACHABLE_NOTICE_AFTER`] in this turn, once per turn.
    fn unreachable_notice(&mut self, now: std::time::Instant) -> Option<ProviderEvent> {
        let since = *self.unreachable_since.get_or_insert(now);
        if self.unreachable_noticed || now.duration_since(since) < events::UNREACHABLE_NOTICE_AFTER
        {
            return None;
        }
        self.unreachable_noticed = true;
        warn!(
            for_s = now.duration_since(since).as_secs(),
            "the Anthropic API is unreachable; Claude Code keeps retrying"
        );
        Some(ProviderEvent::Unreachable {
            notice: events::UNREACHABLE_MESSAGE.to_string(),
        })
    }

    /// Claude Code closed its stdout: waits for it and says how the query ended.
    fn finish(&mut self) -> Next {
        self.lines = None;
        self.stdin = None;
        let status = self.child.take().map(|mut child| child.wait());
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let failure = match (self.failure.take(), status) {
            (Some(failure), _) => Some(failure),
            (None, None) => None,
            (None, Some(Ok(status))) if status.success() || self.results > 0 => {
                info!(%status, "Claude Code exited");
                None
            }
            (None, Some(Ok(status))) => Some(ClaudeError::Exited {
                status: status.to_string(),
                stderr: self.stderr_tail(),
            }),
            (None, Some(Err(err))) => Some(ClaudeError::Exited {
                status: format!("an unknown status ({err})"),
                stderr: self.stderr_tail(),
            }),
        };
        match failure {
            None => Next::Done,
            Some(failure) => {
                let message = failure.to_string();
                *self.session_invalid.borrow_mut() =
                    failure.is_session_invalid().then(|| message.clone());
                Next::Failed(message)
            }
        }
    }

    fn stderr_tail(&self) -> String {
        let tail = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        if tail.is_empty() {
            String::new()
        } else {
            format!(": {}", tail.iter().cloned().collect::<Vec<_>>().join("\n"))
        }
    }
}

/// Logs the MCP servers an `init` line reports: a server that failed to connect is a warning
/// (Claude Code runs on without its tools).
fn log_mcp_servers(line: &Value) {
    for server in line
        .get("mcp_servers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = server.get("name").and_then(Value::as_str).unwrap_or("?");
        match server.get("status").and_then(Value::as_str) {
            Some("connected") => debug!(server = name, "MCP server connected"),
            status => warn!(
                server = name,
                status = status.unwrap_or("unknown"),
                "MCP server not connected"
            ),
        }
    }
}

/// Starts a named reader thread; a thread that cannot start is logged (the query then ends
/// as if the stream closed).
fn reader(name: &str, body: impl FnOnce() + Send + 'static) -> Option<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(body)
        .map_err(|err| warn!(error = %err, name, "cannot start a reader thread"))
        .ok()
}

impl AgentQuery for ClaudeQuery {
    fn push(&mut self, text: &str) {
        let Some(stdin) = &mut self.stdin else {
            return;
        };
        let line = serde_json::json!({
            "type": "user",
            "message": {"role": "user", "content": text},
        });
        if let Err(err) = writeln!(stdin, "{line}").and_then(|()| stdin.flush()) {
            // The process is gone; its end is reported when stdout closes.
            warn!(error = %err, "cannot write to Claude Code");
            self.stdin = None;
        }
    }

    fn end(&mut self) {
        self.stdin = None;
    }

    fn next_event(&mut self, wait: Duration) -> Next {
        if let Some(event) = self.pending.pop_front() {
            return Next::Event(event);
        }
        let Some(lines) = &self.lines else {
            return self.finish();
        };
        match lines.recv_timeout(wait) {
            Ok(line) => {
                self.on_line(&line);
                self.pending.pop_front().map_or(Next::Idle, Next::Event)
            }
            Err(RecvTimeoutError::Timeout) => Next::Idle,
            Err(RecvTimeoutError::Disconnected) => self.finish(),
        }
    }
}

impl Drop for ClaudeQuery {
    /// A query dropped before Claude Code ended (the runner is going away) takes it along.
    fn drop(&mut self) {
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                warn!("stopping Claude Code, whose query was abandoned");
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests;
