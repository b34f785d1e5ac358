//! Store conformance, the batched work of the scheduling loop: the
//! planner's decisions and run counts, a try's start or end with its logs
//! and history all or nothing, and the claim's order from its index (both
//! backends; the claim's plan on PostgreSQL).

use std::sync::Arc;

use scheduler::model::{RunType, StateChange, TiPatch, TryState, TryTransition};
use scheduler::state::TaskState;
use scheduler::store::{SqlStore, Store, Wake};

#[macro_use]
mod common;

use common::{new_run, schedule_all, seeds, t, try_ended, try_started};

conformance!(
    planner_decisions_apply_only_from_their_state,
    a_try_transition_is_all_or_nothing,
    a_refused_try_end_keeps_its_history,
    claims_order_by_priority_then_run_date_from_the_index,
    run_progress_counts_pending_and_finished_per_run,
);

async fn run_progress_counts_pending_and_finished_per_run(s: Arc<SqlStore>) {
    let a = s
        .create_run(&new_run("d", 1, RunType::Manual), &seeds(&["x", "y", "z"]))
        .await
        .unwrap();
    let b = s
        .create_run(&new_run("d", 2, RunType::Manual), &seeds(&["x"]))
        .await
        .unwrap();
    let tis = s.task_instances(&[a.id]).await.unwrap();
    let changes = [
        StateChange {
            ti_id: tis[0].id,
            from: TaskState::Pending,
            to: TaskState::Skipped,
        },
        StateChange {
            ti_id: tis[1].id,
            from: TaskState::Pending,
            to: TaskState::Scheduled,
        },
    ];
    s.set_states(&changes, t(3)).await.unwrap();
    let p = s.run_progress(&[a.id, b.id, 999_999]).await.unwrap();
    assert_eq!(p.len(), 2, "runs without task instances are absent");
    assert_eq!(
        (p[&a.id].total, p[&a.id].pending, p[&a.id].finished),
        (3, 1, 1)
    );
    assert_eq!(
        (p[&b.id].total, p[&b.id].pending, p[&b.id].finished),
        (1, 1, 0)
    );
    assert!(s.run_progress(&[]).await.unwrap().is_empty());
}

async fn planner_decisions_apply_only_from_their_state(s: Arc<SqlStore>) {
    let run = s
        .create_run(
            &new_run("d", 1, RunType::Manual),
            &seeds(&["a", "b", "c", "d"]),
        )
        .await
        .unwrap();
    let tis = s.task_instances(&[run.id]).await.unwrap();
    let id = |task: &str| tis.iter().find(|t| t.task_id == task).unwrap().id;
    // "d" is no longer pending (another scheduler got there first).
    assert!(
        s.update_ti(
            id("d"),
            TaskState::Pending,
            TaskState::Scheduled,
            &TiPatch::default()
        )
        .await
        .unwrap()
    );
    let changes = [
        StateChange {
            ti_id: id("a"),
            from: TaskState::Pending,
            to: TaskState::Scheduled,
        },
        StateChange {
            ti_id: id("b"),
            from: TaskState::Pending,
            to: TaskState::Skipped,
        },
        StateChange {
            ti_id: id("c"),
            from: TaskState::Pending,
            to: TaskState::UpstreamFailed,
        },
        StateChange {
            ti_id: id("d"),
            from: TaskState::Pending,
            to: TaskState::Skipped,
        },
    ];
    assert_eq!(s.set_states(&changes, t(5)).await.unwrap(), 3);
    let got = s.task_instances(&[run.id]).await.unwrap();
    let of = |task: &str| got.iter().find(|t| t.task_id == task).unwrap();
    assert_eq!(
        (of("a").state, of("a").end_date),
        (TaskState::Scheduled, None)
    );
    assert_eq!(
        (of("b").state, of("b").end_date),
        (TaskState::Skipped, Some(t(5)))
    );
    assert_eq!(
        (of("c").state, of("c").end_date),
        (TaskState::UpstreamFailed, Some(t(5)))
    );
    assert_eq!(
        (of("d").state, of("d").end_date),
        (TaskState::Scheduled, None)
    );
    assert_eq!(s.set_states(&[], t(5)).await.unwrap(), 0);
}

