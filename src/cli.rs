//! Command-line interface definition (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Tributary: schedule DAGs that pull API data into Kafka, and land Kafka
/// topics in partitioned Parquet tables, exactly once.
#[derive(Debug, Parser)]
#[command(name = "tributary", version, about, propagate_version = true)]
pub struct Cli {
    /// Metadata database: postgres://user@host/db or sqlite://path.
    /// Default: sqlite://.tributary/tributary.db
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// Folder (or file) holding the DAG TOML files. Default: the config's
    /// `dags_folder`, else ./dags
    #[arg(long, env = "TRIBUTARY_DAGS_FOLDER", global = true)]
    pub dags_folder: Option<PathBuf>,

    /// Project config file. Default: ./tributary.toml if it exists, else
    /// built-in defaults (the `users` stream into ./lake).
    #[arg(long, env = "TRIBUTARY_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    /// Output format of list and show commands.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// JSON for programs.
    Json,
    /// CSV with a header line (`sql` only).
    Csv,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process on embedded defaults (SQLite, ./dags).
    Standalone(SchedulerArgs),
    /// Run a scheduler (creates runs, runs tasks) until Ctrl-C / SIGTERM.
    Scheduler(SchedulerArgs),
    /// Metadata database maintenance.
    #[command(subcommand)]
    Db(DbCommand),
    /// Inspect, validate and pause DAGs.
    #[command(subcommand)]
    Dags(DagsCommand),
    /// Trigger a manual run of a DAG.
    Trigger(TriggerArgs),
    /// Fill or refill a DAG's history over a date range (run by the schedulers).
    Backfill(BackfillArgs),
    /// List runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Task instances, logs and task kinds.
    #[command(subcommand)]
    Tasks(TasksCommand),
    /// Pools: named slot limits shared by tasks.
    #[command(subcommand)]
    Pools(PoolsCommand),
    /// Streaming writers: Kafka topics into lake tables, exactly once.
    #[command(subcommand)]
    Stream(StreamCommand),
    /// Continuous SQL transforms: lake tables into lake tables, exactly once.
    #[command(subcommand)]
    Transform(TransformCommand),
    /// Lambda views: a batch table refreshed on a schedule, the rows since
    /// (speed) and an exact merge of both (live), as `batch.<view>`,
    /// `speed.<view>` and `live.<view>` in SQL.
    #[command(subcommand)]
    View(ViewCommand),
    /// Lake tables: list, describe, verify, compact, vacuum.
    #[command(subcommand)]
    Lake(LakeCommand),
    /// Query the lake with SQL (read-only). Every Delta table of the lake
    /// is a table by name; "users@12" or "users@2026-11-21T10:00:00Z" (in
    /// double quotes) reads an older version.
    Sql(SqlArgs),
    /// Check the project config file and print what it declares.
    Config,
    /// Serve the web UI and the REST API (`/api/v1`) until Ctrl-C / SIGTERM.
    Web(WebArgs),
    /// Development servers.
    #[command(subcommand)]
    Dev(DevCommand),
}

/// `stream` subcommands.
#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// List the streams the config declares.
    List,
    /// Run a stream's writer until Ctrl-C / SIGTERM (flushes and commits
    /// first), or until caught up.
    Run {
        /// Stream name.
        name: String,
        /// Exit once every assigned partition has reached the end offset
        /// seen at start, with everything committed.
        #[arg(long)]
        until_caught_up: bool,
        /// Serve Prometheus metrics here (default: the config's
        /// [metrics] bind, else 127.0.0.1:9464; "off" to disable).
        #[arg(long)]
        metrics_bind: Option<String>,
    },
    /// Start a new Kafka log lifetime for a stream's table: when the broker
    /// was replaced, the topic re-created, or retention deleted records the
    /// writer had not read (the writer stops and says so). Every partition
    /// continues from the earliest offset the broker holds now; the rows
    /// already in the table stay, and the reset is recorded in its log
    /// (`lake verify` accounts for every lifetime). Needs the broker.
    ResetOffsets {
        /// Stream name.
        name: String,
    },
}

/// `transform` subcommands.
#[derive(Debug, Subcommand)]
pub enum TransformCommand {
    /// The transforms the config declares and where each stands: source
    /// version, checkpoint, versions behind, last commit.
    List,
    /// Check every transform's SQL against the tables it reads (before
    /// anything runs: stream tables by their declared schemas).
    Check,
    /// Run a transform until Ctrl-C / SIGTERM, or until caught up.
    Run {
        /// Transform name.
        name: String,
        /// Exit once the output holds the source version seen at start.
        #[arg(long)]
        until_caught_up: bool,
        /// Serve Prometheus metrics here (default: the config's
        /// [metrics] bind, else 127.0.0.1:9464; "off" to disable).
        #[arg(long)]
        metrics_bind: Option<String>,
    },
}

