//! `lake_sql`: a query over the lake, its answer written into a table —
//! `overwrite`, `append`, `interval` (replace the rows of the run's data
//! interval) or `merge` (upsert on a key).
//!
//! Exactly once per run: the write carries a `txn` whose app id names the
//! DAG, the task, the table and the run's logical date, in the same commit
//! as its files. An `append` whose app id the table already holds was done
//! by an earlier try (one cut short by a crash after the commit) and is not
//! done again; the other modes replace what they wrote, so a retry or a
//! re-run gives the same table, and their `txn` version is the try number.

use std::sync::Arc;

use async_trait::async_trait;
use lake::config::ParquetConfig;
use lake::sql::SqlErrorKind;
use lake::sql::write::{WriteMode, WriteReport, WriteSpec};
use parquet::file::properties::WriterProperties;
use scheduler::operator::{
    KindSettings, Operator, SettingsError, TaskContext, TaskError, TaskKind, TaskOutcome,
};
use schemars::JsonSchema;
use serde::Deserialize;

use super::source::SqlSource;
use super::{Lake, Problems, task_error};

/// Memory a task's query may use unless `memory_limit` says otherwise.
pub const DEFAULT_MEMORY_LIMIT: &str = "1GiB";

/// Writes tried before a conflict with concurrent writers fails the try.
const CONFLICT_ATTEMPTS: u32 = 8;

/// How the answer goes into the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The table becomes the answer.
    Overwrite,
    /// The answer is added, once per run.
    Append,
    /// The rows whose `interval_column` is in the run's data interval are
    /// replaced by the answer.
    Interval,
    /// Rows matching the answer on `unique_key` are updated, the others added.
    Merge,
}

/// Settings of a `lake_sql` task.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LakeSqlSettings {
    /// The query (one SELECT, or WITH … SELECT). Template variables become typed
    /// literals: `{{ data_interval_start }}`, `{{ data_interval_end }}`,
    /// `{{ logical_date }}` (timestamps), `{{ ds }}` (a date), `{{ dag_id }}`,
    /// `{{ run_id }}`, `{{ task_id }}`, `{{ params.NAME }}`.
    pub sql: Option<String>,
    /// A file holding the query, relative to the DAG file's folder.
    pub sql_file: Option<String>,
    /// The table written (created by the first write).
    pub table: String,
    /// `overwrite`, `append`, `interval` or `merge`.
    pub mode: Mode,
    /// For `interval`: the column of `table` whose values in the run's data
    /// interval are replaced (an event-time, date or partition column).
    pub interval_column: Option<String>,
    /// For `merge`: the columns that identify a row.
    #[serde(default)]
    pub unique_key: Vec<String>,
    /// Partition columns of the table, when this task creates it.
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// Parquet settings of the files written (as a stream's `parquet`).
    pub parquet: Option<ParquetConfig>,
    /// Memory the query may use (sorts, joins, aggregates), e.g. `"2GiB"`.
    /// Default 1GiB.
    pub memory_limit: Option<String>,
}

/// The `lake_sql` kind.
pub struct LakeSqlKind(pub Lake);

/// The `lake_sql` operator.
#[derive(Debug)]
pub struct LakeSql {
    lake: Lake,
    source: SqlSource,
    table: String,
    mode: Mode,
    interval_column: Option<String>,
    unique_key: Vec<String>,
    partition_by: Vec<String>,
    parquet: Option<WriterProperties>,
    memory: u64,
}

impl TaskKind for LakeSqlKind {
    fn name(&self) -> &'static str {
        "lake_sql"
    }
    fn summary(&self) -> &'static str {
        "Writes a query's answer into a lake table: overwrite, append, interval (the run's data interval) or merge; exactly once per run."
    }
    fn settings_schema(&self) -> serde_json::Value {
        crate::kind_settings::schema::<LakeSqlSettings>()
    }
    fn build(&self, settings: &KindSettings<'_>) -> Result<Arc<dyn Operator>, Vec<SettingsError>> {
        let s: LakeSqlSettings = settings.checked()?;
        let mut p = Problems::new(settings);
        p.table_name("table", &s.table);
        match (s.mode, &s.interval_column) {
            (Mode::Interval, None) => p.at(
                "mode",
                "`mode = \"interval\"` needs `interval_column`: the column of the table whose rows in the run's data interval are replaced",
            ),
            (Mode::Interval, Some(_)) | (_, None) => {}
            (_, Some(_)) => p.at(
                "interval_column",
                "`interval_column` is for `mode = \"interval\"`",
            ),
        }
        match (s.mode, s.unique_key.is_empty()) {
            (Mode::Merge, true) => p.at(
                "mode",
                "`mode = \"merge\"` needs `unique_key`: the columns that identify a row",
            ),
            (Mode::Merge, false) | (_, true) => {}
            (_, false) => p.at("unique_key", "`unique_key` is for `mode = \"merge\"`"),
        }
        let parquet = match s.parquet.as_ref().map(lake::config::writer_properties) {
            None => None,
            Some(Ok(p)) => Some(p),
            Some(Err(problems)) => {
                for problem in problems {
                    p.at("parquet", problem);
                }
                None
            }
        };
        let memory = p.size(
            "memory_limit",
            s.memory_limit.as_deref(),
            DEFAULT_MEMORY_LIMIT,
        );
        let source =
            match SqlSource::from_settings(settings, s.sql.as_deref(), s.sql_file.as_deref(), true)
            {
                Ok(source) => source,
                Err(e) => {
                    p.push(e);
                    None
                }
            };
        if let (Some(SqlSource::Inline(t)), Mode::Interval) = (&source, s.mode)
            && !t.mentions("data_interval_start")
            && !t.mentions("ds")
        {
            settings.warn(
                "`sql` does not use {{ data_interval_start }} or {{ ds }}: in `interval` mode every row of the \
                 answer must fall in the run's data interval, so the query should filter on it",
            );
        }
        p.finish(|| {
            let op: Arc<dyn Operator> = Arc::new(LakeSql {
                lake: self.0.clone(),
                source: source?,
                table: s.table,
                mode: s.mode,
                interval_column: s.interval_column,
                unique_key: s.unique_key,
                partition_by: s.partition_by,
                parquet,
                memory,
            });
            Some(op)
        })
    }
}

