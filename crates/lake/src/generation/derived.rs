//! Generations of a transform's table: rebuilt from its lake source, not
//! from Kafka.
//!
//! A replay runs the transform itself into generation N's own table
//! (`<table>/_generations/vN`, its late rows beside it), starting from the
//! source as it is now — one snapshot step, then the source's later
//! versions as usual — without its Kafka sink (the rows were published
//! once). Its checkpoint and state are `txn` entries in its own log, under
//! the transform's app ids. The swap is the stream swap's fenced commit
//! (`super::switch`) with those entries instead of Kafka offsets: the
//! running transform, fenced on its checkpoint, goes on from the
//! generation's. This is how a transform follows a rebuilt source: the
//! source's swap commit removes rows, which a transform cannot follow by
//! appending, so its table is rebuilt after the source's (`lake rebuild`
//! does both, in order).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use tokio_util::sync::CancellationToken;

use super::ledger::{Ledger, relative_folder, storage_name};
use super::swap::{SwitchReport, report_of};
use super::switch::{Switched, Target, files_of, switch, transform_txns};
use super::verify::{
    AggregateDiff, aggregates, compare_err, record_verdict, schema_changes, verified,
};
use crate::LakeError;
use crate::location::Location;
use crate::metrics::Metrics;
use crate::sql::{Bound, SqlEngine};
use crate::table::DeltaTableHandle;
use crate::transform::checkpoint::{parse_app_id, source_app_id};
use crate::transform::{RunSummary, TransformOptions, TransformSpec};

/// The transform as it writes generation `n`: its own tables, no sink.
pub fn generation_spec(spec: &TransformSpec, n: u32) -> TransformSpec {
    let mut g = spec.clone();
    g.table = storage_name(&spec.table, n);
    g.sink = None;
    if let Some(w) = g.window.as_mut() {
        w.late_table = storage_name(&w.late_table, n);
    }
    g
}

/// Runs the transform into generation `n` until it holds the source's
/// latest version.
async fn run_generation(
    engine: &SqlEngine,
    spec: &TransformSpec,
    n: u32,
) -> Result<RunSummary, LakeError> {
    crate::transform::run(
        TransformOptions {
            spec: Arc::new(generation_spec(spec, n)),
            engine: engine.clone(),
            until_caught_up: true,
            metrics: Arc::new(Metrics::default()).transform(&spec.name),
            kafka: None,
        },
        CancellationToken::new(),
    )
    .await
}

/// Writes a new generation of the transform's table from its source as
/// it is now; returns its number and what the run did.
pub async fn replay_transform(
    engine: &SqlEngine,
    spec: &TransformSpec,
) -> Result<(u32, RunSummary), LakeError> {
    let location = engine.catalog().location(&spec.table).clone();
    let live = location.open_existing(&spec.table).await?;
    let ledger = Ledger::of(&spec.table, &live).await?;
    let n = super::newest(&location, &spec.table, &ledger).await? + 1;
    let summary = run_generation(engine, spec, n).await?;
    Ok((n, summary))
}

/// What `lake verify` found for a transform's generation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DerivedDiff {
    /// The live table.
    pub table: String,
    /// The generation verified.
    pub generation: u32,
    /// The live table's current generation.
    pub against: u32,
    /// The transform's source table.
    pub source: String,
    /// The source version the generation holds (its checkpoint).
    pub source_version: Option<u64>,
    /// The source version the live table holds.
    pub live_source_version: Option<u64>,
    /// Rows of the live table and of the generation.
    pub live_rows: u64,
    /// Rows of the generation.
    pub generation_rows: u64,
    /// Rows the transform's SQL answers over the source at the
    /// generation's checkpoint, when that is exact (a per-row transform
    /// reading no other table).
    pub recomputed_rows: Option<u64>,
    /// Column and partitioning changes.
    pub schema_changes: Vec<String>,
    /// Sums of the numeric columns both have, where they differ.
    pub aggregates: Vec<AggregateDiff>,
    /// Why it fails (empty: it passes).
    pub problems: Vec<String>,
}

