//! The streams page and `/api/v1/streams` against a real table written by
//! the lake writer from librdkafka's mock cluster: rows, dead letters, table
//! partitions, lag per partition, and an unreachable Kafka.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use lake::config::StreamSpec;
use lake::kafka::KafkaSource;
use lake::metrics::Metrics;
use lake::table::Location;
use lake::writer::WriterOptions;
use rdkafka::producer::FutureProducer;
use scheduler::store::{SqlStore, Store};
use serde_json::Value;
use testkit::kafka::MockKafka;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use web::{AppState, StreamSource, WebOptions, app};

fn spec(name: &str, topic: &str) -> Arc<StreamSpec> {
    testkit::stream_spec(&format!(
        r#"
name = "{name}"
topics = ["{topic}"]
table = "{name}"
schema = {{ columns = [
  {{ name = "id", type = "int64", nullable = false }},
  {{ name = "nation", type = "utf8", nullable = false }},
] }}
partition_by = ["nation"]
"#
    ))
}

/// Produces `values` keyed by their index, so they spread over partitions.
async fn produce(p: &FutureProducer, topic: &str, values: Vec<String>) {
    let keyed = values.into_iter().map(String::into_bytes).enumerate();
    testkit::kafka::produce_keyed(p, topic, keyed).await;
}

async fn get_json(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let r = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let s = r.status();
    let b = r.into_body().collect().await.unwrap().to_bytes();
    (s, serde_json::from_slice(&b).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_show_rows_dead_letters_partitions_and_lag() {
    let kafka_cluster = MockKafka::start(&[("events", 2)]);
    let bootstrap = kafka_cluster.bootstrap();
    let producer = kafka_cluster.producer();
    let mut values: Vec<String> = (0..20)
        .map(|i| format!(r#"{{"id": {i}, "nation": "{}"}}"#, ["FR", "DE"][i % 2]))
        .collect();
    values.push("not json".into());
    values.push(r#"{"id": "x", "nation": "FR"}"#.into());
    produce(&producer, "events", values).await;

    let dir = tempfile::tempdir().unwrap();
    let location =
        Location::parse(dir.path().to_str().unwrap(), dir.path(), Default::default()).unwrap();
    let kafka = KafkaSource {
        bootstrap_servers: bootstrap.clone(),
        properties: BTreeMap::new(),
    };
    let metrics = Arc::new(Metrics::default());
    let events = spec("events", "events");
    let summary = lake::writer::run(
        WriterOptions {
            spec: events.clone(),
            location: location.clone(),
            kafka: kafka.clone(),
            until_caught_up: true,
            metrics: metrics.stream("events"),
        },
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(summary.rows_written, 20);
    // A transform over the stream's table, run here until caught up.
    let transform = Arc::new(lake::transform::TransformSpec {
        name: "french".into(),
        source: "events".into(),
        sql: "SELECT id FROM events WHERE nation = 'FR'".into(),
        table: "events_fr".into(),
        partition_by: Vec::new(),
        partition_spans: Vec::new(),
        trigger: std::time::Duration::from_millis(100),
        max_source_versions: 100,
        sql_at: Default::default(),
        window: None,
        sink: None,
    });
    let engine = lake::sql::SqlEngine::new(
        lake::sql::LakeCatalog::new(location.clone()),
        lake::sql::Limits::default(),
    )
    .unwrap();
    lake::transform::run(
        lake::transform::TransformOptions {
            spec: transform.clone(),
            engine: engine.clone(),
            until_caught_up: true,
            metrics: metrics.transform("french"),
            kafka: None,
        },
        CancellationToken::new(),
    )
    .await
    .unwrap();

    let db = dir.path().join("meta.db");
    let store = Arc::new(
        SqlStore::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap(),
    );
    store.migrate().await.unwrap();
    let app = app(AppState::new(WebOptions {
        store,
        kinds: tasks::registry(),
        sql: Some(engine),
        transforms: vec![transform],
        streams: vec![
            StreamSource {
                spec: events.clone(),
                location: location.clone(),
                kafka: kafka.clone(),
            },
            StreamSource {
                spec: spec("orphan", "elsewhere"),
                location: location.clone(),
                // Nothing listens on the discard port.
                kafka: KafkaSource {
                    bootstrap_servers: "127.0.0.1:9".into(),
                    properties: BTreeMap::new(),
                },
            },
        ],
        metrics: Some(metrics),
        token: None,
        anonymous_read: false,
        allowed_hosts: Vec::new(),
        project: None,
    }));

    let (status, v) = get_json(&app, "/api/v1/streams/events").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["rows"], 20);
    assert_eq!(v["rejected"], 2);
    assert_eq!(v["total_lag"], 0);
    assert_eq!(v["state"], "caught up");
    assert_eq!(v["running_here"], true);
    assert_eq!(v["live"]["records_written"], 20);
    assert_eq!(v["lag"].as_array().unwrap().len(), 2);
    let parts: Vec<&str> = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(parts, vec!["nation=DE", "nation=FR"]);
    assert!(v["version"].as_u64().unwrap() >= 1);
    assert!(v["last_commit"].is_string());

    // New records not yet written show up as lag.
    produce(
        &producer,
        "events",
        (0..5)
            .map(|i| format!(r#"{{"id": {i}, "nation": "US"}}"#))
            .collect(),
    )
    .await;
    let (_, v) = get_json(&app, "/api/v1/streams/events").await;
    assert_eq!(v["total_lag"], 5);
    assert_eq!(v["state"], "behind");

    let (_, all) = get_json(&app, "/api/v1/streams").await;
    let orphan = &all["streams"][1];
    assert_eq!(orphan["state"], "kafka unreachable");
    assert!(
        orphan["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("Kafka:"),
        "{orphan}"
    );
    let (status, nope) = get_json(&app, "/api/v1/streams/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        nope["error"]["message"]
            .as_str()
            .unwrap()
            .contains("events, orphan")
    );

    let (status, t) = get_json(&app, "/api/v1/transforms").await;
    assert_eq!(status, StatusCode::OK, "{t}");
    let t = &t["transforms"][0];
    assert_eq!(t["name"], "french");
    assert_eq!(t["checkpoint"], v["version"], "{t}");
    assert_eq!(t["behind"], 0, "{t}");
    assert_eq!(t["live"]["rows_out"], 10, "{t}");
    assert_eq!(t["live"]["rows_in"], 20, "{t}");
    assert!(t["last_commit"].is_string(), "{t}");

    let page = app
        .clone()
        .oneshot(Request::get("/streams").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let html = String::from_utf8(
        page.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(html.contains("nation=FR"));
    assert!(
        html.contains("french") && html.contains("events_fr"),
        "{html}"
    );
    assert!(html.contains("stream-behind"));
    assert!(html.contains("events_dead_letter"));
}
