//! The lake task kinds end to end: the real binary, a scheduler process, a
//! table the real stream writer wrote from the dev broker, and outside
//! readers (DuckDB `delta_scan`, Python `deltalake`) to judge the results.
//!
//! - a 30-day backfill of a DAG using `lake_sql` in every mode and
//!   `lake_check`, matching DuckDB's own computation; then new data for
//!   one day and a re-run of that day: only that day changes, and the
//!   append is not done twice;
//! - a scheduler SIGKILLed between an append's commit and the try's end:
//!   the next scheduler's retry does not append again;
//! - `lake_check` passing, failing and warning, with its quality table.

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::lake::{Guard, Project, duckdb, python_rows, s3_lake};
use common::{BrokerProcess, dev_broker, text};
use serde_json::Value;

const NATIONS: [&str; 5] = ["FR", "DE", "US", "BR", "NL"];

/// Event `i`: on October day `1 + i % 30` at hour `i % 24`, its nation
/// changing every 30 events (so each day sees every nation).
fn event(i: u64) -> (String, String) {
    let at = format!("2026-10-{:02}T{:02}:00:00Z", 1 + i % 30, i % 24);
    let v = format!(
        r#"{{"id": {i}, "nation": "{}", "at": "{at}"}}"#,
        NATIONS[((i / 30) % 5) as usize]
    );
    (i.to_string(), v)
}

fn produce_events(bootstrap: &str, ids: std::ops::Range<u64>) {
    testkit::kafka::produce_blocking(bootstrap, "events", ids.map(event), false);
}

/// A project whose `events` table holds `ids`, landed by the stream writer
/// from a dev broker of `partitions` (kept alive with the project).
fn landed(
    partitions: i32,
    ids: std::ops::Range<u64>,
    lake: &str,
    storage: &str,
    rotation: &str,
) -> (BrokerProcess, Project) {
    let broker = dev_broker("events", partitions);
    let project = Project::new(&broker.bootstrap, lake, storage, rotation);
    produce_events(&broker.bootstrap, ids);
    project.catch_up();
    (broker, project)
}

fn scheduler(project: &Project, failpoint: Option<&str>) -> Guard {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(project.dir.path().join("scheduler.log"))
        .unwrap();
    let mut c = project.cmd(&["scheduler", "--dag-refresh-secs", "1"]);
    if let Some(f) = failpoint {
        c.env("TRIBUTARY_FAILPOINT", f);
    }
    Guard(c.stdout(Stdio::null()).stderr(log).spawn().unwrap())
}

fn ok(project: &Project, args: &[&str]) -> String {
    let out = project.cmd(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed:\n{}\n{}\nscheduler log:\n{}",
        text(&out.stdout),
        text(&out.stderr),
        std::fs::read_to_string(project.dir.path().join("scheduler.log")).unwrap_or_default()
    );
    text(&out.stdout)
}

fn json(project: &Project, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&ok(project, &a)).unwrap()
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn table(project: &Project, name: &str) -> std::path::PathBuf {
    project.dir.path().join("lake").join(name)
}

/// (nation, day) → count, as DuckDB computes it from a table.
fn counts(project: &Project, name: &str, sql: &str) -> BTreeMap<(String, String), i64> {
    duckdb(&table(project, name), sql)
        .into_iter()
        .map(|r| {
            (
                (
                    r["nation"].as_str().unwrap().to_string(),
                    r["day"].as_str().unwrap().to_string(),
                ),
                r["n"].as_i64().unwrap(),
            )
        })
        .collect()
}

const DAILY: &str = r#"
dag_id = "daily"
schedule = "@daily"
start_date = 2026-10-01
catchup = false
[defaults]
retries = 3
retry_delay = 0

[[task]]
id = "landed"
kind = "lake_check"
table = "events"
where = "at >= {{ data_interval_start }} AND at < {{ data_interval_end }}"
[[task.expect]]
name = "the day's events landed"
assert = "count(*) > 0"
[[task.expect]]
row = "nation IN ('FR', 'DE', 'US', 'BR', 'NL')"

