//! Rebuilding what derives from a rebuilt table: the real binary, the
//! `events` stream from the dev broker, two chained transforms
//! (`events` → `events_kept` → `events_kept_fr`), a windowed one
//! (`events_per_minute`) and a Lambda view over the first; DuckDB's
//! `delta_scan` judges every table.
//!
//! `lake rebuild events` replays, verifies and swaps the stream table, then
//! each transform's table in order (rebuilt from its lake source, verified
//! by recomputing its SQL, swapped), then refreshes the view; afterwards
//! the writer and the transforms go on from the new generations' offsets
//! and checkpoints, and every table equals its SQL over its source, no row
//! twice. A transform's table rolls back to its previous generation, and
//! is rebuilt with a changed declaration (`--config`). A windowed
//! transform's late rows follow its generations: after a rebuild no event
//! is both in a window and in the late table, and a rollback brings both
//! back.

mod common;

use common::lake::{Project, duckdb, produce};
use common::{BrokerProcess, dev_broker};

const DERIVED: &str = r#"
[[transform]]
name = "kept"
source = "events"
sql = "SELECT id, nation, at FROM events WHERE id % 2 = 0"
table = "events_kept"
trigger = "100ms"

[[transform]]
name = "kept_fr"
source = "events_kept"
sql = "SELECT id, at FROM events_kept WHERE nation = 'FR'"
table = "events_kept_fr"
trigger = "100ms"

[[transform]]
name = "per_minute"
source = "events"
sql = """
SELECT window_start, window_end, count(*) AS n
FROM TUMBLE(events, at, INTERVAL '1 minute')
GROUP BY window_start, window_end
"""
table = "events_per_minute"
trigger = "100ms"
# Events take three times in turn: a week's delay makes none of them late.
watermark = { column = "at", delay = "7d" }

[[view]]
name = "kept_by_nation"
source = "events_kept"
sql = "SELECT nation, count(*) AS n FROM events_kept GROUP BY nation"
"#;

/// The dev broker with an `events` topic of `partitions`, and a project
/// whose `events` stream (committing every 200 ms) feeds `derived`.
fn project(partitions: i32, derived: &str) -> (BrokerProcess, Project) {
    let broker = dev_broker("events", partitions);
    let project = Project::new(&broker.bootstrap, "lake", "", "{ max_age = \"200ms\" }");
    project.add_config(derived);
    (broker, project)
}

/// Rows and ids twice in a table, by DuckDB.
/// Produces events `first..first + count`, lands them, and runs each of
/// `transforms` until it has caught up.
fn land(broker: &BrokerProcess, project: &Project, first: u64, count: u64, transforms: &[&str]) {
    produce(&broker.bootstrap, "events", first, count);
    project.catch_up();
    for t in transforms {
        project.catch_up_transform(t);
    }
}

fn rows(project: &Project, table: &str) -> (u64, u64) {
    let lake = project.dir.path().join("lake");
    let r = duckdb(
        &lake,
        &format!(
            "SELECT count(*) AS n, count(*) - count(DISTINCT id) AS twice FROM delta_scan('{{path}}/{table}')"
        ),
    );
    (r[0]["n"].as_u64().unwrap(), r[0]["twice"].as_u64().unwrap())
}

/// Windows and the events they count in `events_per_minute`.
fn windows(project: &Project) -> (u64, u64) {
    let v = project.json(&[
        "sql",
        "SELECT count(*) AS w, sum(n) AS n FROM events_per_minute",
    ]);
    (v[0]["w"].as_u64().unwrap(), v[0]["n"].as_u64().unwrap())
}

/// What each derived table must hold over `0..n` events (ids even; FR
/// every fifth event, as `common::lake::record` makes them).
fn expected(project: &Project) -> ((u64, u64), (u64, u64)) {
    let lake = project.dir.path().join("lake");
    let count = |sql: &str| duckdb(&lake, sql)[0]["n"].as_u64().unwrap();
    (
        (
            count("SELECT count(*) AS n FROM delta_scan('{path}/events') WHERE id % 2 = 0"),
            0,
        ),
        (
            count(
                "SELECT count(*) AS n FROM delta_scan('{path}/events') WHERE id % 2 = 0 AND nation = 'FR'",
            ),
            0,
        ),
    )
}

