//! The local executor: runs task tries as tokio tasks, at most `parallelism`
//! at once, with execution timeouts, cancellation, per-try logs stored in the
//! metadata database, retries with backoff, and a heartbeat for every try it
//! holds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::dag::{Dag, Task};
use crate::model::{Change, RunRecord, TaskInstance, TiPatch, TryRecord, TryState, TryTransition};
use crate::operator::{TaskContext, TaskError, TaskLog, TaskOutcome};
use crate::state::{TaskEvent, TaskState};
use crate::store::Store;

/// How long an operator gets to stop after its cancellation fired.
const CANCEL_GRACE: Duration = Duration::from_secs(10);
/// How often buffered log lines are written.
const LOG_FLUSH: Duration = Duration::from_millis(100);

/// Why a running try was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CancelReason {
    Shutdown,
}

/// A running try's cancellation handle and the reason it was cancelled.
type RunningTry = (CancellationToken, Arc<Mutex<Option<CancelReason>>>);

/// One try to run.
pub struct Job {
    /// The task instance, already moved to queued by the caller.
    pub ti: TaskInstance,
    /// Its run.
    pub run: RunRecord,
    /// Its DAG.
    pub dag: Arc<Dag>,
    /// Position of the task in `dag.tasks`.
    pub position: usize,
    /// The executor slot it holds.
    pub permit: OwnedSemaphorePermit,
}

/// Runs tries in this process.
#[derive(Clone)]
pub struct Executor {
    store: Arc<dyn Store>,
    slots: Arc<Semaphore>,
    owner: String,
    hostname: String,
    wake: Arc<Notify>,
    running: Arc<Mutex<HashMap<i64, RunningTry>>>,
    tracker: TaskTracker,
    /// Cancelled when shutdown begins: a try submitted before and started
    /// after it stops at once instead of being missed.
    stopping: CancellationToken,
}

impl Executor {
    /// An executor running at most `parallelism` tries at once; `wake` is
    /// notified whenever a try ends (the scheduling loop waits on it).
    pub fn new(
        store: Arc<dyn Store>,
        parallelism: usize,
        owner: String,
        wake: Arc<Notify>,
    ) -> Executor {
        Executor {
            store,
            slots: Arc::new(Semaphore::new(parallelism.max(1))),
            owner,
            hostname: gethostname::gethostname().to_string_lossy().into_owned(),
            wake,
            running: Arc::default(),
            tracker: TaskTracker::new(),
            stopping: CancellationToken::new(),
        }
    }

