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
//! ## Where a restart resumes
//!
//! From the table log, never from the consumer group: on assignment the
//! writer assigns each partition at (last offset in the log + 1), or at the
//! beginning when the log has none. Records at or below the log's offset
//! are skipped, so a stale position costs time, never a duplicate.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{
    BinaryArray, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::kernel::Add;
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use futures::{FutureExt, StreamExt};
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientConfig, ClientContext};
use tokio_util::sync::CancellationToken;

use crate::LakeError;
use crate::config::{Codec, Dictionary, StreamSpec};
use crate::decode::{RawBatch, RecordDecoder, Rejected};
use crate::metrics::StreamMetrics;
use crate::partition::PartitionPlan;
use crate::schema::dead_letter_schema;
use crate::table::{CommitOutcome, DeltaTableHandle, Location, OffsetUpdate, app_id};

/// Records staged per partition before they are decoded.
const DECODE_CHUNK: usize = 8192;

/// How a writer reaches Kafka.
#[derive(Debug, Clone)]
pub struct KafkaSource {
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// Extra client properties (security, timeouts), applied before the
    /// stream's own `consumer` properties.
    pub properties: BTreeMap<String, String>,
}

/// Everything a writer needs.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// The validated stream.
    pub spec: Arc<StreamSpec>,
    /// The lake the table lives in.
    pub location: Location,
    /// Kafka.
    pub kafka: KafkaSource,
    /// Exit once every assigned partition reached the end offset seen at
    /// start (and everything is committed).
    pub until_caught_up: bool,
    /// Where to count.
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

type Tp = (Arc<str>, i32);

/// Rebalance events, handed from librdkafka's callback to the loop.
#[derive(Debug, Default)]
struct Shared {
    /// Last durable offset per partition, as the loop last knew it (used to
    /// position newly assigned partitions).
    committed: HashMap<(String, i32), i64>,
    revoked: Vec<(String, i32)>,
    assigned: Vec<(String, i32)>,
    generation: u64,
}

struct WriterContext {
    shared: Arc<Mutex<Shared>>,
    /// Bumped by every rebalance callback (read without the lock).
    rebalanced: Arc<AtomicU64>,
    metrics: Arc<StreamMetrics>,
    stream: String,
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
    fn pre_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut s = self.shared.lock().expect("writer lock");
            for e in tpl.elements() {
                tracing::info!(stream = %self.stream, topic = e.topic(), partition = e.partition(), "partition revoked");
                s.revoked.push((e.topic().to_string(), e.partition()));
                s.generation += 1;
                self.rebalanced.store(s.generation, Ordering::SeqCst);
                self.metrics
                    .partition(e.topic(), e.partition(), |f| f.assigned = false);
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            // Position every partition from the table log, not the group.
            let mut s = self.shared.lock().expect("writer lock");
            let mut positioned = TopicPartitionList::new();
            for e in tpl.elements() {
                let key = (e.topic().to_string(), e.partition());
                let offset = match s.committed.get(&key) {
                    Some(c) => Offset::Offset(c + 1),
                    None => Offset::Beginning,
                };
                if let Err(err) = positioned.add_partition_offset(e.topic(), e.partition(), offset)
                {
                    tracing::warn!(stream = %self.stream, %err, "cannot position partition");
                }
                tracing::info!(stream = %self.stream, topic = e.topic(), partition = e.partition(), ?offset, "partition assigned");
                self.metrics
                    .partition(e.topic(), e.partition(), |f| f.assigned = true);
                s.assigned.push(key);
            }
            s.generation += 1;
            self.rebalanced.store(s.generation, Ordering::SeqCst);
            if let Err(err) = consumer.assign(&positioned) {
                tracing::warn!(stream = %self.stream, %err, "cannot assign positioned partitions");
            }
        }
    }
}

/// One Kafka partition's state in the writer.
#[derive(Debug)]
struct Part {
    /// Last durable offset in the table log (None: nothing yet).
    committed: Option<i64>,
    /// Next offset expected from Kafka.
    next: Option<i64>,
    staged: RawBatch,
    rows: Vec<RecordBatch>,
    row_count: u64,
    rejected: Vec<Rejected>,
    bytes: u64,
    /// First and last offsets consumed into the buffer.
    first: Option<i64>,
    last: Option<i64>,
    oldest: Option<Instant>,
}

impl Part {
    fn new(topic: Arc<str>, partition: i32, committed: Option<i64>) -> Self {
        Part {
            committed,
            next: committed.map(|c| c + 1),
            staged: RawBatch::new(topic, partition),
            rows: Vec::new(),
            row_count: 0,
            rejected: Vec::new(),
            bytes: 0,
            first: None,
            last: None,
            oldest: None,
        }
    }

    fn has_data(&self) -> bool {
        self.last.is_some()
    }

