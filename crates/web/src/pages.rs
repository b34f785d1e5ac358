//! The HTML pages: DAG list, DAG grid + graph, code, trigger form,
//! backfills, run (tasks + Gantt + actions), task instance (log per try with
//! a live tail over server-sent events) and streams. Templates live in
//! `crates/web/templates/` and escape every value; links are built here, with each
//! path segment percent-encoded.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use scheduler::conf::{Param, ParamType};
use scheduler::dag::Dag;
use scheduler::model::{DagRecord, RunRecord, TaskInstance};
use scheduler::state::TaskState;
use serde::Deserialize;
use serde_json::Value;

use crate::AppState;
use crate::api::{self, BackfillBody, BackfillOutcome, ClearBody};
use crate::dags::{self, DagSummary, parse_cursor};
use crate::error::{ApiError, Failure};
use crate::security::{Csrf, cookie};
use crate::streams::StreamStatus;
use crate::svg::{self, Bar, Graph, human_ms};

/// Cookie carrying a one-shot message to the next page.
pub(crate) const FLASH_COOKIE: &str = "tributary_flash";
/// Runs per grid page.
const GRID_RUNS: i64 = 25;

/// Characters kept as they are in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b':');

/// A path segment, percent-encoded.
pub(crate) fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

fn dag_href(dag_id: &str) -> String {
    format!("/dags/{}", seg(dag_id))
}

fn run_href(dag_id: &str, run_id: &str) -> String {
    format!("/dags/{}/runs/{}", seg(dag_id), seg(run_id))
}

fn ti_href(dag_id: &str, run_id: &str, task_id: &str) -> String {
    format!(
        "/dags/{}/runs/{}/tasks/{}",
        seg(dag_id),
        seg(run_id),
        seg(task_id)
    )
}

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn opt_ts(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(String::new, ts)
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// What every page has: title, navigation, CSRF token, flash message.
pub(crate) struct Chrome {
    pub title: String,
    pub nav: &'static str,
    pub csrf: String,
    pub flash: Option<String>,
    pub login: bool,
}

fn chrome(
    s: &AppState,
    headers: &HeaderMap,
    csrf: &Csrf,
    title: String,
    nav: &'static str,
) -> Chrome {
    let flash = cookie(headers, FLASH_COOKIE)
        .filter(|f| !f.is_empty())
        .map(|f| {
            percent_encoding::percent_decode_str(f)
                .decode_utf8_lossy()
                .into_owned()
        });
    let logged_in =
        s.0.token
            .as_ref()
            .is_some_and(|t| cookie(headers, crate::security::TOKEN_COOKIE) == Some(t.as_str()));
    Chrome {
        title,
        nav,
        csrf: csrf.0.clone(),
        flash,
        login: s.0.token.is_some() && !logged_in,
    }
}

/// Renders a template (the guard clears a flash message the page showed).
fn render<T: Template>(t: &T, status: StatusCode) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => error_page(&Failure::internal("rendering a page", &e)),
    }
}

/// Redirects with a message shown once on the next page.
fn flash_redirect(to: &str, message: &str) -> Response {
    let mut r = Redirect::to(to).into_response();
    let c = format!(
        "{FLASH_COOKIE}={}; Path=/; SameSite=Strict; Max-Age=60",
        utf8_percent_encode(message, NON_ALPHANUMERIC)
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    c: Chrome,
    status: u16,
    message: String,
}

/// A page saying what went wrong.
pub(crate) fn error_page(f: &Failure) -> Response {
    let t = ErrorPage {
        c: Chrome {
            title: f.status.canonical_reason().unwrap_or("Error").to_string(),
            nav: "",
            csrf: String::new(),
            flash: None,
            login: false,
        },
        status: f.status.as_u16(),
        message: f.message.clone(),
    };
    match t.render() {
        Ok(html) => (f.status, Html(html)).into_response(),
        Err(_) => (f.status, f.message.clone()).into_response(),
    }
}

/// Handler errors become error pages.
pub(crate) struct PageError(Failure);

impl<E: Into<Failure>> From<E> for PageError {
    fn from(e: E) -> PageError {
        PageError(e.into())
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Failure {
        e.0
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        error_page(&self.0)
    }
}

type PageResult = Result<Response, PageError>;

fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, PageError> {
    p.map(|Path(v)| v)
        .map_err(|e| PageError(Failure::bad_request(e.body_text())))
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, PageError> {
    q.map(|Query(v)| v)
        .map_err(|e| PageError(Failure::bad_request(e.body_text())))
}

pub(crate) async fn not_found() -> Response {
    error_page(&Failure::not_found("no such page"))
}

pub(crate) async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("../assets/app.css"),
    )
        .into_response()
}

pub(crate) async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("../assets/app.js"),
    )
        .into_response()
}