    /// The id this executor writes as lease owner.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Takes a free slot, if any.
    pub fn try_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// Free slots now.
    pub fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }

    /// Tries running now.
    pub fn running(&self) -> usize {
        self.running.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Starts a try in the background.
    pub fn submit(&self, job: Job) {
        let this = self.clone();
        self.tracker.spawn(async move {
            let ti_id = job.ti.id;
            let (dag_id, task_id) = (job.ti.dag_id.clone(), job.ti.task_id.clone());
            if let Err(error) = this.run_try(job).await {
                warn!(%error, dag_id, task_id, ti_id, "task try could not be recorded");
            }
            this.wake.notify_one();
        });
    }

    /// Refreshes heartbeats every `every` until `stop` fires, on its own task so
    /// a busy scheduling loop cannot make our own tries look dead.
    pub fn spawn_heartbeat(&self, every: Duration, stop: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                if let Err(error) = this.heartbeat().await {
                    warn!(%error, "heartbeat failed");
                }
            }
        });
    }

    /// Refreshes the heartbeat of every try this executor holds.
    pub async fn heartbeat(&self) -> crate::Result<u64> {
        self.store.heartbeat(&self.owner, Utc::now()).await
    }

    /// Stops every running try (they are requeued, their try not counted) and
    /// waits for them to wind down.
    pub async fn shutdown(&self) {
        // Before the entries are collected: a try registering after this
        // point sees it and cancels itself (see `run_try`).
        self.stopping.cancel();
        let entries: Vec<_> = self
            .running
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        if !entries.is_empty() {
            info!(
                tries = entries.len(),
                "stopping running task tries; they will be requeued"
            );
        }
        for (token, reason) in entries {
            if let Ok(mut r) = reason.lock() {
                *r = Some(CancelReason::Shutdown);
            }
            token.cancel();
        }
        self.tracker.close();
        self.tracker.wait().await;
    }

    async fn run_try(&self, job: Job) -> crate::Result<()> {
        let Job {
            ti,
            run,
            dag,
            position,
            permit,
        } = job;
        let _permit = permit;
        let task: &Task = &dag.tasks[position];
        let try_number = ti.try_number + 1;
        if self.stopping.is_cancelled() {
            return self.hand_back(&ti).await;
        }
        let Some(started) = self.start_try(&ti, try_number).await? else {
            return Ok(());
        };
        let start_instant = Instant::now();
        let (log, rx) = TaskLog::channel();
        let flusher = tokio::spawn(flush_logs(self.store.clone(), ti.id, try_number, rx));
        let cancel = CancellationToken::new();
        let reason = Arc::new(Mutex::new(None));
        if let Ok(mut m) = self.running.lock() {
            m.insert(ti.id, (cancel.clone(), reason.clone()));
        }
        if self.stopping.is_cancelled() {
            // Shutdown began between the check above and the registration.
            if let Ok(mut r) = reason.lock() {
                *r = Some(CancelReason::Shutdown);
            }
            cancel.cancel();
        }
        log.line(format!(
            "try {try_number} of {} of task {:?} ({}) in run {} started on {} (pid {})",
            ti.max_tries,
            task.id,
            task.kind,
            run.run_id,
            self.hostname,
            std::process::id()
        ));
        let result = execute(&dag, task, &run, try_number, &log, &cancel).await;
        if let Ok(mut m) = self.running.lock() {
            m.remove(&ti.id);
        }
        let shutdown = reason
            .lock()
            .map(|r| *r == Some(CancelReason::Shutdown))
            .unwrap_or(false);
        let ended = Utc::now();
        let duration_ms = i64::try_from(start_instant.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (event, mut patch) = if shutdown {
            log.line(format!(
                "the scheduler is shutting down: try {try_number} is interrupted and does not count; \
                 the task goes back to scheduled with {} tries allowed",
                ti.max_tries + 1
            ));
            // Not started as far as the task instance is concerned; the try
            // history keeps what this one did.
            let patch = TiPatch {
                max_tries: Some(ti.max_tries + 1),
                start_date: Change::Clear,
                end_date: Change::Clear,
                duration_ms: Change::Clear,
                hostname: Change::Clear,
                pid: Change::Clear,
                lease_owner: Change::Clear,
                ..TiPatch::default()
            };
            (TaskEvent::Requeue, patch)
        } else {
            let (event, mut patch) =
                try_outcome(&result, task, &ti, try_number, ended, duration_ms, &log);
            patch.end_date = Change::Set(ended);
            patch.duration_ms = Change::Set(duration_ms);
            (event, patch)
        };
        patch.only_if_owner = Some(self.owner.clone());
        // The last log lines go in the same transaction as the end state,
        // so whoever sees the end state also sees the whole log.
        drop(log);
        let logs = flusher.await.unwrap_or_default();
        let to = TaskState::Running.apply(event)?;
        let error = match &patch.error {
            Change::Set(e) => Some(e.clone()),
            _ => None,
        };
        let record = TryRecord {
            state: TryState::ended_as(to),
            end_date: Some(ended),
            duration_ms: Some(duration_ms),
            error,
            ..started
        };
        let kept = self
            .store
            .transition_try(&TryTransition {
                ti_id: ti.id,
                from: TaskState::Running,
                to,
                patch,
                record,
                logs,
                // The try happened whether or not its result is kept.
                keep_history_if_refused: true,
            })
            .await?;
        if !kept {
            warn!(
                ti_id = ti.id,
                task_id = %ti.task_id,
                "task instance changed while running (cleared, marked, or our lease expired); result dropped"
            );
        }
        info!(dag_id = %ti.dag_id, run_id = %ti.run_id, task_id = %ti.task_id, try_number, state = %to, "task try ended");
        Ok(())
    }

    /// A try leased to this executor but not started (shutdown began, or it
    /// cannot run here): back to scheduled, lease released, so another
    /// scheduler (or the next tick) runs it.
    pub async fn hand_back(&self, ti: &TaskInstance) -> crate::Result<()> {
        let patch = TiPatch {
            lease_owner: Change::Clear,
            only_if_owner: Some(self.owner.clone()),
            ..TiPatch::default()
        };
        let to = TaskState::Queued.apply(TaskEvent::Requeue)?;
        self.store
            .update_ti(ti.id, TaskState::Queued, to, &patch)
            .await?;
        Ok(())
    }

    /// `queued → running` for this try, fenced on our lease, recorded in the
    /// try history; returns the try's history row as started, or `None`
    /// when the task instance changed meanwhile (then it is not run).
    async fn start_try(
        &self,
        ti: &TaskInstance,
        try_number: u32,
    ) -> crate::Result<Option<TryRecord>> {
        let started = Utc::now();
        let patch = TiPatch {
            try_number: Some(try_number),
            start_date: Change::Set(started),
            end_date: Change::Clear,
            duration_ms: Change::Clear,
            hostname: Change::Set(self.hostname.clone()),
            pid: Change::Set(i64::from(std::process::id())),
            heartbeat_at: Change::Set(started),
            next_retry_at: Change::Clear,
            error: Change::Clear,
            only_if_owner: Some(self.owner.clone()),
            ..TiPatch::default()
        };
        let record = TryRecord {
            ti_id: ti.id,
            try_number,
            state: TryState::Running,
            start_date: started,
            end_date: None,
            duration_ms: None,
            hostname: Some(self.hostname.clone()),
            pid: Some(i64::from(std::process::id())),
            error: None,
        };
        let started_here = self
            .store
            .transition_try(&TryTransition {
                ti_id: ti.id,
                from: TaskState::Queued,
                to: TaskState::Queued.apply(TaskEvent::Start)?,
                patch,
                record: record.clone(),
                logs: Vec::new(),
                keep_history_if_refused: false,
            })
            .await?;
        if !started_here {
            warn!(ti_id = ti.id, task_id = %ti.task_id, "task instance changed before it started; not running it");
            return Ok(None);
        }
        Ok(Some(record))
    }
}

