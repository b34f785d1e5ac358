//! Creating runs: manual triggers (conf validated against the DAG's params)
//! and the task instances that go with every new run.

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;

use crate::dag::Dag;
use crate::model::{NewRun, RunRecord, RunType, TaskSeed};
use crate::state::RunState;
use crate::store::Store;
use crate::timetable::DataInterval;
use crate::{Error, Result};

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