[[task]]
id = "by_nation"
kind = "lake_sql"
depends_on = ["landed"]
table = "events_daily"
mode = "interval"
interval_column = "day"
partition_by = ["day"]
sql = '''
SELECT nation, CAST(at AS DATE) AS day, count(*) AS n, max(id) AS max_id
FROM events
WHERE at >= {{ data_interval_start }} AND at < {{ data_interval_end }}
GROUP BY nation, CAST(at AS DATE)
'''

[[task]]
id = "latest"
kind = "lake_sql"
depends_on = ["landed"]
table = "events_merged"
mode = "merge"
unique_key = ["nation", "day"]
sql = '''
SELECT nation, CAST(at AS DATE) AS day, count(*) AS n
FROM events
WHERE at >= {{ data_interval_start }} AND at < {{ data_interval_end }}
GROUP BY nation, CAST(at AS DATE)
'''

[[task]]
id = "loads"
kind = "lake_sql"
depends_on = ["by_nation"]
table = "loads"
mode = "append"
sql = "SELECT {{ ds }} AS day, {{ run_id }} AS run_id, count(*) AS rows FROM events WHERE at >= {{ data_interval_start }} AND at < {{ data_interval_end }}"

[[task]]
id = "nations"
kind = "lake_sql"
depends_on = ["by_nation"]
table = "nations"
mode = "overwrite"
sql = "SELECT nation, sum(n) AS n FROM events_daily GROUP BY nation"
"#;

/// DuckDB's own count per nation and UTC day of `events` (`at` is a
/// keyword there).
const BY_DAY: &str = "SELECT nation, strftime(\"at\" AT TIME ZONE 'UTC', '%Y-%m-%d') AS day, count(*) AS n FROM {t} GROUP BY ALL";
const TABLE_BY_DAY: &str = "SELECT nation, CAST(day AS VARCHAR) AS day, n FROM {t}";

/// The files of `events_daily` per day partition, from its Delta state.
fn files_by_day(project: &Project) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in duckdb(
        &table(project, "events_daily"),
        "SELECT CAST(day AS VARCHAR) AS day, filename FROM delta_scan('{path}', filename = true) GROUP BY ALL",
    )
    .into_iter()
    .map(|r| r.into_iter().collect::<BTreeMap<_, _>>())
    {
        let t = std::path::Path::new(r["filename"].as_str().unwrap());
        out.entry(r["day"].as_str().unwrap().to_string())
            .or_default()
            .push(t.file_name().unwrap().to_string_lossy().into_owned());
    }
    out
}

