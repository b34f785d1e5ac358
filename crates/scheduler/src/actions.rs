//! Operator actions on runs and task instances: clear (run again as a new
//! try), mark success / failed. Each change goes through the state machine
//! and a conditional update, so it cannot race a scheduler.

use crate::dag::Dag;
use crate::model::{Change, RunRecord, TiPatch};
use crate::state::{RunEvent, RunState, TaskEvent, TaskState};
use crate::store::Store;
use crate::{Error, Result};

/// Which task instances of a run to clear.
#[derive(Debug, Clone, Default)]
pub struct ClearOptions {
    /// Only this task (and, with the flags, its relatives); all tasks when `None`.
    pub task: Option<String>,
    /// Also every task downstream of `task`.
    pub downstream: bool,
    /// Also every task upstream of `task`.
    pub upstream: bool,
    /// Only tasks that failed or were upstream_failed.
    pub failed_only: bool,
}

/// What an action did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct ActionReport {
    /// Task ids changed.
    pub changed: Vec<String>,
    /// Task ids left alone because they are executing (queued or running).
    pub busy: Vec<String>,
    /// The run's state afterwards.
    pub run_state: Option<RunState>,
}

fn task_position(dag: &Dag, task: &str) -> Result<usize> {
    dag.position(task).ok_or_else(|| {
        Error::Invalid(format!(
            "DAG {:?} has no task {task:?} (tasks: {})",
            dag.dag_id,
            dag.tasks
                .iter()
                .map(|t| t.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// Clears task instances of a run: they go back to pending and run again as
/// a new try with a fresh set of retries; earlier tries' logs are kept. A
/// finished run goes back to running.
pub async fn clear(
    store: &dyn Store,
    dag: &Dag,
    run: &RunRecord,
    opts: &ClearOptions,
) -> Result<ActionReport> {
    let mut chosen: Vec<usize> = match &opts.task {
        None => (0..dag.tasks.len()).collect(),
        Some(t) => {
            let i = task_position(dag, t)?;
            let mut v = vec![i];
            if opts.downstream {
                v.extend(dag.all_downstream(i));
            }
            if opts.upstream {
                v.extend(dag.all_upstream(i));
            }
            v
        }
    };
    chosen.sort_unstable();
    chosen.dedup();
    let tis = store.task_instances(&[run.id]).await?;
    let mut report = ActionReport::default();
    for i in chosen {
        let task = &dag.tasks[i];
        let Some(ti) = tis.iter().find(|t| t.task_id == task.id) else {
            continue;
        };
        if opts.failed_only && !matches!(ti.state, TaskState::Failed | TaskState::UpstreamFailed) {
            continue;
        }
        if ti.state.holds_slot() {
            report.busy.push(ti.task_id.clone());
            continue;
        }
        let to = ti.state.apply(TaskEvent::Clear)?;
        let patch = TiPatch {
            max_tries: Some(ti.try_number + task.retry.retries + 1),
            next_retry_at: Change::Clear,
            end_date: Change::Clear,
            error: Change::Clear,
            lease_owner: Change::Clear,
            ..TiPatch::default()
        };
        if store.update_ti(ti.id, ti.state, to, &patch).await? {
            report.changed.push(ti.task_id.clone());
        } else {
            report.busy.push(ti.task_id.clone());
        }
    }
    let mut state = run.state;
    if !report.changed.is_empty() {
        let to = run.state.apply(RunEvent::Clear)?;
        if to != run.state
            && store
                .set_run_state(run.id, run.state, to, chrono::Utc::now())
                .await?
        {
            state = to;
        }
    }
    report.run_state = Some(state);
    store.notify().await?;
    Ok(report)
}

/// Marks one task instance success or failed (it must not be executing).
pub async fn mark_task(
    store: &dyn Store,
    dag: &Dag,
    run: &RunRecord,
    task: &str,
    success: bool,
) -> Result<ActionReport> {
    task_position(dag, task)?;
    let ti = store
        .get_task_instance(&dag.dag_id, &run.run_id, task)
        .await?
        .ok_or_else(|| {
            Error::Invalid(format!("run {} has no task instance {task:?}", run.run_id))
        })?;
    let event = if success {
        TaskEvent::MarkSuccess
    } else {
        TaskEvent::MarkFailed
    };
    let to = ti.state.apply(event).map_err(|e| {
        if ti.state.holds_slot() {
            Error::Invalid(format!(
                "task {task:?} is {}: wait for it to end, then mark it",
                ti.state
            ))
        } else {
            Error::from(e)
        }
    })?;
    let patch = TiPatch {
        end_date: Change::Set(chrono::Utc::now()),
        next_retry_at: Change::Clear,
        ..TiPatch::default()
    };
    let mut report = ActionReport::default();
    if store.update_ti(ti.id, ti.state, to, &patch).await? {
        report.changed.push(task.to_string());
    } else {
        report.busy.push(task.to_string());
    }
    report.run_state = Some(run.state);
    store.notify().await?;
    Ok(report)
}

/// Marks a run success or failed; its tasks that have not started are marked
/// the same way (executing ones finish on their own).
pub async fn mark_run(store: &dyn Store, run: &RunRecord, success: bool) -> Result<ActionReport> {
    let (run_event, task_event) = if success {
        (RunEvent::MarkSuccess, TaskEvent::MarkSuccess)
    } else {
        (RunEvent::MarkFailed, TaskEvent::MarkFailed)
    };
    let to = run.state.apply(run_event)?;
    let mut report = ActionReport::default();
    for ti in store.task_instances(&[run.id]).await? {
        if ti.state.holds_slot() {
            report.busy.push(ti.task_id);
            continue;
        }
        if ti.state.is_finished() {
            continue;
        }
        let t = ti.state.apply(task_event)?;
        let patch = TiPatch {
            end_date: Change::Set(chrono::Utc::now()),
            next_retry_at: Change::Clear,
            ..TiPatch::default()
        };
        if store.update_ti(ti.id, ti.state, t, &patch).await? {
            report.changed.push(ti.task_id);
        }
    }
    if !store
        .set_run_state(run.id, run.state, to, chrono::Utc::now())
        .await?
    {
        return Err(Error::Invalid(format!(
            "run {} changed state meanwhile; look again and retry",
            run.run_id
        )));
    }
    report.run_state = Some(to);
    store.notify().await?;
    Ok(report)
}
