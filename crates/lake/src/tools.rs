//! Table tools: describe (`lake ls`), prove exactly once (`lake verify`),
//! compact (`lake optimize`) and remove unreferenced files (`lake vacuum`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use arrow::array::{Array, ArrayRef, Int32Array, Int64Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use deltalake::DeltaTable;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::LakeError;
use crate::schema::{COL_OFFSET, COL_PARTITION, COL_TOPIC};
use crate::table::{DeltaTableHandle, Location};

/// One table partition (hive path) in [`TableInfo`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct PartitionInfo {
    /// Data files.
    pub files: u64,
    /// Rows (from the log's statistics).
    pub rows: u64,
    pub bytes: u64,
}

/// One log version in [`TableInfo`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct VersionInfo {
    pub version: u64,
    /// Commit time (ms since the epoch).
    pub timestamp_ms: Option<i64>,
    /// Operation (`CREATE TABLE`, `STREAMING UPDATE`, `OPTIMIZE`, …).
    pub operation: Option<String>,
}

/// What `lake ls` shows.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct TableInfo {
    /// Table name.
    pub name: String,
    /// Table URL.
    pub url: String,
    /// Current version.
    pub version: u64,
    /// Data files.
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
    pub partition_columns: Vec<String>,
    /// Per hive partition path (`nation=FR/date=2026-11-21`).
    pub partitions: BTreeMap<String, PartitionInfo>,
    /// Last durable offset per (topic, partition) of the stream.
    pub offsets: BTreeMap<String, i64>,
    /// Fingerprint of the record at each of those offsets
    /// ([`crate::fingerprint`]), where one is recorded.
    pub fingerprints: BTreeMap<String, i64>,
    /// The most recent versions, newest first.
    pub history: Vec<VersionInfo>,
}

