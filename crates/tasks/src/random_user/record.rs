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

/// The Arrow schema of [`UserRecord`] as the lake stores it: text as Utf8,
/// coordinates as Float64, `event_time` and `logical_date` as UTC
/// microsecond timestamps (parsed from their RFC 3339 text). Nothing is
/// nullable: every field is always set.
pub fn user_record_arrow_schema() -> arrow_schema::Schema {
    use arrow_schema::{DataType, Field, Schema, TimeUnit};
    let text = |n: &str| Field::new(n, DataType::Utf8, false);
    let ts = |n: &str| {
        Field::new(
            n,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        )
    };
    Schema::new(vec![
        text("user_id"),
        text("name"),
        text("gender"),
        text("address"),
        text("city"),
        text("nation"),
        text("zip"),
        Field::new("latitude", DataType::Float64, false),
        Field::new("longitude", DataType::Float64, false),
        text("email"),
        ts("event_time"),
        text("dag_id"),
        text("run_id"),
        ts("logical_date"),
    ])
}

/// Checks that the Arrow and JSON schemas describe the same fields with
/// compatible types: the guard that catches a drift before anything runs.
pub fn check_schemas_agree() -> Result<(), String> {
    use arrow_schema::DataType;
    let json = user_record_json_schema();
    let props = json
        .get("properties")
        .and_then(|p| p.as_object())
        .ok_or("JSON schema has no properties")?;
    let arrow = user_record_arrow_schema();
    let mut problems = Vec::new();
    for f in arrow.fields() {
        let want = match f.data_type() {
            DataType::Float64 => "number",
            _ => "string",
        };
        match props
            .get(f.name())
            .and_then(|p| p.get("type"))
            .and_then(|t| t.as_str())
        {
            Some(t) if t == want => {}
            Some(t) => problems.push(format!(
                "{}: Arrow {} but JSON {t}",
                f.name(),
                f.data_type()
            )),
            None => problems.push(format!("{}: in the Arrow schema only", f.name())),
        }
    }
    for name in props.keys() {
        if arrow.field_with_name(name).is_err() {
            problems.push(format!("{name}: in the JSON schema only"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// JSON Schema of [`UserRecord`].
pub fn user_record_json_schema() -> serde_json::Value {
    crate::kind_settings::schema::<UserRecord>()
}
