//! DAG records and import errors: the scheduler syncs its DAG folder into
//! them; the UI and CLI read them.

use std::collections::HashMap;

use chrono::Utc;
use sqlx::Row;

use crate::Result;
use crate::model::{DagRecord, ImportError};
use crate::store::Backend;

use super::codec::{Sql, dag_from_row, to_micros};
use super::connection::SqlStore;

pub(super) async fn sync_dags(
    store: &SqlStore,
    dags: &[DagRecord],
    errors: &[ImportError],
) -> Result<()> {
    let now = to_micros(Utc::now());
    // SQLite: take the write lock up front; this transaction reads, then
    // writes, and a deferred one fails at once (SQLITE_BUSY_SNAPSHOT) when
    // another connection wrote in between.
    let mut tx = match store.backend {
        Backend::Postgres => store.pool.begin().await?,
        Backend::Sqlite => store.pool.begin_with("BEGIN IMMEDIATE").await?,
    };
    // Only DAGs new, changed, moved or coming back are written: a refresh
    // of an unchanged folder of 1,000 DAGs is one read, not 1,000 upserts.
    let mut stored: HashMap<String, (String, String, bool)> = HashMap::new();
    for r in sqlx::query("SELECT dag_id, source_hash, fileloc, is_active FROM dags")
        .fetch_all(&mut *tx)
        .await?
    {
        stored.insert(
            r.try_get("dag_id")?,
            (
                r.try_get("source_hash")?,
                r.try_get("fileloc")?,
                r.try_get::<i64, _>("is_active")? != 0,
            ),
        );
    }
    let changed = dags.iter().filter(|d| {
        stored.get(&d.dag_id).is_none_or(|(hash, file, active)| {
            *hash != d.source_hash || *file != d.fileloc || !active
        })
    });
    for d in changed {
        sqlx::query(
            "INSERT INTO dags (dag_id, fileloc, source_hash, source, description, schedule, timezone, tags, \
             max_active_runs, max_active_tasks, is_paused, is_active, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12) \
             ON CONFLICT (dag_id) DO UPDATE SET fileloc = excluded.fileloc, source_hash = excluded.source_hash, \
             source = excluded.source, description = excluded.description, schedule = excluded.schedule, \
             timezone = excluded.timezone, tags = excluded.tags, max_active_runs = excluded.max_active_runs, \
             max_active_tasks = excluded.max_active_tasks, is_active = 1, updated_at = excluded.updated_at \
             WHERE dags.source_hash <> excluded.source_hash OR dags.is_active = 0 OR dags.fileloc <> excluded.fileloc",
        )
        .bind(&d.dag_id)
        .bind(&d.fileloc)
        .bind(&d.source_hash)
        .bind(&d.source)
        .bind(&d.description)
        .bind(&d.schedule)
        .bind(&d.timezone)
        .bind(serde_json::to_string(&d.tags).unwrap_or_else(|_| "[]".into()))
        .bind(d.max_active_runs)
        .bind(d.max_active_tasks)
        .bind(i64::from(d.is_paused))
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    // Everything not seen this time is inactive (file removed or broken).
    let seen: std::collections::HashSet<&str> = dags.iter().map(|d| d.dag_id.as_str()).collect();
    let gone: Vec<String> = stored
        .into_iter()
        .filter(|(id, (_, _, active))| *active && !seen.contains(id.as_str()))
        .map(|(id, _)| id)
        .collect();
    for chunk in gone.chunks(1000) {
        let mut q = Sql::new("UPDATE dags SET is_active = 0, updated_at = ");
        q.bind(now).push(" WHERE dag_id IN (");
        q.bind_list(chunk.iter().cloned()).push(")");
        q.query().execute(&mut *tx).await?;
    }
    sqlx::query("DELETE FROM import_errors")
        .execute(&mut *tx)
        .await?;
    for e in errors {
        sqlx::query("INSERT INTO import_errors (fileloc, message, created_at) VALUES ($1, $2, $3)")
            .bind(&e.fileloc)
            .bind(&e.message)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn list_dags(store: &SqlStore) -> Result<Vec<DagRecord>> {
    sqlx::query("SELECT * FROM dags ORDER BY dag_id")
        .fetch_all(&store.pool)
        .await?
        .iter()
        .map(dag_from_row)
        .collect()
}

pub(super) async fn get_dag(store: &SqlStore, dag_id: &str) -> Result<Option<DagRecord>> {
    sqlx::query("SELECT * FROM dags WHERE dag_id = $1")
        .bind(dag_id)
        .fetch_optional(&store.pool)
        .await?
        .as_ref()
        .map(dag_from_row)
        .transpose()
}

pub(super) async fn set_paused(store: &SqlStore, dag_id: &str, paused: bool) -> Result<bool> {
    let r = sqlx::query("UPDATE dags SET is_paused = $1 WHERE dag_id = $2")
        .bind(i64::from(paused))
        .bind(dag_id)
        .execute(&store.pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub(super) async fn import_errors(store: &SqlStore) -> Result<Vec<ImportError>> {
    let rows = sqlx::query("SELECT fileloc, message FROM import_errors ORDER BY fileloc")
        .fetch_all(&store.pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ImportError {
                fileloc: r.try_get("fileloc")?,
                message: r.try_get("message")?,
            })
        })
        .collect()
}
