//! The `mock` provider (docs/agent-runner.md#providers) with one deliberate change (runner quirk
//! 31, docs/agent-runner.md#decisions-on-the-quirks-of-reference-13): its default reply is
//! delivered. It answers each turn with one `<message to="<origin>">echo: <text></message>` block
//! holding one `echo: <text>` line per chat message of the turn, in order (so every message of a
//! batch is answered exactly once), or the last task's instructions when the turn has no chat
//! message. The block is addressed to the destination the newest message came `from` (else the only
//! destination in the system prompt).
//!
//! A chat text `!tool <name> <json arguments>` calls a nanoclaw tool through the real MCP server
//! (a child `agent-runner mcp` spoken to over stdio, as Claude Code does; `mcp::client`) and
//! answers `tool <name>: <result text>`.
//!
//! The host's notes (messages from sender `system`, e.g. "Agent … created") are not answered.
//!
//! A chat text `!tell <destination> <text>` sends `<text>` to that destination instead (to test
//! agent-to-agent messages), and a turn made only of `echo: …` texts (another mock answering)
//! is not answered, so two mocks never echo each other forever. A chat text `!try <probe>` makes
//! the runner attempt something a confined container must refuse (`mount`, `chown`,
//! `write-root`, `fork-bomb`, `memory-hog`, `docker-socket`) or must be able to do
//! (`credential-proxy`) and answers with the outcome ([`super::probe`]).
//!
//! For tests it records every turn as one JSON line in `<workspace>/outbound/.mock/turns.jsonl`
//! (the only writable part of the workspace; prompt
//! plus configuration), and a chat text of exactly `/mock-config` (or containing `!config`) is
//! answered with that configuration JSON instead of the echo.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use regex::Regex;
use serde_json::json;

use super::{AgentQuery, Next, Provider, ProviderEvent, ProviderOptions, QueryInput, idle, probe};

/// A custom reply function for tests: `Err` makes the query fail with that message.
pub type Responder = Box<dyn FnMut(&str) -> Result<String, String>>;

/// The mock provider.
pub struct MockProvider {
    options: ProviderOptions,
    responder: Option<std::rc::Rc<std::cell::RefCell<Responder>>>,
}

impl MockProvider {
    /// The default (echoing) mock.
    pub fn new(options: ProviderOptions) -> Self {
        MockProvider {
            options,
            responder: None,
        }
    }

    /// A mock answering with `f` instead of the echo.
    pub fn with_responder(options: ProviderOptions, f: Responder) -> Self {
        MockProvider {
            options,
            responder: Some(std::rc::Rc::new(std::cell::RefCell::new(f))),
        }
    }
}

impl Provider for MockProvider {
    fn supports_native_slash_commands(&self) -> bool {
        false
    }

    fn query(&mut self, input: QueryInput) -> Box<dyn AgentQuery> {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let mut q = MockQuery {
            options: self.options.clone(),
            system_prompt: input.system_prompt,
            responder: self.responder.clone(),
            queue: VecDeque::new(),
            ended: false,
        };
        q.queue.push_back(Next::Event(ProviderEvent::Activity));
        q.queue.push_back(Next::Event(ProviderEvent::Init {
            continuation: format!("mock-session-{ms}"),
        }));
        q.queue.push_back(Next::Event(ProviderEvent::Activity));
        q.answer(&input.prompt);
        Box::new(q)
    }

    fn is_session_invalid(&self, _message: &str) -> bool {
        false
    }
}

struct MockQuery {
    options: ProviderOptions,
    system_prompt: String,
    responder: Option<std::rc::Rc<std::cell::RefCell<Responder>>>,
    queue: VecDeque<Next>,
    ended: bool,
}

impl MockQuery {
    fn answer(&mut self, prompt: &str) {
        self.record(prompt);
        let reply = match &self.responder {
            Some(f) => (f.borrow_mut())(prompt),
            None => Ok(default_reply(
                prompt,
                &self.system_prompt,
                &self.config_json(),
                &|name, args| self.call_tool(name, args),
            )),
        };
        self.queue.push_back(match reply {
            Ok(text) => Next::Event(ProviderEvent::Result { text: Some(text) }),
            Err(message) => Next::Failed(message),
        });
    }

    /// `!tool`: calls the tool through the real MCP server, a child `agent-runner mcp` spoken
    /// to over stdio as Claude Code does.
    fn call_tool(&self, name: &str, args: &serde_json::Value) -> String {
        let result = std::env::current_exe()
            .map_err(|err| format!("cannot find the runner: {err}"))
            .and_then(|runner| {
                crate::mcp::client::call_tool(&runner, &self.options.workspace, name, args)
            });
        match result {
            Ok((text, _)) => text,
            Err(err) => format!("MCP client error: {err}"),
        }
    }