    fn clear(&mut self) {
        // A fresh staging batch, not `RawBatch::clear`: a flushed partition
        // may stay idle, and its chunk-sized buffers would stay allocated.
        self.staged = RawBatch::new(self.staged.topic.clone(), self.staged.partition);
        self.rows.clear();
        self.row_count = 0;
        self.rejected.clear();
        self.bytes = 0;
        self.first = None;
        self.last = None;
        self.oldest = None;
    }

    fn rows_buffered(&self) -> u64 {
        self.row_count + self.staged.len() as u64
    }
}

struct Writer {
    opts: WriterOptions,
    consumer: Arc<StreamConsumer<WriterContext>>,
    shared: Arc<Mutex<Shared>>,
    rebalanced: Arc<AtomicU64>,
    decoder: RecordDecoder,
    encoding: Encoding,
    main: DeltaTableHandle,
    dlq: DeltaTableHandle,
    parts: HashMap<Tp, Part>,
    topics: HashMap<String, Arc<str>>,
    buffered: u64,
    epoch: i64,
    summary: RunSummary,
    /// End offsets seen at start (`--until-caught-up`).
    targets: Option<HashMap<(String, i32), i64>>,
    assigned: HashSet<(String, i32)>,
    seen_assignment: bool,
    last_refresh: Option<Instant>,
    generation: u64,
}

/// Rows looked at to decide which columns get a dictionary.
const DICTIONARY_SAMPLE: usize = 1024;

/// A stream's Parquet writer settings. With `dictionary = "auto"` the
/// columns whose values are nearly all distinct are found once, from the
/// first chunk of at least [`DICTIONARY_SAMPLE`] rows.
#[derive(Debug, Default)]
struct Encoding {
    decided: Option<WriterProperties>,
}

impl Encoding {
    fn properties(&mut self, spec: &StreamSpec, rows: &RecordBatch) -> WriterProperties {
        if let Some(p) = &self.decided {
            return p.clone();
        }
        let base = || {
            let compression = match spec.codec {
                Codec::Zstd(l) => Compression::ZSTD(ZstdLevel::try_new(l).unwrap_or_default()),
                Codec::Gzip(l) => Compression::GZIP(GzipLevel::try_new(l).unwrap_or_default()),
                Codec::Snappy => Compression::SNAPPY,
                Codec::Lz4 => Compression::LZ4_RAW,
                Codec::None => Compression::UNCOMPRESSED,
            };
            WriterProperties::builder()
                .set_compression(compression)
                .set_max_row_group_row_count(Some(spec.row_group_rows))
                .set_statistics_enabled(parquet::file::properties::EnabledStatistics::Page)
        };
        let props = match spec.dictionary {
            Dictionary::On => base().build(),
            Dictionary::Off => base().set_dictionary_enabled(false).build(),
            Dictionary::Auto if rows.num_rows() < DICTIONARY_SAMPLE => {
                // Too few rows to judge: Parquet's default, decide later.
                return base().build();
            }
            Dictionary::Auto => {
                let plain = high_cardinality_columns(rows, DICTIONARY_SAMPLE);
                tracing::info!(stream = %spec.name, columns = %plain.join(","),
                    "no Parquet dictionary for columns whose values are nearly all distinct");
                plain
                    .iter()
                    .fold(base(), |b, c| {
                        b.set_column_dictionary_enabled(ColumnPath::from(c.as_str()), false)
                    })
                    .build()
            }
        };
        self.decided = Some(props.clone());
        props
    }
}

