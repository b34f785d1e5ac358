//! Typed DAG params and the validation of a run's conf against them.
//!
//! A DAG declares `[params.NAME]` with a type and an optional default; a
//! manual trigger's conf (a JSON object) must fit them. Tasks see the merged
//! values: defaults overridden by the conf.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Type of a param.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    /// Text.
    String,
    /// Whole number.
    Integer,
    /// Any number.
    Number,
    /// true / false.
    Boolean,
    /// A list.
    Array,
    /// A table / JSON object.
    Object,
}

impl ParamType {
    /// The name used in DAG files.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::Array => "array",
            ParamType::Object => "object",
        }
    }

    /// Whether a JSON value has this type.
    pub fn accepts(self, v: &Value) -> bool {
        match self {
            ParamType::String => v.is_string(),
            ParamType::Integer => v.is_i64() || v.is_u64(),
            ParamType::Number => v.is_number(),
            ParamType::Boolean => v.is_boolean(),
            ParamType::Array => v.is_array(),
            ParamType::Object => v.is_object(),
        }
    }
}

/// `[params.NAME]` in a DAG file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamDef {
    /// The value's type.
    #[serde(rename = "type")]
    pub kind: ParamType,
    /// Value used when the conf does not give one. Without a default the param
    /// is required in a manual run's conf (scheduled runs need a default).
    #[schemars(with = "Option<serde_json::Value>")]
    pub default: Option<toml::Value>,
    /// What the param means (shown in the trigger form).
    #[serde(default)]
    pub description: String,
    /// Allowed values.
    #[serde(rename = "enum")]
    #[schemars(with = "Option<Vec<serde_json::Value>>")]
    pub allowed: Option<Vec<toml::Value>>,
    /// Lower bound for numbers.
    pub minimum: Option<f64>,
    /// Upper bound for numbers.
    pub maximum: Option<f64>,
}

/// A validated param.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Param {
    /// Type.
    #[serde(rename = "type")]
    pub kind: ParamType,
    /// Default, as JSON.
    pub default: Option<Value>,
    /// Description.
    pub description: String,
    /// Allowed values.
    #[serde(rename = "enum", skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<Value>>,
    /// Lower bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    /// Upper bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
}

impl Param {
    /// Checks a def, returning the param or every problem with it.
    pub fn from_def(name: &str, def: ParamDef) -> Result<Param, Vec<String>> {
        let mut problems = Vec::new();
        let to_json = |v: toml::Value| serde_json::to_value(v).unwrap_or(Value::Null);
        let p = Param {
            kind: def.kind,
            default: def.default.map(to_json),
            description: def.description,
            allowed: def.allowed.map(|a| a.into_iter().map(to_json).collect()),
            minimum: def.minimum,
            maximum: def.maximum,
        };
        if let (Some(lo), Some(hi)) = (p.minimum, p.maximum)
            && lo > hi
        {
            problems.push(format!(
                "param {name:?}: minimum {lo} is greater than maximum {hi}"
            ));
        }
        if let Some(allowed) = &p.allowed {
            for v in allowed.iter().filter(|v| !p.kind.accepts(v)) {
                problems.push(format!(
                    "param {name:?}: enum value {v} is not of type {} but {}",
                    p.kind.as_str(),
                    json_type(v)
                ));
            }
        }
        let numeric = matches!(p.kind, ParamType::Integer | ParamType::Number);
        for (key, bound) in [("minimum", p.minimum), ("maximum", p.maximum)] {
            if bound.is_some() && !numeric {
                problems.push(format!(
                    "param {name:?}: `{key}` applies to integer and number params, not to {}",
                    p.kind.as_str()
                ));
            }
        }
        if let Some(d) = &p.default
            && let Err(e) = p.check(d)
        {
            problems.push(format!("param {name:?}: default {d} does not fit: {e}"));
        }
        if problems.is_empty() {
            Ok(p)
        } else {
            Err(problems)
        }
    }

