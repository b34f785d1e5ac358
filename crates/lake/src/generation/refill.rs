//! What Kafka no longer holds, refilled from the current generation.
//!
//! Retention deletes a topic's oldest records; the live table still holds
//! them (every row carries `_topic`, `_partition`, `_offset`). A replay
//! that starts below a partition's log start takes those offsets from the
//! live table's rows (and dead letters) in its first commit, in the new
//! declaration's shape — columns by name, new nullable columns empty,
//! `date()`/`hour()` partition columns computed again — with the
//! partition's offset set to the log start − 1, so the writer goes on from
//! the first record Kafka still holds. One commit, fenced like a writer's:
//! a replay killed before it refills again, after it goes on from Kafka.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, TimestampMicrosecondArray, new_null_array};
use arrow::compute::cast;
use deltalake::kernel::Action;
use deltalake::protocol::{DeltaOperation, OutputMode};

use crate::LakeError;
use crate::config::StreamSpec;
use crate::decode::{date_bucket, hour_bucket};
use crate::kafka::{LogRange, TopicPartition};
use crate::schema::{COL_OFFSET, COL_PARTITION, COL_TOPIC, PartitionColumn, timestamp_type};
use crate::sql::{Bound, LakeCatalog, Limits, SqlEngine};
use crate::table::{CommitOutcome, DeltaTableHandle, Location, OffsetUpdate, app_id};

/// App id marking a generation's dead-letter table as refilled.
const REFILLED: &str = "tributary-refilled";

/// Rows flushed to a Parquet file at a time.
const CHUNK_ROWS: usize = 200_000;

/// What a refill took from the current generation.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Refilled {
    /// Rows copied.
    pub rows: u64,
    /// Dead letters copied.
    pub dead_letters: u64,
    /// Per partition: topic, partition, first and last offset refilled.
    pub partitions: Vec<(String, i32, i64, i64)>,
}

