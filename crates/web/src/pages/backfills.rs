//! A DAG's backfills: the list with progress, the form that creates one (with
//! a dry-run preview), and cancel.

use askama::Template;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use scheduler::backfill::{DEFAULT_MAX_ACTIVE_RUNS, Progress};
use serde::Deserialize;
use serde_json::Value;

use crate::cookies::Csrf;
use crate::error::Failure;
use crate::service::{self, BackfillBody, BackfillOutcome};
use crate::state::AppState;

use super::layout::{
    Chrome, DagHead, PageResult, chrome, dag_href, flash_redirect, path, render, run_href,
    tab_head, ts,
};

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
    max_active_runs: i64,
    /// `(logical date, action, date state, run state, run href)` per date,
    /// in the order the backfill takes them.
    dates: Vec<(String, String, String, String, String)>,
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
        let dates = s
            .store()
            .backfill_dates(bf.id, None, None, bf.reverse)
            .await?;
        let p = Progress::of(&dates);
        let done = p.finished();
        let runs = s
            .store()
            .runs_between(dag_id, bf.from_date, bf.to_date)
            .await?;
        let dates = dates
            .iter()
            .map(|d| {
                let run = d.dag_run_id.and_then(|pk| runs.iter().find(|r| r.id == pk));
                (
                    ts(d.logical_date),
                    d.action.to_string(),
                    d.state.to_string(),
                    d.run_state.map_or_else(String::new, |s| s.to_string()),
                    run.map_or_else(String::new, |r| run_href(dag_id, &r.run_id)),
                )
            })
            .collect();
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
            max_active_runs: bf.max_active_runs,
            dates,
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
    let (rec, dag) = s.0.dags.read(s.store(), &id).await?;
    let c = chrome(&s, &headers, &csrf, format!("{id} · backfills"), "dags");
    let t = BackfillsPage {
        c,
        h: tab_head(&rec, &dag, "backfills"),
        rows: backfill_rows(&s, &id).await?,
        form: BackfillFormValues {
            max_active_runs: DEFAULT_MAX_ACTIVE_RUNS.to_string(),
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
        "" => None,
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
        match service::request_backfill(&s, req).await {
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
        h: tab_head(&rec, &dag, "backfills"),
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
    service::find_backfill(&s, id).await?;
    let bf = scheduler::backfill::cancel(s.store(), id).await?;
    Ok(flash_redirect(
        &format!("{}/backfills", dag_href(&bf.dag_id)),
        &format!("backfill {id} cancelled"),
    ))
}
