//! The step of a windowed transform (`FROM TUMBLE(…)` / `HOP(…)`).
//!
//! Its state is its own output table: the windows' rows, and in the same
//! commits the checkpoint and the watermark state as `txn` entries (per
//! source partition the latest event time and when it last had rows, and
//! the watermark). Each step carries **one** source version, so which rows
//! are late depends only on the source's history, never on how fast the
//! transform ran: a replay gives the same table.
//!
//! At version `v`, committed at time `T`:
//! 1. the watermark before `v` is the least latest-event-time of the
//!    partitions that had rows within `idle_timeout` before `T` (all of
//!    them when every one is idle), minus `delay`, never moving back;
//! 2. a new row whose every window ends (plus `allowed_lateness`) at or
//!    before that watermark is late: it goes to the late table, with the
//!    watermark it missed; a row without an event time too;
//! 3. `emit = "update"`: the open windows the on-time new rows fall in are
//!    recomputed from all of the source's rows in them (as of `v`) and
//!    replace their rows; `emit = "final"`: the windows the watermark
//!    passed at `v` are computed once and appended.
//!
//! A window that was open whenever its rows arrived holds exactly the
//! source's rows, so recomputing from the source is exact, and a late row
//! never enters a window: its windows were closed before it came.

use std::collections::BTreeMap;

use arrow::array::{Array, Int64Array, StringArray};
use chrono::{DateTime, Utc};
use deltalake::kernel::{Add, Remove};

use super::changes::{Appended, appended, commit_time, snapshot_files};
use super::checkpoint::late_app_id;
use super::runner::{Change, Planned, Position, Runner, Step, references, sql_err};
use super::spec::{Emit, WindowSpec};
use super::watermark::{Watermarks, first_open, last_closed, micros};
use super::window::{rewrite, ts_literal};
use crate::LakeError;
use crate::sql::Bound;
use crate::sql::write::quote_ident;

pub(super) async fn step(r: &mut Runner, pos: Position) -> Result<Step, LakeError> {
    let spec = r.spec.clone();
    let w = spec.window.as_ref().expect("a windowed transform");
    // One source version per step; the first step reads the table as it is.
    let (to, added): (u64, Appended) = match pos.checkpoint {
        None => {
            r.load_source(pos.latest).await?;
            let mut a = snapshot_files(r.source())?;
            a.committed_at = commit_time(r.source(), pos.latest).await?;
            (pos.latest, a)
        }
        Some(c) => {
            let a = appended(r.source(), &spec.source, c, c + 1).await?;
            r.load_source(c + 1).await?;
            (c + 1, a)
        }
    };
    let now_ms = added.committed_at.map_or(0, |t| t.timestamp_millis());
    let source = r.source().clone();
    let source_schema = source.snapshot()?.snapshot().arrow_schema();
    let new_rows = || {
        let b = if added.files.is_empty() {
            Bound::Empty(source_schema.clone())
        } else {
            Bound::Files {
                table: source.clone(),
                files: added.files.clone(),
            }
        };
        BTreeMap::from([(spec.source.clone(), b)])
    };
    let whole = BTreeMap::from([(spec.source.clone(), Bound::Table(source.clone()))]);

    // The output table exists before anything is written to it (created
    // from the answer's columns on the first step).
    if r.output.is_none() {
        let probe = match r.plan(&spec.planned_sql(), &whole, true).await? {
            Planned::Query(q) => *q,
            Planned::Waiting(step) => return Ok(step),
        };
        r.output_table(&probe.schema()).await?;
    }
    // The reference tables this step reads, with their versions.
    let mut references = BTreeMap::new();

    let mut marks = Watermarks::read(r.output.as_ref().expect("created").txns(), &spec.name);
    let before = marks.at(now_ms, w);
    let partition = if source_schema.field_with_name("_partition").is_ok() {
        "CAST(\"_partition\" AS VARCHAR)"
    } else {
        "'all'"
    };
    let c = quote_ident(&w.window.column);
    let t = quote_ident(&spec.source);
    let maxima = rows_of(
        r,
        &format!(
            "SELECT {partition} AS p, max({c}) AS m FROM {t} WHERE {c} IS NOT NULL GROUP BY 1"
        ),
        &new_rows(),
    )
    .await?;
    let maxima: BTreeMap<String, i64> = maxima.into_iter().collect();
    marks.observe(&maxima, now_ms);
    let after = marks.at(now_ms, w);
    marks.watermark = after;

    let sql = Fragments::new(w, &spec.source, before);
    write_late(r, &sql, &new_rows(), before, to).await?;
    let range = windows_to_write(r, &sql, &new_rows(), before, after).await?;
    let (mut adds, mut removes, mut rows_out): (Vec<Add>, Vec<Remove>, u64) =
        (Vec::new(), Vec::new(), 0);
    if let Some((lo, hi)) = range {
        let query = recompute(r, &whole, lo, hi).await?;
        references.extend(self::references(&query, &spec.source));
        if w.emit == Emit::Update {
            (adds, removes) = replaced(r, lo, hi).await?;
        }
        let (new, rows) = r.write_answer(query).await?;
        adds.extend(new);
        rows_out = rows;
    }
    r.commit(
        pos.checkpoint,
        Change {
            adds,
            removes,
            to,
            rows_in: added.rows,
            rows_out,
            references,
            state: marks.entries(&spec.name),
            committed_at: added.committed_at,
        },
    )
    .await
}

