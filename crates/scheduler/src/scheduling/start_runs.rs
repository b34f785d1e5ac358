//! Tick phase 2: start queued runs. Regular runs start within the DAG's
//! `max_active_runs`, before any backfill run (so a backfill never delays the
//! schedule); backfill runs were already limited by their backfill.

use super::{Scheduler, Tick, regular_runs_per_dag};
use crate::Result;
use crate::model::{RunRecord, RunType};
use crate::state::{RunEvent, RunState};

impl Scheduler {
    /// Starts what may start among `active`; returns the runs now running.
    pub(super) async fn start_queued_runs(
        &mut self,
        tick: &mut Tick,
        mut active: Vec<RunRecord>,
    ) -> Result<Vec<RunRecord>> {
        active.sort_by_key(|r| (r.run_type == RunType::Backfill, r.logical_date, r.id));
        let mut running_per_dag = regular_runs_per_dag(&active, |r| r.state == RunState::Running);
        let mut running = Vec::new();
        for mut r in active {
            if r.state == RunState::Queued {
                let Some(dag) = self.bag.dags.get(&r.dag_id) else {
                    continue;
                };
                let is_backfill = r.run_type == RunType::Backfill;
                let n = running_per_dag.entry(r.dag_id.clone()).or_insert(0);
                if !is_backfill && *n >= dag.max_active_runs {
                    continue;
                }
                let to = r.state.apply(RunEvent::Start)?;
                if self
                    .store
                    .set_run_state(r.id, RunState::Queued, to, tick.now)
                    .await?
                {
                    if !is_backfill {
                        *n += 1;
                    }
                    tick.report.runs_started += 1;
                    r.state = to;
                    r.start_date = Some(tick.now);
                }
            }
            if r.state == RunState::Running {
                running.push(r);
            }
        }
        Ok(running)
    }
}
