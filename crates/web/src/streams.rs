//! The streaming side: for each stream of the project, its table as the
//! Delta log records it (version, last commit, files, rows, bytes,
//! partitions, offsets), its dead letters, and its lag per Kafka partition
//! (end offsets read from the broker minus the offsets the log holds).
//! Live counters come from the writers running in this process, if any.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use lake::LakeError;
use lake::config::StreamSpec;
use lake::generation::{GenerationInfo, Progress, State};
use lake::kafka::{KafkaSource, LogRange, OffsetReader, TopicPartition};
use lake::metrics::Metrics;
use lake::table::Location;
use lake::tools::{TableInfo, describe};
use serde::Serialize;

/// A stream the server reports on.
#[derive(Debug, Clone)]
pub struct StreamSource {
    /// The stream as configured.
    pub spec: Arc<StreamSpec>,
    /// Where its lake is.
    pub location: Location,
    /// Its Kafka cluster.
    pub kafka: KafkaSource,
}

/// Lag of one Kafka partition.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(crate) struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// The earliest offset the broker still holds.
    pub start_offset: i64,
    /// The end offset as Kafka tools mean it: the next offset to be written.
    pub end_offset: i64,
    /// Last offset committed to the table, if any.
    pub committed: Option<i64>,
    /// Records in Kafka not yet in the table.
    pub lag: i64,
    /// Why the broker's log cannot continue the table here (a new broker,
    /// a re-created topic, records deleted unread), if it cannot.
    pub problem: Option<String>,
}

/// Live counters of a writer running in this process.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(crate) struct Live {
    pub records_in: u64,
    pub records_written: u64,
    pub records_rejected: u64,
    pub commits: u64,
    pub buffered_bytes: u64,
}

/// Everything the streams page shows about one stream.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(crate) struct StreamStatus {
    pub name: String,
    pub topics: Vec<String>,
    pub group: String,
    pub table: String,
    pub table_url: String,
    pub dead_letter_table: String,
    /// `caught up`, `behind`, `no table yet`, `waiting for data`, `kafka
    /// unreachable`, or `log mismatch` (the broker's log cannot continue
    /// the table: the writer refuses to go on; see `problems`).
    pub state: String,
    pub running_here: bool,
    pub version: Option<u64>,
    pub last_commit: Option<DateTime<Utc>>,
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
    pub rejected: u64,
    pub total_lag: Option<i64>,
    pub lag: Vec<PartitionLag>,
    pub partitions: Vec<TablePartition>,
    pub partition_columns: Vec<String>,
    pub problems: Vec<String>,
    pub live: Option<Live>,
    /// The table's generations (Kappa reprocessing), oldest first; empty
    /// until a replay made a second one.
    pub generations: Vec<Generation>,
}

/// One generation of a stream table, and a replayed one's progress.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(crate) struct Generation {
    #[serde(flatten)]
    pub info: GenerationInfo,
    /// Offsets done and to do, from where its replay starts to the end of
    /// the log (replayed generations, when Kafka answered).
    pub progress: Option<Progress>,
}

/// One partition folder of a table.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(crate) struct TablePartition {
    pub path: String,
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
}

/// One offset reader per stream, made on first use and kept.
#[derive(Default)]
pub(crate) struct OffsetReaders(Mutex<HashMap<String, Arc<OffsetReader>>>);

impl OffsetReaders {
    fn get(&self, s: &StreamSource) -> Result<Arc<OffsetReader>, String> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = m.get(&s.spec.name) {
            return Ok(r.clone());
        }
        let r = Arc::new(OffsetReader::new(&s.kafka).map_err(|e| e.to_string())?);
        m.insert(s.spec.name.clone(), r.clone());
        Ok(r)
    }
}

/// How long the lag lookup may take before the page shows it as unknown.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(3);

async fn table_info(
    location: &Location,
    table: &str,
    stream: &str,
) -> Result<Option<TableInfo>, String> {
    match describe(location, table, Some(stream), 1).await {
        Ok(i) => Ok(Some(i)),
        Err(LakeError::NoTable(..)) => Ok(None),
        Err(e) => Err(format!("table {table}: {e}")),
    }
}

