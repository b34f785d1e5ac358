//! The scheduling loop: creates scheduled runs, starts queued runs, moves
//! task instances along their trigger rules, schedules retries, and hands
//! ready tasks to the executor within executor, pool and DAG limits.
//!
//! It is driven by events: a try ending in this process (in-process
//! notification), a change by another process (PostgreSQL LISTEN/NOTIFY, or
//! SQLite's data_version), or the next due time (a schedule interval ending,
//! a retry delay elapsing). Each wake-up runs one [`Scheduler::tick`], a
//! short sequence of phases, each in its own file:
//!
//! 1. [`create_runs`]: due scheduled runs (within `max_active_runs`);
//! 2. [`start_runs`]: queued runs → running (regular runs first);
//! 3. [`leases`]: take back tries whose holder stopped heartbeating, and
//!    turn due retries into `scheduled`;
//! 4. [`plan_runs`]: trigger rules and run outcomes of every running run;
//! 5. [`queue`]: claim scheduled task instances within the executor's free
//!    slots, pools and `max_active_tasks`, and hand them to the executor;
//! 6. backfills' next runs ([`crate::backfill::advance`]), started by the
//!    next tick.

mod create_runs;
mod leases;
mod plan_runs;
mod queue;
mod start_runs;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::Result;
use crate::dagbag::DagBag;
use crate::executor::Executor;
use crate::model::RunType;
use crate::operator::Kinds;
use crate::store::{Store, Wake};

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
    /// When to look for expired leases again (`None`: at the next tick).
    next_reap: Option<DateTime<Utc>>,
    /// The earliest retry time the last tick saw (`None`: none pending).
    next_retry: Option<DateTime<Utc>>,
}

/// How often a tick looks for expired leases: far below the lease timeout,
/// and not on every tick (a tick runs on every change).
const REAP_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

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
            next_reap: None,
            next_retry: None,
        }
    }

    /// The DAGs loaded by the last refresh.
    pub fn bag(&self) -> &DagBag {
        &self.bag
    }

    /// Re-reads the DAG files and records them (and import errors) in the store.
    pub async fn refresh_dags(&mut self) -> Result<()> {
        let started = std::time::Instant::now();
        let bag = DagBag::load(&self.cfg.dags, &self.kinds)?;
        let parsed = started.elapsed();
        bag.sync(self.store.as_ref()).await?;
        let changed = bag.errors != self.bag.errors
            || bag.dags.len() != self.bag.dags.len()
            || bag.dags.iter().any(|(id, d)| {
                self.bag
                    .dags
                    .get(id)
                    .is_none_or(|old| old.source_hash != d.source_hash)
            });
        if changed {
            info!(
                dags = bag.dags.len(),
                errors = bag.errors.len(),
                parse_ms = parsed.as_millis(),
                total_ms = started.elapsed().as_millis(),
                "DAG folder synced"
            );
        }
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
        let mut changes = self.store.changes(Wake::OnWork).await?;
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
            changes.drain();
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
                        if let Ok(c) = self.store.changes(Wake::OnWork).await { changes = c; }
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
        let mut tick = Tick::new(now);
        let active = self.store.active_runs().await?;
        self.create_scheduled_runs(&mut tick, &active).await?;
        let active = if tick.report.runs_created > 0 {
            self.store.active_runs().await?
        } else {
            active
        };
        let running = self.start_queued_runs(&mut tick, active).await?;
        if self.next_reap.is_none_or(|t| t <= now) {
            if self.reap_expired(now).await? {
                // Taken-back tries may be retried at once.
                self.next_retry = Some(now);
            }
            self.next_reap = Some(now + REAP_EVERY);
        }
        if self.next_retry.is_some_and(|t| t <= now) {
            self.schedule_due_retries(now).await?;
        }
        self.plan_running_runs(&mut tick, &running).await?;
        tick.report.tasks_queued = self.queue_ready(now, &running).await?;
        // Backfills' next runs last, off the path from a try's end to the
        // next task's start; the runs they create start in the next tick
        // (due at once, below), and the dates of runs this tick ended are
        // already done.
        tick.report.runs_created +=
            crate::backfill::advance(self.store.as_ref(), &self.bag.dags).await?;
        if tick.report.runs_finished > 0 || tick.report.runs_created > 0 {
            // Finished runs free max_active_runs slots; new runs have tasks to plan.
            tick.due_by(now);
        }
        self.next_retry = self.store.next_retry_at().await?;
        if let Some(t) = self.next_retry {
            tick.due_by(t);
        }
        Ok((tick.report, tick.due))
    }
}

/// One tick in progress: its clock, what it did so far, and the earliest
/// time something is due after it.
struct Tick {
    now: DateTime<Utc>,
    report: TickReport,
    due: Option<DateTime<Utc>>,
}

impl Tick {
    fn new(now: DateTime<Utc>) -> Tick {
        Tick {
            now,
            report: TickReport::default(),
            due: None,
        }
    }

    /// Something is due at `t`: wake no later than then.
    fn due_by(&mut self, t: DateTime<Utc>) {
        self.due = Some(self.due.map_or(t, |d| d.min(t)));
    }
}

/// Regular (non-backfill) runs per DAG among `runs` matching `keep`.
/// Backfill runs have their own limit and never hold the schedule's slots.
fn regular_runs_per_dag(
    runs: &[crate::model::RunRecord],
    keep: impl Fn(&crate::model::RunRecord) -> bool,
) -> HashMap<String, u32> {
    let mut n = HashMap::new();
    for r in runs
        .iter()
        .filter(|r| r.run_type != RunType::Backfill && keep(r))
    {
        *n.entry(r.dag_id.clone()).or_insert(0) += 1;
    }
    n
}