/// SQL pieces of a step: the source, its time column, a row's latest
/// window start (`bin`) and whether it is late against the watermark
/// before this version.
struct Fragments<'a> {
    w: &'a WindowSpec,
    t: String,
    bin: String,
    late: String,
}

impl<'a> Fragments<'a> {
    fn new(w: &'a WindowSpec, source: &str, before: Option<i64>) -> Fragments<'a> {
        let c = quote_ident(&w.window.column);
        let reach = format!(
            "INTERVAL '{} microseconds'",
            (w.window.size + w.allowed_lateness).as_micros()
        );
        let bin = format!(
            "date_bin(INTERVAL '{} microseconds', {c})",
            w.window.slide.as_micros()
        );
        let late = match before {
            Some(b) => format!(
                "{c} IS NULL OR {bin} + {reach} <= {}",
                ts_literal(micros(b))
            ),
            None => format!("{c} IS NULL"),
        };
        Fragments {
            w,
            t: quote_ident(source),
            bin,
            late,
        }
    }
}

/// Writes this version's late rows to the late table, with the watermark
/// they missed (idempotent per source version: a replay after a crash
/// finds them there).
async fn write_late(
    r: &Runner,
    f: &Fragments<'_>,
    new_rows: &BTreeMap<String, Bound>,
    before: Option<i64>,
    to: u64,
) -> Result<(), LakeError> {
    let spec = &r.spec;
    let mark = before.map_or("NULL".to_string(), |b| ts_literal(micros(b)));
    let sql = format!(
        "SELECT *, CAST({mark} AS VARCHAR) AS _watermark FROM {} WHERE {}",
        f.t, f.late
    );
    let late = r
        .engine
        .plan_bound(&sql, new_rows)
        .await
        .map_err(|e| sql_err(spec, e))?
        .collect(None)
        .await
        .map_err(|e| sql_err(spec, e))?;
    if late.rows > 0 {
        crate::sql::write::append_batches(
            r.engine.catalog(),
            &f.w.late_table,
            late.batches,
            &[],
            (&late_app_id(&spec.name), to as i64),
        )
        .await
        .map_err(|e| sql_err(spec, e))?;
    }
    Ok(())
}

/// The window starts `[lo, hi]` this version writes: with `update`, the
/// open windows its on-time rows fall in; with `final`, the windows the
/// watermark passed at it (`lo` unbounded on a first step).
async fn windows_to_write(
    r: &Runner,
    f: &Fragments<'_>,
    new_rows: &BTreeMap<String, Bound>,
    before: Option<i64>,
    after: Option<i64>,
) -> Result<Option<(Option<i64>, i64)>, LakeError> {
    let w = f.w;
    Ok(match w.emit {
        Emit::Update => {
            let (t, bin, late) = (&f.t, &f.bin, &f.late);
            let touched = rows_of(
                r,
                &format!(
                    "SELECT 'min' AS p, min({bin}) AS m FROM {t} WHERE NOT ({late}) \
                     UNION ALL SELECT 'max' AS p, max({bin}) AS m FROM {t} WHERE NOT ({late})"
                ),
                new_rows,
            )
            .await?;
            let get = |k: &str| touched.iter().find(|(p, _)| p == k).map(|(_, m)| *m);
            match (get("min"), get("max")) {
                (Some(min), Some(max)) => {
                    let k = i64::from(w.window.copies()) - 1;
                    let lo = min - k * w.window.slide.as_micros() as i64;
                    let lo = before.map_or(lo, |b| lo.max(first_open(b, w)));
                    (lo <= max).then_some((Some(lo), max))
                }
                _ => None,
            }
        }
        Emit::Final => after.and_then(|a| {
            let hi = last_closed(a, w);
            let lo = before.map(|b| first_open(b, w));
            lo.is_none_or(|lo| lo <= hi).then_some((lo, hi))
        }),
    })
}

/// The windows starting in `[lo, hi]`, computed from the source's rows in
/// them (as of the step's version).
async fn recompute(
    r: &Runner,
    whole: &BTreeMap<String, Bound>,
    lo: Option<i64>,
    hi: i64,
) -> Result<crate::sql::Query, LakeError> {
    let spec = &r.spec;
    let w = spec.window.as_ref().expect("a windowed transform");
    let size = w.window.size.as_micros() as i64;
    let inner = rewrite(
        &spec.sql,
        &w.window,
        Some((lo.map(micros), micros(hi + size))),
    );
    let lo_cond = lo.map_or(String::new(), |lo| {
        format!("__out.window_start >= {} AND ", ts_literal(micros(lo)))
    });
    let sql = format!(
        "SELECT * FROM ({inner}) AS __out WHERE {lo_cond}__out.window_start <= {}",
        ts_literal(micros(hi))
    );
    r.engine
        .plan_bound(&sql, whole)
        .await
        .map_err(|e| sql_err(spec, e))
}

/// Runs a query of two columns (text, timestamp) over `bound`: the
/// timestamps as microseconds.
async fn rows_of(
    r: &Runner,
    sql: &str,
    bound: &BTreeMap<String, Bound>,
) -> Result<Vec<(String, i64)>, LakeError> {
    let spec = &r.spec;
    let answer = r
        .engine
        .plan_bound(sql, bound)
        .await
        .map_err(|e| sql_err(spec, e))?
        .collect(None)
        .await
        .map_err(|e| sql_err(spec, e))?;
    let mut out = Vec::new();
    for b in &answer.batches {
        let p = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)?;
        let p = p
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("cast to Utf8");
        let us =
            arrow::datatypes::DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None);
        let m = arrow::compute::cast(b.column(1), &us)?;
        let m = arrow::compute::cast(&m, &arrow::datatypes::DataType::Int64)?;
        let m = m
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("cast to Int64");
        for i in 0..b.num_rows() {
            if p.is_valid(i) && m.is_valid(i) {
                out.push((p.value(i).to_string(), m.value(i)));
            }
        }
    }
    Ok(out)
}