#[test]
fn a_thirty_day_backfill_then_a_rerun_of_one_day_replaces_that_day_only() {
    let (broker, project) = landed(
        3,
        0..600,
        "lake",
        "",
        "{ max_rows = 200, max_age = \"200ms\" }",
    );
    std::fs::write(project.dir.path().join("dags/daily.toml"), DAILY).unwrap();
    ok(&project, &["dags", "validate"]);
    ok(&project, &["dags", "pause", "daily"]);
    let _s = scheduler(&project, None);
    let out = ok(
        &project,
        &[
            "backfill",
            "daily",
            "--from",
            "2026-10-01",
            "--to",
            "2026-10-30",
            "--max-active-runs",
            "4",
        ],
    );
    assert!(out.contains("completed: 30 done"), "{out}");

    // Each mode's table matches DuckDB's own computation over `events`.
    let expected = counts(&project, "events", BY_DAY);
    assert_eq!(expected.len(), 150, "5 nations × 30 days");
    let from_table = |name: &str| counts(&project, name, TABLE_BY_DAY);
    assert_eq!(from_table("events_daily"), expected);
    assert_eq!(from_table("events_merged"), expected);
    let loads = duckdb(
        &table(&project, "loads"),
        "SELECT count(*) AS n, sum(rows) AS s FROM {t}",
    );
    assert_eq!(
        (loads[0]["n"].as_i64(), loads[0]["s"].as_i64()),
        (Some(30), Some(600))
    );
    let nations = duckdb(
        &table(&project, "nations"),
        "SELECT count(*) AS n, sum(n) AS s FROM {t}",
    );
    assert_eq!(
        (nations[0]["n"].as_i64(), nations[0]["s"].as_f64()),
        (Some(5), Some(600.0))
    );
    // An outside reader of another kind agrees on the rows.
    // Python `deltalake` reads every table the tasks wrote, with the same rows.
    for (name, rows) in [
        ("events_daily", 150),
        ("events_merged", 150),
        ("loads", 30),
        ("nations", 5),
    ] {
        assert_eq!(python_rows(&table(&project, name)), rows, "{name}");
    }
    let quality = duckdb(
        &table(&project, "tributary_quality"),
        "SELECT count(*) AS n, count(*) FILTER (WHERE passed) AS passed FROM {t}",
    );
    assert_eq!(
        (quality[0]["n"].as_i64(), quality[0]["passed"].as_i64()),
        (Some(60), Some(60))
    );

    // New events for 2026-10-15 only, then that day re-run.
    let before = files_by_day(&project);
    // ids ≡ 14 (mod 30): all on the 15th.
    let extra: Vec<u64> = (600..1200).filter(|i| i % 30 == 14).take(20).collect();
    testkit::kafka::produce_blocking(
        &broker.bootstrap,
        "events",
        extra.iter().map(|&i| event(i)),
        false,
    );
    project.catch_up();
    let out = ok(
        &project,
        &[
            "backfill",
            "daily",
            "--from",
            "2026-10-15",
            "--to",
            "2026-10-15",
            "--reprocess",
            "all",
        ],
    );
    assert!(out.contains("completed: 1 done"), "{out}");
    let expected = counts(&project, "events", BY_DAY);
    assert_eq!(from_table("events_daily"), expected);
    assert_eq!(from_table("events_merged"), expected);
    let after = files_by_day(&project);
    for (day, files) in &before {
        if day == "2026-10-15" {
            assert_ne!(after[day], *files, "the re-run day was rewritten");
        } else {
            assert_eq!(after[day], *files, "{day} was not touched");
        }
    }
    // The append ran once per logical date: the re-run found its own.
    let loads = duckdb(&table(&project, "loads"), "SELECT count(*) AS n FROM {t}");
    assert_eq!(loads[0]["n"].as_i64(), Some(30));
    let runs = json(&project, &["runs", "list", "daily", "--limit", "100"]);
    let rerun = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["logical_date"]
                .as_str()
                .is_some_and(|d| d.starts_with("2026-10-15"))
        })
        .unwrap();
    let log = ok(
        &project,
        &[
            "tasks",
            "logs",
            "daily",
            rerun["run_id"].as_str().unwrap(),
            "loads",
        ],
    );
    assert!(log.contains("already holds this run's append"), "{log}");
}

#[test]
fn an_append_committed_before_a_kill_is_not_repeated_by_the_retry() {
    let (_broker, project) = landed(
        1,
        0..60,
        "lake",
        "",
        "{ max_rows = 100, max_age = \"200ms\" }",
    );
    std::fs::write(
        project.dir.path().join("dags/once.toml"),
        "dag_id = \"once\"\nschedule = \"@daily\"\nstart_date = 2026-10-01\ncatchup = false\n\
         [[task]]\nid = \"load\"\nkind = \"lake_sql\"\nretries = 1\nretry_delay = 0\n\
         table = \"copied\"\nmode = \"append\"\n\
         sql = \"SELECT id, nation FROM events WHERE at >= {{ data_interval_start }} AND at < {{ data_interval_end }}\"\n",
    )
    .unwrap();
    ok(&project, &["dags", "pause", "once"]);
    let mut first = scheduler(&project, Some("lake_sql:after_commit"));
    let out = ok(
        &project,
        &["trigger", "once", "--logical-date", "2026-10-05T00:00:00Z"],
    );
    assert!(out.contains("once"), "{out}");
    // The scheduler kills itself right after the commit.
    let status = first
        .wait_for(Duration::from_secs(120))
        .expect("the failpoint fired");
    assert!(!status.success());
    let copied = || python_rows(&table(&project, "copied"));
    let landed = copied();
    assert!(landed > 0, "the commit landed before the kill");
    let _second = scheduler(&project, None);
    eventually("the run to succeed", || {
        json(&project, &["runs", "list", "once"])[0]["state"] == "success"
    });
    assert_eq!(copied(), landed, "the retry did not append again");
    let run_id = json(&project, &["runs", "list", "once"])[0]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let log = ok(&project, &["tasks", "logs", "once", &run_id, "load"]);
    assert!(log.contains("already holds this run's append"), "{log}");
}

