//! Continuous transforms end to end: the real binary, the `events` table
//! the real stream writer lands from the dev broker, a `nations` reference
//! table written by an outside writer (Python `deltalake`), and DuckDB's
//! `delta_scan` as the judge of what the transform's table holds.
//!
//! - a transform SIGKILLed 20 times at scattered moments while its source
//!   grows, then caught up: its table equals the SQL over the final source,
//!   no row twice;
//! - a reference table that changes: each commit records the version it
//!   read, and rows take the reference values of their commit;
//! - bad declarations: every problem at its `file:line:col`;
//! - the same on S3 (moto).

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::lake::{Guard, Project, duckdb, produce, python_count_s3, python_write, s3_lake};
use common::{dev_broker, text};
use serde_json::{Value, json};

const TRANSFORM: &str = r#"
[[transform]]
name = "enriched"
source = "events"
sql = """
SELECT e.id, e.nation, n.region, e.at, e.date
FROM events e JOIN nations n ON e.nation = n.code
WHERE e.id % 3 <> 0
"""
table = "events_enriched"
partition_by = ["region"]
trigger = "100ms"
max_source_versions = 3
"#;

/// The reference table: NL has no row, so its events are dropped by the join.
fn nations(fr_region: &str) -> Value {
    json!([
        {"code": "FR", "region": fr_region},
        {"code": "DE", "region": "Europe"},
        {"code": "US", "region": "Americas"},
        {"code": "BR", "region": "Americas"},
    ])
}

