//! `lake verify users@v2 --against users`: a generation checked on its own
//! (exactly once, as `lake verify` checks any stream table), then compared
//! with the live table over the offsets both hold.
//!
//! A generation fails when its own check fails, or when a Kafka partition's
//! records over the common offset range are not all accounted for the same
//! number of times (rows + dead letters differ). What a changed declaration
//! is expected to change — columns, partitioning, which records decode,
//! the values of numeric columns — is reported, not failed. The result is
//! recorded in the generation's own log (`txn` entries), where `lake swap`
//! looks for it.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use deltalake::DeltaTable;
use deltalake::protocol::{DeltaOperation, OutputMode};

use super::ledger::{Ledger, storage_name};
use crate::LakeError;
use crate::config::StreamSpec;
use crate::schema::{COL_OFFSET, COL_PARTITION, COL_TOPIC};
use crate::sql::{Bound, LakeCatalog, Limits, SqlEngine};
use crate::table::{DeltaTableHandle, Location, OffsetUpdate};
use crate::tools::{VerifyReport, verify};

/// App id of the last generation version that passed verification.
pub const VERIFIED: &str = "tributary-verified";
/// App id of the last generation version that failed it.
pub const VERIFY_FAILED: &str = "tributary-verify-failed";

/// A generation's last verification, from its log: whether it passed and
/// the version it verified; `None` when it was never verified.
pub fn verdict(g: &DeltaTableHandle) -> Option<(bool, i64)> {
    let passed = g.txns().get(VERIFIED).copied();
    match (passed, g.txns().get(VERIFY_FAILED).copied()) {
        (None, None) => None,
        (p, Some(f)) if p.is_none_or(|p| p < f) => Some((false, f)),
        (p, _) => p.map(|p| (true, p)),
    }
}

/// Refuses a generation whose last verification is missing or failed.
pub fn verified(g: &DeltaTableHandle, table: &str, n: u32) -> Result<(), LakeError> {
    let hint =
        format!("run `tributary lake verify {table}@v{n} --against {table}`, or swap with --force");
    match verdict(g) {
        None => Err(LakeError::Config(format!(
            "{table}@v{n} has not been verified: {hint}"
        ))),
        Some((false, f)) => Err(LakeError::Config(format!(
            "{table}@v{n} failed verification at its version {f}: {hint}"
        ))),
        Some((true, _)) => Ok(()),
    }
}

/// One Kafka partition over the offsets both tables hold.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct PartitionDiff {
    pub topic: String,
    pub partition: i32,
    /// The common range, inclusive.
    pub from: i64,
    pub to: i64,
    pub live_rows: u64,
    pub generation_rows: u64,
    pub live_rejected: u64,
    pub generation_rejected: u64,
}

/// A numeric column's sum over the common range on both sides.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct AggregateDiff {
    pub column: String,
    pub live: f64,
    pub generation: f64,
}

impl AggregateDiff {
    /// `sum(latitude): 12.5 live, 12.75 in the generation`.
    pub fn describe(&self) -> String {
        format!(
            "sum({}): {} live, {} in the generation",
            self.column, self.live, self.generation
        )
    }
}

/// What `lake verify TABLE@vN --against TABLE` found.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GenerationDiff {
    /// The live table.
    pub table: String,
    /// The generation verified.
    pub generation: u32,
    /// The live table's current generation.
    pub against: u32,
    /// The generation's own exactly-once check.
    pub check: VerifyReport,
    /// Per Kafka partition over the common offsets.
    pub partitions: Vec<PartitionDiff>,
    /// Column and partitioning changes, one sentence each.
    pub schema_changes: Vec<String>,
    /// Table partitions whose row counts differ (same partitioning only).
    pub table_partitions: Vec<String>,
    /// Sums of the numeric columns both have, where they differ.
    pub aggregates: Vec<AggregateDiff>,
    /// Why it fails (empty: it passes).
    pub problems: Vec<String>,
}

impl GenerationDiff {
    /// Whether the generation may be swapped in.
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.check.ok()
    }

    /// What it found, a sentence per line (the per-partition figures are
    /// in `partitions`).
    pub fn summary(&self) -> Vec<String> {
        let mut out = vec![format!(
            "{}@v{} (version {}, {} rows) against {}@v{}: exactly once {}",
            self.table,
            self.generation,
            self.check.version,
            self.check.rows_read,
            self.table,
            self.against,
            if self.check.ok() { "holds" } else { "FAILS" }
        )];
        out.extend(self.schema_changes.iter().map(|c| format!("schema: {c}")));
        out.extend(
            self.table_partitions
                .iter()
                .map(|p| format!("partition {p}")),
        );
        out.extend(self.aggregates.iter().map(AggregateDiff::describe));
        out.extend(
            self.check
                .problems
                .iter()
                .chain(&self.problems)
                .map(|p| format!("PROBLEM: {p}")),
        );
        if self.ok() {
            out.push(format!(
                "OK: every record of the common offsets is accounted for once on both sides; recorded in {}@v{}'s log",
                self.table, self.generation
            ));
        }
        out
    }
}

