//! The task kinds of batch work on the lake: `lake_sql` (a query into a
//! table, [`sql`]), `lake_check` (data-quality expectations, [`check`]),
//! `lake_load` (a seed file into a table, [`load`]) and `lake_maintenance`
//! (optimize, vacuum, checkpoint, [`maintenance`]), `lake_view` (a
//! Lambda view's batch refreshed, [`view`]), and Kappa reprocessing of a
//! stream table: `lake_replay`, `lake_verify`, `lake_swap`
//! ([`generation`]).
//!
//! What they share lives here: the [`Lake`] they work on (handed to
//! [`crate::registry_with`] by the binary), the task's SQL (`sql` or
//! `sql_file`, checked when the DAG is loaded, [`source`]), and how a
//! query's error becomes a try's.

pub mod check;
pub mod expect;
pub mod generation;
pub mod load;
pub mod maintenance;
pub mod quality;
pub mod source;
pub mod sql;
pub mod view;

use std::sync::Arc;

use lake::config::StreamSpec;
use lake::kafka::KafkaSource;
use lake::sql::{LakeCatalog, SqlError, SqlErrorKind};
use lake::table::Location;
use lake::view::ViewSpec;
use scheduler::operator::{KindSettings, SettingsError, TaskContext, TaskError};

/// The lake the lake task kinds read and write, or why this process has
/// none (its `[lake] url` could not be resolved).
#[derive(Debug, Clone)]
pub struct Lake {
    catalog: Arc<Result<LakeCatalog, String>>,
    views: Arc<Vec<Arc<ViewSpec>>>,
    streams: Arc<Streams>,
}

/// A stream table the generation kinds work on: the stream as declared
/// and where its lake is.
#[derive(Debug, Clone)]
pub struct StreamTable {
    /// The stream as the project declares it.
    pub spec: Arc<StreamSpec>,
    /// Where its table lies.
    pub location: Location,
}

/// What the generation kinds ask the project at run time.
pub trait StreamProject: Send + Sync {
    /// The project's Kafka cluster, resolved now (`standalone` provides
    /// its dev broker's address only once the broker is up).
    fn kafka(&self) -> Result<KafkaSource, String>;
    /// The declaration of `stream` in the config file `config` (a path
    /// relative to the project's folder: the changed declaration a
    /// generation is replayed with), or why there is none.
    fn stream(&self, config: &str, stream: &str) -> Result<Arc<StreamSpec>, String>;
}

/// The project's stream tables and what to ask it.
#[derive(Default)]
struct Streams {
    tables: Vec<StreamTable>,
    project: Option<Arc<dyn StreamProject>>,
}

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams")
            .field("tables", &self.tables)
            .finish_non_exhaustive()
    }
}

impl Lake {
    /// The lake of a catalog.
    pub fn new(catalog: LakeCatalog) -> Lake {
        Lake {
            catalog: Arc::new(Ok(catalog)),
            views: Arc::default(),
            streams: Arc::default(),
        }
    }

    /// No lake: lake tasks fail with `why`.
    pub fn unavailable(why: impl Into<String>) -> Lake {
        Lake {
            catalog: Arc::new(Err(why.into())),
            views: Arc::default(),
            streams: Arc::default(),
        }
    }

    /// The project's Lambda views (`lake_view` tasks refresh them).
    pub fn with_views(mut self, views: Vec<Arc<ViewSpec>>) -> Lake {
        self.views = Arc::new(views);
        self
    }

    /// The project's stream tables, and the project to ask for its Kafka
    /// cluster and other config files' declarations: the generation kinds
    /// replay, verify and swap these tables.
    pub fn with_streams(
        mut self,
        tables: Vec<StreamTable>,
        project: Arc<dyn StreamProject>,
    ) -> Lake {
        self.streams = Arc::new(Streams {
            tables,
            project: Some(project),
        });
        self
    }

    /// Whether this process knows the project's streams: only then is a
    /// stream table's name checked when a DAG is loaded.
    pub(crate) fn knows_streams(&self) -> bool {
        self.streams.project.is_some()
    }

    /// The stream tables declared.
    pub(crate) fn stream_tables(&self) -> &[StreamTable] {
        &self.streams.tables
    }

    /// The stream whose table is `table`, or the try's (fatal) error.
    pub(crate) fn stream_table(&self, table: &str) -> Result<&StreamTable, TaskError> {
        self.streams
            .tables
            .iter()
            .find(|s| s.spec.table == table)
            .ok_or_else(|| {
                TaskError::Fatal(format!(
                    "{table} is not the table of a stream declared in the project config"
                ))
            })
    }

    /// The project's Kafka cluster, or the try's (fatal) error.
    pub(crate) fn kafka(&self) -> Result<KafkaSource, TaskError> {
        match &self.streams.project {
            Some(p) => p
                .kafka()
                .map_err(|why| TaskError::Fatal(format!("no Kafka cluster: {why}"))),
            None => Err(TaskError::Fatal(
                "this process was started without the project's streams".into(),
            )),
        }
    }

    /// `stream`'s declaration in the config file `config`.
    pub(crate) fn declaration(
        &self,
        config: &str,
        stream: &str,
    ) -> Result<Arc<StreamSpec>, String> {
        match &self.streams.project {
            Some(p) => p.stream(config, stream),
            None => Err("this process was started without the project's config".into()),
        }
    }

    /// The catalog, or the try's (fatal) error.
    pub fn catalog(&self) -> Result<&LakeCatalog, TaskError> {
        self.catalog
            .as_ref()
            .as_ref()
            .map_err(|why| TaskError::Fatal(format!("no lake to work on: {why}")))
    }

