//! Checking a spanned TOML value against the JSON Schema of the type it is
//! about to be deserialized into, reporting **every** problem with the key
//! it is at and what was expected in user words.
//!
//! serde stops at the first error and reports it at the enclosing table
//! (`invalid type: string "3", expected u32` at the `[[task]]` header).
//! The types our files deserialize into already describe themselves as
//! JSON Schema (schemars; it is what `tributary dags schema` publishes), so
//! one walk of the value against that schema finds each wrong type, each
//! number out of range, each unknown key (with a suggestion from the table
//! it is in) and each missing key, in every nested and inline table. serde
//! then runs only on values the schema accepted, for the checks a schema
//! cannot express (a duration's text, a date).
//!
//! Supported keywords: `$ref` (`#/$defs/…`), `type`, `enum`, `const`,
//! `oneOf`/`anyOf`/`allOf`, `properties`, `additionalProperties`,
//! `required`, `items`, `minItems`, `maxItems`, `minLength`, `minimum`,
//! `maximum`, `exclusiveMinimum`, `format` (integer widths), and
//! `x-expected`: our own annotation naming what a custom type expects
//! ("a duration such as \"30s\"").

use std::any::TypeId;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;
use toml::Spanned;
use toml::de::DeValue;

use self::keywords::{alternatives, resolve, types};
use self::words::{describe, found, integer_bounds, one_of};
use crate::text::suggest;

/// One problem the schema found: where, and a sentence naming the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Byte range in the file: the key for a wrong value, else the value.
    pub span: Range<usize>,
    /// What is wrong, e.g. "`retries`: expected a whole number ≥ 0, found the string \"3\"".
    pub message: String,
    /// The key of the checked table the problem is under (`rotation` for
    /// `rotation.max_rows`), if any: a caller may drop it and read the rest.
    pub key: Option<String>,
}

/// The JSON Schema of a type, ready to check values against.
#[derive(Debug, Clone)]
pub struct Schema {
    root: Value,
}

impl Schema {
    /// The schema of `T`, built once per type and process.
    pub fn of<T: schemars::JsonSchema + 'static>() -> Arc<Schema> {
        static CACHE: OnceLock<Mutex<HashMap<TypeId, Arc<Schema>>>> = OnceLock::new();
        let mut cache = CACHE
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        cache
            .entry(TypeId::of::<T>())
            .or_insert_with(|| {
                let root = serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default();
                Arc::new(Schema { root })
            })
            .clone()
    }

    /// A schema given as JSON (a task kind's settings schema).
    pub fn from_value(root: Value) -> Schema {
        Schema { root }
    }

    /// The keys of the top-level table, in schema order.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys = Vec::new();
        collect_keys(&self.root, &self.root, &mut keys);
        keys
    }

    /// Every problem of `value`, in file order. `also_known` are keys
    /// the top-level table may hold that are read elsewhere (`[[task]]` next
    /// to a DAG's keys): not checked, but suggested for a typo.
    pub fn check(&self, value: &Spanned<DeValue<'_>>, also_known: &[&str]) -> Vec<Problem> {
        let mut w = Walker {
            root: &self.root,
            also_known,
            out: Vec::new(),
        };
        w.check(&self.root, value, &Place::top(value.span()));
        w.out.sort_by_key(|p| p.span.start);
        w.out
    }
}

fn collect_keys<'s>(root: &'s Value, schema: &'s Value, keys: &mut Vec<&'s str>) {
    let s = resolve(root, schema);
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        keys.extend(props.keys().map(String::as_str));
    }
    for combinator in ["allOf", "anyOf", "oneOf"] {
        for alt in s
            .get(combinator)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            collect_keys(root, alt, keys);
        }
    }
}

/// Where a value is: its name for messages and the span to report.
struct Place {
    /// `retries`, `rotation.max_rows`, `topics[2]`; empty at the top.
    path: String,
    span: Range<usize>,
}

impl Place {
    fn top(span: Range<usize>) -> Place {
        Place {
            path: String::new(),
            span,
        }
    }

    fn key(&self, key: &str, span: Range<usize>) -> Place {
        let path = if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        };
        Place { path, span }
    }

    fn index(&self, i: usize, span: Range<usize>) -> Place {
        Place {
            path: format!("{}[{i}]", self.path),
            span,
        }
    }

    /// "`path`: " before a message about the value, or nothing at the top.
    fn prefix(&self) -> String {
        if self.path.is_empty() {
            String::new()
        } else {
            format!("`{}`: ", self.path)
        }
    }
}

struct Walker<'s> {
    root: &'s Value,
    also_known: &'s [&'s str],
    out: Vec<Problem>,
}

