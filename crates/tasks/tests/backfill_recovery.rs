//! A scheduler that dies between creating a backfill run and recording it on
//! the backfill's date: the next scheduler adopts the run instead of
//! completing the backfill without it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use scheduler::backfill;
use scheduler::model::RunType;
use scheduler::model::{BackfillState, DateState, NewBackfill, Reprocess};
use scheduler::store::{SqlStore, Store};
use scheduler::timetable::DataInterval;

#[tokio::test]
async fn run_created_but_not_recorded_is_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::connect(&format!("sqlite://{}", dir.path().join("m.db").display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let src = "dag_id = \"d\"\nschedule = \"@daily\"\nstart_date = 2026-10-01\n[[task]]\nid = \"a\"\nkind = \"noop\"\n";
    let dag =
        Arc::new(scheduler::dag::parse_dag(Path::new("d.toml"), src, &tasks::registry()).unwrap());
    let day = |d: u32| Utc.with_ymd_and_hms(2026, 10, d, 0, 0, 0).unwrap();
    let nb = NewBackfill {
        dag_id: "d".into(),
        from_date: day(1),
        to_date: day(2),
        reprocess: Reprocess::Missing,
        max_active_runs: 4,
        reverse: false,
        conf: serde_json::json!({}),
    };
    let (bf, _) = backfill::create(&store, &dag, &nb).await.unwrap();
    // The dead scheduler got as far as creating the first date's run.
    let orphan = scheduler::runs::create_run(
        &store,
        &dag,
        RunType::Backfill,
        DataInterval {
            start: day(1),
            end: day(2),
        },
        serde_json::json!({}),
        Some(bf.id),
    )
    .await
    .unwrap();
    let dags: BTreeMap<String, Arc<scheduler::dag::Dag>> = [("d".to_string(), dag.clone())].into();
    backfill::advance(&store, &dags).await.unwrap();
    let dates = store
        .backfill_dates(bf.id, None, None, false)
        .await
        .unwrap();
    assert_eq!(dates[0].state, DateState::Started);
    assert_eq!(
        dates[0].dag_run_id,
        Some(orphan.id),
        "the existing run was adopted"
    );
    assert_eq!(dates[1].state, DateState::Started);
    assert_eq!(
        store.get_backfill(bf.id).await.unwrap().unwrap().state,
        BackfillState::Running
    );
    assert_eq!(
        store.list_runs("d", 10).await.unwrap().len(),
        2,
        "no run doubled"
    );
}
