//! Backfills end to end: the real binary, a scheduler process, SQLite and PostgreSQL.

mod common;

use common::*;

on_both!(
    backfill_modes_reverse_dry_run_and_cancel,
    backfill_survives_a_killed_scheduler
);

fn daily(env: &Env, name: &str, extra: &str, command: &str) {
    env.dag(
        name,
        &format!(
            "dag_id = \"{name}\"\nschedule = \"@daily\"\nstart_date = 2026-09-01\n{extra}\n[[task]]\nid = \"work\"\nkind = \"shell\"\ncommand = '''{command}'''\n"
        ),
    );
}

/// Logical dates the backfilled range's tasks ran for, in order (the
/// regular schedule's November runs are left out).
fn executions(env: &Env) -> Vec<String> {
    std::fs::read_to_string(env.path("executions.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("2026-10"))
        .map(str::to_string)
        .collect()
}

/// The DAG's backfill runs (the regular schedule runs beside them).
fn runs(env: &Env, dag: &str) -> Vec<serde_json::Value> {
    let all = env.json(&["runs", "list", dag, "--limit", "1000"]);
    all.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["run_type"] == "backfill")
        .cloned()
        .collect()
}

fn scheduled_runs(env: &Env, dag: &str) -> usize {
    let all = env.json(&["runs", "list", dag, "--limit", "1000"]);
    all.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["run_type"] == "scheduled")
        .count()
}