impl<'s> Walker<'s> {
    fn problem(&mut self, at: &Place, message: String) {
        self.out.push(Problem {
            span: at.span.clone(),
            message: format!("{}{message}", at.prefix()),
            key: top_key(&at.path),
        });
    }

    fn check(&mut self, schema: &'s Value, v: &Spanned<DeValue<'_>>, at: &Place) {
        let s = resolve(self.root, schema);
        match s {
            Value::Bool(true) => return,
            Value::Bool(false) => return self.problem(at, "is not allowed here".into()),
            _ => {}
        }
        if let Some(alts) = alternatives(s) {
            self.check_alternatives(s, &alts, v, at);
        }
        for part in s
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.check(part, v, at);
        }
        let types = types(s);
        if !types.is_empty() && !types.iter().any(|t| accepts(t, v.get_ref())) {
            let expected = describe(self.root, s);
            return self.problem(
                at,
                format!("expected {expected}, found {}", found(v.get_ref())),
            );
        }
        if let Some(allowed) = s.get("enum").and_then(Value::as_array) {
            self.check_enum(allowed, v, at);
        }
        if let Some(c) = s.get("const")
            && !same(c, v.get_ref())
        {
            let expected = describe(self.root, s);
            return self.problem(
                at,
                format!("expected {expected}, found {}", found(v.get_ref())),
            );
        }
        match v.get_ref() {
            DeValue::Integer(i) => self.check_integer(s, i, at),
            DeValue::Float(f) => self.check_float(s, f.as_str(), at),
            DeValue::String(text) => {
                let min = s.get("minLength").and_then(Value::as_u64).unwrap_or(0);
                if (text.chars().count() as u64) < min {
                    let what = if min == 1 {
                        "must not be empty".to_string()
                    } else {
                        format!("must be at least {min} characters long")
                    };
                    self.problem(at, what);
                }
            }
            DeValue::Array(items) => self.check_array(s, items, v.span(), at),
            DeValue::Table(t) => self.check_table(s, t, v.span(), at),
            DeValue::Boolean(_) | DeValue::Datetime(_) => {}
        }
    }

    /// `oneOf`/`anyOf`: fine when one alternative accepts the value; else
    /// the problems of the one alternative of the value's type, or what
    /// all of them expect.
    fn check_alternatives(
        &mut self,
        s: &'s Value,
        alts: &[&'s Value],
        v: &Spanned<DeValue<'_>>,
        at: &Place,
    ) {
        let mut of_this_type = Vec::new();
        for alt in alts {
            let mut trial = Walker {
                root: self.root,
                also_known: self.also_known,
                out: Vec::new(),
            };
            trial.check(alt, v, at);
            if trial.out.is_empty() {
                return;
            }
            let alt_types = types(resolve(self.root, alt));
            if alt_types.iter().any(|t| accepts(t, v.get_ref())) {
                of_this_type.push(trial.out);
            }
        }
        match <[Vec<Problem>; 1]>::try_from(of_this_type) {
            Ok([problems]) => self.out.extend(problems),
            Err(_) => {
                let expected = describe(self.root, s);
                self.problem(
                    at,
                    format!("expected {expected}, found {}", found(v.get_ref())),
                );
            }
        }
    }

    fn check_enum(&mut self, allowed: &[Value], v: &Spanned<DeValue<'_>>, at: &Place) {
        if allowed.iter().any(|a| same(a, v.get_ref())) {
            return;
        }
        let names: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
        let hint = match v.get_ref().as_str().and_then(|t| suggest(t, &names)) {
            Some(s) => format!(" (did you mean `{s}`?)"),
            None => String::new(),
        };
        let list = one_of(allowed);
        self.problem(
            at,
            format!("expected {list}, found {}{hint}", found(v.get_ref())),
        );
    }

    fn check_integer(&mut self, s: &Value, i: &toml::de::DeInteger<'_>, at: &Place) {
        let Some(n) = i128::from_str_radix(i.as_str(), i.radix()).ok() else {
            return self.problem(at, format!("{} is too large", i.as_str()));
        };
        let (min, max) = integer_bounds(s);
        if let Some(min) = min
            && n < min
        {
            let words = if min == 0 {
                format!("must not be negative, found {n}")
            } else {
                format!("must be at least {min}, found {n}")
            };
            return self.problem(at, words);
        }
        if let Some(max) = max
            && n > max
        {
            self.problem(at, format!("{n} is too large: at most {max}"));
        }
    }

    fn check_float(&mut self, s: &Value, text: &str, at: &Place) {
        let Ok(x) = text.replace('_', "").parse::<f64>() else {
            return;
        };
        if let Some(min) = s.get("minimum").and_then(Value::as_f64)
            && x < min
        {
            self.problem(at, format!("must be at least {min}, found {x}"));
        }
        if let Some(min) = s.get("exclusiveMinimum").and_then(Value::as_f64)
            && x <= min
        {
            self.problem(at, format!("must be more than {min}, found {x}"));
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64)
            && x > max
        {
            self.problem(at, format!("must be at most {max}, found {x}"));
        }
    }

    fn check_array(
        &mut self,
        s: &'s Value,
        items: &toml::de::DeArray<'_>,
        span: Range<usize>,
        at: &Place,
    ) {
        let n = items.len() as u64;
        if let Some(min) = s.get("minItems").and_then(Value::as_u64)
            && n < min
        {
            let words = if min == 1 {
                "must not be empty".to_string()
            } else {
                format!("needs at least {min} entries, found {n}")
            };
            self.problem(
                &Place {
                    path: at.path.clone(),
                    span,
                },
                words,
            );
        }
        if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
            && n > max
        {
            self.problem(at, format!("has {n} entries: at most {max}"));
        }
        if let Some(item_schema) = s.get("items") {
            for (i, item) in items.iter().enumerate() {
                self.check(item_schema, item, &at.index(i, item.span()));
            }
        }
    }

    fn check_table(
        &mut self,
        s: &'s Value,
        t: &toml::de::DeTable<'_>,
        span: Range<usize>,
        at: &Place,
    ) {
        let props = s.get("properties").and_then(Value::as_object);
        let extra = s.get("additionalProperties");
        for (k, val) in t {
            let key = k.get_ref().as_ref();
            let here = at.key(key, k.span());
            if let Some(p) = props.and_then(|p| p.get(key)) {
                self.check(p, val, &here);
            } else if let Some(extra) = extra.filter(|e| e.is_object()) {
                self.check(extra, val, &here);
            } else if extra == Some(&Value::Bool(false)) {
                self.unknown_key(s, key, k.span(), at);
            }
        }
        for req in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(req) = req.as_str() else { continue };
            if !t.contains_key(req) {
                let what = if at.path.is_empty() {
                    format!("missing key `{req}`")
                } else {
                    format!("missing key `{req}` in `{}`", at.path)
                };
                self.out.push(Problem {
                    span: span.clone(),
                    message: what,
                    key: top_key(&at.path),
                });
            }
        }
    }

    fn unknown_key(&mut self, s: &'s Value, key: &str, span: Range<usize>, at: &Place) {
        let mut known = Vec::new();
        collect_keys(self.root, s, &mut known);
        if at.path.is_empty() {
            known.extend_from_slice(self.also_known);
        }
        let hint = match suggest(key, &known) {
            Some(k) => format!("did you mean `{k}`?"),
            None if known.is_empty() => "this table takes no keys".to_string(),
            None => format!("known keys: {}", known.join(", ")),
        };
        let message = if at.path.is_empty() {
            format!("unknown key `{key}` ({hint})")
        } else {
            format!("unknown key `{key}` in `{}` ({hint})", at.path)
        };
        self.out.push(Problem {
            span,
            message,
            key: top_key(&at.path).or_else(|| Some(key.to_string())),
        });
    }
}

