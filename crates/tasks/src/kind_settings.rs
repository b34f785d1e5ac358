//! Helpers every task kind uses for its `settings` table: deserialize it
//! (one error per kind) and export its JSON Schema.

use scheduler::operator::{KindSettings, SettingsError};
use serde::de::DeserializeOwned;

/// Deserializes settings, wrapping a failure as the single error of a kind.
pub(crate) fn parse<T: DeserializeOwned>(s: &KindSettings<'_>) -> Result<T, Vec<SettingsError>> {
    s.deserialize().map_err(|e| vec![e])
}

/// JSON Schema of a settings struct (or record type), as a JSON value.
pub(crate) fn schema<T: schemars::JsonSchema>() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default()
}
