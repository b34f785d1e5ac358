//! Tick phase 4: apply trigger rules to every running run (schedule, skip,
//! upstream-fail in one topological pass, `deps::plan_run`), store every
//! run's decisions in one transaction, and end the runs whose tasks are all
//! finished.

use std::collections::HashMap;

use tracing::info;

use super::{Scheduler, Tick};
use crate::Result;
use crate::dag::Dag;
use crate::deps::plan_run;
use crate::model::{RunProgress, RunRecord, StateChange, TaskInstance};
use crate::runs::seeds;
use crate::state::{RunEvent, RunState, TaskEvent, TaskState};

/// Up to this many task instances in running runs, the planner reads them
/// all rather than counting first.
const READ_ALL_UP_TO: usize = 500;

impl Scheduler {
    /// Plans each of `running`: every run's trigger-rule decisions are
    /// stored together in one transaction, then the runs that ended are
    /// ended.
    pub(super) async fn plan_running_runs(
        &mut self,
        tick: &mut Tick,
        running: &[RunRecord],
    ) -> Result<()> {
        let tasks_of = |r: &RunRecord| self.bag.dags.get(&r.dag_id).map_or(0, |d| d.tasks.len());
        // Few task instances: read them all (one round trip). Many: count
        // first, and read only the runs with something to plan.
        let running: Vec<&RunRecord> =
            if running.iter().map(tasks_of).sum::<usize>() <= READ_ALL_UP_TO {
                running.iter().collect()
            } else {
                let ids: Vec<i64> = running.iter().map(|r| r.id).collect();
                let progress = self.store.run_progress(&ids).await?;
                running
                    .iter()
                    .filter(|r| {
                        progress
                            .get(&r.id)
                            .is_none_or(|p| needs_planning(p, tasks_of(r)))
                    })
                    .collect()
            };
        let ids: Vec<i64> = running.iter().map(|r| r.id).collect();
        let mut tis_by_run: HashMap<i64, Vec<TaskInstance>> = HashMap::new();
        for ti in self.store.task_instances(&ids).await? {
            tis_by_run.entry(ti.dag_run_id).or_default().push(ti);
        }
        let mut changes = Vec::new();
        let mut ended = Vec::new();
        for run in running {
            let Some(dag) = self.bag.dags.get(&run.dag_id).cloned() else {
                continue;
            };
            let tis = tis_by_run.remove(&run.id).unwrap_or_default();
            if let Some(outcome) = self.plan_run(&dag, run, &tis, &mut changes).await? {
                ended.push((run, outcome));
            }
        }
        self.store.set_states(&changes, tick.now).await?;
        for (run, outcome) in ended {
            self.end_run(tick, run, outcome).await?;
        }
        Ok(())
    }

    /// Adds `run`'s trigger-rule decisions to `changes`; returns its outcome
    /// when every task is finished.
    async fn plan_run(
        &mut self,
        dag: &Dag,
        run: &RunRecord,
        tis: &[TaskInstance],
        changes: &mut Vec<StateChange>,
    ) -> Result<Option<RunState>> {
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
            return Ok(None);
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
                changes.push(StateChange {
                    ti_id: ti.id,
                    from: ti.state,
                    to: ti.state.apply(event)?,
                });
            }
        }
        Ok(plan.outcome)
    }

    /// Ends `run` with `outcome` if it is still running.
    async fn end_run(&mut self, tick: &mut Tick, run: &RunRecord, outcome: RunState) -> Result<()> {
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
        Ok(())
    }
}

/// Whether a run has anything to plan: a pending task (its trigger rule may
/// now hold), every task finished (the run ends), or task instances that do
/// not match the DAG's tasks (tasks added since the run was created). A run
/// whose tasks are all scheduled, queued, running or waiting to retry has
/// nothing, and is not read.
fn needs_planning(p: &RunProgress, dag_tasks: usize) -> bool {
    p.pending > 0 || p.finished == p.total || p.total != dag_tasks
}
