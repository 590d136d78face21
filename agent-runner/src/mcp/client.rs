//! A minimal MCP client over stdio: starts `agent-runner mcp` as a child process and calls one
//! tool the way Claude Code does (`initialize`, `notifications/initialized`, `tools/call`). The
//! mock provider's `!tool` command uses it, so tests exercise the same JSON-RPC path as Claude.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::rpc::PROTOCOL_VERSIONS;

/// Calls `name` with `args` on the server started as `program mcp` for `workspace`: the
/// result's text and whether it is an error.
pub fn call_tool(
    program: &Path,
    workspace: &Path,
    name: &str,
    args: &Value,
) -> Result<(String, bool), String> {
    let mut child = Command::new(program)
        .arg("mcp")
        .env(crate::env::NANOCLAW_WORKSPACE, workspace)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|err| format!("cannot start `{} mcp`: {err}", program.display()))?;
    let result = (|| {
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut send = |message: Value| {
            writeln!(stdin, "{message}").map_err(|err| format!("writing to the server: {err}"))
        };
        send(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": PROTOCOL_VERSIONS[0],
                "capabilities": {},
                "clientInfo": {"name": "nanoclaw-mock", "version": env!("CARGO_PKG_VERSION")}
            }}),
        )?;
        read_response(&mut stdout, 1)?;
        send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
        send(
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
                "name": name, "arguments": args
            }}),
        )?;
        let response = read_response(&mut stdout, 2)?;
        let result = response
            .get("result")
            .ok_or_else(|| format!("the server answered with an error: {response}"))?;
        let text = result["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Ok((text, result["isError"].as_bool().unwrap_or(false)))
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Reads lines until the response with `id`.
fn read_response(stdout: &mut impl BufRead, id: i64) -> Result<Value, String> {
    let mut line = String::new();
    loop {
        line.clear();
        let read = stdout
            .read_line(&mut line)
            .map_err(|err| format!("reading from the server: {err}"))?;
        if read == 0 {
            return Err("the server closed its output".into());
        }
        let message: Value = serde_json::from_str(&line)
            .map_err(|err| format!("the server wrote something that is not JSON: {err}"))?;
        if message.get("id").and_then(Value::as_i64) == Some(id) {
            return Ok(message);
        }
    }
}