// ---------------------------------------------------------------- DAG list

struct DagRow {
    s: DagSummary,
    href: String,
    next: String,
    marks: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "dags.html")]
struct DagsPage {
    c: Chrome,
    rows: Vec<DagRow>,
    tags: Vec<String>,
    tag: String,
    errors: Vec<String>,
}

#[derive(Deserialize)]
pub(crate) struct TagQuery {
    tag: Option<String>,
}

pub(crate) async fn dag_list(
    State(s): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    q: Result<Query<TagQuery>, QueryRejection>,
) -> PageResult {
    let q = query(q)?;
    let tag = q.tag.filter(|t| !t.is_empty());
    let list = dags::summaries(s.store(), &s.0.dags, tag.as_deref()).await?;
    let rows = list
        .into_iter()
        .map(|d| DagRow {
            href: dag_href(&d.dag_id),
            next: opt_ts(d.next_logical_date),
            marks: d
                .recent_runs
                .iter()
                .map(|r| {
                    (
                        run_href(&d.dag_id, &r.run_id),
                        r.state.to_string(),
                        format!("{} ({})", r.run_id, r.state),
                    )
                })
                .collect(),
            s: d,
        })
        .collect();
    let errors = s
        .store()
        .import_errors()
        .await?
        .into_iter()
        .flat_map(|e| e.message.lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    let c = chrome(&s, &headers, &csrf, "DAGs".into(), "dags");
    let page = DagsPage {
        c,
        rows,
        tags: dags::all_tags(s.store()).await?,
        tag: tag.unwrap_or_default(),
        errors,
    };
    Ok(render(&page, StatusCode::OK))
}

#[derive(Deserialize)]
pub(crate) struct PauseForm {
    paused: String,
    next: Option<String>,
}

pub(crate) async fn pause(
    State(s): State<AppState>,
    p: Result<Path<String>, PathRejection>,
    Form(f): Form<PauseForm>,
) -> PageResult {
    let id = path(p)?;
    s.0.dags.get(s.store(), &id).await?;
    let paused = f.paused == "true";
    s.store().set_paused(&id, paused).await?;
    s.store().notify().await?;
    let back = f
        .next
        .filter(|n| n.starts_with('/') && !n.starts_with("//"))
        .unwrap_or_else(|| "/".into());
    Ok(flash_redirect(
        &back,
        &format!("{id} {}", if paused { "paused" } else { "unpaused" }),
    ))
}

// ---------------------------------------------------------------- DAG page

/// The header shared by a DAG's pages.
struct DagHead {
    dag_id: String,
    description: String,
    schedule: String,
    timezone: String,
    tags: Vec<String>,
    is_paused: bool,
    href: String,
    tab: &'static str,
    here: String,
}

fn head(rec: &DagRecord, dag: &Dag, tab: &'static str, here: String) -> DagHead {
    DagHead {
        dag_id: dag.dag_id.clone(),
        description: dag.description.clone(),
        schedule: dag.timetable.schedule.as_text().to_string(),
        timezone: dag.timetable.tz.name().to_string(),
        tags: dag.tags.clone(),
        is_paused: rec.is_paused,
        href: dag_href(&dag.dag_id),
        tab,
        here,
    }
}

struct GridCol {
    href: String,
    title: String,
    state: String,
    label: String,
    selected: bool,
    select_href: String,
}

struct GridRow {
    task_id: String,
    cells: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "dag.html")]
struct DagPage {
    c: Chrome,
    h: DagHead,
    cols: Vec<GridCol>,
    rows: Vec<GridRow>,
    older: Option<String>,
    newest: Option<String>,
    graph: Graph,
    node_w: u32,
    node_h: u32,
    selected: String,
}

#[derive(Deserialize)]
pub(crate) struct GridQuery {
    before: Option<String>,
    run: Option<String>,
}