/// Verifies generation `n` of a stream's table against the live table and
/// records the outcome in the generation's log.
pub async fn verify_against(
    location: &Location,
    live: &StreamSpec,
    n: u32,
) -> Result<GenerationDiff, LakeError> {
    let g_name = storage_name(&live.table, n);
    let g_dlq = storage_name(&live.dead_letter_table, n);
    let check = verify(location, &g_name, Some(&g_dlq), Some(&live.name)).await?;
    let live_check = verify(
        location,
        &live.table,
        Some(&live.dead_letter_table),
        Some(&live.name),
    )
    .await?;
    // The versions the checks read; the dead-letter tables after them
    // (they are committed first, so they hold every rejected record up to
    // those versions' offsets).
    let mut g = location.open_existing(&g_name).await?;
    g.load_version(check.version).await?;
    let mut l = location.open_existing(&live.table).await?;
    l.load_version(live_check.version).await?;
    let against = Ledger::of(&live.table, &l).await?.current;
    let g_dl = location.open(&g_dlq).await?;
    let l_dl = location.open(&live.dead_letter_table).await?;
    let mut diff = GenerationDiff {
        table: live.table.clone(),
        generation: n,
        against,
        check,
        partitions: Vec::new(),
        schema_changes: schema_changes(&l, &g)?,
        table_partitions: Vec::new(),
        aggregates: Vec::new(),
        problems: Vec::new(),
    };
    // The common range of each partition: where both hold offsets.
    let span = |r: &VerifyReport| -> BTreeMap<(String, i32), (i64, i64)> {
        r.partitions
            .iter()
            .filter(|p| p.first >= 0)
            .map(|p| {
                (
                    (p.topic.clone(), p.partition),
                    (p.first, p.committed.unwrap_or(p.last)),
                )
            })
            .collect()
    };
    let (gs, ls) = (span(&diff.check), span(&live_check));
    let mut ranges = BTreeMap::new();
    for (k, (gf, gt)) in &gs {
        if let Some((lf, lt)) = ls.get(k) {
            let (from, to) = ((*gf).max(*lf), (*gt).min(*lt));
            if from <= to {
                ranges.insert(k.clone(), (from, to));
            }
        }
    }
    for k in ls.keys().filter(|k| !gs.contains_key(*k)) {
        diff.problems.push(format!(
            "{}/{}: the live table holds offsets of this partition, the generation none",
            k.0, k.1
        ));
    }
    if ranges.is_empty() {
        return record(location, &g_name, diff).await;
    }
    let predicate = ranges
        .iter()
        .map(|((t, p), (a, b))| {
            format!(
                "({COL_TOPIC} = '{}' AND {COL_PARTITION} = {p} AND {COL_OFFSET} BETWEEN {a} AND {b})",
                t.replace('\'', "''")
            )
        })
        .collect::<Vec<_>>()
        .join(" OR ");
    let count_sql = format!(
        "SELECT {COL_TOPIC} AS t, {COL_PARTITION} AS p, count(*) AS n FROM rows WHERE {predicate} GROUP BY 1, 2"
    );
    let engine = SqlEngine::new(LakeCatalog::new(location.clone()), Limits::default())
        .map_err(compare_err)?;
    let counts = |t: Option<DeltaTable>| {
        let sql = count_sql.clone();
        let engine = &engine;
        async move {
            match t {
                Some(t) => per_partition(engine, &t, &sql).await,
                None => Ok(BTreeMap::new()),
            }
        }
    };
    let (lr, gr, lj, gj) = (
        counts(Some(l.clone())).await?,
        counts(Some(g.clone())).await?,
        counts(l_dl).await?,
        counts(g_dl).await?,
    );
    for ((t, p), (from, to)) in &ranges {
        let k = (t.clone(), *p);
        let d = PartitionDiff {
            topic: t.clone(),
            partition: *p,
            from: *from,
            to: *to,
            live_rows: lr.get(&k).copied().unwrap_or(0),
            generation_rows: gr.get(&k).copied().unwrap_or(0),
            live_rejected: lj.get(&k).copied().unwrap_or(0),
            generation_rejected: gj.get(&k).copied().unwrap_or(0),
        };
        if d.live_rows + d.live_rejected != d.generation_rows + d.generation_rejected {
            diff.problems.push(format!(
                "{t}/{p} offsets {from}..={to}: the live table accounts for {} records ({} rows, {} dead letters), the generation for {} ({} rows, {} dead letters)",
                d.live_rows + d.live_rejected,
                d.live_rows,
                d.live_rejected,
                d.generation_rows + d.generation_rejected,
                d.generation_rows,
                d.generation_rejected
            ));
        }
        diff.partitions.push(d);
    }
    diff.aggregates = aggregates(&engine, &l, &g, &predicate).await?;
    diff.table_partitions = table_partitions(&engine, &l, &g, &predicate).await?;
    record(location, &g_name, diff).await
}

