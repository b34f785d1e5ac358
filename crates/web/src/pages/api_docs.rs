//! The API reference (`/api`): the OpenAPI document rendered on the server
//! as a page to read — every operation with its parameters, body and
//! answers, then every schema with its fields.

use askama::Template;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};

use crate::cookies::Csrf;
use crate::state::AppState;

use super::layout::{Chrome, PageResult, chrome, render};

#[derive(Template)]
#[template(path = "api.html")]
struct ApiPage {
    c: Chrome,
    description: String,
    ops: Vec<Op>,
    schemas: Vec<SchemaView>,
}

struct Op {
    method: String,
    path: String,
    anchor: String,
    summary: String,
    /// `(name, where, type, required, description)`.
    params: Vec<(String, String, String, bool, String)>,
    body: String,
    /// `(status, description, type)`.
    responses: Vec<(String, String, String)>,
}

struct SchemaView {
    name: String,
    /// `(field, type, required, description)`.
    fields: Vec<(String, String, bool, String)>,
    /// For a schema without fields (an enum): its type.
    kind: String,
}

pub(crate) async fn api_reference(
    State(s): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
) -> PageResult {
    let doc = crate::openapi::document();
    let empty = Map::new();
    let mut ops = Vec::new();
    for (path, methods) in doc["paths"].as_object().unwrap_or(&empty) {
        for (method, o) in methods.as_object().unwrap_or(&empty) {
            let mut responses: Vec<(String, String, String)> = o["responses"]
                .as_object()
                .unwrap_or(&empty)
                .iter()
                .map(|(code, r)| {
                    (
                        code.clone(),
                        text(&r["description"]),
                        type_of(&r["content"]["application/json"]["schema"], 0),
                    )
                })
                .collect();
            responses.sort();
            ops.push(Op {
                method: method.to_uppercase(),
                anchor: format!("{method}-{}", path.replace(['/', '{', '}'], "-")),
                path: format!("/api/v1{path}"),
                summary: text(&o["summary"]),
                params: o["parameters"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|p| {
                        (
                            text(&p["name"]),
                            text(&p["in"]),
                            type_of(&p["schema"], 1),
                            p["required"].as_bool().unwrap_or(false),
                            text(&p["description"]),
                        )
                    })
                    .collect(),
                body: o
                    .get("requestBody")
                    .map(|b| type_of(&b["content"]["application/json"]["schema"], 0))
                    .unwrap_or_default(),
                responses,
            });
        }
    }
    let schemas = doc["components"]["schemas"]
        .as_object()
        .unwrap_or(&empty)
        .iter()
        .map(|(name, sc)| {
            let required: Vec<&str> = sc["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            SchemaView {
                name: name.clone(),
                fields: sc["properties"]
                    .as_object()
                    .unwrap_or(&empty)
                    .iter()
                    .map(|(f, fs)| {
                        (
                            f.clone(),
                            type_of(fs, 1),
                            required.contains(&f.as_str()),
                            text(&fs["description"]),
                        )
                    })
                    .collect(),
                kind: type_of(sc, 1),
            }
        })
        .collect();
    let c = chrome(&s, &headers, &csrf, "API reference".into(), "api");
    let page = ApiPage {
        c,
        description: text(&doc["info"]["description"]),
        ops,
        schemas,
    };
    Ok(render(&page, StatusCode::OK))
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// A schema as a short type: `Run`, `[TaskInstance]`, `"a" | "b"`,
/// `string (date-time) | null`, `{ runs: [Run], next_before: … }`.
/// Objects are spelled out to `depth` 0 only.
fn type_of(s: &Value, depth: usize) -> String {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or(r).to_string();
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        return e
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(" | ");
    }
    if let Some(c) = s.get("const") {
        return c.to_string();
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = s.get(key).and_then(Value::as_array) {
            return alts
                .iter()
                .map(|a| type_of(a, depth))
                .collect::<Vec<_>>()
                .join(" | ");
        }
    }
    let types: Vec<String> = match s.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts.iter().map(text).collect(),
        _ => return "any".into(),
    };
    types
        .iter()
        .map(|t| match t.as_str() {
            "array" => format!(
                "[{}]",
                s.get("items").map_or("any".into(), |i| type_of(i, depth))
            ),
            "object" => match s.get("properties").and_then(Value::as_object) {
                Some(props) if depth == 0 && !props.is_empty() => format!(
                    "{{ {} }}",
                    props
                        .iter()
                        .map(|(k, v)| format!("{k}: {}", type_of(v, depth + 1)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => "object".into(),
            },
            "null" => "null".into(),
            other => match s.get("format").and_then(Value::as_str) {
                Some(f) => format!("{other} ({f})"),
                None => other.to_string(),
            },
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schemas_read_as_short_types() {
        assert_eq!(
            type_of(&json!({"$ref": "#/components/schemas/Run"}), 0),
            "Run"
        );
        assert_eq!(
            type_of(
                &json!({"type": "array", "items": {"$ref": "#/components/schemas/Run"}}),
                0
            ),
            "[Run]"
        );
        assert_eq!(type_of(&json!({"enum": ["a", "b"]}), 0), "\"a\" | \"b\"");
        assert_eq!(
            type_of(
                &json!({"type": ["string", "null"], "format": "date-time"}),
                0
            ),
            "string (date-time) | null"
        );
        assert_eq!(
            type_of(
                &json!({"type": "object", "properties": {"n": {"type": "integer"}, "o": {"type": "object", "properties": {"x": {}}}}}),
                0
            ),
            "{ n: integer, o: object }"
        );
        assert_eq!(type_of(&json!({}), 0), "any");
    }
}
