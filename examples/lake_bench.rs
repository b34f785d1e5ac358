//! Lake benchmark helper (driven by `bench/lake.sh`), printing
//! `name value unit` lines:
//!
//! - `create BOOTSTRAP TOPIC PARTITIONS`: create a topic.
//! - `produce BOOTSTRAP TOPIC N`: N random-user records (the generator's
//!   users through the real transform) into TOPIC.
//! - `consume BOOTSTRAP TOPIC N`: the consume-only ceiling: a consumer
//!   assigned every partition reads N records from the beginning and drops them.
//! - `latency CONFIG STREAM BOOTSTRAP TOPIC SECONDS`: runs the stream's
//!   writer in-process while producing a record every 5 ms, and measures
//!   produce-to-visible latency: for each new table version, the commit's
//!   time minus each new row's Kafka timestamp.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tasks::random_user::{Provenance, generator, transform};

fn arg(i: usize) -> String {
    std::env::args()
        .nth(i)
        .unwrap_or_else(|| panic!("missing argument {i}; see the module docs"))
}

fn producer(bootstrap: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer")
}

fn send(p: &BaseProducer, topic: &str, key: &str, value: &[u8]) {
    loop {
        match p.send(BaseRecord::to(topic).key(key).payload(value)) {
            Ok(()) => return,
            Err((e, _)) if e.to_string().contains("Queue full") => {
                p.poll(Duration::from_millis(5));
            }
            Err((e, _)) => panic!("produce: {e}"),
        }
    }
}

/// The provenance of users fetched now by the bench's run `run_id`, for
/// the logical date 2026-11-21.
fn fetched_now(run_id: &str) -> Provenance {
    Provenance {
        fetched_at: Utc::now().to_rfc3339(),
        dag_id: "bench".into(),
        run_id: run_id.into(),
        logical_date: "2026-11-21T00:00:00+00:00".into(),
    }
}

/// Sends one random user as the ingest task would (its record, keyed by
/// its id); the bytes of the value.
fn send_user(p: &BaseProducer, topic: &str, user: &serde_json::Value, prov: &Provenance) -> usize {
    let r = transform(user, prov).expect("valid user");
    let v = serde_json::to_vec(&r).expect("json");
    send(p, topic, &r.user_id, &v);
    v.len()
}

/// Produces `n` users; with `days` > 1, each page of 5,000 is fetched (and
/// its run's logical date set) on one of `days` days from 2026-11-01, in
/// turn, so the table holds `days` days of users.
fn produce(bootstrap: &str, topic: &str, n: u64, days: u64) {
    let p = producer(bootstrap);
    let one_day = fetched_now("bench");
    let provenance = |page: u64| {
        if days <= 1 {
            return one_day.clone();
        }
        let day = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z").expect("a time")
            + chrono::Duration::days((page % days) as i64);
        Provenance {
            fetched_at: (day + chrono::Duration::hours(12)).to_rfc3339(),
            logical_date: day.to_rfc3339(),
            ..one_day.clone()
        }
    };
    let started = Instant::now();
    let (mut sent, mut bytes, mut page) = (0u64, 0u64, 0u64);
    while sent < n {
        let prov = provenance(page);
        for u in generator::users("bench", page, 5000, None) {
            if sent == n {
                break;
            }
            bytes += send_user(&p, topic, &u, &prov) as u64;
            sent += 1;
            p.poll(Duration::ZERO);
        }
        page += 1;
    }
    p.flush(Duration::from_secs(300))
        .expect("every record delivered");
    let s = started.elapsed().as_secs_f64();
    println!("lake_preproduce_records {sent} records");
    println!("lake_preproduce_value_bytes {bytes} bytes");
    println!(
        "lake_preproduce_records_per_s {:.0} records/s",
        sent as f64 / s
    );
}

/// Produces `rate` users a second, a tenth every 100 ms, until killed: one
/// long-lived producer, as a service feeding a topic is (a new process per
/// batch spends most of a second connecting before its records are on the
/// broker, and their timestamps are from before that).
fn feed(bootstrap: &str, topic: &str, rate: u64) {
    let p = producer(bootstrap);
    let prov = fetched_now("feed");
    let slice = (rate / 10).max(1);
    let started = Instant::now();
    let (mut page, mut users) = (0u64, generator::users("feed", 0, 5000, None));
    for tick in 0u64.. {
        for i in tick * slice..(tick + 1) * slice {
            if i / 5000 != page {
                page = i / 5000;
                users = generator::users("feed", page, 5000, None);
            }
            send_user(&p, topic, &users[(i % 5000) as usize], &prov);
        }
        p.poll(Duration::ZERO);
        let next = started + Duration::from_millis(100 * (tick + 1));
        while Instant::now() < next {
            p.poll(next.saturating_duration_since(Instant::now()));
        }
    }
}

fn consume(bootstrap: &str, topic: &str, n: u64) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("ceiling-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    // Every partition from the beginning, assigned directly: the ceiling
    // of reading, without group coordination.
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .expect("metadata");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning)
                .expect("partition");
        }
    }
    c.assign(&tpl).expect("assign");
    let (mut got, mut bytes) = (0u64, 0u64);
    let mut started = None;
    while got < n {
        match c.poll(Duration::from_secs(30)) {
            Some(Ok(m)) => {
                started.get_or_insert_with(Instant::now);
                got += 1;
                bytes += m.payload_len() as u64;
            }
            Some(Err(e)) => eprintln!("consume: {e}"),
            None => panic!("no record for 30 s after {got}"),
        }
    }
    let s = started.expect("records").elapsed().as_secs_f64();
    println!(
        "lake_consume_only_records_per_s {:.0} records/s",
        got as f64 / s
    );
    println!(
        "lake_consume_only_mb_per_s {:.1} MB/s",
        bytes as f64 / s / 1e6
    );
}

