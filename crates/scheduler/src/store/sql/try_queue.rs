//! The queue of try transitions waiting to be written together, and the
//! lock of whoever writes them (see `try_batch`).

use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::Result;
use crate::model::TryTransition;

/// Most transitions written in one transaction.
const MAX_BATCH: usize = 256;

pub(super) type Waiting = (TryTransition, oneshot::Sender<Result<bool>>);

/// Transitions waiting to be written, and the lock of the one writing.
#[derive(Debug, Default)]
pub(crate) struct TryBatcher {
    pub(super) queue: Mutex<Vec<Waiting>>,
    pub(super) writing: tokio::sync::Mutex<()>,
}

/// The oldest queued transitions, up to [`MAX_BATCH`], at most one per
/// task instance (one statement must not change a row twice; a second
/// transition of the same task instance waits for the next batch).
pub(super) fn take_batch(queue: &mut Vec<Waiting>) -> Vec<Waiting> {
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

pub(super) fn lock(m: &Mutex<Vec<Waiting>>) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{TiPatch, TryRecord, TryState};
    use crate::state::TaskState;

    fn waiting(ti_id: i64) -> Waiting {
        let t = TryTransition {
            ti_id,
            from: TaskState::Queued,
            to: TaskState::Running,
            patch: TiPatch::default(),
            record: TryRecord {
                ti_id,
                try_number: 1,
                state: TryState::Running,
                start_date: chrono::Utc::now(),
                end_date: None,
                duration_ms: None,
                hostname: None,
                pid: None,
                error: None,
            },
            logs: Vec::new(),
            keep_history_if_refused: false,
        };
        (t, oneshot::channel().0)
    }

    #[test]
    fn a_batch_holds_each_task_instance_once_and_at_most_max_batch() {
        let mut queue: Vec<Waiting> = [1, 2, 1, 3, 2].into_iter().map(waiting).collect();
        let ids = |b: &[Waiting]| b.iter().map(|w| w.0.ti_id).collect::<Vec<_>>();
        let batch = take_batch(&mut queue);
        assert_eq!(ids(&batch), [1, 2, 3]);
        assert_eq!(ids(&queue), [1, 2], "the second transitions wait, in order");
        let mut queue: Vec<Waiting> = (0..300).map(waiting).collect();
        assert_eq!(take_batch(&mut queue).len(), MAX_BATCH);
        assert_eq!(queue.len(), 300 - MAX_BATCH);
    }
}
