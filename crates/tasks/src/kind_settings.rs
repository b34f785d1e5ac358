//! The helper every task kind uses to export its settings' JSON Schema
//! (reading them is `KindSettings::checked`, every problem at its key).

/// JSON Schema of a settings struct (or record type), as a JSON value.
pub(crate) fn schema<T: schemars::JsonSchema>() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default()
}