impl DerivedDiff {
    /// Whether the generation may be swapped in.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// What it found, a sentence per line.
    pub fn summary(&self) -> Vec<String> {
        let at = |v: Option<u64>| v.map_or("nothing".to_string(), |v| format!("version {v}"));
        let mut out = vec![format!(
            "{}@v{}: {} rows from {} at {} (live {}@v{}: {} rows from {})",
            self.table,
            self.generation,
            self.generation_rows,
            self.source,
            at(self.source_version),
            self.table,
            self.against,
            self.live_rows,
            at(self.live_source_version)
        )];
        if let Some(r) = self.recomputed_rows {
            out.push(format!(
                "the transform's SQL over {} at that version answers {r} rows",
                self.source
            ));
        }
        out.extend(self.schema_changes.iter().map(|c| format!("schema: {c}")));
        out.extend(self.aggregates.iter().map(AggregateDiff::describe));
        out.extend(self.problems.iter().map(|p| format!("PROBLEM: {p}")));
        if self.ok() {
            out.push(format!(
                "OK: recorded in {}@v{}'s log",
                self.table, self.generation
            ));
        }
        out
    }
}

/// The transform's checkpoint on its source in `h`.
fn checkpoint(h: &DeltaTableHandle, spec: &TransformSpec) -> Option<u64> {
    let v = h.offset(&source_app_id(&spec.name, &spec.source))?;
    u64::try_from(v).ok()
}

/// Verifies generation `n` of a transform's table: it holds a source
/// version at least the live table's, and (when exact) as many rows as
/// the SQL answers over the source at that version; the differences with
/// the live table are reported. Recorded in the generation's log.
pub async fn verify_transform(
    engine: &SqlEngine,
    spec: &TransformSpec,
    n: u32,
) -> Result<DerivedDiff, LakeError> {
    let location = engine.catalog().location(&spec.table).clone();
    let g_name = storage_name(&spec.table, n);
    let g = DeltaTableHandle::new(&g_name, location.open_existing(&g_name).await?).await?;
    let l = DeltaTableHandle::new(&spec.table, location.open_existing(&spec.table).await?).await?;
    let (gv, lv) = (checkpoint(&g, spec), checkpoint(&l, spec));
    let mut problems = Vec::new();
    match (gv, lv) {
        (None, _) => problems.push(format!(
            "the generation holds no version of {}: its replay did not finish",
            spec.source
        )),
        (Some(g), Some(l)) if g < l => problems.push(format!(
            "the generation holds {} up to version {g}, the live table up to {l}",
            spec.source
        )),
        _ => {}
    }
    let reads_others = g
        .txns()
        .keys()
        .filter_map(|id| parse_app_id(id))
        .any(|(t, role, _)| t == spec.name && role == "ref");
    let recomputed_rows = match gv {
        Some(v) if spec.window.is_none() && !reads_others => {
            let source = engine
                .catalog()
                .location(&spec.source)
                .open_at(&spec.source, v)
                .await?;
            let bound = BTreeMap::from([(spec.source.clone(), Bound::Table(source))]);
            let answer = engine
                .plan_bound(&format!("SELECT count(*) FROM ({})", spec.sql), &bound)
                .await
                .map_err(compare_err)?
                .collect(None)
                .await
                .map_err(compare_err)?;
            let n = answer
                .batches
                .iter()
                .find(|b| b.num_rows() > 0)
                .map_or(0, |b| b.column(0).as_primitive::<Int64Type>().value(0));
            Some(n as u64)
        }
        _ => None,
    };
    let generation_rows = crate::transform::changes::table_rows(g.table())?;
    if let Some(r) = recomputed_rows
        && r != generation_rows
    {
        problems.push(format!(
            "the generation holds {generation_rows} rows, but the SQL over {} at version {} answers {r}: a step was lost or repeated",
            spec.source,
            gv.unwrap_or_default()
        ));
    }
    let diff = DerivedDiff {
        table: spec.table.clone(),
        generation: n,
        against: Ledger::read(l.txns()).current,
        source: spec.source.clone(),
        source_version: gv,
        live_source_version: lv,
        live_rows: crate::transform::changes::table_rows(l.table())?,
        generation_rows,
        recomputed_rows,
        schema_changes: schema_changes(l.table(), g.table())?,
        aggregates: aggregates(engine, l.table(), g.table(), "TRUE").await?,
        problems,
    };
    record_verdict(&location, &g_name, diff.ok(), g.version(), n).await?;
    Ok(diff)
}