fn status(project: &Project) -> Value {
    let out = project.ok(&["transform", "list", "-o", "json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

/// What the transform's table must hold, computed by DuckDB from the
/// source and reference tables: rows per region.
const EXPECTED: &str = "SELECT n.region, count(*) AS rows FROM delta_scan('{path}/events') e \
     JOIN delta_scan('{path}/nations') n ON e.nation = n.code WHERE e.id % 3 <> 0 \
     GROUP BY n.region ORDER BY n.region";
const GOT: &str = "SELECT region, count(*) AS rows FROM delta_scan('{path}/events_enriched') \
     GROUP BY region ORDER BY region";
const DUPLICATES: &str =
    "SELECT count(*) - count(DISTINCT id) AS twice FROM delta_scan('{path}/events_enriched')";

#[test]
fn a_transform_killed_20_times_while_its_source_grows_holds_every_row_once() {
    let broker = dev_broker("events", 2);
    let project = Project::new(&broker.bootstrap, "lake", "", "{ max_age = \"200ms\" }");
    project.add_config(TRANSFORM);
    let lake = project.dir.path().join("lake");
    python_write(&lake.join("nations"), &nations("Europe"), "overwrite");
    let mut writer = Guard(project.writer(false));
    let log = project.dir.path().join("transform.log");
    let mut ids = 0u64;
    for round in 0..20u64 {
        produce(&broker.bootstrap, "events", ids, 40);
        ids += 40;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut t = Guard(
            project
                .cmd(&["transform", "run", "enriched", "--metrics-bind", "off"])
                .env("TRIBUTARY_LOG", "info,lake=debug")
                .stdout(Stdio::null())
                .stderr(out)
                .spawn()
                .unwrap(),
        );
        // Chaos: the kill lands at scattered moments of the transform's
        // life (starting, planning, writing files, committing, idle).
        std::thread::sleep(Duration::from_millis(150 + (round * 137) % 900));
        t.0.kill().unwrap();
        t.0.wait().unwrap();
    }
    let moved = status(&project);
    assert!(
        moved["checkpoint"].is_u64(),
        "no kill round let the transform commit: {moved:#}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // Everything produced lands, then the transform catches up.
    let _ = writer.0.kill();
    let _ = writer.0.wait();
    project.catch_up();
    project.catch_up_transform("enriched");

    let want = duckdb(&lake, EXPECTED);
    let got = duckdb(&lake, GOT);
    assert_eq!(
        got,
        want,
        "transform log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let total: u64 = got.iter().map(|r| r["rows"].as_u64().unwrap()).sum();
    // ids 0..800, minus multiples of 3, minus NL (id % 5 == 4).
    let expected = (0..ids).filter(|i| i % 3 != 0 && i % 5 != 4).count() as u64;
    assert_eq!(total, expected);
    assert_eq!(duckdb(&lake, DUPLICATES)[0]["twice"], json!(0));
    let done = status(&project);
    assert_eq!(done["behind"], json!(0), "{done:#}");
}

#[test]
fn each_commit_reads_the_reference_table_at_the_version_it_records() {
    let broker = dev_broker("events", 1);
    let project = Project::new(&broker.bootstrap, "lake", "", "{ max_age = \"200ms\" }");
    project.add_config(TRANSFORM);
    let lake = project.dir.path().join("lake");
    let v0 = python_write(&lake.join("nations"), &nations("Europe"), "overwrite");
    produce(&broker.bootstrap, "events", 0, 50);
    project.catch_up();
    project.catch_up_transform("enriched");
    assert_eq!(status(&project)["references"]["nations"], json!(v0));

    let v1 = python_write(
        &lake.join("nations"),
        &nations("Western Europe"),
        "overwrite",
    );
    assert!(v1 > v0);
    produce(&broker.bootstrap, "events", 50, 50);
    project.catch_up();
    project.catch_up_transform("enriched");
    assert_eq!(status(&project)["references"]["nations"], json!(v1));

    // FR rows (id % 5 == 0, not multiples of 3) before the change keep the
    // region their commit read; later ones take the new one.
    let regions = duckdb(
        &lake,
        "SELECT id >= 50 AS later, region, count(*) AS rows FROM delta_scan('{path}/events_enriched') \
         WHERE nation = 'FR' GROUP BY ALL ORDER BY ALL",
    );
    let fr = |from: u64, to: u64| (from..to).filter(|i| i % 5 == 0 && i % 3 != 0).count() as u64;
    assert_eq!(
        regions,
        vec![
            json!({"later": false, "region": "Europe", "rows": fr(0, 50)})
                .as_object()
                .unwrap()
                .clone(),
            json!({"later": true, "region": "Western Europe", "rows": fr(50, 100)})
                .as_object()
                .unwrap()
                .clone(),
        ]
    );
}

#[test]
fn bad_transforms_are_reported_at_file_line_col_before_anything_runs() {
    // No broker: checking needs only the declarations and the lake.
    let project = Project::new("127.0.0.1:9", "lake", "", "{ max_age = \"1s\" }");
    let lake = project.dir.path().join("lake");
    python_write(&lake.join("nations"), &nations("Europe"), "overwrite");
    project.add_config(
        r#"
[[transform]]
name = "typo_column"
source = "events"
sql = "SELECT id, natoin FROM events"
table = "t1"

[[transform]]
name = "typo_table"
source = "events"
sql = """
SELECT e.id FROM events e
JOIN nation n ON e.nation = n.code
"""
table = "t2"

[[transform]]
name = "counts"
source = "events"
sql = "SELECT nation, count(*) AS n FROM events GROUP BY nation"
table = "t3"

[[transform]]
name = "bad_partition"
source = "events"
sql = "SELECT id, nation FROM events"
table = "t4"
partition_by = ["region"]

[[transform]]
name = "text_window"
source = "events"
sql = """
SELECT window_start, count(*) AS n
FROM TUMBLE(events, nation, INTERVAL '5 minutes')
GROUP BY window_start
"""
table = "t5"

[[transform]]
name = "bad_key"
source = "events"
sql = "SELECT id, nation FROM events"
table = "t6"
sink = { topic = "t6", key = "user_id" }
"#,
    );
    let out = project.cmd(&["transform", "check"]).output().unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    let cfg = project.dir.path().join("tributary.toml");
    let file = cfg.display().to_string();
    let line_of = |needle: &str| {
        std::fs::read_to_string(&cfg)
            .unwrap()
            .lines()
            .position(|l| l.contains(needle))
            .unwrap()
            + 1
    };
    let l = line_of("natoin");
    assert!(
        err.contains(&format!("{file}:{l}:"))
            && err.contains("typo_column")
            && err.contains("natoin"),
        "{err}"
    );
    let l = line_of("JOIN nation n");
    assert!(
        err.contains(&format!("{file}:{l}:6: transform \"typo_table\": sql: no table \"nation\" (did you mean \"nations\"?)")),
        "{err}"
    );
    assert!(
        err.contains("transform \"counts\": sql: an aggregate"),
        "{err}"
    );
    let l = line_of("partition_by = [\"region\"]");
    assert!(
        err.contains(&format!("{file}:{l}:17: transform \"bad_partition\": partition_by column \"region\" is not a column of the answer")),
        "{err}"
    );
    let l = line_of("FROM TUMBLE(events, nation");
    assert!(
        err.contains(&format!("{file}:{l}:6: transform \"text_window\": sql: the window's time column \"nation\" is Utf8, not a timestamp")),
        "{err}"
    );
    assert!(
        err.contains("transform \"bad_key\": sql: the sink's key \"user_id\" is not a column of the answer (columns: id, nation)"),
        "{err}"
    );
    // `transform run` refuses to start on the same problems.
    let out = project
        .cmd(&[
            "transform",
            "run",
            "typo_column",
            "--until-caught-up",
            "--metrics-bind",
            "off",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success() && text(&out.stderr).contains("natoin"));
}

#[test]
fn a_transform_over_s3_catches_up_exactly_once() {
    let (url, storage, endpoint) = s3_lake("transform");
    let broker = dev_broker("events", 2);
    let project = Project::new(&broker.bootstrap, &url, &storage, "{ max_age = \"200ms\" }");
    project.add_config(&TRANSFORM.replace(
        "JOIN nations n ON e.nation = n.code",
        "CROSS JOIN (SELECT 'all' AS region) n",
    ));
    produce(&broker.bootstrap, "events", 0, 120);
    project.catch_up();
    project.catch_up_transform("enriched");
    produce(&broker.bootstrap, "events", 120, 60);
    project.catch_up();
    let first = status(&project);
    project.catch_up_transform("enriched");
    let done = status(&project);
    assert!(
        done["checkpoint"].as_u64() > first["checkpoint"].as_u64(),
        "{done:#}"
    );
    let answer = project.ok(&[
        "sql",
        "-o",
        "json",
        "SELECT count(*) AS n, count(DISTINCT id) AS d FROM events_enriched",
    ]);
    let expected = (0..180u64).filter(|i| i % 3 != 0).count();
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v, json!([{"n": expected, "d": expected}]), "{answer}");
    // An outside reader sees the same table on S3.
    let table = format!("{url}/events_enriched");
    let rows = python_count_s3(&table, &endpoint);
    assert_eq!(rows, expected as u64);
}
