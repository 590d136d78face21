//! MCP's stdio transport as JSON-RPC 2.0 (docs/agent-runner.md#tools): one message per line.
//!
//! Requests get exactly one response; notifications (no `id`) and responses from the client
//! get none. Methods: `initialize` (the protocol version the client asked for when this
//! server speaks it, else the newest it speaks; capability `tools`), `ping`, `tools/list`,
//! `tools/call`; anything else is `-32601`. A line that is not JSON is `-32700` with a null id,
//! one that is not a request `-32600`. Calls are handled one at a time, in order (a blocking
//! ask_user_question holds the next call until it returns).

use std::io::{self, BufRead, Read, Write};

use serde_json::{Value, json};
use tracing::{info, warn};

use super::{SERVER_NAME, Tools};

/// Protocol revisions this server speaks, newest first.
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-06-18", "2025-03-26", "2024-11-05"];
/// Longest message line read (a longer one is answered with an error and skipped).
pub const MAX_LINE: usize = 32 * 1024 * 1024;

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;

/// Serves until stdin closes.
pub fn serve(tools: &Tools, mut input: impl BufRead, mut output: impl Write) -> io::Result<()> {
    let names: Vec<&str> = super::tools().map(|tool| tool.name).collect();
    info!(count = names.len(), tools = %names.join(", "), "MCP server started");
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = input
            .by_ref()
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(());
        }
        let answer = if line.len() > MAX_LINE && line.last() != Some(&b'\n') {
            skip_line(&mut input)?;
            Some(error(
                Value::Null,
                INVALID_REQUEST,
                &format!("message longer than {MAX_LINE} bytes"),
            ))
        } else {
            let text = String::from_utf8_lossy(&line);
            if text.trim().is_empty() {
                continue;
            }
            handle(tools, &text)
        };
        if let Some(answer) = answer {
            writeln!(output, "{answer}")?;
            output.flush()?;
        }
    }
}

/// Reads and drops the rest of an overlong line.
fn skip_line(input: &mut impl BufRead) -> io::Result<()> {
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(at) => {
                input.consume(at + 1);
                return Ok(());
            }
            None => {
                let len = buf.len();
                input.consume(len);
            }
        }
    }
}

/// The response to one message, `None` for a notification or a client's response.
pub fn handle(tools: &Tools, text: &str) -> Option<Value> {
    let message: Value = match serde_json::from_str(text) {
        Ok(message) => message,
        Err(err) => {
            return Some(error(
                Value::Null,
                PARSE_ERROR,
                &format!("parse error: {err}"),
            ));
        }
    };
    let Some(object) = message.as_object() else {
        return Some(error(
            Value::Null,
            INVALID_REQUEST,
            "a message is one JSON object (batches are not supported)",
        ));
    };
    let id = object.get("id").cloned();
    let Some(method) = object.get("method").and_then(Value::as_str) else {
        if object.contains_key("result") || object.contains_key("error") {
            return None;
        }
        return Some(error(
            id.unwrap_or(Value::Null),
            INVALID_REQUEST,
            "not a request",
        ));
    };
    let id = id?;
    let params = object.get("params").cloned().unwrap_or(json!({}));
    let result = match method {
        "initialize" => Ok(initialize(&params)),
        "ping" => Ok(json!({})),
        "tools/list" => Ok(list()),
        "tools/call" => call(tools, &params),
        other => Err((METHOD_NOT_FOUND, format!("method not found: {other}"))),
    };
    Some(match result {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err((code, message)) => error(id, code, &message),
    })
}

fn error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

fn initialize(params: &Value) -> Value {
    let asked = params.get("protocolVersion").and_then(Value::as_str);
    let version = asked
        .filter(|asked| PROTOCOL_VERSIONS.contains(asked))
        .unwrap_or(PROTOCOL_VERSIONS[0]);
    json!({
        "protocolVersion": version,
        "capabilities": {"tools": {}},
        "serverInfo": {"name": SERVER_NAME, "version": env!("CARGO_PKG_VERSION")},
    })
}

fn list() -> Value {
    let tools: Vec<Value> = super::tools()
        .map(|tool| {
            json!({
                "name": tool.name,
                "description": tool.description,
                "inputSchema": (tool.schema)(),
            })
        })
        .collect();
    json!({ "tools": tools })
}

fn call(tools: &Tools, params: &Value) -> Result<Value, (i64, String)> {
    let Some(name) = params.get("name").and_then(Value::as_str) else {
        return Err((INVALID_PARAMS, "tools/call needs a tool `name`".into()));
    };
    let args = match params.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(args @ Value::Object(_)) => args.clone(),
        Some(_) => return Err((INVALID_PARAMS, "`arguments` must be an object".into())),
    };
    let (text, is_error) = super::call(tools, name, &args);
    if is_error {
        warn!(tool = name, result = %text.chars().take(200).collect::<String>(), "tool call failed");
    } else {
        info!(tool = name, "tool call");
    }
    Ok(json!({
        "content": [{"type": "text", "text": text}],
        "isError": is_error,
    }))
}
