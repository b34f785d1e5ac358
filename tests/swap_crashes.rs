//! A Kappa swap killed with SIGKILL, on a lake in moto S3, while the live
//! writer runs and records keep arriving: before its commits, between the
//! dead-letter table's switch and the table's, and right after the
//! table's. Each time the live table is the old generation or the new one
//! (never a mix: `lake verify` proves every offset once, Python
//! `deltalake` reads it from S3), the swap run again finishes the job, and
//! the writer goes on without a gap or a duplicate.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::dev_broker;
use common::lake::{Guard, Project, produce, python_count_s3, s3_lake};

/// Rows and distinct ids of the live table, by our SQL.
fn rows(project: &Project) -> (u64, u64) {
    let v = project.json(&[
        "sql",
        "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM events",
    ]);
    (v[0]["n"].as_u64().unwrap(), v[0]["ids"].as_u64().unwrap())
}

#[test]
fn a_swap_killed_at_each_step_leaves_the_old_or_the_new_table_and_the_writer_goes_on() {
    let (lake, storage, endpoint) = s3_lake("swapkill");
    let broker = dev_broker("events", 2);
    let project = Project::new(
        &broker.bootstrap,
        &lake,
        &storage,
        "{ max_age = \"200ms\" }",
    );
    produce(&broker.bootstrap, "events", 0, 100);
    project.catch_up();
    let _writer = Guard(project.writer(false));
    let mut produced = 100;
    let table = format!("{lake}/events");
    for (n, point, lands) in [
        (2, "swap:before_commit", false),
        (3, "swap:between_commits", false),
        (4, "swap:after_commit", true),
    ] {
        let generation = format!("events@v{n}");
        // After a kill before the table's commit, the generation is still
        // a replayed one: a plain replay resumes it, so ask for a new one.
        let replayed = project.ok(&["lake", "replay", "events", "--new"]);
        assert!(
            replayed.contains(&format!("replaying into {generation}")),
            "{replayed}"
        );
        project.ok(&["lake", "verify", &generation, "--against", "events"]);
        produce(&broker.bootstrap, "events", produced, 30);
        produced += 30;

        let out = project
            .cmd(&["lake", "swap", "events", &generation])
            .env("TRIBUTARY_FAILPOINT", point)
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{point}: the swap was not killed"
        );
        let state = project.generation_state(n);
        assert_eq!(state, if lands { "current" } else { "replayed" }, "{point}");
        // Old or new, never a mix: every offset the table holds, once.
        project.verify();
        let (r, ids) = rows(&project);
        assert_eq!(r, ids, "{point}: an id twice");

        if !lands {
            let done = project.ok(&["lake", "swap", "events", &generation]);
            assert!(
                done.contains(&format!("→ {n} at version")),
                "{point}: {done}"
            );
        }
        assert_eq!(project.generation_state(n), "current", "{point}");
        produce(&broker.bootstrap, "events", produced, 30);
        produced += 30;
        let deadline = Instant::now() + Duration::from_secs(120);
        while rows(&project) != (produced, produced) {
            assert!(
                Instant::now() < deadline,
                "{point}: the writer did not land every record ({:?} of {produced})",
                rows(&project)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        project.verify();
        assert_eq!(python_count_s3(&table, &endpoint), produced, "{point}");
    }
}
