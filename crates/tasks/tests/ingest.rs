//! API → Kafka against librdkafka's mock cluster and the offline API:
//! every record checked against the fixtures, retries, bad records, and
//! broker errors without duplicates.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{Message, Offset, TopicPartitionList};
use scheduler::operator::{TaskContext, TaskError, TaskLog, TaskOutcome};
use scheduler::timetable::DataInterval;
use serde_json::Value;
use tasks::dev::random_user_api::{Fault, Faults, OfflineApi, OfflineApiConfig, start};
use tasks::random_user::{Provenance, parse_response, transform};
use testkit::kafka::MockKafka;
use tokio_util::sync::CancellationToken;

const PARTITIONS: i32 = 3;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/randomuser")
}

fn mock() -> MockKafka {
    MockKafka::start(&[("users", PARTITIONS)])
}

async fn api(faults: Faults) -> (OfflineApi, CancellationToken) {
    let cfg = OfflineApiConfig {
        faults,
        ..OfflineApiConfig::default()
    }
    .with_fixtures(&fixtures())
    .unwrap();
    let stop = CancellationToken::new();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    (start(addr, cfg, stop.clone()).await.unwrap(), stop)
}

fn operator(settings: &str) -> std::sync::Arc<dyn scheduler::operator::Operator> {
    let src = format!(
        "dag_id = \"random_user_to_kafka\"\n[[task]]\nid = \"fetch\"\nkind = \"random_user_to_kafka\"\n{settings}\n"
    );
    let dag = scheduler::dag::parse_dag(Path::new("t.toml"), &src, &tasks::registry())
        .unwrap_or_else(|e| panic!("{e:#?}"));
    dag.tasks[0].operator.clone()
}

async fn run(settings: &str) -> (Result<TaskOutcome, TaskError>, Vec<String>) {
    let (log, mut rx) = TaskLog::channel();
    let ld = Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap();
    let ctx = TaskContext {
        dag_id: "random_user_to_kafka".into(),
        run_id: "manual__t".into(),
        task_id: "fetch".into(),
        try_number: 1,
        logical_date: ld,
        data_interval: DataInterval { start: ld, end: ld },
        conf: Value::Null,
        params: Default::default(),
        log: log.clone(),
        cancel: CancellationToken::new(),
    };
    let r = operator(settings).execute(ctx).await;
    drop(log);
    let mut lines = Vec::new();
    while let Some(l) = rx.recv().await {
        lines.push(l);
    }
    (r, lines)
}

/// Reads the whole topic from the beginning: (partition, key, value).
fn consume(bootstrap: &str, expected: usize) -> Vec<(i32, String, Value)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset("users", p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut idle = 0;
    // Read until the expected count, then a few empty polls to catch extras.
    while idle < 5 {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let key = String::from_utf8(m.key().unwrap_or_default().to_vec()).unwrap();
                let v: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
                out.push((m.partition(), key, v));
                idle = 0;
            }
            Some(Err(e)) => panic!("consume: {e}"),
            None if out.len() >= expected => idle += 1,
            None => {}
        }
    }
    out
}