fn partition_path(
    values: &std::collections::HashMap<String, Option<String>>,
    columns: &[String],
) -> String {
    if columns.is_empty() {
        return "(unpartitioned)".into();
    }
    columns
        .iter()
        .map(|c| match values.get(c).cloned().flatten() {
            Some(v) => format!("{c}={v}"),
            None => format!("{c}=__HIVE_DEFAULT_PARTITION__"),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Describes a table: versions, files, rows, partitions and the stream's
/// offsets (of `stream`, or of every stream that wrote to it).
pub async fn describe(
    location: &Location,
    table: &str,
    stream: Option<&str>,
    history: usize,
) -> Result<TableInfo, LakeError> {
    let t = location.open_existing(table).await?;
    let snap = t.snapshot()?;
    let columns = snap.metadata().partition_columns().to_vec();
    let mut info = TableInfo {
        name: table.to_string(),
        url: location.table_url(table).to_string(),
        version: t.version().unwrap_or(0),
        files: 0,
        rows: 0,
        bytes: 0,
        partition_columns: columns.clone(),
        partitions: BTreeMap::new(),
        offsets: BTreeMap::new(),
        fingerprints: BTreeMap::new(),
        history: Vec::new(),
    };
    for f in snap.log_data().iter() {
        let rows = f.num_records().unwrap_or(0) as u64;
        let e = info
            .partitions
            .entry(partition_path(&f.partition_values_map(), &columns))
            .or_default();
        e.files += 1;
        e.rows += rows;
        e.bytes += f.size() as u64;
        info.files += 1;
        info.rows += rows;
        info.bytes += f.size() as u64;
    }
    let handle = DeltaTableHandle::new(table, t.clone()).await?;
    for ((s, topic, p), o) in handle.all_offsets() {
        if stream.is_none_or(|want| want == s) {
            info.offsets.insert(format!("{topic}/{p}"), o);
        }
    }
    info.fingerprints = fingerprints_of(&handle, stream);
    let commits: Vec<_> = t.history(Some(history)).try_collect().await?;
    let mut v = info.version;
    for c in commits {
        info.history.push(VersionInfo {
            version: v,
            timestamp_ms: c.timestamp,
            operation: c.operation.clone(),
        });
        v = v.saturating_sub(1);
    }
    Ok(info)
}

/// Kafka coordinates of every row in a table's current files, per
/// (topic, partition), plus the rows read and the rows the log announces.
async fn coordinates(
    t: &DeltaTable,
) -> Result<(BTreeMap<(String, i32), Vec<i64>>, u64, u64), LakeError> {
    let snap = t.snapshot()?;
    let store = t.object_store();
    let mut out: BTreeMap<(String, i32), Vec<i64>> = BTreeMap::new();
    let (mut read, mut announced) = (0u64, 0u64);
    let files: Vec<_> = snap
        .log_data()
        .iter()
        .map(|f| (f.object_store_path(), f.size() as u64, f.num_records()))
        .collect();
    for (path, size, num) in files {
        announced += num.unwrap_or(0) as u64;
        let bytes = store.get(&path).await?.bytes().await?;
        if bytes.len() as u64 != size {
            return Err(LakeError::Config(format!(
                "file {path} has {} bytes but the log says {size}",
                bytes.len()
            )));
        }
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
        let mask = ProjectionMask::columns(
            builder.parquet_schema(),
            [COL_TOPIC, COL_PARTITION, COL_OFFSET],
        );
        for batch in builder
            .with_projection(mask)
            .with_batch_size(65536)
            .build()?
        {
            let batch = batch.map_err(parquet::errors::ParquetError::from)?;
            // Rewritten files (OPTIMIZE through DataFusion) may hold string
            // views or other encodings: cast to the canonical types.
            let col = |name: &str, t: &DataType| -> Result<ArrayRef, LakeError> {
                let c = batch.column_by_name(name).ok_or_else(|| {
                    LakeError::Config(format!("file {path} has no Kafka coordinate column {name}"))
                })?;
                cast(c, t)
                    .map_err(|e| LakeError::Config(format!("file {path}: column {name}: {e}")))
            };
            let topic = col(COL_TOPIC, &DataType::Utf8)?;
            let part = col(COL_PARTITION, &DataType::Int32)?;
            let off = col(COL_OFFSET, &DataType::Int64)?;
            let topic = topic
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("cast to Utf8");
            let part = part
                .as_any()
                .downcast_ref::<Int32Array>()
                .expect("cast to Int32");
            let off = off
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("cast to Int64");
            read += batch.num_rows() as u64;
            for i in 0..batch.num_rows() {
                if topic.is_null(i) || part.is_null(i) || off.is_null(i) {
                    continue;
                }
                out.entry((topic.value(i).to_string(), part.value(i)))
                    .or_default()
                    .push(off.value(i));
            }
        }
    }
    Ok((out, read, announced))
}

/// One Kafka partition in a [`VerifyReport`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct PartitionCheck {
    pub topic: String,
    pub partition: i32,
    /// First offset held (table or dead-letter table).
    pub first: i64,
    /// Last offset held.
    pub last: i64,
    /// Rows in the table.
    pub rows: u64,
    /// Rows in the dead-letter table.
    pub rejected: u64,
    /// Last offset the table's log records as durable.
    pub committed: Option<i64>,
    /// Kafka log lifetimes the table holds rows of (1 unless the offsets
    /// were reset: `lake::lifetimes`).
    pub lifetimes: u32,
}

/// What `lake verify` proves (or not).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct VerifyReport {
    pub table: String,
    /// Version verified.
    pub version: u64,
    /// Rows read from the table's files.
    pub rows_read: u64,
    /// Rows the log's statistics announce.
    pub rows_in_log: u64,
    /// Rows read from the dead-letter table.
    pub rejected_read: u64,
    /// Per Kafka partition.
    pub partitions: Vec<PartitionCheck>,
    /// Every violation found (empty: exactly once holds).
    pub problems: Vec<String>,
    /// The fingerprint of the record at each committed offset ("topic/p"),
    /// read at `version` with the offsets: the broker check compares them
    /// with the broker's records. Read from a later version, they would
    /// belong to other offsets whenever a writer commits meanwhile.
    #[serde(skip)]
    pub fingerprints: BTreeMap<String, i64>,
}

impl VerifyReport {
    /// True when no problem was found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The fingerprints `handle`'s version records for `stream`'s committed
/// offsets (every stream's when `None`), by "topic/partition"; unknown
/// ones (0, after an offset reset) left out.
fn fingerprints_of(handle: &DeltaTableHandle, stream: Option<&str>) -> BTreeMap<String, i64> {
    handle
        .txns()
        .iter()
        .filter_map(|(id, &f)| {
            let (s, topic, p) = crate::fingerprint::parse_fingerprint_id(id)?;
            (stream.is_none_or(|want| want == s) && f != 0).then(|| (format!("{topic}/{p}"), f))
        })
        .collect()
}

/// Reads every committed file of a table (and its dead-letter table) and
/// checks, per Kafka partition: no (partition, offset) twice, offsets
/// contiguous from the first one held up to the log's committed offset, no
/// row beyond it, and rows read equal to the rows the log announces.
pub async fn verify(
    location: &Location,
    table: &str,
    dead_letter: Option<&str>,
    stream: Option<&str>,
) -> Result<VerifyReport, LakeError> {
    let t = location.open_existing(table).await?;
    let (main, rows_read, rows_in_log) = coordinates(&t).await?;
    let (dlq, rejected_read) = match dead_letter {
        Some(d) => match location.open(d).await? {
            Some(dt) => {
                let (c, r, _) = coordinates(&dt).await?;
                (c, r)
            }
            None => (BTreeMap::new(), 0),
        },
        None => (BTreeMap::new(), 0),
    };
    let keys: BTreeSet<(String, i32)> = main.keys().chain(dlq.keys()).cloned().collect();
    let handle = DeltaTableHandle::new(table, t.clone()).await?;
    let mut committed_of: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut writers = BTreeSet::new();
    for ((s, topic, p), o) in handle.all_offsets() {
        if stream.is_none_or(|want| want == s) {
            writers.insert(s);
            committed_of.insert((topic, p), o);
        }
    }
    let mut report = VerifyReport {
        table: table.to_string(),
        version: handle.version(),
        rows_read,
        rows_in_log,
        rejected_read,
        partitions: Vec::new(),
        problems: Vec::new(),
        fingerprints: fingerprints_of(&handle, stream),
    };
    if writers.len() > 1 {
        report.problems.push(format!(
            "several streams recorded offsets in this table ({}); name one to verify",
            writers.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    if rows_read != rows_in_log {
        report.problems.push(format!("rows read from files ({rows_read}) differ from rows in the log's statistics ({rows_in_log})"));
    }
    let resets = stream
        .map(|s| crate::lifetimes::resets(handle.txns(), s))
        .unwrap_or_default();
    for (topic, p) in keys {
        let empty = Vec::new();
        let rows = main.get(&(topic.clone(), p)).unwrap_or(&empty).clone();
        let rej = dlq.get(&(topic.clone(), p)).unwrap_or(&empty).clone();
        let committed = committed_of.get(&(topic.clone(), p)).copied();
        let check = match resets.get(&(topic.clone(), p)) {
            Some(r) => check_lifetimes(topic, p, rows, rej, r, committed, &mut report.problems),
            None => check_partition(topic, p, rows, rej, committed, &mut report.problems),
        };
        report.partitions.push(check);
    }
    Ok(report)
}

/// The checks of a partition whose log was replaced (`lake::lifetimes`):
/// each offset must be held exactly as many times as there are lifetimes
/// whose range covers it (table and dead letters together). A lifetime's
/// range runs from where it began (the first offset held, for the first
/// lifetime) to where the next reset found it ended, or to the committed
/// offset for the current one.
fn check_lifetimes(
    topic: String,
    p: i32,
    rows: Vec<i64>,
    rej: Vec<i64>,
    resets: &[crate::lifetimes::Reset],
    committed: Option<i64>,
    problems: &mut Vec<String>,
) -> PartitionCheck {
    let name = format!("{topic}/{p}");
    let mut count: BTreeMap<i64, u32> = BTreeMap::new();
    for o in rows.iter().chain(rej.iter()) {
        *count.entry(*o).or_default() += 1;
    }
    // Later lifetimes: [first, end] each.
    let mut later: Vec<(i64, i64)> = Vec::new();
    for (i, r) in resets.iter().enumerate() {
        let end = resets
            .get(i + 1)
            .map_or(committed.unwrap_or(-1), |next| next.ended);
        later.push((r.first, end));
    }
    let covered = |o: i64, ranges: &[(i64, i64)]| {
        ranges.iter().filter(|(a, b)| *a <= o && o <= *b).count() as u32
    };
    // The first lifetime starts at the first offset the later ones do not explain.
    let first_end = resets[0].ended;
    let first_start = count
        .iter()
        .find(|(o, c)| **o <= first_end && **c > covered(**o, &later))
        .map_or(first_end + 1, |(o, _)| *o);
    let mut all = vec![(first_start, first_end)];
    all.extend(later.iter().copied());
    let mut offsets: BTreeSet<i64> = count.keys().copied().collect();
    for (a, b) in &all {
        offsets.extend(*a..=*b);
    }
    let (mut missing, mut extra) = (Vec::new(), 0usize);
    for o in offsets {
        let (want, have) = (covered(o, &all), count.get(&o).copied().unwrap_or(0));
        if have > want {
            if extra < 10 {
                problems.push(format!(
                    "{name}: offset {o} is held {have} times, but {want} Kafka log lifetime(s) cover it"
                ));
            }
            extra += 1;
        } else if have < want {
            missing.push(o);
        }
    }
    if extra > 10 {
        problems.push(format!(
            "{name}: {} more offsets are held too often",
            extra - 10
        ));
    }
    for run in missing.chunk_by(|a, b| b == &(a + 1)).take(10) {
        problems.push(format!(
            "{name}: offsets {}..={} are missing from a Kafka log lifetime",
            run[0],
            run[run.len() - 1]
        ));
    }
    PartitionCheck {
        topic,
        partition: p,
        first: count.keys().next().copied().unwrap_or(-1),
        last: count.keys().next_back().copied().unwrap_or(-1),
        rows: rows.len() as u64,
        rejected: rej.len() as u64,
        committed,
        lifetimes: resets.len() as u32 + 1,
    }
}

/// The checks of one Kafka partition: no offset twice (in the table, in the
/// dead letters, or across both), no gap below the committed offset, the
/// committed offset held and not exceeded. Problems are added to `problems`.
fn check_partition(
    topic: String,
    p: i32,
    mut rows: Vec<i64>,
    mut rej: Vec<i64>,
    committed: Option<i64>,
    problems: &mut Vec<String>,
) -> PartitionCheck {
    rows.sort_unstable();
    rej.sort_unstable();
    let name = format!("{topic}/{p}");
    for (list, which) in [(&rows, "the table"), (&rej, "the dead-letter table")] {
        let dups: Vec<i64> = list
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .collect();
        for o in dups.iter().take(10) {
            problems.push(format!("{name}: offset {o} is in {which} more than once"));
        }
        if dups.len() > 10 {
            problems.push(format!(
                "{name}: {} more offsets are in {which} more than once",
                dups.len() - 10
            ));
        }
    }
    let mut all: Vec<i64> = rows.iter().chain(rej.iter()).copied().collect();
    all.sort_unstable();
    let set_rows: BTreeSet<i64> = rows.iter().copied().collect();
    for o in rej.iter().filter(|o| set_rows.contains(o)).take(10) {
        problems.push(format!(
            "{name}: offset {o} is both in the table and in the dead-letter table"
        ));
    }
    all.dedup();
    let (first, last) = (
        all.first().copied().unwrap_or(-1),
        all.last().copied().unwrap_or(-1),
    );
    let upto = committed.unwrap_or(-1);
    let mut gaps = 0;
    for w in all.windows(2).filter(|w| w[1] != w[0] + 1 && w[0] < upto) {
        if gaps < 10 {
            problems.push(format!(
                "{name}: offsets {}..={} are missing",
                w[0] + 1,
                w[1] - 1
            ));
        }
        gaps += 1;
    }
    if gaps > 10 {
        problems.push(format!("{name}: {} more gaps", gaps - 10));
    }
    match committed {
        None if !rows.is_empty() => problems.push(format!(
            "{name}: rows present but the log records no committed offset"
        )),
        Some(c) if last < c => problems.push(format!(
            "{name}: the log says offsets up to {c} are durable, but the last held is {last}"
        )),
        _ => {}
    }
    if let (Some(c), Some(max_row)) = (committed, rows.last())
        && *max_row > c
    {
        problems.push(format!(
            "{name}: row at offset {max_row} is beyond the committed offset {c}"
        ));
    }
    PartitionCheck {
        topic,
        partition: p,
        first,
        last,
        rows: rows.len() as u64,
        rejected: rej.len() as u64,
        committed,
        lifetimes: 1,
    }
}

/// What `lake optimize` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct OptimizeReport {
    /// Files removed (compacted away).
    pub files_removed: u64,
    pub files_added: u64,
    pub partitions_optimized: u64,
    /// Version after.
    pub version: u64,
}

/// Compacts small files into files of about `target_size` bytes (Delta's
/// bin-packing OPTIMIZE, through `deltalake`); with `zorder_by`, rewrites
/// each partition's files clustered on those columns (Z-order), so filters
/// on them skip more files.
pub async fn optimize(
    location: &Location,
    table: &str,
    target_size: u64,
    zorder_by: &[String],
) -> Result<OptimizeReport, LakeError> {
    use deltalake::operations::optimize::OptimizeType;
    let t = location.open_existing(table).await?;
    let target = std::num::NonZeroU64::new(target_size.max(1)).expect("at least 1");
    let kind = if zorder_by.is_empty() {
        OptimizeType::Compact
    } else {
        OptimizeType::ZOrder(zorder_by.to_vec())
    };
    let (t, metrics) = t
        .optimize()
        .with_target_size(target)
        .with_type(kind)
        .await?;
    Ok(OptimizeReport {
        files_removed: metrics.num_files_removed,
        files_added: metrics.num_files_added,
        partitions_optimized: metrics.partitions_optimized,
        version: t.version().unwrap_or(0),
    })
}

/// Writes a checkpoint of the table's latest version (a Parquet file of
/// its whole state, so readers replay no more JSON commits than those
/// after it); returns that version.
pub async fn checkpoint(location: &Location, table: &str) -> Result<u64, LakeError> {
    let t = location.open_existing(table).await?;
    deltalake::checkpoints::create_checkpoint(&t, None).await?;
    Ok(t.version().unwrap_or(0))
}

/// Removes files no longer referenced by the table (compacted away, or
/// written and never committed) and older than `retention`.
pub async fn vacuum(
    location: &Location,
    table: &str,
    retention: Duration,
    dry_run: bool,
) -> Result<Vec<String>, LakeError> {
    let t = location.open_existing(table).await?;
    let (_, metrics) = t
        .vacuum()
        .with_retention_period(
            chrono::Duration::from_std(retention)
                .map_err(|e| LakeError::Config(format!("retention: {e}")))?,
        )
        .with_enforce_retention_duration(false)
        .with_mode(deltalake::operations::vacuum::VacuumMode::Full)
        .with_dry_run(dry_run)
        .await?;
    Ok(metrics.files_deleted)
}
