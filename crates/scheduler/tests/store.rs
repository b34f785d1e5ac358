//! The store conformance suite: every test runs against SQLite (a temporary
//! file) and against the real PostgreSQL server (a scratch database).

use std::sync::Arc;

use chrono::{DateTime, Duration as CDuration, Utc};
use scheduler::Error;
use scheduler::model::{Change, DagRecord, ImportError, PoolRecord, RunType, TaskSeed, TiPatch};
use scheduler::state::{RunState, TaskState};
use scheduler::store::{Backend, SqlStore, Store, scratch};
use serde_json::json;

#[macro_use]
mod common;

use common::{dag_record, new_run, schedule_all, seeds, t};

conformance!(
    migrations_are_idempotent,
    dags_sync_keeps_paused_and_deactivates_missing,
    runs_are_unique_per_logical_date_and_run_id,
    run_state_changes_are_conditional,
    task_instance_updates_are_conditional_and_patch_fields,
    only_one_of_many_racers_wins_a_transition,
    scheduled_tasks_ordered_by_priority_then_date,
    retries_slots_and_heartbeats,
    logs_per_try_with_tail_cursor,
    pools_crud,
    expired_leases_and_fencing,
    claims_respect_limits_and_never_overlap,
    runs_of_every_dag_in_two_statements,
);

async fn migrations_are_idempotent(s: Arc<SqlStore>) {
    s.migrate().await.unwrap();
    s.migrate().await.unwrap();
    let pools = s.list_pools().await.unwrap();
    assert_eq!(pools.len(), 1);
    assert_eq!(pools[0].name, "default_pool");
    assert_eq!(pools[0].slots, 128);
    if s.backend() == Backend::Sqlite {
        use sqlx::Row;
        let row = sqlx::query("PRAGMA journal_mode")
            .fetch_one(s.pool())
            .await
            .unwrap();
        assert_eq!(
            row.try_get::<String, _>(0).unwrap(),
            "wal",
            "readers never wait for the writer"
        );
    }
}

async fn dags_sync_keeps_paused_and_deactivates_missing(s: Arc<SqlStore>) {
    let (a, b) = (dag_record("a"), dag_record("b"));
    let err = ImportError {
        fileloc: "dags/bad.toml".into(),
        message: "dags/bad.toml:1:1: boom".into(),
    };
    s.sync_dags(&[a.clone(), b.clone()], std::slice::from_ref(&err))
        .await
        .unwrap();
    assert_eq!(s.get_dag("a").await.unwrap().unwrap(), a);
    assert!(s.set_paused("a", true).await.unwrap());
    assert!(!s.set_paused("nope", true).await.unwrap());
    // Re-sync with a changed file: paused flag survives, content updates.
    let a2 = DagRecord {
        source_hash: "h2".into(),
        description: "new".into(),
        ..a.clone()
    };
    s.sync_dags(&[a2], &[]).await.unwrap();
    let got = s.get_dag("a").await.unwrap().unwrap();
    assert!(got.is_paused);
    assert_eq!(got.description, "new");
    assert!(
        !s.get_dag("b").await.unwrap().unwrap().is_active,
        "b's file is gone"
    );
    assert!(
        s.import_errors().await.unwrap().is_empty(),
        "errors replaced"
    );
    s.sync_dags(&[], std::slice::from_ref(&err)).await.unwrap();
    assert_eq!(s.import_errors().await.unwrap(), vec![err]);
    assert_eq!(
        s.list_dags()
            .await
            .unwrap()
            .iter()
            .filter(|d| d.is_active)
            .count(),
        0
    );
}

