//! Tick phase 3: take back tries whose holder stopped heartbeating, and
//! turn retries whose delay elapsed into `scheduled`.

use chrono::{DateTime, Utc};
use tracing::warn;

use super::Scheduler;
use crate::Result;
use crate::model::{Change, StateChange, TiPatch, TryRecord, TryState, TryTransition};
use crate::state::{TaskEvent, TaskState};

impl Scheduler {
    /// Queued or running tries whose lease expired (their process died or
    /// hangs): queued ones are scheduled again; running ones count as a
    /// failed try (retried if tries remain). Fenced by the old owner, so a
    /// holder that heartbeats at the last moment keeps its try. Returns
    /// whether it took any back.
    pub(super) async fn reap_expired(&mut self, now: DateTime<Utc>) -> Result<bool> {
        let mut took = false;
        let cutoff = now
            - chrono::Duration::from_std(self.cfg.lease_timeout).unwrap_or(chrono::Duration::MAX);
        for ti in self.store.expired_leases(cutoff).await? {
            let owner = ti.lease_owner.clone().unwrap_or_default();
            let msg = format!(
                "the process running this try ({owner}) stopped heartbeating for {}s; taking it back",
                self.cfg.lease_timeout.as_secs()
            );
            let mut patch = TiPatch {
                only_if_owner: ti.lease_owner.clone(),
                lease_owner: Change::Clear,
                error: Change::Set(msg.clone()),
                ..TiPatch::default()
            };
            let event = match ti.state {
                TaskState::Queued => TaskEvent::Requeue,
                _ if ti.try_number < ti.max_tries => {
                    patch.next_retry_at = Change::Set(now);
                    patch.end_date = Change::Set(now);
                    TaskEvent::Retry
                }
                _ => {
                    patch.end_date = Change::Set(now);
                    TaskEvent::Fail
                }
            };
            let to = ti.state.apply(event)?;
            if ti.lease_owner.is_none() {
                // No owner to fence on: match the state alone.
                patch.only_if_owner = None;
            }
            let taken = if ti.try_number > 0 && ti.state == TaskState::Running {
                // The try ends here: its last log line and history row go
                // with the state change, all or nothing.
                let start = ti.start_date.unwrap_or(now);
                let record = TryRecord {
                    ti_id: ti.id,
                    try_number: ti.try_number,
                    state: TryState::ended_as(to),
                    start_date: start,
                    end_date: Some(now),
                    duration_ms: Some((now - start).num_milliseconds()),
                    hostname: ti.hostname.clone(),
                    pid: ti.pid,
                    error: Some(msg.clone()),
                };
                self.store
                    .transition_try(&TryTransition {
                        ti_id: ti.id,
                        from: ti.state,
                        to,
                        patch,
                        record,
                        logs: vec![(now, msg)],
                        keep_history_if_refused: false,
                    })
                    .await?
            } else {
                self.store.update_ti(ti.id, ti.state, to, &patch).await?
            };
            if taken {
                took = true;
                warn!(dag_id = %ti.dag_id, run_id = %ti.run_id, task_id = %ti.task_id, %owner, state = %to, "took back a try whose process stopped heartbeating");
                self.wake.notify_one();
            }
        }
        Ok(took)
    }

    /// Retries whose delay elapsed become `scheduled` (one transaction).
    pub(super) async fn schedule_due_retries(&mut self, now: DateTime<Utc>) -> Result<()> {
        let mut changes = Vec::new();
        for ti in self.store.due_retries(now).await? {
            changes.push(StateChange {
                ti_id: ti.id,
                from: ti.state,
                to: ti.state.apply(TaskEvent::RetryDue)?,
            });
        }
        self.store.set_states(&changes, now).await?;
        Ok(())
    }
}
