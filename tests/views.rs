//! Lambda views end to end: the real binary, the `events` table the real
//! stream writer lands from the dev broker, and DuckDB's `delta_scan` as
//! the independent judge.
//!
//! - `live` equals the view's SQL over the whole source at every moment:
//!   before the first refresh, right after one, after more rows landed,
//!   after the source was compacted (the speed layer is keyed on offsets,
//!   so rewritten files change nothing), while a refresh is running, and
//!   after another writer deleted rows the batch counted (live recomputes
//!   and says why until the next refresh);
//! - `batch` and `speed` split the rows at the offsets the batch recorded;
//! - a view that cannot be merged, or reads a column that does not exist,
//!   is refused at its `file:line:col`; so is a `lake_view` task naming a
//!   view that is not declared.

mod common;

use common::lake::{Guard, Project, duckdb, produce, python_count_s3, python_delete, s3_lake};
use common::{dev_broker, text};
use serde_json::Value;

const VIEW: &str = r#"
[[view]]
name = "by_nation"
source = "events"
sql = """
SELECT nation, count(*) AS n, sum(id) AS ids, avg(id) AS mean_id,
       min(at) AS first_at, max(id) AS top
FROM events
WHERE id % 7 <> 3
GROUP BY nation
"""
"#;

/// The view's SQL as DuckDB runs it over the table's files.
const JUDGE: &str = "SELECT nation, count(*) AS n, sum(id) AS ids, avg(id) AS mean_id, max(id) AS top \
     FROM delta_scan('{path}/events') WHERE id % 7 <> 3 AND {where} GROUP BY nation ORDER BY nation";

fn rows(project: &Project, sql: &str) -> Vec<Value> {
    let out = project.ok(&["sql", "-o", "json", sql]);
    serde_json::from_str::<Value>(&out)
        .unwrap_or_else(|e| panic!("{e}: {out}"))
        .as_array()
        .unwrap()
        .clone()
}

/// Rows equal column by column; numbers within a relative 1e-9 (an average
/// served as sum / count may differ from a running average in the last
/// bits).
fn assert_same(got: &[Value], want: &[Value], columns: &[&str], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:#?}\nwant {want:#?}");
    for (g, w) in got.iter().zip(want) {
        for c in columns {
            let (a, b) = (&g[*c], &w[*c]);
            let same = match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
                _ => a == b,
            };
            assert!(same, "{what}: column {c}: {a} vs {b}\n{g:#}\nwant {w:#}");
        }
    }
}

/// The view's SQL over the whole source, by our own engine.
const WHOLE: &str = "SELECT nation, count(*) AS n, sum(id) AS ids, avg(id) AS mean_id, min(at) AS first_at, \
     max(id) AS top FROM events WHERE id % 7 <> 3 GROUP BY nation ORDER BY nation";

const ALL: [&str; 6] = ["nation", "n", "ids", "mean_id", "first_at", "top"];
const NUMERIC: [&str; 5] = ["nation", "n", "ids", "mean_id", "top"];

/// `live` against the same SQL over the whole source (our engine) and
/// against DuckDB; and `live` as a running server answers it (one engine
/// across every moment, which keeps the speed rows' partials between
/// queries) against the same. What the server's live is made of.
fn live_is_exact(project: &Project, server: &str, moment: &str) -> String {
    let lake = project.dir.path().join("lake");
    let live = rows(project, "SELECT * FROM live.by_nation ORDER BY nation");
    let whole = rows(project, WHOLE);
    assert_same(
        &live,
        &whole,
        &ALL,
        &format!("{moment}: live vs the SQL over the source"),
    );
    let (served, made_of, tables) =
        Project::api_sql(server, "SELECT * FROM live.by_nation ORDER BY nation");
    // The answer names every table it read, the source too (also when
    // its rows come in as kept partials).
    assert!(tables["events"].is_u64(), "{moment}: {tables}");
    assert_same(
        &served,
        &whole,
        &ALL,
        &format!("{moment}: live from a running server vs the SQL over the source"),
    );
    let judge: Vec<Value> = duckdb(&lake, &JUDGE.replace("{where}", "true"))
        .into_iter()
        .map(Value::Object)
        .collect();
    assert_same(
        &live,
        &judge,
        &NUMERIC,
        &format!("{moment}: live vs DuckDB"),
    );
    made_of.join("\n")
}

