//! A replay after Kafka's retention deleted a topic's oldest records: the
//! dev broker (librdkafka's mock cluster) keeps about 5 MB per partition
//! and drops the oldest batches past that. The replay takes the offsets
//! the log no longer holds from the live table's rows, in the new
//! declaration's shape (here partitioned by `hour(at)` instead of nation
//! and day), then reads the rest from Kafka: the generation holds every
//! offset once and verifies against the live table.

mod common;

use common::dev_broker;
use common::lake::{Project, produce, record};

/// About 60 KB that compresses badly, so the broker counts it in full.
fn pad() -> String {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..60_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

#[test]
fn a_replay_refills_what_retention_deleted_from_the_current_generation() {
    let broker = dev_broker("events", 1);
    let project = Project::new(&broker.bootstrap, "lake", "", "{ max_age = \"200ms\" }");
    produce(&broker.bootstrap, "events", 0, 50);
    project.catch_up();
    // Large records (the table keeps only the declared columns), landed a
    // chunk at a time, until the broker has deleted the oldest records.
    let pad = pad();
    let mut next = 50u64;
    for _ in 0..3 {
        let records = (next..next + 35).map(|i| {
            let r = record(i);
            let big = format!("{}, \"pad\": \"{pad}\"}}", &r[..r.len() - 1]);
            (i.to_string(), big)
        });
        testkit::kafka::produce_blocking(&broker.bootstrap, "events", records, true);
        next += 35;
        project.catch_up();
    }

    // The same stream, partitioned by the hour of `at` only.
    let other = project.config_variant(
        "by_hour.toml",
        "partition_by = [\"nation\", \"date(at)\"]",
        "partition_by = [\"hour(at)\"]",
    );
    let out = project.ok(&[
        "lake",
        "replay",
        "events",
        "--config",
        other.to_str().unwrap(),
    ]);
    let line = out
        .lines()
        .find(|l| l.starts_with("refilled "))
        .unwrap_or_else(|| panic!("no refill in:\n{out}"));
    let refilled: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        (50..next).contains(&refilled),
        "retention should have deleted the 50 small records and some large ones: {line}"
    );
    assert!(
        line.contains(&format!("events/0 0..={}", refilled - 1)),
        "{line}"
    );

    let v = project.json(&["lake", "verify", "events@v2", "--against", "events"]);
    assert_eq!(v["problems"], serde_json::json!([]), "{v:#}");
    assert_eq!(v["check"]["problems"], serde_json::json!([]), "{v:#}");
    let rows = project.json(&[
            "sql",
            "SELECT count(*) AS n, count(DISTINCT id) AS ids, count(*) FILTER (WHERE hour = 10) AS at_ten, \
             min(_offset) AS first FROM \"events@v2\"",
        ],
    );
    assert_eq!(rows[0]["n"], next, "{rows:#}");
    assert_eq!(rows[0]["ids"], next, "{rows:#}");
    assert_eq!(rows[0]["at_ten"], next, "every `at` is 10:00 UTC: {rows:#}");
    assert_eq!(rows[0]["first"], 0, "{rows:#}");

    // Swapped in, and the declaration made the project's, the writer goes
    // on from the generation's offsets.
    project.ok(&[
        "lake",
        "swap",
        "events",
        "events@v2",
        "--config",
        other.to_str().unwrap(),
    ]);
    std::fs::copy(&other, project.dir.path().join("tributary.toml")).unwrap();
    produce(&broker.bootstrap, "events", next, 10);
    project.catch_up();
    let all = project.json(&[
        "sql",
        "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM events",
    ]);
    assert_eq!(
        (all[0]["n"].clone(), all[0]["ids"].clone()),
        ((next + 10).into(), (next + 10).into())
    );
}
