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
    /// Query-page links for a task that writes or checks a lake table.
    lake_links: Vec<(String, String)>,
}

/// Query-page links for lake tasks: the table a `lake_sql` task writes, the
/// quality results of a `lake_check` task's run.
fn lake_links(dag: &scheduler::dag::Dag, task_id: &str, run_id: &str) -> Vec<(String, String)> {
    let Some(task) = dag.tasks.iter().find(|t| t.id == task_id) else {
        return Vec::new();
    };
    let text = |k: &str| task.settings.get(k).and_then(|v| v.as_str());
    let quote = |v: &str| format!("'{}'", v.replace('\'', "''"));
    let ident = |v: &str| format!("\"{}\"", v.replace('"', "\"\""));
    let link = |label: String, sql: String| (label, super::layout::query_href(&sql));
    match task.kind.as_str() {
        "lake_sql" | "lake_load" => text("table")
            .map(|t| vec![(format!("table {t}"), super::layout::table_href(t))])
            .unwrap_or_default(),
        "lake_check" => {
            let results = text("results_table").unwrap_or("tributary_quality");
            vec![link(
                format!("quality results in {results}"),
                format!(
                    "SELECT checked_at, try_number, expectation, kind, severity, passed, observed, rows_checked\n\
                     FROM {}\nWHERE dag_id = {} AND run_id = {} AND task_id = {}\nORDER BY checked_at DESC, expectation",
                    ident(results),
                    quote(&dag.dag_id),
                    quote(run_id),
                    quote(task_id)
                ),
            )]
        }
        _ => Vec::new(),
    }
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
        lake_links: lake_links(&dag, &task_id, &run_id),
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

#[cfg(test)]
mod tests {
    use super::lake_links;

    #[test]
    fn lake_tasks_link_to_their_table_and_quality_results() {
        let src = "dag_id = \"d\"\n[[task]]\nid = \"w\"\nkind = \"lake_sql\"\ntable = \"daily\"\nmode = \"overwrite\"\nsql = \"SELECT 1 AS x\"\n\
                   [[task]]\nid = \"c\"\nkind = \"lake_check\"\ntable = \"daily\"\n[[task.expect]]\nassert = \"count(*) > 0\"\n\
                   [[task]]\nid = \"n\"\nkind = \"noop\"\n";
        let dag =
            scheduler::dag::parse_dag(std::path::Path::new("d.toml"), src, &tasks::registry())
                .unwrap();
        let w = lake_links(&dag, "w", "r1");
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].0, "table daily");
        assert!(
            w[0].1
                .starts_with("/query?sql=SELECT%20%2A%20FROM%20%22daily%22"),
            "{}",
            w[0].1
        );
        let c = lake_links(&dag, "c", "it's");
        assert_eq!(c[0].0, "quality results in tributary_quality");
        let sql = percent_encoding::percent_decode_str(c[0].1.trim_start_matches("/query?sql="))
            .decode_utf8()
            .unwrap();
        assert!(sql.contains("run_id = 'it''s'"), "{sql}");
        assert!(lake_links(&dag, "n", "r1").is_empty());
    }
}
