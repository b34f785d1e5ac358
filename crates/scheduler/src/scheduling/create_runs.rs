//! Tick phase 1: create the scheduled runs that are due, within each DAG's
//! `max_active_runs`. A per-DAG next-check time avoids recomputing the
//! timetable of a DAG with nothing due.

use chrono::{DateTime, Utc};
use tracing::info;

use super::{Scheduler, Tick, regular_runs_per_dag};
use crate::model::{RunRecord, RunType};
use crate::runs::create_run;
use crate::timetable::Schedule;
use crate::{Error, Result};

impl Scheduler {
    /// Creates every due scheduled run; `active` are the runs queued or
    /// running at the start of the tick.
    pub(super) async fn create_scheduled_runs(
        &mut self,
        tick: &mut Tick,
        active: &[RunRecord],
    ) -> Result<()> {
        let now = tick.now;
        let active_per_dag = regular_runs_per_dag(active, |_| true);
        let dags: Vec<_> = self.bag.dags.values().cloned().collect();
        for dag in &dags {
            if matches!(dag.timetable.schedule, Schedule::None) {
                continue;
            }
            if let Some(t) = self.next_check.get(&dag.dag_id).filter(|t| **t > now) {
                tick.due_by(*t);
                continue;
            }
            let paused = self
                .store
                .get_dag(&dag.dag_id)
                .await?
                .is_none_or(|d| d.is_paused);
            if paused {
                let t = now + chrono::Duration::seconds(2);
                self.next_check.insert(dag.dag_id.clone(), t);
                tick.due_by(t);
                continue;
            }
            let mut last = self
                .store
                .last_scheduled_run(&dag.dag_id)
                .await?
                .map(|r| r.data_interval);
            let mut n_active = active_per_dag.get(&dag.dag_id).copied().unwrap_or(0);
            loop {
                let Some(next) = dag.timetable.next_dagrun(last.as_ref(), now) else {
                    // Past the end date: nothing more, until the file changes.
                    self.next_check
                        .insert(dag.dag_id.clone(), DateTime::<Utc>::MAX_UTC);
                    break;
                };
                if next.end > now {
                    self.next_check.insert(dag.dag_id.clone(), next.end);
                    tick.due_by(next.end);
                    break;
                }
                if n_active >= dag.max_active_runs {
                    // Re-checked when one of its runs ends.
                    self.next_check
                        .insert(dag.dag_id.clone(), DateTime::<Utc>::MAX_UTC);
                    break;
                }
                match create_run(
                    self.store.as_ref(),
                    dag,
                    RunType::Scheduled,
                    next,
                    serde_json::json!({}),
                    None,
                )
                .await
                {
                    Ok(run) => {
                        info!(dag_id = %dag.dag_id, run_id = %run.run_id, "scheduled run created");
                        tick.report.runs_created += 1;
                        n_active += 1;
                    }
                    // Another scheduler created it first: fine, it exists once.
                    Err(Error::RunExists { .. }) => {}
                    Err(e) => return Err(e),
                }
                last = Some(next);
            }
        }
        Ok(())
    }
}
