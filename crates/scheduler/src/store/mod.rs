//! The metadata store: DAGs, runs, task instances, task logs, pools and
//! import errors, behind one [`Store`] trait.
//!
//! [`SqlStore`] implements it for PostgreSQL and SQLite with the same SQL
//! (sqlx's `Any` driver; the few dialect differences are in [`sql`]), and
//! both pass the same conformance suite (`crates/scheduler/tests/store.rs`).
//! Timestamps are stored as microseconds since the epoch (UTC) on both.

pub mod scratch;
mod sql;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

pub use sql::{Changes, SqlStore, redact_url as redact};

use crate::Result;
use crate::backfill::{
    BackfillDate, BackfillRecord, BackfillState, DateAction, DateState, NewBackfill,
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

/// How a run came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunType {
    /// Created by the scheduler from the DAG's schedule.
    Scheduled,
    /// Triggered by a user.
    Manual,
    /// Created by a backfill.
    Backfill,
}

impl RunType {
    /// The text stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            RunType::Scheduled => "scheduled",
            RunType::Manual => "manual",
            RunType::Backfill => "backfill",
        }
    }

    /// Parses the stored text.
    pub fn parse(s: &str) -> Option<RunType> {
        match s {
            "scheduled" => Some(RunType::Scheduled),
            "manual" => Some(RunType::Manual),
            "backfill" => Some(RunType::Backfill),
            _ => None,
        }
    }

    /// The run id Airflow users expect: `scheduled__2026-11-21T00:00:00+00:00`.
    pub fn run_id(self, logical_date: DateTime<Utc>) -> String {
        format!(
            "{}__{}",
            self.as_str(),
            logical_date.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
        )
    }
}

/// A DAG as recorded in the database.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DagRecord {
    /// DAG id.
    pub dag_id: String,
    /// File it was read from.
    pub fileloc: String,
    /// Hash of the file's text.
    pub source_hash: String,
    /// The file's text.
    pub source: String,
    /// Description.
    pub description: String,
    /// Schedule as written.
    pub schedule: String,
    /// Time zone name.
    pub timezone: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Max active runs.
    pub max_active_runs: i64,
    /// Max active tasks.
    pub max_active_tasks: i64,
    /// Paused DAGs get no scheduled runs.
    pub is_paused: bool,
    /// False once its file is gone or broken.
    pub is_active: bool,
}

/// A file that failed to parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportError {
    /// The file.
    pub fileloc: String,
    /// Every diagnostic, one per line (`file:line:col: message`).
    pub message: String,
}

/// A run to create.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// DAG id.
    pub dag_id: String,
    /// Run id (unique per DAG).
    pub run_id: String,
    /// How it was created.
    pub run_type: RunType,
    /// Logical date (unique per DAG).
    pub logical_date: DateTime<Utc>,
    /// Data interval.
    pub data_interval: DataInterval,
    /// Conf as given by the user (`{}` for scheduled runs).
    pub conf: Value,
    /// Initial state (queued).
    pub state: RunState,
    /// The backfill that created it.
    pub backfill_id: Option<i64>,
}

/// A task instance to create with its run.
#[derive(Debug, Clone)]
pub struct TaskSeed {
    /// Task id.
    pub task_id: String,
    /// Tries allowed: retries + 1.
    pub max_tries: u32,
    /// Pool.
    pub pool: String,
    /// Priority.
    pub priority: i32,
}

/// A DAG run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    /// Database key.
    pub id: i64,
    /// DAG id.
    pub dag_id: String,
    /// Run id.
    pub run_id: String,
    /// How it was created.
    pub run_type: RunType,
    /// Logical date.
    pub logical_date: DateTime<Utc>,
    /// Data interval.
    pub data_interval: DataInterval,
    /// State.
    pub state: RunState,
    /// Conf.
    pub conf: Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it started running.
    pub start_date: Option<DateTime<Utc>>,
    /// When it ended.
    pub end_date: Option<DateTime<Utc>>,
    /// The backfill that created it.
    pub backfill_id: Option<i64>,
}

