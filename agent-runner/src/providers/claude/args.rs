//! What the Claude provider starts: the `claude` command line, its working folder and the
//! environment it adds (docs/agent-runner.md#the-claude-provider-providersclaude,
//! docs/claude-code.md).
//!
//! Pure: [`Launch::new`] decides everything from the container config, the query and the
//! runner's settings; `super::query` only spawns what it says. No IO here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::container_config::{ContainerConfig, McpServer};

/// Tools pre-approved for the agent (docs/agent-runner.md#providers), besides one
/// `mcp__<server>__*` pattern per configured MCP server.
pub const ALLOWED_TOOLS: &[&str] = &[
    "Bash",
    "Read",
    "Write",
    "Edit",
    "Glob",
    "Grep",
    "WebSearch",
    "WebFetch",
    "Task",
    "TaskOutput",
    "TaskStop",
    "TeamCreate",
    "TeamDelete",
    "SendMessage",
    "TodoWrite",
    "ToolSearch",
    "Skill",
    "NotebookEdit",
];

/// Tools the agent must not have (docs/agent-runner.md#providers): nanoclaw has durable scheduling
/// and its own question tool, and the interactive affordances would hang a headless agent. Passed
/// as `--disallowedTools` and refused again by the `PreToolUse` hook (defence in depth).
pub const BLOCKED_TOOLS: &[&str] = &[
    "CronCreate",
    "CronDelete",
    "CronList",
    "ScheduleWakeup",
    "AskUserQuestion",
    "EnterPlanMode",
    "ExitPlanMode",
    "EnterWorktree",
    "ExitWorktree",
];

/// `CLAUDE_CODE_AUTO_COMPACT_WINDOW` when the runner's environment sets none
/// (docs/agent-runner.md#providers).
pub const DEFAULT_AUTO_COMPACT_WINDOW: &str = "165000";

/// The runner-side facts a launch depends on (resolved once from the environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The `claude` executable.
    pub binary: PathBuf,
    /// The runner's workspace (`/workspace`): the agent's folder is `agent/` below it.
    pub workspace: PathBuf,
    /// `ANTHROPIC_BASE_URL` for Claude Code: the credential forwarder, when it runs.
    pub base_url: Option<String>,
    /// Claude Code's state folder (`CLAUDE_CONFIG_DIR`), when the host mounted it.
    pub config_dir: Option<PathBuf>,
    /// The hook settings file passed with `--settings`.
    pub settings_file: Option<PathBuf>,
    /// Extra folders the agent may use (`/workspace/extra/*`), passed with `--add-dir`.
    pub extra_dirs: Vec<PathBuf>,
    /// `CLAUDE_CODE_AUTO_COMPACT_WINDOW` of the runner's environment, if set.
    pub auto_compact_window: Option<String>,
    /// This runner's executable: Claude Code starts `<runner> mcp` as the `nanoclaw` MCP
    /// server (docs/agent-runner.md#tools). `None`: no nanoclaw tools.
    pub runner: Option<PathBuf>,
}

/// One `claude` process to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Claude Code's working folder: always the agent's folder, so `--resume` finds the
    /// transcripts (docs/claude-code.md#resume).
    pub cwd: PathBuf,
    /// Added to (or replacing in) the runner's own environment, which the child inherits.
    pub env: BTreeMap<String, String>,
}

