//! The DAG file format: what a `dags/*.toml` file may contain.
//!
//! These structs are the single definition of the format: serde reads files
//! with them (`deny_unknown_fields`, so a typo is an error) and schemars
//! turns them into the published JSON Schema (`tributary dags schema`).
//! Kind-specific task settings sit beside the common task keys; each task
//! kind validates its own ([`crate::operator::TaskKind`]).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use crate::conf::ParamDef;
use crate::dag::TriggerRule;
use crate::duration::Dur;

/// The DAG-level keys of a DAG file (everything but `[[task]]` and `[params.*]`,
/// which are read one by one so that every broken task is reported).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DagHeader {
    /// Unique id of the DAG: letters, digits, `_`, `-`, `.`.
    #[schemars(with = "String")]
    pub dag_id: Spanned<String>,
    /// What the DAG does (shown in the UI and `dags list`).
    #[serde(default)]
    pub description: String,
    /// When runs are created: a 5-field (minute) or 6-field (second) cron
    /// expression, `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`, or
    /// `none` (manual triggers only). Default: `none`.
    #[schemars(with = "Option<String>")]
    pub schedule: Option<Spanned<String>>,
    /// IANA time zone the schedule is read in, e.g. `Europe/Paris`. Default `UTC`.
    #[schemars(with = "Option<String>")]
    pub timezone: Option<Spanned<String>>,
    /// First data interval starts at or after this date (TOML date or datetime;
    /// a date or local datetime is read in `timezone`).
    #[schemars(with = "Option<String>")]
    pub start_date: Option<Spanned<DateValue>>,
    /// No run has a logical date after this.
    #[schemars(with = "Option<String>")]
    pub end_date: Option<Spanned<DateValue>>,
    /// Create runs for every missed interval since `start_date` (true) or only
    /// the latest one (false, the default).
    #[serde(default)]
    pub catchup: bool,
    /// Runs that may be queued or running at once. Default 16.
    #[schemars(range(min = 1))]
    pub max_active_runs: Option<u32>,
    /// Task instances of this DAG that may run at once. Default 16.
    #[schemars(range(min = 1))]
    pub max_active_tasks: Option<u32>,
    /// Labels for filtering.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Default task settings, overridden per task.
    #[serde(default)]
    pub defaults: TaskSettings,
}

/// A TOML date, datetime, or a string holding one.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DateValue {
    /// `start_date = 2026-11-01` or `2026-11-01T06:00:00Z`.
    Toml(toml::value::Datetime),
    /// `start_date = "2026-11-01"`.
    Text(String),
}

/// Task settings that may be given once in `[defaults]` and per task.
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSettings {
    /// Retries after the first try. Default 0.
    pub retries: Option<u32>,
    /// Delay before a retry. Default `"5m"`.
    pub retry_delay: Option<Dur>,
    /// Double the delay after each failed try. Default false.
    pub retry_exponential_backoff: Option<bool>,
    /// Upper bound of the retry delay. Default `"1d"`.
    pub max_retry_delay: Option<Dur>,
    /// A try running longer is stopped and counts as failed. Default: none.
    pub execution_timeout: Option<Dur>,
    /// When the task runs given its upstream states. Default `all_success`.
    pub trigger_rule: Option<TriggerRule>,
    /// Pool whose slots the task takes. Default `default_pool`.
    pub pool: Option<String>,
    /// Higher runs first when slots are short. Default 1.
    pub priority: Option<i32>,
}

/// The common keys of a `[[task]]`; every other key is a setting of the task's kind.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskHeader {
    /// Task id, unique in the DAG: letters, digits, `_`, `-`, `.`.
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// Task kind: `shell`, `noop`, … (`tributary tasks kinds` lists them).
    #[schemars(with = "String")]
    pub kind: Spanned<String>,
    /// Ids of the tasks that must finish first.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub depends_on: Vec<Spanned<String>>,
    /// What the task is for.
    #[serde(default)]
    pub description: String,
    /// Settings overriding `[defaults]`.
    #[serde(flatten)]
    pub settings: TaskSettings,
}

/// Keys of [`TaskHeader`] (including the flattened [`TaskSettings`]): the
/// rest of a task table belongs to the kind.
pub const TASK_HEADER_KEYS: &[&str] = &[
    "id",
    "kind",
    "depends_on",
    "description",
    "retries",
    "retry_delay",
    "retry_exponential_backoff",
    "max_retry_delay",
    "execution_timeout",
    "trigger_rule",
    "pool",
    "priority",
];

/// The whole file, for the JSON Schema only (parsing reads it piece by piece).
#[derive(JsonSchema)]
#[allow(dead_code)]
pub struct DagFileSchema {
    #[serde(flatten)]
    header: DagHeader,
    /// Typed params: the schema of a manual run's conf (`[params.NAME]`).
    #[serde(default)]
    params: BTreeMap<String, ParamDef>,
    /// The tasks (`[[task]]`).
    task: Vec<TaskHeader>,
}

/// The JSON Schema of a DAG file, with each kind's settings allowed (and
/// checked) on tasks of that kind.
pub fn json_schema(kinds: &crate::operator::Kinds) -> serde_json::Value {
    use serde_json::{Value, json};
    let mut root = serde_json::to_value(schemars::schema_for!(DagFileSchema)).unwrap_or_default();
    root["$id"] = json!("https://tributary.dev/schemas/dag.json");
    root["title"] = json!("Tributary DAG file");
    let mut branches = Vec::new();
    let names: Vec<&str> = kinds.names();
    for kind in kinds.iter() {
        let mut ks = kind.settings_schema();
        if let Some(Value::Object(defs)) = ks.get_mut("$defs").map(Value::take) {
            for (k, v) in defs {
                root["$defs"][k] = v;
            }
        }
        let props = ks.get("properties").cloned().unwrap_or_else(|| json!({}));
        let required = ks.get("required").cloned().unwrap_or_else(|| json!([]));
        branches.push(json!({
            "if": {"properties": {"kind": {"const": kind.name()}}},
            "then": {"properties": props, "required": required}
        }));
    }
    if let Some(task) = root
        .pointer_mut("/$defs/TaskHeader")
        .and_then(Value::as_object_mut)
    {
        task.remove("additionalProperties");
        task.insert("allOf".into(), Value::Array(branches));
        task.insert("unevaluatedProperties".into(), json!(false));
        if let Some(kind) = task.get_mut("properties").and_then(|p| p.get_mut("kind")) {
            kind["enum"] = json!(names);
        }
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `TASK_HEADER_KEYS` must list exactly the keys serde accepts.
    #[test]
    fn header_keys_match_struct() {
        let schema = schemars::schema_for!(TaskHeader);
        let props = schema
            .get("properties")
            .and_then(|p| p.as_object())
            .unwrap();
        let mut from_schema: Vec<&str> = props.keys().map(String::as_str).collect();
        let mut listed = TASK_HEADER_KEYS.to_vec();
        from_schema.sort_unstable();
        listed.sort_unstable();
        assert_eq!(from_schema, listed);
    }
}
