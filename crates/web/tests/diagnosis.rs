//! Diagnosing a failure in the UI: each try's own facts, the run page's
//! error column, Gantt of every try with a time axis, confirmations and
//! "clear failed tasks", the DAG list's counts and trigger buttons, the
//! grid's labels and pager, backfill dates, suggestions for a wrong run id
//! and the runs of a removed DAG.

mod common;

use axum::http::StatusCode;
use chrono::{Duration, TimeZone, Utc};
use scheduler::dagbag::DagBag;
use scheduler::model::{Change, TiPatch, TryRecord, TryState};
use scheduler::state::TaskState;
use scheduler::store::Store;
use serde_json::json;

use common::*;

/// Moves `extract` of the run through two tries as the executor records
/// them: try 1 failed and was retried, try 2 failed for good.
async fn two_failed_tries(e: &Env, run_id: &str) -> i64 {
    let ti = e
        .store
        .get_task_instance("pipeline", run_id, "extract")
        .await
        .unwrap()
        .unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap();
    for (n, state, err) in [
        (1, TryState::UpForRetry, "first try: connection refused"),
        (2, TryState::Failed, "second try: HTTP 500 from the API"),
    ] {
        let start = t0 + Duration::seconds(i64::from(n - 1) * 30);
        e.store
            .record_try(&TryRecord {
                ti_id: ti.id,
                try_number: n,
                state,
                start_date: start,
                end_date: Some(start + Duration::seconds(10)),
                duration_ms: Some(10_000),
                hostname: Some(format!("worker-{n}")),
                pid: Some(100 + i64::from(n)),
                error: Some(err.into()),
            })
            .await
            .unwrap();
    }
    let patch = TiPatch {
        try_number: Some(2),
        start_date: Change::Set(t0 + Duration::seconds(30)),
        end_date: Change::Set(t0 + Duration::seconds(40)),
        duration_ms: Change::Set(10_000),
        hostname: Change::Set("worker-2".into()),
        error: Change::Set("second try: HTTP 500 from the API".into()),
        ..TiPatch::default()
    };
    assert!(
        e.store
            .update_ti(ti.id, TaskState::Pending, TaskState::Failed, &patch)
            .await
            .unwrap()
    );
    ti.id
}

#[tokio::test]
async fn each_try_tab_shows_its_own_try_and_the_gantt_draws_them_all() {
    let e = env().await;
    let run = trigger(&e, json!({}), "2026-05-01T00:00:00Z").await;
    let run_id = run["run_id"].as_str().unwrap();
    two_failed_tries(&e, run_id).await;
    let rid = run_id.replace('+', "%2B");
    let task = format!("/dags/pipeline/runs/{rid}/tasks/extract");

    let first = get(&e.app, &format!("{task}?try=1")).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert!(first.body.contains("first try: connection refused"));
    assert!(first.body.contains("worker-1 (pid 101)"));
    assert!(
        first.body.contains(">up_for_retry</span>"),
        "{}",
        first.body
    );
    assert!(
        !first.body.contains("second try: HTTP 500"),
        "try 1's tab shows try 1 only"
    );
    let second = get(&e.app, &task).await;
    assert!(second.body.contains("second try: HTTP 500 from the API"));
    assert!(second.body.contains("worker-2 (pid 102)"));
    assert!(!second.body.contains("first try: connection refused"));

    let api = get(
        &e.app,
        &format!("/api/v1/dags/pipeline/runs/{rid}/tasks/extract/tries"),
    )
    .await
    .json();
    assert_eq!(api["tries"][0]["state"], "up_for_retry");
    assert_eq!(
        api["tries"][1]["error"],
        "second try: HTTP 500 from the API"
    );

    let page = get(&e.app, &format!("/dags/pipeline/runs/{rid}")).await;
    assert_eq!(page.status, StatusCode::OK);
    // The error column names the latest try's error.
    assert!(page.body.contains("<th>Error</th>"));
    assert!(
        page.body
            .contains("class=\"error-cell\"><a class=\"state-text-failed\"")
    );
    // Both tries are bars: the retry is not a gap.
    assert_eq!(
        page.body.matches("class=\"bar state-").count(),
        2,
        "{}",
        page.body
    );
    assert!(page.body.contains("extract try 1: up_for_retry, 10.0 s"));
    assert!(page.body.contains("extract try 2: failed, 10.0 s"));
    // A time axis: 0 s … 40 s.
    for label in [">0 s<", ">10 s<", ">20 s<", ">30 s<", ">40 s<"] {
        assert!(page.body.contains(label), "axis mark {label}");
    }
    // Destructive buttons ask first; a failed run offers "clear failed tasks".
    assert!(
        page.body
            .contains("id=\"mark-run-failed\" data-confirm=\"Mark run")
    );
    assert!(page.body.contains("id=\"clear-failed\""));
    assert_eq!(
        page.body.matches("data-confirm=").count(),
        4 + 4 * 3,
        "run buttons and every task's clear/success/failed"
    );
}

