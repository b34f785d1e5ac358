//! Kafka as the lake sees it: how to reach a cluster ([`KafkaSource`]), the
//! key of one partition ([`TopicPartition`]), reading what the partitions'
//! logs hold ([`log_ranges`], [`last_offsets`], [`OffsetReader`]) — the
//! public read API the web UI's lag display and `--until-caught-up` share —
//! and, in [`logs`], judging whether a table's committed offsets still fit
//! the broker's logs.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::LakeError;

mod logs;

pub use logs::{LogCheck, LogMismatch, check_logs, mismatches, out_of_range, replaced, suspects};

/// How a client reaches Kafka.
#[derive(Debug, Clone)]
pub struct KafkaSource {
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// Extra client properties (security, timeouts), applied before a
    /// stream's own `consumer` properties.
    pub properties: BTreeMap<String, String>,
}

impl KafkaSource {
    /// A client config with the bootstrap servers and the extra properties.
    pub fn client_config(&self, client_id: &str) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", client_id);
        for (k, v) in &self.properties {
            cfg.set(k, v);
        }
        cfg
    }
}

/// One partition of one topic: the key of everything the writer tracks per
/// partition (buffers, log offsets, end offsets). The topic is shared, so
/// cloning a key per record allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: Arc<str>,
    /// Partition number.
    pub partition: i32,
}

impl TopicPartition {
    /// The key of `partition` of `topic`.
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// What a partition's log holds now: offsets `start..end`. `end` is what
/// Kafka tools call the end offset: the next offset to be written (0 for a
/// partition that never had a record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRange {
    /// The earliest offset still held (retention moves it up).
    pub start: i64,
    /// The next offset to be written.
    pub end: i64,
}

impl LogRange {
    /// The last offset held, -1 when the partition is empty.
    pub fn last(&self) -> i64 {
        if self.end <= self.start {
            -1
        } else {
            self.end - 1
        }
    }
}

/// The [`LogRange`] of every partition of `topics` now: one batched
/// ListOffsets request per bound instead of a round trip per partition.
/// Blocks (up to `timeout` per request).
pub fn log_ranges<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    topics: &[String],
    timeout: Duration,
) -> Result<HashMap<TopicPartition, LogRange>, LakeError> {
    let mut ends = TopicPartitionList::new();
    let mut starts = TopicPartitionList::new();
    for topic in topics {
        let md = consumer
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| LakeError::Kafka(format!("cannot read metadata of topic {topic}: {e}")))?;
        for t in md.topics() {
            for p in t.partitions() {
                // librdkafka reads timestamp -1 as "latest", -2 as "earliest".
                let _ = ends.add_partition_offset(topic, p.id(), Offset::End);
                let _ = starts.add_partition_offset(topic, p.id(), Offset::Beginning);
            }
        }
    }
    let lookup = |tpl: TopicPartitionList| {
        consumer
            .offsets_for_times(tpl, timeout)
            .map_err(|e| LakeError::Kafka(format!("cannot read the partitions' offsets: {e}")))
    };
    let (ends, starts) = (lookup(ends)?, lookup(starts)?);
    let start_of: HashMap<TopicPartition, i64> = starts
        .elements()
        .iter()
        .filter_map(|e| {
            e.offset()
                .to_raw()
                .map(|o| (TopicPartition::new(e.topic(), e.partition()), o))
        })
        .collect();
    let mut out = HashMap::new();
    for e in ends.elements() {
        let key = TopicPartition::new(e.topic(), e.partition());
        let end = e.offset().to_raw().ok_or_else(|| {
            LakeError::Kafka(format!("no end offset for {}/{}", e.topic(), e.partition()))
        })?;
        let start = start_of.get(&key).copied().unwrap_or(0).min(end);
        out.insert(key, LogRange { start, end });
    }
    Ok(out)
}

/// The last offset of every partition of `topics` now (-1 when a partition
/// is empty). Blocks (up to `timeout` per request).
pub fn last_offsets<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    topics: &[String],
    timeout: Duration,
) -> Result<HashMap<TopicPartition, i64>, LakeError> {
    Ok(log_ranges(consumer, topics, timeout)?
        .into_iter()
        .map(|(tp, r)| (tp, r.last()))
        .collect())
}

/// A Kafka client kept for reading end offsets (lag displays: the web UI's
/// streams page asks every few seconds, so the client and its broker
/// connections are made once, not per request).
pub struct OffsetReader {
    consumer: BaseConsumer,
    kafka: KafkaSource,
}

impl OffsetReader {
    /// A client for `kafka` (connects lazily).
    pub fn new(kafka: &KafkaSource) -> Result<OffsetReader, LakeError> {
        let consumer = kafka
            .client_config("tributary-lag")
            .create()
            .map_err(|e| LakeError::Kafka(format!("cannot create a Kafka client: {e}")))?;
        Ok(OffsetReader {
            consumer,
            kafka: kafka.clone(),
        })
    }

    /// [`check_logs`] of `topics`. Blocks; call it from a blocking thread.
    pub fn check_logs(
        &self,
        topics: &[String],
        committed: impl Fn(&TopicPartition) -> Option<i64>,
        fingerprint: impl Fn(&TopicPartition) -> Option<i64>,
        timeout: Duration,
    ) -> Result<LogCheck, LakeError> {
        check_logs(
            &self.consumer,
            &self.kafka,
            topics,
            committed,
            fingerprint,
            timeout,
        )
    }

    /// [`log_ranges`] of `topics`. Blocks; call it from a blocking thread.
    pub fn log_ranges(
        &self,
        topics: &[String],
        timeout: Duration,
    ) -> Result<HashMap<TopicPartition, LogRange>, LakeError> {
        log_ranges(&self.consumer, topics, timeout)
    }

    /// The first offset of each partition of `topics` whose record's
    /// timestamp is at or after `at` (the end offset where none is that
    /// recent): where a replay "from a time" starts. Blocks.
    pub fn offsets_at(
        &self,
        topics: &[String],
        at: chrono::DateTime<chrono::Utc>,
        timeout: Duration,
    ) -> Result<BTreeMap<(String, i32), i64>, LakeError> {
        let ranges = self.log_ranges(topics, timeout)?;
        let mut tpl = TopicPartitionList::new();
        for tp in ranges.keys() {
            let _ = tpl.add_partition_offset(
                &tp.topic,
                tp.partition,
                Offset::Offset(at.timestamp_millis()),
            );
        }
        let found = self
            .consumer
            .offsets_for_times(tpl, timeout)
            .map_err(|e| LakeError::Kafka(format!("cannot look up offsets by time: {e}")))?;
        Ok(found
            .elements()
            .iter()
            .map(|e| {
                let tp = TopicPartition::new(e.topic(), e.partition());
                let end = ranges.get(&tp).map_or(0, |r| r.end);
                let o = e.offset().to_raw().filter(|o| *o >= 0).unwrap_or(end);
                ((e.topic().to_string(), e.partition()), o)
            })
            .collect())
    }

    /// [`last_offsets`] of `topics`. Blocks; call it from a blocking thread.
    pub fn last_offsets(
        &self,
        topics: &[String],
        timeout: Duration,
    ) -> Result<HashMap<TopicPartition, i64>, LakeError> {
        last_offsets(&self.consumer, topics, timeout)
    }
}