impl Launch {
    /// The command line for a query resuming `continuation` (if any) with the system-prompt
    /// addendum `system_prompt`.
    pub fn new(
        config: &ContainerConfig,
        settings: &Settings,
        continuation: Option<&str>,
        system_prompt: &str,
    ) -> Launch {
        let mut args: Vec<String> = [
            "-p",
            "--input-format",
            "stream-json",
            "--output-format",
            "stream-json",
            "--verbose",
            // Each stdin message is echoed where it joins the conversation: a follow-up written
            // during a tool call joins the turn in flight (docs/claude-code.md).
            "--replay-user-messages",
            // The container is the sandbox: no permission prompts (docs/agent-runner.md#providers).
            "--permission-mode",
            "bypassPermissions",
        ]
        .map(String::from)
        .to_vec();
        let mut flag = |name: &str, value: String| {
            args.push(name.to_string());
            args.push(value);
        };
        if !system_prompt.is_empty() {
            flag("--append-system-prompt", system_prompt.to_string());
        }
        let mut allowed = allowed_tools(config);
        if settings.runner.is_some() {
            allowed.push(format!("mcp__{}__*", crate::mcp::SERVER_NAME));
        }
        flag("--allowedTools", allowed.join(","));
        flag("--disallowedTools", BLOCKED_TOOLS.join(","));
        if let Some(model) = &config.model {
            flag("--model", model.clone());
        }
        if let Some(effort) = &config.effort {
            flag("--effort", effort.clone());
        }
        if let Some(id) = continuation {
            flag("--resume", id.to_string());
        }
        if !config.mcp_servers.is_empty() || settings.runner.is_some() {
            let mut servers = mcp_config(&config.mcp_servers);
            if let Some(runner) = &settings.runner {
                // Ours wins over a configured server of the same name.
                servers["mcpServers"][crate::mcp::SERVER_NAME] = json!({
                    "command": runner.display().to_string(),
                    "args": ["mcp"],
                    "env": {crate::env::NANOCLAW_WORKSPACE: settings.workspace.display().to_string()},
                });
            }
            flag("--mcp-config", servers.to_string());
        }
        if let Some(file) = &settings.settings_file {
            flag("--settings", file.display().to_string());
        }
        for dir in &settings.extra_dirs {
            flag("--add-dir", dir.display().to_string());
        }
        Launch {
            program: settings.binary.clone(),
            args,
            cwd: agent_dir(&settings.workspace),
            env: environment(settings),
        }
    }
}

/// The agent's own folder (`/workspace/agent`): Claude Code's working folder.
pub fn agent_dir(workspace: &Path) -> PathBuf {
    workspace.join("agent")
}

/// [`ALLOWED_TOOLS`] plus `mcp__<server>__*` for every configured MCP server, the name
/// sanitised as Claude Code prefixes its tools (every character outside `[A-Za-z0-9_-]` → `_`).
pub fn allowed_tools(config: &ContainerConfig) -> Vec<String> {
    let mut tools: Vec<String> = ALLOWED_TOOLS.iter().map(|t| t.to_string()).collect();
    tools.extend(
        config
            .mcp_servers
            .keys()
            .map(|name| format!("mcp__{}__*", sanitize_server_name(name))),
    );
    tools
}

/// Claude Code's MCP tool prefix for a server name.
pub fn sanitize_server_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `--mcp-config`'s JSON: `{"mcpServers": {name: {command, args, env} | {type: "http", url}}}`
/// (docs/claude-code.md#mcp-servers). A server with a `url` is an HTTP server; the host-side
/// `instructions` stay out (they went into `CLAUDE.md`).
pub fn mcp_config(servers: &BTreeMap<String, McpServer>) -> Value {
    let entries: serde_json::Map<String, Value> = servers
        .iter()
        .map(|(name, server)| {
            let entry = match &server.url {
                Some(url) => json!({"type": "http", "url": url}),
                None => json!({
                    "command": server.command.clone().unwrap_or_default(),
                    "args": server.args,
                    "env": server.env,
                }),
            };
            (name.clone(), entry)
        })
        .collect();
    json!({ "mcpServers": entries })
}

