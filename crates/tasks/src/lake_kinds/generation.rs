//! Kappa reprocessing as DAG tasks (`lake::generation`): `lake_replay`
//! writes a new generation of a stream table from its topics, `lake_verify`
//! checks it against the live table, `lake_swap` makes it current while
//! the live writer runs. A `lake_check` on `users@newest` reads the
//! generation the replay wrote.
//!
//! Each is safe to retry: a replay resumes its unfinished generation, a
//! verification is read-only but for its verdict, and a swap of the
//! generation that is already current succeeds at once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lake::LakeError;
use lake::config::StreamSpec;
use lake::generation::{self, Ledger, ReplayFrom, ReplayRequest, SwapOptions};
use lake::metrics::Metrics;
use scheduler::duration::Dur;
use scheduler::operator::{
    KindSettings, Operator, SettingsError, TaskContext, TaskError, TaskKind, TaskOutcome,
};
use schemars::JsonSchema;
use serde::Deserialize;

use super::{Lake, Problems, StreamTable};

/// How long a swap waits for the generation to catch up by default.
const DEFAULT_SWAP_TIMEOUT: Duration = Duration::from_secs(600);

/// How often a replay writes its progress to the try's log.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Settings of a `lake_replay` task.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LakeReplaySettings {
    /// The stream table to replay (`users`).
    pub table: String,
    /// Where to start: `earliest` (default), an RFC 3339 time, or offsets
    /// per partition (`users:0=1200,users:1=1180`).
    pub from: Option<String>,
    /// Another config file (relative to the project's folder) declaring
    /// the stream as the new generation should be written: a new column,
    /// new partitioning, new decode rules.
    pub config: Option<String>,
    /// Start a new generation even if an unfinished one exists (default:
    /// resume it).
    pub new: Option<bool>,
}

/// Settings of a `lake_verify` task.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LakeVerifySettings {
    /// The stream table.
    pub table: String,
    /// The generation to verify (default: the newest, the latest replay's).
    pub generation: Option<u32>,
}

/// Settings of a `lake_swap` task.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LakeSwapSettings {
    /// The stream table.
    pub table: String,
    /// The generation to make current (default: the newest).
    pub generation: Option<u32>,
    /// The config file the generation was replayed with, if not the
    /// project's (its writer keeps the generation caught up until the swap).
    pub config: Option<String>,
    /// Swap a generation that is unverified or failed verification.
    pub force: Option<bool>,
    /// Give up when the generation has not caught up by then (default 10m).
    pub timeout: Option<Dur>,
}

/// The `lake_replay` kind.
pub struct LakeReplayKind(pub Lake);
/// The `lake_verify` kind.
pub struct LakeVerifyKind(pub Lake);
/// The `lake_swap` kind.
pub struct LakeSwapKind(pub Lake);

/// The `lake_replay` operator.
#[derive(Debug)]
pub struct LakeReplay {
    lake: Lake,
    table: String,
    from: Option<String>,
    config: Option<String>,
    new: bool,
}

/// The `lake_verify` operator.
#[derive(Debug)]
pub struct LakeVerify {
    lake: Lake,
    table: String,
    generation: Option<u32>,
}

/// The `lake_swap` operator.
#[derive(Debug)]
pub struct LakeSwap {
    lake: Lake,
    table: String,
    generation: Option<u32>,
    config: Option<String>,
    force: bool,
    timeout: Duration,
}

/// Checks the stream table, `from` and `config` where the project is known.
fn check_stream(
    p: &mut Problems<'_, '_>,
    lake: &Lake,
    table: &str,
    from: Option<&str>,
    config: Option<&str>,
) {
    p.table_name("table", table);
    if !lake.knows_streams() {
        return;
    }
    let Some(st) = lake.stream_tables().iter().find(|s| s.spec.table == table) else {
        let names: Vec<&str> = lake
            .stream_tables()
            .iter()
            .map(|s| s.spec.table.as_str())
            .collect();
        let hint = diag::suggest(table, &names)
            .map(|n| format!(" (did you mean {n:?}?)"))
            .unwrap_or_default();
        p.at(
            "table",
            format!(
                "{table:?} is not the table of a stream in the project config{hint}; stream tables: {}",
                if names.is_empty() {
                    "none ([[stream]] in tributary.toml)".to_string()
                } else {
                    names.join(", ")
                }
            ),
        );
        return;
    };
    if let Some(f) = from
        && let Err(e) = ReplayFrom::parse(f, &st.spec.topics)
    {
        p.at("from", format!("from: {}", e.replace("--from", "`from`")));
    }
    if let Some(c) = config
        && let Err(e) = lake.declaration(c, &st.spec.name)
    {
        p.at("config", format!("config {c:?}: {e}"));
    }
}

fn check_generation(p: &mut Problems<'_, '_>, n: Option<u32>) {
    if n.is_some_and(|n| n < 2) {
        p.at(
            "generation",
            "generation 1 is the table as the stream first wrote it; replayed generations are 2 and up",
        );
    }
}