/// The first segment of a path: `rotation` of `rotation.max_rows`,
/// `topics` of `topics[1]`; `None` at the top.
fn top_key(path: &str) -> Option<String> {
    let end = path.find(['.', '[']).unwrap_or(path.len());
    (end > 0).then(|| path[..end].to_string())
}

/// Whether a TOML value is of JSON Schema type `t` (a TOML date-time
/// passes as a string: dates are written either way).
fn accepts(t: &str, v: &DeValue<'_>) -> bool {
    matches!(
        (t, v),
        ("integer", DeValue::Integer(_))
            | ("number", DeValue::Integer(_) | DeValue::Float(_))
            | ("string", DeValue::String(_) | DeValue::Datetime(_))
            | ("boolean", DeValue::Boolean(_))
            | ("array", DeValue::Array(_))
            | ("object", DeValue::Table(_))
    )
}

fn same(expected: &Value, v: &DeValue<'_>) -> bool {
    match (expected, v) {
        (Value::String(a), DeValue::String(b)) => a == b.as_ref(),
        (Value::Bool(a), DeValue::Boolean(b)) => a == b,
        (Value::Number(a), DeValue::Integer(b)) => {
            a.as_i64().map(i128::from) == i128::from_str_radix(b.as_str(), b.radix()).ok()
        }
        _ => false,
    }
}

mod keywords;
mod words;

#[cfg(test)]
mod tests;
