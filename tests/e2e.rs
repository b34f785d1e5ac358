//! End-to-end tests: the real `tributary` binary, a scheduler process and
//! CLI commands, on SQLite and on the real PostgreSQL server.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::*;

on_both!(
    trigger_and_wait_succeeds,
    failing_task_retries_with_backoff_then_fails_downstream,
    an_interrupted_try_shows_as_not_started_and_stays_in_the_history,
    execution_timeout_stops_the_task,
    trigger_rules_decide_what_runs,
    pools_limit_concurrency,
    broken_dag_file_beside_good_ones,
    scheduled_runs_are_created_from_the_schedule,
    clear_with_downstream_and_mark,
    killed_scheduler_task_is_retried_by_another,
    catchup_after_downtime_and_pause_unpause,
);

#[test]
fn sqlite_refuses_a_second_scheduler() {
    let env = sqlite_env();
    env.dag(
        "a",
        "dag_id = \"a\"\n[[task]]\nid = \"t\"\nkind = \"noop\"\n",
    );
    let _first = env.scheduler();
    env.eventually("the first scheduler to start", || {
        std::fs::read_to_string(env.path("scheduler.log"))
            .unwrap_or_default()
            .contains("scheduler started")
    });
    let second = env.run(&["scheduler"]);
    assert!(!second.status.success());
    let err = text(&second.stderr);
    assert!(
        err.contains("another scheduler") && err.contains("use PostgreSQL"),
        "{err}"
    );
}

