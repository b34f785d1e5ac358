//! Tick phase 4: apply trigger rules to every running run (schedule, skip,
//! upstream-fail in one topological pass, `deps::plan_run`) and end the runs
//! whose tasks are all finished.

use std::collections::HashMap;

use tracing::info;

use super::{Scheduler, Tick};
use crate::Result;
use crate::dag::Dag;
use crate::deps::plan_run;
use crate::model::{Change, RunRecord, TaskInstance, TiPatch};
use crate::runs::seeds;
use crate::state::{RunEvent, RunState, TaskEvent, TaskState};

impl Scheduler {
    /// Plans each of `running`.
    pub(super) async fn plan_running_runs(
        &mut self,
        tick: &mut Tick,
        running: &[RunRecord],
    ) -> Result<()> {
        let ids: Vec<i64> = running.iter().map(|r| r.id).collect();
        let mut tis_by_run: HashMap<i64, Vec<TaskInstance>> = HashMap::new();
        for ti in self.store.task_instances(&ids).await? {
            tis_by_run.entry(ti.dag_run_id).or_default().push(ti);
        }
        for run in running {
            let Some(dag) = self.bag.dags.get(&run.dag_id).cloned() else {
                continue;
            };
            let tis = tis_by_run.remove(&run.id).unwrap_or_default();
            self.plan_run(tick, &dag, run, &tis).await?;
        }
        Ok(())
    }

    async fn plan_run(
        &mut self,
        tick: &mut Tick,
        dag: &Dag,
        run: &RunRecord,
        tis: &[TaskInstance],
    ) -> Result<()> {
        let by_task: HashMap<&str, &TaskInstance> =
            tis.iter().map(|t| (t.task_id.as_str(), t)).collect();
        if dag
            .tasks
            .iter()
            .any(|t| !by_task.contains_key(t.id.as_str()))
        {
            // Tasks added to the DAG after the run was created.
            self.store.add_task_instances(run, &seeds(dag)).await?;
            self.wake.notify_one();
            return Ok(());
        }
        let states: Vec<TaskState> = dag
            .tasks
            .iter()
            .map(|t| by_task[t.id.as_str()].state)
            .collect();
        let plan = plan_run(dag, &states);
        for (list, event) in [
            (&plan.schedule, TaskEvent::Schedule),
            (&plan.skip, TaskEvent::Skip),
            (&plan.upstream_failed, TaskEvent::UpstreamFail),
        ] {
            for &i in list {
                let ti = by_task[dag.tasks[i].id.as_str()];
                let to = ti.state.apply(event)?;
                let patch = if to.is_finished() {
                    TiPatch {
                        end_date: Change::Set(tick.now),
                        ..TiPatch::default()
                    }
                } else {
                    TiPatch::default()
                };
                self.store.update_ti(ti.id, ti.state, to, &patch).await?;
            }
        }
        if let Some(outcome) = plan.outcome {
            let event = if outcome == RunState::Success {
                RunEvent::Succeed
            } else {
                RunEvent::Fail
            };
            let to = run.state.apply(event)?;
            if self
                .store
                .set_run_state(run.id, RunState::Running, to, tick.now)
                .await?
            {
                info!(dag_id = %run.dag_id, run_id = %run.run_id, state = %to, "run ended");
                tick.report.runs_finished += 1;
                self.next_check.remove(&run.dag_id);
                self.store.notify().await?;
            }
        }
        Ok(())
    }
}
