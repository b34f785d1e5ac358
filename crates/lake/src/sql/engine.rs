//! Running a query: parse, resolve the tables it names (and only those),
//! plan with writes refused, then stream the answer within a time limit and
//! a memory pool every query of the engine shares.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use deltalake::DeltaTable;
use deltalake::datafusion::catalog::{MemorySchemaProvider, SchemaProvider, TableProvider};
use deltalake::datafusion::common::config::Dialect;
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::execution::SendableRecordBatchStream;
use deltalake::datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use deltalake::datafusion::execution::session_state::SessionStateBuilder;
use deltalake::datafusion::logical_expr::LogicalPlan;
use deltalake::datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use futures::StreamExt;
use tokio::time::Instant as Deadline;

use super::catalog::{Bound, LakeCatalog, Rows, Run, TableRef};
use super::error::{SqlError, SqlErrorKind};
use super::statement::{CATALOG, SCHEMA, refuse_statement, refuse_writes};

/// Limits every query of an engine runs within.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Memory all running queries share (sorts, joins, aggregates).
    pub memory: u64,
    /// How long one query may take, planning included.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 1 << 30,
            timeout: Duration::from_secs(300),
        }
    }
}

/// How much Parquet metadata (footers, page indexes) an engine keeps
/// between queries: a quarter of its memory limit, and never less than
/// DataFusion's own 50 MiB. A stream table is thousands of small files,
/// and DataFusion's cache is least-recently-used, so a scan of more footers
/// than fit finds none of them cached the next time: each query of a
/// long-running engine (the web server, standalone) would read every
/// footer again.
fn metadata_cache_limit(memory: u64) -> usize {
    usize::try_from(memory / 4)
        .unwrap_or(usize::MAX)
        .max(50 << 20)
}

/// How many partitions a query is planned with, and a write: decided once
/// per engine. Unless `DATAFUSION_EXECUTION_TARGET_PARTITIONS` says, a read
/// uses twice the cores, and at least 4: a stream table is thousands of
/// small files, and every file's reads (its footer, then its columns) wait
/// on I/O; with one partition per core the cores wait with them. Measured
/// on the SQL benchmark's 3,300-file table (2 cores): a group-by over every
/// file 0.73–0.83 s with 2 partitions, 0.55–0.58 s with 4, in a new
/// process; 0.47–0.50 s and 0.41–0.43 s in a running server. A write keeps
/// DataFusion's one per core: each partition of a write's input becomes
/// files of its own.
#[derive(Debug, Clone, Copy)]
struct Partitions {
    read: usize,
    write: usize,
}

impl Partitions {
    fn decide() -> Partitions {
        let set = std::env::var("DATAFUSION_EXECUTION_TARGET_PARTITIONS")
            .ok()
            .and_then(|v| v.parse().ok());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Partitions {
            read: set.unwrap_or((2 * cores).max(4)),
            write: set.unwrap_or(cores),
        }
    }
}

/// Runs read-only SQL over a lake.
#[derive(Debug, Clone)]
pub struct SqlEngine {
    catalog: Arc<LakeCatalog>,
    runtime: Arc<RuntimeEnv>,
    limits: Limits,
    partitions: Partitions,
}

/// The footers an engine keeps ([`SqlEngine::cached_footers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedFooters {
    /// Files whose footer is kept.
    pub files: usize,
    /// Of those, files whose page index is kept with it.
    pub with_page_index: usize,
    /// Memory they take.
    pub bytes: usize,
}

/// What a planned query reads.
#[derive(Default)]
struct Read {
    /// Tables by the name the query (or a layer) uses, with versions.
    tables: BTreeMap<String, u64>,
    /// What each layer read is made of.
    made_of: Vec<String>,
}

/// A planned query: its plan and the tables (with versions) it reads.
pub struct Query {
    df: DataFrame,
    tables: BTreeMap<String, u64>,
    made_of: Vec<String>,
    deadline: Deadline,
    limits: Limits,
    write_partitions: usize,
    started: Instant,
}

