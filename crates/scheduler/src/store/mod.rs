//! The metadata store: DAGs, runs, task instances, task logs, pools and
//! import errors, behind one [`Store`] trait.
//!
//! [`SqlStore`] implements it for PostgreSQL and SQLite with the same SQL
//! (sqlx's `Any` driver; the few dialect differences are in [`sql`]), and
//! both pass the same conformance suite (`crates/scheduler/tests/store.rs`).
//! Timestamps are stored as microseconds since the epoch (UTC) on both.

#[cfg(feature = "scratch")]
pub mod scratch;
mod sql;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

pub use sql::{
    Changes, SqlStore, Wake, Woken, check_database_url, redact_url as redact, sqlite_path,
};

use crate::Result;
use crate::model::{
    BackfillDate, BackfillRecord, BackfillState, Claim, DagRecord, DateAction, DateState,
    ImportError, LogLine, NewBackfill, NewRun, PoolRecord, RunProgress, RunRecord, SlotUsage,
    StateChange, TaskInstance, TaskSeed, TiPatch, TryRecord, TryTransition,
};
use crate::state::{RunState, TaskState};
use crate::timetable::DataInterval;

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// PostgreSQL: several schedulers may share it.
    Postgres,
    /// SQLite: the embedded default, one scheduler at a time.
    Sqlite,
}

/// Picks which scheduled task instances may be queued now: in the given
/// order (priority, then oldest run), while the pool has free slots, the
/// DAG is under `max_active_tasks`, and fewer than `max` were taken. Pure;
/// the store calls it inside its claim transaction. Returns the positions
/// admitted and those whose pool does not exist.
pub fn admit(
    candidates: &[(TaskInstance, i64)],
    usage: &SlotUsage,
    pools: &std::collections::HashMap<String, i64>,
    max: usize,
) -> (Vec<usize>, Vec<usize>) {
    let mut by_pool = usage.by_pool.clone();
    let mut by_dag = usage.by_dag.clone();
    let (mut ok, mut missing) = (Vec::new(), Vec::new());
    for (i, (ti, max_active_tasks)) in candidates.iter().enumerate() {
        if ok.len() >= max {
            break;
        }
        let Some(&slots) = pools.get(&ti.pool) else {
            missing.push(i);
            continue;
        };
        let in_pool = by_pool.entry(ti.pool.clone()).or_insert(0);
        let in_dag = by_dag.entry(ti.dag_id.clone()).or_insert(0);
        if *in_pool >= slots || *in_dag >= *max_active_tasks {
            continue;
        }
        *in_pool += 1;
        *in_dag += 1;
        ok.push(i);
    }
    (ok, missing)
}

/// Runs grouped by DAG for the DAG lists ([`Store::runs_of_every_dag`]).
#[derive(Debug, Default)]
pub struct RunsByDag {
    /// Each DAG's newest runs, newest first.
    pub recent: std::collections::HashMap<String, Vec<RunRecord>>,
    /// Each DAG's latest scheduled run.
    pub last_scheduled: std::collections::HashMap<String, RunRecord>,
}