#[test]
fn live_equals_the_view_over_the_whole_source_at_every_moment() {
    let broker = dev_broker("events", 2);
    let project = Project::new(&broker.bootstrap, "lake", "", "{ max_age = \"200ms\" }");
    project.add_config(VIEW);
    produce(&broker.bootstrap, "events", 0, 120);
    project.catch_up();
    let (_web, server) = project.web();

    // Before the first refresh live reads the whole source, and says so.
    live_is_exact(&project, &server, "before a refresh");
    let out = project.ok(&["sql", "SELECT count(*) AS groups FROM live.by_nation"]);
    assert!(out.contains("no batch yet"), "{out}");
    let err = project
        .cmd(&["sql", "SELECT * FROM batch.by_nation"])
        .output()
        .unwrap();
    assert!(!err.status.success());
    assert!(
        text(&err.stderr).contains("no batch yet"),
        "{}",
        text(&err.stderr)
    );

    // A refresh records the offsets its batch covers.
    let refreshed = project.ok(&["view", "refresh", "by_nation"]);
    assert!(
        refreshed.contains("events/0 ≤") && refreshed.contains("events/1 ≤"),
        "{refreshed}"
    );
    let said = live_is_exact(&project, &server, "right after a refresh");
    assert!(said.contains("the 0 rows of events@"), "{said}");
    let list: Value = serde_json::from_str(&project.ok(&["view", "list", "-o", "json"])).unwrap();
    assert_eq!(list[0]["name"], "by_nation");
    assert_eq!(
        list[0]["batch_covers_version"], list[0]["source_version"],
        "{list:#}"
    );

    // More rows land: they are the speed layer, live merges them. The
    // server folds the partials of the new commits' files into the ones it
    // kept from the last query, and says so.
    produce(&broker.bootstrap, "events", 120, 50);
    project.catch_up();
    let said = live_is_exact(&project, &server, "after more rows landed");
    assert!(said.contains("partials kept from events@"), "{said}");
    produce(&broker.bootstrap, "events", 170, 40);
    project.catch_up();
    let said = live_is_exact(&project, &server, "after more rows landed again");
    assert!(said.contains("the 90 rows of events@"), "{said}");
    let lake = project.dir.path().join("lake");
    let batch = rows(&project, "SELECT * FROM batch.by_nation ORDER BY nation");
    let old: Vec<Value> = duckdb(&lake, &JUDGE.replace("{where}", "id < 120"))
        .into_iter()
        .map(Value::Object)
        .collect();
    assert_same(&batch, &old, &NUMERIC, "batch = the rows it covered");
    let speed = rows(&project, "SELECT * FROM speed.by_nation ORDER BY nation");
    let new: Vec<Value> = duckdb(&lake, &JUDGE.replace("{where}", "id >= 120"))
        .into_iter()
        .map(Value::Object)
        .collect();
    assert_same(&speed, &new, &NUMERIC, "speed = the rows since");
    let said = project.ok(&["sql", "SELECT * FROM live.by_nation"]);
    assert!(
        said.contains("live.by_nation = batch by_nation_batch v")
            && said.contains("past that mark"),
        "{said}"
    );

    // Compaction rewrites the source's files: the speed layer is keyed on
    // offsets, not on files or time, so nothing is counted twice.
    project.ok(&["lake", "optimize", "events"]);
    let said = live_is_exact(&project, &server, "after the source was compacted");
    assert!(
        !said.contains("partials kept"),
        "a compaction recomputes: {said}"
    );

    // Readers during a refresh see the old batch or the new one, whole.
    let mut refresh = Guard(
        project
            .cmd(&["view", "refresh", "by_nation"])
            .spawn()
            .unwrap(),
    );
    for i in 0..3 {
        live_is_exact(&project, &server, &format!("while a refresh runs ({i})"));
    }
    assert!(refresh.0.wait().unwrap().success());
    live_is_exact(&project, &server, "after the second refresh");
    let speed = rows(&project, "SELECT * FROM speed.by_nation");
    assert!(
        speed.is_empty(),
        "nothing arrived since the refresh: {speed:#?}"
    );

    // Another writer deletes rows the batch counted: batch + speed would
    // count them still, so live recomputes over the whole source and says
    // why until the next refresh.
    produce(&broker.bootstrap, "events", 210, 30);
    project.catch_up();
    let deleted = python_delete(&lake.join("events"), "id % 5 = 0");
    let said = live_is_exact(&project, &server, "after another writer deleted rows");
    assert!(said.contains("removed rows after the batch"), "{said}");
    let said = project.ok(&["sql", "SELECT * FROM live.by_nation"]);
    assert!(
        said.contains("the view over all of events")
            && said.contains(&format!("events@{deleted} removed rows after the batch")),
        "{said}"
    );
    project.ok(&["view", "refresh", "by_nation"]);
    live_is_exact(
        &project,
        &server,
        "after a refresh that followed the delete",
    );
    let said = project.ok(&["sql", "SELECT * FROM live.by_nation"]);
    assert!(said.contains("past that mark"), "{said}");
}

