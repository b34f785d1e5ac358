//! Reading the keywords of a JSON Schema: following `$ref`s, the
//! alternatives of `oneOf`/`anyOf`, the allowed `type`s.

use serde_json::Value;

/// Follows `$ref`s to the schema they name (`true` when one cannot be found).
pub(super) fn resolve<'s>(root: &'s Value, mut schema: &'s Value) -> &'s Value {
    static ANY: Value = Value::Bool(true);
    for _ in 0..32 {
        let Some(r) = schema.get("$ref").and_then(Value::as_str) else {
            return schema;
        };
        let pointer = r.strip_prefix('#').unwrap_or(r);
        schema = root.pointer(pointer).unwrap_or(&ANY);
    }
    schema
}

/// The alternatives of a `oneOf`/`anyOf`, without the `null` of an `Option`
/// (TOML has no null: an absent key is the `None`).
pub(super) fn alternatives(s: &Value) -> Option<Vec<&Value>> {
    let alts = s
        .get("oneOf")
        .or_else(|| s.get("anyOf"))
        .and_then(Value::as_array)?;
    Some(
        alts.iter()
            .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
            .collect(),
    )
}

/// The `type`s a schema allows, without `null`.
pub(super) fn types(s: &Value) -> Vec<&str> {
    match s.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|t| *t != "null")
    .collect()
}