#[tokio::test]
async fn clear_failed_tasks_clears_only_the_failed_ones() {
    let e = env().await;
    let run = trigger(&e, json!({}), "2026-05-01T00:00:00Z").await;
    let run_id = run["run_id"].as_str().unwrap();
    two_failed_tries(&e, run_id).await;
    let rid = run_id.replace('+', "%2B");
    let tis = e
        .store
        .task_instances(&[run["id"].as_i64().unwrap()])
        .await
        .unwrap();
    let left = tis.iter().find(|t| t.task_id == "left").unwrap();
    e.store
        .update_ti(
            left.id,
            TaskState::Pending,
            TaskState::Success,
            &TiPatch::default(),
        )
        .await
        .unwrap();
    let r = send(
        &e.app,
        form(
            &format!("/dags/pipeline/runs/{rid}/clear"),
            "failed_only=true",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let state = |task: &'static str| {
        let store = e.store.clone();
        let run_id = run_id.to_string();
        async move {
            store
                .get_task_instance("pipeline", &run_id, task)
                .await
                .unwrap()
                .unwrap()
        }
    };
    let extract = state("extract").await;
    assert_eq!(
        extract.state,
        TaskState::Pending,
        "the failed task is cleared"
    );
    assert_eq!(extract.max_tries, 3, "with a fresh set of tries");
    assert_eq!(state("left").await.state, TaskState::Success, "left alone");
    // The history of both earlier tries stays.
    assert_eq!(e.store.tries(&[extract.id]).await.unwrap().len(), 2);
    // The same through the API, for the whole run.
    let api = send(
        &e.app,
        json_req(
            "POST",
            &format!("/api/v1/dags/pipeline/runs/{rid}/clear"),
            json!({}),
        ),
    )
    .await;
    assert_eq!(api.status, StatusCode::OK, "{}", api.body);
    assert_eq!(
        api.json()["changed"],
        json!(["extract", "left", "right", "load"])
    );
}

#[tokio::test]
async fn dag_list_counts_runs_offers_a_trigger_and_says_when_the_next_run_comes() {
    let e = env().await;
    std::fs::write(
        e.dir.path().join("dags/manual.toml"),
        "dag_id = \"manual\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\n",
    )
    .unwrap();
    std::fs::write(
        e.dir.path().join("dags/paris.toml"),
        "dag_id = \"paris\"\nschedule = \"@daily\"\ntimezone = \"Europe/Paris\"\n\
         start_date = 2026-01-01\n[[task]]\nid = \"a\"\nkind = \"noop\"\n",
    )
    .unwrap();
    let bag = DagBag::load(&[e.dir.path().join("dags")], &tasks::registry()).unwrap();
    bag.sync(e.store.as_ref()).await.unwrap();
    e.store.set_paused("paris", false).await.unwrap();
    trigger(&e, json!({}), "2026-05-01T00:00:00Z").await;
    trigger(&e, json!({}), "2026-05-02T00:00:00Z").await;

    let page = get(&e.app, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains(
            "<a class=\"count state-queued\" href=\"/dags/pipeline\" title=\"2 queued\">2</a>"
        ),
        "{}",
        page.body
    );
    for id in ["pipeline", "manual", "paris"] {
        assert!(page.body.contains(&format!("href=\"/dags/{id}/trigger\"")));
    }
    assert!(page.body.contains("manual only"));
    assert!(!page.body.contains("none</code>"), "no `none UTC` schedule");
    // Paris's next run is created at a Paris midnight, said in its zone.
    let next = page
        .body
        .split("run for logical date")
        .nth(1)
        .expect("a next run");
    assert!(
        next.contains(" 00:00:00 CET") || next.contains(" 00:00:00 CEST"),
        "{next}"
    );
    let api = get(&e.app, "/api/v1/dags").await.json();
    let pipeline = api["dags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["dag_id"] == "pipeline")
        .unwrap();
    assert_eq!(
        pipeline["run_counts"][0],
        json!({"state": "queued", "count": 2})
    );
}

#[tokio::test]
async fn grid_labels_carry_the_year_and_run_type_and_older_runs_are_on_the_left() {
    let e = env().await;
    for day in 1..=27 {
        trigger(&e, json!({}), &format!("2026-03-{day:02}T00:00:00Z")).await;
    }
    let page = get(&e.app, "/dags/pipeline").await;
    assert!(
        page.body
            .contains("<span class=\"run-date\">2026-03-27 00:00</span>")
    );
    assert!(page.body.contains("run-type-manual\">manual</span>"));
    let older = page
        .body
        .split("id=\"older-runs\">")
        .nth(1)
        .expect("an older-runs link");
    assert!(
        older.starts_with("← older runs"),
        "points left, where older runs are"
    );
    let pager = page.body.split("class=\"pager\"").nth(1).unwrap();
    assert!(pager.find("older-runs") < pager.find("oldest on the left"));
}

#[tokio::test]
async fn a_backfill_row_opens_to_its_dates_and_the_form_defaults_match_the_cli() {
    let e = env().await;
    let r = send(
        &e.app,
        json_req(
            "POST",
            "/api/v1/backfills",
            json!({"dag_id": "pipeline", "from": "2026-02-01", "to": "2026-02-03"}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        r.json()["backfill"]["max_active_runs"],
        scheduler::backfill::DEFAULT_MAX_ACTIVE_RUNS
    );
    let page = get(&e.app, "/dags/pipeline/backfills").await;
    assert!(
        page.body.contains("<summary>3 date(s)</summary>"),
        "{}",
        page.body
    );
    for d in [
        "2026-02-01 00:00:00",
        "2026-02-02 00:00:00",
        "2026-02-03 00:00:00",
    ] {
        assert!(
            page.body
                .contains(&format!("<tr><td>{d}</td><td>create</td>"))
        );
    }
    assert!(page.body.contains(&format!(
        "name=\"max_active_runs\" value=\"{}\"",
        scheduler::backfill::DEFAULT_MAX_ACTIVE_RUNS
    )));
}

#[tokio::test]
async fn a_wrong_run_or_task_id_gets_a_suggestion() {
    let e = env().await;
    trigger(&e, json!({}), "2026-05-01T00:00:00Z").await;
    let r = get(
        &e.app,
        "/api/v1/dags/pipeline/runs/manual__2026-05-01T00:00:00%2B00:0",
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.body
            .contains("did you mean \\\"manual__2026-05-01T00:00:00+00:00\\\"?"),
        "{}",
        r.body
    );
    let r = get(
        &e.app,
        "/api/v1/dags/pipeline/runs/manual__2026-05-01T00:00:00%2B00:00/tasks/extrct",
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.body.contains("did you mean \\\"extract\\\"?"),
        "{}",
        r.body
    );
    let r = get(&e.app, "/api/v1/dags/pipeline/runs/nothing-like-it-at-all").await;
    assert!(
        r.body.contains("its newest run is") && r.body.contains("runs list pipeline"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn a_removed_dags_runs_stay_readable_but_not_changeable() {
    let e = env().await;
    let run = trigger(&e, json!({}), "2026-05-01T00:00:00Z").await;
    let rid = run["run_id"].as_str().unwrap().replace('+', "%2B");
    std::fs::remove_file(e.dir.path().join("dags/pipeline.toml")).unwrap();
    let bag = DagBag::load(&[e.dir.path().join("dags")], &tasks::registry()).unwrap();
    bag.sync(e.store.as_ref()).await.unwrap();

    let page = get(&e.app, &format!("/dags/pipeline/runs/{rid}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(">removed</span>"));
    assert!(page.body.contains("no longer in the DAGs folder"));
    let grid = get(&e.app, "/dags/pipeline").await;
    assert_eq!(grid.status, StatusCode::OK);
    let task = get(&e.app, &format!("/dags/pipeline/runs/{rid}/tasks/extract")).await;
    assert_eq!(task.status, StatusCode::OK);
    let api = get(&e.app, &format!("/api/v1/dags/pipeline/runs/{rid}")).await;
    assert_eq!(api.status, StatusCode::OK);
    let mark = send(
        &e.app,
        json_req(
            "POST",
            &format!("/api/v1/dags/pipeline/runs/{rid}/mark"),
            json!({"state": "failed"}),
        ),
    )
    .await;
    assert_eq!(mark.status, StatusCode::NOT_FOUND);
    assert!(
        mark.body.contains("can be read but not changed"),
        "{}",
        mark.body
    );
}
