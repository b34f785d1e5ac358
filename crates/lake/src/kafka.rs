//! Kafka as the lake sees it: how to reach a cluster ([`KafkaSource`]), the
//! key of one partition ([`TopicPartition`]), and reading the partitions'
//! end offsets ([`last_offsets`], [`OffsetReader`]) — the public read API
//! the web UI's lag display and `--until-caught-up` share.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::LakeError;

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

/// The last offset of every partition of `topics` now (-1 when a partition
/// is empty): one batched ListOffsets request per bound instead of a round
/// trip per partition. Blocks (up to `timeout` per request).
pub fn last_offsets<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    topics: &[String],
    timeout: Duration,
) -> Result<HashMap<TopicPartition, i64>, LakeError> {
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
    let low: HashMap<TopicPartition, i64> = starts
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
        let high = e.offset().to_raw().ok_or_else(|| {
            LakeError::Kafka(format!("no end offset for {}/{}", e.topic(), e.partition()))
        })?;
        let low = low.get(&key).copied().unwrap_or(0);
        out.insert(key, if high <= low { -1 } else { high - 1 });
    }
    Ok(out)
}

/// A Kafka client kept for reading end offsets (lag displays: the web UI's
/// streams page asks every few seconds, so the client and its broker
/// connections are made once, not per request).
pub struct OffsetReader {
    consumer: BaseConsumer,
}

impl OffsetReader {
    /// A client for `kafka` (connects lazily).
    pub fn new(kafka: &KafkaSource) -> Result<OffsetReader, LakeError> {
        let consumer = kafka
            .client_config("tributary-lag")
            .create()
            .map_err(|e| LakeError::Kafka(format!("cannot create a Kafka client: {e}")))?;
        Ok(OffsetReader { consumer })
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
