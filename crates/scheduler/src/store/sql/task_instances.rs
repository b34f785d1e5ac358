//! Task instances: read, patch on a state change (fenced on the lease owner),
//! and the lists the loop needs (scheduled, due retries, expired leases).

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use crate::Result;
use crate::model::{Change, RunProgress, StateChange, TaskInstance, TiPatch};
use crate::state::TaskState;

use super::codec::{Sql, TI_COLS, opt_time, ti_from_row, to_micros};
use super::connection::SqlStore;

pub(super) async fn task_instances(store: &SqlStore, run_pks: &[i64]) -> Result<Vec<TaskInstance>> {
    if run_pks.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = Sql::new(format!(
        "SELECT {TI_COLS} FROM task_instances ti WHERE ti.dag_run_id IN ("
    ));
    q.bind_list(run_pks.iter().copied())
        .push(") ORDER BY ti.dag_run_id, ti.id");
    q.query()
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(ti_from_row)
        .collect()
}

pub(super) async fn run_progress(
    store: &SqlStore,
    run_pks: &[i64],
) -> Result<HashMap<i64, RunProgress>> {
    if run_pks.is_empty() {
        return Ok(HashMap::new());
    }
    let finished = TaskState::ALL
        .iter()
        .filter(|s| s.is_finished())
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut q = Sql::new(format!(
        "SELECT dag_run_id, COUNT(*) AS total, \
         SUM(CASE WHEN state = '{pending}' THEN 1 ELSE 0 END) AS pending, \
         SUM(CASE WHEN state IN ({finished}) THEN 1 ELSE 0 END) AS finished \
         FROM task_instances WHERE dag_run_id IN (",
        pending = TaskState::Pending.as_str()
    ));
    q.bind_list(run_pks.iter().copied())
        .push(") GROUP BY dag_run_id");
    let count = |r: &sqlx::any::AnyRow, col: &str| -> Result<usize> {
        Ok(usize::try_from(r.try_get::<i64, _>(col)?).unwrap_or(0))
    };
    q.query()
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get::<i64, _>("dag_run_id")?,
                RunProgress {
                    total: count(r, "total")?,
                    pending: count(r, "pending")?,
                    finished: count(r, "finished")?,
                },
            ))
        })
        .collect()
}

pub(super) async fn get_task_instance(
    store: &SqlStore,
    dag_id: &str,
    run_id: &str,
    task_id: &str,
) -> Result<Option<TaskInstance>> {
    sqlx::query(&format!(
        "SELECT {TI_COLS} FROM task_instances ti WHERE ti.dag_id = $1 AND ti.run_id = $2 AND ti.task_id = $3"
    ))
    .bind(dag_id)
    .bind(run_id)
    .bind(task_id)
    .fetch_optional(&store.pool)
    .await?
    .as_ref()
    .map(ti_from_row)
    .transpose()
}

pub(super) async fn update_ti(
    conn: &mut AnyConnection,
    ti_id: i64,
    from: TaskState,
    to: TaskState,
    patch: &TiPatch,
) -> Result<bool> {
    let mut q = Sql::new("");
    push_update(&mut q, ti_id, from, to, patch);
    Ok(q.query().execute(conn).await?.rows_affected() == 1)
}

/// Appends the conditional `UPDATE` of one task instance (its state
/// `from → to` with `patch`, fenced on the patch's owner) to `q`.
pub(super) fn push_update(
    q: &mut Sql,
    ti_id: i64,
    from: TaskState,
    to: TaskState,
    patch: &TiPatch,
) {
    q.push("UPDATE task_instances SET state = ");
    q.bind(to.as_str());
    for f in patch_fields(patch) {
        if f.set {
            q.push(&format!(", {} = ", f.column));
            f.value.bind(q);
        }
    }
    q.push(" WHERE id = ")
        .bind(ti_id)
        .push(" AND state = ")
        .bind(from.as_str());
    if let Some(owner) = &patch.only_if_owner {
        q.push(" AND lease_owner = ").bind(owner.clone());
    }
}

/// A stored value of a patched column (`None`: NULL).
pub(super) enum Stored {
    Int(Option<i64>),
    Text(Option<String>),
}

impl Stored {
    /// Binds the value.
    pub(super) fn bind(self, q: &mut Sql) {
        match self {
            Stored::Int(v) => q.bind(v),
            Stored::Text(v) => q.bind(v),
        };
    }

    /// Its column type on PostgreSQL.
    pub(super) fn pg_type(&self) -> &'static str {
        match self {
            Stored::Int(_) => "bigint",
            Stored::Text(_) => "text",
        }
    }
}

/// One column a [`TiPatch`] may set.
pub(super) struct PatchedColumn {
    pub(super) column: &'static str,
    /// Whether the patch sets it (else it keeps it; `value` is then a NULL
    /// of the column's type).
    pub(super) set: bool,
    pub(super) value: Stored,
}

