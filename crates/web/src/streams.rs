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
use lake::kafka::{KafkaSource, OffsetReader};
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
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// Last offset in Kafka (-1: empty).
    pub end_offset: i64,
    /// Last offset committed to the table, if any.
    pub committed: Option<i64>,
    /// Records in Kafka not yet in the table.
    pub lag: i64,
}

/// Live counters of a writer running in this process.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Live {
    pub records_in: u64,
    pub records_written: u64,
    pub records_rejected: u64,
    pub commits: u64,
    pub buffered_bytes: u64,
}

/// Everything the streams page shows about one stream.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StreamStatus {
    pub name: String,
    pub topics: Vec<String>,
    pub group: String,
    pub table: String,
    pub table_url: String,
    pub dead_letter_table: String,
    /// `caught up`, `behind`, `no table yet`, `kafka unreachable`.
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
}

/// One partition folder of a table.
#[derive(Debug, Clone, Serialize)]
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
    let topics = spec.topics.clone();
    let ends = match readers.get(s) {
        Ok(reader) => tokio::task::spawn_blocking(move || {
            reader
                .last_offsets(&topics, KAFKA_TIMEOUT)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r),
        Err(e) => Err(e),
    };
    let offsets: BTreeMap<String, i64> =
        info.as_ref().map(|i| i.offsets.clone()).unwrap_or_default();
    let mut lag = Vec::new();
    let mut kafka_ok = true;
    match ends {
        Ok(ends) => {
            let mut ends: Vec<_> = ends.into_iter().collect();
            ends.sort();
            for (tp, end) in ends {
                let committed = offsets.get(&tp.to_string()).copied();
                lag.push(PartitionLag {
                    lag: (end - committed.unwrap_or(-1)).max(0),
                    topic: tp.topic.to_string(),
                    partition: tp.partition,
                    end_offset: end,
                    committed,
                });
            }
        }
        Err(e) => {
            kafka_ok = false;
            problems.push(format!("Kafka: {e}"));
        }
    }
    let total_lag = kafka_ok.then(|| lag.iter().map(|l| l.lag).sum::<i64>());
    let live = metrics.and_then(|m| {
        m.streams()
            .into_iter()
            .find(|(n, _)| *n == spec.name)
            .map(|(_, sm)| Live {
                records_in: sm.records_in.load(Ordering::Relaxed),
                records_written: sm.records_written.load(Ordering::Relaxed),
                records_rejected: sm.records_rejected.load(Ordering::Relaxed),
                commits: sm.commits.load(Ordering::Relaxed),
                buffered_bytes: sm.buffered_bytes.load(Ordering::Relaxed),
            })
    });
    let state = match (&info, total_lag) {
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
        partitions: info
            .map(|i| {
                i.partitions
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
            })
            .unwrap_or_default(),
        problems,
        live,
    }
}

/// The status of every stream, looked up concurrently.
pub(crate) async fn all(
    sources: &[StreamSource],
    readers: &OffsetReaders,
    metrics: Option<&Metrics>,
) -> Vec<StreamStatus> {
    futures::future::join_all(sources.iter().map(|s| status(s, readers, metrics))).await
}
