//! The trigger form: one field per param, typed and checked like the API.

use std::collections::HashMap;

use askama::Template;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use scheduler::conf::{Param, ParamType};
use scheduler::dag::Dag;
use serde_json::Value;

use crate::cookies::Csrf;
use crate::error::Failure;
use crate::state::AppState;

use super::layout::{
    Chrome, DagHead, PageResult, chrome, flash_redirect, path, render, run_href, tab_head,
};

struct Field {
    name: String,
    kind: &'static str,
    description: String,
    /// `text`, `number`, `checkbox`, `select`, `json`.
    input: &'static str,
    value: String,
    checked: bool,
    options: Vec<(String, String)>,
    hint: String,
    error: Option<String>,
    step: &'static str,
}

#[derive(Template)]
#[template(path = "trigger.html")]
struct TriggerPage {
    c: Chrome,
    h: DagHead,
    fields: Vec<Field>,
    logical_date: String,
    problems: Vec<String>,
}

fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn fields(dag: &Dag, given: Option<&HashMap<String, String>>) -> Vec<Field> {
    dag.params
        .0
        .iter()
        .map(|(name, p)| {
            let key = format!("p.{name}");
            let default = p.default.as_ref().map(json_text).unwrap_or_default();
            let value = given
                .map(|g| g.get(&key).cloned().unwrap_or_default())
                .unwrap_or_else(|| default.clone());
            let input = if p.allowed.is_some() {
                "select"
            } else {
                match p.kind {
                    ParamType::String => "text",
                    ParamType::Integer | ParamType::Number => "number",
                    ParamType::Boolean => "checkbox",
                    ParamType::Array | ParamType::Object => "json",
                }
            };
            let checked = match given {
                Some(g) => g.get(&key).is_some_and(|v| v == "true"),
                None => p.default.as_ref() == Some(&Value::Bool(true)),
            };
            let options = p
                .allowed
                .iter()
                .flatten()
                .map(|v| (v.to_string(), json_text(v)))
                .collect();
            Field {
                name: name.clone(),
                kind: p.kind.as_str(),
                description: p.description.clone(),
                input,
                value,
                checked,
                options,
                hint: if p.default.is_some() {
                    format!("default: {default}")
                } else {
                    "required".into()
                },
                error: None,
                step: if p.kind == ParamType::Integer {
                    "1"
                } else {
                    "any"
                },
            }
        })
        .collect()
}

/// Turns one form field into the JSON value its param expects.
fn field_value(p: &Param, input: &str, raw: &str) -> Result<Option<Value>, String> {
    if p.kind == ParamType::Boolean && p.allowed.is_none() {
        return Ok(Some(Value::Bool(raw == "true")));
    }
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None); // the default applies, or "required" is reported
    }
    if input == "select" {
        return serde_json::from_str(raw)
            .map(Some)
            .map_err(|e| e.to_string());
    }
    match p.kind {
        ParamType::String => Ok(Some(Value::String(raw.to_string()))),
        ParamType::Integer => raw
            .parse::<i64>()
            .map(|n| Some(Value::from(n)))
            .map_err(|_| format!("{raw:?} is not a whole number")),
        ParamType::Number => raw
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(|n| Some(Value::Number(n)))
            .ok_or_else(|| format!("{raw:?} is not a number")),
        ParamType::Array | ParamType::Object => serde_json::from_str::<Value>(raw)
            .map_err(|e| format!("not valid JSON: {e}"))
            .map(Some),
        ParamType::Boolean => Ok(Some(Value::Bool(raw == "true"))),
    }
}

pub(crate) async fn trigger_form(
    State(s): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    p: Result<Path<String>, PathRejection>,
) -> PageResult {
    let id = path(p)?;
    let (rec, dag) = s.0.dags.get(s.store(), &id).await?;
    let c = chrome(&s, &headers, &csrf, format!("Trigger {id}"), "dags");
    let t = TriggerPage {
        c,
        h: tab_head(&rec, &dag, "trigger"),
        fields: fields(&dag, None),
        logical_date: String::new(),
        problems: Vec::new(),
    };
    Ok(render(&t, StatusCode::OK))
}

pub(crate) async fn trigger_submit(
    State(s): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    p: Result<Path<String>, PathRejection>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let id = path(p)?;
    let (rec, dag) = s.0.dags.get(s.store(), &id).await?;
    let mut fs = fields(&dag, Some(&form));
    let mut conf = serde_json::Map::new();
    let mut problems = Vec::new();
    for f in &mut fs {
        let Some(param) = dag.params.0.get(&f.name) else {
            continue;
        };
        let raw = form
            .get(&format!("p.{}", f.name))
            .cloned()
            .unwrap_or_default();
        match field_value(param, f.input, &raw) {
            Ok(Some(v)) => {
                conf.insert(f.name.clone(), v);
            }
            Ok(None) => {}
            Err(e) => f.error = Some(e),
        }
    }
    let ld_text = form.get("logical_date").cloned().unwrap_or_default();
    let mut logical_date = None;
    if !ld_text.trim().is_empty() {
        match scheduler::timetable::parse_datetime(ld_text.trim(), dag.timetable.tz) {
            Ok(d) => logical_date = Some(d),
            Err(e) => problems.push(format!("logical date {ld_text:?}: {e}")),
        }
    }
    if fs.iter().all(|f| f.error.is_none()) && problems.is_empty() {
        let conf = Value::Object(conf);
        match dag.params.resolve(&conf) {
            Err(ps) => {
                // Attach each problem to its field when it names one.
                for p in ps {
                    match fs
                        .iter_mut()
                        .find(|f| p.starts_with(&format!("{}:", f.name)))
                    {
                        Some(f) => f.error = Some(p),
                        None => problems.push(p),
                    }
                }
            }
            Ok(_) => match scheduler::runs::trigger(s.store(), &dag, conf, logical_date).await {
                Ok(run) => {
                    return Ok(flash_redirect(
                        &run_href(&id, &run.run_id),
                        &format!("triggered {id}: run {}", run.run_id),
                    ));
                }
                Err(e) => problems.push(Failure::from(e).message),
            },
        }
    }
    let c = chrome(&s, &headers, &csrf, format!("Trigger {id}"), "dags");
    let t = TriggerPage {
        c,
        h: tab_head(&rec, &dag, "trigger"),
        fields: fs,
        logical_date: ld_text,
        problems,
    };
    Ok(render(&t, StatusCode::UNPROCESSABLE_ENTITY))
}
