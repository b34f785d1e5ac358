//! The DAG list (with pause/unpause) and a DAG's pages: the grid of recent
//! runs with the task graph, and its code.

use askama::Template;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use scheduler::model::RunRecord;
use serde::Deserialize;

use crate::cookies::Csrf;
use crate::dags::{self, DagSummary, parse_cursor};
use crate::state::AppState;
use crate::svg::{self, Graph};

use super::layout::{
    Chrome, DagHead, PageResult, chrome, dag_href, flash_redirect, head, path, query, render,
    run_href, tab_head, ti_href, ts,
};

/// Runs per grid page.
const GRID_RUNS: i64 = 25;

struct DagRow {
    s: DagSummary,
    href: String,
    /// When the next run is created, in the DAG's zone (empty: none).
    next: String,
    /// Its logical date, for the tooltip.
    next_title: String,
    /// `false` for a DAG without a schedule (triggered runs only).
    scheduled: bool,
    marks: Vec<(String, String, String)>,
    /// `(state, count, href)` of each state with runs.
    counts: Vec<(String, i64)>,
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
            next: d.next_run_local.clone(),
            next_title: d
                .next_logical_date
                .map(|t| format!("run for logical date {} UTC", ts(t)))
                .unwrap_or_default(),
            scheduled: d.schedule != "none",
            counts: d
                .run_counts
                .iter()
                .filter(|c| c.count > 0)
                .map(|c| (c.state.to_string(), c.count))
                .collect(),
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

struct GridCol {
    href: String,
    title: String,
    state: String,
    label: String,
    run_type: String,
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
    let (rec, dag) = s.0.dags.read(s.store(), &id).await?;
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
            title: format!(
                "{} · {} · {} run · logical date {} UTC",
                r.run_id,
                r.state,
                r.run_type,
                ts(r.logical_date)
            ),
            state: r.state.to_string(),
            label: r.logical_date.format("%Y-%m-%d %H:%M").to_string(),
            run_type: r.run_type.to_string(),
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
    let (rec, dag) = s.0.dags.read(s.store(), &id).await?;
    let c = chrome(&s, &headers, &csrf, format!("{id} · code"), "dags");
    let t = CodePage {
        c,
        h: tab_head(&rec, &dag, "code"),
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
