//! The manifest edit of self-modification (docs/manifests.md#changes-written-by-nanoclaw): an
//! approved `install_packages` or `add_mcp_server` is written into the text of the file that
//! declares the agent, keeping every comment, blank line and style choice of the rest of it.
//!
//! Pure: [`edit`] takes the file's text and returns the new text; reading, validating the
//! edited set, writing and committing are `ops::self_modify`'s. The file is cut into its YAML
//! documents at `---` lines and only the agent's document is edited, with `yamlpatch`
//! (comment-preserving patch operations on a tree-sitter parse). Where yamlpatch 1.25 is wrong
//! or silent (appending to a flow list, a nested mapping as a new value), the new text is
//! spliced in here: lists in flow style get `, name` before their `]`; a new key gets a
//! one-line flow value. Every edit is checked by parsing the result again: the document must
//! hold exactly what was asked, or [`edit`] fails and nothing is written.
//!
//! [`add_entry`] is the edit of `nanoclaw adopt`: a destination, role or membership made at
//! runtime for an agent or user the manifests declare becomes an entry of that document's
//! `destinations`, `roles` or `member_of` list, with the same machinery and the same check.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use serde_json::Value;
use yamlpatch::{Op, Patch, Style};
use yamlpath::{Component, Document, Route};

mod entry;

pub use self::entry::add_entry;

/// What an approved request adds to an agent (stored in the approval's payload).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "field", rename_all = "snake_case")]
pub enum Change {
    /// Names for `packages.apt` and `packages.npm` (names already listed are skipped).
    Packages { apt: Vec<String>, npm: Vec<String> },
    /// `mcp_servers.<name>`, replacing a server of that name.
    McpServer {
        name: String,
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
    },
}

/// The edited text, and whether it differs (everything asked may be there already).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edited {
    pub text: String,
    pub changed: bool,
}

/// Why a file could not be edited; the caller tells the agent and the approver, with the
/// change to make by hand.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("no `kind: agent` document with `name: {0}` in the file")]
    NoDocument(String),
    #[error("no `kind: user` document with `id: {0}` in the file")]
    NoUserDocument(String),
    #[error("the document cannot be edited automatically: {0}")]
    Unsupported(String),
}

/// Adds `change` to the document of agent `agent` in `text` (see the module comment).
pub fn edit(text: &str, agent: &str, change: &Change) -> Result<Edited, PatchError> {
    let range = agent_document(text, agent)?;
    let before = &text[range.clone()];
    let after = match change {
        Change::Packages { apt, npm } => {
            let mut edited = before.to_string();
            for (key, names) in [("apt", apt), ("npm", npm)] {
                edited = add_packages(&edited, key, names)?;
            }
            edited
        }
        Change::McpServer { name, .. } => add_server(before, name, change)?,
    };
    check(&after, change)?;
    let mut out = String::with_capacity(text.len() + after.len() - before.len());
    out.push_str(&text[..range.start]);
    out.push_str(&after);
    out.push_str(&text[range.end..]);
    Ok(Edited {
        changed: out != text,
        text: out,
    })
}

/// A unified diff of the edit, for the approver to apply by hand where nanoclaw may not write.
pub fn unified_diff(file: &str, before: &str, after: &str) -> String {
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(2)
        .header(&format!("a/{file}"), &format!("b/{file}"))
        .to_string()
}

/// The byte ranges of the file's YAML documents: a new one starts at each line that is a
/// document marker (`---` alone or followed by a space). Such a line is a marker wherever it
/// is (YAML forbids it inside scalars), so no parse is needed to cut the file.
fn documents(text: &str) -> Vec<Range<usize>> {
    let mut starts = vec![0];
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let marker = line
            .strip_prefix("---")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']));
        if marker && offset > 0 {
            starts.push(offset);
        }
        offset += line.len();
    }
    let mut ranges: Vec<Range<usize>> = starts.windows(2).map(|pair| pair[0]..pair[1]).collect();
    ranges.push(starts[starts.len() - 1]..text.len());
    ranges
}

/// The range of the document `kind: agent`, `name: <agent>`.
fn agent_document(text: &str, agent: &str) -> Result<Range<usize>, PatchError> {
    find_document(text, "agent", "name", agent)
        .ok_or_else(|| PatchError::NoDocument(agent.to_string()))
}

/// The range of the first document `kind: <kind>` whose `<key>` is `name`.
fn find_document(text: &str, kind: &str, key: &str, name: &str) -> Option<Range<usize>> {
    documents(text).into_iter().find(|range| {
        let value = parse(&text[range.clone()]);
        value["kind"] == kind && value[key] == name
    })
}

/// The document as JSON (`Null` when it does not parse: it is then no agent's).
fn parse(document: &str) -> Value {
    serde_saphyr::from_str::<Value>(document).unwrap_or(Value::Null)
}

