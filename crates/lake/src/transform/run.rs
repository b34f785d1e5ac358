//! Running a transform: the loop, and the per-row step — read the source
//! versions after the checkpoint, run the SQL over the rows they added
//! (reference tables at their latest versions), write the answer as
//! Parquet files and commit them with the new checkpoint and the reference
//! versions — one Delta commit, fenced on the checkpoint it started from,
//! so two runs of the same transform never both commit a step, and a run
//! killed at any moment leaves either the whole step or none of it.
//! Windowed SQL takes its own step ([`super::windowed`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::changes::{appended, snapshot_files};
pub use super::runner::RunSummary;
use super::runner::{Change, Planned, Runner, Step, references};
use super::sink::Sink;
use super::spec::TransformSpec;
use crate::LakeError;
use crate::kafka::KafkaSource;
use crate::metrics::TransformMetrics;
use crate::sql::{Bound, SqlEngine};

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
    /// The Kafka a `sink` publishes to (required when the spec has one).
    pub kafka: Option<KafkaSource>,
}

/// Runs a transform until `stop` (or, with `until_caught_up`, until the
/// output holds the source version seen at start).
pub async fn run(opts: TransformOptions, stop: CancellationToken) -> Result<RunSummary, LakeError> {
    let mut r = Runner {
        spec: opts.spec.clone(),
        engine: opts.engine.clone(),
        metrics: opts.metrics.clone(),
        source: None,
        output: None,
        summary: RunSummary::default(),
    };
    let mut target = None;
    let mut waiting_said = None;
    let mut sink = match (&opts.spec.sink, &opts.kafka) {
        (None, _) => None,
        (Some(s), Some(k)) => Some(Sink::open(&opts.spec.name, &opts.spec.table, s, k).await?),
        (Some(s), None) => {
            return Err(LakeError::Config(format!(
                "transform {}: sink to topic {:?} needs a Kafka ([kafka] bootstrap_servers)",
                opts.spec.name, s.topic
            )));
        }
    };
    loop {
        let step = tokio::select! {
            s = step(&mut r, &mut target, opts.until_caught_up) => s?,
            _ = stop.cancelled() => break,
        };
        // The output's new versions go to the sink's topic (a version at a
        // time, each whole or not at all).
        if let Some(s) = sink.as_mut()
            && matches!(step, Step::Committed | Step::CaughtUp)
        {
            let rows = tokio::select! {
                n = s.publish(&opts.engine) => n?,
                _ = stop.cancelled() => break,
            };
            r.summary.rows_published += rows;
            opts.metrics
                .rows_published
                .fetch_add(rows, std::sync::atomic::Ordering::Relaxed);
            if let Some(v) = s.published() {
                opts.metrics
                    .published_plus_one
                    .store(v + 1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        match step {
            Step::Committed | Step::Fenced => continue,
            Step::CaughtUp if opts.until_caught_up => break,
            Step::Waiting(why) if opts.until_caught_up => return Err(LakeError::Config(why)),
            Step::Waiting(why) => {
                if waiting_said.as_ref() != Some(&why) {
                    tracing::info!(transform = %opts.spec.name, "{why}; waiting");
                    waiting_said = Some(why);
                }
            }
            Step::CaughtUp => {}
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(opts.spec.trigger) => {}
        }
    }
    Ok(r.summary)
}

/// One step: finds where the transform stands, then carries the next
/// source versions (per row) or version (windowed).
async fn step(
    r: &mut Runner,
    target: &mut Option<u64>,
    until_caught_up: bool,
) -> Result<Step, LakeError> {
    let spec = r.spec.clone();
    let Some(pos) = r.position().await? else {
        return Ok(Step::Waiting(format!(
            "transform {}: source table {:?} does not exist yet",
            spec.name, spec.source
        )));
    };
    let target = *target.get_or_insert(pos.latest);
    let reached = if until_caught_up { target } else { pos.latest };
    if pos.checkpoint.is_some_and(|c| c >= reached) {
        return Ok(Step::CaughtUp);
    }
    if spec.window.is_some() {
        return super::windowed::step(r, pos).await;
    }
    per_row_step(r, pos.checkpoint, pos.latest).await
}

async fn per_row_step(
    r: &mut Runner,
    checkpoint: Option<u64>,
    latest: u64,
) -> Result<Step, LakeError> {
    let spec = r.spec.clone();
    // The versions this step carries, and what they added.
    let (to, added) = match checkpoint {
        None => {
            r.load_source(latest).await?;
            (latest, snapshot_files(r.source())?)
        }
        Some(c) => {
            let to = latest.min(c + spec.max_source_versions);
            let added = appended(r.source(), &spec.source, c, to).await?;
            r.load_source(to).await?;
            (to, added)
        }
    };
    let source = r.source();
    let bound = if added.files.is_empty() {
        Bound::Empty(source.snapshot()?.snapshot().arrow_schema())
    } else {
        Bound::Files {
            table: source.clone(),
            files: added.files.clone(),
        }
    };
    let bound = BTreeMap::from([(spec.source.clone(), bound)]);
    let query = match r.plan(&spec.sql, &bound, false).await? {
        Planned::Query(q) => *q,
        Planned::Waiting(step) => return Ok(step),
    };
    let references = references(&query, &spec.source);
    let (adds, rows_out) = r.write_answer(query).await?;
    r.commit(
        checkpoint,
        Change {
            adds,
            removes: Vec::new(),
            to,
            rows_in: added.rows,
            rows_out,
            references,
            state: Vec::new(),
            committed_at: added.committed_at,
        },
    )
    .await
}
