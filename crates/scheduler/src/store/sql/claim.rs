//! Claiming scheduled task instances for an executor within pool and
//! `max_active_tasks` limits, in one transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use crate::Result;
use crate::model::{Claim, SlotUsage, TaskInstance};
use crate::state::{TaskEvent, TaskState};
use crate::store::{Backend, admit};

use super::codec::{SLOT_USAGE_SQL, TI_COLS, slot_usage_from, ti_from_row, to_micros};
use super::connection::SqlStore;

/// Advisory lock keys for the limits a claim counts against: one per pool
/// and one per DAG (`max_active_tasks`) among its candidates, sorted, so
/// claimers taking them never deadlock. Claims of disjoint pools and DAGs
/// do not wait for each other; a hash collision only makes two limits share
/// a lock.
fn limit_keys(candidates: &[(TaskInstance, i64)]) -> Vec<i64> {
    let mut keys: Vec<i64> = candidates
        .iter()
        .flat_map(|(ti, _)| [lock_key("pool", &ti.pool), lock_key("dag", &ti.dag_id)])
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// FNV-1a of `kind:name`: the same in every process and build (std's
/// hasher is not guaranteed to be).
fn lock_key(kind: &str, name: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in kind.bytes().chain([b':']).chain(name.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// Takes `keys` (sorted) as transaction-scoped advisory locks, in order.
async fn lock_limits(conn: &mut AnyConnection, keys: &[i64]) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let values = keys
        .iter()
        .map(|k| format!("({k})"))
        .collect::<Vec<_>>()
        .join(", ");
    // The sorted subquery feeds the aggregate row by row, so the locks are
    // taken in key order.
    sqlx::query(&format!(
        "SELECT COUNT(pg_advisory_xact_lock(k)) AS n FROM \
         (SELECT k FROM (VALUES {values}) AS v (k) ORDER BY k OFFSET 0) AS sorted"
    ))
    .fetch_one(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn claim(
    store: &SqlStore,
    owner: &str,
    now: DateTime<Utc>,
    max: usize,
) -> Result<Claim> {
    let mut claim = Claim::default();
    if max == 0 {
        return Ok(claim);
    }
    // SQLite: take the write lock up front; a deferred transaction that
    // reads and then writes fails (SQLITE_BUSY_SNAPSHOT) if another
    // connection wrote in between, and busy_timeout cannot help it.
    let mut tx = match store.backend {
        Backend::Postgres => store.pool.begin().await?,
        Backend::Sqlite => store.pool.begin_with("BEGIN IMMEDIATE").await?,
    };
    // PostgreSQL: candidates are row-locked, skipping rows another claim
    // holds, so concurrent claims take disjoint task instances without
    // waiting; then only the limits they count against are locked (pools
    // and DAGs), and the usage read after that sees every claim that
    // committed before.
    let lock_rows = if store.backend == Backend::Postgres {
        " FOR UPDATE OF ti SKIP LOCKED"
    } else {
        ""
    };
    let candidates = candidates(&mut tx, candidate_limit(max), lock_rows).await?;
    if candidates.is_empty() {
        tx.commit().await?;
        return Ok(claim);
    }
    if store.backend == Backend::Postgres {
        lock_limits(&mut tx, &limit_keys(&candidates)).await?;
    }
    let (usage, pools) = usage_and_pools(&mut tx).await?;
    let (ok, missing) = admit(&candidates, &usage, &pools, max);
    let t = to_micros(now);
    // The transitions come from the state machine like every other one; the
    // SQL only persists them, conditional on the state they start from.
    let from = TaskState::Scheduled;
    let queued = from.apply(TaskEvent::Queue)?;
    let failed = from.apply(TaskEvent::Fail)?;
    // One statement for the whole claim (not one per task): the rows are
    // locked (PostgreSQL) or the database is (SQLite), and the state
    // condition still guards each row.
    let ids: Vec<i64> = ok.iter().map(|&i| candidates[i].0.id).collect();
    if !ids.is_empty() {
        let list = ids
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(&format!(
            "UPDATE task_instances SET state = $3, queued_at = $1, heartbeat_at = $1, lease_owner = $2 \
             WHERE id IN ({list}) AND state = $4 RETURNING id"
        ))
        .bind(t)
        .bind(owner)
        .bind(queued.as_str())
        .bind(from.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let updated: std::collections::HashSet<i64> = rows
            .iter()
            .map(|r| r.try_get::<i64, _>("id"))
            .collect::<std::result::Result<_, _>>()?;
        for i in ok {
            let ti = &candidates[i].0;
            if updated.contains(&ti.id) {
                let mut ti = ti.clone();
                ti.state = queued;
                ti.queued_at = Some(now);
                ti.lease_owner = Some(owner.to_string());
                claim.claimed.push(ti);
            }
        }
    }
    for i in missing {
        let ti = &candidates[i].0;
        let msg = format!(
            "pool {:?} does not exist; create it with `tributary pools set {} --slots N`",
            ti.pool, ti.pool
        );
        let r = sqlx::query(
            "UPDATE task_instances SET state = $4, end_date = $1, error = $2 WHERE id = $3 AND state = $5",
        )
        .bind(t)
        .bind(&msg)
        .bind(ti.id)
        .bind(failed.as_str())
        .bind(from.as_str())
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 1 {
            let mut ti = ti.clone();
            ti.state = failed;
            ti.error = Some(msg);
            claim.missing_pool.push(ti);
        }
    }
    tx.commit().await?;
    Ok(claim)
}

pub(super) async fn slot_usage(store: &SqlStore) -> Result<SlotUsage> {
    slot_usage_from(&sqlx::query(SLOT_USAGE_SQL).fetch_all(&store.pool).await?)
}

/// How many candidates a claim of `max` reads: more than `max`, since
/// some are over their pool's or DAG's limit.
fn candidate_limit(max: usize) -> i64 {
    i64::try_from(max.saturating_mul(4).saturating_add(16)).unwrap_or(i64::MAX)
}

/// The claim's candidate query: scheduled task instances of running runs
/// in claim order, read from the `task_instances_claim_order` index.
fn candidates_sql(lock_rows: &str) -> String {
    format!(
        "SELECT {TI_COLS}, COALESCE(d.max_active_tasks, 16) AS dag_max_active_tasks \
         FROM task_instances ti JOIN dag_runs r ON r.id = ti.dag_run_id LEFT JOIN dags d ON d.dag_id = ti.dag_id \
         WHERE ti.state = 'scheduled' AND r.state = 'running' \
         ORDER BY ti.priority DESC, ti.run_logical_date, ti.id LIMIT $1{lock_rows}"
    )
}

impl SqlStore {
    /// PostgreSQL's plan (`EXPLAIN`) of the query a claim of `max` task
    /// instances runs to pick its candidates, for tests and diagnostics.
    pub async fn explain_claim(&self, max: usize) -> Result<String> {
        let sql = format!(
            "EXPLAIN {}",
            candidates_sql(" FOR UPDATE OF ti SKIP LOCKED")
        );
        let rows = sqlx::query(&sql)
            .bind(candidate_limit(max))
            .fetch_all(&self.pool)
            .await?;
        let lines: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<std::result::Result<_, _>>()?;
        Ok(lines.join("\n"))
    }
}

/// Scheduled task instances of running runs, in claim order, each with its
/// DAG's `max_active_tasks` (`lock_rows` locks them on PostgreSQL).
async fn candidates(
    conn: &mut AnyConnection,
    limit: i64,
    lock_rows: &str,
) -> Result<Vec<(TaskInstance, i64)>> {
    let rows = sqlx::query(&candidates_sql(lock_rows))
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                ti_from_row(r)?,
                r.try_get::<i64, _>("dag_max_active_tasks")?,
            ))
        })
        .collect()
}

/// Slots in use (per pool and per DAG) and each pool's slots, in one
/// statement: rows with a DAG are usage, rows without are pools.
async fn usage_and_pools(conn: &mut AnyConnection) -> Result<(SlotUsage, HashMap<String, i64>)> {
    let rows = sqlx::query(&format!(
        "{SLOT_USAGE_SQL} UNION ALL SELECT name AS pool, NULL AS dag_id, slots AS n FROM pools"
    ))
    .fetch_all(&mut *conn)
    .await?;
    let (usage, pools): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| {
        r.try_get::<Option<String>, _>("dag_id")
            .is_ok_and(|d| d.is_some())
    });
    let mut slots = HashMap::new();
    for r in &pools {
        slots.insert(r.try_get::<String, _>("pool")?, r.try_get::<i64, _>("n")?);
    }
    Ok((slot_usage_from(&usage)?, slots))
}