async fn runs_are_unique_per_logical_date_and_run_id(s: Arc<SqlStore>) {
    let run = s
        .create_run(&new_run("d", 1, RunType::Scheduled), &seeds(&["x", "y"]))
        .await
        .unwrap();
    assert_eq!(run.state, RunState::Queued);
    assert_eq!(run.conf, json!({"k": [1, 2]}));
    assert_eq!(run.data_interval.end, t(2));
    let tis = s.task_instances(&[run.id]).await.unwrap();
    assert_eq!(tis.len(), 2);
    assert!(
        tis.iter()
            .all(|t| t.state == TaskState::Pending && t.try_number == 0 && t.max_tries == 3)
    );
    // Same logical date, other run id.
    let mut dup = new_run("d", 1, RunType::Manual);
    dup.run_id = "manual__other".into();
    assert!(matches!(
        s.create_run(&dup, &seeds(&["x"])).await,
        Err(Error::RunExists { .. })
    ));
    // Same run id, other logical date.
    let mut dup = new_run("d", 5, RunType::Manual);
    dup.run_id = run.run_id.clone();
    let e = s.create_run(&dup, &seeds(&["x"])).await.unwrap_err();
    assert!(matches!(e, Error::RunExists { .. }), "{e}");
    // The failed attempts left nothing behind.
    assert_eq!(s.list_runs("d", 10).await.unwrap().len(), 1);
    // Other DAGs may use the same date.
    s.create_run(&new_run("other", 1, RunType::Scheduled), &seeds(&["x"]))
        .await
        .unwrap();
    s.create_run(&new_run("d", 3, RunType::Manual), &seeds(&["x"]))
        .await
        .unwrap();
    let runs = s.list_runs("d", 10).await.unwrap();
    assert_eq!(
        runs.iter().map(|r| r.logical_date).collect::<Vec<_>>(),
        vec![t(3), t(1)]
    );
    // Keyset pages: strictly older than the cursor, newest first.
    let older = s.runs_before("d", t(3), 10).await.unwrap();
    assert_eq!(
        older.iter().map(|r| r.logical_date).collect::<Vec<_>>(),
        vec![t(1)]
    );
    assert!(s.runs_before("d", t(1), 10).await.unwrap().is_empty());
    assert_eq!(
        s.runs_before("d", t(9), 1).await.unwrap()[0].logical_date,
        t(3)
    );
    assert_eq!(s.last_scheduled_run("d").await.unwrap().unwrap().id, run.id);
    assert_eq!(s.active_runs().await.unwrap().len(), 3);
    assert_eq!(s.get_run("d", &run.run_id).await.unwrap().unwrap(), run);
    assert!(s.get_run("d", "nope").await.unwrap().is_none());
    // Missing task instances can be added later, existing ones are kept.
    s.add_task_instances(&run, &seeds(&["x", "y", "z"]))
        .await
        .unwrap();
    assert_eq!(s.task_instances(&[run.id]).await.unwrap().len(), 3);
}

async fn run_state_changes_are_conditional(s: Arc<SqlStore>) {
    let run = s
        .create_run(&new_run("d", 1, RunType::Manual), &[])
        .await
        .unwrap();
    assert!(
        s.set_run_state(run.id, RunState::Queued, RunState::Running, t(10))
            .await
            .unwrap()
    );
    assert!(
        !s.set_run_state(run.id, RunState::Queued, RunState::Running, t(11))
            .await
            .unwrap()
    );
    assert!(
        s.set_run_state(run.id, RunState::Running, RunState::Success, t(12))
            .await
            .unwrap()
    );
    let r = s.get_run("d", &run.run_id).await.unwrap().unwrap();
    assert_eq!(
        (r.state, r.start_date, r.end_date),
        (RunState::Success, Some(t(10)), Some(t(12)))
    );
    assert!(s.active_runs().await.unwrap().is_empty());
    // Clearing back to running keeps the first start and clears the end.
    assert!(
        s.set_run_state(run.id, RunState::Success, RunState::Running, t(13))
            .await
            .unwrap()
    );
    let r = s.get_run("d", &run.run_id).await.unwrap().unwrap();
    assert_eq!((r.start_date, r.end_date), (Some(t(10)), None));
}

async fn task_instance_updates_are_conditional_and_patch_fields(s: Arc<SqlStore>) {
    let run = s
        .create_run(&new_run("d", 1, RunType::Manual), &seeds(&["x"]))
        .await
        .unwrap();
    let ti = s.task_instances(&[run.id]).await.unwrap().remove(0);
    let patch = TiPatch {
        try_number: Some(1),
        start_date: Change::Set(t(3)),
        hostname: Change::Set("host-ü".into()),
        pid: Change::Set(4242),
        error: Change::Set("boom".into()),
        lease_owner: Change::Set("me".into()),
        ..TiPatch::default()
    };
    assert!(
        !s.update_ti(ti.id, TaskState::Queued, TaskState::Running, &patch)
            .await
            .unwrap(),
        "wrong from-state"
    );
    assert!(
        s.update_ti(ti.id, TaskState::Pending, TaskState::Running, &patch)
            .await
            .unwrap()
    );
    let got = s
        .get_task_instance("d", &run.run_id, "x")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.state, TaskState::Running);
    assert_eq!(
        (got.try_number, got.start_date, got.pid),
        (1, Some(t(3)), Some(4242))
    );
    assert_eq!(got.hostname.as_deref(), Some("host-ü"));
    assert_eq!(got.error.as_deref(), Some("boom"));
    // Change::Clear clears a field; Change::Keep leaves it.
    let clear = TiPatch {
        error: Change::Clear,
        duration_ms: Change::Set(1500),
        ..TiPatch::default()
    };
    assert!(
        s.update_ti(ti.id, TaskState::Running, TaskState::Success, &clear)
            .await
            .unwrap()
    );
    let got = s
        .get_task_instance("d", &run.run_id, "x")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.error, got.duration_ms, got.pid),
        (None, Some(1500), Some(4242))
    );
}