/// The columns of `rows` whose first `sample` values are, nulls aside,
/// more than 90 % distinct (strings, binaries and 64-bit numbers; other
/// types are cheap to dictionary-encode or rarely unique). Nulls are left
/// out because Parquet never puts them in a dictionary.
fn high_cardinality_columns(rows: &RecordBatch, sample: usize) -> Vec<String> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::DataType;
    use std::hash::{BuildHasher, RandomState};
    let n = rows.num_rows().min(sample);
    let hasher = RandomState::new();
    let mut out = Vec::new();
    for (field, col) in rows.schema().fields().iter().zip(rows.columns()) {
        let col = col.slice(0, n);
        let mut seen: HashSet<u64> = HashSet::with_capacity(n);
        match field.data_type() {
            DataType::Utf8 => col.as_string::<i32>().iter().flatten().for_each(|v| {
                seen.insert(hasher.hash_one(v));
            }),
            DataType::LargeUtf8 => col.as_string::<i64>().iter().flatten().for_each(|v| {
                seen.insert(hasher.hash_one(v));
            }),
            DataType::Binary => col.as_binary::<i32>().iter().flatten().for_each(|v| {
                seen.insert(hasher.hash_one(v));
            }),
            DataType::Int64 | DataType::Float64 | DataType::Timestamp(_, _) => {
                // All three are 8-byte values; their bits are enough.
                let data = col.to_data();
                let values: &[u64] = data.buffers()[0].typed_data();
                let values = &values[data.offset()..data.offset() + n];
                for (i, v) in values.iter().enumerate() {
                    if !col.is_null(i) {
                        seen.insert(*v);
                    }
                }
            }
            _ => continue,
        }
        let present = n - col.null_count();
        if present > 0 && seen.len() * 10 > present * 9 {
            out.push(field.name().clone());
        }
    }
    out
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

    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &opts.kafka.bootstrap_servers)
        .set("group.id", &spec.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("statistics.interval.ms", "5000")
        // librdkafka prefetches up to 64 MiB by default; the writer's own
        // memory budget is the one that should hold data.
        .set("queued.max.messages.kbytes", "16384")
        .set("client.id", format!("tributary-{}", spec.name));
    for (k, v) in opts.kafka.properties.iter().chain(spec.consumer.iter()) {
        cfg.set(k, v);
    }
    let shared = Arc::new(Mutex::new(Shared::default()));
    let rebalanced = Arc::new(AtomicU64::new(0));
    let ctx = WriterContext {
        shared: shared.clone(),
        rebalanced: rebalanced.clone(),
        metrics: opts.metrics.clone(),
        stream: spec.name.clone(),
    };
    let consumer: StreamConsumer<WriterContext> = cfg
        .create_with_context(ctx)
        .map_err(|e| LakeError::Kafka(format!("cannot create the consumer: {e}")))?;

    let mut w = Writer {
        decoder: RecordDecoder::new(spec.clone()),
        encoding: Encoding::default(),
        consumer: Arc::new(consumer),
        shared,
        rebalanced,
        main,
        dlq,
        parts: HashMap::new(),
        topics: HashMap::new(),
        buffered: 0,
        epoch: 0,
        summary: RunSummary::default(),
        targets: None,
        assigned: HashSet::new(),
        seen_assignment: false,
        last_refresh: None,
        generation: 0,
        opts,
    };
    w.summary.version = w.main.version();
    // Positions for the first assignment come from the log.
    w.load_partitions_of_topics().await?;
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

impl Writer {
    fn spec(&self) -> &StreamSpec {
        &self.opts.spec
    }

    /// Reads the log's offsets of every partition of the topics and shares
    /// them with the rebalance callback. Returns the partitions.
    async fn load_partitions_of_topics(&mut self) -> Result<Vec<(String, i32)>, LakeError> {
        let spec = self.opts.spec.clone();
        let mut all = Vec::new();
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
                    all.push((topic.clone(), p.id()));
                }
            }
        }
        let mut s = self.shared.lock().expect("writer lock");
        for (t, p) in &all {
            if let Some(c) = self.main.offset(&app_id(&spec.name, t, *p)) {
                s.committed.insert((t.clone(), *p), c);
                self.opts
                    .metrics
                    .partition(t, *p, |f| f.committed = Some(c));
            }
        }
        Ok(all)
    }

    fn topic(&mut self, name: &str) -> Arc<str> {
        // Called per record: no allocation once the topic is known.
        if let Some(t) = self.topics.get(name) {
            return t.clone();
        }
        let t: Arc<str> = Arc::from(name);
        self.topics.insert(name.to_string(), t.clone());
        t
    }

    async fn main_loop(&mut self, stop: &CancellationToken) -> Result<(), LakeError> {
        let max_age = self.spec().rotation.max_age;
        let tick = (max_age / 4).clamp(Duration::from_millis(20), Duration::from_millis(500));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let consumer = self.consumer.clone();
        let mut stream = consumer.stream();
        loop {
            self.handle_rebalance().await?;
            if self.until_done().await? {
                return Ok(());
            }
            {
                let first = tokio::select! {
                    biased;
                    _ = stop.cancelled() => return Ok(()),
                    _ = ticker.tick() => None,
                    m = stream.next() => m,
                };
                let mut next = first;
                let mut taken = 0;
                // Take what is already here without awaiting timers.
                while let Some(m) = next {
                    match m {
                        Ok(m) => {
                            let due = if self.rebalanced.load(Ordering::SeqCst) != self.generation {
                                // A rebalance happened while this message was
                                // fetched: apply it first, so the message lands
                                // in the new assignment's buffers.
                                let owned = m.detach();
                                self.handle_rebalance().await?;
                                self.accept_message(&owned)
                            } else {
                                self.accept_message(&m)
                            };
                            if due {
                                break; // a buffer is due: flush before taking more
                            }
                        }
                        Err(e) => {
                            tracing::warn!(stream = %self.spec().name, error = %e, "Kafka error (the client retries)");
                            break;
                        }
                    }
                    taken += 1;
                    if taken >= DECODE_CHUNK {
                        break;
                    }
                    next = stream.next().now_or_never().flatten();
                }
            }
            self.decode_full_chunks();
            self.flush_due().await?;
        }
    }

    fn accept_message<M: Message>(&mut self, m: &M) -> bool {
        let topic = self.topic(m.topic());
        let ts = m.timestamp().to_millis();
        self.accept(topic, m.partition(), m.offset(), ts, m.key(), m.payload())
    }

    /// Takes one record into its partition's buffer. True when that buffer
    /// reached a size limit, or all buffers the memory budget.
    fn accept(
        &mut self,
        topic: Arc<str>,
        partition: i32,
        offset: i64,
        ts: Option<i64>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> bool {
        let part = match self.parts.entry((topic, partition)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let topic = e.key().0.clone();
                let committed = self
                    .main
                    .offset(&app_id(&self.opts.spec.name, &topic, partition));
                e.insert(Part::new(topic, partition, committed))
            }
        };
        if part.committed.is_some_and(|c| offset <= c) {
            return false; // already durable
        }
        if let Some(next) = part.next {
            if offset < next {
                return false; // re-delivered after a seek; staged already
            }
            if offset > next {
                tracing::warn!(stream = %self.opts.spec.name, topic = %part.staged.topic, partition, expected = next, got = offset,
                    "offset gap (compaction, retention or transaction markers)");
            }
        }
        part.next = Some(offset + 1);
        let before = part.staged.bytes();
        part.staged.push(offset, ts, key, value);
        let added = (part.staged.bytes() - before) as u64 + 48;
        part.bytes += added;
        self.buffered += added;
        self.opts.metrics.set_buffered(self.buffered);
        part.first.get_or_insert(offset);
        part.last = Some(offset);
        part.oldest.get_or_insert_with(Instant::now);
        self.summary.records_in += 1;
        self.opts.metrics.records_in.fetch_add(1, Ordering::Relaxed);
        let r = &self.opts.spec.rotation;
        part.rows_buffered() >= r.max_rows
            || part.bytes >= r.max_bytes
            || self.buffered > self.opts.spec.memory_budget
    }

    fn decode_part(&mut self, key: &Tp) {
        let Some(part) = self.parts.get_mut(key) else {
            return;
        };
        if part.staged.is_empty() {
            return;
        }
        let raw_bytes = (part.staged.bytes() + 48 * part.staged.len()) as u64;
        let out = self.decoder.decode(&part.staged);
        // Keep the buffers' capacity: this partition is filling again.
        part.staged.clear();
        let mut new_bytes = 0u64;
        if let Some(b) = out.rows {
            new_bytes += b.get_array_memory_size() as u64;
            part.row_count += b.num_rows() as u64;
            part.rows.push(b);
        }
        for r in &out.rejected {
            new_bytes += (r.value.as_ref().map_or(0, Vec::len) + r.error.len() + 64) as u64;
        }
        part.rejected.extend(out.rejected);
        part.bytes = part.bytes - raw_bytes.min(part.bytes) + new_bytes;
        self.buffered = self.buffered - raw_bytes.min(self.buffered) + new_bytes;
        self.opts.metrics.set_buffered(self.buffered);
    }

    fn decode_full_chunks(&mut self) {
        let full: Vec<Tp> = self
            .parts
            .iter()
            .filter(|(_, p)| p.staged.len() >= DECODE_CHUNK)
            .map(|(k, _)| k.clone())
            .collect();
        for k in full {
            self.decode_part(&k);
        }
    }

    /// Flushes partitions over a rotation limit; then, while over the memory
    /// budget, the largest buffers.
    async fn flush_due(&mut self) -> Result<(), LakeError> {
        let r = self.spec().rotation;
        let now = Instant::now();
        let mut due: Vec<Tp> = Vec::new();
        let mut any_due = false;
        for (k, p) in &self.parts {
            if !p.has_data() {
                continue;
            }
            let age = p.oldest.map_or(Duration::ZERO, |o| now - o);
            if p.rows_buffered() >= r.max_rows || p.bytes >= r.max_bytes || age >= r.max_age {
                any_due = true;
                due.push(k.clone());
            } else if age >= r.max_age / 2 {
                // Ride along: fewer, larger files and commits.
                due.push(k.clone());
            }
        }
        if any_due {
            self.flush(due).await?;
        }
        let budget = self.spec().memory_budget;
        if self.buffered > budget {
            let mut by_size: Vec<(u64, Tp)> = self
                .parts
                .iter()
                .filter(|(_, p)| p.has_data())
                .map(|(k, p)| (p.bytes, k.clone()))
                .collect();
            by_size.sort_by_key(|e| std::cmp::Reverse(e.0));
            let target = budget / 2;
            let mut freed = 0u64;
            let mut chosen = Vec::new();
            for (bytes, k) in by_size {
                if self.buffered - freed.min(self.buffered) <= target {
                    break;
                }
                freed += bytes;
                chosen.push(k);
            }
            tracing::debug!(stream = %self.spec().name, buffered = self.buffered, budget, partitions = chosen.len(), "memory budget reached: flushing the largest buffers");
            self.flush(chosen).await?;
        }
        Ok(())
    }

    async fn flush_all(&mut self) -> Result<(), LakeError> {
        let all: Vec<Tp> = self
            .parts
            .iter()
            .filter(|(_, p)| p.has_data())
            .map(|(k, _)| k.clone())
            .collect();
        self.flush(all).await
    }

    /// Writes and commits the buffers of these partitions.
    async fn flush(&mut self, mut keys: Vec<Tp>) -> Result<(), LakeError> {
        keys.retain(|k| self.parts.get(k).is_some_and(Part::has_data));
        while !keys.is_empty() {
            for k in &keys {
                self.decode_part(k);
            }
            self.epoch += 1;
            let name = self.spec().name.clone();
            // 1. Rejected records first (their own table, filtered by its log).
            let rejected: Vec<Rejected> = keys
                .iter()
                .flat_map(|k| self.parts[k].rejected.iter().cloned())
                .collect();
            let dlq_ranges: Vec<(String, i64)> = keys
                .iter()
                .filter(|k| !self.parts[*k].rejected.is_empty())
                .map(|k| {
                    (
                        app_id(&name, &k.0, k.1),
                        self.parts[k].last.expect("has data"),
                    )
                })
                .collect();
            if !rejected.is_empty() {
                self.commit_rejected(rejected, &dlq_ranges).await?;
            }
            // 2. Rows and offsets, fenced on the offsets the buffers started after.
            let started = Instant::now();
            let batches: Vec<RecordBatch> = keys
                .iter()
                .flat_map(|k| self.parts[k].rows.iter().cloned())
                .collect();
            let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
            let adds = self.write_files(&batches).await?;
            let updates: Vec<OffsetUpdate> = keys
                .iter()
                .map(|k| {
                    let p = &self.parts[k];
                    OffsetUpdate {
                        app_id: app_id(&name, &k.0, k.1),
                        expected: p.committed,
                        last: p.last.expect("has data"),
                    }
                })
                .collect();
            for k in &keys {
                let p = &self.parts[k];
                let held = p.row_count + p.rejected.len() as u64;
                let first = p.first.unwrap_or(-1);
                tracing::debug!(stream = %name, topic = %k.0, partition = k.1, expected = ?p.committed, first, last = ?p.last, held, "committing partition range");
                if let (Some(c), Some(l)) = (p.committed, p.last)
                    && first != c + 1
                {
                    tracing::warn!(stream = %name, topic = %k.0, partition = k.1, committed = c, first, last = l, held,
                        "buffer does not start right after the committed offset");
                }
            }
            let files = adds.len() as u64;
            let bytes: u64 = adds.iter().map(|a| a.size as u64).sum();
            let commit_started = Instant::now();
            match self.main.commit(adds, &updates, &name, self.epoch).await? {
                CommitOutcome::Committed { version, attempts } => {
                    let m = &self.opts.metrics;
                    m.observe_commit(commit_started.elapsed());
                    m.commits.fetch_add(1, Ordering::Relaxed);
                    m.records_written.fetch_add(rows, Ordering::Relaxed);
                    m.files.fetch_add(files, Ordering::Relaxed);
                    m.bytes.fetch_add(bytes, Ordering::Relaxed);
                    m.last_version.store(version, Ordering::Relaxed);
                    m.last_commit_ms.store(
                        chrono::Utc::now().timestamp_millis() as u64,
                        Ordering::Relaxed,
                    );
                    self.summary.commits += 1;
                    self.summary.rows_written += rows;
                    self.summary.version = version;
                    let mut tpl = TopicPartitionList::new();
                    {
                        let mut s = self.shared.lock().expect("writer lock");
                        for k in &keys {
                            let p = self.parts.get_mut(k).expect("flushed part");
                            let last = p.last.expect("has data");
                            self.buffered -= p.bytes.min(self.buffered);
                            p.committed = Some(last);
                            p.clear();
                            s.committed.insert((k.0.to_string(), k.1), last);
                            m.partition(&k.0, k.1, |f| f.committed = Some(last));
                            let _ = tpl.add_partition_offset(&k.0, k.1, Offset::Offset(last + 1));
                        }
                    }
                    m.set_buffered(self.buffered);
                    tracing::debug!(stream = %name, version, attempts, rows, files, partitions = keys.len(),
                        ms = started.elapsed().as_millis() as u64, "flushed");
                    // For lag tools only; the log is the truth.
                    if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                        tracing::debug!(stream = %name, error = %e, "group offset commit failed (harmless)");
                    }
                    return Ok(());
                }
                CommitOutcome::Fenced(moved) => {
                    self.opts.metrics.fenced.fetch_add(1, Ordering::Relaxed);
                    self.summary.fenced += 1;
                    for (id, now) in &moved {
                        tracing::warn!(stream = %name, app_id = %id, log_offset = ?now,
                            "another writer committed this partition: dropping its buffer and resuming after the log's offset");
                    }
                    let moved: HashMap<String, Option<i64>> = moved.into_iter().collect();
                    let mut s = self.shared.lock().expect("writer lock");
                    keys.retain(|k| {
                        let id = app_id(&name, &k.0, k.1);
                        let Some(now) = moved.get(&id) else {
                            return true;
                        };
                        if let Some(p) = self.parts.get_mut(k) {
                            self.buffered -= p.bytes.min(self.buffered);
                            p.clear();
                            p.committed = *now;
                            p.next = now.map(|c| c + 1);
                            if let Some(c) = now {
                                s.committed.insert((k.0.to_string(), k.1), *c);
                                let _ = self.consumer.seek(
                                    &k.0,
                                    k.1,
                                    Offset::Offset(c + 1),
                                    Duration::from_secs(5),
                                );
                            }
                        }
                        false
                    });
                    // The files written for this attempt are now orphans
                    // (invisible; vacuum removes them). Rewrite the rest.
                }
            }
        }
        Ok(())
    }

    async fn write_files(&mut self, batches: &[RecordBatch]) -> Result<Vec<Add>, LakeError> {
        let Some(largest) = batches.iter().max_by_key(|b| b.num_rows()) else {
            return Ok(Vec::new());
        };
        let props = self.encoding.properties(&self.opts.spec, largest);
        let mut w = RecordBatchWriter::for_table(self.main.table())?.with_writer_properties(props);
        // The table's partition columns, read with its metadata at open
        // (and checked there against the stream's `partition_by`).
        let columns = self.main.partition_by();
        if columns.is_empty() {
            for b in batches {
                w.write(b.clone()).await?;
            }
            return Ok(w.flush().await?);
        }
        // One table partition at a time, each file closed before the next
        // starts: the flush holds one Parquet encoder, not one per partition.
        let plan = PartitionPlan::new(batches, columns)?;
        let mut adds = Vec::with_capacity(plan.len());
        for g in 0..plan.len() {
            let rows = plan.materialize(batches, g)?;
            w.write_partition(rows, plan.values(g), WriteMode::Default)
                .await?;
            adds.extend(w.flush().await?);
        }
        Ok(adds)
    }

    /// Commits rejected records to the dead-letter table, skipping those its
    /// log already holds (a crash between the two commits replays them).
    async fn commit_rejected(
        &mut self,
        rejected: Vec<Rejected>,
        ranges: &[(String, i64)],
    ) -> Result<(), LakeError> {
        let name = self.spec().name.clone();
        loop {
            self.dlq.refresh().await?;
            let keep: Vec<&Rejected> = rejected
                .iter()
                .filter(|r| {
                    let id = app_id(&name, &r.topic, r.partition);
                    self.dlq.offset(&id).is_none_or(|c| r.offset > c)
                })
                .collect();
            let updates: Vec<OffsetUpdate> = ranges
                .iter()
                .filter_map(|(id, last)| {
                    let cur = self.dlq.offset(id);
                    (cur.is_none_or(|c| c < *last)).then(|| OffsetUpdate {
                        app_id: id.clone(),
                        expected: cur,
                        last: *last,
                    })
                })
                .collect();
            if keep.is_empty() && updates.is_empty() {
                return Ok(());
            }
            let adds = if keep.is_empty() {
                Vec::new()
            } else {
                let batch = dead_letter_batch(&keep);
                let mut w = RecordBatchWriter::for_table(self.dlq.table())?;
                w.write(batch).await?;
                w.flush().await?
            };
            match self.dlq.commit(adds, &updates, &name, self.epoch).await? {
                CommitOutcome::Committed { .. } => {
                    self.opts
                        .metrics
                        .records_rejected
                        .fetch_add(keep.len() as u64, Ordering::Relaxed);
                    self.summary.rejected += keep.len() as u64;
                    for r in keep.iter().take(5) {
                        tracing::warn!(stream = %name, topic = %r.topic, partition = r.partition, offset = r.offset,
                            error = %r.error, "record sent to the dead-letter table");
                    }
                    return Ok(());
                }
                CommitOutcome::Fenced(_) => continue, // re-filter against the newer log
            }
        }
    }

    /// Applies rebalance events: drops revoked partitions' buffers, and
    /// reads the log for newly assigned ones.
    async fn handle_rebalance(&mut self) -> Result<(), LakeError> {
        let (revoked, assigned, generation) = {
            let mut s = self.shared.lock().expect("writer lock");
            (
                std::mem::take(&mut s.revoked),
                std::mem::take(&mut s.assigned),
                s.generation,
            )
        };
        if generation == self.generation {
            return Ok(());
        }
        self.generation = generation;
        for (t, p) in revoked {
            self.assigned.remove(&(t.clone(), p));
            let topic = self.topic(&t);
            if let Some(part) = self.parts.remove(&(topic, p)) {
                self.buffered -= part.bytes.min(self.buffered);
            }
        }
        if !assigned.is_empty() {
            self.seen_assignment = true;
            // Someone else may have committed since we last looked.
            self.main.refresh().await?;
            for (t, p) in assigned {
                let topic = self.topic(&t);
                let committed = self.main.offset(&app_id(&self.opts.spec.name, &t, p));
                let key = (topic.clone(), p);
                match self.parts.get_mut(&key) {
                    // Records may have arrived before this event was handled:
                    // keep them if they continue the log.
                    Some(part) if part.committed == committed => {}
                    Some(part) => {
                        self.buffered -= part.bytes.min(self.buffered);
                        part.clear();
                        part.committed = committed;
                        part.next = committed.map(|c| c + 1);
                        if let Some(c) = committed {
                            let _ = self.consumer.seek(
                                &t,
                                p,
                                Offset::Offset(c + 1),
                                Duration::from_secs(5),
                            );
                        }
                    }
                    None => {
                        self.parts.insert(key, Part::new(topic, p, committed));
                    }
                }
                self.opts
                    .metrics
                    .partition(&t, p, |f| f.committed = committed);
                self.assigned.insert((t, p));
            }
        }
        Ok(())
    }

    /// The last offset of every partition of the stream's topics now.
    fn end_offsets(&self) -> Result<HashMap<(String, i32), i64>, LakeError> {
        let out = tokio::task::block_in_place(|| {
            last_offsets(
                &*self.consumer,
                &self.opts.spec.topics,
                Duration::from_secs(30),
            )
        })?;
        tracing::info!(stream = %self.spec().name, partitions = out.len(), "until caught up: end offsets read");
        Ok(out)
    }

    /// With `--until-caught-up`: flushes our partitions that reached their
    /// end and says whether the table holds every partition up to the end
    /// offsets read at start.
    async fn until_done(&mut self) -> Result<bool, LakeError> {
        if !self.opts.until_caught_up || !self.seen_assignment {
            return Ok(false);
        }
        if self.targets.is_none() {
            self.targets = Some(self.end_offsets()?);
        }
        let targets = self.targets.clone().expect("set above");
        // Flush our partitions that reached their end.
        let mut to_flush = Vec::new();
        for (t, p) in &self.assigned {
            let last_wanted = targets.get(&(t.clone(), *p)).copied().unwrap_or(-1);
            let key = (self.topics[t].clone(), *p);
            let Some(part) = self.parts.get(&key) else {
                continue;
            };
            let reached = part.next.is_some_and(|n| n > last_wanted) || last_wanted < 0;
            if reached && part.has_data() {
                to_flush.push(key);
            }
        }
        if !to_flush.is_empty() {
            self.flush(to_flush).await?;
        }
        // Done when the table holds every partition up to its end offset,
        // whoever wrote it: partitions of a member that died stay pending
        // until the group gives them to someone (maybe us).
        let pending = |w: &Self| {
            targets
                .iter()
                .filter(|((t, p), last)| {
                    **last >= 0
                        && w.main
                            .offset(&app_id(&w.opts.spec.name, t, *p))
                            .is_none_or(|c| c < **last)
                })
                .count()
        };
        if pending(self) == 0 {
            return Ok(true);
        }
        let now = Instant::now();
        if self
            .last_refresh
            .is_none_or(|t| now - t >= Duration::from_millis(200))
        {
            self.last_refresh = Some(now);
            self.main.refresh().await?;
        }
        Ok(pending(self) == 0)
    }
}

