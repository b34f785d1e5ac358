//! Running a transform: each step reads the source versions after the
//! checkpoint, runs the SQL over the rows they added (reference tables at
//! their latest versions), writes the answer as Parquet files and commits
//! them with the new checkpoint and the reference versions — one Delta
//! commit, fenced on the checkpoint it started from, so two runs of the
//! same transform never both commit a step, and a run killed at any moment
//! leaves either the whole step or none of it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema, SchemaRef};
use deltalake::DeltaTable;
use deltalake::kernel::Add;
use tokio_util::sync::CancellationToken;

use super::changes::{Appended, appended, snapshot_files};
use super::checkpoint::{reference_app_id, source_app_id};
use super::plan::check_plan;
use super::spec::TransformSpec;
use crate::LakeError;
use crate::metrics::TransformMetrics;
use crate::sql::{Bound, SqlEngine, SqlError, SqlErrorKind};
use crate::table::{CommitOutcome, DeltaTableHandle, OffsetUpdate};

/// Output rows gathered before they are written as files.
const CHUNK_ROWS: usize = 1_000_000;
/// Output bytes (Arrow) gathered before they are written as files.
const CHUNK_BYTES: usize = 128 << 20;

/// What a transform run needs.
#[derive(Debug, Clone)]
pub struct TransformOptions {
    /// The transform.
    pub spec: Arc<TransformSpec>,
    /// Runs the SQL (its catalog says where every table is).
    pub engine: SqlEngine,
    /// Stop once the output holds the source version seen at start.
    pub until_caught_up: bool,
    /// Where figures go.
    pub metrics: Arc<TransformMetrics>,
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
}

/// What one step found or did.
enum Step {
    /// Committed a step (more may be waiting).
    Committed,
    /// Another run committed first; read its checkpoint and go on.
    Fenced,
    /// The output holds the source's latest version.
    CaughtUp,
    /// The source table does not exist yet.
    Waiting(String),
}

/// Runs a transform until `stop` (or, with `until_caught_up`, until the
/// output holds the source version seen at start).
pub async fn run(opts: TransformOptions, stop: CancellationToken) -> Result<RunSummary, LakeError> {
    let mut r = Runner {
        source: None,
        output: None,
        summary: RunSummary::default(),
        target: None,
        opts,
    };
    let mut waiting_said = None;
    loop {
        let step = tokio::select! {
            s = r.step() => s?,
            _ = stop.cancelled() => break,
        };
        match step {
            Step::Committed | Step::Fenced => continue,
            Step::CaughtUp if r.opts.until_caught_up => break,
            Step::Waiting(why) if r.opts.until_caught_up => return Err(LakeError::Config(why)),
            Step::Waiting(why) => {
                if waiting_said.as_ref() != Some(&why) {
                    tracing::info!(transform = %r.opts.spec.name, "{why}; waiting");
                    waiting_said = Some(why);
                }
            }
            Step::CaughtUp => {}
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(r.opts.spec.trigger) => {}
        }
    }
    Ok(r.summary)
}

struct Runner {
    opts: TransformOptions,
    /// The source, loaded at the last version a step read.
    source: Option<DeltaTable>,
    /// The output table and the `txn` entries it holds.
    output: Option<DeltaTableHandle>,
    summary: RunSummary,
    /// With `until_caught_up`: the source version to reach.
    target: Option<u64>,
}

fn sql_err(spec: &TransformSpec, e: SqlError) -> LakeError {
    LakeError::Config(format!("transform {}: sql {e}", spec.name))
}

impl Runner {
    fn spec(&self) -> &TransformSpec {
        &self.opts.spec
    }

    /// The last source version the output holds.
    fn checkpoint(&self) -> Option<u64> {
        let id = source_app_id(&self.spec().name, &self.spec().source);
        let v = self.output.as_ref()?.offset(&id)?;
        u64::try_from(v).ok()
    }

