//! Creating runs: manual triggers (conf validated against the DAG's params)
//! and the task instances that go with every new run.

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;

use crate::dag::Dag;
use crate::model::{NewRun, RunRecord, RunType, TaskInstance, TaskSeed};
use crate::state::RunState;
use crate::store::Store;
use crate::timetable::DataInterval;
use crate::{Error, Result};

/// How many of a DAG's newest runs a "did you mean" looks through.
const SUGGEST_FROM_RUNS: i64 = 500;

/// The run `run_id` of `dag_id`. When there is none, the error suggests the
/// nearest run id among the DAG's newest runs, or says how to list them
/// (never a command that would fail the same way).
pub async fn find_run(store: &dyn Store, dag_id: &str, run_id: &str) -> Result<RunRecord> {
    if let Some(run) = store.get_run(dag_id, run_id).await? {
        return Ok(run);
    }
    let runs = store.list_runs(dag_id, SUGGEST_FROM_RUNS).await?;
    let ids: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
    let hint = match diag::suggest(run_id, &ids) {
        Some(s) => format!(" (did you mean {s:?}?)"),
        None if ids.is_empty() => " (the DAG has no runs yet)".to_string(),
        None => format!(
            " (its newest run is {:?}; `tributary runs list {dag_id}` lists them)",
            ids[0]
        ),
    };
    Err(Error::RunNotFound {
        dag_id: dag_id.to_string(),
        run_id: run_id.to_string(),
        hint,
    })
}

/// The run and its task instance `task_id`, each with a suggestion when it
/// does not exist.
pub async fn find_task_instance(
    store: &dyn Store,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
) -> Result<(RunRecord, TaskInstance)> {
    let run = find_run(store, dag_id, run_id).await?;
    let tis = store.task_instances(&[run.id]).await?;
    if let Some(ti) = tis.iter().find(|t| t.task_id == task_id) {
        return Ok((run, ti.clone()));
    }
    let ids: Vec<&str> = tis.iter().map(|t| t.task_id.as_str()).collect();
    let hint = match diag::suggest(task_id, &ids) {
        Some(s) => format!(" (did you mean {s:?}?)"),
        None => format!(" (its tasks: {})", ids.join(", ")),
    };
    Err(Error::TaskNotFound {
        dag_id: dag_id.to_string(),
        run_id: run_id.to_string(),
        task_id: task_id.to_string(),
        hint,
    })
}

/// The task instances a new run of `dag` gets.
pub fn seeds(dag: &Dag) -> Vec<TaskSeed> {
    dag.tasks
        .iter()
        .map(|t| TaskSeed {
            task_id: t.id.clone(),
            max_tries: t.retry.retries.saturating_add(1),
            pool: t.pool.clone(),
            priority: t.priority,
        })
        .collect()
}

/// Creates a run of `dag` with its task instances, queued.
pub async fn create_run(
    store: &dyn Store,
    dag: &Dag,
    run_type: RunType,
    interval: DataInterval,
    conf: Value,
    backfill_id: Option<i64>,
) -> Result<RunRecord> {
    let run = NewRun {
        dag_id: dag.dag_id.clone(),
        run_id: run_type.run_id(interval.start),
        run_type,
        logical_date: interval.start,
        data_interval: interval,
        conf,
        state: RunState::Queued,
        backfill_id,
    };
    let rec = store.create_run(&run, &seeds(dag)).await?;
    store.notify().await?;
    Ok(rec)
}

/// Triggers a manual run: checks `conf` against the DAG's params, picks the
/// logical date (now unless given) and its data interval, and queues the run.
pub async fn trigger(
    store: &dyn Store,
    dag: &Dag,
    conf: Value,
    logical_date: Option<DateTime<Utc>>,
) -> Result<RunRecord> {
    dag.params
        .resolve(&conf)
        .map_err(|problems| Error::InvalidConf {
            dag_id: dag.dag_id.clone(),
            problems,
        })?;
    let conf = if conf.is_null() {
        Value::Object(Default::default())
    } else {
        conf
    };
    let ld = logical_date.unwrap_or_else(Utc::now).trunc_subsecs(6);
    if let Some(end) = dag.timetable.end
        && ld > end
    {
        return Err(Error::Invalid(format!(
            "logical date {} is after the DAG's end_date {}",
            ld.to_rfc3339(),
            end.to_rfc3339()
        )));
    }
    let interval = dag.timetable.manual_interval(ld);
    create_run(store, dag, RunType::Manual, interval, conf, None).await
}
