//! What a schema expects and what a value is, in user words: "a whole
//! number ≥ 0", "one of `overwrite`, `append`", "the string \"3\"".

use serde_json::Value;
use toml::de::DeValue;

use super::keywords::{alternatives, resolve, types};
use crate::text::cut;

/// The bounds of an integer schema: `minimum`/`maximum`, else its `format`'s width.
pub(super) fn integer_bounds(s: &Value) -> (Option<i128>, Option<i128>) {
    let width = match s.get("format").and_then(Value::as_str) {
        Some("int8") => Some((i8::MIN as i128, i8::MAX as i128)),
        Some("int16") => Some((i16::MIN as i128, i16::MAX as i128)),
        Some("int32") => Some((i32::MIN as i128, i32::MAX as i128)),
        Some("int64" | "int") => Some((i64::MIN as i128, i64::MAX as i128)),
        Some("uint8") => Some((0, u8::MAX as i128)),
        Some("uint16") => Some((0, u16::MAX as i128)),
        Some("uint32") => Some((0, u32::MAX as i128)),
        Some("uint64" | "uint") => Some((0, u64::MAX as i128)),
        _ => None,
    };
    let bound = |k: &str| s.get(k).and_then(Value::as_f64).map(|x| x.ceil() as i128);
    let exclusive_min = s
        .get("exclusiveMinimum")
        .and_then(Value::as_f64)
        .map(|x| x.floor() as i128 + 1);
    let min = bound("minimum")
        .into_iter()
        .chain(exclusive_min)
        .chain(width.map(|w| w.0))
        .max();
    let max = s
        .get("maximum")
        .and_then(Value::as_f64)
        .map(|x| x.floor() as i128)
        .into_iter()
        .chain(width.map(|w| w.1))
        .min();
    (min, max)
}

/// What a schema expects, in user words.
pub(super) fn describe(root: &Value, schema: &Value) -> String {
    let s = resolve(root, schema);
    if let Some(words) = s.get("x-expected").and_then(Value::as_str) {
        return words.to_string();
    }
    if let Some(alts) = alternatives(s) {
        let mut parts: Vec<String> = Vec::new();
        for alt in alts {
            let d = describe(root, alt);
            if !parts.contains(&d) {
                parts.push(d);
            }
        }
        // `enum` variants documented one by one are one `const` each.
        if parts.iter().all(|p| p.starts_with('`')) && parts.len() > 1 {
            return format!("one of {}", parts.join(", "));
        }
        return parts.join(" or ");
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array) {
        return one_of(allowed);
    }
    if let Some(c) = s.get("const") {
        return literal(c);
    }
    let words: Vec<String> = types(s).iter().map(|t| describe_type(root, s, t)).collect();
    if words.is_empty() {
        "a value".into()
    } else {
        words.join(" or ")
    }
}

fn describe_type(root: &Value, s: &Value, t: &str) -> String {
    match t {
        "integer" => match integer_bounds(s) {
            (Some(min), Some(max)) if max < 1 << 20 => {
                format!("a whole number from {min} to {max}")
            }
            (Some(min), _) if min > -(1 << 20) => format!("a whole number ≥ {min}"),
            (None, Some(max)) if max < 1 << 20 => format!("a whole number ≤ {max}"),
            _ => "a whole number".into(),
        },
        "number" => "a number".into(),
        "string" => "a string".into(),
        "boolean" => "true or false".into(),
        "array" => match s.get("items").map(|i| describe(root, i)) {
            Some(d) if d == "a string" => "a list of strings".into(),
            Some(d) if d == "a table" => "a list of tables".into(),
            _ => "a list".into(),
        },
        "object" => "a table".into(),
        other => format!("a {other}"),
    }
}

pub(super) fn one_of(allowed: &[Value]) -> String {
    let names: Vec<String> = allowed.iter().map(literal).collect();
    match names.as_slice() {
        [one] => one.clone(),
        _ => format!("one of {}", names.join(", ")),
    }
}

fn literal(v: &Value) -> String {
    match v {
        Value::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

/// The value found, in user words (long text cut).
pub(super) fn found(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("the string {:?}", cut(s, 60)),
        DeValue::Integer(i) => format!("the number {}", i.as_str()),
        DeValue::Float(f) => format!("the number {}", f.as_str()),
        DeValue::Boolean(b) => b.to_string(),
        DeValue::Datetime(d) => format!("the date-time {d}"),
        DeValue::Array(_) => "a list".into(),
        DeValue::Table(_) => "a table".into(),
    }
}