    /// Whether this process knows the project's views (a lake is set):
    /// only then is a view name checked when a DAG is loaded.
    pub(crate) fn knows_views(&self) -> bool {
        self.catalog.is_ok()
    }

    /// The views declared.
    pub(crate) fn views(&self) -> &[Arc<ViewSpec>] {
        &self.views
    }
}

/// The settings problems of a lake task, each at the value of the key it
/// is about (every problem is collected, so `dags validate` shows them all).
pub(crate) struct Problems<'s, 'a> {
    settings: &'s KindSettings<'a>,
    list: Vec<SettingsError>,
}

impl<'s, 'a> Problems<'s, 'a> {
    pub(crate) fn new(settings: &'s KindSettings<'a>) -> Self {
        Problems {
            settings,
            list: Vec::new(),
        }
    }

    /// A problem with `key`'s value.
    pub(crate) fn at(&mut self, key: &str, message: impl Into<String>) {
        self.list.push(SettingsError {
            span: self.settings.value_span(key),
            message: message.into(),
        });
    }

    /// A problem found elsewhere, with its own place.
    pub(crate) fn push(&mut self, e: SettingsError) {
        self.list.push(e);
    }

    /// Checks a table name given under `key`.
    pub(crate) fn table_name(&mut self, key: &str, name: &str) {
        if !lake::config::valid_name(name) {
            self.at(
                key,
                format!(
                    "{key} {:?}: use 1 to 128 letters, digits, '_' or '-'",
                    diag::cut(name, 80)
                ),
            );
        }
    }

    /// Checks a table reference given under `key`: a name, optionally
    /// with `@version`, `@time`, `@vN` or `@newest`.
    pub(crate) fn table_ref(&mut self, key: &str, text: &str) {
        if let Err(e) = lake::sql::TableRef::parse(text) {
            self.at(key, format!("{key}: {e}"));
        }
    }

    /// A size of at least 1MiB given under `key` (`"256MiB"`), or `default`.
    pub(crate) fn size(&mut self, key: &str, given: Option<&str>, default: &str) -> u64 {
        match lake::units::parse_bytes(given.unwrap_or(default)) {
            Ok(n) if n >= 1 << 20 => n,
            Ok(_) => {
                self.at(key, format!("`{key}` must be at least 1MiB"));
                0
            }
            Err(e) => {
                self.at(key, format!("{key}: {e}"));
                0
            }
        }
    }

    /// The operator `build` makes, if no problem was found.
    pub(crate) fn finish<T>(
        self,
        build: impl FnOnce() -> Option<T>,
    ) -> Result<T, Vec<SettingsError>> {
        match self.list.is_empty().then(build).flatten() {
            Some(op) => Ok(op),
            None => Err(self.list),
        }
    }
}

/// A task's query runs as long as the task's `execution_timeout` allows.
const QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// A query engine for one try over the lake, with `memory` for its query.
pub(crate) fn engine(
    catalog: &LakeCatalog,
    memory: u64,
) -> Result<lake::sql::SqlEngine, TaskError> {
    let limits = lake::sql::Limits {
        memory,
        timeout: QUERY_TIMEOUT,
    };
    lake::sql::SqlEngine::new(catalog.clone(), limits)
        .map_err(|e| task_error(&e, "starting the query engine"))
}

/// A query's error as a try's: problems with the SQL itself fail at once;
/// a missing table (an upstream not written yet), running out of time or
/// memory, and I/O may be retried.
pub(crate) fn task_error(e: &SqlError, what: &str) -> TaskError {
    let place = e
        .place
        .map(|p| format!(" (line {}, column {} of the query)", p.line, p.column))
        .unwrap_or_default();
    let message = format!("{what}: {}{place}", e.message);
    match e.kind {
        SqlErrorKind::Syntax
        | SqlErrorKind::UnknownColumn
        | SqlErrorKind::Plan
        | SqlErrorKind::NotAllowed => TaskError::Fatal(message),
        SqlErrorKind::UnknownTable
        | SqlErrorKind::Timeout
        | SqlErrorKind::MemoryLimit
        | SqlErrorKind::Conflict
        | SqlErrorKind::Execution => TaskError::Retryable(message),
    }
}

/// The template variables' values for a try.
pub(crate) fn vars(ctx: &TaskContext) -> lake::sql::template::Vars<'_> {
    lake::sql::template::Vars {
        data_interval_start: ctx.data_interval.start,
        data_interval_end: ctx.data_interval.end,
        logical_date: ctx.logical_date,
        dag_id: &ctx.dag_id,
        run_id: &ctx.run_id,
        task_id: &ctx.task_id,
        params: Some(&ctx.params),
    }
}

/// The `txn` app id of a task's writes for one logical date: a retry of
/// the same run finds it in the table; another day has its own.
pub(crate) fn app_id(ctx: &TaskContext, target: &str) -> String {
    format!(
        "tributary-task:{}:{}:{}:{}",
        ctx.dag_id,
        ctx.task_id,
        target,
        ctx.logical_date
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    )
}

/// Runs `work` unless the try is cancelled first.
pub(crate) async fn unless_cancelled<T>(
    ctx: &TaskContext,
    work: impl Future<Output = Result<T, TaskError>>,
) -> Result<T, TaskError> {
    tokio::select! {
        r = work => r,
        () = ctx.cancel.cancelled() => Err(TaskError::Retryable("cancelled".into())),
    }
}