/// `view` subcommands.
#[derive(Debug, Subcommand)]
pub enum ViewCommand {
    /// The views the config declares: source, batch table, what the batch
    /// covers and how far the source has moved since.
    List,
    /// Recompute a view's batch table from its source's latest version
    /// (what a `lake_view` task does on a schedule).
    Refresh {
        /// View name.
        name: String,
    },
}

/// `lake` subcommands. TABLE is a table name under the lake location of
/// the stream that writes it (else the config's [lake] url).
#[derive(Debug, Subcommand)]
pub enum LakeCommand {
    /// Every table of the lake: name, version, files, rows, size, and the
    /// stream that writes it.
    Tables,
    /// Versions, files, rows, partitions and last offsets of a table.
    Ls {
        /// Table name.
        table: String,
        /// Versions of history to show.
        #[arg(long, default_value_t = 10)]
        history: usize,
    },
    /// Read every committed file and prove exactly once: no offset twice,
    /// offsets contiguous up to the committed one, rows match the log.
    /// `TABLE@vN --against TABLE` also compares a generation with the live
    /// table (and records the outcome for `lake swap`). Exits 1 when a
    /// check fails.
    Verify {
        /// Table name, or a generation (users@v2).
        table: String,
        /// With a generation: the live table to compare it with.
        #[arg(long)]
        against: Option<String>,
    },
    /// Replay a stream's topics into a new generation of its table (the
    /// same writer, this or another declaration); run again, it resumes
    /// the unfinished one.
    Replay {
        /// The stream's table.
        table: String,
        /// Where to start: earliest (default), an RFC 3339 time, or offsets
        /// (users:0=1200,users:1=1180).
        #[arg(long)]
        from: Option<String>,
        /// Another config file declaring the stream (new columns,
        /// partitioning, decode rules).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Start a new generation even if an unfinished one exists.
        #[arg(long = "new")]
        fresh: bool,
    },
    /// Make a generation the live table's in one fenced commit, while its
    /// writer runs (which goes on from the generation's offsets).
    Swap {
        /// The stream's table.
        table: String,
        /// The generation (users@v2).
        generation: String,
        /// The config file the generation was replayed with.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Swap even if the generation is not verified or failed.
        #[arg(long)]
        force: bool,
        /// Give up if the generation has not caught up by then.
        #[arg(long, default_value = "10m")]
        timeout: String,
    },
    /// Return the table to the generation the last swap replaced, with its
    /// rows and offsets as they were (the writer re-reads what came after).
    Rollback {
        /// The stream's table.
        table: String,
    },
    /// A table's generations: state, rows, files, when, verified, and
    /// what made each.
    Generations {
        /// The stream's table.
        table: String,
    },
    /// replay → verify → swap in one command.
    Rebuild {
        /// The stream's table.
        table: String,
        /// Where the replay starts (as `lake replay --from`).
        #[arg(long)]
        from: Option<String>,
        /// Another config file declaring the stream.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Stop after a passing verify.
        #[arg(long)]
        no_swap: bool,
        /// Give up the swap if the generation has not caught up by then.
        #[arg(long, default_value = "10m")]
        timeout: String,
    },
    /// Compact small files into larger ones (Delta OPTIMIZE).
    Optimize {
        /// Table name.
        table: String,
        /// Target file size, e.g. 128MiB.
        #[arg(long, default_value = "128MiB")]
        target_size: String,
    },
    /// Delete files the table no longer references (compacted away, or
    /// written by a writer that crashed before committing).
    Vacuum {
        /// Table name.
        table: String,
        /// Keep unreferenced files younger than this (e.g. 7d, 1h).
        #[arg(long, default_value = "7d")]
        retention: String,
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `sql` arguments.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query. Without it, -f FILE, else standard input.
    pub query: Option<String>,
    /// Read the query from a file.
    #[arg(long, short = 'f', conflicts_with = "query")]
    pub file: Option<PathBuf>,
    /// Rows printed with `-o table` (the rest are counted).
    #[arg(long, default_value_t = 100)]
    pub max_rows: u64,
    /// Write the whole answer to a file instead: .parquet, .csv, .json
    /// (one JSON object per line).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print the logical and physical plans instead of running the query.
    #[arg(long)]
    pub explain: bool,
    /// With --explain: run the query and show what each operator did.
    #[arg(long, requires = "explain")]
    pub analyze: bool,
    /// Give up after this long (e.g. 30s, 5m; default 5m). Given, the
    /// query runs in this process.
    #[arg(long)]
    pub timeout: Option<String>,
    /// Memory the query may use for sorts, joins and aggregates (default
    /// 1GiB). Given, the query runs in this process.
    #[arg(long)]
    pub memory_limit: Option<String>,
    /// Run the query in this process even when a server of this project
    /// (`tributary web`, `standalone`) is running.
    #[arg(long, conflicts_with = "server")]
    pub local: bool,
    /// Ask this server (e.g. http://127.0.0.1:8080) and fail if it cannot
    /// answer; without it, the project's web address is tried, and the
    /// query runs here when no server of this project is there.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
}

/// `dev` subcommands.
#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Start librdkafka's mock cluster as an in-memory Kafka broker for
    /// development and print its bootstrap address.
    Kafka {
        /// Topics to create first, as NAME:PARTITIONS (others are created on first use).
        #[arg(long = "topic", default_value = "users:4")]
        topics: Vec<String>,
    },
    /// Serve the random-user API offline: GET /api/?results=N&seed=S&page=P&nat=XX.
    RandomUserApi {
        /// Address to listen on (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:8090")]
        bind: std::net::SocketAddr,
        /// Serve users from this folder's results-5000.json instead of generating them.
        #[arg(long)]
        fixtures: Option<PathBuf>,
        /// Inject a failure: 500, 429[:retry_after_secs], error-body, slow[:ms] or malformed
        /// (on every request unless --fault-first or --fault-every narrow it).
        #[arg(long)]
        fault: Option<String>,
        /// Inject it on the first N requests.
        #[arg(long, default_value_t = 0)]
        fault_first: u64,
        /// Inject it on every Nth request.
        #[arg(long)]
        fault_every: Option<u64>,
    },
}

