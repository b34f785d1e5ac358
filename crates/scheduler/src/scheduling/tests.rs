//! Table-driven tests of the tick phases on a real SQLite store: given the
//! DAGs and what happened before (runs triggered, a try held by a process
//! that died), one tick creates, starts, queues and reaps exactly these.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};

use super::{Scheduler, SchedulerConfig, TickReport};
use crate::model::TaskInstance;
use crate::operator::{
    KindSettings, Kinds, Operator, SettingsError, TaskContext, TaskError, TaskKind, TaskOutcome,
};
use crate::state::TaskState;
use crate::store::{SqlStore, Store};

/// `hold`: a try that runs until it is cancelled, so task instances stay
/// where a tick put them while the test looks.
struct HoldKind;

#[derive(Debug)]
struct Hold;

#[async_trait]
impl Operator for Hold {
    async fn execute(&self, ctx: TaskContext) -> Result<TaskOutcome, TaskError> {
        ctx.cancel.cancelled().await;
        Err(TaskError::Retryable("cancelled".into()))
    }
}

impl TaskKind for HoldKind {
    fn name(&self) -> &'static str {
        "hold"
    }
    fn summary(&self) -> &'static str {
        "Runs until cancelled (tests)."
    }
    fn settings_schema(&self) -> serde_json::Value {
        serde_json::json!({"type": "object"})
    }
    fn build(&self, _: &KindSettings<'_>) -> Result<Arc<dyn Operator>, Vec<SettingsError>> {
        Ok(Arc::new(Hold))
    }
}

/// What happened before the tick under test.
#[derive(Debug, Clone, Copy)]
enum Before {
    /// Nothing: the DAGs were just loaded.
    Nothing,
    /// The DAG `d` was triggered once.
    Triggered,
    /// The DAG `d` was triggered, and another scheduler claimed its tasks
    /// and then stopped heartbeating long ago.
    ClaimedByADeadScheduler,
}

/// Where a task instance is after the tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    /// Not yet scheduled (its upstream has not run).
    Waiting,
    /// Scheduled, waiting for a slot.
    Scheduled,
    /// Handed to this scheduler's executor (queued or already running).
    Ours,
}

struct Case {
    name: &'static str,
    dag: &'static str,
    before: Before,
    parallelism: usize,
    report: TickReport,
    /// Task id → where it is, for the run the case looks at (the newest).
    tasks: &'static [(&'static str, Where)],
}

const HEAD: &str = "dag_id = \"d\"\n";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 30, 0).unwrap()
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "due hourly runs are created within max_active_runs, and started",
            dag: "schedule = \"@hourly\"\nstart_date = \"2026-11-21T07:00:00Z\"\ncatchup = true\nmax_active_runs = 2\n\
                  [[task]]\nid = \"a\"\nkind = \"hold\"\n",
            before: Before::Nothing,
            parallelism: 8,
            report: TickReport {
                runs_created: 2,
                runs_started: 2,
                runs_finished: 0,
                tasks_queued: 2,
            },
            tasks: &[("a", Where::Ours)],
        },
        Case {
            name: "a triggered run starts and its tasks queue by priority up to the executor's slots",
            dag: "[[task]]\nid = \"a\"\nkind = \"hold\"\npriority = 3\n\
                  [[task]]\nid = \"b\"\nkind = \"hold\"\npriority = 2\n\
                  [[task]]\nid = \"c\"\nkind = \"hold\"\npriority = 1\n",
            before: Before::Triggered,
            parallelism: 2,
            report: TickReport {
                runs_created: 0,
                runs_started: 1,
                runs_finished: 0,
                tasks_queued: 2,
            },
            tasks: &[
                ("a", Where::Ours),
                ("b", Where::Ours),
                ("c", Where::Scheduled),
            ],
        },
        Case {
            name: "downstream tasks wait for their upstream",
            dag: "[[task]]\nid = \"a\"\nkind = \"hold\"\n\
                  [[task]]\nid = \"b\"\nkind = \"hold\"\ndepends_on = [\"a\"]\n",
            before: Before::Triggered,
            parallelism: 8,
            report: TickReport {
                runs_created: 0,
                runs_started: 1,
                runs_finished: 0,
                tasks_queued: 1,
            },
            tasks: &[("a", Where::Ours), ("b", Where::Waiting)],
        },
        Case {
            name: "tries of a scheduler that stopped heartbeating are taken back and run here",
            dag: "[[task]]\nid = \"a\"\nkind = \"hold\"\n",
            before: Before::ClaimedByADeadScheduler,
            parallelism: 8,
            report: TickReport {
                runs_created: 0,
                runs_started: 0,
                runs_finished: 0,
                tasks_queued: 1,
            },
            tasks: &[("a", Where::Ours)],
        },
        Case {
            name: "a paused DAG gets no scheduled runs",
            dag: "schedule = \"@hourly\"\nstart_date = \"2026-11-21T07:00:00Z\"\n\
                  [[task]]\nid = \"a\"\nkind = \"hold\"\n",
            before: Before::Nothing,
            parallelism: 8,
            report: TickReport::default(),
            tasks: &[],
        },
    ]
}