#[test]
fn a_rebuilt_stream_table_rebuilds_its_transforms_in_order_then_they_go_on() {
    let (broker, project) = project(2, DERIVED);
    land(
        &broker,
        &project,
        0,
        120,
        &["kept", "kept_fr", "per_minute"],
    );
    let (kept, fr) = expected(&project);
    assert!(kept.0 > 0 && fr.0 > 0);
    // Events fall on three minutes (`common::lake::record`).
    assert_eq!(windows(&project), (3, 120));
    assert_eq!(
        (
            rows(&project, "events_kept"),
            rows(&project, "events_kept_fr")
        ),
        (kept, fr)
    );

    let out = project.ok(&["lake", "rebuild", "events"]);
    for says in [
        "swapped events: generation 1 → 2",
        "transform kept reads events: rebuilding events_kept",
        "the transform's SQL over events at that version answers",
        "swapped events_kept: generation 1 → 2",
        "transform kept_fr reads events_kept: rebuilding events_kept_fr",
        "swapped events_kept_fr: generation 1 → 2",
        "transform per_minute reads events: rebuilding events_per_minute",
        "swapped events_per_minute: generation 1 → 2",
        "view kept_by_nation: batch table",
    ] {
        assert!(out.contains(says), "{says:?} in:\n{out}");
    }
    // Events first, then kept, then kept_fr: each after its source.
    let at = |s: &str| out.find(s).unwrap();
    assert!(at("swapped events:") < at("swapped events_kept:"));
    assert!(at("swapped events_kept:") < at("swapped events_kept_fr:"));
    assert_eq!(
        (
            rows(&project, "events_kept"),
            rows(&project, "events_kept_fr")
        ),
        (kept, fr)
    );
    assert_eq!(windows(&project), (3, 120));
    for table in ["events_kept", "events_kept_fr", "events_per_minute"] {
        let gens = project.json(&["lake", "generations", table]);
        assert_eq!(gens[0]["state"], "previous", "{gens:#}");
        assert_eq!(gens[1]["state"], "current", "{gens:#}");
        assert_eq!(gens[1]["verified"], true, "{gens:#}");
        assert_eq!(
            gens[1]["made_by"], "a rebuild from its lake source",
            "{gens:#}"
        );
    }

    // The writer and the transforms go on from the new generations.
    land(
        &broker,
        &project,
        120,
        80,
        &["kept", "kept_fr", "per_minute"],
    );
    assert_eq!(windows(&project), (3, 200), "windows updated past the swap");
    let (kept2, fr2) = expected(&project);
    assert!(kept2.0 > kept.0 && fr2.0 > fr.0);
    assert_eq!(rows(&project, "events_kept"), kept2);
    assert_eq!(rows(&project, "events_kept_fr"), fr2);
    let live = project.json(&["sql", "SELECT sum(n) AS n FROM live.kept_by_nation"]);
    assert_eq!(live[0]["n"], kept2.0, "{live:#}");

    // A transform's table rolls back to the generation it replaced.
    let back = project.ok(&["lake", "rollback", "events_kept_fr"]);
    assert!(back.contains("generation 2 → 1"), "{back}");
    assert_eq!(rows(&project, "events_kept_fr"), fr);
}

