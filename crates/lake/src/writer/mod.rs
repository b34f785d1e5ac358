//! The streaming writer: Kafka topic partitions → one Delta table (and its
//! dead-letter table), exactly once.
//!
//! ## The loop
//!
//! Records are staged per Kafka partition ([`RawBatch`]) and decoded in
//! chunks into Arrow batches. A *flush* takes a set of partitions, writes
//! their rows as Parquet files (one per table partition), commits rejected
//! records to the dead-letter table, then commits the files together with
//! each partition's new last offset (Delta `txn`) to the table — refused if
//! the table's offsets are not the ones the buffers started after (a zombie
//! or a partition that moved). Only then are Kafka group offsets committed,
//! for lag tools.
//!
//! Flushes happen when a partition's buffer reaches the rotation limits
//! (rows, bytes, age), when all buffered data exceeds the memory budget
//! (largest buffers first), when `--until-caught-up` partitions reach their
//! end, and at shutdown.
//!
//! ## Files
//!
//! `consumer`: the Kafka consumer and the rebalance callbacks (positions
//! from the log); `consume`: the loop and the per-record path; `buffer`:
//! one partition's buffer; `rebalance`: applying assignment changes;
//! `flush`: what is due, files, the fenced commit; `dead_letters`;
//! `encoding`: Parquet settings; `caught_up`: `--until-caught-up`.
//!
//! ## Where a restart resumes
//!
//! From the table log, never from the consumer group: on assignment the
//! writer assigns each partition at (last offset in the log + 1), or at the
//! beginning when the log has none. Records at or below the log's offset
//! are skipped, so a stale position costs time, never a duplicate.

mod buffer;
mod caught_up;
mod consume;
mod consumer;
mod dead_letters;
mod encoding;
mod flush;
mod log_check;
mod rebalance;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::topic_partition_list::Offset;
use tokio_util::sync::CancellationToken;

use self::buffer::PartitionBuffer;
use self::consumer::{LogOffsets, Rebalances, WriterContext};
use self::encoding::Encoding;
use crate::LakeError;
use crate::config::StreamSpec;
use crate::decode::RecordDecoder;
use crate::kafka::{KafkaSource, TopicPartition};
use crate::metrics::StreamMetrics;
use crate::schema::dead_letter_schema;
use crate::table::{DeltaTableHandle, Location, app_id};

/// Records staged per partition before they are decoded.
const DECODE_CHUNK: usize = 8192;

/// Everything a writer needs.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// The validated stream.
    pub spec: Arc<StreamSpec>,
    /// The lake the table lives in.
    pub location: Location,
    /// The cluster the stream's topics live on.
    pub kafka: KafkaSource,
    /// Exit once every assigned partition reached the end offset seen at
    /// start (and everything is committed).
    pub until_caught_up: bool,
    /// The stream's counters (Prometheus, the web UI).
    pub metrics: Arc<StreamMetrics>,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Records received.
    pub records_in: u64,
    /// Rows committed to the table.
    pub rows_written: u64,
    /// Records committed to the dead-letter table.
    pub rejected: u64,
    /// Table commits.
    pub commits: u64,
    /// Commits refused by fencing.
    pub fenced: u64,
    /// Last table version.
    pub version: u64,
}

/// A running writer: the consumer, the tables, one buffer per partition.
struct Writer {
    opts: WriterOptions,
    consumer: Arc<StreamConsumer<WriterContext>>,
    /// Events from the rebalance callbacks, and how many were applied.
    rebalances: Rebalances,
    rebalances_applied: u64,
    /// The log's offset per partition as last read or written (shared with
    /// the assignment callback).
    log_offsets: LogOffsets,
    decoder: RecordDecoder,
    encoding: Encoding,
    main: DeltaTableHandle,
    dlq: DeltaTableHandle,
    buffers: HashMap<TopicPartition, PartitionBuffer>,
    /// Topic names, interned: a record's key costs no allocation.
    topics: HashMap<String, Arc<str>>,
    /// Bytes all buffers hold, for the memory budget.
    buffered: u64,
    /// Flushes made by this run: the commits' streaming `epochId`.
    flush_seq: i64,
    summary: RunSummary,
    /// End offsets seen at start (`--until-caught-up`).
    caught_up_targets: Option<HashMap<TopicPartition, i64>>,
    assigned: HashSet<TopicPartition>,
    seen_assignment: bool,
    last_refresh: Option<Instant>,
    /// When a record last arrived or the logs were last checked, whichever
    /// is later ([`Writer::recheck_if_idle`]).
    quiet_since: Instant,
}