    /// Checks one value against the type, enum and bounds.
    pub fn check(&self, v: &Value) -> Result<(), String> {
        if !self.kind.accepts(v) {
            return Err(format!(
                "expected {}, got {}",
                self.kind.as_str(),
                json_type(v)
            ));
        }
        if let Some(allowed) = &self.allowed
            && !allowed.contains(v)
        {
            let list: Vec<String> = allowed.iter().map(ToString::to_string).collect();
            return Err(format!("{v} is not one of {}", list.join(", ")));
        }
        if let Some(x) = v.as_f64() {
            if self.minimum.is_some_and(|m| x < m) {
                return Err(format!(
                    "{x} is below the minimum {}",
                    self.minimum.unwrap_or_default()
                ));
            }
            if self.maximum.is_some_and(|m| x > m) {
                return Err(format!(
                    "{x} is above the maximum {}",
                    self.maximum.unwrap_or_default()
                ));
            }
        }
        Ok(())
    }
}

/// Name of a JSON value's type, for messages.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The params of a DAG, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Params(pub BTreeMap<String, Param>);

impl Params {
    /// Validates a conf (a JSON object) and returns the merged values
    /// (defaults overridden by the conf), or every problem found.
    pub fn resolve(&self, conf: &Value) -> Result<Map<String, Value>, Vec<String>> {
        let mut problems = Vec::new();
        let empty = Map::new();
        let given = match conf {
            Value::Object(m) => m,
            Value::Null => &empty,
            other => {
                return Err(vec![format!(
                    "conf must be a JSON object, got {}",
                    json_type(other)
                )]);
            }
        };
        for key in given.keys() {
            if !self.0.contains_key(key) {
                let known: Vec<&str> = self.0.keys().map(String::as_str).collect();
                problems.push(if known.is_empty() {
                    format!("unknown key {key:?}: this DAG declares no params")
                } else {
                    format!("unknown key {key:?} (params: {})", known.join(", "))
                });
            }
        }
        let mut out = Map::new();
        for (name, p) in &self.0 {
            match given.get(name).or(p.default.as_ref()) {
                Some(v) => match p.check(v) {
                    Ok(()) => {
                        out.insert(name.clone(), v.clone());
                    }
                    Err(e) => problems.push(format!("{name}: {e}")),
                },
                None => problems.push(format!(
                    "{name}: required ({}) and has no default",
                    p.kind.as_str()
                )),
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params() -> Params {
        let mut m = BTreeMap::new();
        let def: ParamDef =
            toml::from_str("type = \"integer\"\ndefault = 10\nminimum = 1\nmaximum = 5000")
                .unwrap();
        m.insert("results".into(), Param::from_def("results", def).unwrap());
        let def: ParamDef = toml::from_str("type = \"string\"\nenum = [\"FR\", \"DE\"]").unwrap();
        m.insert("nat".into(), Param::from_def("nat", def).unwrap());
        Params(m)
    }

    #[test]
    fn merges_defaults_and_conf() {
        let out = params().resolve(&json!({"nat": "FR"})).unwrap();
        assert_eq!(Value::Object(out), json!({"nat": "FR", "results": 10}));
    }

    #[test]
    fn reports_every_problem() {
        let errs = params()
            .resolve(&json!({"results": "many", "colour": 1}))
            .unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("unknown key \"colour\"")));
        assert!(
            errs.iter()
                .any(|e| e.contains("results: expected integer, got string"))
        );
        assert!(errs.iter().any(|e| e.contains("nat: required (string)")));
        let errs = params()
            .resolve(&json!({"results": 9000, "nat": "XX"}))
            .unwrap_err();
        assert!(
            errs.iter().any(|e| e.contains("above the maximum 5000")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.contains("not one of \"FR\", \"DE\"")),
            "{errs:?}"
        );
        assert!(params().resolve(&json!([1])).unwrap_err()[0].contains("must be a JSON object"));
    }

    #[test]
    fn default_must_fit_type() {
        let def: ParamDef = toml::from_str("type = \"boolean\"\ndefault = \"yes\"").unwrap();
        let errs = Param::from_def("flag", def).unwrap_err();
        assert!(errs[0].contains("expected boolean, got string"), "{errs:?}");
    }
}