/// The variables the child gets on top of the runner's environment (docs/claude-code.md,
/// "Environment").
fn environment(settings: &Settings) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let mut set = |name: &str, value: String| {
        env.insert(name.to_string(), value);
    };
    // Nothing but the base URL is contacted: no telemetry, error reports or update checks.
    set("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into());
    set("DISABLE_AUTOUPDATER", "1".into());
    set(
        "CLAUDE_CODE_AUTO_COMPACT_WINDOW",
        settings
            .auto_compact_window
            .clone()
            .unwrap_or_else(|| DEFAULT_AUTO_COMPACT_WINDOW.into()),
    );
    if let Some(url) = &settings.base_url {
        set("ANTHROPIC_BASE_URL", url.clone());
    }
    if let Some(dir) = &settings.config_dir {
        set("CLAUDE_CONFIG_DIR", dir.display().to_string());
    }
    // The hooks (`agent-runner hook …`) find the session's files through it.
    set(
        crate::env::NANOCLAW_WORKSPACE,
        settings.workspace.display().to_string(),
    );
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn settings() -> Settings {
        Settings {
            binary: "/usr/local/bin/claude".into(),
            workspace: "/workspace".into(),
            base_url: Some("http://127.0.0.1:47821".into()),
            config_dir: Some("/home/agent/.claude".into()),
            settings_file: Some("/workspace/claude-settings.json".into()),
            extra_dirs: vec!["/workspace/extra/notes".into()],
            auto_compact_window: None,
            runner: Some("/agent-runner".into()),
        }
    }

    #[test]
    fn a_fresh_query_with_defaults_passes_the_fixed_flags_only() {
        let launch = Launch::new(
            &ContainerConfig::default(),
            &Settings {
                settings_file: None,
                extra_dirs: Vec::new(),
                runner: None,
                ..settings()
            },
            None,
            "",
        );
        expect![[r#"
            -p
            --input-format
            stream-json
            --output-format
            stream-json
            --verbose
            --replay-user-messages
            --permission-mode
            bypassPermissions
            --allowedTools
            Bash,Read,Write,Edit,Glob,Grep,WebSearch,WebFetch,Task,TaskOutput,TaskStop,TeamCreate,TeamDelete,SendMessage,TodoWrite,ToolSearch,Skill,NotebookEdit
            --disallowedTools
            CronCreate,CronDelete,CronList,ScheduleWakeup,AskUserQuestion,EnterPlanMode,ExitPlanMode,EnterWorktree,ExitWorktree"#]]
        .assert_eq(&launch.args.join("\n"));
        assert_eq!(launch.cwd, Path::new("/workspace/agent"));
        assert_eq!(launch.program, Path::new("/usr/local/bin/claude"));
    }

    #[test]
    fn config_and_continuation_become_flags() {
        let config: ContainerConfig = serde_json::from_value(json!({
            "model": "claude-sonnet-4-5",
            "effort": "high",
            "mcpServers": {
                "notes": {"command": "notes-mcp", "args": ["--ro"], "env": {"A": "1"}},
                "web search": {"url": "http://127.0.0.1:9/mcp", "instructions": "use it"}
            }
        }))
        .unwrap();
        let launch = Launch::new(&config, &settings(), Some("c2c380e5"), "# You are Andy");
        let fixed = 9; // `-p` … `bypassPermissions`, pinned by the test above
        let flags: Vec<String> = launch.args[fixed..]
            .chunks(2)
            .map(|pair| pair.join(" "))
            .collect();
        expect![[r#"
            --append-system-prompt # You are Andy
            --allowedTools Bash,Read,Write,Edit,Glob,Grep,WebSearch,WebFetch,Task,TaskOutput,TaskStop,TeamCreate,TeamDelete,SendMessage,TodoWrite,ToolSearch,Skill,NotebookEdit,mcp__notes__*,mcp__web_search__*,mcp__nanoclaw__*
            --disallowedTools CronCreate,CronDelete,CronList,ScheduleWakeup,AskUserQuestion,EnterPlanMode,ExitPlanMode,EnterWorktree,ExitWorktree
            --model claude-sonnet-4-5
            --effort high
            --resume c2c380e5
            --mcp-config {"mcpServers":{"notes":{"command":"notes-mcp","args":["--ro"],"env":{"A":"1"}},"web search":{"type":"http","url":"http://127.0.0.1:9/mcp"},"nanoclaw":{"command":"/agent-runner","args":["mcp"],"env":{"NANOCLAW_WORKSPACE":"/workspace"}}}}
            --settings /workspace/claude-settings.json
            --add-dir /workspace/extra/notes"#]]
        .assert_eq(&flags.join("\n"));
    }

    #[test]
    fn the_child_environment_points_at_the_forwarder_and_switches_off_other_traffic() {
        let launch = Launch::new(&ContainerConfig::default(), &settings(), None, "");
        expect![[r#"
            {
                "ANTHROPIC_BASE_URL": "http://127.0.0.1:47821",
                "CLAUDE_CODE_AUTO_COMPACT_WINDOW": "165000",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "CLAUDE_CONFIG_DIR": "/home/agent/.claude",
                "DISABLE_AUTOUPDATER": "1",
                "NANOCLAW_WORKSPACE": "/workspace",
            }"#]]
        .assert_eq(&format!("{:#?}", launch.env));
        let without = Launch::new(
            &ContainerConfig::default(),
            &Settings {
                base_url: None,
                config_dir: None,
                auto_compact_window: Some("50000".into()),
                ..settings()
            },
            None,
            "",
        );
        assert!(!without.env.contains_key("ANTHROPIC_BASE_URL"));
        assert!(!without.env.contains_key("CLAUDE_CONFIG_DIR"));
        assert_eq!(without.env["CLAUDE_CODE_AUTO_COMPACT_WINDOW"], "50000");
    }

    #[test]
    fn mcp_patterns_sanitise_server_names_like_claude_code() {
        assert_eq!(sanitize_server_name("my.server/x"), "my_server_x");
        assert_eq!(sanitize_server_name("ok_name-2"), "ok_name-2");
        assert_eq!(sanitize_server_name("naïve"), "na_ve");
    }
}