#[test]
fn views_that_cannot_be_merged_or_planned_are_refused_at_their_place() {
    let broker = dev_broker("events", 1);
    let project = Project::new(&broker.bootstrap, "lake", "", "{ max_age = \"200ms\" }");
    let before = std::fs::read_to_string(project.dir.path().join("tributary.toml")).unwrap();
    let first_line = before.lines().count() + 1;
    project.add_config(
        r#"
[[view]]
name = "distinct_cities"
source = "events"
sql = """
SELECT nation,
       count(DISTINCT id) AS ids
FROM events GROUP BY nation
"""

[[view]]
name = "misspelt"
source = "events"
sql = "SELECT natoin, count(*) AS n FROM events GROUP BY natoin"
"#,
    );
    let out = project.cmd(&["config"]).output().unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{all}");
    let distinct = format!("tributary.toml:{}:8:", first_line + 6);
    assert!(
        all.contains(&distinct) && all.contains("DISTINCT aggregate cannot be combined"),
        "want {distinct}: {all}"
    );
    assert!(
        all.contains("merge = \\\"recompute\\\"") || all.contains("merge = \"recompute\""),
        "{all}"
    );

    // The same view declared with merge = "recompute" is accepted; the
    // misspelt column is found when the SQL is planned against the
    // stream's schema, before any table exists.
    let cfg = std::fs::read_to_string(project.dir.path().join("tributary.toml")).unwrap();
    std::fs::write(
        project.dir.path().join("tributary.toml"),
        cfg.replace(
            "name = \"distinct_cities\"",
            "name = \"distinct_cities\"\nmerge = \"recompute\"",
        ),
    )
    .unwrap();
    let out = project.cmd(&["config"]).output().unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{all}");
    assert!(!all.contains("DISTINCT"), "{all}");
    assert!(
        all.contains("view \"misspelt\": sql:") && all.contains("natoin"),
        "{all}"
    );

    // A lake_view task naming a view the project does not declare.
    std::fs::write(
        project.dir.path().join("dags/refresh.toml"),
        "dag_id = \"refresh\"\nschedule = \"@daily\"\nstart_date = 2026-12-01\n\n[[task]]\nid = \"r\"\nkind = \"lake_view\"\nview = \"by_natoin\"\n",
    )
    .unwrap();
    let out = project.cmd(&["dags", "validate"]).output().unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("refresh.toml:8:8:") && all.contains("no view \"by_natoin\""),
        "{all}"
    );
}

#[test]
fn live_is_exact_over_a_stream_table_on_s3() {
    let (url, storage, endpoint) = s3_lake("views");
    let broker = dev_broker("events", 2);
    let project = Project::new(&broker.bootstrap, &url, &storage, "{ max_age = \"200ms\" }");
    project.add_config(VIEW);
    produce(&broker.bootstrap, "events", 0, 80);
    project.catch_up();
    project.ok(&["view", "refresh", "by_nation"]);
    produce(&broker.bootstrap, "events", 80, 50);
    project.catch_up();
    let live = rows(&project, "SELECT * FROM live.by_nation ORDER BY nation");
    let whole = rows(&project, WHOLE);
    assert_same(
        &live,
        &whole,
        &ALL,
        "live vs the SQL over the source, on S3",
    );
    let counted: u64 = live.iter().map(|r| r["n"].as_u64().unwrap()).sum();
    assert_eq!(counted, (0..130u64).filter(|i| i % 7 != 3).count() as u64);
    // The source and the batch are real Delta tables to an outside reader.
    assert_eq!(python_count_s3(&format!("{url}/events"), &endpoint), 130);
    assert_eq!(
        python_count_s3(&format!("{url}/by_nation_batch"), &endpoint),
        5,
        "one partial row per nation"
    );
}
