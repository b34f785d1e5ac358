//! The writer's Kafka consumer and its rebalance callbacks.
//!
//! librdkafka calls [`WriterContext`] while the loop polls; the callback
//! positions every newly assigned partition from the table log (never from
//! the consumer group) and queues the event, and the loop applies the queue
//! before the messages that follow it (`Writer::handle_rebalance`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{
    BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer,
};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext};

use crate::LakeError;
use crate::config::StreamSpec;
use crate::kafka::{KafkaSource, TopicPartition};
use crate::metrics::StreamMetrics;

/// The table log's offset per partition as the writer last read or wrote
/// it: the one record of "committed" the writer keeps. The loop writes it
/// (`Writer::record_committed`); the assignment callback reads it to
/// position partitions.
#[derive(Debug, Clone, Default)]
pub(super) struct LogOffsets(Arc<Mutex<HashMap<TopicPartition, i64>>>);

impl LogOffsets {
    pub fn get(&self, tp: &TopicPartition) -> Option<i64> {
        self.0.lock().expect("log offsets lock").get(tp).copied()
    }

    pub fn set(&self, tp: &TopicPartition, offset: Option<i64>) {
        let mut m = self.0.lock().expect("log offsets lock");
        match offset {
            Some(o) => m.insert(tp.clone(), o),
            None => m.remove(tp),
        };
    }
}

/// Rebalance events not yet applied by the loop.
#[derive(Debug, Default)]
pub(super) struct RebalanceQueue {
    pub revoked: Vec<TopicPartition>,
    pub assigned: Vec<TopicPartition>,
}

/// What the callbacks share with the loop.
#[derive(Debug, Clone, Default)]
pub(super) struct Rebalances {
    pub queue: Arc<Mutex<RebalanceQueue>>,
    /// Bumped by every rebalance callback; the loop compares it with the
    /// count it last applied (read without the lock, per message).
    pub count: Arc<AtomicU64>,
}

impl Rebalances {
    /// Takes the queued events and the count they bring the loop to.
    pub fn take(&self) -> (RebalanceQueue, u64) {
        let mut q = self.queue.lock().expect("rebalance lock");
        (std::mem::take(&mut *q), self.count.load(Ordering::SeqCst))
    }

    fn push(&self, f: impl FnOnce(&mut RebalanceQueue)) {
        let mut q = self.queue.lock().expect("rebalance lock");
        f(&mut q);
        self.count.fetch_add(1, Ordering::SeqCst);
    }
}

pub(super) struct WriterContext {
    pub rebalances: Rebalances,
    pub log_offsets: LogOffsets,
    pub metrics: Arc<StreamMetrics>,
    pub stream: String,
    /// Where a partition without a log offset starts (`StreamSpec::start`).
    pub start: BTreeMap<(String, i32), i64>,
}

impl ClientContext for WriterContext {
    fn stats(&self, stats: Statistics) {
        for (topic, t) in &stats.topics {
            for (p, s) in &t.partitions {
                if *p >= 0 && s.hi_offset >= 0 {
                    self.metrics
                        .partition(topic, *p, |f| f.high_watermark = Some(s.hi_offset));
                }
            }
        }
    }
}

impl ConsumerContext for WriterContext {
    /// librdkafka's rebalance, with every newly assigned partition
    /// positioned from the table log **before** it is assigned: assigning
    /// first and seeking after would start a fetch from the group's
    /// committed offset (there is none: the table holds the offsets), which
    /// `auto.offset.reset = error` reports as an error on every first start.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let done = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.position(tpl);
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.revoked(tpl);
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::warn!(stream = %self.stream, error = ?other, "rebalance error");
                Ok(())
            }
        };
        if let Err(err) = done {
            tracing::warn!(stream = %self.stream, %err, "cannot apply the rebalance");
        }
    }
}

impl WriterContext {
    /// Sets each partition's offset from the table log (the stream's start
    /// offset, else the earliest record, when the log holds none) and
    /// queues the assignment.
    fn position(&self, tpl: &mut TopicPartitionList) {
        let mut assigned = Vec::new();
        for (topic, partition) in tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect::<Vec<_>>()
        {
            let tp = TopicPartition::new(topic.as_str(), partition);
            let offset = match self.log_offsets.get(&tp) {
                Some(c) => Offset::Offset(c + 1),
                None => match self.start.get(&(topic.clone(), partition)) {
                    Some(s) => Offset::Offset(*s),
                    None => Offset::Beginning,
                },
            };
            if let Err(err) = tpl.set_partition_offset(&topic, partition, offset) {
                tracing::warn!(stream = %self.stream, %err, "cannot position partition");
            }
            tracing::info!(stream = %self.stream, topic, partition, ?offset, "partition assigned");
            self.metrics
                .partition(&topic, partition, |f| f.assigned = true);
            assigned.push(tp);
        }
        self.rebalances.push(|q| q.assigned.extend(assigned));
    }

    /// Queues the revocation.
    fn revoked(&self, tpl: &TopicPartitionList) {
        for e in tpl.elements() {
            tracing::info!(stream = %self.stream, topic = e.topic(), partition = e.partition(), "partition revoked");
            let tp = TopicPartition::new(e.topic(), e.partition());
            self.rebalances.push(|q| q.revoked.push(tp));
            self.metrics
                .partition(e.topic(), e.partition(), |f| f.assigned = false);
        }
    }
}

/// The consumer of a stream: manual offsets (the table log holds them),
/// a small prefetch (the writer's own budget holds the data), statistics
/// for the high watermarks.
pub(super) fn create(
    kafka: &KafkaSource,
    spec: &StreamSpec,
    ctx: WriterContext,
) -> Result<StreamConsumer<WriterContext>, LakeError> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("group.id", &spec.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("statistics.interval.ms", "5000")
        // librdkafka prefetches up to 64 MiB by default; the writer's own
        // memory budget is the one that should hold data.
        .set("queued.max.messages.kbytes", "16384")
        .set("client.id", format!("tributary-{}", spec.name));
    // The user's properties last: they may tune any of the above except
    // what the stream config refuses (group.id, auto commits).
    for (k, v) in kafka.properties.iter().chain(spec.consumer.iter()) {
        cfg.set(k, v);
    }
    // Never jump to another position by itself: a position outside the
    // log is an error the writer explains (`log_check`), not a reset that
    // would skip or re-read records silently.
    cfg.set("auto.offset.reset", "error");
    cfg.create_with_context(ctx)
        .map_err(|e| LakeError::Kafka(format!("cannot create the consumer: {e}")))
}