/// Opens (creating if needed) a stream's table and dead-letter table.
pub async fn open_tables(
    spec: &StreamSpec,
    location: &Location,
) -> Result<(DeltaTableHandle, DeltaTableHandle), LakeError> {
    let parts: Vec<String> = spec
        .partition_by
        .iter()
        .map(|p| p.name().to_string())
        .collect();
    let main = location
        .open_or_create(&spec.table, &spec.table_schema, &parts)
        .await?;
    let dlq = location
        .open_or_create(&spec.dead_letter_table, &dead_letter_schema(), &[])
        .await?;
    Ok((
        DeltaTableHandle::new(&spec.table, main).await?,
        DeltaTableHandle::new(&spec.dead_letter_table, dlq).await?,
    ))
}

/// Runs a stream until `stop` is cancelled (then flushes and commits
/// everything buffered) or, with `until_caught_up`, until caught up.
pub async fn run(opts: WriterOptions, stop: CancellationToken) -> Result<RunSummary, LakeError> {
    let spec = opts.spec.clone();
    let (main, dlq) = open_tables(&spec, &opts.location).await?;
    let rebalances = Rebalances::default();
    let log_offsets = LogOffsets::default();
    let consumer = consumer::create(
        &opts.kafka,
        &spec,
        WriterContext {
            rebalances: rebalances.clone(),
            log_offsets: log_offsets.clone(),
            metrics: opts.metrics.clone(),
            stream: spec.name.clone(),
            start: spec.start.clone(),
        },
    )?;
    let mut w = Writer {
        decoder: RecordDecoder::new(spec.clone()),
        encoding: Encoding::default(),
        consumer: Arc::new(consumer),
        rebalances,
        rebalances_applied: 0,
        log_offsets,
        main,
        dlq,
        buffers: HashMap::new(),
        topics: HashMap::new(),
        buffered: 0,
        flush_seq: 0,
        summary: RunSummary::default(),
        caught_up_targets: None,
        assigned: HashSet::new(),
        seen_assignment: false,
        last_refresh: None,
        quiet_since: Instant::now(),
        opts,
    };
    w.summary.version = w.main.version();
    // Positions for the first assignment come from the log.
    w.load_log_offsets().await?;
    let topics: Vec<&str> = spec.topics.iter().map(String::as_str).collect();
    w.consumer.subscribe(&topics).map_err(|e| {
        LakeError::Kafka(format!(
            "cannot subscribe to {}: {e}",
            spec.topics.join(", ")
        ))
    })?;
    tracing::info!(stream = %spec.name, table = %spec.table, topics = %spec.topics.join(","), group = %spec.group, "stream writer started");

    let result = w.main_loop(&stop).await;
    let flushed = w.flush_all().await;
    // Close the consumer before returning (leaves the group promptly).
    w.consumer.unsubscribe();
    result?;
    flushed?;
    tracing::info!(stream = %spec.name, records = w.summary.records_in, rows = w.summary.rows_written,
        rejected = w.summary.rejected, commits = w.summary.commits, version = w.summary.version, "stream writer stopped");
    Ok(w.summary)
}

/// Notes the log's offset of a partition: the one place "committed" is
/// written (the positions the assignment callback uses, and the metrics).
fn record_committed(
    log_offsets: &LogOffsets,
    metrics: &StreamMetrics,
    tp: &TopicPartition,
    offset: Option<i64>,
) {
    log_offsets.set(tp, offset);
    metrics.partition(&tp.topic, tp.partition, |f| f.committed = offset);
}