async fn only_one_of_many_racers_wins_a_transition(s: Arc<SqlStore>) {
    let run = s
        .create_run(&new_run("d", 1, RunType::Manual), &seeds(&["x"]))
        .await
        .unwrap();
    let ti = s.task_instances(&[run.id]).await.unwrap().remove(0);
    let mut handles = Vec::new();
    for i in 0..12 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let p = TiPatch {
                lease_owner: Change::Set(format!("racer-{i}")),
                ..TiPatch::default()
            };
            s.update_ti(ti.id, TaskState::Pending, TaskState::Scheduled, &p)
                .await
                .unwrap()
        }));
    }
    let mut wins = 0;
    for h in handles {
        wins += usize::from(h.await.unwrap());
    }
    assert_eq!(wins, 1);
}

async fn scheduled_tasks_ordered_by_priority_then_date(s: Arc<SqlStore>) {
    let old = s
        .create_run(&new_run("d", 1, RunType::Manual), &seeds(&["a", "b"]))
        .await
        .unwrap();
    let new = s
        .create_run(&new_run("d", 5, RunType::Manual), &seeds(&["a", "b"]))
        .await
        .unwrap();
    let queued_run = s
        .create_run(&new_run("d", 9, RunType::Manual), &seeds(&["a"]))
        .await
        .unwrap();
    for r in [&old, &new] {
        s.set_run_state(r.id, RunState::Queued, RunState::Running, t(1))
            .await
            .unwrap();
    }
    schedule_all(&s, &[old.id, new.id, queued_run.id]).await;
    let order: Vec<(String, i64)> = s
        .scheduled_tis(10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.task_id, t.dag_run_id))
        .collect();
    // b has priority 1, a priority 0; older runs first; the queued run's task is not offered.
    assert_eq!(
        order,
        vec![
            ("b".into(), old.id),
            ("b".into(), new.id),
            ("a".into(), old.id),
            ("a".into(), new.id)
        ]
    );
    assert_eq!(s.scheduled_tis(1).await.unwrap().len(), 1);
}

async fn retries_slots_and_heartbeats(s: Arc<SqlStore>) {
    let run = s
        .create_run(&new_run("d", 1, RunType::Manual), &seeds(&["a", "b", "c"]))
        .await
        .unwrap();
    let tis = s.task_instances(&[run.id]).await.unwrap();
    let now = Utc::now();
    let retry_at = |m: i64| TiPatch {
        next_retry_at: Change::Set(now + CDuration::minutes(m)),
        ..TiPatch::default()
    };
    s.update_ti(
        tis[0].id,
        TaskState::Pending,
        TaskState::UpForRetry,
        &retry_at(-1),
    )
    .await
    .unwrap();
    s.update_ti(
        tis[1].id,
        TaskState::Pending,
        TaskState::UpForRetry,
        &retry_at(5),
    )
    .await
    .unwrap();
    let due = s.due_retries(now).await.unwrap();
    assert_eq!(
        due.iter().map(|t| t.task_id.as_str()).collect::<Vec<_>>(),
        vec!["a"]
    );
    let next = s.next_retry_at().await.unwrap().unwrap();
    assert!(
        (next - (now - CDuration::minutes(1)))
            .num_milliseconds()
            .abs()
            < 1
    );
    let own = TiPatch {
        lease_owner: Change::Set("me".into()),
        ..TiPatch::default()
    };
    s.update_ti(tis[2].id, TaskState::Pending, TaskState::Running, &own)
        .await
        .unwrap();
    let u = s.slot_usage().await.unwrap();
    assert_eq!(
        (u.by_pool.get("default_pool"), u.by_dag.get("d")),
        (Some(&1), Some(&1))
    );
    assert_eq!(s.heartbeat("me", t(7)).await.unwrap(), 1);
    assert_eq!(s.heartbeat("someone-else", t(8)).await.unwrap(), 0);
    let c = s
        .get_task_instance("d", &run.run_id, "c")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.heartbeat_at, Some(t(7)));
}