fn trigger_and_wait_succeeds(env: Env) {
    env.dag(
        "chain",
        r#"dag_id = "chain"
[params.who]
type = "string"
default = "nobody"
[[task]]
id = "one"
kind = "shell"
command = "echo hello $TRIBUTARY_PARAM_WHO"
[[task]]
id = "two"
kind = "noop"
depends_on = ["one"]
[[task]]
id = "three"
kind = "shell"
depends_on = ["two"]
command = "echo done"
"#,
    );
    let _s = env.scheduler();
    let out = env.ok(&[
        "trigger",
        "chain",
        "--conf",
        r#"{"who": "Zoë"}"#,
        "--wait",
        "--timeout",
        "60",
    ]);
    assert!(out.contains("three") && out.contains("success"), "{out}");
    let run_id = run_id_from(&out);
    assert!(
        out.trim_end().ends_with(&format!(
            "success in {}",
            out.trim_end().rsplit(' ').next().unwrap()
        )),
        "{out}"
    );
    let states = env.task_states("chain", &run_id);
    assert_eq!(
        states
            .iter()
            .filter(|t| t.1 == "success" && t.2 == 1)
            .count(),
        3,
        "{states:?}"
    );
    let logs = env.ok(&["tasks", "logs", "chain", &run_id, "one"]);
    assert!(logs.contains("hello Zoë"), "{logs}");
    let runs = env.json(&["runs", "list", "chain"]);
    assert_eq!(runs[0]["state"], "success");
    assert_eq!(runs[0]["conf"]["who"], "Zoë");
    // A conf that does not fit the params is refused, and no run is created.
    let bad = env.run(&["trigger", "chain", "--conf", r#"{"who": 3, "extra": 1}"#]);
    assert!(!bad.status.success());
    let err = text(&bad.stderr);
    assert!(
        err.contains("who: expected string, got integer") && err.contains("unknown key \"extra\""),
        "{err}"
    );
    assert_eq!(
        env.json(&["runs", "list", "chain"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

fn failing_task_retries_with_backoff_then_fails_downstream(env: Env) {
    env.dag(
        "flaky",
        r#"dag_id = "flaky"
[[task]]
id = "boom"
kind = "shell"
command = "echo attempt $TRIBUTARY_TRY_NUMBER; exit 1"
retries = 2
retry_delay = "1s"
retry_exponential_backoff = true
max_retry_delay = "10s"
[[task]]
id = "after"
kind = "noop"
depends_on = ["boom"]
[[task]]
id = "after_after"
kind = "noop"
depends_on = ["after"]
"#,
    );
    let _s = env.scheduler();
    let o = env.run(&["trigger", "flaky", "--wait", "--timeout", "60"]);
    let out = text(&o.stdout);
    assert!(!o.status.success(), "a failed run exits non-zero: {out}");
    assert!(
        out.contains("up_for_retry (try 1/3)") && out.contains("up_for_retry (try 2/3)"),
        "{out}"
    );
    let run_id = run_id_from(&out);
    let states = env.task_states("flaky", &run_id);
    assert!(
        states.contains(&("boom".into(), "failed".into(), 3)),
        "{states:?}"
    );
    assert!(
        states.contains(&("after".into(), "upstream_failed".into(), 0)),
        "{states:?}"
    );
    assert!(
        states.contains(&("after_after".into(), "upstream_failed".into(), 0)),
        "{states:?}"
    );
    // Backoff: the second retry waited about twice as long as the first.
    let first_ts = |t: &str| -> f64 {
        let lines = env.json(&["tasks", "logs", "flaky", &run_id, "boom", "--try", t]);
        let ts = lines[0]["ts"].as_str().unwrap();
        chrono::DateTime::parse_from_rfc3339(ts)
            .unwrap()
            .timestamp_millis() as f64
            / 1000.0
    };
    let (t1, t2, t3) = (first_ts("1"), first_ts("2"), first_ts("3"));
    assert!(
        (1.0..2.0).contains(&(t2 - t1)),
        "first retry delay {}",
        t2 - t1
    );
    assert!(
        (2.0..3.5).contains(&(t3 - t2)),
        "second retry delay {}",
        t3 - t2
    );
    let log3 = env.ok(&["tasks", "logs", "flaky", &run_id, "boom"]);
    assert!(
        log3.contains("attempt 3") && log3.contains("no tries left"),
        "{log3}"
    );
    let log1 = env.ok(&["tasks", "logs", "flaky", &run_id, "boom", "--try", "1"]);
    assert!(
        log1.contains("attempt 1") && log1.contains("retry 1 of 2 in 1s"),
        "{log1}"
    );
    // Each try is kept with its own outcome, not only the last one.
    let tries = env.json(&["tasks", "tries", "flaky", &run_id, "boom"]);
    let states: Vec<(u64, &str)> = tries
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["try_number"].as_u64().unwrap(),
                t["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [(1, "up_for_retry"), (2, "up_for_retry"), (3, "failed")]
    );
    assert!(
        tries[0]["error"].as_str().unwrap().contains("exit"),
        "{tries}"
    );
    assert!(tries[0]["end_date"].as_str().unwrap() < tries[1]["start_date"].as_str().unwrap());
}

fn an_interrupted_try_shows_as_not_started_and_stays_in_the_history(env: Env) {
    env.dag(
        "long",
        "dag_id = \"long\"\n[[task]]\nid = \"sleeper\"\nkind = \"shell\"\ncommand = \"echo started; sleep 60\"\n",
    );
    let s = env.scheduler();
    let out = env.ok(&["trigger", "long"]);
    let run_id = run_id_from(&out);
    env.eventually("the try to start", || {
        env.ok(&["tasks", "logs", "long", &run_id, "sleeper"])
            .contains("started")
    });
    assert!(s.interrupt().success(), "graceful stop exits 0");
    let tis = env.json(&["tasks", "list", "long", &run_id]);
    let ti = &tis[0];
    assert_eq!(ti["state"], "scheduled");
    assert_eq!(
        ti["start_date"],
        serde_json::Value::Null,
        "not started: {ti}"
    );
    assert_eq!(ti["end_date"], serde_json::Value::Null, "{ti}");
    assert_eq!(ti["duration_ms"], serde_json::Value::Null, "{ti}");
    assert_eq!(
        (ti["try_number"].as_u64(), ti["max_tries"].as_u64()),
        (Some(1), Some(2))
    );
    let tries = env.json(&["tasks", "tries", "long", &run_id, "sleeper"]);
    assert_eq!(tries[0]["state"], "interrupted", "{tries}");
    assert!(tries[0]["end_date"].is_string(), "{tries}");
    let log = env.ok(&["tasks", "logs", "long", &run_id, "sleeper"]);
    assert!(
        log.contains("try 1 is interrupted and does not count") && log.contains("2 tries allowed"),
        "{log}"
    );
}

fn execution_timeout_stops_the_task(env: Env) {
    env.dag(
        "slow",
        r#"dag_id = "slow"
[[task]]
id = "sleepy"
kind = "shell"
command = "echo started; sleep 60"
execution_timeout = "1s"
"#,
    );
    let _s = env.scheduler();
    let started = Instant::now();
    let o = env.run(&["trigger", "slow", "--wait", "--timeout", "60"]);
    assert!(!o.status.success());
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the sleep was not stopped"
    );
    let out = text(&o.stdout);
    assert!(
        out.contains("failed (try 1/1): execution timed out after 1s"),
        "{out}"
    );
    let log = env.ok(&["tasks", "logs", "slow", &run_id_from(&out), "sleepy"]);
    assert!(
        log.contains("execution timed out after 1s: stopping the task"),
        "{log}"
    );
    assert!(log.contains("SIGTERM"), "{log}");
}

fn trigger_rules_decide_what_runs(env: Env) {
    env.dag(
        "rules",
        r#"dag_id = "rules"
[[task]]
id = "ok"
kind = "noop"
[[task]]
id = "bad"
kind = "shell"
command = "exit 1"
[[task]]
id = "skipper"
kind = "shell"
command = "exit 99"
[[task]]
id = "all_success"
kind = "noop"
depends_on = ["ok", "bad"]
[[task]]
id = "all_done"
kind = "noop"
depends_on = ["ok", "bad"]
trigger_rule = "all_done"
[[task]]
id = "one_failed"
kind = "noop"
depends_on = ["ok", "bad"]
trigger_rule = "one_failed"
[[task]]
id = "one_success"
kind = "noop"
depends_on = ["ok", "bad"]
trigger_rule = "one_success"
[[task]]
id = "all_failed"
kind = "noop"
depends_on = ["ok", "bad"]
trigger_rule = "all_failed"
[[task]]
id = "none_failed"
kind = "noop"
depends_on = ["ok", "skipper"]
trigger_rule = "none_failed"
[[task]]
id = "none_failed_min_one_success"
kind = "noop"
depends_on = ["skipper"]
trigger_rule = "none_failed_min_one_success"
[[task]]
id = "after_skip"
kind = "noop"
depends_on = ["skipper"]
[[task]]
id = "always"
kind = "noop"
depends_on = ["bad"]
trigger_rule = "always"
"#,
    );
    let _s = env.scheduler();
    let o = env.run(&["trigger", "rules", "--wait", "--timeout", "60"]);
    let out = text(&o.stdout);
    assert!(
        !o.status.success(),
        "leaf all_success is upstream_failed, so the run fails: {out}"
    );
    let run_id = run_id_from(&out);
    let want = [
        ("ok", "success"),
        ("bad", "failed"),
        ("skipper", "skipped"),
        ("all_success", "upstream_failed"),
        ("all_done", "success"),
        ("one_failed", "success"),
        ("one_success", "success"),
        ("all_failed", "skipped"),
        ("none_failed", "success"),
        ("none_failed_min_one_success", "skipped"),
        ("after_skip", "skipped"),
        ("always", "success"),
    ];
    for (task, state) in want {
        assert_eq!(env.state_of("rules", &run_id, task), state, "task {task}");
    }
}

fn pools_limit_concurrency(env: Env) {
    let mut dag = String::from("dag_id = \"pooled\"\nmax_active_tasks = 16\n");
    for i in 0..6 {
        dag.push_str(&format!(
            "[[task]]\nid = \"t{i}\"\nkind = \"shell\"\npool = \"narrow\"\ncommand = \"echo start $(date +%s.%N) >> {log}; sleep 0.4; echo end $(date +%s.%N) >> {log}\"\n",
            log = env.path("spans.log").display()
        ));
    }
    env.dag("pooled", &dag);
    env.ok(&[
        "pools",
        "set",
        "narrow",
        "--slots",
        "2",
        "--description",
        "two at a time",
    ]);
    let pools = env.json(&["pools", "list"]);
    assert!(
        pools
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "narrow" && p["slots"] == 2)
    );
    let _s = env.scheduler();
    env.ok(&["trigger", "pooled", "--wait", "--timeout", "60"]);
    // Replay the start/end events: never more than 2 at once, and 2 at some point.
    let mut events: Vec<(f64, i32)> = std::fs::read_to_string(env.path("spans.log"))
        .unwrap()
        .lines()
        .map(|l| {
            let (kind, t) = l.split_once(' ').unwrap();
            (t.parse().unwrap(), if kind == "start" { 1 } else { -1 })
        })
        .collect();
    assert_eq!(events.len(), 12);
    events.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (mut cur, mut max) = (0, 0);
    for (_, d) in events {
        cur += d;
        max = max.max(cur);
    }
    assert_eq!(max, 2, "pool of 2 slots");
}

fn broken_dag_file_beside_good_ones(env: Env) {
    env.dag(
        "good",
        "dag_id = \"good\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\n",
    );
    env.dag("broken", "dag_id = \"broken\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\ndepends_on = [\"b\"]\n[[task]]\nid = \"b\"\nkind = \"nope\"\n");
    let v = env.run(&["dags", "validate"]);
    assert!(!v.status.success());
    let out = text(&v.stdout);
    assert!(
        out.contains("broken.toml:8:8: task \"b\": unknown task kind \"nope\""),
        "{out}"
    );
    assert!(
        out.contains("1 valid DAG(s), 1 problem(s) in 1 file(s)"),
        "{out}"
    );
    let _s = env.scheduler();
    env.ok(&["trigger", "good", "--wait", "--timeout", "60"]);
    let list = env.json(&["dags", "list"]);
    assert_eq!(list["dags"].as_array().unwrap().len(), 1);
    let errors = list["import_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("broken.toml:8:8"),
        "{errors:?}"
    );
    let table = env.ok(&["dags", "list"]);
    assert!(
        table.contains("1 DAG file(s) failed to load") && table.contains("broken.toml:8:8"),
        "{table}"
    );
    let t = env.run(&["trigger", "broken"]);
    assert!(!t.status.success());
    assert!(
        text(&t.stderr).contains("failed to load"),
        "{}",
        text(&t.stderr)
    );
}

fn scheduled_runs_are_created_from_the_schedule(env: Env) {
    // Every second, no catchup: the scheduler keeps creating runs, each once.
    env.dag(
        "ticker",
        "dag_id = \"ticker\"\nschedule = \"* * * * * *\"\nmax_active_runs = 1\n[[task]]\nid = \"a\"\nkind = \"noop\"\n",
    );
    env.dag(
        "quiet",
        "dag_id = \"quiet\"\nschedule = \"* * * * * *\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\n",
    );
    env.ok(&["dags", "pause", "quiet"]);
    let s = env.scheduler();
    env.eventually("three scheduled runs", || {
        let runs = env.json(&["runs", "list", "ticker"]);
        runs.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["state"] == "success" && r["run_type"] == "scheduled")
            .count()
            >= 3
    });
    let status = s.interrupt();
    assert!(status.success(), "graceful stop exits 0");
    let runs = env.json(&["runs", "list", "ticker", "--limit", "1000"]);
    let mut dates: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["logical_date"].as_str().unwrap())
        .collect();
    let n = dates.len();
    dates.dedup();
    assert_eq!(dates.len(), n, "one run per logical date");
    // Consecutive intervals: each run's interval starts where the next older one ended.
    let arr = runs.as_array().unwrap();
    for w in arr.windows(2) {
        assert_eq!(
            w[1]["data_interval"]["end"], w[0]["data_interval"]["start"],
            "{w:?}"
        );
    }
    assert!(
        env.json(&["runs", "list", "quiet"])
            .as_array()
            .unwrap()
            .is_empty(),
        "paused DAG got runs"
    );
    let log = std::fs::read_to_string(env.path("scheduler.log")).unwrap();
    assert!(log.contains("scheduler stopped"), "{log}");
    let _ = Path::new(BIN);
}

fn clear_with_downstream_and_mark(env: Env) {
    let flag = env.path("ready.flag");
    env.dag(
        "gated",
        &format!(
            "dag_id = \"gated\"\n[[task]]\nid = \"gate\"\nkind = \"shell\"\ncommand = \"test -f {}\"\n\
             [[task]]\nid = \"after\"\nkind = \"noop\"\ndepends_on = [\"gate\"]\n\
             [[task]]\nid = \"last\"\nkind = \"noop\"\ndepends_on = [\"after\"]\n\
             [[task]]\nid = \"side\"\nkind = \"noop\"\n",
            flag.display()
        ),
    );
    let _s = env.scheduler();
    let out = text(
        &env.run(&["trigger", "gated", "--wait", "--timeout", "60"])
            .stdout,
    );
    let run_id = run_id_from(&out);
    assert_eq!(env.state_of("gated", &run_id, "after"), "upstream_failed");
    std::fs::write(&flag, "").unwrap();
    let cleared = env.json(&[
        "tasks",
        "clear",
        "gated",
        &run_id,
        "--task",
        "gate",
        "--downstream",
    ]);
    let mut changed: Vec<&str> = cleared["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    changed.sort_unstable();
    assert_eq!(
        changed,
        vec!["after", "gate", "last"],
        "side is not downstream of gate"
    );
    env.eventually("the cleared run to succeed", || {
        env.json(&["runs", "list", "gated"])[0]["state"] == "success"
    });
    let states = env.task_states("gated", &run_id);
    assert!(
        states.contains(&("gate".into(), "success".into(), 2)),
        "a new try: {states:?}"
    );
    assert!(
        states.contains(&("side".into(), "success".into(), 1)),
        "side did not run again: {states:?}"
    );
    // The first try's log is kept.
    let log1 = env.ok(&["tasks", "logs", "gated", &run_id, "gate", "--try", "1"]);
    assert!(log1.contains("command exited with code 1"), "{log1}");
    // Marking: a finished task can be forced; the run can be forced too.
    env.ok(&["tasks", "mark", "gated", &run_id, "side", "failed"]);
    assert_eq!(env.state_of("gated", &run_id, "side"), "failed");
    env.ok(&["runs", "mark", "gated", &run_id, "failed"]);
    assert_eq!(env.json(&["runs", "list", "gated"])[0]["state"], "failed");
    let bad = env.run(&["tasks", "clear", "gated", &run_id, "--task", "nope"]);
    assert!(!bad.status.success() && text(&bad.stderr).contains("has no task \"nope\""));
    // Clearing only failed tasks of the finished run brings it back to running.
    let c = env.json(&["tasks", "clear", "gated", &run_id, "--failed-only"]);
    assert_eq!(c["changed"], serde_json::json!(["side"]));
    env.eventually("the run to succeed again", || {
        env.json(&["runs", "list", "gated"])[0]["state"] == "success"
    });
}

fn killed_scheduler_task_is_retried_by_another(env: Env) {
    env.dag(
        "long",
        "dag_id = \"long\"\n[[task]]\nid = \"work\"\nkind = \"shell\"\nretries = 1\nretry_delay = 0\n\
         command = \"if [ $TRIBUTARY_TRY_NUMBER = 1 ]; then exec sleep 45; fi; echo second try\"\n",
    );
    let mut first = env.scheduler();
    let out = env.ok(&["trigger", "long"]);
    let run_id = run_id_from(&out);
    env.eventually("the first try to run", || {
        env.state_of("long", &run_id, "work") == "running"
    });
    first.0.kill().unwrap(); // SIGKILL: no chance to clean up
    first.0.wait().unwrap();
    let killed_at = chrono::Utc::now();
    let _second = env.scheduler();
    env.eventually("the run to succeed", || {
        env.json(&["runs", "list", "long"])[0]["state"] == "success"
    });
    let tis = env.json(&["tasks", "list", "long", &run_id]);
    let ti = &tis[0];
    assert_eq!(ti["try_number"], 2);
    let started = chrono::DateTime::parse_from_rfc3339(ti["start_date"].as_str().unwrap()).unwrap();
    let took = (started.with_timezone(&chrono::Utc) - killed_at).num_milliseconds() as f64 / 1000.0;
    assert!(took < 30.0, "second try started {took}s after the kill");
    let log1 = env.ok(&["tasks", "logs", "long", &run_id, "work", "--try", "1"]);
    assert!(log1.contains("stopped heartbeating"), "{log1}");
    let log2 = env.ok(&["tasks", "logs", "long", &run_id, "work", "--try", "2"]);
    assert!(log2.contains("second try"), "{log2}");
    // The orphaned first try (its scheduler was SIGKILLed) is ours to clean up.
    let _ = Command::new("pkill").args(["-f", "exec sleep 45"]).status();
    let _ = Command::new("pkill")
        .args(["-x", "-f", "sleep 45"])
        .status();
}

fn catchup_after_downtime_and_pause_unpause(env: Env) {
    // Five days of "downtime": catchup = true creates every missed interval,
    // catchup = false only the latest one.
    let start = (chrono::Utc::now() - chrono::Duration::days(5))
        .format("%Y-%m-%d")
        .to_string();
    for (id, catchup) in [("eager", true), ("lazy", false)] {
        env.dag(
            id,
            &format!(
                "dag_id = \"{id}\"\nschedule = \"@daily\"\nstart_date = {start}\ncatchup = {catchup}\n\
                 [[task]]\nid = \"a\"\nkind = \"noop\"\n"
            ),
        );
    }
    env.ok(&["dags", "pause", "lazy"]);
    let s = env.scheduler();
    env.eventually("five catch-up runs", || {
        let r = env.json(&["runs", "list", "eager"]);
        r.as_array()
            .unwrap()
            .iter()
            .filter(|x| x["state"] == "success")
            .count()
            == 5
    });
    let r = env.json(&["runs", "list", "eager"]);
    let mut dates: Vec<String> = r
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["logical_date"].as_str().unwrap()[..10].to_string())
        .collect();
    dates.sort();
    assert_eq!(dates[0], start, "from the start date on");
    assert!(
        env.json(&["runs", "list", "lazy"])
            .as_array()
            .unwrap()
            .is_empty(),
        "paused: no runs"
    );
    let list = env.json(&["dags", "list"]);
    let lazy = list["dags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["dag_id"] == "lazy")
        .unwrap()
        .clone();
    assert_eq!(lazy["is_paused"], true);
    env.ok(&["dags", "unpause", "lazy"]);
    env.eventually("the latest interval's run", || {
        env.json(&["runs", "list", "lazy"])
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["state"] == "success")
    });
    let r = env.json(&["runs", "list", "lazy"]);
    assert_eq!(
        r.as_array().unwrap().len(),
        1,
        "catchup = false: only the latest interval"
    );
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    assert_eq!(&r[0]["logical_date"].as_str().unwrap()[..10], yesterday);
    drop(s);
}
