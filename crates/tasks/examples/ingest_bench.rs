//! Ingest benchmark (run by `bench/ingest.sh`): records/s from the offline
//! random-user API (results=5000) into librdkafka's mock cluster, next to the
//! raw producer throughput of the same records measured in the same run.
//! Prints `name value unit` lines.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use scheduler::operator::{TaskContext, TaskLog, TaskOutcome};
use scheduler::timetable::DataInterval;
use tasks::dev::DevBroker;
use tasks::dev::random_user_api::{OfflineApiConfig, start};
use tasks::kafka::{KafkaSettings, produce_all};
use tasks::random_user::{Provenance, generator, transform};
use tokio_util::sync::CancellationToken;

const REQUESTS: u32 = 20;
const RESULTS: usize = 5000;

#[tokio::main]
async fn main() {
    let total = REQUESTS as usize * RESULTS;
    // Raw producer ceiling: the same kind of records, already transformed.
    let raw_broker = DevBroker::start(&[("users", 8)]).expect("mock cluster");
    let prov = Provenance {
        fetched_at: Utc::now().to_rfc3339(),
        dag_id: "b".into(),
        run_id: "b".into(),
        logical_date: "b".into(),
    };
    let mut records = Vec::with_capacity(total);
    for page in 1..=u64::from(REQUESTS) {
        for u in generator::users("bench", page, RESULTS, None) {
            let r = transform(&u, &prov).expect("valid user");
            records.push((r.user_id.clone(), serde_json::to_string(&r).expect("json")));
        }
    }
    let bytes: usize = records.iter().map(|(k, v)| k.len() + v.len()).sum();
    let settings = KafkaSettings {
        bootstrap_servers: raw_broker.bootstrap_servers(),
        ..KafkaSettings::default()
    };
    let (producer, _, _) = settings.producer().expect("producer");
    let t = Instant::now();
    let report = produce_all(&producer, "users", &records)
        .await
        .expect("delivered");
    let raw = t.elapsed().as_secs_f64();
    assert_eq!(report.total() as usize, total);
    println!(
        "raw_producer_records_per_s {:.0} records/s",
        total as f64 / raw
    );
    println!("raw_producer_mb_per_s {:.1} MB/s", bytes as f64 / raw / 1e6);

    // The task kind end to end: HTTP fetch, parse, transform, produce.
    let broker = DevBroker::start(&[("users", 8)]).expect("mock cluster");
    let stop = CancellationToken::new();
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let api = start(addr, OfflineApiConfig::default(), stop.clone())
        .await
        .expect("offline API");
    let src = format!(
        "dag_id = \"b\"\n[[task]]\nid = \"t\"\nkind = \"random_user_to_kafka\"\nurl = \"{}\"\nresults = {RESULTS}\nrequests = {REQUESTS}\nseed = \"bench\"\nmax_bad_ratio = 0.0\nrequest_timeout = \"60s\"\nkafka = {{ bootstrap_servers = \"{}\" }}\n",
        api.url(),
        broker.bootstrap_servers()
    );
    let dag = scheduler::dag::parse_dag(Path::new("bench.toml"), &src, &tasks::registry())
        .expect("valid DAG");
    let (log, mut rx) = TaskLog::channel();
    let now = Utc::now();
    let ctx = TaskContext {
        dag_id: "b".into(),
        run_id: "b".into(),
        task_id: "t".into(),
        try_number: 1,
        logical_date: now,
        data_interval: DataInterval {
            start: now,
            end: now,
        },
        conf: serde_json::Value::Null,
        params: Default::default(),
        log,
        cancel: CancellationToken::new(),
    };
    // Stage by stage, same requests: the HTTP fetch, then parse + transform.
    let client =
        tasks::http::client(Duration::from_secs(5), Duration::from_secs(60)).expect("client");
    let policy = tasks::http::RequestRetries::default();
    let (quiet, _rx2) = TaskLog::channel();
    let t = Instant::now();
    let mut bodies = Vec::new();
    for page in 1..=REQUESTS {
        let url = format!("{}?results={RESULTS}&seed=bench&page={page}", api.url());
        bodies.push(
            tasks::http::get(
                &client,
                &url,
                &policy,
                &quiet,
                &CancellationToken::new(),
                |_| Ok(()),
            )
            .await
            .expect("fetch"),
        );
    }
    let fetch = t.elapsed().as_secs_f64();
    println!(
        "stage_fetch_records_per_s {:.0} records/s",
        total as f64 / fetch
    );
    let t = Instant::now();
    let mut n = 0;
    for b in &bodies {
        for u in tasks::random_user::parse_users_raw(b).expect("parse") {
            tasks::random_user::transform_raw(u, &prov).expect("valid");
            n += 1;
        }
    }
    let tr = t.elapsed().as_secs_f64();
    assert_eq!(n, total);
    println!(
        "stage_parse_transform_records_per_s {:.0} records/s",
        total as f64 / tr
    );

    let t = Instant::now();
    let r = dag.tasks[0].operator.execute(ctx).await;
    let e2e = t.elapsed().as_secs_f64();
    assert_eq!(r, Ok(TaskOutcome::Success));
    let mut last = String::new();
    while let Ok(l) = rx.try_recv() {
        last = l;
    }
    assert!(
        last.contains(&format!("delivered {total} record(s)")),
        "{last}"
    );
    println!("ingest_records_per_s {:.0} records/s", total as f64 / e2e);
    println!(
        "ingest_vs_raw_producer {:.0} %",
        (total as f64 / e2e) / (total as f64 / raw) * 100.0
    );
    println!("ingest_users_per_request {RESULTS} users");
    stop.cancel();
    tokio::time::sleep(Duration::from_millis(10)).await;
}