pub(crate) async fn dag_grid(
    State(s): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    p: Result<Path<String>, PathRejection>,
    q: Result<Query<GridQuery>, QueryRejection>,
) -> PageResult {
    let id = path(p)?;
    let q = query(q)?;
    let (rec, dag) = s.0.dags.get(s.store(), &id).await?;
    let before = q
        .before
        .as_deref()
        .filter(|b| !b.is_empty())
        .map(|b| parse_cursor(b, "before"))
        .transpose()?;
    let page = dags::run_page(s.store(), &id, before, GRID_RUNS).await?;
    let mut runs: Vec<RunRecord> = page.runs;
    runs.reverse(); // oldest left, newest right
    let states = dags::states_by_run(s.store(), &runs).await?;
    let selected = q
        .run
        .clone()
        .filter(|r| runs.iter().any(|x| &x.run_id == r))
        .or_else(|| runs.last().map(|r| r.run_id.clone()))
        .unwrap_or_default();
    let base = dag_href(&id);
    let keep_before = q
        .before
        .as_deref()
        .map(|b| format!("before={}&", utf8_percent_encode(b, NON_ALPHANUMERIC)))
        .unwrap_or_default();
    let cols = runs
        .iter()
        .map(|r| GridCol {
            href: run_href(&id, &r.run_id),
            title: format!("{} · {} · {}", r.run_id, r.state, ts(r.logical_date)),
            state: r.state.to_string(),
            label: r.logical_date.format("%m-%d %H:%M").to_string(),
            selected: r.run_id == selected,
            select_href: format!(
                "{base}?{keep_before}run={}",
                utf8_percent_encode(&r.run_id, NON_ALPHANUMERIC)
            ),
        })
        .collect();
    let rows = dag
        .tasks
        .iter()
        .map(|t| GridRow {
            task_id: t.id.clone(),
            cells: runs
                .iter()
                .map(|r| {
                    let st = states
                        .get(&r.id)
                        .and_then(|m| m.get(&t.id))
                        .map_or("none".to_string(), ToString::to_string);
                    (
                        ti_href(&id, &r.run_id, &t.id),
                        format!("{} · {} · {st}", t.id, r.run_id),
                        st,
                    )
                })
                .collect(),
        })
        .collect();
    let sel_pk = runs.iter().find(|r| r.run_id == selected).map(|r| r.id);
    let graph = svg::graph(&dag, |task| {
        sel_pk
            .and_then(|pk| states.get(&pk))
            .and_then(|m| m.get(task))
            .map(ToString::to_string)
    });
    let c = chrome(&s, &headers, &csrf, format!("{id} · grid"), "dags");
    let t = DagPage {
        c,
        h: head(&rec, &dag, "grid", base.clone()),
        cols,
        rows,
        older: page.next_before.map(|b| {
            format!(
                "{base}?before={}",
                utf8_percent_encode(&b.to_rfc3339(), NON_ALPHANUMERIC)
            )
        }),
        newest: before.map(|_| base.clone()),
        graph,
        node_w: svg::NODE_W,
        node_h: svg::NODE_H,
        selected,
    };
    Ok(render(&t, StatusCode::OK))
}

#[derive(Template)]
#[template(path = "code.html")]
struct CodePage {
    c: Chrome,
    h: DagHead,
    fileloc: String,
    lines: Vec<(usize, String)>,
}

pub(crate) async fn dag_code(
    State(s): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    p: Result<Path<String>, PathRejection>,
) -> PageResult {
    let id = path(p)?;
    let (rec, dag) = s.0.dags.get(s.store(), &id).await?;
    let c = chrome(&s, &headers, &csrf, format!("{id} · code"), "dags");
    let t = CodePage {
        c,
        h: head(&rec, &dag, "code", format!("{}/code", dag_href(&id))),
        fileloc: rec.fileloc.clone(),
        lines: rec
            .source
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.to_string()))
            .collect(),
    };
    Ok(render(&t, StatusCode::OK))
}

// ---------------------------------------------------------------- trigger

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
        h: head(&rec, &dag, "trigger", format!("{}/trigger", dag_href(&id))),
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
        h: head(&rec, &dag, "trigger", format!("{}/trigger", dag_href(&id))),
        fields: fs,
        logical_date: ld_text,
        problems,
    };
    Ok(render(&t, StatusCode::UNPROCESSABLE_ENTITY))
}

// ---------------------------------------------------------------- backfills

