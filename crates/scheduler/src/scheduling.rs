//! The scheduling loop: creates scheduled runs, starts queued runs, moves
//! task instances along their trigger rules, schedules retries, and hands
//! ready tasks to the executor within executor, pool and DAG limits.
//!
//! It is driven by events: a try ending in this process (in-process
//! notification), a change by another process (PostgreSQL LISTEN/NOTIFY, or
//! SQLite's data_version), or the next due time (a schedule interval ending,
//! a retry delay elapsing). Each wake-up runs one [`Scheduler::tick`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::dagbag::DagBag;
use crate::deps::plan_run;
use crate::executor::{Executor, Job};
use crate::operator::Kinds;
use crate::runs::{create_run, seeds};
use crate::state::{RunEvent, RunState, TaskEvent, TaskState};
use crate::store::{RunRecord, RunType, Store, TaskInstance, TiPatch};
use crate::timetable::Schedule;
use crate::{Error, Result};

/// Settings of a scheduler process.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// DAG files or folders.
    pub dags: Vec<PathBuf>,
    /// Tries running at once in this process.
    pub parallelism: usize,
    /// How often DAG files are re-read.
    pub dag_refresh: Duration,
    /// How often running tries' heartbeats are refreshed.
    pub heartbeat: Duration,
    /// A queued or running try whose holder has not heartbeated for this long
    /// is taken back (retried or failed per its retries).
    pub lease_timeout: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            dags: vec![PathBuf::from("dags")],
            parallelism: 32,
            dag_refresh: Duration::from_secs(10),
            heartbeat: Duration::from_secs(5),
            lease_timeout: Duration::from_secs(20),
        }
    }
}

/// A scheduler with its executor.
pub struct Scheduler {
    store: Arc<dyn Store>,
    kinds: Kinds,
    cfg: SchedulerConfig,
    executor: Executor,
    wake: Arc<Notify>,
    bag: DagBag,
    /// Per DAG: when to look at its schedule again.
    next_check: HashMap<String, DateTime<Utc>>,
}

/// What one tick did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    /// Scheduled runs created.
    pub runs_created: usize,
    /// Runs moved from queued to running.
    pub runs_started: usize,
    /// Runs that ended.
    pub runs_finished: usize,
    /// Task instances handed to the executor.
    pub tasks_queued: usize,
}

impl Scheduler {
    /// A scheduler on `store` running DAGs from `cfg.dags` with `kinds`.
    pub fn new(store: Arc<dyn Store>, kinds: Kinds, cfg: SchedulerConfig) -> Scheduler {
        let wake = Arc::new(Notify::new());
        let owner = format!(
            "{}:{}:{:x}",
            gethostname::gethostname().to_string_lossy(),
            std::process::id(),
            Utc::now().timestamp_micros()
        );
        let executor = Executor::new(store.clone(), cfg.parallelism, owner, wake.clone());
        Scheduler {
            store,
            kinds,
            cfg,
            executor,
            wake,
            bag: DagBag::default(),
            next_check: HashMap::new(),
        }
    }

    /// The DAGs loaded by the last refresh.
    pub fn bag(&self) -> &DagBag {
        &self.bag
    }

