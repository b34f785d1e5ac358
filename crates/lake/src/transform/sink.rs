//! Publishing a transform's output to Kafka (`sink = { topic = "…" }`):
//! the KSQL step "write the enriched stream back to a topic".
//!
//! The sink follows the output **table**, not the step: each output version
//! `v`'s added rows are published, in version order, as JSON records with
//! the headers `tributary-transform`, `tributary-version` (= `v`) and
//! `tributary-row` (`v/file/row`: the same for a row however often it is
//! sent), keyed by the `key` column when one is named, else by that row id.
//! Where it stands is read back from the topic itself — the highest
//! `tributary-version` of the last records — so it needs no state of its
//! own, and it can start after the table already has history (it
//! publishes all of it).
//!
//! - `delivery = "exactly_once"` (default): each version is one Kafka
//!   transaction of a producer whose `transactional.id` is the transform's,
//!   and the position is read with `read_committed`: a crash mid-version
//!   aborts that version's records and the next run sends it again whole;
//!   a second run of the same transform fences the first. Consumers read
//!   with `isolation.level=read_committed`.
//! - `delivery = "at_least_once"` (brokers without transactions): the same
//!   records with an idempotent producer; after a crash a version may be
//!   sent again, whole — deduplicate on `tributary-row`.

use std::collections::BTreeMap;
use std::time::Duration;

use deltalake::DeltaTable;
use deltalake::kernel::{Action, Add};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::spec::{Delivery, SinkSpec};
use crate::LakeError;
use crate::kafka::KafkaSource;
use crate::sql::{Bound, SqlEngine};

/// How long broker calls (metadata, transactions, a tail read) may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A transform's sink: a producer and the last output version published.
pub struct Sink {
    transform: String,
    table: String,
    spec: SinkSpec,
    kafka: KafkaSource,
    producer: FutureProducer,
    published: Option<u64>,
    /// Whether `published` was read from the topic yet.
    positioned: bool,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("transform", &self.transform)
            .field("topic", &self.spec.topic)
            .field("published", &self.published)
            .finish()
    }
}

fn kafka_err(what: &str, e: impl std::fmt::Display) -> LakeError {
    LakeError::Config(format!("sink: {what}: {e}"))
}

impl Sink {
    /// A sink for `transform`'s output `table`; with exactly-once delivery
    /// its transactional producer is registered (fencing an older one).
    pub async fn open(
        transform: &str,
        table: &str,
        spec: &SinkSpec,
        kafka: &KafkaSource,
    ) -> Result<Sink, LakeError> {
        let mut cfg: ClientConfig = kafka.client_config(&format!("tributary-sink-{transform}"));
        cfg.set("enable.idempotence", "true")
            .set("compression.type", "zstd")
            .set("linger.ms", "5");
        if spec.delivery == Delivery::ExactlyOnce {
            cfg.set("transactional.id", format!("tributary-sink:{transform}"));
        }
        let producer: FutureProducer = cfg.create().map_err(|e| kafka_err("producer", e))?;
        if spec.delivery == Delivery::ExactlyOnce {
            let p = producer.clone();
            tokio::task::spawn_blocking(move || p.init_transactions(TIMEOUT))
                .await
                .map_err(|e| kafka_err("starting transactions", e))?
                .map_err(|e| {
                    kafka_err(
                        &format!(
                            "starting transactions for topic {:?} (a broker without transactions needs delivery = \"at_least_once\")",
                            spec.topic
                        ),
                        e,
                    )
                })?;
        }
        Ok(Sink {
            transform: transform.to_string(),
            table: table.to_string(),
            spec: spec.clone(),
            kafka: kafka.clone(),
            producer,
            published: None,
            positioned: false,
        })
    }

    /// The last output version published (after the first `publish`).
    pub fn published(&self) -> Option<u64> {
        self.published
    }

