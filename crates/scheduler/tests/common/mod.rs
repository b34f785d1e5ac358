//! What the store suites share: a fresh database of each backend, the
//! macro that runs a test on both, and builders of test records.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use scheduler::model::{
    Change, DagRecord, NewRun, RunType, TaskSeed, TiPatch, TryRecord, TryState, TryTransition,
};
use scheduler::state::{RunState, TaskState};
use scheduler::store::{SqlStore, Store, scratch};
use scheduler::timetable::DataInterval;
use serde_json::json;

pub struct Db {
    pub store: Arc<SqlStore>,
    _dir: Option<tempfile::TempDir>,
}
pub async fn sqlite() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("meta.db").display());
    let store = SqlStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    Db {
        store: Arc::new(store),
        _dir: Some(dir),
    }
}

pub async fn postgres() -> Db {
    let url = scratch::postgres_database(&scratch::admin_url())
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 (scripts/test.sh starts it)");
    let store = SqlStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    Db {
        store: Arc::new(store),
        _dir: None,
    }
}

/// One test per backend for each named `async fn(Arc<SqlStore>)`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::common::sqlite().await.store).await; })*
        }
        mod on_postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::common::postgres().await.store).await; })*
        }
    };
}

pub fn t(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, h, 0, 0).unwrap()
}

pub fn dag_record(id: &str) -> DagRecord {
    DagRecord {
        dag_id: id.into(),
        fileloc: format!("dags/{id}.toml"),
        source_hash: "h1".into(),
        source: "dag_id = \"x\"".into(),
        description: "d — ünïcode".into(),
        schedule: "@daily".into(),
        timezone: "Europe/Paris".into(),
        tags: vec!["a".into(), "b".into()],
        max_active_runs: 3,
        max_active_tasks: 4,
        is_paused: false,
        is_active: true,
    }
}

pub fn new_run(dag: &str, h: u32, ty: RunType) -> NewRun {
    NewRun {
        dag_id: dag.into(),
        run_id: ty.run_id(t(h)),
        run_type: ty,
        logical_date: t(h),
        data_interval: DataInterval {
            start: t(h),
            end: t(h + 1),
        },
        conf: json!({"k": [1, 2]}),
        state: RunState::Queued,
        backfill_id: None,
    }
}

pub fn seeds(ids: &[&str]) -> Vec<TaskSeed> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| TaskSeed {
            task_id: id.to_string(),
            max_tries: 3,
            pool: "default_pool".into(),
            priority: i as i32,
        })
        .collect()
}

/// Moves every task instance of `runs` from pending to scheduled, as the
/// planner would.
pub async fn schedule_all(s: &SqlStore, runs: &[i64]) {
    for ti in s.task_instances(runs).await.unwrap() {
        s.update_ti(
            ti.id,
            TaskState::Pending,
            TaskState::Scheduled,
            &TiPatch::default(),
        )
        .await
        .unwrap();
    }
}

/// A try start of `ti_id` by `owner`, with its history row and one log line.
pub fn try_started(ti_id: i64, owner: &str) -> TryTransition {
    TryTransition {
        ti_id,
        from: TaskState::Queued,
        to: TaskState::Running,
        patch: TiPatch {
            try_number: Some(1),
            start_date: Change::Set(t(2)),
            only_if_owner: Some(owner.into()),
            ..TiPatch::default()
        },
        record: TryRecord {
            ti_id,
            try_number: 1,
            state: TryState::Running,
            start_date: t(2),
            end_date: None,
            duration_ms: None,
            hostname: Some("h".into()),
            pid: Some(7),
            error: None,
        },
        logs: vec![(t(2), "starting".into())],
        keep_history_if_refused: false,
    }
}

/// The successful end of [`try_started`]'s try, with one log line.
pub fn try_ended(ti_id: i64, owner: &str) -> TryTransition {
    let start = try_started(ti_id, owner);
    TryTransition {
        from: TaskState::Running,
        to: TaskState::Success,
        record: TryRecord {
            state: TryState::Success,
            end_date: Some(t(3)),
            duration_ms: Some(3_600_000),
            ..start.record.clone()
        },
        logs: vec![(t(3), "done".into())],
        ..start
    }
}