#[test]
fn a_transform_table_is_rebuilt_with_a_changed_declaration_and_bad_flags_are_refused() {
    let (broker, project) = project(1, DERIVED);
    land(&broker, &project, 0, 60, &["kept"]);

    // The same transform, now keeping every event and a new column.
    let other = project.config_variant(
        "all.toml",
        "SELECT id, nation, at FROM events WHERE id % 2 = 0",
        "SELECT id, nation, at, id % 2 = 0 AS even FROM events",
    );
    let out = project.ok(&[
        "lake",
        "rebuild",
        "events_kept",
        "--config",
        other.to_str().unwrap(),
        "--no-swap",
    ]);
    assert!(
        out.contains("events_kept@v2: 60 source rows in, 60 rows out"),
        "{out}"
    );
    assert!(out.contains("schema: added column even (Boolean)"), "{out}");
    assert!(
        out.contains("--no-swap: events_kept@v2 is verified"),
        "{out}"
    );
    let v2 = project.json(&[
        "sql",
        "SELECT count(*) AS n, sum(CAST(even AS INT)) AS e FROM \"events_kept@v2\"",
    ]);
    assert_eq!(
        (v2[0]["n"].as_u64(), v2[0]["e"].as_u64()),
        (Some(60), Some(30))
    );

    for (args, says) in [
        (
            vec!["lake", "rebuild", "events_kept", "--from", "earliest"],
            "--from is for a stream's table",
        ),
        (
            vec!["lake", "replay", "events_kept", "--new"],
            "--new is for a stream's table",
        ),
        (
            vec!["lake", "generations", "nowhere"],
            "not the table of a stream",
        ),
    ] {
        let o = project.cmd(&args).output().unwrap();
        assert!(!o.status.success(), "{args:?}");
        let err = common::text(&o.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// `per_minute` alone, its watermark `delay` instead of a week (with a
/// second, events that arrive behind the others are late).
fn per_minute(delay: &str) -> String {
    let start = DERIVED
        .find("[[transform]]\nname = \"per_minute\"")
        .unwrap();
    let end = DERIVED.find("[[view]]").unwrap();
    let block = &DERIVED[start..end];
    assert!(block.contains("delay = \"7d\""));
    block.replace("delay = \"7d\"", &format!("delay = \"{delay}\""))
}

/// (events in windows, late rows) of `events_per_minute`.
fn windowed_and_late(project: &Project) -> (u64, u64) {
    let v = project.json(&[
        "sql",
        "SELECT (SELECT coalesce(sum(n), 0) FROM events_per_minute) AS w, \
         (SELECT count(*) FROM events_per_minute_late) AS l",
    ]);
    (v[0]["w"].as_u64().unwrap(), v[0]["l"].as_u64().unwrap())
}

#[test]
fn a_windowed_transforms_late_rows_follow_its_generations() {
    let (broker, project) = project(1, &per_minute("1s"));
    // Events fall on Nov 21, 22 and 23 in turn. Once the first 30 are in
    // the transform, its watermark is Nov 23 09:59:59: of the next 30, the
    // 21st's and 22nd's are late.
    land(&broker, &project, 0, 30, &["per_minute"]);
    land(&broker, &project, 30, 30, &["per_minute"]);
    let (windowed, late) = windowed_and_late(&project);
    assert!(late >= 20, "late rows: {late}");
    assert_eq!(windowed + late, 60, "every event once, in a window or late");

    // A rebuild reads the source as it is now: nothing is late, every event
    // is in its window — and the late rows must not stay beside them.
    let out = project.ok(&["lake", "rebuild", "events_per_minute"]);
    assert!(out.contains("events_per_minute@v2"), "{out}");
    assert_eq!(windowed_and_late(&project), (60, 0), "{out}");

    // Rolling back brings the windows and their late rows back together.
    let out = project.ok(&["lake", "rollback", "events_per_minute"]);
    assert_eq!(windowed_and_late(&project), (windowed, late), "{out}");
}

#[test]
fn late_rows_found_only_while_a_generation_catches_up_get_a_live_late_table() {
    let (broker, project) = project(1, &per_minute("7d"));
    land(&broker, &project, 0, 30, &["per_minute"]);
    assert_eq!(windows(&project).1, 30, "nothing late with a week's delay");

    // The same transform with a second's delay, replayed now (one step:
    // nothing late), verified; then 30 events arrive behind its watermark
    // before the swap, which catches the generation up: the 21st's and the
    // 22nd's are late in it, and the live run never had a late table.
    let late = project.config_variant("late.toml", "delay = \"7d\"", "delay = \"1s\"");
    let late = late.to_str().unwrap();
    let args = [
        "lake",
        "rebuild",
        "events_per_minute",
        "--config",
        late,
        "--no-swap",
    ];
    project.ok(&args);
    land(&broker, &project, 30, 30, &[]);
    let out = project.ok(&[
        "lake",
        "swap",
        "events_per_minute",
        "events_per_minute@v2",
        "--config",
        late,
    ]);
    assert_eq!(windowed_and_late(&project), (40, 20), "{out}");

    let out = project.ok(&["lake", "rollback", "events_per_minute"]);
    assert_eq!(windowed_and_late(&project), (30, 0), "{out}");
}
