//! Writing a query's answer into a lake table, exactly once per writer
//! run: the write's identity (`app_id`, `version`) rides in the same Delta
//! commit as its files (a `txn` action, as the stream writer records Kafka
//! offsets), so a retry after a crash between the commit and the task's end
//! finds it and does not write again.
//!
//! Modes: `overwrite` (the table becomes the answer), `append`, `interval`
//! (the rows whose column falls in `[start, end)` are replaced by the
//! answer: Delta `replaceWhere`, so re-running or backfilling a run gives
//! the same table) and `merge` (upsert on a unique key).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use deltalake::DeltaTable;
use deltalake::datafusion::execution::SessionState;
use deltalake::datafusion::logical_expr::LogicalPlan;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;
use futures::StreamExt;
use parquet::file::properties::WriterProperties;

use super::LakeCatalog;
use super::engine::Query;
use super::error::{SqlError, SqlErrorKind};
use crate::LakeError;

/// How the answer goes into the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteMode {
    /// The table becomes the answer.
    Overwrite,
    /// The answer is added to the table.
    Append,
    /// The rows with `column` in `[start, end)` are replaced by the answer
    /// (every row of which must fall in that range).
    Interval {
        /// An event-time, date or partition column.
        column: String,
        /// Start, inclusive.
        start: DateTime<Utc>,
        /// End, exclusive.
        end: DateTime<Utc>,
    },
    /// Rows whose key matches a row of the table replace it; the others are
    /// added.
    Merge {
        /// The columns that identify a row.
        unique_key: Vec<String>,
    },
}

impl WriteMode {
    /// The mode's name as DAG files write it.
    pub fn name(&self) -> &'static str {
        match self {
            WriteMode::Overwrite => "overwrite",
            WriteMode::Append => "append",
            WriteMode::Interval { .. } => "interval",
            WriteMode::Merge { .. } => "merge",
        }
    }
}