    async fn step(&mut self) -> Result<Step, LakeError> {
        let spec = self.opts.spec.clone();
        let catalog = self.opts.engine.catalog().clone();
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
                None => {
                    return Ok(Step::Waiting(format!(
                        "transform {}: source table {:?} does not exist yet",
                        spec.name, spec.source
                    )));
                }
            }
        }
        let checkpoint = self.checkpoint();
        let source = self.source.as_mut().expect("opened above");
        let latest = source.get_latest_version().await?;
        self.opts
            .metrics
            .source_version
            .store(latest, Ordering::Relaxed);
        let target = *self.target.get_or_insert(latest);
        let reached = if self.opts.until_caught_up {
            target
        } else {
            latest
        };
        if checkpoint.is_some_and(|c| c >= reached) {
            return Ok(Step::CaughtUp);
        }

        // The versions this step carries, and what they added.
        let (to, added) = match checkpoint {
            None => {
                load(source, latest).await?;
                (latest, snapshot_files(source)?)
            }
            Some(c) => {
                let to = latest.min(c + spec.max_source_versions);
                let added = appended(source, &spec.source, c, to).await?;
                load(source, to).await?;
                (to, added)
            }
        };
        let source_schema = source.snapshot()?.snapshot().arrow_schema();
        let bound = if added.files.is_empty() {
            Bound::Empty(source_schema)
        } else {
            Bound::Files {
                table: source.clone(),
                files: added.files.clone(),
            }
        };
        let query = match self
            .opts
            .engine
            .plan_bound(&spec.sql, &BTreeMap::from([(spec.source.clone(), bound)]))
            .await
        {
            Ok(q) => q,
            // A reference table a DAG task has not written yet.
            Err(e) if e.kind == SqlErrorKind::UnknownTable => {
                return Ok(Step::Waiting(format!(
                    "transform {}: {}",
                    spec.name, e.message
                )));
            }
            Err(e) => return Err(sql_err(&spec, e)),
        };
        check_plan(query.logical_plan()).map_err(|e| sql_err(&spec, e))?;
        let references: BTreeMap<String, u64> = query
            .tables()
            .iter()
            .filter(|(name, _)| **name != spec.source)
            .map(|(n, v)| (n.clone(), *v))
            .collect();
        let answer = query.schema();
        let output = self.output_table(&answer).await?;
        let table_schema: SchemaRef = Arc::new(
            output
                .table()
                .snapshot()?
                .snapshot()
                .arrow_schema()
                .as_ref()
                .clone(),
        );

        // The answer, written a chunk at a time.
        let mut adds: Vec<Add> = Vec::new();
        let mut chunk: Vec<RecordBatch> = Vec::new();
        let (mut chunk_rows, mut chunk_bytes, mut rows_out) = (0usize, 0usize, 0u64);
        let mut batches = query.stream().await.map_err(|e| sql_err(&spec, e))?;
        while let Some(batch) = batches.next().await {
            let batch = conform(&batch.map_err(|e| sql_err(&spec, e))?, &table_schema)?;
            if batch.num_rows() == 0 {
                continue;
            }
            chunk_rows += batch.num_rows();
            chunk_bytes += batch.get_array_memory_size();
            rows_out += batch.num_rows() as u64;
            chunk.push(batch);
            if chunk_rows >= CHUNK_ROWS || chunk_bytes >= CHUNK_BYTES {
                adds.extend(self.write(&chunk).await?);
                chunk.clear();
                (chunk_rows, chunk_bytes) = (0, 0);
            }
        }
        adds.extend(self.write(&chunk).await?);

        let output = self.output.as_mut().expect("created above");
        let mut updates = vec![OffsetUpdate {
            app_id: source_app_id(&spec.name, &spec.source),
            expected: checkpoint.map(|c| c as i64),
            last: to as i64,
        }];
        for (table, version) in &references {
            let id = reference_app_id(&spec.name, table);
            updates.push(OffsetUpdate {
                expected: output.offset(&id),
                app_id: id,
                last: *version as i64,
            });
        }
        let files = adds.len();
        match output.commit(adds, &updates, &spec.name, to as i64).await? {
            CommitOutcome::Committed { version, .. } => {
                self.committed(version, to, &added, rows_out);
                tracing::debug!(transform = %spec.name, version, source_version = to, files, rows_in = added.rows, rows_out, "committed");
                Ok(Step::Committed)
            }
            CommitOutcome::Fenced(moved) => {
                self.opts.metrics.fenced.fetch_add(1, Ordering::Relaxed);
                tracing::info!(transform = %spec.name, ?moved, "another run committed first; going on from its checkpoint");
                Ok(Step::Fenced)
            }
        }
    }

    fn committed(&mut self, version: u64, to: u64, added: &Appended, rows_out: u64) {
        let m = &self.opts.metrics;
        m.commits.fetch_add(1, Ordering::Relaxed);
        m.rows_in.fetch_add(added.rows, Ordering::Relaxed);
        m.rows_out.fetch_add(rows_out, Ordering::Relaxed);
        m.checkpoint_plus_one.store(to + 1, Ordering::Relaxed);
        m.last_version.store(version, Ordering::Relaxed);
        let now = chrono::Utc::now();
        m.last_commit_ms
            .store(now.timestamp_millis().max(0) as u64, Ordering::Relaxed);
        if let Some(at) = added.committed_at {
            m.observe_latency((now - at).to_std().unwrap_or(Duration::ZERO));
        }
        self.summary.commits += 1;
        self.summary.rows_in += added.rows;
        self.summary.rows_out += rows_out;
        self.summary.checkpoint = Some(to);
        self.summary.version = Some(version);
    }

    /// The output table, created with the answer's columns (all nullable)
    /// on the first step; an existing one must have those columns.
    async fn output_table(&mut self, answer: &SchemaRef) -> Result<&DeltaTableHandle, LakeError> {
        let spec = self.opts.spec.clone();
        let nullable = Schema::new(
            answer
                .fields()
                .iter()
                .map(|f| Field::new(f.name(), plain_type(f.data_type()), true))
                .collect::<Vec<_>>(),
        );
        let location = self.opts.engine.catalog().location(&spec.table).clone();
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
}

/// Brings the source to `version` (forward incrementally, back by a load).
async fn load(source: &mut DeltaTable, version: u64) -> Result<(), LakeError> {
    match source.version() {
        Some(v) if v == version => Ok(()),
        Some(v) if v < version => Ok(source.update_incremental(Some(version)).await?),
        _ => Ok(source.load_version(version).await?),
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
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, LakeError> {
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

/// Parquet settings of transform output: zstd level 1, page statistics.
fn default_properties() -> parquet::file::properties::WriterProperties {
    parquet::file::properties::WriterProperties::builder()
        .set_compression(crate::config::Codec::Zstd(1).compression())
        .set_statistics_enabled(parquet::file::properties::EnabledStatistics::Page)
        .build()
}