struct BackfillRow {
    id: i64,
    state: String,
    range: String,
    reprocess: String,
    created: String,
    done: usize,
    total: usize,
    pct: usize,
    failed: usize,
    running: bool,
}

#[derive(Template)]
#[template(path = "backfills.html")]
struct BackfillsPage {
    c: Chrome,
    h: DagHead,
    rows: Vec<BackfillRow>,
    form: BackfillFormValues,
    problems: Vec<String>,
    plan: Vec<(String, String, String)>,
    plan_summary: String,
}

#[derive(Default, Deserialize)]
pub(crate) struct BackfillFormValues {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    reprocess: String,
    #[serde(default)]
    max_active_runs: String,
    #[serde(default)]
    reverse: Option<String>,
    #[serde(default)]
    action: String,
    #[serde(default, rename = "_csrf")]
    _csrf: String,
}

async fn backfill_rows(s: &AppState, dag_id: &str) -> Result<Vec<BackfillRow>, Failure> {
    let mut rows = Vec::new();
    for bf in s.store().list_backfills(Some(dag_id), None, 50).await? {
        let (p, _) = api::with_progress(s, &bf).await?;
        let done = p.finished();
        rows.push(BackfillRow {
            id: bf.id,
            state: bf.state.to_string(),
            range: format!("{} → {}", ts(bf.from_date), ts(bf.to_date)),
            reprocess: bf.reprocess.to_string(),
            created: ts(bf.created_at),
            done,
            total: p.total,
            pct: (done * 100).checked_div(p.total).unwrap_or(100),
            failed: p.failed,
            running: bf.state == scheduler::model::BackfillState::Running,
        });
    }
    Ok(rows)
}

pub(crate) async fn backfills(
    State(s): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    p: Result<Path<String>, PathRejection>,
) -> PageResult {
    let id = path(p)?;
    let (rec, dag) = s.0.dags.get(s.store(), &id).await?;
    let c = chrome(&s, &headers, &csrf, format!("{id} · backfills"), "dags");
    let t = BackfillsPage {
        c,
        h: head(
            &rec,
            &dag,
            "backfills",
            format!("{}/backfills", dag_href(&id)),
        ),
        rows: backfill_rows(&s, &id).await?,
        form: BackfillFormValues {
            max_active_runs: "1".into(),
            reprocess: "missing".into(),
            ..Default::default()
        },
        problems: Vec::new(),
        plan: Vec::new(),
        plan_summary: String::new(),
    };
    Ok(render(&t, StatusCode::OK))
}

pub(crate) async fn backfill_submit(
    State(s): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    p: Result<Path<String>, PathRejection>,
    Form(f): Form<BackfillFormValues>,
) -> PageResult {
    let id = path(p)?;
    let (rec, dag) = s.0.dags.get(s.store(), &id).await?;
    let mut problems = Vec::new();
    let max_active_runs = match f.max_active_runs.trim() {
        "" => Some(1),
        t => match t.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                problems.push(format!("max active runs {t:?} is not a whole number"));
                None
            }
        },
    };
    let dry_run = f.action == "plan";
    let mut plan = Vec::new();
    let mut plan_summary = String::new();
    if problems.is_empty() {
        let req = BackfillBody {
            dag_id: id.clone(),
            from: f.from.trim().to_string(),
            to: f.to.trim().to_string(),
            reprocess: Some(f.reprocess.clone()),
            max_active_runs,
            reverse: f.reverse.is_some(),
            conf: Value::Null,
            dry_run,
        };
        match api::do_backfill(&s, req).await {
            Ok(BackfillOutcome::Created(bf, n)) => {
                return Ok(flash_redirect(
                    &format!("{}/backfills", dag_href(&id)),
                    &format!("backfill {} created: {n} date(s)", bf.id),
                ));
            }
            Ok(BackfillOutcome::Plan(p)) => {
                let count = |a: &str| p.iter().filter(|x| x.2 == a).count();
                plan_summary = format!(
                    "{} date(s): {} to create, {} to clear and re-run, {} left alone. Nothing was changed.",
                    p.len(),
                    count("create"),
                    count("clear"),
                    count("skip")
                );
                plan = p.into_iter().map(|(a, b, c)| (ts(a), ts(b), c)).collect();
            }
            Err(e) => problems.push(e.message),
        }
    }
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let c = chrome(&s, &headers, &csrf, format!("{id} · backfills"), "dags");
    let t = BackfillsPage {
        c,
        h: head(
            &rec,
            &dag,
            "backfills",
            format!("{}/backfills", dag_href(&id)),
        ),
        rows: backfill_rows(&s, &id).await?,
        form: f,
        problems,
        plan,
        plan_summary,
    };
    Ok(render(&t, status))
}