async fn latency(config: &str, stream: &str, bootstrap: &str, topic: &str, seconds: u64) {
    use lake::table::DeltaTableHandle;
    let text = std::fs::read_to_string(config).expect("config");
    let catalog = std::collections::BTreeMap::from([(
        "random_user".to_string(),
        Arc::new(tasks::random_user::user_record_arrow_schema()),
    )]);
    let root: toml::Table = toml::from_str(&text).expect("toml");
    let streams = root["stream"].as_array().expect("[[stream]]");
    let cfg = streams
        .iter()
        .find(|s| s["name"].as_str() == Some(stream))
        .expect("stream");
    let sc: lake::config::StreamConfig =
        toml::from_str(&toml::to_string(cfg).expect("toml")).expect("stream config");
    let spec = Arc::new(sc.resolve(&catalog).expect("valid"));
    let lake_url = root["lake"]["url"].as_str().expect("lake.url");
    let base = std::path::Path::new(config).parent().expect("dir");
    let location =
        lake::table::Location::parse(lake_url, base, Default::default()).expect("location");
    let metrics = Arc::new(lake::metrics::Metrics::default());
    let opts = lake::writer::WriterOptions {
        spec: spec.clone(),
        location: location.clone(),
        kafka: lake::kafka::KafkaSource {
            bootstrap_servers: bootstrap.to_string(),
            properties: Default::default(),
        },
        until_caught_up: false,
        metrics: metrics.stream(stream),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = tokio::spawn(lake::writer::run(opts, stop.clone()));
    // Wait for the writer to own its partitions (its first commit of the
    // pre-existing backlog, if any, is not a latency sample).
    let sm = metrics.stream(stream);
    let p = producer(bootstrap);
    let prov = fetched_now("latency");
    let users = generator::users("latency", 0, 5000, None);
    let t = location
        .open(&spec.table)
        .await
        .expect("open")
        .expect("table exists");
    let mut h = DeltaTableHandle::new(&spec.table, t).await.expect("handle");
    let mut seen: std::collections::HashSet<String> = h
        .table()
        .snapshot()
        .expect("snapshot")
        .log_data()
        .iter()
        .map(|f| f.path().to_string())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut samples: Vec<f64> = Vec::new();
    let mut i = 0usize;
    let start_ms = Utc::now().timestamp_millis();
    let mut next_poll = Instant::now();
    while Instant::now() < deadline {
        send_user(&p, topic, &users[i % users.len()], &prov);
        p.poll(Duration::ZERO);
        i += 1;
        if Instant::now() >= next_poll {
            next_poll = Instant::now() + Duration::from_millis(20);
            if h.refresh().await.expect("refresh") {
                let now_ms = Utc::now().timestamp_millis();
                let files: Vec<_> = h
                    .table()
                    .snapshot()
                    .expect("snapshot")
                    .log_data()
                    .iter()
                    .filter(|f| !seen.contains(&f.path().to_string()))
                    .map(|f| (f.path().to_string(), f.object_store_path(), f.size()))
                    .collect();
                let store = h.table().object_store();
                for (name, path, _) in files {
                    seen.insert(name);
                    use object_store::ObjectStoreExt;
                    let bytes = store
                        .get(&path)
                        .await
                        .expect("get")
                        .bytes()
                        .await
                        .expect("bytes");
                    let reader =
                        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                            bytes,
                        )
                        .expect("parquet");
                    let mask = parquet::arrow::ProjectionMask::columns(
                        reader.parquet_schema(),
                        ["_timestamp"],
                    );
                    for b in reader.with_projection(mask).build().expect("reader") {
                        let b = b.expect("batch");
                        let col =
                            arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Int64)
                                .expect("cast");
                        let ts = col
                            .as_any()
                            .downcast_ref::<arrow::array::Int64Array>()
                            .expect("i64");
                        for v in ts.iter().flatten() {
                            let ms = v / 1000;
                            if ms >= start_ms {
                                samples.push((now_ms - ms) as f64 / 1000.0);
                            }
                        }
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    p.flush(Duration::from_secs(30)).expect("flush");
    stop.cancel();
    writer.await.expect("join").expect("writer");
    let _ = sm;
    samples.sort_by(f64::total_cmp);
    let q = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    println!("lake_visible_latency_samples {} records", samples.len());
    println!("lake_visible_latency_p50 {:.3} s", q(0.50));
    println!("lake_visible_latency_p99 {:.3} s", q(0.99));
}

fn create(bootstrap: &str, topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let admin: AdminClient<rdkafka::client::DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .expect("admin");
        let r = admin
            .create_topics(
                &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new(),
            )
            .await
            .expect("create topics");
        for x in r {
            x.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e}"));
        }
    });
}

fn main() {
    match arg(1).as_str() {
        "create" => create(&arg(2), &arg(3), arg(4).parse().expect("partitions")),
        "produce" => produce(
            &arg(2),
            &arg(3),
            arg(4).parse().expect("N"),
            std::env::args()
                .nth(5)
                .map_or(1, |d| d.parse().expect("days")),
        ),
        "feed" => feed(
            &arg(2),
            &arg(3),
            arg(4).parse().expect("records per second"),
        ),
        "consume" => consume(&arg(2), &arg(3), arg(4).parse().expect("N")),
        "latency" => {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(latency(
                &arg(2),
                &arg(3),
                &arg(4),
                &arg(5),
                arg(6).parse().expect("seconds"),
            ));
        }
        other => panic!("unknown mode {other:?}: create, produce, feed, consume or latency"),
    }
}
