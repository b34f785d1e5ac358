//! The record a random user becomes: declared once here, exported as JSON
//! Schema (`tributary tasks schema random_user`) so producers and the lake
//! writer share one definition.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One user as the lake stores it (topic `users`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    /// `login.uuid`: stable id, also the Kafka key.
    pub user_id: String,
    /// "Title. First Last".
    pub name: String,
    /// As given by the API.
    pub gender: String,
    /// "number, street name", trimmed.
    pub address: String,
    /// City.
    pub city: String,
    /// Country name.
    pub nation: String,
    /// MD5 of the postcode as written (32 lowercase hex characters).
    pub zip: String,
    /// Latitude in degrees.
    pub latitude: f64,
    /// Longitude in degrees.
    pub longitude: f64,
    /// E-mail address.
    pub email: String,
    /// When the user was fetched (RFC 3339, UTC).
    pub event_time: String,
    /// DAG that fetched it.
    pub dag_id: String,
    /// Run that fetched it.
    pub run_id: String,
    /// That run's logical date (RFC 3339, UTC).
    pub logical_date: String,
}

/// Where and when records were fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// Fetch time, RFC 3339 UTC.
    pub fetched_at: String,
    /// DAG id.
    pub dag_id: String,
    /// Run id.
    pub run_id: String,
    /// Logical date, RFC 3339 UTC.
    pub logical_date: String,
}

/// JSON Schema of [`UserRecord`].
pub fn user_record_json_schema() -> serde_json::Value {
    crate::schema_of::<UserRecord>()
}
