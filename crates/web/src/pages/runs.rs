//! A run's page (tasks, Gantt chart, actions) and the forms that mark a run
//! or clear/mark a task.

use askama::Template;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use scheduler::model::{RunRecord, TaskInstance, TryRecord};
use scheduler::state::TaskState;
use serde::Deserialize;

use crate::cookies::Csrf;
use crate::dags;
use crate::service::{self, ClearBody};
use crate::state::AppState;
use crate::svg::{self, Gantt, Span, human_ms};

use super::layout::{
    Chrome, DagHead, PageResult, TiRow, chrome, flash_redirect, head, opt_ts, path, render,
    run_href, ti_row,
};

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    c: Chrome,
    h: DagHead,
    run: RunRecord,
    conf: String,
    duration: String,
    tis: Vec<TiRow>,
    gantt: Gantt,
    /// Whether any task failed (the "clear failed tasks" button).
    any_failed: bool,
    total: String,
    first_start: String,
    run_href: String,
}

pub(crate) async fn run_page(
    State(s): State<AppState>,
    Extension(csrf): Extension<Csrf>,
    headers: HeaderMap,
    p: Result<Path<(String, String)>, PathRejection>,
) -> PageResult {
    let (dag_id, run_id) = path(p)?;
    let (rec, dag) = s.0.dags.read(s.store(), &dag_id).await?;
    let (run, tis) = dags::run_with_tasks(s.store(), &dag, &run_id).await?;
    let now = Utc::now();
    let ids: Vec<i64> = tis.iter().map(|t| t.id).collect();
    let history = s.store().tries(&ids).await?;
    let gantt = svg::gantt(&spans(&tis, &history), now);
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
        any_failed: tis
            .iter()
            .any(|t| matches!(t.state, TaskState::Failed | TaskState::UpstreamFailed)),
        total: human_ms(gantt.total_ms),
        first_start: opt_ts(gantt.first_start),
        gantt,
        run_href: run_href(&dag_id, &run_id),
        run,
    };
    Ok(render(&t, StatusCode::OK))
}

/// Every try of the run's tasks, in task order: from the try history, plus
/// the task instance's own latest try where the history lacks it (a
/// database from before try history).
fn spans(tis: &[TaskInstance], history: &[TryRecord]) -> Vec<Span> {
    let mut out = Vec::new();
    for ti in tis {
        let mine: Vec<&TryRecord> = history.iter().filter(|h| h.ti_id == ti.id).collect();
        out.extend(mine.iter().map(|h| Span {
            task_id: ti.task_id.clone(),
            try_number: h.try_number,
            state: h.state.to_string(),
            start: h.start_date,
            end: h.end_date,
        }));
        if let Some(start) = ti.start_date
            && !mine.iter().any(|h| h.try_number == ti.try_number)
        {
            out.push(Span {
                task_id: ti.task_id.clone(),
                try_number: ti.try_number,
                state: ti.state.to_string(),
                start,
                end: ti
                    .end_date
                    .or_else(|| (!ti.state.holds_slot()).then_some(start)),
            });
        }
    }
    out
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
    let success = service::mark_state(&f.state)?;
    s.0.dags.get(s.store(), &dag_id).await?;
    let run = service::find_run(&s, &dag_id, &run_id).await?;
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
pub(crate) struct RunClearForm {
    failed_only: Option<String>,
}

/// Clears a run's tasks (all, or only the failed and upstream_failed ones).
pub(crate) async fn run_clear(
    State(s): State<AppState>,
    p: Result<Path<(String, String)>, PathRejection>,
    Form(f): Form<RunClearForm>,
) -> PageResult {
    let (dag_id, run_id) = path(p)?;
    let failed_only = f.failed_only.is_some();
    let r = service::clear_run(&s, &dag_id, &run_id, failed_only).await?;
    let what = if failed_only { "failed tasks" } else { "tasks" };
    let msg = if r.changed.is_empty() {
        format!("no {what} to clear{}", busy_note(&r.busy))
    } else {
        format!("cleared {}{}", r.changed.join(", "), busy_note(&r.busy))
    };
    Ok(flash_redirect(&run_href(&dag_id, &run_id), &msg))
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
    let r = service::clear_task(
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
    let success = service::mark_state(&f.state)?;
    let r = service::mark_task(&s, &dag_id, &run_id, &task_id, success).await?;
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
