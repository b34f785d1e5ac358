//! What every step of a transform shares, per-row or windowed: the source
//! and output tables (kept loaded between steps), the checkpoint, writing
//! an answer as Parquet files a chunk at a time, and the one fenced commit
//! of files, removed files and `txn` entries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema, SchemaRef};
use chrono::{DateTime, Utc};
use deltalake::DeltaTable;
use deltalake::kernel::{Add, Remove};

use super::checkpoint::{reference_app_id, source_app_id};
use super::spec::TransformSpec;
use crate::LakeError;
use crate::metrics::TransformMetrics;
use crate::sql::{Bound, Query, SqlEngine, SqlError, SqlErrorKind};
use crate::table::{CommitOutcome, DeltaTableHandle, OffsetUpdate};

/// Output rows gathered before they are written as files.
const CHUNK_ROWS: usize = 1_000_000;
/// Output bytes (Arrow) gathered before they are written as files.
const CHUNK_BYTES: usize = 128 << 20;

/// What one step found or did.
pub(super) enum Step {
    /// Committed a step (more may be waiting).
    Committed,
    /// Another run committed first; read its checkpoint and go on.
    Fenced,
    /// The output holds the source's latest version.
    CaughtUp,
    /// A table the transform reads does not exist yet.
    Waiting(String),
}

/// A step's view of the tables: the checkpoint and the source's latest
/// version.
pub(super) struct Position {
    pub checkpoint: Option<u64>,
    pub latest: u64,
}

/// What a step commits.
pub(super) struct Change {
    pub adds: Vec<Add>,
    pub removes: Vec<Remove>,
    /// The source version the output holds after it.
    pub to: u64,
    /// Source rows the step read.
    pub rows_in: u64,
    /// Rows it wrote.
    pub rows_out: u64,
    /// Reference tables read, with versions.
    pub references: BTreeMap<String, u64>,
    /// More `txn` entries (a windowed transform's watermark state).
    pub state: Vec<(String, i64)>,
    /// When the source version `to` was committed.
    pub committed_at: Option<DateTime<Utc>>,
}

/// The tables a transform works on, kept loaded between steps.
pub(super) struct Runner {
    pub spec: Arc<TransformSpec>,
    pub engine: SqlEngine,
    pub metrics: Arc<TransformMetrics>,
    /// The source, loaded at the last version a step read.
    pub source: Option<DeltaTable>,
    /// The output table and the `txn` entries it holds.
    pub output: Option<DeltaTableHandle>,
    pub summary: RunSummary,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunSummary {
    /// Output commits made.
    pub commits: u64,
    /// Source rows read.
    pub rows_in: u64,
    /// Rows committed to the output.
    pub rows_out: u64,
    /// The last source version the output holds.
    pub checkpoint: Option<u64>,
    /// The output table's version.
    pub version: Option<u64>,
    /// Rows the sink published to its topic.
    pub rows_published: u64,
}

/// A step's planned SQL, or why the step waits.
pub(super) enum Planned {
    /// The query, checked against what a transform's SQL may do.
    Query(Box<Query>),
    /// A table the SQL reads does not exist yet (a DAG task writes it).
    Waiting(Step),
}

pub(super) fn sql_err(spec: &TransformSpec, e: SqlError) -> LakeError {
    LakeError::Config(format!("transform {}: sql {e}", spec.name))
}

impl Runner {
    /// Plans `sql` with `bound` names and checks it (`windowed`: the
    /// windowed step's rules); an unknown table makes the step wait.
    pub async fn plan(
        &self,
        sql: &str,
        bound: &BTreeMap<String, Bound>,
        windowed: bool,
    ) -> Result<Planned, LakeError> {
        let spec = &self.spec;
        let query = match self.engine.plan_bound(sql, bound).await {
            Ok(q) => q,
            Err(e) if e.kind == SqlErrorKind::UnknownTable => {
                return Ok(Planned::Waiting(Step::Waiting(format!(
                    "transform {}: {}",
                    spec.name, e.message
                ))));
            }
            Err(e) => return Err(sql_err(spec, e)),
        };
        super::plan::check_plan(query.logical_plan(), windowed).map_err(|e| sql_err(spec, e))?;
        Ok(Planned::Query(Box::new(query)))
    }

    /// The last source version the output holds.
    pub fn checkpoint(&self) -> Option<u64> {
        let id = source_app_id(&self.spec.name, &self.spec.source);
        let v = self.output.as_ref()?.offset(&id)?;
        u64::try_from(v).ok()
    }

