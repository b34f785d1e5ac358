//! The operations the JSON API and the HTML pages share: find a run, a task
//! instance or a backfill (with a "not found" a user can act on), clear and
//! mark, request a backfill, and the small rules both apply (which try a log
//! request means, whether a try may still write). Handlers on both sides
//! only translate requests and render answers.

use chrono::{DateTime, Utc};
use scheduler::actions::{ActionReport, ClearOptions};
use scheduler::backfill::{self, Progress};
use scheduler::model::{BackfillRecord, NewBackfill, Reprocess, RunRecord, TaskInstance};
use scheduler::state::TaskState;
use scheduler::timetable::parse_datetime;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::Failure;
use crate::state::AppState;

pub(crate) async fn find_run(
    s: &AppState,
    dag_id: &str,
    run_id: &str,
) -> Result<RunRecord, Failure> {
    Ok(scheduler::runs::find_run(s.store(), dag_id, run_id).await?)
}

/// `success` → true, `failed` → false.
pub(crate) fn mark_state(state: &str) -> Result<bool, Failure> {
    match state {
        "success" => Ok(true),
        "failed" => Ok(false),
        other => Err(Failure::invalid(format!(
            "state {other:?}: mark a run or task \"success\" or \"failed\""
        ))),
    }
}

pub(crate) async fn find_ti(
    s: &AppState,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
) -> Result<TaskInstance, Failure> {
    Ok(
        scheduler::runs::find_task_instance(s.store(), dag_id, run_id, task_id)
            .await?
            .1,
    )
}

/// The try a log request means: the one asked for, else the latest.
pub(crate) fn pick_try(ti: &TaskInstance, asked: Option<u32>) -> Result<u32, Failure> {
    match asked {
        None => Ok(ti.try_number.max(1)),
        Some(t) if t >= 1 && t <= ti.try_number.max(1) => Ok(t),
        Some(t) => Err(Failure::not_found(format!(
            "try {t} of task {:?} does not exist (tries so far: {})",
            ti.task_id, ti.try_number
        ))),
    }
}