impl TaskKind for LakeReplayKind {
    fn name(&self) -> &'static str {
        "lake_replay"
    }
    fn summary(&self) -> &'static str {
        "Replays a stream's topics into a new generation of its table (resumes an unfinished one)."
    }
    fn settings_schema(&self) -> serde_json::Value {
        crate::kind_settings::schema::<LakeReplaySettings>()
    }
    fn build(&self, settings: &KindSettings<'_>) -> Result<Arc<dyn Operator>, Vec<SettingsError>> {
        let s: LakeReplaySettings = settings.checked()?;
        let mut p = Problems::new(settings);
        check_stream(
            &mut p,
            &self.0,
            &s.table,
            s.from.as_deref(),
            s.config.as_deref(),
        );
        p.finish(|| {
            let op: Arc<dyn Operator> = Arc::new(LakeReplay {
                lake: self.0.clone(),
                table: s.table,
                from: s.from,
                config: s.config,
                new: s.new.unwrap_or(false),
            });
            Some(op)
        })
    }
}

impl TaskKind for LakeVerifyKind {
    fn name(&self) -> &'static str {
        "lake_verify"
    }
    fn summary(&self) -> &'static str {
        "Verifies a generation of a stream table on its own and against the live table; fails when it does not hold."
    }
    fn settings_schema(&self) -> serde_json::Value {
        crate::kind_settings::schema::<LakeVerifySettings>()
    }
    fn build(&self, settings: &KindSettings<'_>) -> Result<Arc<dyn Operator>, Vec<SettingsError>> {
        let s: LakeVerifySettings = settings.checked()?;
        let mut p = Problems::new(settings);
        check_stream(&mut p, &self.0, &s.table, None, None);
        check_generation(&mut p, s.generation);
        p.finish(|| {
            let op: Arc<dyn Operator> = Arc::new(LakeVerify {
                lake: self.0.clone(),
                table: s.table,
                generation: s.generation,
            });
            Some(op)
        })
    }
}

impl TaskKind for LakeSwapKind {
    fn name(&self) -> &'static str {
        "lake_swap"
    }
    fn summary(&self) -> &'static str {
        "Makes a verified generation of a stream table current in one fenced commit while the live writer runs."
    }
    fn settings_schema(&self) -> serde_json::Value {
        crate::kind_settings::schema::<LakeSwapSettings>()
    }
    fn build(&self, settings: &KindSettings<'_>) -> Result<Arc<dyn Operator>, Vec<SettingsError>> {
        let s: LakeSwapSettings = settings.checked()?;
        let mut p = Problems::new(settings);
        check_stream(&mut p, &self.0, &s.table, None, s.config.as_deref());
        check_generation(&mut p, s.generation);
        p.finish(|| {
            let op: Arc<dyn Operator> = Arc::new(LakeSwap {
                lake: self.0.clone(),
                table: s.table,
                generation: s.generation,
                config: s.config,
                force: s.force.unwrap_or(false),
                timeout: s.timeout.map_or(DEFAULT_SWAP_TIMEOUT, |d| d.0),
            });
            Some(op)
        })
    }
}

/// A lake error as a try's: a problem with the table or its declaration
/// fails at once; I/O and Kafka may be retried.
fn lake_error(what: &str, e: LakeError) -> TaskError {
    let message = format!("{what}: {e}");
    match e {
        LakeError::Config(_) | LakeError::LogMismatch(_) | LakeError::NoTable(..) => {
            TaskError::Fatal(message)
        }
        _ => TaskError::Retryable(message),
    }
}

/// The declaration a task's generation is written with.
fn declaration(
    lake: &Lake,
    st: &StreamTable,
    config: Option<&str>,
) -> Result<(Arc<StreamSpec>, String), TaskError> {
    match config {
        None => Ok((st.spec.clone(), "the project config".to_string())),
        Some(c) => lake
            .declaration(c, &st.spec.name)
            .map(|spec| (spec, c.to_string()))
            .map_err(|e| TaskError::Fatal(format!("config {c:?}: {e}"))),
    }
}

/// The live table's ledger and the generation a task works on: the one
/// given, or the newest.
async fn pick(st: &StreamTable, given: Option<u32>) -> Result<(Ledger, u32), TaskError> {
    let table = &st.spec.table;
    let what = format!("reading the generations of {table}");
    let live = st
        .location
        .open_existing(table)
        .await
        .map_err(|e| lake_error(&what, e))?;
    let ledger = Ledger::of(table, &live)
        .await
        .map_err(|e| lake_error(&what, e))?;
    let n = match given {
        Some(n) => n,
        None => generation::newest(&st.location, table, &ledger)
            .await
            .map_err(|e| lake_error(&what, e))?,
    };
    Ok((ledger, n))
}

