//! DAG runs: create (with their task instances), look up, page, and move
//! through their states.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::model::{NewRun, RunRecord, TaskSeed};
use crate::state::{RunState, TaskState};
use crate::{Error, Result};

use super::codec::{RUN_COLS, Sql, is_unique_violation, run_from_row, state, to_micros};
use super::connection::SqlStore;
use crate::store::Backend;

pub(super) async fn insert_tis(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run: &RunRecord,
    tasks: &[TaskSeed],
) -> Result<()> {
    for chunk in tasks.chunks(200) {
        let mut q = Sql::new(
            "INSERT INTO task_instances (dag_run_id, dag_id, run_id, task_id, state, max_tries, pool, priority, \
             run_logical_date) VALUES ",
        );
        for (i, t) in chunk.iter().enumerate() {
            q.push(if i == 0 { "(" } else { ", (" });
            q.bind(run.id)
                .push(", ")
                .bind(run.dag_id.clone())
                .push(", ")
                .bind(run.run_id.clone())
                .push(", ");
            q.bind(t.task_id.clone())
                .push(", ")
                .bind(TaskState::Pending.as_str())
                .push(", ");
            q.bind(i64::from(t.max_tries))
                .push(", ")
                .bind(t.pool.clone())
                .push(", ")
                .bind(i64::from(t.priority))
                .push(", ")
                .bind(to_micros(run.logical_date));
            q.push(")");
        }
        q.push(" ON CONFLICT (dag_run_id, task_id) DO NOTHING");
        q.query().execute(&mut **tx).await?;
    }
    Ok(())
}

pub(super) async fn create_run(
    store: &SqlStore,
    run: &NewRun,
    tasks: &[TaskSeed],
) -> Result<RunRecord> {
    let now = Utc::now();
    let mut tx = store.pool.begin().await?;
    let inserted = sqlx::query(&format!(
        "INSERT INTO dag_runs (dag_id, run_id, run_type, logical_date, data_interval_start, data_interval_end, \
         state, conf, created_at, backfill_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {RUN_COLS}"
    ))
    .bind(&run.dag_id)
    .bind(&run.run_id)
    .bind(run.run_type.as_str())
    .bind(to_micros(run.logical_date))
    .bind(to_micros(run.data_interval.start))
    .bind(to_micros(run.data_interval.end))
    .bind(run.state.as_str())
    .bind(run.conf.to_string())
    .bind(to_micros(now))
    .bind(run.backfill_id)
    .fetch_one(&mut *tx)
    .await;
    let row = match inserted {
        Ok(row) => row,
        Err(e) if is_unique_violation(&e) => {
            let what = if e.to_string().contains("run_id")
                || e.to_string().contains("dag_runs_dag_id_run_id")
            {
                format!("with run id {:?}", run.run_id)
            } else {
                format!("at logical date {}", run.logical_date.to_rfc3339())
            };
            return Err(Error::RunExists {
                dag_id: run.dag_id.clone(),
                what,
            });
        }
        Err(e) => return Err(e.into()),
    };
    let record = run_from_row(&row)?;
    insert_tis(&mut tx, &record, tasks).await?;
    tx.commit().await?;
    Ok(record)
}

pub(super) async fn add_task_instances(
    store: &SqlStore,
    run: &RunRecord,
    tasks: &[TaskSeed],
) -> Result<()> {
    let mut tx = store.pool.begin().await?;
    insert_tis(&mut tx, run, tasks).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn get_run(
    store: &SqlStore,
    dag_id: &str,
    run_id: &str,
) -> Result<Option<RunRecord>> {
    let sql = format!("SELECT {RUN_COLS} FROM dag_runs WHERE dag_id = $1 AND run_id = $2");
    Ok(store.fetch_runs(&sql, &[dag_id, run_id]).await?.pop())
}

pub(super) async fn list_runs(
    store: &SqlStore,
    dag_id: &str,
    limit: i64,
) -> Result<Vec<RunRecord>> {
    let sql = format!(
        "SELECT {RUN_COLS} FROM dag_runs WHERE dag_id = $1 ORDER BY logical_date DESC LIMIT $2"
    );
    sqlx::query(&sql)
        .bind(dag_id)
        .bind(limit)
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(run_from_row)
        .collect()
}

pub(super) async fn run_counts(store: &SqlStore) -> Result<Vec<(String, RunState, i64)>> {
    sqlx::query("SELECT dag_id, state, COUNT(*) AS n FROM dag_runs GROUP BY dag_id, state ORDER BY dag_id, state")
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("dag_id")?, state(r, "state")?, r.try_get("n")?)))
        .collect()
}