/// Scheduler settings.
#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// Task tries running at once in this process.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallelism: u16,
    /// How often DAG files are re-read, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub dag_refresh_secs: u64,
    /// `standalone` only: address of the web UI, or `off`. Default: the
    /// config's `[web] bind`, else 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR|off")]
    pub web_bind: Option<String>,
}

/// `web` arguments.
#[derive(Debug, Args)]
pub struct WebArgs {
    /// Address to listen on. Default: the config's `[web] bind`, else
    /// 127.0.0.1:8080. Any non-loopback address needs a token
    /// (`[web] token` or TRIBUTARY_WEB_TOKEN).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
}

/// `db` subcommands.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply pending migrations (also done on every start).
    Migrate,
}

/// `dags` subcommands.
#[derive(Debug, Subcommand)]
pub enum DagsCommand {
    /// List DAGs with their schedule, state and next run, and import errors.
    List {
        /// Only DAGs with this tag (repeatable; any of them).
        #[arg(long)]
        tag: Vec<String>,
    },
    /// Show one DAG: settings, params and tasks.
    Show {
        /// DAG id.
        dag_id: String,
    },
    /// Check DAG files and print every problem with file:line:col.
    Validate {
        /// Files or folders (default: the DAGs folder).
        paths: Vec<PathBuf>,
    },
    /// Print the next runs the schedule will create.
    NextRuns {
        /// DAG id.
        dag_id: String,
        /// How many.
        #[arg(short = 'n', long, default_value_t = 10)]
        count: usize,
    },
    /// Stop creating scheduled runs (running tasks are left alone).
    Pause {
        /// DAG id.
        dag_id: String,
    },
    /// Resume creating scheduled runs.
    Unpause {
        /// DAG id.
        dag_id: String,
    },
    /// Print the JSON Schema of the DAG file format.
    Schema,
}

/// `trigger` arguments.
#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// DAG id.
    pub dag_id: String,
    /// The run's conf: a JSON object checked against the DAG's params.
    #[arg(long)]
    pub conf: Option<String>,
    /// Logical date (2026-11-01, 2026-11-01T06:00:00 in the DAG's time zone,
    /// or with an offset). Default: now.
    #[arg(long)]
    pub logical_date: Option<String>,
    /// Wait for the run to end, printing task state changes; exit non-zero if it fails.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds (exit status 2).
    #[arg(long, requires = "wait")]
    pub timeout: Option<u64>,
}

/// `runs` subcommands.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Runs of a DAG, newest first.
    List {
        /// DAG id.
        dag_id: String,
        /// How many.
        #[arg(long, default_value_t = 25)]
        limit: i64,
    },
    /// Force a run's outcome; its tasks that have not started get the same state.
    Mark {
        /// DAG id.
        dag_id: String,
        /// Run id.
        run_id: String,
        /// New state.
        state: MarkState,
    },
}

/// Outcome forced by a `mark` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MarkState {
    /// Success.
    Success,
    /// Failed.
    Failed,
}