/// Where and how to write.
#[derive(Debug, Clone)]
pub struct WriteSpec {
    /// Target table name.
    pub table: String,
    /// How.
    pub mode: WriteMode,
    /// Partition columns of a table this write creates.
    pub partition_by: Vec<String>,
    /// The write's identity: `(app_id, version)`, recorded in the commit.
    pub txn: (String, i64),
    /// More `txn` entries recorded in the same commit (what a batch view
    /// covers).
    pub also: Vec<(String, i64)>,
    /// Whether a table already holding `txn` makes this write a no-op
    /// (checked before writing: one pass over the table's log). An append
    /// needs it; a write that replaces what it wrote does not.
    pub once: bool,
    /// Parquet settings of the files written.
    pub parquet: Option<WriterProperties>,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WriteReport {
    /// Target table.
    pub table: String,
    /// The table's version after the write (or the one that already held
    /// it).
    pub version: u64,
    /// Rows the answer had (0 when skipped).
    pub rows: u64,
    /// Files added and removed by the commit.
    pub files_added: u64,
    /// Files the commit removed (replaced rows).
    pub files_removed: u64,
    /// Set when this write was already committed (by an earlier try).
    pub already_committed: bool,
    /// The tables the query read, with their versions.
    pub read: BTreeMap<String, u64>,
    /// Milliseconds taken.
    pub elapsed_ms: u64,
}

/// The `txn` version a table holds for an app id.
async fn recorded(t: &DeltaTable, app_id: &str) -> Result<Option<i64>, LakeError> {
    let version = t.version().unwrap_or(0);
    Ok(crate::table::all_txns(t, version)
        .await?
        .get(app_id)
        .copied())
}

fn lake_err(e: LakeError) -> SqlError {
    SqlError::execution(e.to_string())
}

fn delta_err(e: deltalake::DeltaTableError) -> SqlError {
    use deltalake::DeltaTableError as E;
    use deltalake::kernel::transaction::TransactionError as T;
    let kind = match &e {
        E::VersionAlreadyExists(_)
        | E::Transaction {
            source: T::CommitConflict(_) | T::VersionAlreadyExists(_) | T::MaxCommitAttempts(_),
        } => SqlErrorKind::Conflict,
        _ => SqlErrorKind::Execution,
    };
    SqlError::new(kind, format!("writing the table: {e}"))
}

/// A time as a text literal the column's type is compared with (deltalake
/// records the predicate in the commit as SQL text, and cannot print a
/// `TIMESTAMP '…'` literal with a time zone).
fn ts_literal(t: DateTime<Utc>) -> String {
    format!("'{}'", t.to_rfc3339_opts(SecondsFormat::Micros, true))
}

/// Quotes an identifier for DataFusion SQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The `replaceWhere` predicate of an interval write on a column of type
/// `ty`: a date column (or text holding ISO dates) compares with the
/// interval's dates, which must then be whole days; a timestamp with its
/// instants.
pub fn interval_predicate(
    column: &str,
    ty: &arrow::datatypes::DataType,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<String, SqlError> {
    use arrow::datatypes::DataType as T;
    let c = quote_ident(column);
    let whole_days = |t: DateTime<Utc>| t.time() == chrono::NaiveTime::MIN;
    let dates = || -> Result<(String, String), SqlError> {
        if !whole_days(start) || !whole_days(end) {
            return Err(SqlError::new(
                SqlErrorKind::Plan,
                format!(
                    "interval_column {column:?} holds dates, but the run's interval [{}, {}) is not whole days: \
                     use a timestamp column, or a daily schedule",
                    start.to_rfc3339(),
                    end.to_rfc3339()
                ),
            ));
        }
        let d = |t: DateTime<Utc>| format!("'{}'", t.format("%Y-%m-%d"));
        Ok((d(start), d(end)))
    };
    let (lo, hi) = match ty {
        T::Date32 | T::Date64 => {
            let (lo, hi) = dates()?;
            (format!("CAST({lo} AS DATE)"), format!("CAST({hi} AS DATE)"))
        }
        T::Utf8 | T::LargeUtf8 | T::Utf8View => dates()?,
        T::Timestamp(..) => (ts_literal(start), ts_literal(end)),
        other => {
            return Err(SqlError::new(
                SqlErrorKind::Plan,
                format!(
                    "interval_column {column:?} is {other}: use a timestamp, date or ISO date text column"
                ),
            ));
        }
    };
    Ok(format!("{c} >= {lo} AND {c} < {hi}"))
}

/// Writes a planned query into `spec.table` (created when missing).
pub async fn write(
    catalog: &LakeCatalog,
    query: Query,
    spec: &WriteSpec,
) -> Result<WriteReport, SqlError> {
    let started = Instant::now();
    let read = query.tables().clone();
    let location = catalog.location(&spec.table);
    let (app_id, txn_version) = (&spec.txn.0, spec.txn.1);
    let table = match target(location, &spec.table, (app_id, txn_version), spec.once).await? {
        Target::Done(version) => {
            return Ok(WriteReport {
                table: spec.table.clone(),
                version,
                rows: 0,
                files_added: 0,
                files_removed: 0,
                already_committed: true,
                read,
                elapsed_ms: started.elapsed().as_millis() as u64,
            });
        }
        Target::Write(t) => t,
    };
    let mut txns = vec![(app_id.clone(), txn_version)];
    txns.extend(spec.also.iter().cloned());
    let commit = txn_commit(&txns);
    let answer_schema = query.schema();
    let (state, plan) = query.into_parts();
    let session: Arc<dyn deltalake::datafusion::catalog::Session> = Arc::new(state.clone());

    let exists = table.version().is_some();
    let (table, files_added, files_removed, rows) = match (&spec.mode, exists) {
        (WriteMode::Merge { unique_key }, true) => {
            merge_into(table, state, plan, session, commit, unique_key, spec).await?
        }
        (mode, exists) => {
            write_plan(
                table,
                plan,
                session,
                commit,
                mode,
                exists,
                &answer_schema,
                spec,
            )
            .await?
        }
    };
    Ok(WriteReport {
        table: spec.table.clone(),
        version: table.version().unwrap_or(0),
        rows,
        files_added,
        files_removed,
        already_committed: false,
        read,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// A table, and the files added, files removed and rows written.
type Written = (DeltaTable, u64, u64, u64);

/// `merge` mode into an existing table: rows whose `unique_key` matches
/// are updated, the others inserted.
async fn merge_into(
    table: DeltaTable,
    state: SessionState,
    plan: LogicalPlan,
    session: Arc<dyn deltalake::datafusion::catalog::Session>,
    commit: CommitProperties,
    unique_key: &[String],
    spec: &WriteSpec,
) -> Result<Written, SqlError> {
    let source = deltalake::datafusion::prelude::DataFrame::new(state, plan);
    let columns: Vec<String> = source
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let on = unique_key
        .iter()
        .map(|k| {
            let k = quote_ident(k);
            format!("target.{k} = source.{k}")
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    let mut merge = table
        .merge(source, on)
        .with_source_alias("source")
        .with_target_alias("target")
        .with_session_state(session)
        .with_commit_properties(commit);
    if let Some(p) = &spec.parquet {
        merge = merge.with_writer_properties(p.clone());
    }
    let cols = columns.clone();
    let merge = merge
        .when_matched_update(move |mut u| {
            for c in &cols {
                u = u.update(c.as_str(), format!("source.{}", quote_ident(c)));
            }
            u
        })
        .map_err(delta_err)?
        .when_not_matched_insert(move |mut i| {
            for c in &columns {
                i = i.set(c.as_str(), format!("source.{}", quote_ident(c)));
            }
            i
        })
        .map_err(delta_err)?;
    let (t, m) = merge.await.map_err(delta_err)?;
    Ok((
        t,
        m.num_target_files_added as u64,
        m.num_target_files_removed as u64,
        m.num_source_rows as u64,
    ))
}

/// The other modes (and `merge` creating its table): the plan's rows
/// appended, or replacing the table or the interval's rows.
#[allow(clippy::too_many_arguments)] // the parts of one write, taken apart by `write`
async fn write_plan(
    table: DeltaTable,
    plan: LogicalPlan,
    session: Arc<dyn deltalake::datafusion::catalog::Session>,
    commit: CommitProperties,
    mode: &WriteMode,
    exists: bool,
    answer_schema: &arrow::datatypes::Schema,
    spec: &WriteSpec,
) -> Result<Written, SqlError> {
    let mut w = table
        .write(Vec::new())
        .with_input_plan(plan)
        .with_session_state(session)
        .with_commit_properties(commit)
        .with_table_name(&spec.table);
    if !exists {
        w = w.with_partition_columns(spec.partition_by.clone());
    }
    if let Some(p) = &spec.parquet {
        w = w.with_writer_properties(p.clone());
    }
    w = match mode {
        WriteMode::Append | WriteMode::Merge { .. } => w.with_save_mode(SaveMode::Append),
        WriteMode::Overwrite => w.with_save_mode(SaveMode::Overwrite),
        WriteMode::Interval { column, start, end } => {
            let Ok(field) = answer_schema.field_with_name(column) else {
                return Err(SqlError::new(
                    SqlErrorKind::UnknownColumn,
                    format!(
                        "interval_column {column:?} is not a column of the answer (columns: {})",
                        answer_schema
                            .fields()
                            .iter()
                            .map(|f| f.name().as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            };
            let predicate = interval_predicate(column, field.data_type(), *start, *end)?;
            if exists {
                w.with_save_mode(SaveMode::Overwrite)
                    .with_replace_where(predicate)
            } else {
                w.with_save_mode(SaveMode::Append)
            }
        }
    };
    let t = w.await.map_err(|e| interval_hint(e, &spec.mode))?;
    let (added, removed, rows) = last_write_metrics(&t).await;
    Ok((t, added, removed, rows))
}

/// What a write finds at its target.
enum Target {
    /// The table already holds this write's `txn`: it was done, at this
    /// version.
    Done(u64),
    /// The table to write (not created yet when it has no version).
    Write(DeltaTable),
}

/// Opens the target; with `once`, a table already holding `txn` means the
/// write was done (one pass over its log).
async fn target(
    location: &crate::table::Location,
    table: &str,
    txn: (&str, i64),
    once: bool,
) -> Result<Target, SqlError> {
    match location.open(table).await.map_err(lake_err)? {
        Some(t) if once && recorded(&t, txn.0).await.map_err(lake_err)? == Some(txn.1) => {
            Ok(Target::Done(t.version().unwrap_or(0)))
        }
        Some(t) => Ok(Target::Write(t)),
        None => unborn(location, table).map(Target::Write),
    }
}

/// Commit properties carrying a write's `txn` entries.
fn txn_commit(txns: &[(String, i64)]) -> CommitProperties {
    CommitProperties::default().with_application_transactions(
        txns.iter()
            .map(|(id, v)| Transaction::new(id, *v))
            .collect(),
    )
}

/// A handle on a table not created yet (its folder made), for a first write.
fn unborn(location: &crate::table::Location, table: &str) -> Result<DeltaTable, SqlError> {
    location.create_folder(table).map_err(lake_err)?;
    location
        .builder(table)
        .and_then(|b| b.build().map_err(LakeError::from))
        .map_err(lake_err)
}

/// Appends rows (not a query's answer) to a table, creating it with
/// `partition_by` when missing, exactly once per `txn`: returns the table's
/// version after, and whether an earlier call had already written them.
pub async fn append_batches(
    catalog: &LakeCatalog,
    table: &str,
    batches: Vec<arrow::array::RecordBatch>,
    partition_by: &[String],
    txn: (&str, i64),
) -> Result<(u64, bool), SqlError> {
    write_batches(catalog, table, batches, partition_by, txn, SaveMode::Append).await
}

/// Makes a table hold exactly these rows (created with `partition_by` when
/// missing; an existing table's schema is replaced by theirs), with `txn`
/// in the commit. Returns the table's version after.
pub async fn overwrite_batches(
    catalog: &LakeCatalog,
    table: &str,
    batches: Vec<arrow::array::RecordBatch>,
    partition_by: &[String],
    txn: (&str, i64),
) -> Result<u64, SqlError> {
    let (v, _) = write_batches(
        catalog,
        table,
        batches,
        partition_by,
        txn,
        SaveMode::Overwrite,
    )
    .await?;
    Ok(v)
}

async fn write_batches(
    catalog: &LakeCatalog,
    table: &str,
    batches: Vec<arrow::array::RecordBatch>,
    partition_by: &[String],
    txn: (&str, i64),
    mode: SaveMode,
) -> Result<(u64, bool), SqlError> {
    let once = mode == SaveMode::Append;
    let t = match target(catalog.location(table), table, txn, once).await? {
        Target::Done(version) => return Ok((version, true)),
        Target::Write(t) => t,
    };
    let new = t.version().is_none();
    let mut w = t
        .write(batches)
        .with_save_mode(mode)
        .with_commit_properties(txn_commit(&[(txn.0.to_string(), txn.1)]))
        .with_table_name(table);
    if new {
        w = w.with_partition_columns(partition_by.to_vec());
    } else if mode == SaveMode::Overwrite {
        w = w.with_schema_mode(deltalake::operations::write::SchemaMode::Overwrite);
    }
    let t = w.await.map_err(delta_err)?;
    Ok((t.version().unwrap_or(0), false))
}

/// deltalake's error for rows outside the replaced interval, said plainly.
fn interval_hint(e: deltalake::DeltaTableError, mode: &WriteMode) -> SqlError {
    let text = e.to_string();
    if let WriteMode::Interval { column, start, end } = mode
        && text.contains("failed validation check")
    {
        return SqlError::new(
            SqlErrorKind::Execution,
            format!(
                "the query returned rows whose {column} is outside the run's interval [{}, {}): \
                 filter on it with {{{{ data_interval_start }}}} and {{{{ data_interval_end }}}} ({text})",
                start.to_rfc3339(),
                end.to_rfc3339()
            ),
        );
    }
    delta_err(e)
}

/// Files added and removed, and rows added, by the table's last commit.
async fn last_write_metrics(t: &DeltaTable) -> (u64, u64, u64) {
    let mut history = t.history(Some(1));
    let Some(Ok(info)) = history.next().await else {
        return (0, 0, 0);
    };
    let metric = |k: &str| {
        info.info
            .get("operationMetrics")
            .and_then(|m| m.get(k))
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
            .unwrap_or(0)
    };
    (
        metric("num_added_files"),
        metric("num_removed_files"),
        metric("num_added_rows"),
    )
}
