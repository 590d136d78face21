//! The lenient first pass over a document: a tree of positioned nodes, and the checks that
//! need no types: every unknown key (not just the first, as serde's `deny_unknown_fields`
//! would), and every string's size.
//!
//! Which keys exist is read from the JSON Schema (`schema::definitions`), so the model stays
//! the one declaration of the documents' shape. Pure: no IO; type errors are left to the
//! strict pass in `load`.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::diagnostic::{Diagnostic, did_you_mean};
use super::limits::{MAX_STRING_BYTES, Unit, show};
use super::model::Sp;

/// One YAML node and where it starts (1-based).
#[derive(Debug)]
pub struct Node {
    pub line: u32,
    pub col: u32,
    pub value: NodeValue,
}

#[derive(Debug)]
pub enum NodeValue {
    Map(Vec<(Node, Node)>),
    Seq(Vec<Node>),
    Text(String),
    /// Numbers, booleans and null: their types are the strict pass's concern.
    Other,
}

impl Node {
    /// The text of a string scalar.
    pub fn as_text(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The value under `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            NodeValue::Map(entries) => entries
                .iter()
                .find(|(name, _)| name.as_text() == Some(key))
                .map(|(_, value)| value),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        let spanned = Sp::<NodeValue>::deserialize(deserializer)?;
        Ok(Node {
            line: spanned.line,
            col: spanned.col,
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for NodeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<NodeValue, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = NodeValue;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<NodeValue, E> {
        Ok(NodeValue::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<NodeValue, E> {
        Ok(NodeValue::Other)
    }
    fn visit_i128<E>(self, _: i128) -> Result<NodeValue, E> {
        Ok(NodeValue::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<NodeValue, E> {
        Ok(NodeValue::Other)
    }
    fn visit_u128<E>(self, _: u128) -> Result<NodeValue, E> {
        Ok(NodeValue::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<NodeValue, E> {
        Ok(NodeValue::Other)
    }
    fn visit_str<E>(self, text: &str) -> Result<NodeValue, E> {
        Ok(NodeValue::Text(text.to_string()))
    }
    fn visit_string<E>(self, text: String) -> Result<NodeValue, E> {
        Ok(NodeValue::Text(text))
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<NodeValue, E> {
        Ok(NodeValue::Other)
    }
    fn visit_unit<E>(self) -> Result<NodeValue, E> {
        Ok(NodeValue::Other)
    }
    fn visit_none<E>(self) -> Result<NodeValue, E> {
        Ok(NodeValue::Other)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<NodeValue, D::Error> {
        NodeValue::deserialize(deserializer)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<NodeValue, D::Error> {
        NodeValue::deserialize(deserializer)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(NodeValue::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeValue, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(NodeValue::Map(entries))
    }
}

/// Where the diagnostics of one document go, and what they are about.
pub struct Context<'a> {
    pub file: &'a std::path::Path,
    /// `agent.andy`, when the document's kind and name are known.
    pub address: Option<&'a str>,
    pub diagnostics: &'a mut Vec<Diagnostic>,
}

/// Reports every key of `node` (and below) that `schema` does not allow, and every string
/// longer than [`MAX_STRING_BYTES`]. `definitions` resolves `$ref`s.
pub fn check(node: &Node, schema: &Value, definitions: &Value, context: &mut Context) {
    let schema = resolve(schema, definitions);
    match &node.value {
        NodeValue::Text(text) => check_size(node, text, context),
        NodeValue::Seq(items) => {
            let array = pick(schema, "array", definitions);
            if array.is_none() && pick(schema, "object", definitions).is_some() {
                // serde would read the list as the struct's fields in declaration order.
                let message = "expected a mapping".to_string();
                let hint = "write `key: value` lines below it, or `{key: value}`";
                push(node, message, hint, context);
                return;
            }
            let items_schema = array.and_then(|s| s.get("items"));
            for item in items {
                match items_schema {
                    Some(item_schema) => check(item, item_schema, definitions, context),
                    None => sizes_only(item, context),
                }
            }
        }
        NodeValue::Map(entries) => {
            let Some(object) = pick(schema, "object", definitions) else {
                entries.iter().for_each(|(key, value)| {
                    sizes_only(key, context);
                    sizes_only(value, context);
                });
                return;
            };
            let properties = object.get("properties").and_then(Value::as_object);
            let additional = object.get("additionalProperties");
            for (key, value) in entries {
                sizes_only(key, context);
                let name = key.as_text().unwrap_or_default();
                match (properties.and_then(|p| p.get(name)), additional) {
                    (Some(property), _) => check(value, property, definitions, context),
                    (None, Some(Value::Bool(false))) => {
                        let allowed: Vec<&str> = properties
                            .map(|p| p.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        unknown_key(key, name, &allowed, context);
                        sizes_only(value, context);
                    }
                    (None, Some(additional)) if additional.is_object() => {
                        check(value, additional, definitions, context);
                    }
                    (None, _) => sizes_only(value, context),
                }
            }
        }
        NodeValue::Other => {}
    }
}

/// Reports an unknown key, with "did you mean" among `allowed` (or the list of them).
pub fn unknown_key(key: &Node, name: &str, allowed: &[&str], context: &mut Context) {
    let hint = did_you_mean(name, allowed.iter().copied()).or_else(|| {
        (!allowed.is_empty()).then(|| {
            let listed: Vec<String> = allowed.iter().map(|key| format!("`{key}`")).collect();
            format!("allowed keys here: {}", listed.join(", "))
        })
    });
    let mut diagnostic = Diagnostic::new(
        context.file,
        key.line,
        key.col,
        format!("unknown key `{name}`"),
    )
    .field(name)
    .hint_opt(hint);
    if let Some(address) = context.address {
        diagnostic = diagnostic.address(address);
    }
    context.diagnostics.push(diagnostic);
}

/// Only the string sizes of a subtree the schema says nothing about.
fn sizes_only(node: &Node, context: &mut Context) {
    match &node.value {
        NodeValue::Text(text) => check_size(node, text, context),
        NodeValue::Seq(items) => items.iter().for_each(|item| sizes_only(item, context)),
        NodeValue::Map(entries) => entries.iter().for_each(|(key, value)| {
            sizes_only(key, context);
            sizes_only(value, context);
        }),
        NodeValue::Other => {}
    }
}

fn check_size(node: &Node, text: &str, context: &mut Context) {
    if text.len() <= MAX_STRING_BYTES {
        return;
    }
    let message = format!(
        "this text is {} long; a manifest value may be at most {}",
        show(text.len(), Unit::Bytes),
        show(MAX_STRING_BYTES, Unit::Bytes)
    );
    let hint = "keep long instructions short, or put large files into a mount";
    push(node, message, hint, context);
}

fn push(node: &Node, message: String, hint: &str, context: &mut Context) {
    let mut diagnostic = Diagnostic::new(context.file, node.line, node.col, message).hint(hint);
    if let Some(address) = context.address {
        diagnostic = diagnostic.address(address);
    }
    context.diagnostics.push(diagnostic);
}

/// Follows a `$ref` into the definitions.
fn resolve<'a>(schema: &'a Value, definitions: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference
            .strip_prefix("#/definitions/")
            .and_then(|name| definitions.get(name))
            .unwrap_or(schema),
        None => schema,
    }
}

/// The (sub)schema for a node of JSON type `kind`: the schema itself, or the `anyOf`/`oneOf`
/// variant of that type (an untagged enum such as a role, or an optional value).
fn pick<'a>(schema: &'a Value, kind: &str, definitions: &'a Value) -> Option<&'a Value> {
    let schema = resolve(schema, definitions);
    let is = |schema: &Value| match schema.get("type") {
        Some(Value::String(type_name)) => type_name == kind,
        Some(Value::Array(types)) => types.iter().any(|t| t.as_str() == Some(kind)),
        None => false,
        Some(_) => false,
    };
    if is(schema) {
        return Some(schema);
    }
    let variants = schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)?;
    variants
        .iter()
        .map(|variant| resolve(variant, definitions))
        .find_map(|variant| pick(variant, kind, definitions))
}