impl Writer {
    fn spec(&self) -> &StreamSpec {
        &self.opts.spec
    }

    /// The interned name of a topic (called per record: no allocation once
    /// the topic is known).
    fn topic(&mut self, name: &str) -> Arc<str> {
        if let Some(t) = self.topics.get(name) {
            return t.clone();
        }
        let t: Arc<str> = Arc::from(name);
        self.topics.insert(name.to_string(), t.clone());
        t
    }

    /// The same key with the interned topic.
    fn intern(&mut self, tp: TopicPartition) -> TopicPartition {
        TopicPartition {
            topic: self.topic(&tp.topic),
            partition: tp.partition,
        }
    }

    fn record_committed(&self, tp: &TopicPartition, offset: Option<i64>) {
        record_committed(&self.log_offsets, &self.opts.metrics, tp, offset);
    }

    /// After a fence that moved a partition's log offset to `now`: keeps
    /// the records its buffer holds past `now` when they continue it (a
    /// swap caught up to within the buffer), else drops the buffer and
    /// seeks to `now + 1`. Whether records were kept.
    fn rebase_partition(&mut self, tp: &TopicPartition, now: Option<i64>) -> bool {
        if let (Some(g), Some(p)) = (now, self.buffers.get_mut(tp))
            && let Some(freed) = p.trim_to(g)
        {
            let kept = p.has_data();
            self.buffered -= freed.min(self.buffered);
            self.opts.metrics.set_buffered(self.buffered);
            self.record_committed(tp, now);
            return kept;
        }
        // The records re-read from `now + 1` have been waiting for the
        // table since before the fence: they are due as soon as they
        // arrive, not a whole `max_age` later (that wait was most of a
        // live writer's pause at a swap or rollback). So are all those
        // this writer had received, up to `seen`, however many flushes
        // re-reading them takes: after a rollback, records it committed
        // to the other generation, which the switch hid again.
        let (seen, oldest) = self
            .buffers
            .get(tp)
            .map_or((None, None), |p| (p.next.map(|n| n - 1), p.oldest));
        let received_again = seen.is_some_and(|s| s > now.unwrap_or(-1));
        let waiting = oldest.or_else(|| received_again.then(Instant::now));
        self.reset_partition(tp, now);
        if let Some(p) = self.buffers.get_mut(tp) {
            p.keep_waiting_since(waiting, seen);
        }
        false
    }

    /// Drops a partition's buffer and continues it from the log offset
    /// `base` (after a fence, or a reassignment that found the log moved).
    fn reset_partition(&mut self, tp: &TopicPartition, base: Option<i64>) {
        if let Some(p) = self.buffers.get_mut(tp) {
            self.buffered -= p.bytes.min(self.buffered);
            p.reset_to(base);
        }
        self.opts.metrics.set_buffered(self.buffered);
        self.record_committed(tp, base);
        if let Some(c) = base {
            let _ = self.consumer.seek(
                &tp.topic,
                tp.partition,
                Offset::Offset(c + 1),
                Duration::from_secs(5),
            );
        }
    }

    /// Reads the log's offset of every partition of the stream's topics, so
    /// the first assignment positions them.
    async fn load_log_offsets(&mut self) -> Result<(), LakeError> {
        let spec = self.opts.spec.clone();
        for topic in &spec.topics {
            let md = tokio::task::block_in_place(|| {
                self.consumer
                    .fetch_metadata(Some(topic), Duration::from_secs(30))
            })
            .map_err(|e| LakeError::Kafka(format!("cannot read metadata of topic {topic}: {e}")))?;
            for t in md.topics() {
                if let Some(err) = t.error() {
                    tracing::warn!(stream = %spec.name, topic, ?err, "topic metadata error (it may not exist yet)");
                }
                for p in t.partitions() {
                    let tp = TopicPartition::new(self.topic(topic), p.id());
                    if let Some(c) = self.main.offset(&app_id(&spec.name, topic, p.id())) {
                        self.record_committed(&tp, Some(c));
                    }
                }
            }
        }
        Ok(())
    }
}