fn backfill_modes_reverse_dry_run_and_cancel(env: Env) {
    let log = env.path("executions.log");
    let heal = env.path("heal");
    daily(
        &env,
        "daily",
        "",
        &format!(
            "echo ${{TRIBUTARY_LOGICAL_DATE:0:10}} >> {}; if [ ${{TRIBUTARY_LOGICAL_DATE:8:2}} = 13 ] && [ ! -f {} ]; then exit 1; fi",
            log.display(),
            heal.display()
        ),
    );
    let _s = env.scheduler();
    let range = ["--from", "2026-10-01", "--to", "2026-10-30"];
    // Dry run: the plan, and nothing changes.
    let dry = env.ok(&[&["backfill", "daily", "--dry-run"][..], &range].concat());
    assert!(
        dry.contains("30 date(s): 30 to create, 0 to clear and re-run, 0 left alone"),
        "{dry}"
    );
    assert!(runs(&env, "daily").is_empty());
    // missing: every date runs once; the 13th fails, so the backfill reports failure.
    let o = env.run(&[&["backfill", "daily", "--max-active-runs", "8"][..], &range].concat());
    assert!(!o.status.success(), "{}", text(&o.stdout));
    assert!(
        text(&o.stdout).contains("completed: 29 done · 1 failed"),
        "{}",
        text(&o.stdout)
    );
    let r = runs(&env, "daily");
    assert_eq!(r.len(), 30);
    assert!(r.iter().all(|x| x["run_type"] == "backfill"));
    assert_eq!(r.iter().filter(|x| x["state"] == "failed").count(), 1);
    assert_eq!(
        executions(&env)
            .iter()
            .filter(|d| d.starts_with("2026-10"))
            .count(),
        30
    );
    assert_eq!(
        scheduled_runs(&env, "daily"),
        1,
        "the regular schedule ran beside the backfill"
    );
    // failed: only the failed date runs again.
    std::fs::write(&heal, "").unwrap();
    let out = env.ok(&[&["backfill", "daily", "--reprocess", "failed"][..], &range].concat());
    assert!(out.contains("completed: 30 done · 0 failed"), "{out}");
    let ex = executions(&env);
    assert_eq!(ex.len(), 31);
    assert_eq!(ex.last().map(String::as_str), Some("2026-10-13"));
    assert!(runs(&env, "daily").iter().all(|x| x["state"] == "success"));
    // missing again: nothing to do.
    let out = env.ok(&[&["backfill", "daily"][..], &range].concat());
    assert!(out.contains("completed: 30 done"), "{out}");
    assert_eq!(executions(&env).len(), 31);
    // all, newest first, one at a time: five re-runs in reverse order.
    env.ok(&[
        "backfill",
        "daily",
        "--from",
        "2026-10-01",
        "--to",
        "2026-10-05",
        "--reprocess",
        "all",
        "--reverse",
        "--max-active-runs",
        "1",
    ]);
    let ex = executions(&env);
    assert_eq!(
        &ex[31..],
        [
            "2026-10-05",
            "2026-10-04",
            "2026-10-03",
            "2026-10-02",
            "2026-10-01"
        ]
    );
    assert_eq!(
        runs(&env, "daily").len(),
        30,
        "re-runs reuse the runs: none doubled"
    );
    // Bad ranges are clear errors.
    let e = env.run(&[
        "backfill",
        "daily",
        "--from",
        "2026-10-05",
        "--to",
        "2026-10-01",
    ]);
    assert!(
        text(&e.stderr).contains("is before --from"),
        "{}",
        text(&e.stderr)
    );
    let e = env.run(&[
        "backfill",
        "daily",
        "--from",
        "2026-08-01",
        "--to",
        "2026-10-01",
    ]);
    assert!(
        text(&e.stderr).contains("before the DAG's start_date"),
        "{}",
        text(&e.stderr)
    );
    env.dag(
        "manual_only",
        "dag_id = \"manual_only\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\n",
    );
    let e = env.run(&[
        "backfill",
        "manual_only",
        "--from",
        "2026-10-01",
        "--to",
        "2026-10-02",
    ]);
    assert!(
        text(&e.stderr).contains("has no schedule"),
        "{}",
        text(&e.stderr)
    );

    // cancel: pending dates are not started, running runs finish.
    daily(&env, "slow", "", "sleep 1");
    let out = env.ok(&[
        "backfill",
        "slow",
        "--from",
        "2026-10-01",
        "--to",
        "2026-10-10",
        "--max-active-runs",
        "1",
        "--detach",
        "-o",
        "json",
    ]);
    let id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
        .as_i64()
        .unwrap()
        .to_string();
    env.eventually("a backfill run to start", || {
        runs(&env, "slow").iter().any(|r| r["state"] == "running")
    });
    let c = env.ok(&["backfill", "cancel", &id]);
    assert!(c.contains("cancelled"), "{c}");
    let shown = env.json(&["backfill", "show", &id]);
    assert_eq!(shown["backfill"]["state"], "cancelled");
    assert!(
        shown["progress"]["cancelled"].as_u64().unwrap() >= 8,
        "{shown}"
    );
    env.eventually("the started run to finish", || {
        runs(&env, "slow").iter().all(|r| r["state"] != "running")
    });
    assert!(runs(&env, "slow").len() <= 2);
    let list = env.json(&["backfill", "list", "--dag", "slow"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
}

fn backfill_survives_a_killed_scheduler(env: Env) {
    let log = env.path("executions.log");
    daily(
        &env,
        "steady",
        "[defaults]\nretries = 2\nretry_delay = 0",
        &format!(
            "sleep 0.3; echo ${{TRIBUTARY_LOGICAL_DATE:0:10}} >> {}",
            log.display()
        ),
    );
    let mut first = env.scheduler();
    let out = env.ok(&[
        "backfill",
        "steady",
        "--from",
        "2026-10-01",
        "--to",
        "2026-10-30",
        "--max-active-runs",
        "4",
        "--detach",
        "-o",
        "json",
    ]);
    let id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
        .as_i64()
        .unwrap()
        .to_string();
    env.eventually("some runs done", || {
        runs(&env, "steady")
            .iter()
            .filter(|r| r["state"] == "success")
            .count()
            >= 4
    });
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let _second = env.scheduler();
    let out = env.ok(&["backfill", "show", &id, "--follow"]);
    assert!(out.contains("completed: 30 done · 0 failed"), "{out}");
    let r = runs(&env, "steady");
    assert_eq!(r.len(), 30);
    let mut dates: Vec<&str> = r
        .iter()
        .map(|x| x["logical_date"].as_str().unwrap())
        .collect();
    dates.sort_unstable();
    dates.dedup();
    assert_eq!(dates.len(), 30, "no run doubled");
    assert!(r.iter().all(|x| x["state"] == "success"));
    // Every date's work completed (a try cut by the kill ran again).
    let mut ex = executions(&env);
    ex.sort_unstable();
    ex.dedup();
    assert_eq!(ex.len(), 30);
}
