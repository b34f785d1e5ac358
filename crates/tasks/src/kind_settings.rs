//! Helpers every task kind uses for its `settings` table: check and
//! deserialize it (every problem at its key), and export its JSON Schema.

use scheduler::operator::{KindSettings, SettingsError};
use serde::de::DeserializeOwned;

/// The settings as `T`, or every problem with them.
pub(crate) fn parse<T: DeserializeOwned + schemars::JsonSchema + 'static>(
    s: &KindSettings<'_>,
) -> Result<T, Vec<SettingsError>> {
    s.checked()
}

/// JSON Schema of a settings struct (or record type), as a JSON value.
pub(crate) fn schema<T: schemars::JsonSchema>() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default()
}