/// The last offset of every partition of `topics` now (-1 when a partition
/// is empty): one batched ListOffsets request per bound instead of a round
/// trip per partition. Blocks (up to `timeout` per request).
pub fn last_offsets<C: ConsumerContext, K: Consumer<C>>(
    consumer: &K,
    topics: &[String],
    timeout: Duration,
) -> Result<HashMap<(String, i32), i64>, LakeError> {
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
    let low: HashMap<(String, i32), i64> = starts
        .elements()
        .iter()
        .filter_map(|e| {
            e.offset()
                .to_raw()
                .map(|o| ((e.topic().to_string(), e.partition()), o))
        })
        .collect();
    let mut out = HashMap::new();
    for e in ends.elements() {
        let key = (e.topic().to_string(), e.partition());
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
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &kafka.bootstrap_servers)
            .set("client.id", "tributary-lag");
        for (k, v) in &kafka.properties {
            cfg.set(k, v);
        }
        let consumer = cfg
            .create()
            .map_err(|e| LakeError::Kafka(format!("cannot create a Kafka client: {e}")))?;
        Ok(OffsetReader { consumer })
    }

    /// [`last_offsets`] of `topics`. Blocks; call it from a blocking thread.
    pub fn last_offsets(
        &self,
        topics: &[String],
        timeout: Duration,
    ) -> Result<HashMap<(String, i32), i64>, LakeError> {
        last_offsets(&self.consumer, topics, timeout)
    }
}

