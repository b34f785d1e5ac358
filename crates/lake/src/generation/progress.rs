//! How far a replay has come: offsets done and to do per Kafka partition,
//! from where the replay starts to the end of the log. Running a replay
//! ([`run`]) reports it as it goes (the CLI's progress bar, a task's log);
//! [`of_generation`] reads it from a generation's log, so the web UI shows
//! a replay another process runs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::ledger::storage_name;
use super::replay::{PROP_START, Replay, parse_start};
use crate::LakeError;
use crate::kafka::{KafkaSource, LogRange, OffsetReader, TopicPartition};
use crate::metrics::StreamMetrics;
use crate::table::{DeltaTableHandle, Location};
use crate::writer::{RunSummary, WriterOptions};

/// One Kafka partition of a replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct PartitionProgress {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The first offset the replay reads here.
    pub from: i64,
    /// Offsets read and committed.
    pub done: i64,
    /// Offsets from `from` to the end of the log.
    pub total: i64,
}

/// A replay's progress over every partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Progress {
    /// Per partition, in topic-partition order.
    pub partitions: Vec<PartitionProgress>,
    /// Offsets done over all partitions.
    pub done: i64,
    /// Offsets to do over all partitions.
    pub total: i64,
}

impl Progress {
    /// Whether every offset up to the log's end is done.
    pub fn finished(&self) -> bool {
        self.done >= self.total
    }
}

/// Progress against the log's `ranges`, for a replay starting at `start`
/// (partitions not listed: the earliest offset held) that has committed
/// `committed` (last offset per partition).
pub fn measure(
    ranges: &HashMap<TopicPartition, LogRange>,
    start: &BTreeMap<(String, i32), i64>,
    committed: &BTreeMap<(String, i32), i64>,
) -> Progress {
    let mut partitions: Vec<PartitionProgress> = ranges
        .iter()
        .map(|(tp, range)| {
            let key = (tp.topic.to_string(), tp.partition);
            let from = start
                .get(&key)
                .copied()
                .unwrap_or(range.start)
                .max(range.start);
            let total = (range.end - from).max(0);
            let done = committed
                .get(&key)
                .map_or(0, |c| (c + 1 - from).clamp(0, total));
            PartitionProgress {
                topic: key.0,
                partition: key.1,
                from,
                done,
                total,
            }
        })
        .collect();
    partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Progress {
        done: partitions.iter().map(|p| p.done).sum(),
        total: partitions.iter().map(|p| p.total).sum(),
        partitions,
    }
}

/// The progress of generation `n ≥ 2` of `table` (written by `stream`),
/// from its log and the broker's `ranges`.
pub async fn of_generation(
    location: &Location,
    table: &str,
    stream: &str,
    n: u32,
    ranges: &HashMap<TopicPartition, LogRange>,
) -> Result<Progress, LakeError> {
    let name = storage_name(table, n);
    let t = location.open_existing(&name).await?;
    let start = parse_start(
        t.snapshot()?
            .metadata()
            .configuration()
            .get(PROP_START)
            .map_or("", String::as_str),
    );
    let h = DeltaTableHandle::new(&name, t).await?;
    Ok(measure(ranges, &start, &h.stream_offsets(stream)))
}

/// What a running replay reports every half second.
#[derive(Debug, Clone)]
pub struct Tick {
    /// Offsets done and to do.
    pub done: i64,
    /// Offsets to do in all, to the end seen when the replay began.
    pub total: i64,
    /// Records read per second since this run began.
    pub records_per_s: f64,
    /// Time left at that rate.
    pub eta: Option<Duration>,
}

/// Runs replay `r`'s writer until it has caught up with the end offsets
/// seen at its start, calling `on_tick` every half second.
pub async fn run(
    location: &Location,
    kafka: &KafkaSource,
    r: &Replay,
    metrics: Arc<StreamMetrics>,
    stop: CancellationToken,
    mut on_tick: impl FnMut(&Tick),
) -> Result<RunSummary, LakeError> {
    let reader = OffsetReader::new(kafka)?;
    let topics = r.spec.topics.clone();
    let ranges =
        tokio::task::spawn_blocking(move || reader.log_ranges(&topics, Duration::from_secs(30)))
            .await
            .map_err(|e| LakeError::Kafka(format!("offset lookup stopped: {e}")))??;
    let table = location.open_existing(&r.spec.table).await?;
    let committed = DeltaTableHandle::new(&r.spec.table, table)
        .await?
        .stream_offsets(&r.spec.name);
    let at_start = measure(&ranges, &r.spec.start, &committed);
    let opts = WriterOptions {
        spec: r.spec.clone(),
        location: location.clone(),
        kafka: kafka.clone(),
        until_caught_up: true,
        metrics: metrics.clone(),
    };
    let mut writer = tokio::spawn(crate::writer::run(opts, stop));
    let started = Instant::now();
    loop {
        tokio::select! {
            done = &mut writer => {
                return done.map_err(|e| LakeError::Kafka(format!("the replay's writer stopped: {e}")))?;
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let read = metrics.records_in.load(Ordering::Relaxed) as i64;
        let done = (at_start.done + read).min(at_start.total);
        let records_per_s = read as f64 / started.elapsed().as_secs_f64().max(0.001);
        let eta = (records_per_s > 0.0)
            .then(|| Duration::from_secs(((at_start.total - done) as f64 / records_per_s) as u64));
        on_tick(&Tick {
            done,
            total: at_start.total,
            records_per_s,
            eta,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition {
            topic: Arc::from("users"),
            partition: p,
        }
    }

    #[test]
    fn progress_counts_from_the_start_or_the_earliest_to_the_end() {
        let ranges = HashMap::from([
            (tp(0), LogRange { start: 0, end: 100 }),
            (tp(1), LogRange { start: 40, end: 50 }),
            (tp(2), LogRange { start: 0, end: 0 }),
        ]);
        // Partition 0 starts at 60; partition 1 at the earliest held (40).
        let start = BTreeMap::from([(("users".to_string(), 0), 60)]);
        let committed = BTreeMap::from([
            (("users".to_string(), 0), 79),
            (("users".to_string(), 1), 49),
        ]);
        let p = measure(&ranges, &start, &committed);
        assert_eq!(
            p.partitions
                .iter()
                .map(|p| (p.partition, p.from, p.done, p.total))
                .collect::<Vec<_>>(),
            vec![(0, 60, 20, 40), (1, 40, 10, 10), (2, 0, 0, 0)]
        );
        assert_eq!((p.done, p.total), (30, 50));
        assert!(!p.finished());
        // An offset committed before the start (a start past the table's
        // offsets) counts as nothing done.
        let early = BTreeMap::from([(("users".to_string(), 0), 10)]);
        assert_eq!(measure(&ranges, &start, &early).partitions[0].done, 0);
    }
}