/// Every column a [`TiPatch`] may set, in one fixed order, with what the
/// patch does to it. The one place that maps patch fields to columns.
pub(super) fn patch_fields(p: &TiPatch) -> [PatchedColumn; 12] {
    fn col(column: &'static str, set: bool, value: Stored) -> PatchedColumn {
        PatchedColumn { column, set, value }
    }
    let count =
        |c: &'static str, v: Option<u32>| col(c, v.is_some(), Stored::Int(v.map(i64::from)));
    let time = |c: &'static str, v: &Change<DateTime<Utc>>| {
        let v = v.to_store();
        col(
            c,
            v.is_some(),
            Stored::Int(v.flatten().copied().map(to_micros)),
        )
    };
    let int = |c: &'static str, v: &Change<i64>| {
        let v = v.to_store();
        col(c, v.is_some(), Stored::Int(v.flatten().copied()))
    };
    let text = |c: &'static str, v: &Change<String>| {
        let v = v.to_store();
        col(c, v.is_some(), Stored::Text(v.flatten().cloned()))
    };
    [
        count("try_number", p.try_number),
        count("max_tries", p.max_tries),
        time("queued_at", &p.queued_at),
        time("start_date", &p.start_date),
        time("end_date", &p.end_date),
        int("duration_ms", &p.duration_ms),
        text("hostname", &p.hostname),
        int("pid", &p.pid),
        time("next_retry_at", &p.next_retry_at),
        time("heartbeat_at", &p.heartbeat_at),
        text("lease_owner", &p.lease_owner),
        text("error", &p.error),
    ]
}

/// The planner's decisions in one transaction, one statement per
/// `(from, to)` pair: each row changes only if it is still in `from`;
/// finished states get `end_date = at`. Returns the rows changed.
pub(super) async fn set_states(
    store: &SqlStore,
    changes: &[StateChange],
    at: DateTime<Utc>,
) -> Result<u64> {
    if changes.is_empty() {
        return Ok(0);
    }
    let mut groups: BTreeMap<(&str, &str), Vec<i64>> = BTreeMap::new();
    for c in changes {
        groups
            .entry((c.from.as_str(), c.to.as_str()))
            .or_default()
            .push(c.ti_id);
    }
    let mut statements = Vec::new();
    for ((from, to), ids) in groups {
        let finished = TaskState::from_str(to).is_ok_and(TaskState::is_finished);
        for chunk in ids.chunks(1000) {
            let mut q = Sql::new("UPDATE task_instances SET state = ");
            q.bind(to);
            if finished {
                q.push(", end_date = ").bind(to_micros(at));
            }
            q.push(" WHERE state = ").bind(from).push(" AND id IN (");
            q.bind_list(chunk.iter().copied()).push(")");
            statements.push(q);
        }
    }
    // One statement is atomic alone: the usual case (a chain's next task)
    // skips BEGIN and COMMIT.
    if statements.len() == 1 {
        return execute_all(&mut *store.pool.acquire().await?, statements).await;
    }
    let mut tx = store.pool.begin().await?;
    let changed = execute_all(&mut tx, statements).await?;
    tx.commit().await?;
    Ok(changed)
}

/// Runs `statements` in order on `conn`; the rows they changed.
async fn execute_all(conn: &mut AnyConnection, statements: Vec<Sql>) -> Result<u64> {
    let mut changed = 0;
    for mut q in statements {
        changed += q.query().execute(&mut *conn).await?.rows_affected();
    }
    Ok(changed)
}

pub(super) async fn scheduled_tis(store: &SqlStore, limit: i64) -> Result<Vec<TaskInstance>> {
    sqlx::query(&format!(
        "SELECT {TI_COLS} FROM task_instances ti JOIN dag_runs r ON r.id = ti.dag_run_id \
         WHERE ti.state = 'scheduled' AND r.state = 'running' \
         ORDER BY ti.priority DESC, ti.run_logical_date, ti.id LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(ti_from_row)
    .collect()
}

pub(super) async fn due_retries(store: &SqlStore, now: DateTime<Utc>) -> Result<Vec<TaskInstance>> {
    sqlx::query(&format!(
        "SELECT {TI_COLS} FROM task_instances ti WHERE ti.state = 'up_for_retry' AND ti.next_retry_at <= $1 \
         ORDER BY ti.next_retry_at"
    ))
    .bind(to_micros(now))
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(ti_from_row)
    .collect()
}

pub(super) async fn next_retry_at(store: &SqlStore) -> Result<Option<DateTime<Utc>>> {
    let row = sqlx::query(
        "SELECT MIN(next_retry_at) AS t FROM task_instances WHERE state = 'up_for_retry'",
    )
    .fetch_one(&store.pool)
    .await?;
    opt_time(&row, "t")
}

pub(super) async fn expired_leases(
    store: &SqlStore,
    cutoff: DateTime<Utc>,
) -> Result<Vec<TaskInstance>> {
    sqlx::query(&format!(
        "SELECT {TI_COLS} FROM task_instances ti WHERE ti.state IN ('queued', 'running') \
         AND COALESCE(ti.heartbeat_at, ti.queued_at, 0) < $1 ORDER BY ti.id"
    ))
    .bind(to_micros(cutoff))
    .fetch_all(&store.pool)
    .await?
    .iter()
    .map(ti_from_row)
    .collect()
}

pub(super) async fn heartbeat(store: &SqlStore, owner: &str, at: DateTime<Utc>) -> Result<u64> {
    let r = sqlx::query(
        "UPDATE task_instances SET heartbeat_at = $1 WHERE lease_owner = $2 AND state IN ('queued', 'running')",
    )
    .bind(to_micros(at))
    .bind(owner)
    .execute(&store.pool)
    .await?;
    Ok(r.rows_affected())
}
