//! Kappa generations end to end: the real binary, the dev broker, the
//! `events` stream; DuckDB's `delta_scan` and Python `deltalake` as the
//! outside readers.
//!
//! - a replay of the whole topic equals the live table row for row; a swap
//!   refuses it until verified; swapped in while the live writer runs and
//!   records keep arriving, the table then holds every offset exactly once
//!   and the writer goes on from the generation's offsets; a rollback
//!   returns the old rows and offsets and the writer refills the rest;
//! - a replay with another declaration (partitioned by nation only) is
//!   verified with the change reported, swapped, and the old declaration's
//!   writer refuses to write into the new shape;
//! - a replay killed with SIGKILL resumes (nothing twice);
//! - bad arguments say what is wrong;
//! - the example DAG `kappa_rebuild_users` (replay → check → verify → swap
//!   as tasks) in standalone, and the streams page showing generations.

mod common;

use std::time::{Duration, Instant};

use common::lake::{Guard, Project, duckdb, produce, python_rows};
use common::{dev_broker, text};
use serde_json::Value;

fn count(project: &Project, table: &str) -> u64 {
    let v = project.json(&[
        "sql",
        &format!("SELECT count(*) AS n, count(DISTINCT id) AS ids FROM \"{table}\""),
    ]);
    assert_eq!(v[0]["n"], v[0]["ids"], "{table}: an id twice: {v:#}");
    v[0]["n"].as_u64().unwrap()
}