/// The output files holding windows in `[lo, hi]` (removed) and their
/// other rows, written again (added).
async fn replaced(
    r: &mut Runner,
    lo: Option<i64>,
    hi: i64,
) -> Result<(Vec<Add>, Vec<Remove>), LakeError> {
    let spec = r.spec.clone();
    let output = r.output.as_ref().expect("created").table().clone();
    let lo_t = lo.map(micros);
    let hi_t = micros(hi);
    let mut touched: Vec<Add> = Vec::new();
    let mut removes = Vec::new();
    for f in output.snapshot()?.log_data() {
        let range = f.stats().and_then(|s| {
            let v: serde_json::Value = serde_json::from_str(&s).ok()?;
            let get = |k: &str| {
                v.get(k)?
                    .get("window_start")?
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc))
            };
            Some((get("minValues")?, get("maxValues")?))
        });
        let overlaps = match range {
            Some((min, max)) => max >= lo_t.unwrap_or(min) && min <= hi_t,
            None => true,
        };
        if overlaps {
            #[allow(deprecated)]
            touched.push(f.add_action());
            removes.push(f.remove_action(true));
        }
    }
    if touched.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let lo_cond = lo_t.map_or(String::new(), |l| {
        format!("window_start >= {} AND ", ts_literal(l))
    });
    let sql = format!(
        "SELECT * FROM {} WHERE window_start IS NULL OR NOT ({lo_cond}window_start <= {})",
        quote_ident(&spec.table),
        ts_literal(hi_t)
    );
    let bound = BTreeMap::from([(
        spec.table.clone(),
        Bound::Files {
            table: output,
            files: touched,
        },
    )]);
    let query = r
        .engine
        .plan_bound(&sql, &bound)
        .await
        .map_err(|e| sql_err(&spec, e))?;
    let (kept, _) = r.write_answer(query).await?;
    Ok((kept, removes))
}