#[test]
fn checks_pass_fail_and_warn_and_record_their_results() {
    let (_broker, project) = landed(
        1,
        0..60,
        "lake",
        "",
        "{ max_rows = 100, max_age = \"200ms\" }",
    );
    let check = |id: &str, expect: &str| {
        format!(
            "dag_id = \"{id}\"\nschedule = \"@daily\"\nstart_date = 2026-10-01\ncatchup = false\n\
             [[task]]\nid = \"check\"\nkind = \"lake_check\"\ntable = \"events\"\nresults_table = \"quality\"\n\
             where = \"at >= {{{{ data_interval_start }}}} AND at < {{{{ data_interval_end }}}}\"\n{expect}"
        )
    };
    let dags = project.dir.path().join("dags");
    std::fs::write(
        dags.join("passes.toml"),
        check("passes", "[[task.expect]]\nassert = \"count(*) = 2\"\n[[task.expect]]\nfresh = \"at\"\nwithin = \"1d\"\n"),
    )
    .unwrap();
    std::fs::write(
        dags.join("fails.toml"),
        check(
            "fails",
            "[[task.expect]]\nname = \"only France\"\nrow = \"nation = 'FR'\"\n",
        ),
    )
    .unwrap();
    std::fs::write(
        dags.join("warns.toml"),
        check(
            "warns",
            "on_failure = \"warn\"\n[[task.expect]]\nassert = \"count(*) > 100\"\n",
        ),
    )
    .unwrap();
    for d in ["passes", "fails", "warns"] {
        ok(&project, &["dags", "pause", d]);
    }
    let _s = scheduler(&project, None);
    for d in ["passes", "fails", "warns"] {
        ok(
            &project,
            &["trigger", d, "--logical-date", "2026-10-05T00:00:00Z"],
        );
    }
    let state = |d: &str| {
        json(&project, &["runs", "list", d])[0]["state"]
            .as_str()
            .unwrap()
            .to_string()
    };
    eventually("the three runs to end", || {
        ["passes", "fails", "warns"]
            .iter()
            .all(|d| state(d) != "running" && state(d) != "queued")
    });
    assert_eq!(
        (state("passes"), state("fails"), state("warns")),
        ("success".into(), "failed".into(), "success".into())
    );
    let log = |d: &str| {
        let run = json(&project, &["runs", "list", d])[0]["run_id"]
            .as_str()
            .unwrap()
            .to_string();
        ok(&project, &["tasks", "logs", d, &run, "check"])
    };
    let passes = log("passes");
    assert!(passes.contains("PASS  count(*) = 2"), "{passes}");
    assert!(passes.contains("PASS  at within 1day"), "{passes}");
    let fails = log("fails");
    // Day 5 of the 60 events: ids 4 (FR) and 34 (DE).
    assert!(
        fails.contains("FAIL  only France — 1 of 2 rows fail nation = 'FR'"),
        "{fails}"
    );
    assert!(fails.contains("e.g. id="), "{fails}");
    let warns = log("warns");
    assert!(warns.contains("WARN  count(*) > 100"), "{warns}");
    let q = duckdb(
        &table(&project, "quality"),
        "SELECT dag_id, passed, severity FROM {t} ORDER BY dag_id, expectation",
    );
    let got: Vec<(String, bool, String)> = q
        .iter()
        .map(|r| {
            (
                r["dag_id"].as_str().unwrap().into(),
                r["passed"].as_bool().unwrap(),
                r["severity"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("fails".into(), false, "fail".into()),
            ("passes".into(), true, "fail".into()),
            ("passes".into(), true, "fail".into()),
            ("warns".into(), false, "warn".into()),
        ]
    );
    // python deltalake reads the quality table too.
    assert_eq!(python_rows(&table(&project, "quality")), 4);
}

/// The example DAG `dags/users_daily.toml` in `standalone`: the day's
/// users fetched into the dev broker and landed by the stream writer, then
/// a backfill of that day; the batch table matches DuckDB's own
/// aggregation of the users table, and re-running the day changes nothing.
/// (The copy starts earlier and does not catch up, so the test does not
/// depend on today's date.)
#[test]
fn the_users_daily_example_runs_in_standalone() {
    let env = common::sqlite_env();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dags/users_daily.toml"
    ))
    .unwrap();
    env.dag(
        "users_daily",
        &example
            .replace("start_date = 2026-12-01", "start_date = 2026-11-01")
            .replace("catchup = true", "catchup = false"),
    );
    env.dag(
        "users_fast",
        "dag_id = \"users_fast\"\n[[task]]\nid = \"fetch\"\nkind = \"random_user_to_kafka\"\nresults = 40\nrequests = 3\nseed = \"daily\"\n",
    );
    env.ok(&["dags", "pause", "users_daily"]);
    let (child, _banner) = env.standalone("off");
    env.ok(&[
        "trigger",
        "users_fast",
        "--logical-date",
        "2026-11-20T00:00:00Z",
        "--wait",
        "--timeout",
        "120",
    ]);
    let users = env.path("lake/users");
    env.eventually("the 120 users to land", || {
        let o = env.run(&["lake", "ls", "users", "-o", "json"]);
        o.status.success()
            && serde_json::from_slice::<Value>(&o.stdout).unwrap()["rows"].as_u64() == Some(120)
    });
    let backfill = [
        "backfill",
        "users_daily",
        "--from",
        "2026-11-20",
        "--to",
        "2026-11-20",
    ];
    let out = env.ok(&backfill);
    assert!(out.contains("completed: 1 done"), "{out}");

    let daily = env.path("lake/users_by_nation_daily");
    let ours = "SELECT CAST(day AS VARCHAR) AS day, nation, users, round(avg_latitude, 9) AS lat, \
                round(avg_longitude, 9) AS lon, cities FROM {t} ORDER BY nation";
    let theirs = "SELECT strftime(logical_date AT TIME ZONE 'UTC', '%Y-%m-%d') AS day, nation, count(*) AS users, \
                  round(avg(latitude), 9) AS lat, round(avg(longitude), 9) AS lon, count(DISTINCT city) AS cities \
                  FROM {t} GROUP BY ALL ORDER BY nation";
    let got = duckdb(&daily, ours);
    assert!(!got.is_empty());
    assert_eq!(got, duckdb(&users, theirs));
    assert_eq!(python_rows(&daily), got.len() as u64);

    let out = env.ok(&[&backfill[..], &["--reprocess", "all"]].concat());
    assert!(out.contains("completed: 1 done"), "{out}");
    assert_eq!(
        duckdb(&daily, ours),
        got,
        "re-running the day changes nothing"
    );
    common::interrupt(child);
}

