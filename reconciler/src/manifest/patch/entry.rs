//! The list entries of `nanoclaw adopt` (docs/runtime.md#rows-made-at-runtime): a destination,
//! role or membership made at runtime for an agent or user the manifests declare is added to
//! that document's `destinations`, `roles` or `member_of` list in place, with the helpers and
//! the re-parse check of the parent module. Pure, like it: text in, text out.

use std::ops::Range;

use serde_json::Value;
use yamlpatch::Style;

use super::{
    Edited, PatchError, add_key, agent_document, document, find_document, parse, route, scalar,
    splice_flow_list, unsupported,
};
use crate::state::{DestinationTarget, Resource};

/// One list entry [`add_entry`] writes: where, as YAML text, and how to recognise it.
struct Entry {
    /// The list's key in the document: `destinations`, `roles` or `member_of`.
    key: &'static str,
    /// The entry as YAML text (a flow mapping or a plain scalar).
    text: String,
    /// The entry as the parsed document holds it, in [`Entry::normal`] form.
    value: Value,
    /// An entry with this identity but another value is a conflict (a destination's name).
    identity: fn(&Value) -> Value,
    /// Brings an entry as written into a comparable form (`admin` = `{role: admin}`).
    normal: fn(&Value) -> Value,
}

/// Adds `row`, a destination, role or membership, to the document that declares its agent (a
/// destination) or user (a role, a membership) in `text`: a `- { name: N, agent: A }` (or
/// `channel: C`), `- owner`, `- { role: admin, agent: A }` or `- A` entry, appended to a block
/// list, spliced into a flow list, or a new flow list when the key is missing. An entry that
/// is already there is not added again; one of the same name with another target is an error.
pub fn add_entry(text: &str, row: &Resource) -> Result<Edited, PatchError> {
    let (range, entry) = match row {
        Resource::Destination(destination) => {
            let range = agent_document(text, &destination.agent)?;
            let (target_key, target) = match &destination.target {
                DestinationTarget::Agent(agent) => ("agent", agent),
                DestinationTarget::Channel(channel) => ("channel", channel),
            };
            let entry = Entry {
                key: "destinations",
                text: format!(
                    "{{ name: {}, {target_key}: {} }}",
                    scalar(&destination.local_name),
                    scalar(target)
                ),
                value: serde_json::json!({"name": destination.local_name, target_key: target}),
                identity: |entry| entry["name"].clone(),
                normal: Value::clone,
            };
            (range, entry)
        }
        Resource::Role(role) => {
            let (entry_text, value) = match &role.agent {
                None => (
                    role.role.as_str().to_string(),
                    serde_json::json!({"role": role.role.as_str()}),
                ),
                Some(agent) => (
                    format!(
                        "{{ role: {}, agent: {} }}",
                        role.role.as_str(),
                        scalar(agent)
                    ),
                    serde_json::json!({"role": role.role.as_str(), "agent": agent}),
                ),
            };
            let entry = Entry {
                key: "roles",
                text: entry_text,
                value,
                identity: Value::clone,
                normal: |entry| match entry {
                    Value::String(role) => serde_json::json!({ "role": role }),
                    Value::Object(map) if map.get("agent").is_some_and(Value::is_null) => {
                        serde_json::json!({ "role": map.get("role") })
                    }
                    other => other.clone(),
                },
            };
            (user_document(text, &role.user)?, entry)
        }
        Resource::Member(member) => {
            let entry = Entry {
                key: "member_of",
                text: scalar(&member.agent),
                value: Value::String(member.agent.clone()),
                identity: Value::clone,
                normal: Value::clone,
            };
            (user_document(text, &member.user)?, entry)
        }
        other => {
            return Err(unsupported(format!(
                "`{}` is not a list entry this edit adds",
                other.address()
            )));
        }
    };
    let before = &text[range.clone()];
    let after = add_list_entry(before, &entry)?;
    if !holds_only_entry(&parse(before), &parse(&after), &entry) {
        return Err(unsupported(
            "the edited document does not hold the entry (an unusual layout, such as a comment inside a flow list)",
        ));
    }
    let mut out = String::with_capacity(text.len() + after.len() - before.len());
    out.push_str(&text[..range.start]);
    out.push_str(&after);
    out.push_str(&text[range.end..]);
    Ok(Edited {
        changed: out != text,
        text: out,
    })
}

