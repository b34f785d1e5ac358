//! Tick phase 5: claim scheduled task instances for this process's free
//! executor slots (the store admits them within pools and
//! `max_active_tasks`) and hand them to the executor.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tracing::warn;

use super::Scheduler;
use crate::Result;
use crate::executor::Job;
use crate::model::RunRecord;

impl Scheduler {
    /// Claims and submits; returns how many task instances were handed to
    /// the executor.
    /// `running`: the runs this tick saw running (a claimed task's run is
    /// looked up only when it is not among them).
    pub(super) async fn queue_ready(
        &mut self,
        now: DateTime<Utc>,
        running: &[RunRecord],
    ) -> Result<usize> {
        let free = self.executor.free_slots();
        if free == 0 {
            return Ok(0);
        }
        let claim = self.store.claim(self.executor.owner(), now, free).await?;
        for ti in &claim.missing_pool {
            let msg = ti.error.clone().unwrap_or_default();
            warn!(dag_id = %ti.dag_id, task_id = %ti.task_id, "{msg}");
            self.store
                .append_logs(ti.id, ti.try_number.max(1), &[(now, msg)])
                .await?;
            self.wake.notify_one();
        }
        let seen: HashMap<i64, &RunRecord> = running.iter().map(|r| (r.id, r)).collect();
        let mut runs: HashMap<i64, RunRecord> = HashMap::new();
        let mut queued = 0;
        for ti in claim.claimed {
            let dag = self.bag.dags.get(&ti.dag_id).cloned();
            let position = dag.as_ref().and_then(|d| d.position(&ti.task_id));
            let run = match seen
                .get(&ti.dag_run_id)
                .copied()
                .or(runs.get(&ti.dag_run_id))
            {
                Some(r) => Some(r.clone()),
                None => {
                    let r = self.store.get_run(&ti.dag_id, &ti.run_id).await?;
                    if let Some(r) = &r {
                        runs.insert(r.id, r.clone());
                    }
                    r
                }
            };
            let permit = self.executor.try_slot();
            match (dag, position, run, permit) {
                (Some(dag), Some(position), Some(run), Some(permit)) => {
                    self.executor.submit(Job {
                        ti,
                        run,
                        dag,
                        position,
                        permit,
                    });
                    queued += 1;
                }
                _ => {
                    // Not runnable here after all (DAG or task not loaded in this
                    // process, or no slot): hand it back.
                    self.executor.hand_back(&ti).await?;
                }
            }
        }
        Ok(queued)
    }
}