/// A query's answer, kept to a row limit.
#[derive(Debug)]
pub struct Answer {
    /// The columns.
    pub schema: SchemaRef,
    /// The first rows, up to the limit.
    pub batches: Vec<RecordBatch>,
    /// How many rows the query returned in all.
    pub rows: u64,
    /// Each table the answer was read from, as named, and its version.
    pub tables: BTreeMap<String, u64>,
    /// What each view layer the query read is made of (`live.x = batch …
    /// + speed …`).
    pub made_of: Vec<String>,
    /// Planning and running.
    pub elapsed: Duration,
}

impl Answer {
    /// Rows kept in `batches`.
    pub fn kept(&self) -> u64 {
        self.batches.iter().map(|b| b.num_rows() as u64).sum()
    }
}

impl SqlEngine {
    /// An engine over a catalog.
    pub fn new(catalog: LakeCatalog, limits: Limits) -> Result<SqlEngine, SqlError> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(limits.memory as usize, 1.0)
            .with_metadata_cache_limit(metadata_cache_limit(limits.memory))
            .build_arc()
            .map_err(|e| SqlError::from_datafusion(e, limits.memory))?;
        Ok(SqlEngine {
            catalog: Arc::new(catalog),
            runtime,
            limits,
            partitions: Partitions::decide(),
        })
    }

    /// The catalog.
    pub fn catalog(&self) -> &LakeCatalog {
        &self.catalog
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The Parquet footers this engine keeps across queries: how many, and
    /// how many hold their page index too (see `page_index.rs`: a filtered
    /// query caches both, so later ones read neither again).
    pub fn cached_footers(&self) -> CachedFooters {
        let entries = self
            .runtime
            .cache_manager
            .get_file_metadata_cache()
            .list_entries();
        let with_page_index = entries
            .values()
            .filter(|e| {
                let info = e.value.file_metadata.extra_info();
                info.get("page_index").is_some_and(|v| v == "true")
            })
            .count();
        CachedFooters {
            files: entries.len(),
            with_page_index,
            bytes: entries.values().map(|e| e.size_bytes).sum(),
        }
    }

    /// Parses and plans a read-only query.
    pub async fn plan(&self, sql: &str) -> Result<Query, SqlError> {
        self.plan_bound(sql, &BTreeMap::new()).await
    }

    /// Plans a query in which some names are bound to given tables instead
    /// of the catalog's: a table at a version restricted to some of its
    /// files (a transform's new rows), or an empty table of a schema (a
    /// check before any data exists).
    pub async fn plan_bound(
        &self,
        sql: &str,
        bound: &BTreeMap<String, Bound>,
    ) -> Result<Query, SqlError> {
        let started = Instant::now();
        let deadline = Deadline::now() + self.limits.timeout;
        match tokio::time::timeout_at(deadline, self.plan_inner(sql, bound)).await {
            Ok(Ok((df, read))) => Ok(Query {
                df,
                tables: read.tables,
                made_of: read.made_of,
                deadline,
                limits: self.limits,
                write_partitions: self.partitions.write,
                started,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SqlError::timeout(self.limits.timeout)),
        }
    }

    async fn plan_inner(
        &self,
        sql: &str,
        bound: &BTreeMap<String, Bound>,
    ) -> Result<(DataFrame, Read), SqlError> {
        let df_err = |e| SqlError::from_datafusion_in(e, self.limits.memory, sql);
        // DataFusion's options from `DATAFUSION_*` variables, as its own
        // CLI reads them.
        let mut config = SessionConfig::from_env()
            .map_err(df_err)?
            .with_target_partitions(self.partitions.read)
            .with_default_catalog_and_schema(CATALOG, SCHEMA)
            .set_bool("datafusion.sql_parser.collect_spans", true);
        config.options_mut().sql_parser.dialect = Dialect::Generic;
        // deltalake's planner: writes and merges of an answer plan nodes of
        // their own (metrics observers) that DataFusion's default cannot.
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(config)
            .with_runtime_env(self.runtime.clone())
            .with_query_planner(deltalake::delta_datafusion::planner::DeltaPlanner::new())
            .build();
        let ctx = SessionContext::new_with_state(state);
        let state = ctx.state();
        if sql.trim().trim_end_matches(';').trim().is_empty() {
            return Err(SqlError::new(SqlErrorKind::Syntax, "the query is empty"));
        }
        let statement = state
            .sql_to_statement(sql, &Dialect::Generic)
            .map_err(df_err)?;
        refuse_statement(&statement, sql)?;
        let references = state.resolve_table_references(&statement).map_err(df_err)?;

        // Only the tables the query names are opened.
        let schema = Arc::new(MemorySchemaProvider::new());
        let mut layer_schemas: BTreeMap<String, Arc<MemorySchemaProvider>> = BTreeMap::new();
        let mut read = Read::default();
        for reference in references {
            if reference.catalog().is_some_and(|c| c != CATALOG) {
                continue;
            }
            let name = reference.table();
            if let Some(layer) = reference.schema().filter(|s| *s != SCHEMA) {
                let Some(layers) = self
                    .catalog
                    .layers()
                    .filter(|l| l.schemas().contains(&layer))
                else {
                    continue; // information_schema and the like
                };
                let target = layer_schemas
                    .entry(layer.to_string())
                    .or_insert_with(|| Arc::new(MemorySchemaProvider::new()));
                if target.table_exist(name) {
                    continue;
                }
                let provider = self.layer(layers, layer, name, &mut read).await?;
                target
                    .register_table(name.to_string(), provider)
                    .map_err(df_err)?;
                continue;
            }
            if schema.table_exist(name) || state.table_functions().contains_key(name) {
                continue; // seen, or a table function (generate_series, range)
            }
            let provider = self.provider(name, bound.get(name), &mut read).await?;
            schema
                .register_table(name.to_string(), provider)
                .map_err(df_err)?;
        }
        let catalog = ctx.catalog(CATALOG).expect("the default catalog exists");
        catalog.register_schema(SCHEMA, schema).map_err(df_err)?;
        for (name, layer) in layer_schemas {
            catalog.register_schema(&name, layer).map_err(df_err)?;
        }

        let plan = state.statement_to_plan(statement).await.map_err(df_err)?;
        refuse_writes(&plan)?;
        let df = ctx.execute_logical_plan(plan).await.map_err(df_err)?;
        Ok((df, read))
    }

    /// The provider of a name in the lake's own schema: bound, or the
    /// catalog's table (at the version the name says).
    async fn provider(
        &self,
        name: &str,
        bound: Option<&Bound>,
        read: &mut Read,
    ) -> Result<Arc<dyn TableProvider>, SqlError> {
        let df_err = |e| SqlError::from_datafusion(e, self.limits.memory);
        Ok(match bound {
            Some(Bound::Empty(schema)) => {
                Arc::new(MemTable::try_new(schema.clone(), vec![vec![]]).map_err(df_err)?)
            }
            Some(Bound::Rows(rows)) => Arc::new(
                MemTable::try_new(rows.schema.clone(), vec![rows.batches.clone()])
                    .map_err(df_err)?,
            ),
            Some(Bound::Files { table, files }) => {
                read.tables
                    .insert(name.to_string(), table.version().unwrap_or(0));
                let provider = table
                    .table_provider()
                    .with_adds(files.iter().cloned())
                    .await
                    .map_err(df_err)?;
                Arc::new(super::provider::LakeTable::new(provider))
            }
            Some(Bound::Table(table)) => {
                read.tables
                    .insert(name.to_string(), table.version().unwrap_or(0));
                self.delta(table).await?
            }
            Some(Bound::Where { rows, predicate }) => {
                let inner = "rows";
                let sql = format!("SELECT * FROM {inner} WHERE {predicate}");
                let bound = BTreeMap::from([(inner.to_string(), (**rows).clone())]);
                let (df, inner_read) = Box::pin(self.plan_inner(&sql, &bound)).await?;
                if let Some(v) = inner_read.tables.get(inner) {
                    read.tables.insert(name.to_string(), *v);
                }
                df.into_view()
            }
            None => {
                let r = TableRef::parse(name)
                    .map_err(|m| SqlError::new(SqlErrorKind::UnknownTable, m))?;
                let table = self.catalog.open(&r).await.map_err(SqlError::lake)?;
                let Some(table) = table else {
                    return Err(self.unknown_table(&r.name).await);
                };
                read.tables
                    .insert(r.to_string(), table.version().unwrap_or(0));
                self.delta(&table).await?
            }
        })
    }

    /// A Delta table's provider (all of it, at its loaded version).
    async fn delta(&self, table: &DeltaTable) -> Result<Arc<dyn TableProvider>, SqlError> {
        let provider = table
            .table_provider()
            .await
            .map_err(|e| SqlError::from_datafusion(e, self.limits.memory))?;
        Ok(Arc::new(super::provider::LakeTable::new(provider)))
    }

    /// A name under a layer schema (`live.users_by_nation`): its SQL
    /// planned as a view, what it read added to `read`.
    async fn layer(
        &self,
        layers: &Arc<dyn super::catalog::Layers>,
        schema: &str,
        name: &str,
        read: &mut Read,
    ) -> Result<Arc<dyn TableProvider>, SqlError> {
        let Some(layer) = layers.layer(self, schema, name).await? else {
            let names = layers.names();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let hint = diag::suggest(name, &refs)
                .map(|s| format!("; did you mean {schema}.{s}?"))
                .unwrap_or_default();
            return Err(SqlError::new(
                SqlErrorKind::UnknownTable,
                format!(
                    "no view {name:?} for {schema}.{name}{hint} (views: {})",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            ));
        };
        let (df, inner) = Box::pin(self.plan_inner(&layer.sql, &layer.bound)).await?;
        read.tables.extend(inner.tables);
        read.tables.extend(layer.read);
        read.made_of.extend(inner.made_of);
        read.made_of.push(layer.made_of);
        Ok(df.into_view())
    }

    async fn unknown_table(&self, name: &str) -> SqlError {
        let known = self.catalog.list().await.unwrap_or_default();
        let refs: Vec<&str> = known.iter().map(String::as_str).collect();
        let hint = diag::suggest(name, &refs)
            .map(|s| format!("; did you mean {s:?}?"))
            .unwrap_or_default();
        let listing = if known.is_empty() {
            "the lake has no tables yet".to_string()
        } else {
            format!("tables: {}", diag::cut(&known.join(", "), 400))
        };
        SqlError::new(
            SqlErrorKind::UnknownTable,
            format!("no table {name:?} in the lake{hint} ({listing})"),
        )
    }
}

#[async_trait::async_trait]
impl Run for SqlEngine {
    fn catalog(&self) -> &LakeCatalog {
        &self.catalog
    }

    async fn rows(&self, sql: &str, bound: &BTreeMap<String, Bound>) -> Result<Rows, SqlError> {
        let query = self.plan_bound(sql, bound).await?;
        let schema = query.schema();
        let mut batches = Vec::new();
        query
            .for_each(|b| {
                batches.push(b.clone());
                Ok(())
            })
            .await?;
        Ok(Rows { schema, batches })
    }
}

/// A running query's answer, batch by batch.
pub struct Batches {
    stream: SendableRecordBatchStream,
    deadline: Deadline,
    limits: Limits,
}

impl Batches {
    /// The next batch; `None` at the end.
    pub async fn next(&mut self) -> Option<Result<RecordBatch, SqlError>> {
        match tokio::time::timeout_at(self.deadline, self.stream.next()).await {
            Ok(Some(b)) => Some(b.map_err(|e| SqlError::from_datafusion(e, self.limits.memory))),
            Ok(None) => None,
            Err(_) => Some(Err(SqlError::timeout(self.limits.timeout))),
        }
    }
}

impl Query {
    /// The answer's columns.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(self.df.schema().as_arrow().clone())
    }

    /// The logical plan.
    pub fn logical_plan(&self) -> &LogicalPlan {
        self.df.logical_plan()
    }

    /// The session and plan, for writing the answer into a table, with
    /// the write's partition count ([`Partitions`]).
    pub(crate) fn into_parts(
        self,
    ) -> (deltalake::datafusion::execution::SessionState, LogicalPlan) {
        let (mut state, plan) = self.df.into_parts();
        state.config_mut().options_mut().execution.target_partitions = self.write_partitions;
        (state, plan)
    }

    /// The tables the query reads, as named, with their versions.
    pub fn tables(&self) -> &BTreeMap<String, u64> {
        &self.tables
    }

    /// What each view layer the query reads is made of.
    pub fn made_of(&self) -> &[String] {
        &self.made_of
    }

    /// Runs the query, keeping the first `limit` rows and counting the rest.
    pub async fn collect(self, limit: Option<u64>) -> Result<Answer, SqlError> {
        let schema = self.schema();
        let mut batches = Vec::new();
        let mut kept = 0u64;
        let limit = limit.unwrap_or(u64::MAX);
        let tables = self.tables.clone();
        let made_of = self.made_of.clone();
        let started = self.started;
        let rows = self
            .for_each(|batch| {
                if kept < limit {
                    let take = (limit - kept).min(batch.num_rows() as u64) as usize;
                    batches.push(batch.slice(0, take));
                    kept += take as u64;
                }
                Ok(())
            })
            .await?;
        Ok(Answer {
            schema,
            batches,
            rows,
            tables,
            made_of,
            elapsed: started.elapsed(),
        })
    }

    /// The answer as a stream of batches, each awaited within the query's
    /// deadline.
    pub async fn stream(self) -> Result<Batches, SqlError> {
        let memory = self.limits.memory;
        let timeout = self.limits.timeout;
        match tokio::time::timeout_at(self.deadline, self.df.execute_stream()).await {
            Ok(s) => Ok(Batches {
                stream: s.map_err(|e| SqlError::from_datafusion(e, memory))?,
                deadline: self.deadline,
                limits: Limits { memory, timeout },
            }),
            Err(_) => Err(SqlError::timeout(timeout)),
        }
    }

    /// Runs the query and hands each batch of the answer to `f`; returns
    /// the number of rows.
    pub async fn for_each(
        self,
        mut f: impl FnMut(&RecordBatch) -> Result<(), SqlError>,
    ) -> Result<u64, SqlError> {
        let mut batches = self.stream().await?;
        let mut rows = 0u64;
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            f(&batch)?;
        }
        Ok(rows)
    }

    /// The query's logical and physical plans (`analyze`: run it and show
    /// what each operator did).
    pub async fn explain(self, analyze: bool) -> Result<String, SqlError> {
        let memory = self.limits.memory;
        let df = self
            .df
            .explain(false, analyze)
            .map_err(|e| SqlError::from_datafusion(e, memory))?;
        let explained = Query { df, ..self };
        let answer = explained.collect(None).await?;
        let mut out = String::new();
        for batch in &answer.batches {
            for i in 0..batch.num_rows() {
                let text = |c: usize| {
                    arrow::util::display::array_value_to_string(batch.column(c), i)
                        .unwrap_or_default()
                };
                out.push_str(&text(0));
                out.push('\n');
                for line in text(1).lines() {
                    out.push_str("  ");
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        Ok(out)
    }
}