#[async_trait]
impl Operator for LakeReplay {
    async fn execute(&self, ctx: TaskContext) -> Result<TaskOutcome, TaskError> {
        let st = self.lake.stream_table(&self.table)?;
        let kafka = self.lake.kafka()?;
        let (spec, source) = declaration(&self.lake, st, self.config.as_deref())?;
        let from = self
            .from
            .as_deref()
            .map(|f| ReplayFrom::parse(f, &st.spec.topics))
            .transpose()
            .map_err(|e| TaskError::Fatal(format!("from: {e}")))?;
        let r = generation::prepare(
            &st.location,
            &kafka,
            ReplayRequest {
                live: &st.spec,
                spec: &spec,
                from,
                fresh: self.new,
                config: source,
            },
        )
        .await
        .map_err(|e| lake_error(&format!("preparing a replay of {}", self.table), e))?;
        ctx.log.line(format!(
            "{} {}@v{}: {}",
            if r.resumed {
                "resuming"
            } else {
                "replaying into"
            },
            self.table,
            r.generation,
            r.made_by
        ));
        if let Some(f) = &r.refilled {
            ctx.log.line(f.summary(&self.table));
        }
        let metrics = Arc::new(Metrics::default()).stream(&r.spec.name);
        let mut last = std::time::Instant::now();
        let summary =
            generation::progress::run(&st.location, &kafka, &r, metrics, ctx.cancel.clone(), |t| {
                if last.elapsed() >= PROGRESS_EVERY {
                    last = std::time::Instant::now();
                    ctx.log.line(format!(
                        "{}/{} offsets · {:.0} records/s · ETA {}",
                        t.done,
                        t.total,
                        t.records_per_s,
                        t.eta
                            .map_or("-".into(), |d| humantime::format_duration(d).to_string())
                    ));
                }
            })
            .await
            .map_err(|e| lake_error(&format!("replaying {}@v{}", self.table, r.generation), e))?;
        if ctx.cancel.is_cancelled() {
            return Err(TaskError::Retryable(
                "cancelled (the replay resumes where it stopped)".into(),
            ));
        }
        ctx.log.line(format!(
            "{}@v{} caught up: {} records read, {} rows and {} dead letters written in {} commits",
            self.table,
            r.generation,
            summary.records_in,
            summary.rows_written,
            summary.rejected,
            summary.commits
        ));
        Ok(TaskOutcome::Success)
    }
}

#[async_trait]
impl Operator for LakeVerify {
    async fn execute(&self, ctx: TaskContext) -> Result<TaskOutcome, TaskError> {
        let st = self.lake.stream_table(&self.table)?;
        let (ledger, n) = pick(st, self.generation).await?;
        if n == ledger.current {
            return Err(TaskError::Fatal(format!(
                "{}@v{n} is the current generation: nothing to verify it against (replay a new generation first)",
                self.table
            )));
        }
        let diff = super::unless_cancelled(&ctx, async {
            generation::verify_against(&st.location, &st.spec, n)
                .await
                .map_err(|e| lake_error(&format!("verifying {}@v{n}", self.table), e))
        })
        .await?;
        for p in &diff.partitions {
            ctx.log.line(format!(
                "{}/{} offsets {}..={}: {} live rows, {} new; {} live dead letters, {} new",
                p.topic,
                p.partition,
                p.from,
                p.to,
                p.live_rows,
                p.generation_rows,
                p.live_rejected,
                p.generation_rejected
            ));
        }
        for line in diff.summary() {
            ctx.log.line(line);
        }
        if !diff.ok() {
            return Err(TaskError::Fatal(format!(
                "{}@v{n} failed verification: the live table is unchanged",
                self.table
            )));
        }
        Ok(TaskOutcome::Success)
    }
}

#[async_trait]
impl Operator for LakeSwap {
    async fn execute(&self, ctx: TaskContext) -> Result<TaskOutcome, TaskError> {
        let st = self.lake.stream_table(&self.table)?;
        let kafka = self.lake.kafka()?;
        let (spec, _) = declaration(&self.lake, st, self.config.as_deref())?;
        let (ledger, n) = pick(st, self.generation).await?;
        if n == ledger.current {
            ctx.log.line(format!(
                "{}@v{n} is already the current generation: nothing to swap",
                self.table
            ));
            return Ok(TaskOutcome::Success);
        }
        let report = generation::swap(
            SwapOptions {
                location: st.location.clone(),
                kafka,
                metrics: Arc::new(Metrics::default()).stream(&st.spec.name),
                live: st.spec.clone(),
                spec,
                generation: n,
                force: self.force,
                timeout: self.timeout,
            },
            ctx.cancel.clone(),
        )
        .await
        .map_err(|e| lake_error(&format!("swapping in {}@v{n}", self.table), e))?;
        for line in report.summary("swapped") {
            ctx.log.line(line);
        }
        Ok(TaskOutcome::Success)
    }
}
