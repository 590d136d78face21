//! The prompt formatter (docs/agent-runner.md#prompt-format); slash-command categories come from
//! `commands`.
//!
//! Pure: rows + destinations + zone in, text out. XML-escapes every attribute and chat text;
//! task prompts, script output, webhook payloads and system results are passed through as-is.

use serde_json::Value;

use crate::session_db::container::InboundRow;
use crate::session_db::{Content, DestinationRow, Kind};
use crate::timezone::format_local_time;
use crate::{commands, destinations};

/// Escapes `& < > "` (apostrophes untouched).
pub fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Parses a row's content; non-JSON content becomes `{"text": <raw>}`.
pub fn content_json(content: &str) -> Value {
    match serde_json::from_str::<Value>(content) {
        Ok(v @ Value::Object(_)) => v,
        _ => serde_json::json!({ "text": content }),
    }
}

/// The chat text of a row (`content.text`, or the raw content when not JSON).
pub fn message_text(content: &str) -> String {
    Content::parse(content).text.unwrap_or_default()
}

fn is_chat(row: &InboundRow) -> bool {
    row.kind.is_chat()
}

/// A `/clear` chat row. Deliberate change (runner quirk 17,
/// docs/agent-runner.md#decisions-on-the-quirks-of-reference-13): exact match of the trimmed,
/// lowercased text, so `/clearance` or `/clear now` do not wipe the session.
pub fn is_clear_command(row: &InboundRow) -> bool {
    is_chat(row) && message_text(&row.content).trim().to_lowercase() == "/clear"
}

/// A chat row the runner treats as a command (admin or passthrough category).
pub fn is_runner_command(row: &InboundRow) -> bool {
    is_chat(row) && commands::category(&message_text(&row.content)).is_runner_command()
}

/// Formats rows as the prompt: timezone header, then chat block, tasks, webhooks, system rows.
pub fn format_messages(rows: &[InboundRow], dests: &[DestinationRow], tz: &str) -> String {
    let mut groups = Vec::new();
    let chats: Vec<_> = rows.iter().filter(|r| is_chat(r)).collect();
    match chats.as_slice() {
        [] => {}
        [one] => groups.push(chat_element(one, dests, tz)),
        many => {
            let lines: Vec<_> = many.iter().map(|r| chat_element(r, dests, tz)).collect();
            groups.push(format!("<messages>\n{}\n</messages>", lines.join("\n")));
        }
    }
    for kind in [Kind::Task, Kind::Webhook, Kind::System] {
        for row in rows.iter().filter(|r| r.kind == kind) {
            groups.push(match kind {
                Kind::Task => task_element(row, dests, tz),
                Kind::Webhook => webhook_element(row, dests),
                _ => system_element(row, dests),
            });
        }
    }
    format!(
        "<context timezone=\"{}\" />\n{}",
        escape_xml(tz),
        groups.join("\n\n")
    )
}

/// Formats the initial batch; with a native-slash-command provider each command row is sent as
/// its raw text and the rows between commands as separate formatted chunks
/// (docs/agent-runner.md#prompt-format).
pub fn format_with_commands(
    rows: &[InboundRow],
    dests: &[DestinationRow],
    tz: &str,
    native_commands: bool,
) -> String {
    if !native_commands {
        return format_messages(rows, dests, tz);
    }
    let mut parts = Vec::new();
    let mut chunk: Vec<InboundRow> = Vec::new();
    for row in rows {
        if is_runner_command(row) {
            if !chunk.is_empty() {
                parts.push(format_messages(&chunk, dests, tz));
                chunk.clear();
            }
            parts.push(message_text(&row.content).trim().to_string());
        } else {
            chunk.push(row.clone());
        }
    }
    if !chunk.is_empty() {
        parts.push(format_messages(&chunk, dests, tz));
    }
    parts.join("\n\n")
}

/// ` from="…"` for a row's address (docs/agent-runner.md#prompt-format), empty when it has none.
fn origin(row: &InboundRow, dests: &[DestinationRow]) -> String {
    let (ct, pid) = (row.channel_type.as_deref(), row.platform_id.as_deref());
    if let Some(d) = destinations::by_routing(dests, ct, pid) {
        return format!(" from=\"{}\"", escape_xml(&d.name));
    }
    if ct.is_none() && pid.is_none() {
        return String::new();
    }
    let raw = format!("unknown:{}:{}", ct.unwrap_or(""), pid.unwrap_or(""));
    format!(" from=\"{}\"", escape_xml(&raw))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    cur.as_str().filter(|s| !s.is_empty())
}