impl MarkState {
    /// The word the CLI prints ("marked success").
    pub fn word(self) -> &'static str {
        match self {
            MarkState::Success => "success",
            MarkState::Failed => "failed",
        }
    }
}

/// `tasks` subcommands.
#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Task instances of a run.
    List {
        /// DAG id.
        dag_id: String,
        /// Run id.
        run_id: String,
    },
    /// Print a task's log.
    Logs {
        /// DAG id.
        dag_id: String,
        /// Run id.
        run_id: String,
        /// Task id.
        task_id: String,
        /// Try number (default: the latest).
        #[arg(long = "try")]
        try_number: Option<u32>,
    },
    /// Every try of a task instance: state, start, end, host and error of
    /// each (an interrupted try is listed, not counted).
    Tries {
        /// DAG id.
        dag_id: String,
        /// Run id.
        run_id: String,
        /// Task id.
        task_id: String,
    },
    /// List the task kinds and their settings.
    Kinds,
    /// Print the schema of a record type tasks produce (`random_user`).
    Schema {
        /// Record type.
        record: String,
        /// `json` (JSON Schema) or `arrow` (the Arrow schema the lake stores).
        #[arg(long, default_value = "json", value_parser = ["json", "arrow"])]
        format: String,
    },
    /// Run task instances again as a new try (earlier tries' logs are kept);
    /// a finished run goes back to running.
    Clear {
        /// DAG id.
        dag_id: String,
        /// Run id.
        run_id: String,
        /// Only this task (default: every task of the run).
        #[arg(long)]
        task: Option<String>,
        /// Also the tasks downstream of --task.
        #[arg(long, requires = "task")]
        downstream: bool,
        /// Also the tasks upstream of --task.
        #[arg(long, requires = "task")]
        upstream: bool,
        /// Only tasks that failed or were upstream_failed.
        #[arg(long)]
        failed_only: bool,
    },
    /// Force a task instance's outcome (it must not be executing).
    Mark {
        /// DAG id.
        dag_id: String,
        /// Run id.
        run_id: String,
        /// Task id.
        task_id: String,
        /// New state.
        state: MarkState,
    },
}

/// `pools` subcommands.
#[derive(Debug, Subcommand)]
pub enum PoolsCommand {
    /// List pools with their slots in use.
    List,
    /// Create or update a pool.
    Set {
        /// Pool name.
        name: String,
        /// Slots.
        #[arg(long)]
        slots: u32,
        /// Description.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Delete a pool.
    Delete {
        /// Pool name.
        name: String,
    },
}

/// `backfill` arguments: create one, or manage them with a subcommand.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BackfillArgs {
    /// Manage existing backfills.
    #[command(subcommand)]
    pub command: Option<BackfillCommand>,
    /// DAG id.
    #[arg(required = true)]
    pub dag_id: Option<String>,
    /// First logical date (2026-11-01, or a datetime; read in the DAG's time zone).
    #[arg(long, required = true)]
    pub from: Option<String>,
    /// Last logical date (inclusive).
    #[arg(long, required = true)]
    pub to: Option<String>,
    /// Dates that already have a run: skip them (missing), re-run failed ones (failed), or re-run all (all).
    #[arg(long, value_enum, default_value_t = ReprocessArg::Missing)]
    pub reprocess: ReprocessArg,
    /// Backfill runs queued or running at once.
    #[arg(long, default_value_t = scheduler::backfill::DEFAULT_MAX_ACTIVE_RUNS, value_parser = clap::value_parser!(i64).range(1..))]
    pub max_active_runs: i64,
    /// Newest dates first.
    #[arg(long)]
    pub reverse: bool,
    /// Print what would happen, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Conf of every run (JSON object checked against the DAG's params).
    #[arg(long)]
    pub conf: Option<String>,
    /// Record the backfill and return at once (the schedulers run it).
    #[arg(long)]
    pub detach: bool,
}

/// Reprocess modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReprocessArg {
    /// Only dates without a run.
    Missing,
    /// Also dates whose run failed.
    Failed,
    /// Every date.
    All,
}

/// `backfill` subcommands.
#[derive(Debug, Subcommand)]
pub enum BackfillCommand {
    /// Backfills, newest first.
    List {
        /// Only this DAG's.
        #[arg(long)]
        dag: Option<String>,
    },
    /// One backfill's progress; follows it until it ends with --follow.
    Show {
        /// Backfill id.
        id: i64,
        /// Keep showing progress until it ends.
        #[arg(long)]
        follow: bool,
    },
    /// Stop creating runs; queued runs are marked failed, running ones finish.
    Cancel {
        /// Backfill id.
        id: i64,
    },
}