fn route<'a>(keys: &[&'a str]) -> Route<'a> {
    Route::from(
        keys.iter()
            .map(|key| Component::Key(Cow::Borrowed(*key)))
            .collect::<Vec<_>>(),
    )
}

fn unsupported(why: impl std::fmt::Display) -> PatchError {
    PatchError::Unsupported(why.to_string())
}

/// Adds `names` to `packages.<key>` of one document's text.
fn add_packages(text: &str, key: &str, names: &[String]) -> Result<String, PatchError> {
    let value = parse(text);
    let listed: Vec<&str> = value["packages"][key]
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // `jq=1.6` (apt) and `left-pad@1.3.0` (npm) are pinned forms of a name already there.
    let base = |entry: &str| -> String {
        let cut = match key {
            "apt" => entry.split('=').next(),
            _ => entry
                .char_indices()
                .skip(1)
                .find(|(_, c)| *c == '@')
                .map(|(at, _)| &entry[..at]),
        };
        cut.unwrap_or(entry).to_string()
    };
    let mut new: Vec<&String> = Vec::new();
    for name in names {
        if !listed.iter().any(|entry| base(entry) == *name) && !new.contains(&name) {
            new.push(name);
        }
    }
    if new.is_empty() {
        return Ok(text.to_string());
    }
    let flow_list = || {
        let items: Vec<String> = new.iter().map(|name| scalar(name)).collect();
        format!("[{}]", items.join(", "))
    };
    let doc = document(text)?;
    if value.get("packages").is_none_or(Value::is_null) {
        if value.get("packages").is_some() {
            return Err(unsupported(
                "`packages` is present but empty; give it a value",
            ));
        }
        return add_key(
            &doc,
            &[],
            "packages",
            &format!("{{{key}: {}}}", flow_list()),
        );
    }
    if !value["packages"].is_object() {
        return Err(unsupported("`packages` is not a mapping"));
    }
    if value["packages"].get(key).is_none() {
        return add_key(&doc, &["packages"], key, &flow_list());
    }
    if !value["packages"][key].is_array() {
        return Err(unsupported(format!("`packages.{key}` is not a list")));
    }
    let list = route(&["packages", key]);
    let feature = doc
        .query_exact(&list)
        .map_err(unsupported)?
        .ok_or_else(|| unsupported(format!("`packages.{key}` has no value")))?;
    match Style::from_feature(&feature, &doc) {
        Style::BlockSequence => {
            let patches: Vec<Patch> = new
                .iter()
                .map(|name| Patch {
                    route: list.clone(),
                    operation: Op::Append {
                        value: yaml_serde::Value::String((*name).clone()),
                    },
                })
                .collect();
            yamlpatch::apply_yaml_patches(&doc, &patches)
                .map(|doc| doc.source().to_string())
                .map_err(unsupported)
        }
        Style::FlowSequence | Style::MultilineFlowSequence => {
            let (start, end) = feature.location.byte_span;
            let items: Vec<String> = new.iter().map(|name| scalar(name)).collect();
            splice_flow_list(text, start..end, &items.join(", "))
        }
        other => Err(unsupported(format!(
            "`packages.{key}` is written in a style this edit does not handle ({other:?})"
        ))),
    }
}

/// Inserts `items` (already YAML) before the closing `]` of the flow list at `span`.
fn splice_flow_list(text: &str, span: Range<usize>, items: &str) -> Result<String, PatchError> {
    let list = &text[span.clone()];
    let close = list
        .rfind(']')
        .ok_or_else(|| unsupported("a flow list without its `]`"))?;
    let inner = &list[1..close];
    let trimmed = inner.trim_end();
    let insert = if trimmed.trim().is_empty() {
        items.to_string()
    } else if trimmed.ends_with(',') {
        format!(" {items},")
    } else {
        format!(", {items}")
    };
    let at = if trimmed.trim().is_empty() {
        span.start + 1
    } else {
        span.start + 1 + trimmed.len()
    };
    let mut out = text.to_string();
    out.insert_str(at, &insert);
    Ok(out)
}

/// Adds or replaces `mcp_servers.<name>` in one document's text.
fn add_server(text: &str, name: &str, change: &Change) -> Result<String, PatchError> {
    let value = parse(text);
    let rendered = server(change);
    let servers = &value["mcp_servers"];
    let doc = document(text)?;
    match servers {
        Value::Null if value.get("mcp_servers").is_some() => Err(unsupported(
            "`mcp_servers` is present but empty; give it a value",
        )),
        Value::Null => add_key(
            &doc,
            &[],
            "mcp_servers",
            &format!("{{{}: {rendered}}}", key_text(name)),
        ),
        Value::Object(map) => match map.get(name) {
            None => add_key(&doc, &["mcp_servers"], &key_text(name), &rendered),
            Some(existing) if *existing == server_json(change) => Ok(text.to_string()),
            Some(_) => {
                // v2 overwrites a server of the same name; the approver saw that on the card.
                let placeholder = placeholder(text)?;
                let patch = Patch {
                    route: route(&["mcp_servers", name]),
                    operation: Op::Replace(yaml_serde::Value::String(placeholder.clone())),
                };
                let patched = yamlpatch::apply_yaml_patches(&doc, &[patch]).map_err(unsupported)?;
                substitute(patched.source(), &placeholder, &rendered)
            }
        },
        _ => Err(unsupported("`mcp_servers` is not a mapping")),
    }
}