fn chat_element(row: &InboundRow, dests: &[DestinationRow], tz: &str) -> String {
    let c = content_json(&row.content);
    let mut el = String::from("<message");
    if let Some(seq) = row.seq {
        el.push_str(&format!(" id=\"{seq}\""));
    }
    el.push_str(&origin(row, dests));
    let sender = str_at(&c, &["sender"])
        .or_else(|| str_at(&c, &["author", "fullName"]))
        .or_else(|| str_at(&c, &["author", "userName"]))
        .unwrap_or("Unknown");
    el.push_str(&format!(" sender=\"{}\"", escape_xml(sender)));
    let time = format_local_time(&row.timestamp, tz);
    el.push_str(&format!(" time=\"{}\"", escape_xml(&time)));
    let reply = c.get("replyTo").filter(|r| r.is_object());
    if let Some(id) = reply.and_then(|r| r.get("id")).filter(|v| !v.is_null()) {
        let id = id.as_str().map_or_else(|| id.to_string(), str::to_string);
        el.push_str(&format!(" reply_to=\"{}\"", escape_xml(&id)));
    }
    el.push('>');
    if let Some(r) = reply
        && let (Some(s), Some(t)) = (str_at(r, &["sender"]), str_at(r, &["text"]))
    {
        el.push_str(&format!(
            "\n  <quoted_message from=\"{}\">{}</quoted_message>\n",
            escape_xml(s),
            escape_xml(t)
        ));
    }
    el.push_str(&escape_xml(
        c.get("text").and_then(Value::as_str).unwrap_or(""),
    ));
    if let Some(list) = c
        .get("attachments")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
    {
        let lines: Vec<_> = list.iter().map(attachment_line).collect();
        el.push('\n');
        el.push_str(&lines.join("\n"));
    }
    el.push_str("</message>");
    el
}

fn attachment_line(a: &Value) -> String {
    let name = str_at(a, &["name"])
        .or_else(|| str_at(a, &["filename"]))
        .unwrap_or("attachment");
    let kind = str_at(a, &["type"]).unwrap_or("file");
    let (name, kind) = (escape_xml(name), escape_xml(kind));
    if let Some(path) = str_at(a, &["localPath"]) {
        format!(
            "[{kind}: {name} — saved to /workspace/{}]",
            escape_xml(path)
        )
    } else if let Some(url) = str_at(a, &["url"]) {
        format!("[{kind}: {name} ({})]", escape_xml(url))
    } else {
        format!("[{kind}: {name}]")
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

fn task_element(row: &InboundRow, dests: &[DestinationRow], tz: &str) -> String {
    let c = content_json(&row.content);
    let mut lines = Vec::new();
    if let Some(out) = c.get("scriptOutput").filter(|v| is_truthy(v)) {
        lines.extend(["Script output:".to_string(), pretty(out), String::new()]);
    }
    lines.push("Instructions:".into());
    lines.push(c.get("prompt").and_then(Value::as_str).unwrap_or("").into());
    let time = escape_xml(&format_local_time(&row.timestamp, tz));
    format!(
        "<task{} time=\"{time}\">{}</task>",
        origin(row, dests),
        lines.join("\n")
    )
}

fn webhook_element(row: &InboundRow, dests: &[DestinationRow]) -> String {
    let c = content_json(&row.content);
    let source = escape_xml(str_at(&c, &["source"]).unwrap_or("unknown"));
    let event = escape_xml(str_at(&c, &["event"]).unwrap_or("unknown"));
    let payload = pretty(c.get("payload").unwrap_or(&c));
    format!(
        "<webhook{} source=\"{source}\" event=\"{event}\">{payload}</webhook>",
        origin(row, dests)
    )
}

fn system_element(row: &InboundRow, dests: &[DestinationRow]) -> String {
    let c = content_json(&row.content);
    let action = escape_xml(str_at(&c, &["action"]).unwrap_or("unknown"));
    let status = escape_xml(str_at(&c, &["status"]).unwrap_or("unknown"));
    let result = c.get("result").cloned().unwrap_or(Value::Null).to_string();
    format!(
        "<system_response{} action=\"{action}\" status=\"{status}\">{result}</system_response>",
        origin(row, dests)
    )
}

#[cfg(test)]
mod tests;