pub(crate) async fn backfill_cancel(
    State(s): State<AppState>,
    p: Result<Path<i64>, PathRejection>,
) -> PageResult {
    let id = path(p)?;
    api::find_backfill(&s, id).await?;
    let bf = scheduler::backfill::cancel(s.store(), id).await?;
    Ok(flash_redirect(
        &format!("{}/backfills", dag_href(&bf.dag_id)),
        &format!("backfill {id} cancelled"),
    ))
}

// ---------------------------------------------------------------- run page

struct TiRow {
    task_id: String,
    href: String,
    state: String,
    tries: String,
    start: String,
    end: String,
    duration: String,
    busy: bool,
    clear_href: String,
    mark_href: String,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    c: Chrome,
    h: DagHead,
    run: RunRecord,
    conf: String,
    duration: String,
    tis: Vec<TiRow>,
    bars: Vec<Bar>,
    total: String,
    run_href: String,
}

pub(crate) async fn run_page(
    State(s): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    p: Result<Path<(String, String)>, PathRejection>,
) -> PageResult {
    let (dag_id, run_id) = path(p)?;
    let (rec, dag) = s.0.dags.get(s.store(), &dag_id).await?;
    let (run, tis) = dags::run_with_tasks(s.store(), &dag, &run_id).await?;
    let now = Utc::now();
    let spans: Vec<_> = tis
        .iter()
        .map(|t| {
            (
                t.task_id.clone(),
                t.state.to_string(),
                t.start_date,
                t.end_date,
            )
        })
        .collect();
    let (bars, total_ms) = svg::gantt(&spans, now);
    let rows = tis
        .iter()
        .map(|t| ti_row(&dag_id, &run_id, t, now))
        .collect();
    let duration = match (run.start_date, run.end_date) {
        (Some(a), Some(b)) => human_ms((b - a).num_milliseconds()),
        (Some(a), None) => format!("{} so far", human_ms((now - a).num_milliseconds())),
        _ => String::new(),
    };
    let c = chrome(&s, &headers, &csrf, format!("{dag_id} · {run_id}"), "dags");
    let t = RunPage {
        c,
        h: head(&rec, &dag, "run", run_href(&dag_id, &run_id)),
        conf: serde_json::to_string_pretty(&run.conf).unwrap_or_default(),
        duration,
        tis: rows,
        bars,
        total: human_ms(total_ms),
        run_href: run_href(&dag_id, &run_id),
        run,
    };
    Ok(render(&t, StatusCode::OK))
}

fn ti_row(dag_id: &str, run_id: &str, t: &TaskInstance, now: DateTime<Utc>) -> TiRow {
    let href = ti_href(dag_id, run_id, &t.task_id);
    TiRow {
        task_id: t.task_id.clone(),
        state: t.state.to_string(),
        tries: format!("{}/{}", t.try_number, t.max_tries),
        start: opt_ts(t.start_date),
        end: opt_ts(t.end_date),
        duration: match (t.duration_ms, t.start_date, t.state) {
            (Some(ms), _, _) => human_ms(ms),
            (None, Some(s), TaskState::Running) => human_ms((now - s).num_milliseconds()),
            _ => String::new(),
        },
        busy: matches!(t.state, TaskState::Queued | TaskState::Running),
        clear_href: format!("{href}/clear"),
        mark_href: format!("{href}/mark"),
        href,
    }
}

#[derive(Deserialize)]
pub(crate) struct MarkForm {
    state: String,
}

pub(crate) async fn run_mark(
    State(s): State<AppState>,
    p: Result<Path<(String, String)>, PathRejection>,
    Form(f): Form<MarkForm>,
) -> PageResult {
    let (dag_id, run_id) = path(p)?;
    let success = api::mark_state(&f.state)?;
    s.0.dags.get(s.store(), &dag_id).await?;
    let run = api::find_run(&s, &dag_id, &run_id).await?;
    let r = scheduler::actions::mark_run(s.store(), &run, success).await?;
    Ok(flash_redirect(
        &run_href(&dag_id, &run_id),
        &format!(
            "run marked {}: {} task(s) changed{}",
            f.state,
            r.changed.len(),
            busy_note(&r.busy)
        ),
    ))
}

