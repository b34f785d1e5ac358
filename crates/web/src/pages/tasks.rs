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
use chrono::Utc;
use futures::StreamExt;
use serde::Deserialize;

use crate::cookies::Csrf;
use crate::service;
use crate::state::AppState;

use super::layout::{
    Chrome, DagHead, PageError, PageResult, TiRow, chrome, head, path, query, render, run_href,
    ti_href, ti_row,
};

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
    let ti = service::find_ti(&s, &dag_id, &run_id, &task_id).await?;
    let try_number = service::pick_try(&ti, q.try_number)?;
    let lines = s.store().read_logs(ti.id, try_number, 0).await?;
    let after = lines.last().map_or(0, |l| l.id);
    let live = try_number == ti.try_number.max(1) && service::is_live(ti.state);
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