    fn config_json(&self) -> serde_json::Value {
        let config = &self.options.config;
        json!({
            "provider": config.provider,
            "model": config.model,
            "effort": config.effort,
            "assistant_name": config.assistant_name,
            "max_messages_per_prompt": config.max_messages_per_prompt,
            "mcp_servers": config.mcp_servers.keys().collect::<Vec<_>>(),
            "system_prompt": self.system_prompt,
        })
    }

    /// Appends the turn to `outbound/.mock/turns.jsonl`; best effort (a test double must not
    /// fail turns).
    fn record(&self, prompt: &str) {
        if self.options.workspace.as_os_str().is_empty() {
            return;
        }
        let dir = crate::session_db::outbound_dir(&self.options.workspace).join(".mock");
        let mut line = self.config_json();
        line["prompt"] = json!(prompt);
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("turns.jsonl"))
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

impl AgentQuery for MockQuery {
    fn push(&mut self, text: &str) {
        if !self.ended {
            self.answer(text);
        }
    }

    fn end(&mut self) {
        self.ended = true;
    }

    fn next_event(&mut self, wait: Duration) -> Next {
        match self.queue.pop_front() {
            Some(next) => next,
            None if self.ended => Next::Done,
            None => idle(wait),
        }
    }
}

static MESSAGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"<message((?:\s+[a-z_]+="[^"]*")*)>((?s:.*?))</message>"#).expect("valid regex")
});
static TASK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"<task((?:\s+[a-z_]+="[^"]*")*)>((?s:.*?))</task>"#).expect("valid regex")
});
static QUOTED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?s)^\n  <quoted_message[^>]*>.*?</quoted_message>\n").expect("valid regex")
});
static FROM: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"\sfrom="([^"]*)""#).expect("valid regex"));
static ONLY_DEST: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"Your destination is `([^`]+)`").expect("valid regex"));

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// The echo reply: `(origin of the newest, texts)` of the turn's chat messages, else of the
/// last task.
fn default_reply(
    prompt: &str,
    system_prompt: &str,
    config: &serde_json::Value,
    tool: &dyn Fn(&str, &serde_json::Value) -> String,
) -> String {
    let all: Vec<(String, String)> = MESSAGE
        .captures_iter(prompt)
        .map(|c| (c[1].to_string(), QUOTED.replace(&c[2], "").to_string()))
        .collect();
    // The host's notes to the agent (sender `system`) are read, not answered.
    let messages: Vec<(String, String)> = all
        .iter()
        .filter(|(attrs, _)| !attrs.contains(" sender=\"system\""))
        .cloned()
        .collect();
    if messages.is_empty() && !all.is_empty() {
        return "<internal>a note from the host</internal>".to_string();
    }
    let found = messages
        .last()
        .map(|(attrs, _)| {
            (
                attrs.clone(),
                messages
                    .iter()
                    .map(|(_, text)| text.clone())
                    .collect::<Vec<_>>(),
            )
        })
        .or_else(|| {
            TASK.captures_iter(prompt).last().map(|c| {
                let body = &c[2];
                let text = body.rsplit("Instructions:\n").next().unwrap_or(body);
                (c[1].to_string(), vec![text.to_string()])
            })
        });
    let target = found.as_ref().and_then(|(attrs, _)| {
        FROM.captures(attrs)
            .map(|c| unescape(&c[1]))
            .filter(|f| !f.starts_with("unknown:"))
            .or_else(|| ONLY_DEST.captures(system_prompt).map(|c| c[1].to_string()))
    });
    match (found, target) {
        (Some((_, texts)), Some(to)) => {
            let texts: Vec<String> = texts.iter().map(|text| unescape(text)).collect();
            let wants_config = texts
                .last()
                .is_some_and(|text| text.trim() == "/mock-config" || text.contains("!config"));
            if let Some(name) = texts
                .last()
                .and_then(|text| text.trim().strip_prefix("!try "))
            {
                // A confinement probe: the runner attempts it and reports (providers/probe.rs).
                return format!(
                    "<message to=\"{to}\">{}</message>",
                    probe::reply(name.trim())
                );
            }
            if let Some(call) = texts
                .last()
                .and_then(|text| text.trim().strip_prefix("!tool "))
            {
                // `!tool <name> <json arguments>`: call a nanoclaw tool mid-turn and answer with
                // its result text.
                let (name, args) = call.split_once(' ').unwrap_or((call, "{}"));
                let result = match serde_json::from_str(args) {
                    Ok(args) => tool(name, &args),
                    Err(err) => format!("arguments are not JSON: {err}"),
                };
                return format!("<message to=\"{to}\">tool {name}: {result}</message>");
            }
            if let Some(tell) = texts
                .last()
                .and_then(|text| text.trim().strip_prefix("!tell "))
            {
                // `!tell <destination> <text>`: send `text` to another destination (an agent).
                let (to, text) = tell.split_once(' ').unwrap_or((tell, ""));
                return format!("<message to=\"{to}\">{text}</message>");
            }
            if texts.iter().all(|text| text.starts_with("echo: ")) {
                // Echoes of echoes: another mock answering us. Stay quiet, or two mocks that
                // message each other would echo forever.
                return "<internal>not echoing an echo</internal>".to_string();
            }
            let body = if wants_config {
                // `<`/`>` escaped so the JSON cannot close the block early.
                config
                    .to_string()
                    .replace('<', "\\u003c")
                    .replace('>', "\\u003e")
            } else {
                let lines: Vec<String> = texts.iter().map(|text| format!("echo: {text}")).collect();
                lines.join("\n")
            };
            format!("<message to=\"{to}\">{body}</message>")
        }
        _ => format!(
            "Mock response to: {}",
            prompt.chars().take(100).collect::<String>()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container_config::ContainerConfig;

    fn no_tools(name: &str, _: &serde_json::Value) -> String {
        format!("no tool {name}")
    }

    #[test]
    fn tool_command_calls_the_tool_and_answers_with_its_result() {
        let prompt = "<messages>\n<message id=\"1\" from=\"cli\" sender=\"a\" time=\"t\">!tool send_message {\"text\": \"hi\"}</message>\n</messages>";
        let seen = std::cell::RefCell::new(Vec::new());
        let reply = default_reply(prompt, "", &json!({}), &|name, args| {
            seen.borrow_mut().push((name.to_string(), args.clone()));
            "Message sent to cli (id: 3)".to_string()
        });
        assert_eq!(
            reply,
            "<message to=\"cli\">tool send_message: Message sent to cli (id: 3)</message>"
        );
        assert_eq!(
            seen.into_inner(),
            vec![("send_message".to_string(), json!({"text": "hi"}))]
        );
    }

    fn events(q: &mut dyn AgentQuery) -> Vec<Next> {
        let mut out = Vec::new();
        loop {
            match q.next_event(Duration::ZERO) {
                Next::Idle => return out,
                Next::Done => {
                    out.push(Next::Done);
                    return out;
                }
                n => out.push(n),
            }
        }
    }

    fn results(ev: &[Next]) -> Vec<String> {
        ev.iter()
            .filter_map(|n| match n {
                Next::Event(ProviderEvent::Result { text }) => text.clone(),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn produces_init_then_result() {
        let mut p = MockProvider::with_responder(
            ProviderOptions::default(),
            Box::new(|p| Ok(format!("Echo: {p}"))),
        );
        let mut q = p.query(QueryInput {
            prompt: "Hello".into(),
            ..QueryInput::default()
        });
        let ev = events(q.as_mut());
        let kinds: Vec<_> = ev
            .iter()
            .filter(|n| !matches!(n, Next::Event(ProviderEvent::Activity)))
            .collect();
        assert!(
            matches!(kinds[0], Next::Event(ProviderEvent::Init { continuation }) if continuation.starts_with("mock-session-"))
        );
        assert_eq!(results(&ev), vec!["Echo: Hello"]);
    }

    #[test]
    fn handles_push_during_active_query_then_ends() {
        let mut p = MockProvider::with_responder(
            ProviderOptions::default(),
            Box::new(|p| Ok(format!("Re: {p}"))),
        );
        let mut q = p.query(QueryInput {
            prompt: "First".into(),
            ..QueryInput::default()
        });
        q.push("Second");
        q.end();
        let ev = events(q.as_mut());
        assert_eq!(results(&ev), vec!["Re: First", "Re: Second"]);
        assert_eq!(ev.last(), Some(&Next::Done));
    }

    #[test]
    fn default_reply_echoes_every_message_of_the_turn_to_the_newest_origin() {
        let prompt = "<context timezone=\"UTC\" />\n<messages>\n<message id=\"2\" from=\"a\" sender=\"X\" time=\"t\">one</message>\n<message id=\"4\" from=\"b\" sender=\"Y\" time=\"t\">\n  <quoted_message from=\"Z\">q</quoted_message>\nA &amp; B</message>\n</messages>";
        assert_eq!(
            default_reply(prompt, "", &json!({}), &no_tools),
            "<message to=\"b\">echo: one\necho: A & B</message>"
        );
    }

    #[test]
    fn tell_sends_to_another_destination_and_echoes_of_echoes_stay_quiet() {
        let message = |text: &str| {
            format!(
                "<context timezone=\"UTC\" />\n<message id=\"2\" from=\"cli\" sender=\"X\" time=\"t\">{text}</message>"
            )
        };
        assert_eq!(
            default_reply(
                &message("!tell helper what is 2+2?"),
                "",
                &json!({}),
                &no_tools
            ),
            "<message to=\"helper\">what is 2+2?</message>"
        );
        assert_eq!(
            default_reply(&message("echo: what is 2+2?"), "", &json!({}), &no_tools),
            "<internal>not echoing an echo</internal>"
        );
    }

    #[test]
    fn try_answers_with_the_probe_outcome_to_the_origin() {
        // Only an unknown probe here: a real one would act on this machine (probe.rs).
        let prompt = "<context timezone=\"UTC\" />\n<message id=\"2\" from=\"cli\" sender=\"X\" time=\"t\">!try rm-rf</message>";
        assert_eq!(
            default_reply(prompt, "", &json!({}), &no_tools),
            "<message to=\"cli\">try: unknown probe `rm-rf`; probes: mount, chown, write-root, fork-bomb, memory-hog, docker-socket, credential-proxy</message>"
        );
    }

    #[test]
    fn default_reply_falls_back_to_only_destination_and_tasks() {
        let prompt =
            "<context timezone=\"UTC\" />\n<task time=\"t\">Instructions:\nwater plants</task>";
        assert_eq!(
            default_reply(prompt, "Your destination is `casa`.", &json!({}), &no_tools),
            "<message to=\"casa\">echo: water plants</message>"
        );
        assert!(
            default_reply("<system>x</system>", "", &json!({}), &no_tools)
                .starts_with("Mock response to: ")
        );
    }

    /// Issue 9 point 1: a provider gets the whole `container.json` through the registry,
    /// MCP servers included (the hand parser used to drop them).
    #[test]
    fn a_provider_receives_the_whole_config_mcp_servers_included() {
        let config = ContainerConfig {
            provider: "mock".into(),
            mcp_servers: std::collections::BTreeMap::from([(
                "notes".to_string(),
                crate::container_config::McpServer {
                    command: Some("notes-mcp".into()),
                    ..Default::default()
                },
            )]),
            ..ContainerConfig::default()
        };
        let mut p = super::super::create_provider(
            "mock",
            ProviderOptions {
                config,
                workspace: std::path::PathBuf::new(),
                base_url: None,
            },
        )
        .unwrap();
        let mut q = p.query(QueryInput {
            prompt: "<message from=\"a\" sender=\"X\" time=\"t\">/mock-config</message>".into(),
            system_prompt: "<message to=\"name\">…</message>".into(),
            ..QueryInput::default()
        });
        let reply = results(&events(q.as_mut())).remove(0);
        let body = &crate::output::parse(&reply).blocks[0].body;
        let cfg: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(cfg["mcp_servers"], json!(["notes"]));
        assert_eq!(cfg["provider"], "mock");
    }

    #[test]
    fn config_reply_and_turn_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = MockProvider::new(ProviderOptions {
            config: ContainerConfig {
                provider: "mock".into(),
                model: Some("m-1".into()),
                max_messages_per_prompt: 7,
                ..ContainerConfig::default()
            },
            workspace: dir.path().to_path_buf(),
            base_url: None,
        });
        let mut q = p.query(QueryInput {
            prompt: "<message from=\"a\" sender=\"X\" time=\"t\">/mock-config</message>".into(),
            system_prompt: "<message to=\"name\">…</message>".into(),
            ..QueryInput::default()
        });
        let reply = results(&events(q.as_mut())).remove(0);
        let parsed = crate::output::parse(&reply);
        assert_eq!(parsed.blocks.len(), 1);
        let cfg: serde_json::Value = serde_json::from_str(&parsed.blocks[0].body).unwrap();
        assert_eq!(cfg["model"], "m-1");
        assert_eq!(cfg["provider"], "mock");
        let log = std::fs::read_to_string(dir.path().join("outbound/.mock/turns.jsonl")).unwrap();
        let line: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
        assert_eq!(line["max_messages_per_prompt"], 7);
        assert!(line["prompt"].as_str().unwrap().contains("/mock-config"));
    }
}