    /// Re-reads the DAG files and records them (and import errors) in the store.
    pub async fn refresh_dags(&mut self) -> Result<()> {
        let bag = DagBag::load(&self.cfg.dags, &self.kinds)?;
        bag.sync(self.store.as_ref()).await?;
        for (file, diags) in &bag.errors {
            if self.bag.errors.get(file) != Some(diags) {
                warn!(file = %file.display(), problems = diags.len(), "DAG file has errors:\n{}",
                    diags.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"));
            }
        }
        for id in bag.dags.keys() {
            if !self.bag.dags.contains_key(id) {
                info!(dag_id = %id, "DAG loaded");
            }
        }
        self.bag = bag;
        self.next_check.clear();
        Ok(())
    }

    /// Runs until `shutdown` fires; then stops running tries (requeued) and returns.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<()> {
        self.refresh_dags().await?;
        let mut changes = self.store.changes().await?;
        let mut next_refresh = tokio::time::Instant::now() + self.cfg.dag_refresh;
        let mut next_reap_check = tokio::time::Instant::now() + self.cfg.heartbeat;
        let stop_heartbeat = CancellationToken::new();
        self.executor
            .spawn_heartbeat(self.cfg.heartbeat, stop_heartbeat.clone());
        info!(
            owner = self.executor.owner(),
            dags = self.bag.dags.len(),
            "scheduler started"
        );
        loop {
            let now = tokio::time::Instant::now();
            if now >= next_refresh {
                if let Err(error) = self.refresh_dags().await {
                    warn!(%error, "could not refresh DAGs");
                }
                next_refresh = now + self.cfg.dag_refresh;
            }
            if now >= next_reap_check {
                // Wake at least this often to look for expired leases.
                next_reap_check = now + self.cfg.heartbeat;
            }
            let due = match self.tick(Utc::now()).await {
                Ok((report, due)) => {
                    if report != TickReport::default() {
                        debug!(?report, "tick");
                    }
                    due
                }
                Err(error) => {
                    warn!(%error, "scheduling tick failed; retrying in 1s");
                    Some(Utc::now() + chrono::Duration::seconds(1))
                }
            };
            let mut wake_at = next_refresh.min(next_reap_check);
            if let Some(t) = due {
                let wait = (t - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                wake_at = wake_at.min(tokio::time::Instant::now() + wait);
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                r = changes.next() => {
                    if let Err(error) = r {
                        warn!(%error, "change feed failed; reconnecting");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        if let Ok(c) = self.store.changes().await { changes = c; }
                    }
                }
                () = tokio::time::sleep_until(wake_at) => {}
            }
        }
        info!("scheduler stopping");
        self.executor.shutdown().await;
        stop_heartbeat.cancel();
        self.store.notify().await?;
        info!("scheduler stopped");
        Ok(())
    }

    /// One pass over everything; returns what it did and when something is
    /// next due (`None`: nothing is, wait for an event).
    pub async fn tick(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<(TickReport, Option<DateTime<Utc>>)> {
        let mut report = TickReport::default();
        let mut due: Option<DateTime<Utc>> = None;
        let mut earliest =
            |t: DateTime<Utc>| due = Some(due.map_or(t, |d: DateTime<Utc>| d.min(t)));

        let active = self.store.active_runs().await?;
        let mut active_per_dag: HashMap<&str, u32> = HashMap::new();
        // Backfill runs have their own limit; they never hold the schedule's slots.
        for r in active.iter().filter(|r| r.run_type != RunType::Backfill) {
            *active_per_dag.entry(r.dag_id.as_str()).or_insert(0) += 1;
        }

        // 1. Scheduled runs.
        let dags: Vec<_> = self.bag.dags.values().cloned().collect();
        for dag in &dags {
            if matches!(dag.timetable.schedule, Schedule::None) {
                continue;
            }
            if self.next_check.get(&dag.dag_id).is_some_and(|t| *t > now) {
                earliest(self.next_check[&dag.dag_id]);
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
                earliest(t);
                continue;
            }
            let mut last = self
                .store
                .last_scheduled_run(&dag.dag_id)
                .await?
                .map(|r| r.data_interval);
            let mut n_active = active_per_dag
                .get(dag.dag_id.as_str())
                .copied()
                .unwrap_or(0);
            loop {
                let Some(next) = dag.timetable.next_dagrun(last.as_ref(), now) else {
                    // Past the end date: nothing more, until the file changes.
                    self.next_check
                        .insert(dag.dag_id.clone(), DateTime::<Utc>::MAX_UTC);
                    break;
                };
                if next.end > now {
                    self.next_check.insert(dag.dag_id.clone(), next.end);
                    earliest(next.end);
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
                        report.runs_created += 1;
                        n_active += 1;
                    }
                    // Another scheduler created it first: fine, it exists once.
                    Err(Error::RunExists { .. }) => {}
                    Err(e) => return Err(e),
                }
                last = Some(next);
            }
        }
        // Backfills: create or clear their next runs.
        let backfill_runs = crate::backfill::advance(self.store.as_ref(), &self.bag.dags).await?;
        report.runs_created += backfill_runs;
        let mut active = if report.runs_created > 0 {
            self.store.active_runs().await?
        } else {
            active
        };
        // Regular runs first, so a backfill never delays the schedule.
        active.sort_by_key(|r| (r.run_type == RunType::Backfill, r.logical_date, r.id));

        // 2. Start queued runs: regular runs within the DAG's max_active_runs;
        // backfill runs were already limited by their backfill's.
        let mut running_per_dag: HashMap<String, u32> = HashMap::new();
        for r in active
            .iter()
            .filter(|r| r.state == RunState::Running && r.run_type != RunType::Backfill)
        {
            *running_per_dag.entry(r.dag_id.clone()).or_insert(0) += 1;
        }
        let mut running: Vec<RunRecord> = Vec::new();
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
                    .set_run_state(r.id, RunState::Queued, to, now)
                    .await?
                {
                    if !is_backfill {
                        *n += 1;
                    }
                    report.runs_started += 1;
                    r.state = to;
                    r.start_date = Some(now);
                }
            }
            if r.state == RunState::Running {
                running.push(r);
            }
        }