pub(super) async fn runs_before(
    store: &SqlStore,
    dag_id: &str,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<RunRecord>> {
    let sql = format!(
        "SELECT {RUN_COLS} FROM dag_runs WHERE dag_id = $1 AND logical_date < $2 \
         ORDER BY logical_date DESC LIMIT $3"
    );
    sqlx::query(&sql)
        .bind(dag_id)
        .bind(to_micros(before))
        .bind(limit)
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(run_from_row)
        .collect()
}

pub(super) async fn active_runs(store: &SqlStore) -> Result<Vec<RunRecord>> {
    let sql = format!(
        "SELECT {RUN_COLS} FROM dag_runs WHERE state IN ('queued', 'running') ORDER BY logical_date, id"
    );
    store.fetch_runs(&sql, &[]).await
}

pub(super) async fn last_scheduled_run(
    store: &SqlStore,
    dag_id: &str,
) -> Result<Option<RunRecord>> {
    let sql = format!(
        "SELECT {RUN_COLS} FROM dag_runs WHERE dag_id = $1 AND run_type = 'scheduled' \
         ORDER BY logical_date DESC LIMIT 1"
    );
    Ok(store.fetch_runs(&sql, &[dag_id]).await?.pop())
}

/// Every DAG's newest `limit` runs and latest scheduled run, one
/// statement each. PostgreSQL reads each DAG's runs through the
/// `(dag_id, logical_date)` index (`LATERAL … LIMIT`: 1,000 DAGs × 100
/// runs, the 25 newest each in 0.14 s under `EXPLAIN ANALYZE`); SQLite,
/// which has no `LATERAL`, numbers them with a window over that index.
/// (A correlated `IN (… LIMIT)` in the join condition, tried first, made
/// PostgreSQL evaluate the subquery per pair of DAG and run.)
pub(super) async fn runs_of_every_dag(
    store: &SqlStore,
    limit: i64,
) -> Result<crate::store::RunsByDag> {
    let cols = |alias: &str| {
        RUN_COLS
            .split(',')
            .map(|c| format!("{alias}.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let pick = |filter: &str, n: i64| match store.backend {
        Backend::Postgres => format!(
            "SELECT {} FROM dags d CROSS JOIN LATERAL (SELECT * FROM dag_runs r2 \
             WHERE r2.dag_id = d.dag_id{filter} ORDER BY r2.logical_date DESC LIMIT {n}) r \
             ORDER BY r.dag_id, r.logical_date DESC",
            cols("r")
        ),
        Backend::Sqlite => format!(
            "SELECT {} FROM (SELECT r2.*, ROW_NUMBER() OVER \
             (PARTITION BY r2.dag_id ORDER BY r2.logical_date DESC) AS rn \
             FROM dag_runs r2 WHERE 1 = 1{filter}) r WHERE r.rn <= {n} \
             ORDER BY r.dag_id, r.logical_date DESC",
            cols("r")
        ),
    };
    let mut out = crate::store::RunsByDag::default();
    for run in store.fetch_runs(&pick("", limit.max(0)), &[]).await? {
        out.recent.entry(run.dag_id.clone()).or_default().push(run);
    }
    for run in store
        .fetch_runs(&pick(" AND r2.run_type = 'scheduled'", 1), &[])
        .await?
    {
        out.last_scheduled.insert(run.dag_id.clone(), run);
    }
    Ok(out)
}

pub(super) async fn set_run_state(
    store: &SqlStore,
    run_pk: i64,
    from: RunState,
    to: RunState,
    at: DateTime<Utc>,
) -> Result<bool> {
    let at = to_micros(at);
    let (start, end): (Option<i64>, Option<i64>) = match to {
        RunState::Running => (Some(at), None),
        RunState::Success | RunState::Failed => (None, Some(at)),
        RunState::Queued => (None, None),
    };
    let r = sqlx::query(
        "UPDATE dag_runs SET state = $1, start_date = COALESCE(start_date, $2), \
         end_date = $3 WHERE id = $4 AND state = $5",
    )
    .bind(to.as_str())
    .bind(start)
    .bind(end)
    .bind(run_pk)
    .bind(from.as_str())
    .execute(&store.pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub(super) async fn runs_between(
    store: &SqlStore,
    dag_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<RunRecord>> {
    sqlx::query(&format!(
        "SELECT {RUN_COLS} FROM dag_runs WHERE dag_id = $1 AND logical_date >= $2 AND logical_date <= $3 \
         ORDER BY logical_date"
    ))
    .bind(dag_id)
    .bind(to_micros(from))
    .bind(to_micros(to))
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(run_from_row)
    .collect()
}

pub(super) async fn run_at(
    store: &SqlStore,
    dag_id: &str,
    logical_date: DateTime<Utc>,
) -> Result<Option<RunRecord>> {
    sqlx::query(&format!(
        "SELECT {RUN_COLS} FROM dag_runs WHERE dag_id = $1 AND logical_date = $2"
    ))
    .bind(dag_id)
    .bind(to_micros(logical_date))
    .fetch_optional(&store.pool)
    .await?
    .as_ref()
    .map(run_from_row)
    .transpose()
}

pub(super) async fn run_by_pk(store: &SqlStore, run_pk: i64) -> Result<Option<RunRecord>> {
    sqlx::query(&format!("SELECT {RUN_COLS} FROM dag_runs WHERE id = $1"))
        .bind(run_pk)
        .fetch_optional(&store.pool)
        .await?
        .as_ref()
        .map(run_from_row)
        .transpose()
}

pub(super) async fn set_run_backfill(
    store: &SqlStore,
    run_pk: i64,
    backfill_id: i64,
) -> Result<()> {
    sqlx::query("UPDATE dag_runs SET backfill_id = $1 WHERE id = $2")
        .bind(backfill_id)
        .bind(run_pk)
        .execute(&store.pool)
        .await?;
    Ok(())
}
