//! Shared helpers of the lake's integration tests: the `events` stream,
//! writer options, `lake verify`, and a fault-injecting wrapper around real
//! object stores. Kafka helpers come from `testkit`.
#![allow(dead_code, missing_docs)]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use lake::config::StreamSpec;
use lake::kafka::KafkaSource;
use lake::metrics::StreamMetrics;
use lake::table::Location;
use lake::writer::{RunSummary, WriterOptions};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use tokio_util::sync::CancellationToken;

/// A good record: id, nation, event time.
pub fn good(i: u64) -> String {
    let nations = ["FR", "DE", "US", "BR"];
    format!(
        r#"{{"id": {i}, "nation": "{}", "at": "2026-11-2{}T10:00:00Z"}}"#,
        nations[(i % 4) as usize],
        1 + i % 2
    )
}

pub fn spec(topic: &str, extra: &str) -> Arc<StreamSpec> {
    let text = format!(
        r#"
name = "events"
topics = ["{topic}"]
table = "events"
schema = {{ columns = [
  {{ name = "id", type = "int64", nullable = false }},
  {{ name = "nation", type = "utf8", nullable = false }},
  {{ name = "at", type = "timestamp[us, UTC]", nullable = false }},
] }}
partition_by = ["nation", "date(at)"]
{extra}
"#
    );
    testkit::stream_spec(&text)
}

pub fn options(
    spec: Arc<StreamSpec>,
    location: Location,
    bootstrap: String,
    until_caught_up: bool,
) -> WriterOptions {
    WriterOptions {
        spec,
        location,
        kafka: KafkaSource {
            bootstrap_servers: bootstrap,
            properties: BTreeMap::from([
                ("session.timeout.ms".to_string(), "6000".to_string()),
                ("heartbeat.interval.ms".to_string(), "500".to_string()),
            ]),
        },
        until_caught_up,
        metrics: Arc::new(StreamMetrics::default()),
    }
}

pub async fn run_until_caught_up(opts: WriterOptions) -> RunSummary {
    tokio::time::timeout(
        Duration::from_secs(120),
        lake::writer::run(opts, CancellationToken::new()),
    )
    .await
    .expect("caught up within 2 minutes")
    .expect("writer run")
}

/// `lake verify` of the `events` stream's table and dead letters; panics
/// with the problems unless exactly once holds.
pub async fn verified(location: &Location) -> lake::tools::VerifyReport {
    let report = lake::tools::verify(
        location,
        "events",
        Some("events_dead_letter"),
        Some("events"),
    )
    .await
    .expect("verify runs");
    assert!(report.ok(), "{:#?}", report.problems);
    report
}

/// Wraps a real object store and injects faults: fail the Nth put (and
/// every put after it while `fail_from` holds), and delay every put.
#[derive(Debug)]
pub struct Faulty {
    pub inner: Arc<dyn ObjectStore>,
    pub puts: AtomicU64,
    /// Fail puts numbered in [fail_from, fail_until).
    pub fail_from: AtomicU64,
    pub fail_until: AtomicU64,
    pub delay_ms: AtomicU64,
}

impl Faulty {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<Faulty> {
        Arc::new(Faulty {
            inner,
            puts: AtomicU64::new(0),
            fail_from: AtomicU64::new(u64::MAX),
            fail_until: AtomicU64::new(u64::MAX),
            delay_ms: AtomicU64::new(0),
        })
    }

    async fn before_put(&self, location: &Path) -> object_store::Result<()> {
        let n = self.puts.fetch_add(1, Ordering::SeqCst) + 1;
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if n >= self.fail_from.load(Ordering::SeqCst) && n < self.fail_until.load(Ordering::SeqCst)
        {
            return Err(object_store::Error::Generic {
                store: "faulty",
                source: format!("injected failure of put #{n} ({location})").into(),
            });
        }
        Ok(())
    }
}

impl fmt::Display for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Faulty {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.before_put(location).await?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.before_put(location).await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
