//! Drift: a managed field whose DB value differs from what the last apply wrote (someone
//! changed the DB outside the manifests). Apply reverts it; the plan flags it with `!`.
//!
//! The last-applied spec is `managed_resources.spec_json`, written by `crate::apply`. This
//! module only compares values; it reads nothing.

use serde_json::Value;

/// Whether the DB's `current` value drifted from the last-applied one. `applied` is `None` when
/// the resource has no last-applied spec (never applied: nothing can drift), `Some(None)` when
/// the spec lacks the field.
pub fn is_drift(current: Option<&Value>, applied: Option<Option<&Value>>) -> bool {
    match applied {
        None => false,
        Some(applied) => normalize(applied) != normalize(current),
    }
}

/// Absent and `null` are the same value for drift.
fn normalize(value: Option<&Value>) -> Option<&Value> {
    value.filter(|value| !value.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drift_needs_a_spec_and_a_difference() {
        let db = json!("haiku");
        let spec = json!("sonnet");
        assert!(!is_drift(Some(&db), None), "never applied: no drift");
        assert!(!is_drift(Some(&db), Some(Some(&db))));
        assert!(is_drift(Some(&db), Some(Some(&spec))));
        assert!(!is_drift(Some(&Value::Null), Some(None)));
        assert!(is_drift(Some(&db), Some(None)));
    }
}
