//! Producing to Kafka the way a data pipeline should: idempotent
//! (`enable.idempotence`, `acks=all`), compressed, batched by librdkafka (no
//! flush per message), every delivery awaited, and a report of what was
//! delivered per partition.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use scheduler::operator::TaskError;
use schemars::JsonSchema;
use serde::Deserialize;

/// Kafka settings of an ingest task.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    /// Bootstrap servers; may hold `${VAR}` references. Default:
    /// `${TRIBUTARY_KAFKA_BOOTSTRAP:-localhost:9092}` (standalone sets the variable).
    #[serde(default = "default_bootstrap")]
    pub bootstrap_servers: String,
    /// Compression: `zstd` (default), `lz4`, `snappy`, `gzip` or `none`.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// Extra librdkafka producer properties, passed through (values may hold `${VAR}`).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

fn default_bootstrap() -> String {
    "${TRIBUTARY_KAFKA_BOOTSTRAP:-localhost:9092}".into()
}

fn default_compression() -> String {
    "zstd".into()
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            bootstrap_servers: default_bootstrap(),
            compression: default_compression(),
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaSettings {
    /// Problems found without I/O.
    pub fn validate(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !["zstd", "lz4", "snappy", "gzip", "none"].contains(&self.compression.as_str()) {
            out.push(format!(
                "kafka.compression {:?}: use zstd, lz4, snappy, gzip or none",
                self.compression
            ));
        }
        for k in ["enable.idempotence", "acks"] {
            if self.properties.contains_key(k) {
                out.push(format!("kafka.properties.{k} cannot be changed: deliveries are idempotent with acks=all"));
            }
        }
        if let Err(e) = scheduler::secrets::check_syntax(&self.bootstrap_servers) {
            out.push(format!("kafka.bootstrap_servers: {e}"));
        }
        out
    }

    /// The producer, with `${VAR}` resolved (values returned for masking).
    pub fn producer(&self) -> Result<(FutureProducer, String, Vec<String>), TaskError> {
        let mut secrets = Vec::new();
        let mut resolve = |what: &str, v: &str| -> Result<String, TaskError> {
            let r = scheduler::secrets::resolve(v)
                .map_err(|e| TaskError::Fatal(format!("{what}: {e}")))?;
            secrets.extend(r.secrets);
            Ok(r.value)
        };
        let bootstrap = resolve("kafka.bootstrap_servers", &self.bootstrap_servers)?;
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &bootstrap)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", &self.compression)
            .set("linger.ms", "20")
            .set("message.timeout.ms", "120000");
        for (k, v) in &self.properties {
            let v = resolve(&format!("kafka.properties.{k}"), v)?;
            cfg.set(k, v);
        }
        let p = cfg
            .create()
            .map_err(|e| TaskError::Fatal(format!("cannot create the Kafka producer: {e}")))?;
        Ok((p, bootstrap, secrets))
    }
}

/// Offsets delivered to one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionReport {
    /// Records delivered.
    pub count: u64,
    /// Lowest offset.
    pub first: i64,
    /// Highest offset.
    pub last: i64,
}

/// What a batch delivered, per partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport(pub BTreeMap<i32, PartitionReport>);

impl DeliveryReport {
    /// Records delivered in all.
    pub fn total(&self) -> u64 {
        self.0.values().map(|p| p.count).sum()
    }

    /// Adds another report.
    pub fn merge(&mut self, other: &DeliveryReport) {
        for (p, r) in &other.0 {
            let e = self.0.entry(*p).or_insert(PartitionReport {
                count: 0,
                first: r.first,
                last: r.last,
            });
            if e.count > 0 {
                e.first = e.first.min(r.first);
                e.last = e.last.max(r.last);
            }
            e.count += r.count;
        }
    }

    /// One line per partition for the task log.
    pub fn lines(&self, topic: &str) -> Vec<String> {
        self.0
            .iter()
            .map(|(p, r)| {
                format!(
                    "delivered {} record(s) to {topic}[{p}] at offsets {}..={}",
                    r.count, r.first, r.last
                )
            })
            .collect()
    }
}

/// Sends every (key, payload) and awaits every delivery. librdkafka batches
/// and retries; a delivery that still fails fails the try (retryable).
pub async fn produce_all(
    producer: &FutureProducer,
    topic: &str,
    records: &[(String, String)],
) -> Result<DeliveryReport, TaskError> {
    let mut report = DeliveryReport::default();
    for chunk in records.chunks(50_000) {
        let sends = chunk.iter().map(|(k, v)| {
            producer.send(
                FutureRecord::to(topic).key(k).payload(v),
                Duration::from_secs(60),
            )
        });
        for r in join_all(sends).await {
            match r {
                Ok(d) => {
                    let e = report.0.entry(d.partition).or_insert(PartitionReport {
                        count: 0,
                        first: d.offset,
                        last: d.offset,
                    });
                    e.count += 1;
                    e.first = e.first.min(d.offset);
                    e.last = e.last.max(d.offset);
                }
                Err((e, _)) => {
                    return Err(TaskError::Retryable(format!(
                        "Kafka delivery to {topic} failed: {e}"
                    )));
                }
            }
        }
    }
    Ok(report)
}