async fn a_try_transition_is_all_or_nothing(s: Arc<SqlStore>) {
    let run = s
        .create_run(&new_run("d", 1, RunType::Manual), &seeds(&["x"]))
        .await
        .unwrap();
    let ti = s.task_instances(&[run.id]).await.unwrap().remove(0);
    let claimed = s.claim("me", t(1), 1).await.unwrap();
    assert!(claimed.claimed.is_empty(), "pending, not scheduled");
    schedule_all(&s, &[run.id]).await;
    s.set_run_state(run.id, run.state, scheduler::state::RunState::Running, t(1))
        .await
        .unwrap();
    assert_eq!(s.claim("me", t(1), 1).await.unwrap().claimed.len(), 1);
    // Someone else's lease: refused, and nothing of it is written.
    assert!(
        !s.transition_try(&try_started(ti.id, "other"))
            .await
            .unwrap()
    );
    assert!(s.tries(&[ti.id]).await.unwrap().is_empty());
    assert!(s.read_logs(ti.id, 1, 0).await.unwrap().is_empty());
    // Ours: the state, the history row and the log line together, and
    // other processes are woken.
    let mut feed = s.changes(Wake::OnAnyChange).await.unwrap();
    assert!(s.transition_try(&try_started(ti.id, "me")).await.unwrap());
    tokio::time::timeout(std::time::Duration::from_secs(10), feed.next())
        .await
        .expect("the change feed woke up")
        .unwrap();
    let got = s.task_instances(&[run.id]).await.unwrap().remove(0);
    assert_eq!((got.state, got.try_number), (TaskState::Running, 1));
    let tries = s.tries(&[ti.id]).await.unwrap();
    assert_eq!((tries.len(), tries[0].state), (1, TryState::Running));
    let logs = s.read_logs(ti.id, 1, 0).await.unwrap();
    assert_eq!(
        logs.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(),
        ["starting"]
    );
    // Starting again is refused (no longer queued) and writes nothing more.
    assert!(!s.transition_try(&try_started(ti.id, "me")).await.unwrap());
    assert_eq!(s.read_logs(ti.id, 1, 0).await.unwrap().len(), 1);
}

async fn a_refused_try_end_keeps_its_history(s: Arc<SqlStore>) {
    let run = s
        .create_run(&new_run("d", 1, RunType::Manual), &seeds(&["x"]))
        .await
        .unwrap();
    let ti = s.task_instances(&[run.id]).await.unwrap().remove(0);
    // The task instance was cleared while the try ran: it is pending again.
    let ended = TryTransition {
        keep_history_if_refused: true,
        ..try_ended(ti.id, "me")
    };
    assert!(!s.transition_try(&ended).await.unwrap());
    let got = s.task_instances(&[run.id]).await.unwrap().remove(0);
    assert_eq!(got.state, TaskState::Pending, "the result is dropped");
    let tries = s.tries(&[ti.id]).await.unwrap();
    assert_eq!(tries[0].state, TryState::Success, "the try still happened");
    assert_eq!(s.read_logs(ti.id, 1, 0).await.unwrap()[0].line, "done");
}

/// The claim reads its candidates in the index's order: higher priority
/// first, then the older run, then creation order; runs not running are
/// left out.
async fn claims_order_by_priority_then_run_date_from_the_index(s: Arc<SqlStore>) {
    let mut expected = Vec::new();
    for (h, running) in [(6, true), (2, true), (4, false)] {
        let run = s
            .create_run(&new_run("d", h, RunType::Manual), &seeds(&["lo", "hi"]))
            .await
            .unwrap();
        if running {
            s.set_run_state(run.id, run.state, scheduler::state::RunState::Running, t(1))
                .await
                .unwrap();
        }
        schedule_all(&s, &[run.id]).await;
        if running {
            for ti in s.task_instances(&[run.id]).await.unwrap() {
                expected.push((-ti.priority, h, ti.id, ti.task_id.clone()));
            }
        }
    }
    expected.sort();
    let claimed = s.claim("me", t(7), 10).await.unwrap().claimed;
    let got: Vec<(String, String)> = claimed
        .iter()
        .map(|ti| (ti.run_id.clone(), ti.task_id.clone()))
        .collect();
    let want: Vec<(String, String)> = expected
        .iter()
        .map(|(_, h, _, task)| (RunType::Manual.run_id(t(*h)), task.clone()))
        .collect();
    assert_eq!(got, want);
}

/// With 20,000 task instances scheduled, the claim's candidate query reads
/// the claim-order index and stops at its limit: no sort of every
/// scheduled task instance (PostgreSQL's plan, after ANALYZE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_reads_its_index_with_a_large_backlog_on_postgres() {
    let s = common::postgres().await.store;
    let ids: Vec<String> = (0..200).map(|i| format!("t{i:03}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    for h in 0..100 {
        let mut run = new_run("d", 0, RunType::Manual);
        run.logical_date += chrono::Duration::hours(h);
        run.run_id = RunType::Manual.run_id(run.logical_date);
        s.create_run(&run, &seeds(&ids)).await.unwrap();
    }
    for sql in [
        "UPDATE task_instances SET state = 'scheduled'",
        "UPDATE dag_runs SET state = 'running'",
        "ANALYZE task_instances",
        "ANALYZE dag_runs",
    ] {
        sqlx::query(sql).execute(s.pool()).await.unwrap();
    }
    let plan = s.explain_claim(128).await.unwrap();
    assert!(plan.contains("task_instances_claim_order"), "{plan}");
    assert!(!plan.contains("Sort"), "no sort of the backlog:\n{plan}");
}
