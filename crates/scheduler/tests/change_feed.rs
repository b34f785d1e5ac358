//! The change feed: a follower hears every change; a scheduler's feed
//! skips progress (tries starting) and its own process's notifications,
//! which it hears in-process instead.

use std::sync::Arc;
use std::time::Duration;

use scheduler::model::RunType;
use scheduler::state::RunState;
use scheduler::store::{Changes, SqlStore, Store, Wake, Woken, scratch};

#[macro_use]
mod common;

use common::{new_run, schedule_all, seeds, t, try_ended, try_started};

conformance!(
    change_feed_wakes_on_another_connections_write,
    a_schedulers_feed_hears_its_own_process,
);

async fn next(feed: &mut Changes) -> Woken {
    tokio::time::timeout(Duration::from_secs(10), feed.next())
        .await
        .expect("the change feed woke up")
        .unwrap()
}

/// What wakes `wake`'s feed when another connection of `s` creates a run
/// and notifies; the run is there by then.
async fn woken_by_a_new_run(s: &Arc<SqlStore>, wake: Wake) -> Woken {
    let mut feed = s.changes(wake).await.unwrap();
    let writer = s.clone();
    tokio::spawn(async move {
        writer
            .create_run(&new_run("d", 1, RunType::Manual), &[])
            .await
            .unwrap();
        writer.notify().await.unwrap();
    });
    let woken = next(&mut feed).await;
    assert_eq!(s.list_runs("d", 1).await.unwrap().len(), 1);
    woken
}

async fn change_feed_wakes_on_another_connections_write(s: Arc<SqlStore>) {
    woken_by_a_new_run(&s, Wake::OnAnyChange).await;
}

/// `Store::notify` wakes this process's scheduler feed: in-process on
/// PostgreSQL (the notification's echo is skipped), through the data
/// version on SQLite.
async fn a_schedulers_feed_hears_its_own_process(s: Arc<SqlStore>) {
    let woken = woken_by_a_new_run(&s, Wake::OnWork).await;
    assert!(
        matches!(woken, Woken::InProcess | Woken::DataVersion),
        "{woken:?}"
    );
}

/// Two stores on one database stand for two processes. PostgreSQL delivers
/// notifications in commit order, so what wakes a feed first shows which
/// ones it skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedulers_feed_skips_try_starts_and_its_own_echo_on_postgres() {
    let url = scratch::postgres_database(&scratch::admin_url())
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 (scripts/test.sh starts it)");
    let a = SqlStore::connect(&url).await.unwrap();
    a.migrate().await.unwrap();
    let b = SqlStore::connect(&url).await.unwrap();
    assert_ne!(a.origin(), b.origin());
    let mut work = a.changes(Wake::OnWork).await.unwrap();
    let mut all = a.changes(Wake::OnAnyChange).await.unwrap();

    // Its own change: heard in-process; the echo through PostgreSQL is
    // skipped (else the next wake-up below would be it).
    a.notify().await.unwrap();
    assert_eq!(next(&mut work).await, Woken::InProcess);

    // The other process starts a try (progress: skipped), then ends it
    // (a change: downstream tasks may be ready).
    let run = b
        .create_run(&new_run("d", 1, RunType::Manual), &seeds(&["x"]))
        .await
        .unwrap();
    schedule_all(&b, &[run.id]).await;
    b.set_run_state(run.id, run.state, RunState::Running, t(1))
        .await
        .unwrap();
    let ti = b.claim("b", t(1), 1).await.unwrap().claimed.remove(0);
    assert!(b.transition_try(&try_started(ti.id, "b")).await.unwrap());
    assert!(b.transition_try(&try_ended(ti.id, "b")).await.unwrap());
    let change = |s: &SqlStore| Woken::Notification(format!("{} change", s.origin()));
    assert_eq!(next(&mut work).await, change(&b));

    // A follower hears all three, in order.
    assert_eq!(next(&mut all).await, change(&a));
    assert_eq!(
        next(&mut all).await,
        Woken::Notification(format!("{} progress", b.origin()))
    );
    assert_eq!(next(&mut all).await, change(&b));
}