    /// Publishes every output version after the last published one, in
    /// order; returns the rows sent.
    pub async fn publish(&mut self, engine: &SqlEngine) -> Result<u64, LakeError> {
        if !self.positioned {
            self.published = self.read_position().await?;
            self.positioned = true;
        }
        let Some(table) = engine.catalog().latest(&self.table).await? else {
            return Ok(0);
        };
        let latest = table.version().unwrap_or(0);
        let from = self.published.map_or(0, |p| p + 1);
        let mut rows = 0;
        for v in from..=latest {
            rows += self.publish_version(engine, &table, v).await?;
            self.published = Some(v);
        }
        Ok(rows)
    }

    async fn publish_version(
        &self,
        engine: &SqlEngine,
        table: &DeltaTable,
        v: u64,
    ) -> Result<u64, LakeError> {
        let adds = added_in(table, v).await?;
        if adds.is_empty() {
            return Ok(0);
        }
        let exactly_once = self.spec.delivery == Delivery::ExactlyOnce;
        if exactly_once {
            self.producer
                .begin_transaction()
                .map_err(|e| kafka_err("beginning a transaction", e))?;
        }
        let sent = self.send_rows(engine, table, v, &adds).await;
        let sent = match sent {
            Ok(n) => n,
            Err(e) => {
                if exactly_once {
                    let p = self.producer.clone();
                    let _ = tokio::task::spawn_blocking(move || p.abort_transaction(TIMEOUT)).await;
                }
                return Err(e);
            }
        };
        if exactly_once {
            let p = self.producer.clone();
            tokio::task::spawn_blocking(move || p.commit_transaction(TIMEOUT))
                .await
                .map_err(|e| kafka_err("committing", e))?
                .map_err(|e| kafka_err(&format!("committing output version {v}"), e))?;
        }
        Ok(sent)
    }

    /// Sends the rows of one version's files; waits for every delivery.
    async fn send_rows(
        &self,
        engine: &SqlEngine,
        table: &DeltaTable,
        v: u64,
        adds: &[Add],
    ) -> Result<u64, LakeError> {
        let mut sent = 0u64;
        for (file, add) in adds.iter().enumerate() {
            let bound = BTreeMap::from([(
                "rows".to_string(),
                Bound::Files {
                    table: table.clone(),
                    files: vec![add.clone()],
                },
            )]);
            let answer = engine
                .plan_bound("SELECT * FROM rows", &bound)
                .await
                .map_err(|e| kafka_err("reading the output", e.message))?
                .collect(None)
                .await
                .map_err(|e| kafka_err("reading the output", e.message))?;
            let mut row = 0usize;
            let mut deliveries = Vec::new();
            for batch in &answer.batches {
                let key_col = self
                    .spec
                    .key
                    .as_ref()
                    .and_then(|k| batch.schema().index_of(k).ok());
                for (i, line) in json_lines(batch)?.into_iter().enumerate() {
                    let id = format!("{v}/{file}/{row}");
                    let key = match key_col {
                        Some(c) => arrow::util::display::array_value_to_string(batch.column(c), i)
                            .unwrap_or_default(),
                        None => id.clone(),
                    };
                    let headers = OwnedHeaders::new()
                        .insert(Header {
                            key: "tributary-transform",
                            value: Some(self.transform.as_bytes()),
                        })
                        .insert(Header {
                            key: "tributary-version",
                            value: Some(v.to_string().as_bytes()),
                        })
                        .insert(Header {
                            key: "tributary-row",
                            value: Some(id.as_bytes()),
                        });
                    let record = FutureRecord::to(&self.spec.topic)
                        .key(&key)
                        .payload(&line)
                        .headers(headers);
                    let delivery = self
                        .producer
                        .send_result(record)
                        .map_err(|(e, _)| kafka_err("queueing a record", e))?;
                    deliveries.push(delivery);
                    row += 1;
                }
            }
            for d in deliveries {
                d.await
                    .map_err(|e| kafka_err("delivery", e))?
                    .map_err(|(e, _)| {
                        kafka_err(&format!("delivering to {:?}", self.spec.topic), e)
                    })?;
            }
            sent += row as u64;
        }
        Ok(sent)
    }

