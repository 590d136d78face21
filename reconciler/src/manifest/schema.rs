//! The JSON Schema (draft-07) of manifest documents, derived from `model`, with each field's
//! default and change effect (from the rows of `state::effect`) in its description; and the field
//! reference table of docs/manifests.md, generated from the same walk.
//!
//! Pure: returns values; the CLI prints, and tests keep `schemas/nanoclaw.schema.json` and
//! the docs table fresh.

use std::sync::LazyLock;

use schemars::generate::SchemaSettings;
use serde_json::Value;

use super::model::{AgentDoc, ChannelDoc, UserDoc};
use crate::state::effect;

/// Each kind's document definition in the schema.
const KINDS: &[(&str, &str)] = &[
    ("agent", "AgentDoc"),
    ("channel", "ChannelDoc"),
    ("user", "UserDoc"),
];

/// Definitions of list and map entries, and the effect-table path whose effect they share.
const NESTED: &[(&str, &str)] = &[
    ("McpServerDoc", "agent.mcp_servers"),
    ("MountDoc", "agent.mounts"),
    ("DestinationDoc", "destination"),
    ("ScopedRoleDoc", "role"),
];

/// One documented field: its effect-table path, where it sits in YAML, and its text.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// Effect-table path (`agent.cli_scope`, `wiring.priority`, `destination`).
    pub path: String,
    /// How it is written (`agent: cli_scope`, `channel: wirings[].priority`).
    pub yaml: String,
    pub required: bool,
    pub description: String,
}

/// The draft-07 JSON Schema of one manifest document: `oneOf` agent, channel, user.
pub fn json_schema() -> Value {
    let mut generator = SchemaSettings::draft07().into_generator();
    let agent = generator.subschema_for::<AgentDoc>();
    let channel = generator.subschema_for::<ChannelDoc>();
    let user = generator.subschema_for::<UserDoc>();
    let mut definitions = Value::Object(generator.take_definitions(true));
    for field in fields_of(&definitions) {
        annotate(&mut definitions, &field);
    }
    for (definition, parent) in NESTED {
        annotate_nested(&mut definitions, definition, parent);
    }
    for (kind, definition) in KINDS {
        if let Some(properties) = definitions
            .pointer_mut(&format!("/{definition}/properties"))
            .and_then(Value::as_object_mut)
        {
            properties.insert(
                "kind".to_string(),
                serde_json::json!({"const": kind, "description": format!("Document kind: `{kind}`.")}),
            );
        }
    }
    serde_json::json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "nanoclaw manifest document",
        "description": "One YAML document of a nanoclaw manifest, told apart by `kind`. Reference: docs/manifests.md.",
        "oneOf": [agent, channel, user],
        "definitions": definitions,
    })
}

/// Every field of every kind, with its effect-table path (the walk the schema test checks).
pub fn fields() -> Vec<Field> {
    fields_of(definitions())
}

/// The schema's definitions without descriptions' effect notes, built once: the shape the
/// loader checks keys against (`tree`).
pub fn definitions() -> &'static Value {
    static DEFINITIONS: LazyLock<Value> = LazyLock::new(|| {
        let mut generator = SchemaSettings::draft07().into_generator();
        generator.subschema_for::<AgentDoc>();
        generator.subschema_for::<ChannelDoc>();
        generator.subschema_for::<UserDoc>();
        Value::Object(generator.take_definitions(true))
    });
    &DEFINITIONS
}

/// Every top-level key of any kind (for a document whose kind is missing or unknown).
pub fn document_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = Vec::new();
    for (_, definition) in KINDS {
        if let Some(properties) = definitions()
            .pointer(&format!("/{definition}/properties"))
            .and_then(Value::as_object)
        {
            for key in properties.keys() {
                if !keys.contains(&key.as_str()) {
                    keys.push(key);
                }
            }
        }
    }
    keys
}

/// Walks the kinds' definitions: `channel.wirings[].x` → `wiring.x`, `agent.destinations` →
/// `destination`, `user.roles` → `role`, `user.member_of` → `member`, `agent.packages.x`.
fn fields_of(definitions: &Value) -> Vec<Field> {
    let mut out = Vec::new();
    for (kind, definition) in KINDS {
        for (name, property, required) in properties(definitions, definition) {
            let yaml = format!("{kind}: {name}");
            let path = match (*kind, name.as_str()) {
                (_, "kind") => continue,
                ("agent", "destinations") => "destination".to_string(),
                ("channel", "wirings") => "wiring".to_string(),
                ("user", "roles") => "role".to_string(),
                ("user", "member_of") => "member".to_string(),
                _ => format!("{kind}.{name}"),
            };
            out.push(Field {
                path: path.clone(),
                yaml: yaml.clone(),
                required,
                description: text(property),
            });
            let nested = match (*kind, name.as_str()) {
                ("channel", "wirings") => {
                    Some(("WiringDoc", "wiring", format!("{kind}: wirings[].")))
                }
                ("agent", "packages") => Some((
                    "PackagesDoc",
                    "agent.packages",
                    format!("{kind}: packages."),
                )),
                ("agent", "resources") => Some((
                    "ResourcesDoc",
                    "agent.resources",
                    format!("{kind}: resources."),
                )),
                _ => None,
            };
            if let Some((definition, prefix, yaml_prefix)) = nested {
                for (name, property, required) in properties(definitions, definition) {
                    out.push(Field {
                        path: format!("{prefix}.{name}"),
                        yaml: format!("{yaml_prefix}{name}"),
                        required,
                        description: text(property),
                    });
                }
            }
        }
    }
    out
}