async fn logs_per_try_with_tail_cursor(s: Arc<SqlStore>) {
    let run = s
        .create_run(&new_run("d", 1, RunType::Manual), &seeds(&["x"]))
        .await
        .unwrap();
    let ti = s.task_instances(&[run.id]).await.unwrap().remove(0);
    let lines: Vec<(DateTime<Utc>, String)> =
        (0..1200).map(|i| (t(1), format!("line {i} — ✓"))).collect();
    s.append_logs(ti.id, 1, &lines).await.unwrap();
    s.append_logs(ti.id, 2, &[(t(2), "second try".into())])
        .await
        .unwrap();
    let one = s.read_logs(ti.id, 1, 0).await.unwrap();
    assert_eq!(one.len(), 1200);
    assert_eq!(one[1199].line, "line 1199 — ✓");
    assert!(one.windows(2).all(|w| w[0].id < w[1].id));
    let tail = s.read_logs(ti.id, 1, one[1197].id).await.unwrap();
    assert_eq!(tail.len(), 2);
    let two = s.read_logs(ti.id, 2, 0).await.unwrap();
    assert_eq!((two.len(), two[0].try_number, two[0].ts), (1, 2, t(2)));
}

async fn pools_crud(s: Arc<SqlStore>) {
    s.set_pool(&PoolRecord {
        name: "api".into(),
        slots: 2,
        description: "rate limit".into(),
    })
    .await
    .unwrap();
    s.set_pool(&PoolRecord {
        name: "api".into(),
        slots: 3,
        description: "raised".into(),
    })
    .await
    .unwrap();
    let pools = s.list_pools().await.unwrap();
    assert_eq!(pools.iter().find(|p| p.name == "api").unwrap().slots, 3);
    assert!(
        s.set_pool(&PoolRecord {
            name: "bad".into(),
            slots: -1,
            description: String::new()
        })
        .await
        .is_err()
    );
    assert!(s.delete_pool("api").await.unwrap());
    assert!(!s.delete_pool("api").await.unwrap());
    assert!(
        s.delete_pool("default_pool")
            .await
            .unwrap_err()
            .to_string()
            .contains("cannot be deleted")
    );
}

/// Processes starting together on a fresh database must not both apply the
/// first migration (sqlx locks only on PostgreSQL; we lock on SQLite).
async fn concurrent_first_migrations(url: String) {
    let mut handles = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        handles.push(tokio::spawn(async move {
            let s = SqlStore::connect(&url).await.unwrap();
            s.migrate().await
        }));
    }
    for h in handles {
        h.await.unwrap().expect("every migrate succeeds");
    }
    let s = SqlStore::connect(&url).await.unwrap();
    assert_eq!(
        s.list_pools().await.unwrap().len(),
        1,
        "migration 1 ran once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_migrations_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_first_migrations(format!("sqlite://{}", dir.path().join("m.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_migrations_postgres() {
    concurrent_first_migrations(
        scratch::postgres_database(&scratch::admin_url())
            .await
            .unwrap(),
    )
    .await;
}

async fn expired_leases_and_fencing(s: Arc<SqlStore>) {
    let run = s
        .create_run(&new_run("d", 1, RunType::Manual), &seeds(&["a", "b", "c"]))
        .await
        .unwrap();
    let tis = s.task_instances(&[run.id]).await.unwrap();
    let now = Utc::now();
    let held = |owner: &str, hb: DateTime<Utc>| TiPatch {
        lease_owner: Change::Set(owner.into()),
        heartbeat_at: Change::Set(hb),
        ..TiPatch::default()
    };
    s.update_ti(
        tis[0].id,
        TaskState::Pending,
        TaskState::Running,
        &held("dead", now - CDuration::seconds(60)),
    )
    .await
    .unwrap();
    s.update_ti(
        tis[1].id,
        TaskState::Pending,
        TaskState::Running,
        &held("alive", now),
    )
    .await
    .unwrap();
    s.update_ti(
        tis[2].id,
        TaskState::Pending,
        TaskState::Queued,
        &held("dead", now - CDuration::seconds(60)),
    )
    .await
    .unwrap();
    let expired = s
        .expired_leases(now - CDuration::seconds(20))
        .await
        .unwrap();
    assert_eq!(
        expired
            .iter()
            .map(|t| t.task_id.as_str())
            .collect::<Vec<_>>(),
        vec!["a", "c"]
    );
    // Fencing: only the lease owner's update applies.
    let fenced = |owner: &str| TiPatch {
        only_if_owner: Some(owner.into()),
        ..TiPatch::default()
    };
    assert!(
        !s.update_ti(
            tis[1].id,
            TaskState::Running,
            TaskState::Success,
            &fenced("dead")
        )
        .await
        .unwrap()
    );
    assert!(
        s.update_ti(
            tis[1].id,
            TaskState::Running,
            TaskState::Success,
            &fenced("alive")
        )
        .await
        .unwrap()
    );
}