async fn scheduler_for(case: &Case, dir: &tempfile::TempDir) -> (Scheduler, Arc<dyn Store>) {
    let dags = dir.path().join("dags");
    std::fs::create_dir_all(&dags).unwrap();
    std::fs::write(dags.join("d.toml"), format!("{HEAD}{}", case.dag)).unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let sql = SqlStore::connect(&url).await.unwrap();
    sql.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(sql);
    let mut kinds = Kinds::new();
    kinds.register(Arc::new(HoldKind));
    let cfg = SchedulerConfig {
        dags: vec![dags],
        parallelism: case.parallelism,
        lease_timeout: Duration::from_secs(20),
        ..SchedulerConfig::default()
    };
    let mut s = Scheduler::new(store.clone(), kinds, cfg);
    s.refresh_dags().await.unwrap();
    if case.name.starts_with("a paused DAG") {
        assert!(store.set_paused("d", true).await.unwrap());
    }
    (s, store)
}

async fn prepare(before: Before, s: &mut Scheduler, store: &dyn Store) {
    let dag = s.bag().get("d").unwrap();
    match before {
        Before::Nothing => {}
        Before::Triggered => {
            crate::runs::trigger(store, &dag, serde_json::json!({}), Some(now()))
                .await
                .unwrap();
        }
        Before::ClaimedByADeadScheduler => {
            crate::runs::trigger(store, &dag, serde_json::json!({}), Some(now()))
                .await
                .unwrap();
            // A first tick by nobody's executor: start the run and schedule
            // its task, then let a scheduler that later died claim it.
            let long_ago = now() - chrono::Duration::minutes(10);
            let run = store.active_runs().await.unwrap().remove(0);
            let to = run.state.apply(crate::state::RunEvent::Start).unwrap();
            assert!(
                store
                    .set_run_state(run.id, run.state, to, long_ago)
                    .await
                    .unwrap()
            );
            for ti in store.task_instances(&[run.id]).await.unwrap() {
                let to = ti.state.apply(crate::state::TaskEvent::Schedule).unwrap();
                store
                    .update_ti(ti.id, ti.state, to, &Default::default())
                    .await
                    .unwrap();
            }
            let claim = store.claim("dead:1:0", long_ago, 10).await.unwrap();
            assert_eq!(claim.claimed.len(), 1);
        }
    }
}

fn place(ti: &TaskInstance, ours: &str) -> Where {
    match ti.state {
        TaskState::Queued | TaskState::Running if ti.lease_owner.as_deref() == Some(ours) => {
            Where::Ours
        }
        TaskState::Scheduled => Where::Scheduled,
        TaskState::Pending => Where::Waiting,
        other => panic!("{} is {other} (owner {:?})", ti.task_id, ti.lease_owner),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tick_does_exactly_this() {
    for case in cases() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, store) = scheduler_for(&case, &dir).await;
        prepare(case.before, &mut s, store.as_ref()).await;
        let (report, _) = s.tick(now()).await.unwrap();
        assert_eq!(report, case.report, "{}", case.name);
        let runs = store.list_runs("d", 10).await.unwrap();
        let Some(run) = runs.first() else {
            assert!(case.tasks.is_empty(), "{}: no run", case.name);
            continue;
        };
        let ours = s.executor.owner().to_string();
        let tis = store.task_instances(&[run.id]).await.unwrap();
        for (task, want) in case.tasks {
            let ti = tis.iter().find(|t| t.task_id == *task).unwrap();
            assert_eq!(place(ti, &ours), *want, "{}: task {task}", case.name);
        }
        s.executor.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_tick_with_nothing_new_does_nothing() {
    let case = &cases()[1];
    let dir = tempfile::tempdir().unwrap();
    let (mut s, store) = scheduler_for(case, &dir).await;
    prepare(case.before, &mut s, store.as_ref()).await;
    s.tick(now()).await.unwrap();
    // Both slots are busy with tries that hold: nothing more to start,
    // plan or queue.
    let (report, _) = s.tick(now()).await.unwrap();
    assert_eq!(report, TickReport::default());
    s.executor.shutdown().await;
}