/// The same task kinds on a lake in moto S3: a three-day backfill and a
/// re-run of its middle day, judged by Python `deltalake` reading both the
/// stream table and the tables the tasks wrote from S3.
#[test]
fn lake_tasks_write_tables_on_s3_that_outside_readers_agree_with() {
    let (lake, storage, endpoint) = s3_lake("tasks");
    let (_broker, project) = landed(
        2,
        0..300,
        &lake,
        &storage,
        "{ max_rows = 100, max_age = \"200ms\" }",
    );
    std::fs::write(project.dir.path().join("dags/daily.toml"), DAILY).unwrap();
    ok(&project, &["dags", "pause", "daily"]);
    let _s = scheduler(&project, None);
    let range = ["--from", "2026-10-01", "--to", "2026-10-03"];
    let out = ok(&project, &[&["backfill", "daily"][..], &range].concat());
    assert!(out.contains("completed: 3 done"), "{out}");
    let out = ok(
        &project,
        &[
            "backfill",
            "daily",
            "--from",
            "2026-10-02",
            "--to",
            "2026-10-02",
            "--reprocess",
            "all",
        ],
    );
    assert!(out.contains("completed: 1 done"), "{out}");

    let script = r#"
import json, os, sys, collections
from deltalake import DeltaTable
opts = {"AWS_ENDPOINT_URL": sys.argv[2], "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
read = lambda name: DeltaTable(f"{sys.argv[1]}/{name}", storage_options=opts).to_pyarrow_table().to_pylist()
events = collections.Counter((r["nation"], r["at"].strftime("%Y-%m-%d")) for r in read("events")
                             if r["at"].strftime("%Y-%m-%d") <= "2026-10-03")
daily = {(r["nation"], str(r["day"])): r["n"] for r in read("events_daily")}
merged = {(r["nation"], str(r["day"])): r["n"] for r in read("events_merged")}
print(json.dumps({"events": sorted(events.items()), "daily": sorted(daily.items()),
                  "merged": sorted(merged.items()), "loads": len(read("loads")),
                  "quality": len(read("tributary_quality"))}))
sys.stdout.flush()
os._exit(0)
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, &lake, &endpoint])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["events"].as_array().unwrap().len(),
        15,
        "5 nations × 3 days: {v}"
    );
    assert_eq!(v["daily"], v["events"]);
    assert_eq!(v["merged"], v["events"]);
    assert_eq!(
        v["loads"], 3,
        "one append per day, the re-run's found its own"
    );
    assert_eq!(v["quality"], 8, "two expectations per try, four tries");
}