        // 3. Tries whose holder stopped heartbeating: take them back.
        self.reap_expired(now).await?;

        // Retries whose delay elapsed.
        for ti in self.store.due_retries(now).await? {
            self.store
                .update_ti(
                    ti.id,
                    ti.state,
                    ti.state.apply(TaskEvent::RetryDue)?,
                    &TiPatch::default(),
                )
                .await?;
        }

        // 4. Trigger rules and run outcomes.
        let ids: Vec<i64> = running.iter().map(|r| r.id).collect();
        let mut tis_by_run: HashMap<i64, Vec<TaskInstance>> = HashMap::new();
        for ti in self.store.task_instances(&ids).await? {
            tis_by_run.entry(ti.dag_run_id).or_default().push(ti);
        }
        for run in &running {
            let Some(dag) = self.bag.dags.get(&run.dag_id).cloned() else {
                continue;
            };
            let tis = tis_by_run.remove(&run.id).unwrap_or_default();
            let by_task: HashMap<&str, &TaskInstance> =
                tis.iter().map(|t| (t.task_id.as_str(), t)).collect();
            if dag
                .tasks
                .iter()
                .any(|t| !by_task.contains_key(t.id.as_str()))
            {
                // Tasks added to the DAG after the run was created.
                self.store.add_task_instances(run, &seeds(&dag)).await?;
                self.wake.notify_one();
                continue;
            }
            let states: Vec<TaskState> = dag
                .tasks
                .iter()
                .map(|t| by_task[t.id.as_str()].state)
                .collect();
            let plan = plan_run(&dag, &states);
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
                            end_date: Some(Some(now)),
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
                    .set_run_state(run.id, RunState::Running, to, now)
                    .await?
                {
                    info!(dag_id = %run.dag_id, run_id = %run.run_id, state = %to, "run ended");
                    report.runs_finished += 1;
                    self.next_check.remove(&run.dag_id);
                    self.store.notify().await?;
                }
            }
        }

        // 5. Hand scheduled tasks to the executor within slot limits.
        report.tasks_queued = self.queue_ready(now).await?;
        if report.runs_finished > 0 || report.runs_created > 0 {
            // Finished runs free max_active_runs slots; new runs have tasks to plan.
            earliest(now);
        }
        if let Some(t) = self.store.next_retry_at().await? {
            earliest(t);
        }
        Ok((report, due))
    }

    /// Queued or running tries whose lease expired (their process died or
    /// hangs): queued ones are scheduled again; running ones count as a
    /// failed try (retried if tries remain). Fenced by the old owner, so a
    /// holder that heartbeats at the last moment keeps its try.
    async fn reap_expired(&mut self, now: DateTime<Utc>) -> Result<()> {
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
                lease_owner: Some(None),
                error: Some(Some(msg.clone())),
                ..TiPatch::default()
            };
            let event = match ti.state {
                TaskState::Queued => TaskEvent::Requeue,
                _ if ti.try_number < ti.max_tries => {
                    patch.next_retry_at = Some(Some(now));
                    patch.end_date = Some(Some(now));
                    TaskEvent::Retry
                }
                _ => {
                    patch.end_date = Some(Some(now));
                    TaskEvent::Fail
                }
            };
            let to = ti.state.apply(event)?;
            if ti.lease_owner.is_none() {
                // No owner to fence on: match the state alone.
                patch.only_if_owner = None;
            }
            if self.store.update_ti(ti.id, ti.state, to, &patch).await? {
                warn!(dag_id = %ti.dag_id, run_id = %ti.run_id, task_id = %ti.task_id, %owner, state = %to, "took back a try whose process stopped heartbeating");
                if ti.try_number > 0 {
                    self.store
                        .append_logs(ti.id, ti.try_number, &[(now, msg)])
                        .await?;
                }
                self.wake.notify_one();
            }
        }
        Ok(())
    }

    async fn queue_ready(&mut self, now: DateTime<Utc>) -> Result<usize> {
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
        let mut runs: HashMap<i64, RunRecord> = HashMap::new();
        let mut queued = 0;
        for ti in claim.claimed {
            let dag = self.bag.dags.get(&ti.dag_id).cloned();
            let position = dag.as_ref().and_then(|d| d.position(&ti.task_id));
            let run = match runs.get(&ti.dag_run_id) {
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
                    let patch = TiPatch {
                        lease_owner: Some(None),
                        only_if_owner: Some(self.executor.owner().to_string()),
                        ..TiPatch::default()
                    };
                    self.store
                        .update_ti(
                            ti.id,
                            TaskState::Queued,
                            TaskState::Queued.apply(TaskEvent::Requeue)?,
                            &patch,
                        )
                        .await?;
                }
            }
        }
        Ok(queued)
    }
}
