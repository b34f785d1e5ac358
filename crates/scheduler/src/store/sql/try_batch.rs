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

use std::sync::Mutex;

use sqlx::AnyConnection;
use tokio::sync::oneshot;

use crate::model::TryTransition;
use crate::store::Backend;
use crate::{Error, Result};

use super::connection::SqlStore;
use super::logs::append_logs;
use super::task_instances::update_ti;
use super::tries::record_try;

/// Most transitions written in one transaction.
const MAX_BATCH: usize = 256;

type Waiting = (TryTransition, oneshot::Sender<Result<bool>>);

/// Transitions waiting to be written, and the lock of the one writing.
#[derive(Debug, Default)]
pub(crate) struct TryBatcher {
    queue: Mutex<Vec<Waiting>>,
    writing: tokio::sync::Mutex<()>,
}

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

/// The oldest queued transitions, up to [`MAX_BATCH`], at most one per
/// task instance (one statement must not change a row twice; a second
/// transition of the same task instance waits for the next batch).
fn take_batch(queue: &mut Vec<Waiting>) -> Vec<Waiting> {
    let mut seen = std::collections::HashSet::new();
    let mut batch = Vec::new();
    let mut rest = Vec::new();
    for w in queue.drain(..) {
        if batch.len() < MAX_BATCH && seen.insert(w.0.ti_id) {
            batch.push(w);
        } else {
            rest.push(w);
        }
    }
    *queue = rest;
    batch
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
    if store.backend == Backend::Postgres {
        // One statement is atomic on its own: no transaction needed.
        return super::try_batch_pg::write_batch(&mut *store.pool.acquire().await?, ts).await;
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