    /// Opens (or refreshes) the output and the source; `None` while the
    /// source does not exist.
    pub async fn position(&mut self) -> Result<Option<Position>, LakeError> {
        let spec = self.spec.clone();
        let catalog = self.engine.catalog().clone();
        if self.output.is_none()
            && let Some(t) = catalog.location(&spec.table).open(&spec.table).await?
        {
            self.output = Some(DeltaTableHandle::new(&spec.table, t).await?);
        }
        if let Some(o) = self.output.as_mut() {
            o.refresh().await?;
        }
        if self.source.is_none() {
            match catalog.location(&spec.source).open(&spec.source).await? {
                Some(t) => self.source = Some(t),
                None => return Ok(None),
            }
        }
        let checkpoint = self.checkpoint();
        let source = self.source.as_mut().expect("opened above");
        let latest = source.get_latest_version().await?;
        self.metrics.source_version.store(latest, Ordering::Relaxed);
        Ok(Some(Position { checkpoint, latest }))
    }

    /// The source, loaded at the version last asked for.
    pub fn source(&self) -> &DeltaTable {
        self.source.as_ref().expect("opened by position()")
    }

    /// Brings the source to `version` (forward incrementally, back by a
    /// load).
    pub async fn load_source(&mut self, version: u64) -> Result<(), LakeError> {
        let source = self.source.as_mut().expect("opened by position()");
        match source.version() {
            Some(v) if v == version => Ok(()),
            Some(v) if v < version => Ok(source.update_incremental(Some(version)).await?),
            _ => Ok(source.load_version(version).await?),
        }
    }

    /// The output table, created with the answer's columns (all nullable)
    /// on the first step; an existing one must have those columns.
    pub async fn output_table(
        &mut self,
        answer: &SchemaRef,
    ) -> Result<&DeltaTableHandle, LakeError> {
        let spec = self.spec.clone();
        let nullable = Schema::new(
            answer
                .fields()
                .iter()
                .map(|f| Field::new(f.name(), plain_type(f.data_type()), true))
                .collect::<Vec<_>>(),
        );
        let location = self.engine.catalog().location(&spec.table).clone();
        if self.output.is_none() {
            let t = location
                .open_or_create(&spec.table, &nullable, &spec.partition_by)
                .await?;
            self.output = Some(DeltaTableHandle::new(&spec.table, t).await?);
        }
        let output = self.output.as_ref().expect("set above");
        let have: Vec<String> = output
            .table()
            .snapshot()?
            .schema()
            .fields()
            .map(|f| f.name().to_string())
            .collect();
        let want: Vec<String> = answer.fields().iter().map(|f| f.name().clone()).collect();
        if have != want {
            return Err(LakeError::Config(format!(
                "transform {}: table {} has columns [{}], but the SQL now returns [{}]; \
                 write to a new table (and rebuild it from the source) or restore the SQL",
                spec.name,
                spec.table,
                have.join(", "),
                want.join(", ")
            )));
        }
        Ok(output)
    }

    /// Runs a planned query and writes its answer as files of the output
    /// table (created from the answer's columns if needed), a chunk at a
    /// time; returns the files and the rows written.
    pub async fn write_answer(&mut self, query: Query) -> Result<(Vec<Add>, u64), LakeError> {
        let spec = self.spec.clone();
        let output = self.output_table(&query.schema()).await?;
        let schema: SchemaRef = output.table().snapshot()?.snapshot().arrow_schema();
        let mut adds: Vec<Add> = Vec::new();
        let mut chunk: Vec<RecordBatch> = Vec::new();
        let (mut chunk_rows, mut chunk_bytes, mut rows) = (0usize, 0usize, 0u64);
        let mut batches = query.stream().await.map_err(|e| sql_err(&spec, e))?;
        while let Some(batch) = batches.next().await {
            let batch = conform(&batch.map_err(|e| sql_err(&spec, e))?, &schema)?;
            if batch.num_rows() == 0 {
                continue;
            }
            chunk_rows += batch.num_rows();
            chunk_bytes += batch.get_array_memory_size();
            rows += batch.num_rows() as u64;
            chunk.push(batch);
            if chunk_rows >= CHUNK_ROWS || chunk_bytes >= CHUNK_BYTES {
                adds.extend(self.write(&chunk).await?);
                chunk.clear();
                (chunk_rows, chunk_bytes) = (0, 0);
            }
        }
        adds.extend(self.write(&chunk).await?);
        Ok((adds, rows))
    }

