//! A task instance's page: one log per try, with a live tail over server-sent
//! events while it runs.
use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use scheduler::model::{TaskInstance, TryRecord, TryState};
use serde::Deserialize;

use crate::cookies::Csrf;
use crate::service;
use crate::state::AppState;
use crate::svg::human_ms;

use super::layout::{
    Chrome, DagHead, PageError, PageResult, TiRow, chrome, head, opt_ts, path, query, render,
    run_href, ti_href, ti_row, ts,
};

#[derive(Template)]
#[template(path = "task.html")]
struct TaskPage {
    c: Chrome,
    h: DagHead,
    ti: TiRow,
    run_href: String,
    run_id: String,
    tries: Vec<TryTab>,
    /// The selected try's facts.
    shown: TryTab,
    lines: Vec<(i64, String, String)>,
    live: bool,
    stream_href: String,
    after: i64,
}

/// One try's tab and the facts it shows.
#[derive(Clone, Default)]
struct TryTab {
    number: u32,
    href: String,
    on: bool,
    state: String,
    start: String,
    end: String,
    duration: String,
    host: String,
    error: String,
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
    let (rec, dag) = s.0.dags.read(s.store(), &dag_id).await?;
    let ti = service::find_ti(&s, &dag_id, &run_id, &task_id).await?;
    let try_number = service::pick_try(&ti, q.try_number)?;
    let history = s.store().tries(&[ti.id]).await?;
    let lines = s.store().read_logs(ti.id, try_number, 0).await?;
    let after = lines.last().map_or(0, |l| l.id);
    let href = ti_href(&dag_id, &run_id, &task_id);
    let now = Utc::now();
    let tries = try_tabs(&ti, &history, &href, try_number, now);
    let shown = tries.iter().find(|t| t.on).cloned().unwrap_or_default();
    let live = match history.iter().find(|t| t.try_number == try_number) {
        Some(t) => t.state == TryState::Running,
        // Not started yet: the tail waits for the first lines.
        None => try_number == ti.try_number.max(1) && service::is_live(ti.state),
    };
    let c = chrome(&s, &headers, &csrf, format!("{task_id} · {run_id}"), "dags");
    let t = TaskPage {
        c,
        h: head(&rec, &dag, "task", href.clone()),
        run_href: run_href(&dag_id, &run_id),
        run_id: run_id.clone(),
        tries,
        shown,
        lines: lines
            .into_iter()
            .map(|l| (l.id, l.ts.format("%H:%M:%S%.3f").to_string(), l.line))
            .collect(),
        live,
        stream_href: format!("{href}/log/stream?try={try_number}"),
        after,
        ti: ti_row(&dag_id, &run_id, &ti, now),
    };
    Ok(render(&t, StatusCode::OK))
}

/// A tab per try, each with that try's own facts: from the try history,
/// else (a database from before it, or a try not started yet) from the task
/// instance for its latest try.
fn try_tabs(
    ti: &TaskInstance,
    history: &[TryRecord],
    href: &str,
    selected: u32,
    now: DateTime<Utc>,
) -> Vec<TryTab> {
    (1..=ti.try_number.max(1))
        .map(|n| {
            let mut tab = match history.iter().find(|t| t.try_number == n) {
                Some(t) => TryTab {
                    state: t.state.to_string(),
                    start: ts(t.start_date),
                    end: opt_ts(t.end_date),
                    duration: t
                        .duration_ms
                        .or_else(|| {
                            (t.state == TryState::Running)
                                .then(|| (now - t.start_date).num_milliseconds())
                        })
                        .map(human_ms)
                        .unwrap_or_default(),
                    host: host(t.hostname.as_deref(), t.pid),
                    error: t.error.clone().unwrap_or_default(),
                    ..TryTab::default()
                },
                None if n == ti.try_number.max(1) => {
                    let row = ti_row(&ti.dag_id, &ti.run_id, ti, now);
                    TryTab {
                        state: ti.state.to_string(),
                        start: if ti.try_number == 0 {
                            "not started".into()
                        } else {
                            row.start
                        },
                        end: row.end,
                        duration: row.duration,
                        host: host(ti.hostname.as_deref(), ti.pid),
                        error: ti.error.clone().unwrap_or_default(),
                        ..TryTab::default()
                    }
                }
                None => TryTab {
                    state: "none".into(),
                    start: "not recorded (a database from before try history)".into(),
                    ..TryTab::default()
                },
            };
            tab.number = n;
            tab.href = format!("{href}?try={n}");
            tab.on = n == selected;
            tab
        })
        .collect()
}

fn host(name: Option<&str>, pid: Option<i64>) -> String {
    match (name, pid) {
        (Some(h), Some(p)) => format!("{h} (pid {p})"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    }
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
    let ti = service::find_ti(&s, &dag_id, &run_id, &task_id).await?;
    let try_number = service::pick_try(&ti, q.try_number)?;
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
                    let finished = state.is_none_or(|t| try_number < t.try_number || !service::is_live(t.state));
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
