//! The records the scheduler's modules share: what the store persists and
//! returns (DAGs, runs, task instances, logs, pools, backfills) and the
//! patches it applies. Plain data; this module depends only on the state
//! machines and time types below it, so every module above (store,
//! scheduling, backfill, actions, runs) can use it without depending on the
//! others.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::state::{RunState, TaskState};
use crate::timetable::DataInterval;

text_enum!(
    /// How a run came to be.
    RunType {
        /// Created by the scheduler from the DAG's schedule.
        Scheduled = "scheduled",
        /// Triggered by a user.
        Manual = "manual",
        /// Created by a backfill.
        Backfill = "backfill",
    }
);

impl RunType {
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
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct DagRecord {
    pub dag_id: String,
    /// File it was read from.
    pub fileloc: String,
    /// Hash of the file's text.
    pub source_hash: String,
    /// The file's text.
    pub source: String,
    pub description: String,
    /// Schedule as written.
    pub schedule: String,
    /// Time zone name.
    pub timezone: String,
    pub tags: Vec<String>,
    pub max_active_runs: i64,
    pub max_active_tasks: i64,
    /// Paused DAGs get no scheduled runs.
    pub is_paused: bool,
    /// False once its file is gone or broken.
    pub is_active: bool,
}

/// A file that failed to parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ImportError {
    /// The file.
    pub fileloc: String,
    /// Every diagnostic, one per line (`file:line:col: message`).
    pub message: String,
}

/// A run to create.
#[derive(Debug, Clone)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct NewRun {
    pub dag_id: String,
    /// Run id (unique per DAG).
    pub run_id: String,
    /// How it was created.
    pub run_type: RunType,
    /// Logical date (unique per DAG).
    pub logical_date: DateTime<Utc>,
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
#[allow(missing_docs)] // plain data: the field names say it
pub struct TaskSeed {
    pub task_id: String,
    /// Tries allowed: retries + 1.
    pub max_tries: u32,
    pub pool: String,
    pub priority: i32,
}

/// A DAG run.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct RunRecord {
    /// Database key.
    pub id: i64,
    pub dag_id: String,
    pub run_id: String,
    /// How it was created.
    pub run_type: RunType,
    pub logical_date: DateTime<Utc>,
    pub data_interval: DataInterval,
    pub state: RunState,
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
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct TaskInstance {
    /// Database key.
    pub id: i64,
    /// Key of its run.
    pub dag_run_id: i64,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub state: TaskState,
    /// Tries started so far (the current try's number while running).
    pub try_number: u32,
    /// Tries allowed.
    pub max_tries: u32,
    pub pool: String,
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

/// A change to one field of a stored record: leave it, set it, or clear
/// it (store NULL).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Change<T> {
    /// Leave the stored value as it is.
    #[default]
    Keep,
    /// Store this value.
    Set(T),
    /// Store NULL.
    Clear,
}

impl<T> Change<T> {
    /// `None` to keep the field; else the value to store (`None`: NULL).
    pub fn to_store(&self) -> Option<Option<&T>> {
        match self {
            Change::Keep => None,
            Change::Set(v) => Some(Some(v)),
            Change::Clear => Some(None),
        }
    }
}

/// Fields to set along with a task-instance state change (every field
/// [`Change::Keep`] unless given), and the lease condition it applies under.
#[derive(Debug, Clone, Default)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct TiPatch {
    /// New try number.
    pub try_number: Option<u32>,
    /// New tries allowed.
    pub max_tries: Option<u32>,
    /// Queued time.
    pub queued_at: Change<DateTime<Utc>>,
    /// Start time.
    pub start_date: Change<DateTime<Utc>>,
    /// End time.
    pub end_date: Change<DateTime<Utc>>,
    /// Duration.
    pub duration_ms: Change<i64>,
    /// Host.
    pub hostname: Change<String>,
    /// Process id.
    pub pid: Change<i64>,
    /// Retry time.
    pub next_retry_at: Change<DateTime<Utc>>,
    /// Heartbeat.
    pub heartbeat_at: Change<DateTime<Utc>>,
    pub lease_owner: Change<String>,
    /// Error message.
    pub error: Change<String>,
    /// Condition, not a field: apply only while this owner holds the lease
    /// (fencing: a process that lost its lease cannot overwrite the state).
    pub only_if_owner: Option<String>,
}

/// A try's state change and what is recorded with it, written in one
/// transaction ([`crate::store::Store::transition_try`]): the log lines not
/// yet stored, the task instance's change (conditional on `from` and the
/// patch's lease owner), the try's history row, and the wake-up of other
/// processes.
#[derive(Debug, Clone)]
pub struct TryTransition {
    /// The task instance.
    pub ti_id: i64,
    /// The state it must still be in.
    pub from: TaskState,
    /// The state it moves to.
    pub to: TaskState,
    /// Fields set with it, and the lease condition.
    pub patch: TiPatch,
    /// The try's history row (its `try_number` is the logs' try too).
    pub record: TryRecord,
    /// Log lines of the try not stored yet.
    pub logs: Vec<(DateTime<Utc>, String)>,
    /// When the task instance changed meanwhile (the state condition
    /// refuses the change): keep the logs and the history row anyway (a
    /// try that ran happened, whether or not its result is kept), or write
    /// nothing (a try that never started).
    pub keep_history_if_refused: bool,
}