impl LakeSql {
    fn write_mode(&self, ctx: &TaskContext) -> WriteMode {
        match self.mode {
            Mode::Overwrite => WriteMode::Overwrite,
            Mode::Append => WriteMode::Append,
            Mode::Interval => WriteMode::Interval {
                column: self.interval_column.clone().unwrap_or_default(),
                start: ctx.data_interval.start,
                end: ctx.data_interval.end,
            },
            Mode::Merge => WriteMode::Merge {
                unique_key: self.unique_key.clone(),
            },
        }
    }
}

/// Logs a query with line numbers, so an error's line:column can be found.
pub(crate) fn log_query(ctx: &TaskContext, name: &str, sql: &str) {
    ctx.log.line(format!("query ({name}):"));
    for (i, line) in sql.lines().enumerate() {
        ctx.log.line(format!("{:>4} | {line}", i + 1));
    }
}

fn log_report(ctx: &TaskContext, r: &WriteReport, mode: &WriteMode) {
    let read: Vec<String> = r.read.iter().map(|(t, v)| format!("{t} v{v}")).collect();
    ctx.log.line(format!("read {}", read.join(", ")));
    if r.already_committed {
        ctx.log.line(format!(
            "{} already holds this run's {} (table version {}): an earlier try committed it, nothing to do",
            r.table,
            mode.name(),
            r.version
        ));
        return;
    }
    let what = match mode {
        WriteMode::Interval { column, start, end } => format!(
            "replaced the rows with {column} in [{}, {})",
            start.to_rfc3339(),
            end.to_rfc3339()
        ),
        m => format!("{} done", m.name()),
    };
    ctx.log.line(format!(
        "wrote {} v{}: {} rows, {} files added, {} removed; {what} in {} ms",
        r.table, r.version, r.rows, r.files_added, r.files_removed, r.elapsed_ms
    ));
}

#[async_trait]
impl Operator for LakeSql {
    async fn execute(&self, ctx: TaskContext) -> Result<TaskOutcome, TaskError> {
        let catalog = self.lake.catalog()?;
        let rendered = self.source.render(&ctx)?;
        log_query(&ctx, self.source.name(), &rendered.sql);
        let engine = super::engine(catalog, self.memory)?;
        let mode = self.write_mode(&ctx);
        // An append is done once per run; the other modes replace what an
        // earlier try wrote, and say which try did.
        let version = match self.mode {
            Mode::Append => 0,
            _ => i64::from(ctx.try_number),
        };
        let spec = WriteSpec {
            table: self.table.clone(),
            mode: mode.clone(),
            partition_by: self.partition_by.clone(),
            txn: (super::app_id(&ctx, &self.table), version),
            also: Vec::new(),
            parquet: self.parquet.clone(),
            once: self.mode == Mode::Append,
        };
        let report = super::unless_cancelled(&ctx, async {
            // Another run writing the same table (a backfill's parallel
            // days) may commit first: plan and write again on the new
            // version, the `txn` check keeping an append once.
            let mut attempt = 1;
            loop {
                let query = engine
                    .plan(&rendered.sql)
                    .await
                    .map_err(|e| task_error(&e, "the query"))?;
                match lake::sql::write::write(catalog, query, &spec).await {
                    Err(e) if e.kind == SqlErrorKind::Conflict && attempt < CONFLICT_ATTEMPTS => {
                        ctx.log.line(format!(
                            "attempt {attempt}: another writer committed to {} first; writing again ({})",
                            self.table, e.message
                        ));
                        attempt += 1;
                    }
                    r => break r.map_err(|e| task_error(&e, &format!("writing {}", self.table))),
                }
            }
        })
        .await?;
        lake::failpoint("lake_sql:after_commit");
        log_report(&ctx, &report, &mode);
        Ok(TaskOutcome::Success)
    }
}