    async fn write(&self, chunk: &[RecordBatch]) -> Result<Vec<Add>, LakeError> {
        let output = self.output.as_ref().expect("created before writing");
        crate::partition::write_files(
            output.table(),
            output.partition_by(),
            chunk,
            default_properties(),
        )
        .await
    }

    /// Commits a step: its files, the checkpoint (fenced on the one the
    /// step started from), the reference versions and any state entries.
    pub async fn commit(&mut self, checkpoint: Option<u64>, c: Change) -> Result<Step, LakeError> {
        let spec = self.spec.clone();
        let output = self.output.as_mut().expect("created by the step");
        let mut updates = vec![OffsetUpdate {
            app_id: source_app_id(&spec.name, &spec.source),
            expected: checkpoint.map(|c| c as i64),
            last: c.to as i64,
        }];
        let entries = c
            .references
            .iter()
            .map(|(t, v)| (reference_app_id(&spec.name, t), *v as i64))
            .chain(c.state.iter().cloned());
        for (id, last) in entries {
            updates.push(OffsetUpdate {
                expected: output.offset(&id),
                app_id: id,
                last,
            });
        }
        let files = c.adds.len();
        let outcome = output
            .commit_changes(c.adds, c.removes, &updates, &spec.name, c.to as i64)
            .await?;
        match outcome {
            CommitOutcome::Committed { version, .. } => {
                tracing::debug!(transform = %spec.name, version, source_version = c.to, files, rows_in = c.rows_in, rows_out = c.rows_out, "committed");
                self.committed(version, c.to, c.rows_in, c.rows_out, c.committed_at);
                Ok(Step::Committed)
            }
            CommitOutcome::Fenced(moved) => {
                self.metrics.fenced.fetch_add(1, Ordering::Relaxed);
                tracing::info!(transform = %spec.name, ?moved, "another run committed first; going on from its checkpoint");
                Ok(Step::Fenced)
            }
        }
    }

    fn committed(
        &mut self,
        version: u64,
        to: u64,
        rows_in: u64,
        rows_out: u64,
        committed_at: Option<DateTime<Utc>>,
    ) {
        let m = &self.metrics;
        m.commits.fetch_add(1, Ordering::Relaxed);
        m.rows_in.fetch_add(rows_in, Ordering::Relaxed);
        m.rows_out.fetch_add(rows_out, Ordering::Relaxed);
        m.checkpoint_plus_one.store(to + 1, Ordering::Relaxed);
        m.last_version.store(version, Ordering::Relaxed);
        let now = Utc::now();
        m.last_commit_ms
            .store(now.timestamp_millis().max(0) as u64, Ordering::Relaxed);
        if let Some(at) = committed_at {
            m.observe_latency((now - at).to_std().unwrap_or(Duration::ZERO));
        }
        self.summary.commits += 1;
        self.summary.rows_in += rows_in;
        self.summary.rows_out += rows_out;
        self.summary.checkpoint = Some(to);
        self.summary.version = Some(version);
    }
}

/// The type a column gets in a Delta table (view types are stored as
/// their plain forms).
fn plain_type(t: &arrow::datatypes::DataType) -> arrow::datatypes::DataType {
    use arrow::datatypes::DataType as T;
    match t {
        T::Utf8View | T::LargeUtf8 => T::Utf8,
        T::BinaryView | T::LargeBinary => T::Binary,
        other => other.clone(),
    }
}

/// An answer batch in the table's column types.
pub(crate) fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, LakeError> {
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                arrow::compute::cast(c, f.data_type())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Parquet settings of transform output (and of a replay's refilled rows):
/// zstd level 1, page statistics.
pub(crate) fn default_properties() -> parquet::file::properties::WriterProperties {
    parquet::file::properties::WriterProperties::builder()
        .set_compression(crate::config::Codec::Zstd(1).compression())
        .set_statistics_enabled(parquet::file::properties::EnabledStatistics::Page)
        .build()
}

/// The tables a query read besides the source, with their versions.
pub(super) fn references(query: &Query, source: &str) -> BTreeMap<String, u64> {
    query
        .tables()
        .iter()
        .filter(|(name, _)| *name != source)
        .map(|(n, v)| (n.clone(), *v))
        .collect()
}