fn settings(api: &OfflineApi, bootstrap: &str, extra: &str) -> String {
    format!(
        "url = \"{}\"\nresults = 50\nseed = \"s\"\nkafka = {{ bootstrap_servers = \"{bootstrap}\" }}\n{extra}",
        api.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_matches_the_fixtures() {
    let m = mock();
    let (a, _stop) = api(Faults::default()).await;
    let (r, log) = run(&settings(&a, &m.bootstrap(), "requests = 2")).await;
    assert_eq!(r, Ok(TaskOutcome::Success), "{log:#?}");
    assert!(
        log.last()
            .unwrap()
            .contains("delivered 100 record(s) to users, skipped 0"),
        "{log:#?}"
    );
    let per_partition: u64 = log
        .iter()
        .filter(|l| l.starts_with("delivered ") && l.contains("users["))
        .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(per_partition, 100);
    let got = consume(&m.bootstrap(), 100);
    assert_eq!(got.len(), 100);
    // Expected: pages 1 and 2 of the fixture pool, transformed independently of the task.
    let pool = parse_response(&std::fs::read(fixtures().join("results-5000.json")).unwrap())
        .unwrap()
        .users;
    let prov = Provenance {
        fetched_at: String::new(),
        dag_id: "random_user_to_kafka".into(),
        run_id: "manual__t".into(),
        logical_date: "2026-11-21T00:00:00Z".into(),
    };
    for u in &pool[..100] {
        let want = serde_json::to_value(transform(u, &prov).unwrap()).unwrap();
        let (_, key, v) = got
            .iter()
            .find(|(_, k, _)| k == want["user_id"].as_str().unwrap())
            .expect("user produced");
        assert_eq!(key, want["user_id"].as_str().unwrap());
        for (field, w) in want.as_object().unwrap() {
            if field != "event_time" {
                assert_eq!(&v[field], w, "field {field}");
            }
        }
        assert!(chrono::DateTime::parse_from_rfc3339(v["event_time"].as_str().unwrap()).is_ok());
    }
    // Keyed by user_id: the same user always lands on the same partition.
    let parts: HashSet<i32> = got.iter().map(|(p, _, _)| *p).collect();
    assert!(parts.len() > 1, "spread over partitions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_500_then_success_is_retried() {
    let m = mock();
    let (a, _stop) = api(Faults {
        fault: Some(Fault::Status500),
        first: 2,
        every: None,
    })
    .await;
    let (r, log) = run(&settings(&a, &m.bootstrap(), "")).await;
    assert_eq!(r, Ok(TaskOutcome::Success), "{log:#?}");
    assert_eq!(log.iter().filter(|l| l.contains("HTTP 500")).count(), 2);
    assert_eq!(consume(&m.bootstrap(), 50).len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_body_and_429_are_retried() {
    let m = mock();
    let (a, _stop) = api(Faults {
        fault: Some(Fault::ErrorBody),
        first: 1,
        every: None,
    })
    .await;
    let (r, log) = run(&settings(&a, &m.bootstrap(), "")).await;
    assert_eq!(r, Ok(TaskOutcome::Success), "{log:#?}");
    assert!(log.iter().any(|l| l.contains("the API returned an error")));
    let (a, _stop) = api(Faults {
        fault: Some(Fault::TooManyRequests {
            retry_after_secs: 1,
        }),
        first: 1,
        every: None,
    })
    .await;
    let (r, log) = run(&settings(&a, &m.bootstrap(), "")).await;
    assert_eq!(r, Ok(TaskOutcome::Success), "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.contains("HTTP 429") && l.contains("Retry-After 1s")),
        "{log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_users_are_skipped_or_fail_the_try() {
    let m = mock();
    let (a, _stop) = api(Faults {
        fault: Some(Fault::MalformedUsers),
        first: 10,
        every: None,
    })
    .await;
    // 5 of 50 (10%) are broken: above 5% the try fails and produces nothing.
    let (r, log) = run(&settings(&a, &m.bootstrap(), "max_bad_ratio = 0.05")).await;
    assert!(
        matches!(&r, Err(TaskError::Fatal(msg)) if msg.contains("5 of 50 record(s) could not be used")),
        "{r:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("record 0 skipped: latitude is not a decimal number")),
        "{log:#?}"
    );
    // At 20% allowed, the 45 good ones are delivered and the skip is reported.
    let (r, log) = run(&settings(&a, &m.bootstrap(), "max_bad_ratio = 0.2")).await;
    assert_eq!(r, Ok(TaskOutcome::Success));
    assert!(
        log.last()
            .unwrap()
            .contains("delivered 45 record(s) to users, skipped 5 bad"),
        "{log:#?}"
    );
    assert_eq!(consume(&m.bootstrap(), 45).len(), 45);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_errors_are_retried_without_duplicates() {
    let m = mock();
    m.cluster().request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        ],
    );
    let (a, _stop) = api(Faults::default()).await;
    let (r, log) = run(&settings(&a, &m.bootstrap(), "requests = 3")).await;
    assert_eq!(r, Ok(TaskOutcome::Success), "{log:#?}");
    let got = consume(&m.bootstrap(), 150);
    assert_eq!(got.len(), 150, "no record lost or doubled");
    let keys: HashSet<&str> = got.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(keys.len(), 150);
}