/// Records the outcome in the generation's log.
async fn record(
    location: &Location,
    g_name: &str,
    diff: GenerationDiff,
) -> Result<GenerationDiff, LakeError> {
    record_verdict(
        location,
        g_name,
        diff.ok(),
        diff.check.version,
        diff.generation,
    )
    .await?;
    Ok(diff)
}

/// Records a verification of generation `n` (stored as `g_name`) at its
/// `version` in its own log, where `lake swap` looks for it.
pub(crate) async fn record_verdict(
    location: &Location,
    g_name: &str,
    passed: bool,
    version: u64,
    n: u32,
) -> Result<(), LakeError> {
    let mut h = DeltaTableHandle::new(g_name, location.open_existing(g_name).await?).await?;
    let id = if passed { VERIFIED } else { VERIFY_FAILED };
    let update = OffsetUpdate {
        app_id: id.to_string(),
        expected: h.txns().get(id).copied(),
        last: version as i64,
    };
    let op = DeltaOperation::StreamingUpdate {
        output_mode: OutputMode::Append,
        query_id: "tributary-verify".into(),
        epoch_id: i64::from(n),
    };
    // A writer may be following the generation: a lost race re-reads.
    h.commit_built(&[update], op, |_| Ok(Vec::new())).await?;
    Ok(())
}

/// Columns added, dropped or retyped, and a partitioning change.
pub(crate) fn schema_changes(l: &DeltaTable, g: &DeltaTable) -> Result<Vec<String>, LakeError> {
    let (ls, gs) = (l.snapshot()?, g.snapshot()?);
    let fields = |s: &arrow::datatypes::Schema| -> BTreeMap<String, DataType> {
        s.fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect()
    };
    let (lf, gf) = (
        fields(&ls.snapshot().arrow_schema()),
        fields(&gs.snapshot().arrow_schema()),
    );
    let mut out = Vec::new();
    for (name, t) in &gf {
        match lf.get(name) {
            None => out.push(format!("added column {name} ({t})")),
            Some(old) if old != t => out.push(format!("column {name}: {old} → {t}")),
            _ => {}
        }
    }
    for name in lf.keys().filter(|n| !gf.contains_key(*n)) {
        out.push(format!("dropped column {name}"));
    }
    let (lp, gp) = (
        ls.metadata().partition_columns().to_vec(),
        gs.metadata().partition_columns().to_vec(),
    );
    if lp != gp {
        out.push(format!(
            "partitioned by [{}] → [{}]",
            lp.join(", "),
            gp.join(", ")
        ));
    }
    Ok(out)
}

pub(crate) fn compare_err(e: crate::sql::SqlError) -> LakeError {
    LakeError::Config(format!("cannot compare the generations: {e}"))
}

/// Runs `sql` with `rows` bound to `t` (at its loaded version), through
/// the lake's SQL engine like every other lake query.
async fn collect(
    engine: &SqlEngine,
    t: &DeltaTable,
    sql: &str,
) -> Result<Vec<arrow::array::RecordBatch>, LakeError> {
    let bound = BTreeMap::from([("rows".to_string(), Bound::Table(t.clone()))]);
    let answer = engine
        .plan_bound(sql, &bound)
        .await
        .map_err(compare_err)?
        .collect(None)
        .await
        .map_err(compare_err)?;
    Ok(answer.batches)
}

/// `(topic, partition) → n` from a query returning `t, p, n`.
async fn per_partition(
    engine: &SqlEngine,
    t: &DeltaTable,
    sql: &str,
) -> Result<BTreeMap<(String, i32), u64>, LakeError> {
    let mut out = BTreeMap::new();
    for b in collect(engine, t, sql).await? {
        let topics = cast(b.column(0), &DataType::Utf8)?;
        let parts = cast(b.column(1), &DataType::Int64)?;
        let n = cast(b.column(2), &DataType::Int64)?;
        let (topics, parts, n) = (
            topics.as_string::<i32>(),
            parts.as_primitive::<Int64Type>(),
            n.as_primitive::<Int64Type>(),
        );
        for i in 0..b.num_rows() {
            out.insert(
                (topics.value(i).to_string(), parts.value(i) as i32),
                n.value(i) as u64,
            );
        }
    }
    Ok(out)
}