/// The status of one stream (never fails: problems are part of the status).
pub(crate) async fn status(
    s: &StreamSource,
    readers: &OffsetReaders,
    metrics: Option<&Metrics>,
) -> StreamStatus {
    let spec = &s.spec;
    let mut problems = Vec::new();
    let info = table_info(&s.location, &spec.table, &spec.name)
        .await
        .unwrap_or_else(|e| {
            problems.push(e);
            None
        });
    let rejected = match table_info(&s.location, &spec.dead_letter_table, &spec.name).await {
        Ok(i) => i.map_or(0, |i| i.rows),
        Err(e) => {
            problems.push(e);
            0
        }
    };
    let offsets = info.as_ref().map(|i| i.offsets.clone()).unwrap_or_default();
    let fingerprints = info
        .as_ref()
        .map(|i| i.fingerprints.clone())
        .unwrap_or_default();
    let (lag, total_lag) = match partition_lag(s, readers, &offsets, fingerprints).await {
        Ok(lag) => {
            let total = lag.iter().map(|l| l.lag).sum::<i64>();
            (lag, Some(total))
        }
        Err(e) => {
            problems.push(format!("Kafka: {e}"));
            (Vec::new(), None)
        }
    };
    let live = metrics.and_then(|m| live_counters(m, &spec.name));
    let generations = if info.is_some() {
        generations(s, &lag).await.unwrap_or_else(|e| {
            problems.push(format!("generations of {}: {e}", spec.table));
            Vec::new()
        })
    } else {
        Vec::new()
    };
    problems.extend(lag.iter().filter_map(|l| l.problem.clone()));
    let state = match (&info, total_lag) {
        _ if lag.iter().any(|l| l.problem.is_some()) => "log mismatch",
        (_, None) => "kafka unreachable",
        (None, Some(0)) => "waiting for data",
        (None, Some(_)) => "no table yet",
        (Some(_), Some(0)) => "caught up",
        (Some(_), Some(_)) => "behind",
    }
    .to_string();
    StreamStatus {
        name: spec.name.clone(),
        topics: spec.topics.clone(),
        group: spec.group.clone(),
        table: spec.table.clone(),
        table_url: s.location.table_url(&spec.table).to_string(),
        dead_letter_table: spec.dead_letter_table.clone(),
        state,
        running_here: live.is_some(),
        version: info.as_ref().map(|i| i.version),
        last_commit: info
            .as_ref()
            .and_then(|i| i.history.first())
            .and_then(|h| h.timestamp_ms)
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
        files: info.as_ref().map_or(0, |i| i.files),
        rows: info.as_ref().map_or(0, |i| i.rows),
        bytes: info.as_ref().map_or(0, |i| i.bytes),
        rejected,
        total_lag,
        lag,
        partition_columns: info
            .as_ref()
            .map(|i| i.partition_columns.clone())
            .unwrap_or_default(),
        partitions: info.map(table_partitions).unwrap_or_default(),
        problems,
        live,
        generations,
    }
}

/// The generations of the stream's table, with each replayed one's
/// progress against the log ranges `lag` was read with. A table never
/// replayed has one generation and shows none.
async fn generations(s: &StreamSource, lag: &[PartitionLag]) -> Result<Vec<Generation>, LakeError> {
    let all = lake::generation::generations(&s.location, &s.spec.table).await?;
    if all.len() < 2 {
        return Ok(Vec::new());
    }
    let ranges: HashMap<TopicPartition, LogRange> = lag
        .iter()
        .map(|l| {
            (
                TopicPartition {
                    topic: Arc::from(l.topic.as_str()),
                    partition: l.partition,
                },
                LogRange {
                    start: l.start_offset,
                    end: l.end_offset,
                },
            )
        })
        .collect();
    let mut out = Vec::new();
    for info in all {
        let progress = if info.state == State::Replayed && !ranges.is_empty() {
            Some(
                lake::generation::progress::of_generation(
                    &s.location,
                    &s.spec.table,
                    &s.spec.name,
                    info.generation,
                    &ranges,
                )
                .await?,
            )
        } else {
            None
        };
        out.push(Generation { info, progress });
    }
    Ok(out)
}

/// The broker's log against the table's committed offset, per partition
/// of the stream's topics, in topic-partition order.
async fn partition_lag(
    s: &StreamSource,
    readers: &OffsetReaders,
    committed: &BTreeMap<String, i64>,
    fingerprints: BTreeMap<String, i64>,
) -> Result<Vec<PartitionLag>, String> {
    let reader = readers.get(s)?;
    let topics = s.spec.topics.clone();
    let held = committed.clone();
    let check = tokio::task::spawn_blocking(move || {
        reader.check_logs(
            &topics,
            |tp| held.get(&tp.to_string()).copied(),
            |tp| fingerprints.get(&tp.to_string()).copied(),
            KAFKA_TIMEOUT,
        )
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let problems: HashMap<TopicPartition, String> = check
        .mismatches
        .iter()
        .map(|m| {
            (
                m.partition().clone(),
                m.explain(&s.spec.name, &s.spec.table),
            )
        })
        .collect();
    let (ranges, committed) = (check.ranges, check.committed);
    let mut ranges: Vec<_> = ranges.into_iter().collect();
    ranges.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(ranges
        .into_iter()
        .map(|(tp, range)| {
            let c = committed.get(&tp).copied();
            let next = c.map_or(range.start, |c| c + 1);
            PartitionLag {
                lag: (range.end - next).max(0),
                topic: tp.topic.to_string(),
                partition: tp.partition,
                start_offset: range.start,
                end_offset: range.end,
                committed: c,
                problem: problems.get(&tp).cloned(),
            }
        })
        .collect())
}

/// The counters of the stream's writer, if it runs in this process.
fn live_counters(metrics: &Metrics, stream: &str) -> Option<Live> {
    let (_, m) = metrics.streams().into_iter().find(|(n, _)| n == stream)?;
    Some(Live {
        records_in: m.records_in.load(Ordering::Relaxed),
        records_written: m.records_written.load(Ordering::Relaxed),
        records_rejected: m.records_rejected.load(Ordering::Relaxed),
        commits: m.commits.load(Ordering::Relaxed),
        buffered_bytes: m.buffered_bytes.load(Ordering::Relaxed),
    })
}

fn table_partitions(info: TableInfo) -> Vec<TablePartition> {
    info.partitions
        .into_iter()
        .map(|(path, p)| TablePartition {
            path: if path.is_empty() {
                "(unpartitioned)".into()
            } else {
                path
            },
            files: p.files,
            rows: p.rows,
            bytes: p.bytes,
        })
        .collect()
}

/// The status of every stream, looked up concurrently.
pub(crate) async fn all(
    sources: &[StreamSource],
    readers: &OffsetReaders,
    metrics: Option<&Metrics>,
) -> Vec<StreamStatus> {
    futures::future::join_all(sources.iter().map(|s| status(s, readers, metrics))).await
}
