//! The JSON Schema (draft-07) of manifest documents, derived from `model` with each field's
//! default and change effect (from `plan::effect`) in its description.
//!
//! Pure: returns values; the CLI prints and a test keeps `schemas/nanoclaw.schema.json` fresh.

use schemars::generate::SchemaSettings;

use super::model::{AgentDoc, ChannelDoc, UserDoc};

/// The draft-07 JSON Schema of one manifest document: `oneOf` agent, channel, user.
pub fn json_schema() -> serde_json::Value {
    let mut generator = SchemaSettings::draft07().into_generator();
    let agent = generator.subschema_for::<AgentDoc>();
    let channel = generator.subschema_for::<ChannelDoc>();
    let user = generator.subschema_for::<UserDoc>();
    let definitions = generator.take_definitions(true);
    serde_json::json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "nanoclaw manifest document",
        "oneOf": [agent, channel, user],
        "definitions": definitions,
    })
}