/// Runs the operator with the run's params (a conf that does not fit them
/// fails the try without running anything).
async fn execute(
    dag: &Dag,
    task: &Task,
    run: &RunRecord,
    try_number: u32,
    log: &TaskLog,
    cancel: &CancellationToken,
) -> Result<TaskOutcome, TaskError> {
    let params = dag.params.resolve(&run.conf).map_err(|problems| {
        TaskError::Fatal(format!(
            "the run's conf does not fit the DAG's params: {}",
            problems.join("; ")
        ))
    })?;
    let ctx = TaskContext {
        dag_id: dag.dag_id.clone(),
        run_id: run.run_id.clone(),
        task_id: task.id.clone(),
        try_number,
        logical_date: run.logical_date,
        data_interval: run.data_interval,
        conf: run.conf.clone(),
        params,
        log: log.clone(),
        cancel: cancel.clone(),
    };
    run_with_timeout(task, ctx, cancel, log).await
}

/// The one place a try's result becomes the task's next state: success,
/// skip, a retry after the task's delay (a retryable error with tries
/// left), or failure. Returns the event and the fields it sets.
fn try_outcome(
    result: &Result<TaskOutcome, TaskError>,
    task: &Task,
    ti: &TaskInstance,
    try_number: u32,
    ended: DateTime<Utc>,
    duration_ms: i64,
    log: &TaskLog,
) -> (TaskEvent, TiPatch) {
    let mut patch = TiPatch::default();
    let event = match result {
        Ok(TaskOutcome::Success) => {
            log.line(format!(
                "task succeeded in {:.3}s",
                duration_ms as f64 / 1000.0
            ));
            TaskEvent::Succeed
        }
        Ok(TaskOutcome::Skipped) => {
            log.line("task skipped itself");
            TaskEvent::Skip
        }
        Err(e) => {
            patch.error = Change::Set(e.to_string());
            if e.is_retryable() && try_number < ti.max_tries {
                let delay = task.retry.delay_after(try_number);
                let at = ended + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                patch.next_retry_at = Change::Set(at);
                log.line(format!(
                    "task failed: {e}; retry {} of {} in {} (at {})",
                    try_number,
                    ti.max_tries - 1,
                    humantime::format_duration(delay),
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ));
                TaskEvent::Retry
            } else {
                let why = if e.is_retryable() {
                    "no tries left"
                } else {
                    "the error is fatal, no retry"
                };
                log.line(format!("task failed: {e} ({why})"));
                TaskEvent::Fail
            }
        }
    };
    (event, patch)
}

async fn run_with_timeout(
    task: &Task,
    ctx: TaskContext,
    cancel: &CancellationToken,
    log: &TaskLog,
) -> Result<TaskOutcome, TaskError> {
    let fut = task.operator.execute(ctx);
    tokio::pin!(fut);
    let Some(limit) = task.execution_timeout else {
        return fut.await;
    };
    tokio::select! {
        r = &mut fut => r,
        () = tokio::time::sleep(limit) => {
            let msg = format!("execution timed out after {}", humantime::format_duration(limit));
            log.line(format!("{msg}: stopping the task"));
            cancel.cancel();
            if tokio::time::timeout(CANCEL_GRACE, &mut fut).await.is_err() {
                log.line("the task did not stop within 10s of its cancellation; abandoned");
            }
            Err(TaskError::Retryable(msg))
        }
    }
}

/// Stores a try's log lines every [`LOG_FLUSH`] (or each 1,000 lines) while
/// it runs; returns the lines not stored yet when the log closes, for the
/// transaction that ends the try.
async fn flush_logs(
    store: Arc<dyn Store>,
    ti_id: i64,
    try_number: u32,
    mut rx: mpsc::UnboundedReceiver<String>,
) -> Vec<(DateTime<Utc>, String)> {
    let mut buf: Vec<(DateTime<Utc>, String)> = Vec::new();
    let mut last = tokio::time::Instant::now();
    loop {
        let deadline = last + LOG_FLUSH;
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(line)) => {
                buf.push((Utc::now(), line));
                while let Ok(line) = rx.try_recv() {
                    buf.push((Utc::now(), line));
                }
            }
            Ok(None) => return buf,
            Err(_) => {}
        }
        let now = tokio::time::Instant::now();
        if buf.len() >= 1000 || now >= deadline {
            if !buf.is_empty() {
                if let Err(error) = store.append_logs(ti_id, try_number, &buf).await {
                    warn!(%error, ti_id, "could not store task log lines");
                }
                buf.clear();
            }
            last = now;
        }
    }
}