impl Refilled {
    /// What it took, in a sentence about `table`.
    pub fn summary(&self, table: &str) -> String {
        format!(
            "refilled {} rows and {} dead letters that Kafka no longer holds from the current generation of {table}: {}",
            self.rows,
            self.dead_letters,
            self.partitions
                .iter()
                .map(|(t, p, a, b)| format!("{t}/{p} {a}..={b}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Refills a replay's generation (`spec`: the stream as the replay runs
/// it; nothing committed yet) with the offsets below each partition's log
/// start (`ranges`) that the live table holds; `None` when there is
/// nothing to refill.
pub async fn refill(
    location: &Location,
    live: &StreamSpec,
    spec: &StreamSpec,
    ranges: &HashMap<TopicPartition, LogRange>,
) -> Result<Option<Refilled>, LakeError> {
    let mut g =
        DeltaTableHandle::new(&spec.table, location.open_existing(&spec.table).await?).await?;
    if !g.stream_offsets(&spec.name).is_empty() {
        return Ok(None);
    }
    let l = DeltaTableHandle::new(&live.table, location.open_existing(&live.table).await?).await?;
    let held = l.stream_offsets(&live.name);
    let mut gaps: Vec<(String, i32, i64, i64)> = Vec::new();
    for (tp, range) in ranges {
        let key = (tp.topic.to_string(), tp.partition);
        let from = spec.start.get(&key).copied().unwrap_or(0);
        let to = held.get(&key).map_or(-1, |c| (range.start - 1).min(*c));
        if from <= to {
            gaps.push((key.0, key.1, from, to));
        }
    }
    if gaps.is_empty() {
        return Ok(None);
    }
    gaps.sort();
    let predicate = gaps
        .iter()
        .map(|(t, p, a, b)| {
            format!(
                "({COL_TOPIC} = '{}' AND {COL_PARTITION} = {p} AND {COL_OFFSET} BETWEEN {a} AND {b})",
                t.replace('\'', "''")
            )
        })
        .collect::<Vec<_>>()
        .join(" OR ");
    let engine = SqlEngine::new(LakeCatalog::new(location.clone()), Limits::default())
        .map_err(super::verify::compare_err)?;
    let sql = format!("SELECT * FROM rows WHERE {predicate}");
    let mut out = Refilled {
        partitions: gaps.clone(),
        ..Refilled::default()
    };
    // Dead letters first, marked so a second attempt does not copy them
    // again: the table's commit below is what makes the refill count.
    if let (Some(ld), Some(gd)) = (
        location.open(&live.dead_letter_table).await?,
        location.open(&spec.dead_letter_table).await?,
    ) {
        let mut gd = DeltaTableHandle::new(&spec.dead_letter_table, gd).await?;
        if !gd.txns().contains_key(REFILLED) {
            let schema = gd.table().snapshot()?.snapshot().arrow_schema();
            let (adds, n) = copy(&engine, ld, &sql, gd.table(), &[], |b| {
                crate::transform::conform(&b, &schema)
            })
            .await?;
            out.dead_letters = n;
            commit(&mut gd, adds, vec![marker()]).await?;
        }
    }
    let parts: Vec<String> = spec
        .partition_by
        .iter()
        .map(|p| p.name().to_string())
        .collect();
    let (adds, n) = copy(&engine, l.table().clone(), &sql, g.table(), &parts, |b| {
        reshape(&b, spec)
    })
    .await?;
    out.rows = n;
    let updates = gaps
        .iter()
        .map(|(t, p, _, b)| OffsetUpdate {
            app_id: app_id(&spec.name, t, *p),
            expected: None,
            last: *b,
        })
        .collect();
    commit(&mut g, adds, updates).await?;
    Ok(Some(out))
}

fn marker() -> OffsetUpdate {
    OffsetUpdate {
        app_id: REFILLED.to_string(),
        expected: None,
        last: 1,
    }
}

/// Runs `sql` over `from` (bound as `rows`) and writes its rows, shaped
/// by `shape`, as files of `to`: (files, rows).
async fn copy(
    engine: &SqlEngine,
    from: deltalake::DeltaTable,
    sql: &str,
    to: &deltalake::DeltaTable,
    parts: &[String],
    shape: impl Fn(RecordBatch) -> Result<RecordBatch, LakeError>,
) -> Result<(Vec<deltalake::kernel::Add>, u64), LakeError> {
    let bound = BTreeMap::from([("rows".to_string(), Bound::Table(from))]);
    let mut batches = engine
        .plan_bound(sql, &bound)
        .await
        .map_err(super::verify::compare_err)?
        .stream()
        .await
        .map_err(super::verify::compare_err)?;
    let (mut adds, mut chunk, mut chunk_rows, mut rows) = (Vec::new(), Vec::new(), 0, 0u64);
    while let Some(b) = batches.next().await {
        let b = shape(b.map_err(super::verify::compare_err)?)?;
        if b.num_rows() == 0 {
            continue;
        }
        chunk_rows += b.num_rows();
        rows += b.num_rows() as u64;
        chunk.push(b);
        if chunk_rows >= CHUNK_ROWS {
            adds.extend(write(to, parts, &chunk).await?);
            chunk.clear();
            chunk_rows = 0;
        }
    }
    adds.extend(write(to, parts, &chunk).await?);
    Ok((adds, rows))
}

async fn write(
    to: &deltalake::DeltaTable,
    parts: &[String],
    chunk: &[RecordBatch],
) -> Result<Vec<deltalake::kernel::Add>, LakeError> {
    crate::partition::write_files(to, parts, chunk, crate::transform::default_properties()).await
}

/// One commit of `adds` with `updates`, fenced on their expected values.
async fn commit(
    h: &mut DeltaTableHandle,
    adds: Vec<deltalake::kernel::Add>,
    updates: Vec<OffsetUpdate>,
) -> Result<(), LakeError> {
    let op = DeltaOperation::StreamingUpdate {
        output_mode: OutputMode::Append,
        query_id: format!("tributary-refill:{}", h.name()),
        epoch_id: 0,
    };
    match h
        .commit_built(&updates, op, |_| {
            Ok(adds.iter().cloned().map(Action::Add).collect())
        })
        .await?
    {
        CommitOutcome::Committed { .. } => Ok(()),
        CommitOutcome::Fenced(_) => Err(LakeError::Commit(format!(
            "{}: another writer committed first while refilling; run the replay again (it resumes)",
            h.name()
        ))),
    }
}

/// A live row in the generation's table shape: columns by name (cast),
/// `date()`/`hour()` partition columns computed again in the declaration's
/// zone, new nullable columns empty.
fn reshape(b: &RecordBatch, spec: &StreamSpec) -> Result<RecordBatch, LakeError> {
    let schema = spec.table_schema.clone();
    let micros = |name: &str| -> Result<TimestampMicrosecondArray, LakeError> {
        let c = b.column_by_name(name).ok_or_else(|| missing(spec, name))?;
        Ok(cast(c, &timestamp_type())?
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .expect("cast to microseconds")
            .clone())
    };
    let mut columns: Vec<ArrayRef> = Vec::new();
    for f in schema.fields() {
        let derived = spec.partition_by.iter().find(|p| p.name() == f.name());
        columns.push(match derived {
            Some(PartitionColumn::Date(c)) => Arc::new(date_bucket(&micros(c)?, spec.timezone)),
            Some(PartitionColumn::Hour(c)) => Arc::new(hour_bucket(&micros(c)?, spec.timezone)),
            _ => match b.column_by_name(f.name()) {
                Some(c) => cast(c, f.data_type())?,
                None if f.is_nullable() => new_null_array(f.data_type(), b.num_rows()),
                None => return Err(missing(spec, f.name())),
            },
        });
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn missing(spec: &StreamSpec, column: &str) -> LakeError {
    LakeError::Config(format!(
        "cannot refill {} from the current generation's rows (Kafka no longer holds them): \
         column {column} is not in the current generation and not nullable; \
         declare it nullable, or replay --from the log's start",
        spec.table
    ))
}