/// Adds `key` to the mapping at `parent` with a placeholder value (yamlpatch finds the place,
/// the indentation and the style), then puts `value_text` in the placeholder's place.
fn add_key(
    doc: &Document,
    parent: &[&str],
    key: &str,
    value_text: &str,
) -> Result<String, PatchError> {
    let placeholder = placeholder(doc.source())?;
    let patch = Patch {
        route: route(parent),
        operation: Op::Add {
            key: key.to_string(),
            value: yaml_serde::Value::String(placeholder.clone()),
        },
    };
    let patched = yamlpatch::apply_yaml_patches(doc, &[patch]).map_err(unsupported)?;
    substitute(patched.source(), &placeholder, value_text)
}

fn placeholder(text: &str) -> Result<String, PatchError> {
    let placeholder = "nanoclaw-placeholder-5e1f-m0d".to_string();
    if text.contains(&placeholder) {
        return Err(unsupported(
            "the document holds nanoclaw's placeholder text",
        ));
    }
    Ok(placeholder)
}

fn substitute(text: &str, placeholder: &str, value_text: &str) -> Result<String, PatchError> {
    if text.matches(placeholder).count() != 1 {
        return Err(unsupported("the edit did not land once"));
    }
    Ok(text.replacen(placeholder, value_text, 1))
}

fn document(text: &str) -> Result<Document, PatchError> {
    Document::new(text).map_err(unsupported)
}

/// A YAML scalar for `text`: plain when that reads back as the same string, else a JSON
/// string (a valid YAML double-quoted scalar; the text was checked to hold no control
/// characters).
fn scalar(text: &str) -> String {
    let plain = text.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
        && !matches!(
            text,
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        text.to_string()
    } else {
        Value::String(text.to_string()).to_string()
    }
}

/// A mapping key: as [`scalar`], also allowing upper case and a leading digit or `_`.
fn key_text(key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        && !key.bytes().all(|b| b.is_ascii_digit())
        && key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && !matches!(
            key.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        key.to_string()
    } else {
        Value::String(key.to_string()).to_string()
    }
}

/// The server as a one-line flow mapping: `{command: …, args: […], env: {…}}`.
fn server(change: &Change) -> String {
    let Change::McpServer {
        command, args, env, ..
    } = change
    else {
        return String::new();
    };
    let args: Vec<String> = args.iter().map(|arg| scalar(arg)).collect();
    let env: Vec<String> = env
        .iter()
        .map(|(key, value)| format!("{}: {}", key_text(key), scalar(value)))
        .collect();
    let mut parts = vec![format!("command: {}", scalar(command))];
    if !args.is_empty() {
        parts.push(format!("args: [{}]", args.join(", ")));
    }
    if !env.is_empty() {
        parts.push(format!("env: {{{}}}", env.join(", ")));
    }
    format!("{{{}}}", parts.join(", "))
}

/// The server as the parsed document holds it after [`server`] was written.
fn server_json(change: &Change) -> Value {
    let Change::McpServer {
        command, args, env, ..
    } = change
    else {
        return Value::Null;
    };
    let mut map = serde_json::Map::new();
    map.insert("command".into(), Value::String(command.clone()));
    if !args.is_empty() {
        map.insert("args".into(), serde_json::json!(args));
    }
    if !env.is_empty() {
        map.insert("env".into(), serde_json::json!(env));
    }
    Value::Object(map)
}

/// The edited document must parse and hold what was asked.
fn check(after: &str, change: &Change) -> Result<(), PatchError> {
    let value = parse(after);
    if value.is_null() {
        return Err(unsupported("the edited document does not parse"));
    }
    let holds = match change {
        Change::Packages { apt, npm } => [("apt", apt), ("npm", npm)].iter().all(|(key, names)| {
            let listed = value["packages"][key].as_array();
            names.iter().all(|name| {
                listed.is_some_and(|items| {
                    items.iter().filter_map(Value::as_str).any(|entry| {
                        entry == name
                            || entry
                                .strip_prefix(name.as_str())
                                .is_some_and(|rest| rest.starts_with('=') || rest.starts_with('@'))
                    })
                })
            })
        }),
        Change::McpServer { name, .. } => value["mcp_servers"][name] == server_json(change),
    };
    if holds {
        Ok(())
    } else {
        Err(unsupported(
            "the edited document does not hold the change (an unusual layout, such as a comment inside a flow list)",
        ))
    }
}

#[cfg(test)]
#[path = "patch_tests.rs"]
mod tests;