/// Whether a task instance may still write log lines for its current try.
pub(crate) fn is_live(state: TaskState) -> bool {
    matches!(
        state,
        TaskState::Queued | TaskState::Running | TaskState::Scheduled | TaskState::Pending
    )
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ClearBody {
    pub downstream: bool,
    pub upstream: bool,
    pub failed_only: bool,
}

pub(crate) async fn clear_task(
    s: &AppState,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    c: ClearBody,
) -> Result<ActionReport, Failure> {
    let (_, dag) = s.0.dags.get(s.store(), dag_id).await?;
    let run = find_run(s, dag_id, run_id).await?;
    let opts = ClearOptions {
        task: Some(task_id.to_string()),
        downstream: c.downstream,
        upstream: c.upstream,
        failed_only: c.failed_only,
    };
    Ok(scheduler::actions::clear(s.store(), &dag, &run, &opts).await?)
}

/// Clears every task of a run, or only its failed and upstream_failed ones.
pub(crate) async fn clear_run(
    s: &AppState,
    dag_id: &str,
    run_id: &str,
    failed_only: bool,
) -> Result<ActionReport, Failure> {
    let (_, dag) = s.0.dags.get(s.store(), dag_id).await?;
    let run = find_run(s, dag_id, run_id).await?;
    let opts = ClearOptions {
        failed_only,
        ..ClearOptions::default()
    };
    Ok(scheduler::actions::clear(s.store(), &dag, &run, &opts).await?)
}

pub(crate) async fn mark_task(
    s: &AppState,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
    success: bool,
) -> Result<ActionReport, Failure> {
    let (_, dag) = s.0.dags.get(s.store(), dag_id).await?;
    let run = find_run(s, dag_id, run_id).await?;
    Ok(scheduler::actions::mark_task(s.store(), &dag, &run, task_id, success).await?)
}

/// A backfill with its progress counts.
pub(crate) async fn backfill_with_progress(
    s: &AppState,
    bf: &BackfillRecord,
) -> Result<(Progress, Value), Failure> {
    let dates = s.store().backfill_dates(bf.id, None, None, false).await?;
    let p = Progress::of(&dates);
    let v = json!({"backfill": bf, "progress": p, "finished": p.finished()});
    Ok((p, v))
}

/// A backfill request (API body and UI form).
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackfillBody {
    pub dag_id: String,
    pub from: String,
    pub to: String,
    #[serde(default)]
    #[schemars(extend("enum" = ["missing", "failed", "all"]))]
    pub reprocess: Option<String>,
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_active_runs: Option<i64>,
    #[serde(default)]
    pub reverse: bool,
    #[serde(default)]
    #[schemars(extend("type" = "object"))]
    pub conf: Value,
    #[serde(default)]
    pub dry_run: bool,
}

/// What a backfill request produced.
pub(crate) enum BackfillOutcome {
    /// Recorded: the schedulers run it.
    Created(BackfillRecord, usize),
    /// Dry run: the plan (logical date, interval end, action).
    Plan(Vec<(DateTime<Utc>, DateTime<Utc>, String)>),
}

pub(crate) async fn request_backfill(
    s: &AppState,
    b: BackfillBody,
) -> Result<BackfillOutcome, Failure> {
    let (_, dag) = s.0.dags.get(s.store(), &b.dag_id).await?;
    let tz = dag.timetable.tz;
    let from = parse_datetime(&b.from, tz)
        .map_err(|e| Failure::invalid(format!("from {:?}: {e}", b.from)))?;
    let to =
        parse_datetime(&b.to, tz).map_err(|e| Failure::invalid(format!("to {:?}: {e}", b.to)))?;
    let reprocess = match b.reprocess.as_deref() {
        None | Some("") => Reprocess::Missing,
        Some(r) => r
            .parse::<Reprocess>()
            .map_err(|e| Failure::invalid(format!("reprocess: {e}")))?,
    };
    let nb = NewBackfill {
        dag_id: dag.dag_id.clone(),
        from_date: from,
        to_date: to,
        reprocess,
        max_active_runs: b
            .max_active_runs
            .unwrap_or(backfill::DEFAULT_MAX_ACTIVE_RUNS),
        reverse: b.reverse,
        conf: if b.conf.is_null() { json!({}) } else { b.conf },
    };
    if b.dry_run {
        let plan = backfill::dry_run(s.store(), &dag, &nb).await?;
        return Ok(BackfillOutcome::Plan(
            plan.into_iter()
                .map(|(i, a)| (i.start, i.end, a.to_string()))
                .collect(),
        ));
    }
    let (bf, plan) = backfill::create(s.store(), &dag, &nb).await?;
    Ok(BackfillOutcome::Created(bf, plan.len()))
}

pub(crate) async fn find_backfill(s: &AppState, id: i64) -> Result<BackfillRecord, Failure> {
    s.store()
        .get_backfill(id)
        .await?
        .ok_or_else(|| Failure::not_found(format!("backfill {id} not found")))
}

// Request bodies of the JSON API (their schemas are the OpenAPI
// document's, see `openapi`).

/// `{"is_paused": bool}`: pause or unpause a DAG.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DagPatch {
    pub(crate) is_paused: bool,
}

/// A manual run: its conf (checked against the DAG's params) and logical date.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TriggerBody {
    #[serde(default)]
    #[schemars(extend("type" = "object"))]
    pub(crate) conf: Value,
    pub(crate) logical_date: Option<String>,
}

/// `{"state": "success" | "failed"}`: force an outcome.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MarkBody {
    #[schemars(extend("enum" = ["success", "failed"]))]
    pub(crate) state: String,
}

/// `{"failed_only": bool}`: clear every task of a run, or only the failed ones.
#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ClearRunBody {
    pub(crate) failed_only: bool,
}