/// Makes generation `n` of the transform's table current: catches it up
/// with the source, switches the late-row table (windowed transforms),
/// then the table, each in one fenced commit.
pub async fn swap_transform(
    engine: &SqlEngine,
    spec: &TransformSpec,
    n: u32,
    force: bool,
) -> Result<SwitchReport, LakeError> {
    let started = Instant::now();
    let location = engine.catalog().location(&spec.table).clone();
    let g_name = storage_name(&spec.table, n);
    let mut live =
        DeltaTableHandle::new(&spec.table, location.open_existing(&spec.table).await?).await?;
    let from = Ledger::read(live.txns()).current;
    if from == n {
        return Err(LakeError::Config(format!(
            "{}@v{n} is already the current generation",
            spec.table
        )));
    }
    let mut g = DeltaTableHandle::new(&g_name, location.open_existing(&g_name).await?).await?;
    if !force {
        verified(&g, &spec.table, n)?;
    }
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        run_generation(engine, spec, n).await?;
        g.refresh().await?;
        live.refresh().await?;
        if let Some(w) = &spec.window {
            switch_late_rows(&location, spec, &w.late_table, n).await?;
        }
        let t = target(&g, spec, n, from)?;
        let removed = live.table().snapshot()?.log_data().num_files() as u64;
        let read = live.version();
        let t0 = Instant::now();
        match switch(&mut live, &spec.name, read, &t).await? {
            Switched::Committed(version) => {
                live.refresh().await?;
                return report_of(
                    &live,
                    &spec.name,
                    started,
                    from,
                    n,
                    (version, removed, attempts, t0.elapsed().as_millis() as u64),
                );
            }
            Switched::Moved if attempts < 100 => {}
            Switched::Moved => {
                return Err(LakeError::Commit(format!(
                    "{}: gave up after {attempts} attempts (the table keeps moving)",
                    spec.table
                )));
            }
        }
    }
}

/// Makes generation `n`'s late rows those of the live late-row table (a
/// windowed transform's), in one fenced commit: the generation's late
/// table, or none when the generation found no row late (a rebuild reads
/// the source as it is now in one step, so rows the live run found late
/// are in its windows). Either way the live late rows go with the
/// generation they belong to, and come back with a rollback. A live run
/// that found no late row has no late table yet: it is created empty when
/// the generation has late rows.
async fn switch_late_rows(
    location: &Location,
    spec: &TransformSpec,
    late_table: &str,
    n: u32,
) -> Result<(), LakeError> {
    let late_g = storage_name(late_table, n);
    let generation = match location.open(&late_g).await? {
        Some(gt) => Some(DeltaTableHandle::new(&late_g, gt).await?),
        None => None,
    };
    let lt = match (location.open(late_table).await?, &generation) {
        (Some(lt), _) => lt,
        // Rows were late only while the generation caught up: the live
        // late table starts now, empty, so a rollback returns to none.
        (None, Some(g)) => {
            let state = g.table().snapshot()?;
            let schema = state.snapshot().arrow_schema();
            let parts = state.metadata().partition_columns();
            location.open_or_create(late_table, &schema, parts).await?
        }
        (None, None) => return Ok(()),
    };
    let mut lh = DeltaTableHandle::new(late_table, lt).await?;
    let previous = Ledger::read(lh.txns()).current;
    let t = match &generation {
        Some(g) => target(g, spec, n, previous)?,
        None => Target {
            generation: n,
            previous: Some(previous),
            files: Vec::new(),
            metadata: lh.table().snapshot()?.metadata().clone(),
            offsets: BTreeMap::new(),
            fingerprints: BTreeMap::new(),
            txns: BTreeMap::new(),
        },
    };
    let read = lh.version();
    switch(&mut lh, &spec.name, read, &t).await?;
    Ok(())
}

/// The switch to generation `n`'s files and the transform's entries as
/// `g` holds them.
fn target(
    g: &DeltaTableHandle,
    spec: &TransformSpec,
    n: u32,
    previous: u32,
) -> Result<Target, LakeError> {
    Ok(Target {
        generation: n,
        previous: Some(previous),
        files: files_of(g.table(), &relative_folder(n))?,
        metadata: g.table().snapshot()?.metadata().clone(),
        offsets: BTreeMap::new(),
        fingerprints: BTreeMap::new(),
        txns: transform_txns(g, &spec.name),
    })
}