async fn claims_respect_limits_and_never_overlap(s: Arc<SqlStore>) {
    let mut dag = dag_record("d");
    dag.max_active_tasks = 5;
    s.sync_dags(&[dag], &[]).await.unwrap();
    s.set_pool(&PoolRecord {
        name: "two".into(),
        slots: 2,
        description: String::new(),
    })
    .await
    .unwrap();
    let ids: Vec<String> = (0..40).map(|i| format!("t{i:02}")).collect();
    let mut seeds: Vec<TaskSeed> = ids
        .iter()
        .map(|id| TaskSeed {
            task_id: id.clone(),
            max_tries: 1,
            pool: "default_pool".into(),
            priority: 1,
        })
        .collect();
    seeds[0].pool = "two".into();
    seeds[1].pool = "two".into();
    seeds[2].pool = "two".into();
    seeds[3].pool = "nowhere".into();
    let run = s
        .create_run(&new_run("d", 1, RunType::Manual), &seeds)
        .await
        .unwrap();
    s.set_run_state(run.id, RunState::Queued, RunState::Running, t(1))
        .await
        .unwrap();
    schedule_all(&s, &[run.id]).await;
    // max_active_tasks = 5 caps the first claim; the pool "two" admits two of its three.
    let c = s.claim("a", Utc::now(), 100).await.unwrap();
    assert_eq!(c.claimed.len(), 5);
    assert_eq!(c.claimed.iter().filter(|t| t.pool == "two").count(), 2);
    assert_eq!(c.missing_pool.len(), 1);
    assert_eq!(c.missing_pool[0].task_id, "t03");
    assert_eq!(
        s.get_task_instance("d", &run.run_id, "t03")
            .await
            .unwrap()
            .unwrap()
            .state,
        TaskState::Failed
    );
    assert!(
        s.claim("b", Utc::now(), 100)
            .await
            .unwrap()
            .claimed
            .is_empty(),
        "DAG at its limit"
    );
    // Raise the DAG's limit, then race four claimers: no task is claimed twice.
    let mut dag = dag_record("d");
    dag.max_active_tasks = 1000;
    dag.source_hash = "h2".into();
    s.sync_dags(&[dag], &[]).await.unwrap();
    let mut handles = Vec::new();
    for i in 0..4 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let c = s
                    .claim(&format!("claimer-{i}"), Utc::now(), 3)
                    .await
                    .unwrap();
                if c.claimed.is_empty() {
                    return mine;
                }
                mine.extend(c.claimed.into_iter().map(|t| t.task_id));
            }
        }));
    }
    let mut all: Vec<String> = c.claimed.iter().map(|t| t.task_id.clone()).collect();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "a task was claimed twice");
    // 40 tasks: one failed for its pool, the third "two" task waits for a pool slot.
    assert_eq!(n, 38);
}

/// The DAG lists' reads: each DAG's newest runs and latest scheduled run,
/// for every DAG at once.
async fn runs_of_every_dag_in_two_statements(s: Arc<SqlStore>) {
    s.sync_dags(&[dag_record("d"), dag_record("e"), dag_record("f")], &[])
        .await
        .unwrap();
    for (dag, h, ty) in [
        ("d", 1, RunType::Scheduled),
        ("d", 3, RunType::Manual),
        ("d", 5, RunType::Scheduled),
        ("d", 7, RunType::Manual),
        ("e", 2, RunType::Manual),
    ] {
        s.create_run(&new_run(dag, h, ty), &seeds(&["x"]))
            .await
            .unwrap();
    }
    let runs = s.runs_of_every_dag(2).await.unwrap();
    let dates = |dag: &str| -> Vec<DateTime<Utc>> {
        runs.recent
            .get(dag)
            .map(|r| r.iter().map(|r| r.logical_date).collect())
            .unwrap_or_default()
    };
    assert_eq!(dates("d"), vec![t(7), t(5)], "newest first, two");
    assert_eq!(dates("e"), vec![t(2)]);
    assert!(dates("f").is_empty());
    assert_eq!(runs.last_scheduled["d"].logical_date, t(5));
    assert!(!runs.last_scheduled.contains_key("e"));
    // The same as the per-DAG reads.
    assert_eq!(
        runs.recent["d"],
        s.list_runs("d", 2).await.unwrap(),
        "as list_runs"
    );
    assert_eq!(
        Some(&runs.last_scheduled["d"]),
        s.last_scheduled_run("d").await.unwrap().as_ref()
    );
}