/// Sums of the numeric columns both tables have (Kafka coordinates aside)
/// that differ over the common range.
pub(crate) async fn aggregates(
    engine: &SqlEngine,
    l: &DeltaTable,
    g: &DeltaTable,
    predicate: &str,
) -> Result<Vec<AggregateDiff>, LakeError> {
    let numeric = |t: &DeltaTable| -> Result<BTreeSet<String>, LakeError> {
        Ok(t.snapshot()?
            .snapshot()
            .arrow_schema()
            .fields()
            .iter()
            .filter(|f| f.data_type().is_numeric())
            .map(|f| f.name().clone())
            .filter(|n| n != COL_PARTITION && n != COL_OFFSET)
            .collect())
    };
    let both: Vec<String> = numeric(l)?.intersection(&numeric(g)?).cloned().collect();
    if both.is_empty() {
        return Ok(Vec::new());
    }
    let sums = both
        .iter()
        .map(|c| format!("sum(CAST(\"{}\" AS DOUBLE))", c.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("SELECT {sums} FROM rows WHERE {predicate}");
    let row = |batches: Vec<arrow::array::RecordBatch>| -> Result<Vec<f64>, LakeError> {
        let b = batches.into_iter().find(|b| b.num_rows() > 0);
        let Some(b) = b else {
            return Ok(vec![0.0; both.len()]);
        };
        (0..b.num_columns())
            .map(|i| {
                let c = cast(b.column(i), &DataType::Float64)?;
                let c = c.as_primitive::<Float64Type>();
                Ok(if c.is_null(0) { 0.0 } else { c.value(0) })
            })
            .collect()
    };
    let (lv, gv) = (
        row(collect(engine, l, &sql).await?)?,
        row(collect(engine, g, &sql).await?)?,
    );
    Ok(both
        .into_iter()
        .zip(lv.into_iter().zip(gv))
        .filter(|(_, (a, b))| (a - b).abs() > 1e-9 * a.abs().max(b.abs()).max(1.0))
        .map(|(column, (live, generation))| AggregateDiff {
            column,
            live,
            generation,
        })
        .collect())
}

/// Table partitions (`nation=FR/…`) whose row counts over the common range
/// differ, when both tables are partitioned the same way (at most 20).
async fn table_partitions(
    engine: &SqlEngine,
    l: &DeltaTable,
    g: &DeltaTable,
    predicate: &str,
) -> Result<Vec<String>, LakeError> {
    let cols = l.snapshot()?.metadata().partition_columns().to_vec();
    if cols.is_empty() || cols != g.snapshot()?.metadata().partition_columns().to_vec() {
        return Ok(Vec::new());
    }
    let key = cols
        .iter()
        .map(|c| {
            format!(
                "'{}=' || coalesce(CAST(\"{}\" AS VARCHAR), '__HIVE_DEFAULT_PARTITION__')",
                c.replace('\'', "''"),
                c.replace('"', "\"\"")
            )
        })
        .collect::<Vec<_>>()
        .join(" || '/' || ");
    let sql = format!("SELECT {key} AS k, count(*) AS n FROM rows WHERE {predicate} GROUP BY 1");
    let counts =
        |batches: Vec<arrow::array::RecordBatch>| -> Result<BTreeMap<String, i64>, LakeError> {
            let mut out = BTreeMap::new();
            for b in batches {
                let k = cast(b.column(0), &DataType::Utf8)?;
                let n = cast(b.column(1), &DataType::Int64)?;
                let (k, n) = (k.as_string::<i32>(), n.as_primitive::<Int64Type>());
                for i in 0..b.num_rows() {
                    out.insert(k.value(i).to_string(), n.value(i));
                }
            }
            Ok(out)
        };
    let (lc, gc) = (
        counts(collect(engine, l, &sql).await?)?,
        counts(collect(engine, g, &sql).await?)?,
    );
    let keys: BTreeSet<&String> = lc.keys().chain(gc.keys()).collect();
    Ok(keys
        .into_iter()
        .filter(|k| lc.get(*k) != gc.get(*k))
        .take(20)
        .map(|k| {
            format!(
                "{k}: {} rows live, {} in the generation",
                lc.get(k).copied().unwrap_or(0),
                gc.get(k).copied().unwrap_or(0)
            )
        })
        .collect())
}
