//! `tributary sql` and `lake tables` through the real binary, over tables
//! the stream writer wrote (local folder and moto S3) and one an outside
//! writer (Python `deltalake`) wrote: answers match DuckDB's `delta_scan`
//! and Python `deltalake` computing the same thing, time travel reads the
//! older version, and bad SQL is refused with its place and a suggestion.

mod common;

use std::process::Command;
use std::time::Duration;

use common::lake::{Guard, Project, Row, duckdb, produce, s3_lake};
use common::{dev_broker, text};
use serde_json::{Value, json};

/// Runs `tributary sql -o json` and returns its rows as objects.
fn sql_rows(project: &Project, query: &str) -> Vec<Row> {
    let out = project.cmd(&["sql", query, "-o", "json"]).output().unwrap();
    assert!(
        out.status.success(),
        "sql {query:?} failed:\n{}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

/// The one value of a one-row, one-column answer.
fn scalar(project: &Project, query: &str) -> Value {
    let rows = sql_rows(project, query);
    assert_eq!(rows.len(), 1, "{query}: {rows:?}");
    assert_eq!(rows[0].len(), 1, "{query}: {rows:?}");
    rows[0].values().next().unwrap().clone()
}

fn sql_fails(project: &Project, query: &str) -> String {
    let out = project.cmd(&["sql", query]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{query:?} should fail: {}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

#[test]
fn queries_over_a_stream_table_match_duckdb_and_time_travel_reads_older_versions() {
    let broker = dev_broker("events", 3);
    let project = Project::landed(&broker.bootstrap, 300);
    let first: Value = serde_json::from_str(&text(
        &project
            .cmd(&["lake", "ls", "events", "-o", "json"])
            .output()
            .unwrap()
            .stdout,
    ))
    .unwrap();
    let v1 = first["version"].as_u64().unwrap();
    let between = chrono::Utc::now();
    // Commit timestamps have millisecond resolution: the next commits are
    // strictly later than `between`.
    std::thread::sleep(Duration::from_millis(5));
    produce(&broker.bootstrap, "events", 300, 450);
    project.catch_up();

    let table = project.table_path();
    let grouped = "SELECT nation, count(*) AS n, sum(id) AS total, min(id) AS first \
                   FROM {t} GROUP BY nation ORDER BY nation";
    let ours = sql_rows(&project, &grouped.replace("{t}", "events"));
    let theirs = duckdb(&table, grouped);
    assert_eq!(ours.len(), 5);
    assert_eq!(json!(ours), json!(theirs));

    let filtered = "SELECT count(*) AS n FROM {t} WHERE nation IN ('FR', 'DE') AND id % 7 = 3";
    assert_eq!(
        json!(sql_rows(&project, &filtered.replace("{t}", "events"))),
        json!(duckdb(&table, filtered))
    );
    let top = "SELECT nation, CAST(\"at\" AS DATE) AS day, count(*) AS n FROM {t} \
               GROUP BY 1, 2 ORDER BY n DESC, nation, day LIMIT 3";
    let ours = sql_rows(&project, &top.replace("{t}", "events"));
    let theirs = duckdb(&table, top);
    assert_eq!(ours.len(), 3);
    assert_eq!(ours, theirs);

    // Time travel, by version and by time.
    let at_v1 = sql_rows(
        &project,
        &format!("SELECT count(*) AS n, max(id) AS last FROM \"events@{v1}\""),
    );
    assert_eq!(json!(at_v1), json!([{"n": 300, "last": 299}]));
    let at_time = scalar(
        &project,
        &format!(
            "SELECT count(*) FROM \"events@{}\"",
            between.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ),
    );
    assert_eq!(at_time, json!(300));
    assert_eq!(scalar(&project, "SELECT count(*) FROM events"), json!(750));

    // The table output names the versions it read and bounds its rows.
    let out = project
        .cmd(&[
            "sql",
            "SELECT id FROM events ORDER BY id",
            "--max-rows",
            "4",
        ])
        .output()
        .unwrap();
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(shown.starts_with("id\n0\n1\n2\n3\n"), "{shown}");
    assert!(shown.contains("746 more rows"), "{shown}");
    assert!(shown.contains("(750 rows in "), "{shown}");
    let latest = sql_rows(&project, "SELECT 1 FROM events LIMIT 1");
    assert_eq!(latest.len(), 1);

    // CSV on stdout, Parquet to a file read back by pyarrow.
    let csv = text(
        &project
            .cmd(&[
                "sql",
                "SELECT id, nation FROM events WHERE id < 3 ORDER BY id",
                "-o",
                "csv",
            ])
            .output()
            .unwrap()
            .stdout,
    );
    assert_eq!(csv, "id,nation\n0,FR\n1,DE\n2,US\n");
    let parquet = project.dir.path().join("answer.parquet");
    let out = project
        .cmd(&[
            "sql",
            "SELECT * FROM events WHERE nation = 'BR'",
            "--out",
            parquet.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let read = Command::new("python3")
        .args([
            "-c",
            "import sys, pyarrow.parquet as pq; print(pq.read_table(sys.argv[1]).num_rows)",
            parquet.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(text(&read.stdout).trim(), "150", "{}", text(&read.stderr));

    // `lake tables` lists the table with its row count and its writer.
    let tables: Value = serde_json::from_str(&text(
        &project
            .cmd(&["lake", "tables", "-o", "json"])
            .output()
            .unwrap()
            .stdout,
    ))
    .unwrap();
    let events = tables
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "events")
        .unwrap_or_else(|| panic!("{tables:#}"));
    assert_eq!(events["rows"], 750);
    assert_eq!(events["stream"], "events");

    // --explain shows the plans and reads nothing.
    let explain = text(
        &project
            .cmd(&[
                "sql",
                "SELECT count(*) FROM events WHERE nation = 'FR'",
                "--explain",
            ])
            .output()
            .unwrap()
            .stdout,
    );
    assert!(
        explain.contains("logical_plan") && explain.contains("physical_plan"),
        "{explain}"
    );
}

#[test]
fn bad_sql_is_refused_with_its_place_and_a_suggestion() {
    let project = Project::new("127.0.0.1:9", "lake", "", "{ max_rows = 10 }");
    // A table an outside writer made is a lake table like any other.
    let path = project.dir.path().join("lake/people");
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, os, pyarrow as pa\nfrom deltalake import write_deltalake\n\
             write_deltalake(sys.argv[1], pa.table({'name': ['ann', 'bob'], 'age': [31, 42]}))\nos._exit(0)",
            path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        scalar(&project, "SELECT name FROM people WHERE age > 40"),
        json!("bob")
    );

    let e = sql_fails(&project, "SELECT name\nFROM people\nWHERE age >");
    assert!(
        e.contains("<query>:3:") && e.contains("syntax error"),
        "{e}"
    );
    let e = sql_fails(&project, "SELECT name FROM peple");
    assert!(
        e.contains("no table \"peple\"") && e.contains("did you mean \"people\"?"),
        "{e}"
    );
    let e = sql_fails(&project, "SELECT nmae FROM people");
    assert!(
        e.contains("<query>:1:8:") && e.contains("did you mean \"name\"?"),
        "{e}"
    );
    let e = sql_fails(&project, "SELECT name + 1 FROM people");
    assert!(
        e.contains("<query>:") && e.to_lowercase().contains("utf8"),
        "{e}"
    );
    let e = sql_fails(&project, "SELECT count(*) FROM \"people@7\"");
    assert!(e.contains("no version 7"), "{e}");
    let e = sql_fails(&project, "SELECT count(*) FROM \"people@yesterday\"");
    assert!(e.contains("RFC 3339"), "{e}");
    for write in [
        "INSERT INTO people VALUES ('cy', 1)",
        "CREATE TABLE x AS SELECT 1",
        "DELETE FROM people",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let e = sql_fails(&project, write);
        assert!(
            e.contains("is not allowed: queries only read the lake"),
            "{write}: {e}"
        );
    }
    // The refused writes changed nothing.
    assert_eq!(scalar(&project, "SELECT count(*) FROM people"), json!(2));

    // One query cannot take the process down: a memory limit and a timeout.
    let big_join = "SELECT count(*) FROM generate_series(1, 3000000) a \
                    JOIN generate_series(1, 3000000) b ON a.value = b.value";
    let out = project
        .cmd(&["sql", big_join, "--memory-limit", "4MiB"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = text(&out.stderr);
    assert!(e.contains("memory limit of 4.0 MiB"), "{e}");
    let out = project
        .cmd(&[
            "sql",
            "SELECT count(*) FROM generate_series(1, 1000000000000)",
            "--timeout",
            "1s",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = text(&out.stderr);
    assert!(e.contains("did not finish within 1s"), "{e}");
}

#[test]
fn the_lake_on_s3_is_queried_like_a_local_one() {
    let (lake, storage, endpoint) = s3_lake("sql");
    let broker = dev_broker("events", 2);
    let project = Project::new(
        &broker.bootstrap,
        &lake,
        &storage,
        "{ max_rows = 100, max_age = \"200ms\" }",
    );
    produce(&broker.bootstrap, "events", 0, 400);
    let mut w = Guard(project.writer(true));
    assert!(
        w.wait_for(Duration::from_secs(120))
            .is_some_and(|s| s.success()),
        "{}",
        project.writer_log()
    );
    let ours = sql_rows(
        &project,
        "SELECT nation, count(*) AS n FROM events GROUP BY nation ORDER BY nation",
    );
    // Python `deltalake` computes the same from the same S3 table.
    let script = r#"
import json, os, sys, collections
from deltalake import DeltaTable
opts = {"AWS_ENDPOINT_URL": sys.argv[2], "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
t = DeltaTable(sys.argv[1], storage_options=opts).to_pyarrow_table()
c = collections.Counter(t.column("nation").to_pylist())
print(json.dumps([{"nation": k, "n": c[k]} for k in sorted(c)]))
sys.stdout.flush()
os._exit(0)
"#;
    let out = Command::new("python3")
        .args(["-c", script, &format!("{lake}/events"), &endpoint])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json!(ours), theirs);
    let tables = text(&project.cmd(&["lake", "tables"]).output().unwrap().stdout);
    assert!(
        tables.contains("events") && tables.contains("400"),
        "{tables}"
    );
}