/// Waits (bounded) until `check` holds.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn fails(project: &Project, args: &[&str]) -> String {
    let out = project.cmd(args).output().unwrap();
    assert!(
        !out.status.success(),
        "{args:?} succeeded:\n{}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

#[test]
fn replay_verify_swap_while_writing_then_roll_back() {
    let broker = dev_broker("events", 2);
    let project = Project::new(&broker.bootstrap, "lake", "", "{ max_age = \"200ms\" }");
    produce(&broker.bootstrap, "events", 0, 150);
    project.catch_up();

    // The replay reads the whole topic into events@v2: the same rows.
    let out = project.ok(&["lake", "replay", "events"]);
    assert!(out.contains("replaying into events@v2"), "{out}");
    assert_eq!(count(&project, "events@v2"), 150);
    let diff = project.json(&[
        "sql",
        "SELECT count(*) AS n FROM (SELECT id, nation, at, _partition, _offset FROM events \
             EXCEPT SELECT id, nation, at, _partition, _offset FROM \"events@v2\")",
    ]);
    assert_eq!(diff[0]["n"], 0, "row for row");
    assert_eq!(project.generation_state(2), "replayed");

    // Not verified yet: the swap refuses.
    let err = fails(&project, &["lake", "swap", "events", "events@v2"]);
    assert!(err.contains("has not been verified"), "{err}");
    let v = project.json(&["lake", "verify", "events@v2", "--against", "events"]);
    assert_eq!(v["problems"], serde_json::json!([]), "{v:#}");
    assert_eq!(v["partitions"].as_array().unwrap().len(), 2, "{v:#}");

    // The live writer runs and records keep coming while the swap happens.
    let writer = Guard(project.writer(false));
    produce(&broker.bootstrap, "events", 150, 50);
    let swapped = project.ok(&["lake", "swap", "events", "events@v2"]);
    assert!(swapped.contains("generation 1 → 2"), "{swapped}");
    produce(&broker.bootstrap, "events", 200, 50);
    eventually("the writer to land every record after the swap", || {
        count(&project, "events") == 250
    });
    drop(writer);
    project.verify();
    assert_eq!(project.generation_state(2), "current");
    assert_eq!(project.generation_state(1), "previous");
    // Outside readers see the generation's files where they were written.
    let lake = project.dir.path().join("lake");
    assert_eq!(python_rows(&project.table_path()), 250);
    let duck = duckdb(
        &lake,
        "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM delta_scan('{path}/events')",
    );
    assert_eq!(
        (duck[0]["n"].clone(), duck[0]["ids"].clone()),
        (250.into(), 250.into())
    );
    let log = std::fs::read_dir(project.table_path().join("_delta_log"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .collect::<String>();
    assert!(log.contains("\"path\":\"_generations/v2/"), "zero copy");

    // Rollback: generation 1's rows and offsets as the swap found them;
    // the writer re-reads the rest from Kafka.
    let before = project.json(&["sql", "SELECT count(*) AS n FROM \"events@v1\""])[0]["n"]
        .as_u64()
        .unwrap();
    assert!((150..=250).contains(&before), "{before}");
    let back = project.ok(&["lake", "rollback", "events"]);
    assert!(back.contains("generation 2 → 1"), "{back}");
    assert_eq!(count(&project, "events"), before);
    assert_eq!(project.generation_state(1), "current");
    project.catch_up();
    assert_eq!(count(&project, "events"), 250);
    project.verify();
}

#[test]
fn a_replay_with_another_partitioning_is_verified_and_swapped() {
    let broker = dev_broker("events", 2);
    let project = Project::new(&broker.bootstrap, "lake", "", "{ max_age = \"200ms\" }");
    produce(&broker.bootstrap, "events", 0, 80);
    project.catch_up();
    let other = project.config_variant(
        "by_nation.toml",
        "partition_by = [\"nation\", \"date(at)\"]",
        "partition_by = [\"nation\"]",
    );
    let other = other.to_str().unwrap();

    let out = project.ok(&["lake", "replay", "events", "--config", other]);
    assert!(out.contains("events@v2"), "{out}");
    let v = project.json(&["lake", "verify", "events@v2", "--against", "events"]);
    assert_eq!(v["problems"], serde_json::json!([]), "{v:#}");
    let changes = v["schema_changes"].to_string();
    assert!(changes.contains("] → [nation]"), "{changes}");
    // Swapping needs the declaration the generation was made with.
    let err = fails(&project, &["lake", "swap", "events", "events@v2"]);
    assert!(err.contains("pass that config"), "{err}");
    project.ok(&["lake", "swap", "events", "events@v2", "--config", other]);
    produce(&broker.bootstrap, "events", 80, 20);
    // The old declaration's writer refuses the new shape.
    let mut w = Guard(project.writer(true));
    let status = w.wait_for(Duration::from_secs(120)).unwrap();
    assert!(!status.success());
    assert!(
        project.writer_log().contains("partitioned by [nation]"),
        "{}",
        project.writer_log()
    );
    // The new one writes on.
    let mut w = Guard(
        project
            .cmd(&["stream", "run", "events", "--until-caught-up"])
            .env("TRIBUTARY_CONFIG", other)
            .spawn()
            .unwrap(),
    );
    assert!(w.wait_for(Duration::from_secs(120)).unwrap().success());
    assert_eq!(count(&project, "events"), 100);
    let parts = project.json(&["lake", "ls", "events"])["partition_columns"].clone();
    assert_eq!(parts, serde_json::json!(["nation"]));
}

#[test]
fn a_killed_replay_resumes_and_holds_nothing_twice() {
    let broker = dev_broker("events", 2);
    let project = Project::new(
        &broker.bootstrap,
        "lake",
        "",
        "{ max_rows = 20, max_age = \"100ms\" }",
    );
    produce(&broker.bootstrap, "events", 0, 400);
    project.catch_up();
    let gen_log = project.table_path().join("_generations/v2/_delta_log");
    let mut replay = Guard(project.cmd(&["lake", "replay", "events"]).spawn().unwrap());
    // Killed once it has committed some rows, before it is done.
    eventually("the replay's first data commit", || {
        gen_log.join("00000000000000000002.json").exists() || replay.0.try_wait().unwrap().is_some()
    });
    replay.0.kill().unwrap();
    replay.0.wait().unwrap();
    let out = project.ok(&["lake", "replay", "events"]);
    assert!(out.contains("resuming events@v2"), "{out}");
    assert_eq!(count(&project, "events@v2"), 400);
    let v = project.json(&["lake", "verify", "events@v2", "--against", "events"]);
    assert_eq!(v["problems"], serde_json::json!([]), "{v:#}");
    // --new starts another generation.
    let out = project.ok(&["lake", "replay", "events", "--new", "--from", "0=100,1=100"]);
    assert!(
        out.contains("replaying into events@v3: replay from offsets events:0=100,events:1=100"),
        "{out}"
    );
    let v3 = project.json(&["lake", "verify", "events@v3"]);
    assert_eq!(v3["problems"], serde_json::json!([]), "{v3:#}");
    for p in v3["partitions"].as_array().unwrap() {
        assert_eq!(
            p["from"], 100,
            "the common range starts where v3 did: {v3:#}"
        );
    }
    assert_eq!(count(&project, "events@v3"), 400 - 2 * 100);
}

#[test]
fn bad_generation_arguments_say_what_is_wrong() {
    let broker = dev_broker("events", 1);
    let project = Project::new(&broker.bootstrap, "lake", "", "{ max_age = \"200ms\" }");
    produce(&broker.bootstrap, "events", 0, 10);
    project.catch_up();
    let err = fails(
        &project,
        &["lake", "replay", "events", "--from", "yesterday"],
    );
    assert!(err.contains("--from") && err.contains("RFC 3339"), "{err}");
    let err = fails(
        &project,
        &["lake", "replay", "events", "--from", "orders:0=1"],
    );
    assert!(err.contains("does not read topic \"orders\""), "{err}");
    let err = fails(&project, &["lake", "swap", "events", "users@v2"]);
    assert!(err.contains("name a generation of events"), "{err}");
    let err = fails(
        &project,
        &["lake", "verify", "events@v9", "--against", "events"],
    );
    assert!(
        err.contains("events/_generations/v9") || err.contains("v9"),
        "{err}"
    );
    let err = fails(&project, &["lake", "rollback", "events"]);
    assert!(err.contains("no earlier generation"), "{err}");
    let err = fails(&project, &["lake", "generations", "nowhere"]);
    assert!(err.contains("not the table of a stream"), "{err}");
    let err = fails(&project, &["sql", "SELECT * FROM \"events@v7\""]);
    assert!(err.contains("no generation 7"), "{err}");

    // The same mistakes in a DAG's generation tasks, each at its place.
    let dag = project.dir.path().join("dags/rebuild.toml");
    std::fs::write(
        &dag,
        "dag_id = \"rebuild\"\n\
         [[task]]\nid = \"replay\"\nkind = \"lake_replay\"\ntable = \"event\"\n\
         [[task]]\nid = \"replay2\"\nkind = \"lake_replay\"\ntable = \"events\"\nfrom = \"orders:0=1\"\nconfig = \"missing.toml\"\n\
         [[task]]\nid = \"verify\"\nkind = \"lake_verify\"\ntable = \"events\"\ngeneration = 1\n\
         [[task]]\nid = \"check\"\nkind = \"lake_check\"\ntable = \"events@yesterday\"\n\
         [[task.expect]]\nassert = \"count(*) > 0\"\n",
    )
    .unwrap();
    let out = project
        .cmd(&["dags", "validate", dag.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    for (place, says) in [
        (
            ":5:9:",
            "\"event\" is not the table of a stream in the project config (did you mean \"events\"?)",
        ),
        (":10:8:", "does not read topic \"orders\""),
        (
            ":11:10:",
            "config \"missing.toml\": cannot read the config file",
        ),
        (":16:14:", "replayed generations are 2 and up"),
        (":20:9:", "after `@` comes a version number"),
    ] {
        assert!(
            all.lines().any(|l| l.contains(place) && l.contains(says)),
            "{place} {says}:\n{all}"
        );
    }
}

fn curl(url: &str) -> String {
    let o = std::process::Command::new("curl")
        .args(["-sf", url])
        .output()
        .unwrap();
    assert!(o.status.success(), "GET {url} failed");
    text(&o.stdout)
}

/// The example DAG `dags/kappa_rebuild_users.toml` in standalone: its
/// replay → check of `users@newest` → verify → swap run as tasks while
/// the live writer runs; new records land after the swap; the streams
/// page and API show the generations and a later replay's progress.
#[test]
fn the_kappa_rebuild_users_example_runs_in_standalone() {
    let env = common::sqlite_env();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dags/kappa_rebuild_users.toml"
    ))
    .unwrap();
    env.dag("kappa_rebuild_users", &example);
    env.dag(
        "users_fast",
        "dag_id = \"users_fast\"\n[[task]]\nid = \"fetch\"\nkind = \"random_user_to_kafka\"\nresults = 40\nrequests = 3\nseed = \"kappa\"\n",
    );
    let (child, banner) = env.standalone("127.0.0.1:0");
    let field = |name: &str| {
        banner
            .iter()
            .find_map(|l| l.trim_start().strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {name} line in {banner:#?}"))
            .to_string()
    };
    let (web, bootstrap) = (field("web UI"), field("kafka"));
    let rows = |table: &str| {
        let o = env.run(&["lake", "ls", table, "-o", "json"]);
        o.status
            .success()
            .then(|| serde_json::from_slice::<Value>(&o.stdout).unwrap()["rows"].as_u64())
            .flatten()
    };
    env.ok(&["trigger", "users_fast", "--wait", "--timeout", "120"]);
    env.eventually("the 120 users to land", || rows("users") == Some(120));

    let out = env.ok(&[
        "trigger",
        "kappa_rebuild_users",
        "--wait",
        "--timeout",
        "300",
    ]);
    let run_id = common::run_id_from(&out);
    let log = env.ok(&["tasks", "logs", "kappa_rebuild_users", &run_id, "replay"]);
    assert!(log.contains("replaying into users@v2"), "{log}");
    let log = env.ok(&["tasks", "logs", "kappa_rebuild_users", &run_id, "verify"]);
    assert!(log.contains("exactly once holds"), "{log}");
    let log = env.ok(&["tasks", "logs", "kappa_rebuild_users", &run_id, "swap"]);
    assert!(log.contains("swapped users: generation 1 → 2"), "{log}");
    let gens: Value =
        serde_json::from_str(&env.ok(&["lake", "generations", "users", "-o", "json"])).unwrap();
    assert_eq!(gens[1]["state"], "current", "{gens:#}");
    assert_eq!(gens[1]["verified"], true, "{gens:#}");
    assert_eq!(gens[1]["rows"], 120, "{gens:#}");
    assert_eq!(gens[0]["state"], "previous", "{gens:#}");

    // The live writer goes on from v2's offsets.
    env.ok(&["trigger", "users_fast", "--wait", "--timeout", "120"]);
    env.eventually("the next 120 users to land after the swap", || {
        rows("users") == Some(240)
    });
    env.ok(&["lake", "verify", "users"]);

    // A replay run by hand (another process) shows in the streams API and
    // page as a replayed generation, with its progress.
    let out = env
        .cmd(&["lake", "replay", "users"])
        .env("TRIBUTARY_KAFKA_BOOTSTRAP", &bootstrap)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status: Value = serde_json::from_str(&curl(&format!("{web}api/v1/streams/users"))).unwrap();
    let g = status["generations"].as_array().unwrap();
    let states: Vec<&str> = g.iter().map(|g| g["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["previous", "current", "replayed"], "{status:#}");
    let p = &g[2]["progress"];
    assert_eq!(p["total"], 240, "{status:#}");
    assert_eq!(p["done"], 240, "{status:#}");
    assert_eq!(p["partitions"].as_array().unwrap().len(), 4, "{status:#}");
    let page = curl(&format!("{web}streams"));
    assert!(page.contains("<code>users@v3</code>"), "{page}");
    assert!(page.contains("240/240 offsets (100%)"), "{page}");
    common::interrupt(child);
}