/// `lake_maintenance` on a stream table of many small files: fewer files,
/// a checkpoint in the log, the compacted-away files deleted, and every row
/// still there for an outside reader.
#[test]
fn maintenance_compacts_checkpoints_and_vacuums_a_stream_table() {
    let (_broker, project) = landed(
        2,
        0..200,
        "lake",
        "",
        "{ max_rows = 10, max_age = \"200ms\" }",
    );
    let parquet_files = || {
        walk(&table(&project, "events"))
            .into_iter()
            .filter(|p| {
                p.extension().is_some_and(|e| e == "parquet")
                    && !p.to_string_lossy().contains("_delta_log")
            })
            .count()
    };
    let active = || {
        duckdb(
            &table(&project, "events"),
            "SELECT count(DISTINCT filename) AS n, count(*) AS rows FROM delta_scan('{path}', filename = true)",
        )
    };
    let before = active();
    assert_eq!(before[0]["rows"].as_i64(), Some(200));
    let files_before = before[0]["n"].as_i64().unwrap();
    std::fs::write(
        project.dir.path().join("dags/tidy.toml"),
        "dag_id = \"tidy\"\n[[task]]\nid = \"tidy\"\nkind = \"lake_maintenance\"\ntable = \"events\"\n\
         zorder_by = [\"id\"]\nretain = \"0s\"\n",
    )
    .unwrap();
    let _s = scheduler(&project, None);
    let out = ok(&project, &["trigger", "tidy", "--wait", "--timeout", "120"]);
    let run_id = out
        .split_whitespace()
        .find(|w| w.starts_with("manual__"))
        .unwrap()
        .to_string();
    let log = ok(&project, &["tasks", "logs", "tidy", &run_id, "tidy"]);
    assert!(log.contains("Z-ordered by id"), "{log}");
    let after = active();
    assert_eq!(after[0]["rows"].as_i64(), Some(200), "no row lost");
    let files_after = after[0]["n"].as_i64().unwrap();
    assert!(
        files_after < files_before,
        "{files_before} → {files_after} files\n{log}"
    );
    assert_eq!(
        parquet_files() as i64,
        files_after,
        "only the table's files are left\n{log}"
    );
    let checkpoints = walk(&table(&project, "events").join("_delta_log"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".checkpoint.parquet"))
        .count();
    assert!(checkpoints >= 1, "{log}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
