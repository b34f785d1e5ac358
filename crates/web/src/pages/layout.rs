//! What every page shares: the chrome (title, navigation, CSRF token, flash
//! message), rendering, error pages, links with percent-encoded segments,
//! and the static assets.

use askama::Template;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use scheduler::dag::Dag;
use scheduler::model::{DagRecord, TaskInstance};
use scheduler::state::TaskState;

use crate::cookies::{Csrf, FLASH_COOKIE, TOKEN_COOKIE, cookie};
use crate::error::{ApiError, Failure};
use crate::state::AppState;
use crate::svg::human_ms;

/// Characters kept as they are in a path segment.
pub(crate) const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b':');

/// A path segment, percent-encoded.
pub(crate) fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

pub(crate) fn dag_href(dag_id: &str) -> String {
    format!("/dags/{}", seg(dag_id))
}

pub(crate) fn run_href(dag_id: &str, run_id: &str) -> String {
    format!("/dags/{}/runs/{}", seg(dag_id), seg(run_id))
}

pub(crate) fn ti_href(dag_id: &str, run_id: &str, task_id: &str) -> String {
    format!(
        "/dags/{}/runs/{}/tasks/{}",
        seg(dag_id),
        seg(run_id),
        seg(task_id)
    )
}

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    scheduler::timetable::format_utc(t)
}

pub(crate) fn opt_ts(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(String::new, ts)
}

pub(crate) fn bytes(n: u64) -> String {
    lake::units::format_bytes(n)
}

/// What every page has: title, navigation, CSRF token, flash message.
pub(crate) struct Chrome {
    pub title: String,
    pub nav: &'static str,
    pub csrf: String,
    pub flash: Option<String>,
    pub login: bool,
}

pub(crate) fn chrome(
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
            .is_some_and(|t| cookie(headers, TOKEN_COOKIE) == Some(t.as_str()));
    Chrome {
        title,
        nav,
        csrf: csrf.0.clone(),
        flash,
        login: s.0.token.is_some() && !logged_in,
    }
}

/// Renders a template (the guard clears a flash message the page showed).
pub(crate) fn render<T: Template>(t: &T, status: StatusCode) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => error_page(&Failure::internal("rendering a page", &e)),
    }
}

/// Redirects with a message shown once on the next page.
pub(crate) fn flash_redirect(to: &str, message: &str) -> Response {
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
pub(crate) struct ErrorPage {
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

pub(crate) type PageResult = Result<Response, PageError>;

pub(crate) fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, PageError> {
    p.map(|Path(v)| v)
        .map_err(|e| PageError(Failure::bad_request(e.body_text())))
}

pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, PageError> {
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
        include_str!("../../assets/app.css"),
    )
        .into_response()
}

pub(crate) async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("../../assets/app.js"),
    )
        .into_response()
}

/// The header shared by a DAG's pages.
pub(crate) struct DagHead {
    pub(crate) dag_id: String,
    pub(crate) description: String,
    pub(crate) schedule: String,
    pub(crate) timezone: String,
    pub(crate) tags: Vec<String>,
    pub(crate) is_paused: bool,
    /// False once its file left the DAGs folder: read-only.
    pub(crate) is_active: bool,
    pub(crate) href: String,
    pub(crate) tab: &'static str,
    pub(crate) here: String,
}

/// The header of one of a DAG's sub-pages (`/dags/{id}/{tab}`).
pub(crate) fn tab_head(rec: &DagRecord, dag: &Dag, tab: &'static str) -> DagHead {
    head(rec, dag, tab, format!("{}/{tab}", dag_href(&dag.dag_id)))
}

pub(crate) fn head(rec: &DagRecord, dag: &Dag, tab: &'static str, here: String) -> DagHead {
    DagHead {
        dag_id: dag.dag_id.clone(),
        description: dag.description.clone(),
        schedule: dag.timetable.schedule.as_text().to_string(),
        timezone: dag.timetable.tz.name().to_string(),
        tags: dag.tags.clone(),
        is_paused: rec.is_paused,
        is_active: rec.is_active,
        href: dag_href(&dag.dag_id),
        tab,
        here,
    }
}

pub(crate) struct TiRow {
    pub(crate) task_id: String,
    pub(crate) href: String,
    pub(crate) state: String,
    pub(crate) tries: String,
    pub(crate) start: String,
    pub(crate) end: String,
    pub(crate) duration: String,
    /// The latest try's error, if it failed.
    pub(crate) error: String,
    pub(crate) busy: bool,
    pub(crate) clear_href: String,
    pub(crate) mark_href: String,
}

pub(crate) fn ti_row(dag_id: &str, run_id: &str, t: &TaskInstance, now: DateTime<Utc>) -> TiRow {
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
        error: t.error.clone().unwrap_or_default(),
        busy: matches!(t.state, TaskState::Queued | TaskState::Running),
        clear_href: format!("{href}/clear"),
        mark_href: format!("{href}/mark"),
        href,
    }
}

/// The Query page's address running `sql`.
pub(crate) fn query_href(sql: &str) -> String {
    let q = utf8_percent_encode(sql, NON_ALPHANUMERIC);
    format!("/query?sql={q}")
}

/// The Query page's address showing a table's first rows.
pub(crate) fn table_href(table: &str) -> String {
    query_href(&format!(
        "SELECT * FROM \"{}\" LIMIT 100",
        table.replace('"', "\"\"")
    ))
}
