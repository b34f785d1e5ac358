//! A transform's sink end to end: the real binary, the `events` table the
//! real stream writer lands from the dev broker (librdkafka's mock
//! cluster, which has Kafka transactions), and a `read_committed` consumer
//! as the judge of what the topic holds.
//!
//! - exactly once: the transform SIGKILLed at scattered moments while its
//!   source grows, then caught up: every row of its output table is in the
//!   topic once, keyed by the `key` column, with its version and row id;
//! - at least once: the same without transactions; every row is there,
//!   and the row ids deduplicate what a crash sent twice.

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::lake::{Guard, Project, duckdb, produce};
use common::{BrokerProcess, dev_broker_with};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The dev broker with the source topic and the sink's topic.
fn broker() -> BrokerProcess {
    dev_broker_with(&[("events", 2), ("kept", 3)])
}

fn transform(delivery: &str) -> String {
    format!(
        r#"
[[transform]]
name = "kept"
source = "events"
sql = "SELECT id, nation, at FROM events WHERE id % 3 <> 0"
table = "events_kept"
trigger = "100ms"
max_source_versions = 3
sink = {{ topic = "kept", key = "id", delivery = "{delivery}" }}
"#
    )
}

/// A record of the sink's topic.
#[derive(Debug)]
struct Record {
    key: String,
    id: u64,
    row: String,
}

/// Every committed record of `topic`, read from the beginning until each
/// partition's end.
fn consume(bootstrap: &str, topic: &str) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "sink-test-judge")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for p in 0..3 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap();
        ends.insert(p, high);
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = ends.iter().all(|(p, end)| {
            *end == 0
                || consumer
                    .position()
                    .unwrap()
                    .find_partition(topic, *p)
                    .and_then(|e| e.offset().to_raw())
                    .is_some_and(|o| o >= *end)
        });
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the topic was not read to its end"
        );
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.unwrap();
        let header = |k: &str| {
            m.headers()
                .and_then(|h| h.iter().find(|x| x.key == k))
                .and_then(|x| x.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        let payload: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        out.push(Record {
            key: String::from_utf8_lossy(m.key().unwrap()).into_owned(),
            id: payload["id"].as_u64().unwrap(),
            row: header("tributary-row"),
        });
        assert_eq!(header("tributary-transform"), "kept");
        assert!(header("tributary-version").parse::<u64>().is_ok());
    }
    out
}

/// Runs the transform `rounds` times, each SIGKILLed at a scattered moment
/// while records arrive, then catches it up.
fn kill_rounds(project: &Project, bootstrap: &str, rounds: u64) -> u64 {
    let mut writer = Guard(project.writer(false));
    let mut ids = 0u64;
    for round in 0..rounds {
        produce(bootstrap, "events", ids, 30);
        ids += 30;
        let mut t = Guard(
            project
                .cmd(&["transform", "run", "kept", "--metrics-bind", "off"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(200 + (round * 173) % 900));
        t.0.kill().unwrap();
        t.0.wait().unwrap();
    }
    let _ = writer.0.kill();
    let _ = writer.0.wait();
    project.catch_up();
    let out = project.catch_up_transform("kept");
    assert!(out.contains("published to kept"), "{out}");
    ids
}

fn kept_ids(project: &Project) -> Vec<u64> {
    let lake = project.dir.path().join("lake");
    duckdb(
        &lake,
        "SELECT id FROM delta_scan('{path}/events_kept') ORDER BY id",
    )
    .iter()
    .map(|r| r["id"].as_u64().unwrap())
    .collect()
}

#[test]
fn a_sink_killed_while_publishing_puts_every_output_row_in_the_topic_once() {
    let broker = broker();
    let project = Project::new(&broker.bootstrap, "lake", "", "{ max_age = \"200ms\" }");
    project.add_config(&transform("exactly_once"));
    let produced = kill_rounds(&project, &broker.bootstrap, 10);

    let table = kept_ids(&project);
    let expected: Vec<u64> = (0..produced).filter(|i| i % 3 != 0).collect();
    assert_eq!(table, expected, "the output table");
    let records = consume(&broker.bootstrap, "kept");
    let mut ids: Vec<u64> = records.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, table, "the topic holds each output row once");
    for r in &records {
        assert_eq!(r.key, r.id.to_string(), "keyed by the key column");
    }
    // A run with nothing new publishes nothing.
    let again = project.catch_up_transform("kept");
    assert!(again.contains("0 rows published"), "{again}");
    assert_eq!(consume(&broker.bootstrap, "kept").len(), records.len());
}

#[test]
fn an_at_least_once_sink_deduplicates_by_row_id() {
    let broker = broker();
    let project = Project::new(&broker.bootstrap, "lake", "", "{ max_age = \"200ms\" }");
    project.add_config(&transform("at_least_once"));
    kill_rounds(&project, &broker.bootstrap, 6);

    let table = kept_ids(&project);
    let records = consume(&broker.bootstrap, "kept");
    let mut by_row: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &records {
        // A row id always names the same row.
        let first = by_row.entry(r.row.as_str()).or_insert(r.id);
        assert_eq!(*first, r.id, "row {} sent with two values", r.row);
    }
    let mut ids: Vec<u64> = by_row.values().copied().collect();
    ids.sort_unstable();
    assert_eq!(
        ids, table,
        "deduplicated by row id, the topic holds the table"
    );
}