fn busy_note(busy: &[String]) -> String {
    if busy.is_empty() {
        String::new()
    } else {
        format!("; still executing, left alone: {}", busy.join(", "))
    }
}

#[derive(Deserialize)]
pub(crate) struct ClearForm {
    downstream: Option<String>,
    upstream: Option<String>,
}

pub(crate) async fn task_clear(
    State(s): State<AppState>,
    p: Result<Path<(String, String, String)>, PathRejection>,
    Form(f): Form<ClearForm>,
) -> PageResult {
    let (dag_id, run_id, task_id) = path(p)?;
    let r = api::do_clear(
        &s,
        &dag_id,
        &run_id,
        &task_id,
        ClearBody {
            downstream: f.downstream.is_some(),
            upstream: f.upstream.is_some(),
            failed_only: false,
        },
    )
    .await?;
    let msg = if r.changed.is_empty() {
        format!("nothing to clear{}", busy_note(&r.busy))
    } else {
        format!("cleared {}{}", r.changed.join(", "), busy_note(&r.busy))
    };
    Ok(flash_redirect(&run_href(&dag_id, &run_id), &msg))
}

pub(crate) async fn task_mark(
    State(s): State<AppState>,
    p: Result<Path<(String, String, String)>, PathRejection>,
    Form(f): Form<MarkForm>,
) -> PageResult {
    let (dag_id, run_id, task_id) = path(p)?;
    let success = api::mark_state(&f.state)?;
    let r = api::do_mark_task(&s, &dag_id, &run_id, &task_id, success).await?;
    Ok(flash_redirect(
        &run_href(&dag_id, &run_id),
        &format!(
            "{task_id} marked {}{}",
            f.state,
            if r.changed.is_empty() {
                " (no change)"
            } else {
                ""
            }
        ),
    ))
}

// ---------------------------------------------------------------- task page

#[derive(Template)]
#[template(path = "task.html")]
struct TaskPage {
    c: Chrome,
    h: DagHead,
    ti: TiRow,
    run_href: String,
    run_id: String,
    error: String,
    hostname: String,
    tries: Vec<(u32, String, bool)>,
    try_number: u32,
    lines: Vec<(i64, String, String)>,
    live: bool,
    stream_href: String,
    after: i64,
}

#[derive(Deserialize)]
pub(crate) struct TryQuery {
    #[serde(rename = "try")]
    try_number: Option<u32>,
    after: Option<i64>,
}

pub(crate) async fn task_page(
    State(s): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    p: Result<Path<(String, String, String)>, PathRejection>,
    q: Result<Query<TryQuery>, QueryRejection>,
) -> PageResult {
    let (dag_id, run_id, task_id) = path(p)?;
    let q = query(q)?;
    let (rec, dag) = s.0.dags.get(s.store(), &dag_id).await?;
    let ti = api::find_ti(&s, &dag_id, &run_id, &task_id).await?;
    let try_number = api::pick_try(&ti, q.try_number)?;
    let lines = s.store().read_logs(ti.id, try_number, 0).await?;
    let after = lines.last().map_or(0, |l| l.id);
    let live = try_number == ti.try_number.max(1) && api::is_live(ti.state);
    let href = ti_href(&dag_id, &run_id, &task_id);
    let c = chrome(&s, &headers, &csrf, format!("{task_id} · {run_id}"), "dags");
    let t = TaskPage {
        c,
        h: head(&rec, &dag, "task", href.clone()),
        run_href: run_href(&dag_id, &run_id),
        run_id: run_id.clone(),
        error: ti.error.clone().unwrap_or_default(),
        hostname: ti
            .hostname
            .clone()
            .map(|h| format!("{h} (pid {})", ti.pid.unwrap_or(0)))
            .unwrap_or_default(),
        tries: (1..=ti.try_number.max(1))
            .map(|n| (n, format!("{href}?try={n}"), n == try_number))
            .collect(),
        try_number,
        lines: lines
            .into_iter()
            .map(|l| (l.id, l.ts.format("%H:%M:%S%.3f").to_string(), l.line))
            .collect(),
        live,
        stream_href: format!("{href}/log/stream?try={try_number}"),
        after,
        ti: ti_row(&dag_id, &run_id, &ti, Utc::now()),
    };
    Ok(render(&t, StatusCode::OK))
}