/// How far a run's task instances got, counted by the database (the
/// planner reads whole runs only when they have something to plan).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunProgress {
    /// Task instances.
    pub total: usize,
    /// Of which pending (waiting on their trigger rule).
    pub pending: usize,
    /// Of which finished.
    pub finished: usize,
}

/// One trigger-rule decision of the planner: a task instance moving from
/// `from` to `to` (ending it when `to` is finished), applied only if it is
/// still in `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange {
    /// The task instance.
    pub ti_id: i64,
    /// The state it must still be in.
    pub from: TaskState,
    /// The state it moves to.
    pub to: TaskState,
}

text_enum!(
    /// How one try of a task instance ended.
    TryState {
        /// Still executing.
        Running = "running",
        /// Succeeded.
        Success = "success",
        /// Failed; another try followed (or will, after the retry delay).
        UpForRetry = "up_for_retry",
        /// Failed with no tries left, or with a fatal error.
        Failed = "failed",
        /// The task skipped itself.
        Skipped = "skipped",
        /// Shutdown stopped it before it ended; it does not count against
        /// the task's retries and the task was scheduled again.
        Interrupted = "interrupted",
    }
);

impl TryState {
    /// The try's outcome when the task instance moved to `to` as it ended.
    pub fn ended_as(to: TaskState) -> TryState {
        match to {
            TaskState::Success => TryState::Success,
            TaskState::UpForRetry => TryState::UpForRetry,
            TaskState::Skipped => TryState::Skipped,
            TaskState::Scheduled | TaskState::Pending | TaskState::Queued => TryState::Interrupted,
            TaskState::Running => TryState::Running,
            TaskState::Failed | TaskState::UpstreamFailed => TryState::Failed,
        }
    }
}

/// One try of a task instance, as it started and ended. The task instance
/// holds only its latest try; these keep every one (the task page's try
/// tabs and the Gantt chart draw them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct TryRecord {
    pub ti_id: i64,
    pub try_number: u32,
    pub state: TryState,
    pub start_date: DateTime<Utc>,
    pub end_date: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub hostname: Option<String>,
    pub pid: Option<i64>,
    pub error: Option<String>,
}

/// One stored log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct LogLine {
    /// Increasing id (use it to tail: ask for lines after the last one seen).
    pub id: i64,
    pub try_number: u32,
    /// When it was written.
    pub ts: DateTime<Utc>,
    /// The text.
    pub line: String,
}

/// A pool of slots limiting how many tasks using it run at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct PoolRecord {
    pub name: String,
    pub slots: i64,
    pub description: String,
}

/// Slots in use (task instances queued or running), per pool and per DAG.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotUsage {
    /// Pool name → tasks holding one of its slots.
    pub by_pool: HashMap<String, i64>,
    /// DAG id → tasks queued or running.
    pub by_dag: HashMap<String, i64>,
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

text_enum!(
    /// Which dates that already have a run are run again.
    Reprocess {
        /// Only dates without a run.
        Missing = "missing",
        /// Also dates whose run failed.
        Failed = "failed",
        /// Every date (finished runs are cleared and run again).
        All = "all",
    }
);

text_enum!(
    /// State of a backfill.
    BackfillState {
        /// Runs are being created and run.
        Running = "running",
        /// Every date was handled.
        Completed = "completed",
        /// Stopped by a user; runs already started finish on their own.
        Cancelled = "cancelled",
    }
);

text_enum!(
    /// What a backfill does with one logical date.
    DateAction {
        /// Create a run.
        Create = "create",
        /// Clear the existing run so it runs again.
        Clear = "clear",
        /// Leave the existing run alone.
        Skip = "skip",
    }
);

text_enum!(
    /// How far one date of a backfill got.
    DateState {
        /// Not started yet.
        Pending = "pending",
        /// Its run was created or cleared.
        Started = "started",
        /// Its run ended (or it was skipped).
        Done = "done",
        /// The backfill was cancelled before it started.
        Cancelled = "cancelled",
    }
);

/// A backfill as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct BackfillRecord {
    pub id: i64,
    pub dag_id: String,
    /// First logical date of the range.
    pub from_date: DateTime<Utc>,
    /// Last logical date of the range.
    pub to_date: DateTime<Utc>,
    /// Reprocess mode.
    pub reprocess: Reprocess,
    /// Backfill runs queued or running at once.
    pub max_active_runs: i64,
    /// Newest dates first.
    pub reverse: bool,
    /// Conf of every run.
    pub conf: Value,
    pub state: BackfillState,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Completed or cancelled.
    pub completed_at: Option<DateTime<Utc>>,
}

/// One date of a backfill, with its run's state.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct BackfillDate {
    pub logical_date: DateTime<Utc>,
    /// End of its data interval.
    pub data_interval_end: DateTime<Utc>,
    /// What the backfill does with it.
    pub action: DateAction,
    /// How far it got.
    pub state: DateState,
    /// Its run.
    pub dag_run_id: Option<i64>,
    /// Its run's state.
    pub run_state: Option<RunState>,
}

/// A backfill to record.
#[derive(Debug, Clone)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct NewBackfill {
    pub dag_id: String,
    /// First logical date.
    pub from_date: DateTime<Utc>,
    /// Last logical date.
    pub to_date: DateTime<Utc>,
    /// Reprocess mode.
    pub reprocess: Reprocess,
    /// Backfill runs at once.
    pub max_active_runs: i64,
    /// Newest first.
    pub reverse: bool,
    /// Conf of every run.
    pub conf: Value,
}