/// A task instance: one task in one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskInstance {
    /// Database key.
    pub id: i64,
    /// Key of its run.
    pub dag_run_id: i64,
    /// DAG id.
    pub dag_id: String,
    /// Run id.
    pub run_id: String,
    /// Task id.
    pub task_id: String,
    /// State.
    pub state: TaskState,
    /// Tries started so far (the current try's number while running).
    pub try_number: u32,
    /// Tries allowed.
    pub max_tries: u32,
    /// Pool.
    pub pool: String,
    /// Priority.
    pub priority: i32,
    /// When it was queued.
    pub queued_at: Option<DateTime<Utc>>,
    /// When the current/last try started.
    pub start_date: Option<DateTime<Utc>>,
    /// When the last try ended.
    pub end_date: Option<DateTime<Utc>>,
    /// Duration of the last try in milliseconds.
    pub duration_ms: Option<i64>,
    /// Host running/that ran the try.
    pub hostname: Option<String>,
    /// Process id running/that ran the try.
    pub pid: Option<i64>,
    /// When an up_for_retry task becomes scheduled again.
    pub next_retry_at: Option<DateTime<Utc>>,
    /// Last heartbeat of the process running it.
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// Scheduler instance holding it (queued/running).
    pub lease_owner: Option<String>,
    /// Last error message.
    pub error: Option<String>,
}

/// Fields to set along with a task-instance state change. `None` leaves a
/// field as it is; `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct TiPatch {
    /// New try number.
    pub try_number: Option<u32>,
    /// New tries allowed.
    pub max_tries: Option<u32>,
    /// Queued time.
    pub queued_at: Option<Option<DateTime<Utc>>>,
    /// Start time.
    pub start_date: Option<Option<DateTime<Utc>>>,
    /// End time.
    pub end_date: Option<Option<DateTime<Utc>>>,
    /// Duration.
    pub duration_ms: Option<Option<i64>>,
    /// Host.
    pub hostname: Option<Option<String>>,
    /// Process id.
    pub pid: Option<Option<i64>>,
    /// Retry time.
    pub next_retry_at: Option<Option<DateTime<Utc>>>,
    /// Heartbeat.
    pub heartbeat_at: Option<Option<DateTime<Utc>>>,
    /// Lease owner.
    pub lease_owner: Option<Option<String>>,
    /// Error message.
    pub error: Option<Option<String>>,
    /// Condition, not a field: apply only while this owner holds the lease
    /// (fencing: a process that lost its lease cannot overwrite the state).
    pub only_if_owner: Option<String>,
}

/// One stored log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// Increasing id (use it to tail: ask for lines after the last one seen).
    pub id: i64,
    /// Try number.
    pub try_number: u32,
    /// When it was written.
    pub ts: DateTime<Utc>,
    /// The text.
    pub line: String,
}

/// A pool of slots limiting how many tasks using it run at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolRecord {
    /// Name.
    pub name: String,
    /// Slots.
    pub slots: i64,
    /// Description.
    pub description: String,
}

/// Slots in use (task instances queued or running), per pool and per DAG.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotUsage {
    /// Pool name → tasks holding one of its slots.
    pub by_pool: std::collections::HashMap<String, i64>,
    /// DAG id → tasks queued or running.
    pub by_dag: std::collections::HashMap<String, i64>,
}

/// What a claim took: task instances now queued for the claimer, and those
/// that failed because their pool does not exist.
#[derive(Debug, Clone, Default)]
pub struct Claim {
    /// Now `queued`, leased to the claimer.
    pub claimed: Vec<TaskInstance>,
    /// Now `failed`: their pool does not exist.
    pub missing_pool: Vec<TaskInstance>,
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
    /// Scheduled task instances of running runs, highest priority then oldest run first.
    async fn scheduled_tis(&self, limit: i64) -> Result<Vec<TaskInstance>>;
    /// Queues up to `max` scheduled task instances for `owner`, within pool
    /// slots and each DAG's `max_active_tasks`, in one transaction. On
    /// PostgreSQL claimers are serialized (advisory lock) so the counts are
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

    /// Tells other processes that something changed (PostgreSQL NOTIFY).
    async fn notify(&self) -> Result<()>;
    /// A feed that wakes up when another process changes the database.
    async fn changes(&self) -> Result<Changes>;
}
