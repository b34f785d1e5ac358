//! Try starts and ends, written in batches: the application's group commit.
//!
//! Every try start and end is a few writes that must land together (the
//! task instance's conditional change, its history row, its last log lines,
//! the wake-up of other processes). With many tries ending at once, one
//! commit each makes the database's commit flush the limit. Callers queue
//! their transition and take turns holding the writer lock; whoever holds it
//! writes everything queued so far at once (on PostgreSQL in one statement,
//! on SQLite in one transaction), so while one commit is in flight the next
//! batch gathers. A lone try (a chain of tasks) is written at once, alone.

use sqlx::AnyConnection;
use tokio::sync::oneshot;

use crate::model::TryTransition;
use crate::state::TaskState;
use crate::store::Backend;
use crate::{Error, Result};

use super::connection::SqlStore;
use super::logs::append_logs;
use super::origin::{KIND_CHANGE, KIND_PROGRESS};
use super::task_instances::update_ti;
use super::tries::record_try;
use super::try_queue::{Waiting, lock, take_batch};

/// Queues `t`, then waits for whichever comes first: our answer (another
/// holder of the writer lock wrote it), or the lock (we write everything
/// queued, ours included unless a writer already took it).
pub(super) async fn transition_try(store: &SqlStore, t: &TryTransition) -> Result<bool> {
    let (tx, mut rx) = oneshot::channel();
    lock(&store.batcher.queue).push((t.clone(), tx));
    loop {
        tokio::select! {
            biased;
            answer = &mut rx => {
                return answer
                    .map_err(|_| Error::Invalid("a try transition was dropped unwritten".into()))?;
            }
            _writer = store.batcher.writing.lock() => {
                // Answers are sent before the lock is released: an empty
                // queue here means ours is already answered.
                let batch = take_batch(&mut lock(&store.batcher.queue));
                if !batch.is_empty() {
                    tracing::trace!(transitions = batch.len(), "writing a batch of try transitions");
                    write(store, batch).await;
                }
            }
        }
    }
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
    if store.backend == Backend::Postgres {
        // One statement is atomic on its own: no transaction needed. Tries
        // starting give no scheduler work: their notification says so.
        let kind = if ts.iter().all(|t| t.to == TaskState::Running) {
            KIND_PROGRESS
        } else {
            KIND_CHANGE
        };
        let payload = store.origin.payload(kind);
        let mut conn = store.pool.acquire().await?;
        return super::try_batch_pg::write_batch(&mut conn, ts, &payload).await;
    }
    let mut tx = store.pool.begin().await?;
    let mut answers = Vec::with_capacity(ts.len());
    for t in ts {
        answers.push(statement_by_statement(&mut tx, t).await?);
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