    /// The highest `tributary-version` among the last records of each
    /// partition of the topic (committed ones only with exactly-once), or
    /// `None` when the topic holds none of this transform's.
    async fn read_position(&self) -> Result<Option<u64>, LakeError> {
        let mut cfg = self
            .kafka
            .client_config(&format!("tributary-sink-position-{}", self.transform));
        cfg.set(
            "group.id",
            format!("tributary-sink-position-{}", self.transform),
        )
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed");
        let consumer: BaseConsumer = cfg.create().map_err(|e| kafka_err("consumer", e))?;
        let topic = self.spec.topic.clone();
        let transform = self.transform.clone();
        tokio::task::spawn_blocking(move || tail_version(&consumer, &topic, &transform))
            .await
            .map_err(|e| kafka_err("reading the topic's tail", e))?
    }
}

/// Reads backwards from each partition's end until it finds a record of
/// `transform`'s with a version (control records and aborted records are
/// skipped by the consumer).
fn tail_version(
    consumer: &BaseConsumer,
    topic: &str,
    transform: &str,
) -> Result<Option<u64>, LakeError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .map_err(|e| kafka_err(&format!("metadata of {topic:?}"), e))?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    if t.error().is_some() || t.partitions().is_empty() {
        return Ok(None); // no such topic yet: it is created by the first send
    }
    let mut best: Option<u64> = None;
    for p in t.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, p.id(), TIMEOUT)
            .map_err(|e| kafka_err("end offsets", e))?;
        let mut span = 64i64;
        let mut end = high;
        while end > low {
            let start = (end - span).max(low);
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, p.id(), Offset::Offset(start))
                .map_err(|e| kafka_err("assigning", e))?;
            consumer
                .assign(&tpl)
                .map_err(|e| kafka_err("assigning", e))?;
            let mut found = None;
            let deadline = std::time::Instant::now() + TIMEOUT;
            loop {
                let Some(m) = consumer.poll(Duration::from_millis(200)) else {
                    if position_reached(consumer, topic, p.id(), end)
                        || std::time::Instant::now() > deadline
                    {
                        break;
                    }
                    continue;
                };
                let m = m.map_err(|e| kafka_err("reading", e))?;
                if m.offset() >= end {
                    break;
                }
                if let Some(v) = version_of(&m, transform) {
                    found = Some(found.map_or(v, |f: u64| f.max(v)));
                }
                if m.offset() + 1 >= end {
                    break;
                }
            }
            if let Some(v) = found {
                best = Some(best.map_or(v, |b| b.max(v)));
                break;
            }
            end = start;
            span *= 4;
        }
    }
    Ok(best)
}

/// Whether the consumer's position in a partition is at or past `end`.
fn position_reached(consumer: &BaseConsumer, topic: &str, partition: i32, end: i64) -> bool {
    let pos = consumer
        .position()
        .ok()
        .and_then(|l| {
            l.find_partition(topic, partition)
                .and_then(|e| e.offset().to_raw())
        })
        .unwrap_or(-1);
    pos >= end
}

fn version_of(m: &rdkafka::message::BorrowedMessage<'_>, transform: &str) -> Option<u64> {
    let headers = m.headers()?;
    let mut ours = false;
    let mut version = None;
    for h in headers.iter() {
        match h.key {
            "tributary-transform" => ours = h.value == Some(transform.as_bytes()),
            "tributary-version" => {
                version = std::str::from_utf8(h.value?).ok()?.parse().ok();
            }
            _ => {}
        }
    }
    if ours { version } else { None }
}

/// The files commit `v` added (with data).
async fn added_in(table: &DeltaTable, v: u64) -> Result<Vec<Add>, LakeError> {
    let Some(bytes) = table.log_store().read_commit_entry(v).await? else {
        return Err(LakeError::Config(format!(
            "sink: version {v} of the output is no longer in the Delta log (log retention removed it) before it was published"
        )));
    };
    let mut adds = Vec::new();
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        if let Ok(Action::Add(a)) = serde_json::from_slice::<Action>(line)
            && a.data_change
        {
            adds.push(a);
        }
    }
    Ok(adds)
}

/// Each row of a batch as one JSON object.
fn json_lines(batch: &arrow::array::RecordBatch) -> Result<Vec<Vec<u8>>, LakeError> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
        w.write(batch)?;
        w.finish()?;
    }
    Ok(buf
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}