/// How often a live tail looks for new lines.
const TAIL_EVERY: Duration = Duration::from_millis(500);

/// Server-sent events: `line` events (id = log line id, data = JSON
/// `{ts, line}`) until the try ends, then one `end` event. A reconnecting
/// browser resumes after `Last-Event-ID`.
pub(crate) async fn log_stream(
    State(s): State<AppState>,
    headers: HeaderMap,
    p: Result<Path<(String, String, String)>, PathRejection>,
    q: Result<Query<TryQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let (dag_id, run_id, task_id) = path(p)?;
    let q = query(q)?;
    let ti = api::find_ti(&s, &dag_id, &run_id, &task_id).await?;
    let try_number = api::pick_try(&ti, q.try_number)?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    let start = resume.or(q.after).unwrap_or(0);
    let stop = s.0.stop.clone();
    let ti_id = ti.id;
    let stream = futures::stream::unfold(
        (s, start, false, true),
        move |(s, mut after, done, first)| {
            let stop = stop.clone();
            let (dag_id, run_id, task_id) = (dag_id.clone(), run_id.clone(), task_id.clone());
            async move {
                if done {
                    return None;
                }
                let mut tick = tokio::time::interval(TAIL_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                if !first {
                    tick.tick().await;
                }
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return Some((vec![Ok::<_, Infallible>(Event::default().event("end").data("server stopping"))], (s, after, true, false))),
                        _ = tick.tick() => {}
                    }
                    // State first: lines written before a try ends are read below.
                    let state = s
                        .store()
                        .get_task_instance(&dag_id, &run_id, &task_id)
                        .await
                        .ok()
                        .flatten();
                    let lines = s.store().read_logs(ti_id, try_number, after).await.unwrap_or_default();
                    let finished = state.is_none_or(|t| try_number < t.try_number || !api::is_live(t.state));
                    let mut events = Vec::new();
                    for l in lines {
                        after = l.id;
                        events.push(Ok(Event::default()
                            .event("line")
                            .id(l.id.to_string())
                            .data(serde_json::json!({"ts": l.ts.format("%H:%M:%S%.3f").to_string(), "line": l.line}).to_string())));
                    }
                    if finished {
                        events.push(Ok(Event::default().event("end").data("try finished")));
                        return Some((events, (s, after, true, false)));
                    }
                    if !events.is_empty() {
                        return Some((events, (s, after, false, false)));
                    }
                }
            }
        },
    )
    .flat_map(futures::stream::iter);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

// ---------------------------------------------------------------- streams

#[derive(Template)]
#[template(path = "streams.html")]
struct StreamsPage {
    c: Chrome,
    streams: Vec<StreamView>,
}

struct StreamView {
    s: StreamStatus,
    state_class: String,
    last_commit: String,
    size: String,
    version: String,
    lag: String,
    partitions: Vec<(String, u64, u64, String)>,
}

pub(crate) async fn streams(
    State(s): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
) -> PageResult {
    let all = crate::streams::all(&s.0.streams, &s.0.offset_readers, s.0.metrics.as_deref()).await;
    let views = all
        .into_iter()
        .map(|st| StreamView {
            state_class: st.state.replace(' ', "-"),
            last_commit: opt_ts(st.last_commit),
            size: bytes(st.bytes),
            version: st.version.map_or("-".into(), |v| v.to_string()),
            lag: st.total_lag.map_or("unknown".into(), |l| l.to_string()),
            partitions: st
                .partitions
                .iter()
                .map(|p| (p.path.clone(), p.files, p.rows, bytes(p.bytes)))
                .collect(),
            s: st,
        })
        .collect();
    let c = chrome(&s, &headers, &csrf, "Streams".into(), "streams");
    Ok(render(&StreamsPage { c, streams: views }, StatusCode::OK))
}

// ---------------------------------------------------------------- login

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    c: Chrome,
    next: String,
    needed: bool,
    error: String,
}

pub(crate) fn login_page(csrf: &Csrf, next: &str, needed: bool, error: Option<&str>) -> Response {
    let t = LoginPage {
        c: Chrome {
            title: "Log in".into(),
            nav: "",
            csrf: csrf.0.clone(),
            flash: None,
            login: false,
        },
        next: next.to_string(),
        needed,
        error: error.unwrap_or_default().to_string(),
    };
    render(&t, StatusCode::OK)
}