fn dead_letter_batch(rejected: &[&Rejected]) -> RecordBatch {
    let now = chrono::Utc::now().timestamp_micros();
    RecordBatch::try_new(
        dead_letter_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                rejected.iter().map(|r| r.topic.as_ref()),
            )),
            Arc::new(Int32Array::from_iter_values(
                rejected.iter().map(|r| r.partition),
            )),
            Arc::new(Int64Array::from_iter_values(
                rejected.iter().map(|r| r.offset),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter(
                    rejected.iter().map(|r| r.timestamp_ms.map(|ms| ms * 1000)),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(BinaryArray::from_iter(
                rejected.iter().map(|r| r.key.as_deref()),
            )),
            Arc::new(BinaryArray::from_iter(
                rejected.iter().map(|r| r.value.as_deref()),
            )),
            Arc::new(StringArray::from_iter_values(
                rejected.iter().map(|r| r.error.as_str()),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_value(now, rejected.len()).with_timezone("UTC"),
            ),
        ],
    )
    .expect("dead-letter schema matches")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StreamConfig;
    use arrow::array::Float64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    fn rows(n: usize) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("score", DataType::Float64, true),
            Field::new("count", DataType::Int64, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("user-{i}")),
                )),
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| ["a", "b", "c"][i % 3]),
                )),
                Arc::new(Float64Array::from_iter(
                    (0..n).map(|i| (i % 7 != 0).then_some(i as f64 * 0.5)),
                )),
                Arc::new(Int64Array::from_iter_values(
                    (0..n).map(|i| (i % 50) as i64),
                )),
            ],
        )
        .unwrap()
    }

    fn spec(parquet: &str) -> StreamSpec {
        let text = format!(
            "name = \"s\"\ntopics = [\"t\"]\ntable = \"t\"\n\
             schema = {{ columns = [{{ name = \"id\", type = \"utf8\" }}] }}\n{parquet}"
        );
        let c: StreamConfig = toml::from_str(&text).unwrap();
        c.resolve(&BTreeMap::new()).unwrap()
    }

    #[test]
    fn nearly_unique_columns_are_found() {
        assert_eq!(high_cardinality_columns(&rows(2000), 1024), ["id", "score"]);
        // Looks at the sample only: the first three rows are all distinct.
        assert_eq!(high_cardinality_columns(&rows(2000), 3).len(), 4);
        // A column of nulls only has no dictionary to speak of either way.
        let nulls = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)])),
            vec![Arc::new(Int64Array::from(vec![None::<i64>; 2000]))],
        )
        .unwrap();
        assert!(high_cardinality_columns(&nulls, 1024).is_empty());
    }

    #[test]
    fn auto_dictionary_is_decided_once_from_enough_rows() {
        let spec = spec("");
        let on = |p: &WriterProperties, c: &str| p.dictionary_enabled(&ColumnPath::from(c));
        let mut e = Encoding::default();
        // A handful of rows says nothing yet: defaults, no decision.
        let p = e.properties(&spec, &rows(10));
        assert!(on(&p, "id") && on(&p, "kind"));
        assert!(e.decided.is_none());
        let p = e.properties(&spec, &rows(5000));
        assert!(!on(&p, "id") && on(&p, "kind") && !on(&p, "score") && on(&p, "count"));
        // Kept for the rest of the run.
        let p = e.properties(&spec, &rows(10));
        assert!(!on(&p, "id") && on(&p, "kind"));
    }

    #[test]
    fn dictionary_on_and_off_apply_to_every_column() {
        let on = |p: &WriterProperties, c: &str| p.dictionary_enabled(&ColumnPath::from(c));
        let p =
            Encoding::default().properties(&spec("parquet = { dictionary = \"on\" }"), &rows(5000));
        assert!(on(&p, "id") && on(&p, "kind"));
        let p = Encoding::default()
            .properties(&spec("parquet = { dictionary = \"off\" }"), &rows(5000));
        assert!(!on(&p, "id") && !on(&p, "kind"));
    }
}
