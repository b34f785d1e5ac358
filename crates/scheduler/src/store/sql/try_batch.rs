//! Try starts and ends, written in batches: the application's group commit.
//!
//! Every try start and end is a few writes that must land together (the
//! task instance's conditional change, its history row, its last log lines,
//! the wake-up of other processes). With many tries ending at once, one
//! commit each makes the database's commit flush the limit. Callers queue
//! their transition and take turns holding the writer lock; whoever holds it
//! writes everything queued so far in one transaction, so while one commit
//! is in flight the next batch gathers. A lone try (a chain of tasks) is
//! written at once, alone.

use std::sync::Mutex;

use sqlx::{AnyConnection, Row};
use tokio::sync::oneshot;

use crate::model::TryTransition;
use crate::store::Backend;
use crate::{Error, Result};

use super::changes::CHANNEL;
use super::codec::{Sql, to_micros};
use super::connection::SqlStore;
use super::logs::append_logs;
use super::task_instances::{push_update, update_ti};
use super::tries::{TRY_COLS, TRY_UPSERT, bind_try, record_try};

/// Most transitions written in one transaction.
const MAX_BATCH: usize = 256;

type Waiting = (TryTransition, oneshot::Sender<Result<bool>>);

/// Transitions waiting to be written, and the lock of the one writing.
#[derive(Debug, Default)]
pub(crate) struct TryBatcher {
    queue: Mutex<Vec<Waiting>>,
    writing: tokio::sync::Mutex<()>,
}

/// Queues `t`, then takes the writer lock and writes whatever is queued
/// (ours, unless an earlier holder already wrote it); returns our answer.
pub(super) async fn transition_try(store: &SqlStore, t: &TryTransition) -> Result<bool> {
    let (tx, rx) = oneshot::channel();
    lock(&store.batcher.queue).push((t.clone(), tx));
    loop {
        let _writer = store.batcher.writing.lock().await;
        let batch: Vec<Waiting> = {
            let mut q = lock(&store.batcher.queue);
            let n = q.len().min(MAX_BATCH);
            q.drain(..n).collect()
        };
        if batch.is_empty() {
            break;
        }
        write(store, batch).await;
        if lock(&store.batcher.queue).is_empty() {
            break;
        }
    }
    rx.await
        .map_err(|_| Error::Invalid("a try transition was dropped unwritten".into()))?
}

fn lock(m: &Mutex<Vec<Waiting>>) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes `batch` in one transaction and answers each; if the transaction
/// fails, each transition is tried alone so one bad write cannot fail the
/// others.
async fn write(store: &SqlStore, batch: Vec<Waiting>) {
    let ts: Vec<&TryTransition> = batch.iter().map(|(t, _)| t).collect();
    match write_together(store, &ts).await {
        Ok(answers) => {
            for ((_, reply), changed) in batch.into_iter().zip(answers) {
                let _ = reply.send(Ok(changed));
            }
        }
        Err(_) if batch.len() > 1 => {
            for (t, reply) in batch {
                let _ = reply.send(write_together(store, &[&t]).await.map(|a| a[0]));
            }
        }
        Err(e) => {
            if let Some((_, reply)) = batch.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
    }
}

async fn write_together(store: &SqlStore, ts: &[&TryTransition]) -> Result<Vec<bool>> {
    let mut tx = store.pool.begin().await?;
    let mut answers = Vec::with_capacity(ts.len());
    for t in ts {
        answers.push(match store.backend {
            Backend::Postgres => in_one_statement(&mut tx, t).await?,
            Backend::Sqlite => statement_by_statement(&mut tx, t).await?,
        });
    }
    tx.commit().await?;
    Ok(answers)
}

/// SQLite: the statements one by one (calls into the library, not round
/// trips).
async fn statement_by_statement(conn: &mut AnyConnection, t: &TryTransition) -> Result<bool> {
    let changed = update_ti(conn, t.ti_id, t.from, t.to, &t.patch).await?;
    if changed || t.keep_history_if_refused {
        append_logs(conn, t.ti_id, t.record.try_number, &t.logs).await?;
        record_try(conn, &t.record).await?;
    }
    Ok(changed)
}

/// PostgreSQL: one statement, one round trip. Data-modifying `WITH` parts
/// always run to completion and see the same snapshot; the history row and
/// the logs are written only when the change applied (unless kept when
/// refused), and the NOTIFY (sent at commit) only when anything was.
async fn in_one_statement(conn: &mut AnyConnection, t: &TryTransition) -> Result<bool> {
    let only_if_changed = if t.keep_history_if_refused {
        ""
    } else {
        " WHERE EXISTS (SELECT 1 FROM changed)"
    };
    let mut q = Sql::new("WITH changed AS (");
    push_update(&mut q, t.ti_id, t.from, t.to, &t.patch);
    q.push(" RETURNING id), history AS (INSERT INTO ")
        .push(TRY_COLS)
        .push(" SELECT ");
    bind_try(&mut q, &t.record);
    q.push(only_if_changed)
        .push(TRY_UPSERT)
        .push(" RETURNING 1)");
    if !t.logs.is_empty() {
        q.push(
            ", logs AS (INSERT INTO task_logs (ti_id, try_number, ts, line) SELECT * FROM (VALUES ",
        );
        for (i, (ts, line)) in t.logs.iter().enumerate() {
            q.push(if i == 0 { "(" } else { ", (" });
            q.bind(t.ti_id)
                .push(", ")
                .bind(i64::from(t.record.try_number));
            q.push(", ")
                .bind(to_micros(*ts))
                .push(", ")
                .bind(line.clone())
                .push(")");
        }
        q.push(") AS v (ti_id, try_number, ts, line)")
            .push(only_if_changed)
            .push(" RETURNING 1)");
    }
    q.push(" SELECT n, CASE WHEN n > 0 OR (SELECT COUNT(*) FROM history) > 0 THEN pg_notify(")
        .bind(CHANNEL)
        .push(", '') END AS notified FROM (SELECT COUNT(*) AS n FROM changed) AS c");
    let row = q.query().fetch_one(conn).await?;
    Ok(row.try_get::<i64, _>("n")? == 1)
}