/// The range of the document `kind: user`, `id: <user>`.
fn user_document(text: &str, user: &str) -> Result<Range<usize>, PatchError> {
    find_document(text, "user", "id", user).ok_or_else(|| PatchError::NoUserDocument(user.into()))
}

/// Whether the document's list holds `entry`.
fn holds_entry(value: &Value, entry: &Entry) -> bool {
    value[entry.key]
        .as_array()
        .is_some_and(|items| items.iter().any(|item| (entry.normal)(item) == entry.value))
}

/// Whether `after` is `before` with at most `entry` appended to its list: the document must
/// hold the entry and have changed in no other way.
fn holds_only_entry(before: &Value, after: &Value, entry: &Entry) -> bool {
    if after.is_null() || !holds_entry(after, entry) {
        return false;
    }
    let (Some(before_map), Some(after_map)) = (before.as_object(), after.as_object()) else {
        return false;
    };
    let mut rest = after_map.clone();
    let list = rest.remove(entry.key);
    let mut before_rest = before_map.clone();
    let before_list = before_rest.remove(entry.key);
    if rest != before_rest {
        return false;
    }
    let before_items = before_list
        .as_ref()
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match list.as_ref().and_then(Value::as_array) {
        Some(items) if *items == before_items => true,
        Some(items) => {
            items.len() == before_items.len() + 1
                && items[..before_items.len()] == before_items[..]
                && (entry.normal)(&items[before_items.len()]) == entry.value
        }
        None => false,
    }
}

/// Appends `entry` to its list in one document's text (see [`add_entry`]).
fn add_list_entry(text: &str, entry: &Entry) -> Result<String, PatchError> {
    let key = entry.key;
    let value = parse(text);
    if holds_entry(&value, entry) {
        return Ok(text.to_string());
    }
    let listed = value[key].as_array().map(Vec::as_slice).unwrap_or_default();
    let identity = (entry.identity)(&entry.value);
    if listed
        .iter()
        .any(|item| (entry.identity)(&(entry.normal)(item)) == identity)
    {
        let name = identity
            .as_str()
            .map_or(identity.to_string(), str::to_string);
        return Err(unsupported(format!(
            "`{key}` already has an entry `{name}` that differs from `{}`",
            entry.text
        )));
    }
    let doc = document(text)?;
    match value.get(key) {
        None => return add_key(&doc, &[], key, &format!("[{}]", entry.text)),
        Some(Value::Null) => {
            return Err(unsupported(format!(
                "`{key}` is present but empty; give it a value"
            )));
        }
        Some(Value::Array(_)) => {}
        Some(_) => return Err(unsupported(format!("`{key}` is not a list"))),
    }
    let list = route(&[key]);
    let feature = doc
        .query_exact(&list)
        .map_err(unsupported)?
        .ok_or_else(|| unsupported(format!("`{key}` has no value")))?;
    match Style::from_feature(&feature, &doc) {
        Style::BlockSequence => {
            let (start, end) = feature.location.byte_span;
            splice_block_list(text, start..end, &entry.text)
        }
        Style::FlowSequence | Style::MultilineFlowSequence => {
            let (start, end) = feature.location.byte_span;
            splice_flow_list(text, start..end, &entry.text)
        }
        other => Err(unsupported(format!(
            "`{key}` is written in a style this edit does not handle ({other:?})"
        ))),
    }
}

/// Adds `- item` after the last item of the block list at `span`, at the list's indentation.
/// Not yamlpatch's append: at the end of a document it drops the blank lines after the list.
/// The span runs on over the comments and blank lines that follow the list; they stay after
/// the new item, where they were.
fn splice_block_list(text: &str, span: Range<usize>, item: &str) -> Result<String, PatchError> {
    let line_start = text[..span.start].rfind('\n').map_or(0, |at| at + 1);
    let indent = &text[line_start..span.start];
    if !indent.bytes().all(|b| b == b' ') {
        return Err(unsupported("a block list that does not start its line"));
    }
    let mut end = span.start;
    let mut offset = span.start;
    for line in text[span.clone()].split_inclusive('\n') {
        let content = line.trim();
        offset += line.len();
        if !content.is_empty() && !content.starts_with('#') {
            end = offset;
        }
    }
    let mut out = text.to_string();
    if end > 0 && !out[..end].ends_with('\n') {
        out.insert(end, '\n');
        end += 1;
    }
    out.insert_str(end, &format!("{indent}- {item}\n"));
    Ok(out)
}