fn properties<'a>(definitions: &'a Value, definition: &str) -> Vec<(String, &'a Value, bool)> {
    let required: Vec<&str> = definitions
        .pointer(&format!("/{definition}/required"))
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    definitions
        .pointer(&format!("/{definition}/properties"))
        .and_then(Value::as_object)
        .map(|properties| {
            properties
                .iter()
                .map(|(name, value)| (name.clone(), value, required.contains(&name.as_str())))
                .collect()
        })
        .unwrap_or_default()
}

fn text(property: &Value) -> String {
    property
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// "Default: … Changing it: <effect> — <why>." for a field.
pub fn default_and_effect(field: &Field) -> String {
    let (effect, why) = effect::of(&field.path);
    let default = if field.required {
        "Required.".to_string()
    } else {
        let default = effect::default_of(&field.path);
        format!("Default: {}.", default.as_deref().unwrap_or("none"))
    };
    format!("{default} Changing it: {effect} — {why}.")
}

fn annotate(definitions: &mut Value, field: &Field) {
    let (kind, rest) = field.yaml.split_once(": ").unwrap_or_default();
    let pointer = if let Some(name) = rest.strip_prefix("wirings[].") {
        format!("/WiringDoc/properties/{name}")
    } else if let Some(name) = rest.strip_prefix("packages.") {
        format!("/PackagesDoc/properties/{name}")
    } else if let Some(name) = rest.strip_prefix("resources.") {
        format!("/ResourcesDoc/properties/{name}")
    } else {
        let definition = KINDS
            .iter()
            .find(|(name, _)| *name == kind)
            .map_or("", |(_, definition)| *definition);
        format!("/{definition}/properties/{rest}")
    };
    if let Some(Value::Object(property)) = definitions.pointer_mut(&pointer) {
        let mut description = text(&Value::Object(property.clone()));
        if !description.is_empty() {
            description.push(' ');
        }
        description.push_str(&default_and_effect(field));
        property.insert("description".to_string(), Value::String(description));
    }
}

/// Appends the parent's change effect to each property of a nested entry's definition.
fn annotate_nested(definitions: &mut Value, definition: &str, parent: &str) {
    let (effect, why) = effect::of(parent);
    let pointer = format!("/{definition}/properties");
    if let Some(Value::Object(properties)) = definitions.pointer_mut(&pointer) {
        for property in properties.values_mut() {
            if let Value::Object(property) = property {
                let mut description = text(&Value::Object(property.clone()));
                if !description.is_empty() {
                    description.push(' ');
                }
                description.push_str(&format!("Changing it: {effect} — {why}."));
                property.insert("description".to_string(), Value::String(description));
            }
        }
    }
}

/// The generated field reference of docs/manifests.md (between the GENERATED markers).
pub fn field_table_markdown() -> String {
    let mut out = String::new();
    let mut current_kind = "";
    for field in fields() {
        let (kind, rest) = field.yaml.split_once(": ").unwrap_or_default();
        if kind != current_kind {
            if !current_kind.is_empty() {
                out.push('\n');
            }
            current_kind = match kind {
                "agent" => "agent",
                "channel" => "channel",
                _ => "user",
            };
            out.push_str(&format!("### `kind: {kind}`\n\n"));
            out.push_str("| field | effect path | default | change effect | description |\n");
            out.push_str("|---|---|---|---|---|\n");
        }
        let (effect, why) = effect::of(&field.path);
        let default = if field.required {
            "required".to_string()
        } else {
            effect::default_of(&field.path).unwrap_or_else(|| "none".to_string())
        };
        let row = format!(
            "| `{rest}` | `{}` | {default} | **{effect}**: {why} | {} |\n",
            field.path,
            field.description.replace('|', "\\|").replace('\n', " ")
        );
        out.push_str(&row);
    }
    out
}

/// Marks where the generated table sits in docs/manifests.md.
pub const DOC_BEGIN: &str = "<!-- BEGIN GENERATED: field table (cargo test rewrites it) -->";
pub const DOC_END: &str = "<!-- END GENERATED -->";

/// `doc` with the text between the markers replaced by the current table.
pub fn refresh_doc(doc: &str) -> Option<String> {
    let (before, rest) = doc.split_once(DOC_BEGIN)?;
    let (_, after) = rest.split_once(DOC_END)?;
    Some(format!(
        "{before}{DOC_BEGIN}\n{}{DOC_END}{after}",
        field_table_markdown()
    ))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn repo(path: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(path)
    }

    /// Rewrites `path` with `fresh` when it differs, then fails so the change is committed.
    #[track_caller]
    fn check_fresh(path: &str, fresh: &str) {
        let file = repo(path);
        let current = std::fs::read_to_string(&file).unwrap_or_default();
        if current != fresh {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, fresh).unwrap();
            panic!("{path} was stale and has been regenerated: review and commit it");
        }
    }

    #[test]
    fn the_checked_in_schema_is_fresh() {
        let fresh = serde_json::to_string_pretty(&json_schema()).unwrap() + "\n";
        check_fresh("schemas/nanoclaw.schema.json", &fresh);
    }

    #[test]
    fn the_docs_field_table_is_fresh() {
        let current = std::fs::read_to_string(repo("docs/manifests.md")).unwrap();
        let fresh = refresh_doc(&current).expect("docs/manifests.md has the GENERATED markers");
        check_fresh("docs/manifests.md", &fresh);
    }

    #[test]
    fn every_schema_field_has_an_effect_row() {
        let fields = fields();
        assert!(
            fields.len() > 30,
            "the walk found too few fields: {}",
            fields.len()
        );
        let missing: Vec<&str> = fields
            .iter()
            .map(|field| field.path.as_str())
            .filter(|path| effect::row_of(path).is_none())
            .collect();
        assert!(
            missing.is_empty(),
            "no row in state::effect::TABLE for: {missing:?}"
        );
    }

    /// The loader finds unknown keys through `additionalProperties: false` (serde ignores
    /// them), so every document and entry struct must carry `#[schemars(deny_unknown_fields)]`.
    #[test]
    fn every_struct_of_the_model_denies_unknown_keys() {
        let definitions = definitions().as_object().unwrap();
        let open: Vec<&String> = definitions
            .iter()
            .filter(|(_, definition)| definition.get("properties").is_some())
            .filter(|(_, definition)| definition["additionalProperties"] != Value::Bool(false))
            .map(|(name, _)| name)
            .collect();
        assert!(
            open.is_empty(),
            "structs that accept unknown keys: {open:?}"
        );
        assert!(definitions.len() > 10);
    }

    #[test]
    fn every_optional_field_documents_its_default() {
        let missing: Vec<String> = fields()
            .into_iter()
            .filter(|field| !field.required && effect::default_of(&field.path).is_none())
            .map(|field| field.path)
            .collect();
        assert!(missing.is_empty(), "no documented default for: {missing:?}");
    }

    #[test]
    fn resource_defaults_are_documented_as_declared() {
        use crate::resources::{DEFAULT_CPUS, DEFAULT_MEMORY, DEFAULT_PIDS};
        for (path, value) in [
            ("agent.resources.memory", DEFAULT_MEMORY.to_string()),
            ("agent.resources.cpus", DEFAULT_CPUS.to_string()),
            ("agent.resources.pids", DEFAULT_PIDS.to_string()),
        ] {
            let documented = effect::default_of(path).unwrap();
            assert!(
                documented.starts_with(&format!("`{value}`")),
                "{path}: documented `{documented}`, declared `{value}`"
            );
        }
        use crate::resources::{MAX_PIDS, MIN_CPUS, MIN_MEMORY, MIN_PIDS};
        let schema = json_schema();
        let description = |field: &str| {
            schema
                .pointer(&format!(
                    "/definitions/ResourcesDoc/properties/{field}/description"
                ))
                .and_then(Value::as_str)
                .unwrap()
                .to_string()
        };
        assert!(description("memory").contains(&format!("at least `{MIN_MEMORY}`")));
        assert!(description("cpus").contains(&format!("at least `{MIN_CPUS}`")));
        assert!(description("pids").contains(&format!("{MIN_PIDS} to {MAX_PIDS}")));
    }

    #[test]
    fn descriptions_state_default_and_effect() {
        let schema = json_schema();
        let description = schema
            .pointer("/definitions/AgentDoc/properties/cli_scope/description")
            .and_then(Value::as_str)
            .unwrap();
        assert!(
            description.contains("Default: `group`. Changing it: none — "),
            "{description}"
        );
        let wiring = schema
            .pointer("/definitions/WiringDoc/properties/engage_mode/description")
            .and_then(Value::as_str)
            .unwrap();
        assert!(
            wiring.contains("Default: `mention`. Changing it: none"),
            "{wiring}"
        );
        assert_eq!(schema["oneOf"].as_array().unwrap().len(), 3);
    }
}