/// The metadata store. Every state change is a conditional update on the
/// expected previous state, so concurrent actors cannot both apply one.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which database this is.
    fn backend(&self) -> Backend;
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<()>;

    /// Records the DAGs found in a folder and its import errors: upserts the
    /// DAGs (keeping their paused flag), marks DAGs not found inactive, and
    /// replaces the import errors.
    async fn sync_dags(&self, dags: &[DagRecord], errors: &[ImportError]) -> Result<()>;
    /// Every DAG, active or not, by id.
    async fn list_dags(&self) -> Result<Vec<DagRecord>>;
    /// One DAG.
    async fn get_dag(&self, dag_id: &str) -> Result<Option<DagRecord>>;
    /// Pauses or unpauses; false when the DAG is unknown.
    async fn set_paused(&self, dag_id: &str, paused: bool) -> Result<bool>;
    /// Current import errors.
    async fn import_errors(&self) -> Result<Vec<ImportError>>;

    /// Creates a run and its task instances (pending) atomically. Fails with
    /// [`crate::Error::RunExists`] when the run id or logical date is taken.
    async fn create_run(&self, run: &NewRun, tasks: &[TaskSeed]) -> Result<RunRecord>;
    /// Adds task instances missing from a run (tasks added to the DAG later).
    async fn add_task_instances(&self, run: &RunRecord, tasks: &[TaskSeed]) -> Result<()>;
    /// One run.
    async fn get_run(&self, dag_id: &str, run_id: &str) -> Result<Option<RunRecord>>;
    /// Runs of a DAG, newest logical date first.
    async fn list_runs(&self, dag_id: &str, limit: i64) -> Result<Vec<RunRecord>>;
    /// How many runs each DAG has in each state: `(dag_id, state, count)`.
    async fn run_counts(&self) -> Result<Vec<(String, RunState, i64)>>;
    /// The next page of [`Store::list_runs`]: runs of a DAG with a logical
    /// date strictly before `before`, newest first (keyset pagination: one
    /// index range scan whatever the history size).
    async fn runs_before(
        &self,
        dag_id: &str,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<RunRecord>>;
    /// Every queued or running run.
    async fn active_runs(&self) -> Result<Vec<RunRecord>>;
    /// The scheduled run with the latest logical date.
    async fn last_scheduled_run(&self, dag_id: &str) -> Result<Option<RunRecord>>;
    /// The newest `limit` runs of every DAG (as [`Store::list_runs`] per
    /// DAG), and each DAG's latest scheduled run (as
    /// [`Store::last_scheduled_run`]), in two statements for the DAG lists.
    async fn runs_of_every_dag(&self, limit: i64) -> Result<RunsByDag>;
    /// Changes a run's state if it is still `from`; sets start/end dates.
    async fn set_run_state(
        &self,
        run_pk: i64,
        from: RunState,
        to: RunState,
        at: DateTime<Utc>,
    ) -> Result<bool>;

    /// Task instances of some runs.
    async fn task_instances(&self, run_pks: &[i64]) -> Result<Vec<TaskInstance>>;
    /// Per run among `run_pks`: its task instances, pending and finished
    /// (one aggregate row per run; runs without task instances are absent).
    async fn run_progress(
        &self,
        run_pks: &[i64],
    ) -> Result<std::collections::HashMap<i64, RunProgress>>;
    /// One task instance.
    async fn get_task_instance(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
    ) -> Result<Option<TaskInstance>>;
    /// Changes a task instance's state if it is still `from`, with `patch`.
    async fn update_ti(
        &self,
        ti_id: i64,
        from: TaskState,
        to: TaskState,
        patch: &TiPatch,
    ) -> Result<bool>;
    /// The planner's decisions, in one transaction: each task instance
    /// still in its `from` state moves to `to` (finished states get
    /// `end_date = at`). Returns how many changed.
    async fn set_states(&self, changes: &[StateChange], at: DateTime<Utc>) -> Result<u64>;
    /// A try's start or end with its logs, history row and the wake-up of
    /// other processes, in one transaction (see [`TryTransition`]).
    /// Returns whether the task instance changed.
    async fn transition_try(&self, t: &TryTransition) -> Result<bool>;
    /// Scheduled task instances of running runs, highest priority then oldest run first.
    async fn scheduled_tis(&self, limit: i64) -> Result<Vec<TaskInstance>>;
    /// Queues up to `max` scheduled task instances for `owner`, within pool
    /// slots and each DAG's `max_active_tasks`, in one transaction. On
    /// PostgreSQL claimers lock the pools and DAGs they count against
    /// (advisory locks, in key order) so the counts are
    /// exact across schedulers, and rows are taken `FOR UPDATE SKIP LOCKED`.
    async fn claim(&self, owner: &str, now: DateTime<Utc>, max: usize) -> Result<Claim>;
    /// up_for_retry task instances whose retry time has come.
    async fn due_retries(&self, now: DateTime<Utc>) -> Result<Vec<TaskInstance>>;
    /// The earliest retry time of any up_for_retry task.
    async fn next_retry_at(&self) -> Result<Option<DateTime<Utc>>>;
    /// Slots in use per pool and per DAG.
    async fn slot_usage(&self) -> Result<SlotUsage>;
    /// Task instances queued or running whose holder has not heartbeated
    /// since `cutoff` (its process died or hangs).
    async fn expired_leases(&self, cutoff: DateTime<Utc>) -> Result<Vec<TaskInstance>>;
    /// Refreshes the heartbeat of every running task this owner holds.
    async fn heartbeat(&self, owner: &str, at: DateTime<Utc>) -> Result<u64>;

    /// Appends log lines of one try.
    async fn append_logs(
        &self,
        ti_id: i64,
        try_number: u32,
        lines: &[(DateTime<Utc>, String)],
    ) -> Result<()>;
    /// Log lines of one try with id greater than `after` (for tailing).
    async fn read_logs(&self, ti_id: i64, try_number: u32, after: i64) -> Result<Vec<LogLine>>;

    /// Records a try as it starts or ends (replacing the row of the same
    /// try). History only: the task instance stays the state of record.
    async fn record_try(&self, t: &TryRecord) -> Result<()>;
    /// Every recorded try of these task instances, by task instance then
    /// try number.
    async fn tries(&self, ti_ids: &[i64]) -> Result<Vec<TryRecord>>;

    /// Every pool.
    async fn list_pools(&self) -> Result<Vec<PoolRecord>>;
    /// Creates or updates a pool.
    async fn set_pool(&self, pool: &PoolRecord) -> Result<()>;
    /// Deletes a pool; false when unknown.
    async fn delete_pool(&self, name: &str) -> Result<bool>;

    /// Runs of a DAG with logical dates in `[from, to]`.
    async fn runs_between(
        &self,
        dag_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<RunRecord>>;
    /// The run of a DAG at a logical date.
    async fn run_at(&self, dag_id: &str, logical_date: DateTime<Utc>) -> Result<Option<RunRecord>>;
    /// A run by its database key.
    async fn run_by_pk(&self, run_pk: i64) -> Result<Option<RunRecord>>;
    /// Attaches a run to a backfill.
    async fn set_run_backfill(&self, run_pk: i64, backfill_id: i64) -> Result<()>;

    /// Records a backfill and its planned dates (skipped dates are done at once).
    async fn create_backfill(
        &self,
        nb: &NewBackfill,
        dates: &[(DataInterval, DateAction)],
    ) -> Result<BackfillRecord>;
    /// One backfill.
    async fn get_backfill(&self, id: i64) -> Result<Option<BackfillRecord>>;
    /// Backfills, newest first, optionally of one DAG and in one state.
    async fn list_backfills(
        &self,
        dag_id: Option<&str>,
        state: Option<BackfillState>,
        limit: i64,
    ) -> Result<Vec<BackfillRecord>>;
    /// Changes a backfill's state if it is still `from`.
    async fn set_backfill_state(
        &self,
        id: i64,
        from: BackfillState,
        to: BackfillState,
        at: DateTime<Utc>,
    ) -> Result<bool>;
    /// Dates of a backfill with their runs' states, by logical date (newest
    /// first when `reverse`), optionally in one state, at most `limit`.
    async fn backfill_dates(
        &self,
        id: i64,
        state: Option<DateState>,
        limit: Option<i64>,
        reverse: bool,
    ) -> Result<Vec<BackfillDate>>;
    /// Sets how far one date got.
    async fn set_backfill_date(
        &self,
        id: i64,
        logical_date: DateTime<Utc>,
        state: DateState,
        run_pk: Option<i64>,
    ) -> Result<()>;

    /// Tells schedulers and followers that something changed (PostgreSQL
    /// NOTIFY, and this process's own scheduler directly).
    async fn notify(&self) -> Result<()>;
    /// A feed that wakes up when the database changes, for `wake`.
    async fn changes(&self, wake: Wake) -> Result<Changes>;
}
