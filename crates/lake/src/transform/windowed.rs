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
use super::checkpoint::{late_app_id, parse_app_id, state_app_id};
use super::plan::check_plan;
use super::runner::{Change, Position, Runner, Step, references, sql_err};
use super::spec::{Emit, WindowSpec};
use super::window::{rewrite, ts_literal};
use crate::LakeError;
use crate::sql::write::quote_ident;
use crate::sql::{Bound, SqlErrorKind};

/// Per source partition: latest event time (µs) and when it last had rows
/// (source commit ms); and the watermark so far (µs).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Watermarks {
    parts: BTreeMap<String, (i64, i64)>,
    watermark: Option<i64>,
}

impl Watermarks {
    fn read(txns: &std::collections::HashMap<String, i64>, name: &str) -> Watermarks {
        let mut w = Watermarks::default();
        for (id, v) in txns {
            match parse_app_id(id) {
                Some((n, "wm", p)) if n == name => w.parts.entry(p.to_string()).or_default().0 = *v,
                Some((n, "seen", p)) if n == name => {
                    w.parts.entry(p.to_string()).or_default().1 = *v
                }
                Some((n, "watermark", _)) if n == name => w.watermark = Some(*v),
                _ => {}
            }
        }
        w
    }

    /// The watermark at source commit time `now_ms` (µs), never below the
    /// last one.
    fn at(&self, now_ms: i64, spec: &WindowSpec) -> Option<i64> {
        let idle_ms = spec.idle_timeout.as_millis() as i64;
        let active: Vec<i64> = self
            .parts
            .values()
            .filter(|(_, seen)| now_ms - seen <= idle_ms)
            .map(|(max, _)| *max)
            .collect();
        let least = if active.is_empty() {
            self.parts.values().map(|(max, _)| *max).max()
        } else {
            active.into_iter().min()
        };
        let computed = least.map(|l| l - spec.delay.as_micros() as i64);
        match (computed, self.watermark) {
            (Some(c), Some(w)) => Some(c.max(w)),
            (c, w) => c.or(w),
        }
    }

    fn observe(&mut self, maxima: &BTreeMap<String, i64>, now_ms: i64) {
        for (p, m) in maxima {
            let e = self.parts.entry(p.clone()).or_insert((*m, now_ms));
            e.0 = e.0.max(*m);
            e.1 = now_ms;
        }
    }

    fn entries(&self, name: &str) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for (p, (max, seen)) in &self.parts {
            out.push((state_app_id(name, "wm", p), *max));
            out.push((state_app_id(name, "seen", p), *seen));
        }
        if let Some(w) = self.watermark {
            out.push((state_app_id(name, "watermark", "all"), w));
        }
        out
    }
}

fn micros(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t).unwrap_or_default()
}

/// The first window start (a multiple of the slide) whose window is still
/// open at watermark `w`: `start + size + lateness > w`.
fn first_open(w: i64, spec: &WindowSpec) -> i64 {
    let slide = spec.window.slide.as_micros() as i64;
    let reach = (spec.window.size + spec.allowed_lateness).as_micros() as i64;
    (w - reach).div_euclid(slide) * slide + slide
}

/// The last window start whose window the watermark `w` has passed.
fn last_closed(w: i64, spec: &WindowSpec) -> i64 {
    first_open(w, spec) - spec.window.slide.as_micros() as i64
}

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

    // The output table exists before anything is written to it.
    let probe = match r.engine.plan_bound(&spec.planned_sql(), &whole).await {
        Ok(q) => q,
        Err(e) if e.kind == SqlErrorKind::UnknownTable => {
            return Ok(Step::Waiting(format!(
                "transform {}: {}",
                spec.name, e.message
            )));
        }
        Err(e) => return Err(sql_err(&spec, e)),
    };
    check_plan(probe.logical_plan(), true).map_err(|e| sql_err(&spec, e))?;
    r.output_table(&probe.schema()).await?;
    let mut references = references(&probe, &spec.source);

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

    // Late rows, to the late table (idempotent per source version).
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
    let mark = before.map_or("NULL".to_string(), |b| ts_literal(micros(b)));
    let late_sql = format!("SELECT *, CAST({mark} AS VARCHAR) AS _watermark FROM {t} WHERE {late}");
    let late_rows = r
        .engine
        .plan_bound(&late_sql, &new_rows())
        .await
        .map_err(|e| sql_err(&spec, e))?
        .collect(None)
        .await
        .map_err(|e| sql_err(&spec, e))?;
    if late_rows.rows > 0 {
        crate::sql::write::append_batches(
            r.engine.catalog(),
            &w.late_table,
            late_rows.batches,
            &[],
            (&late_app_id(&spec.name), to as i64),
        )
        .await
        .map_err(|e| sql_err(&spec, e))?;
    }

    // The windows this version writes: [lo, hi] of window starts.
    let range = match w.emit {
        Emit::Update => {
            let touched = rows_of(
                r,
                &format!(
                    "SELECT 'all' AS p, min({bin}) AS m FROM {t} WHERE NOT ({late}) \
                     UNION ALL SELECT 'max' AS p, max({bin}) AS m FROM {t} WHERE NOT ({late})"
                ),
                &new_rows(),
            )
            .await?;
            let get = |k: &str| touched.iter().find(|(p, _)| p == k).map(|(_, m)| *m);
            match (get("all"), get("max")) {
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
    };
    let (mut adds, mut removes, mut rows_out): (Vec<Add>, Vec<Remove>, u64) =
        (Vec::new(), Vec::new(), 0);
    if let Some((lo, hi)) = range {
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
        let query = r
            .engine
            .plan_bound(&sql, &whole)
            .await
            .map_err(|e| sql_err(&spec, e))?;
        references = references_union(references, &query, &spec.source);
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

fn references_union(
    mut a: BTreeMap<String, u64>,
    q: &crate::sql::Query,
    source: &str,
) -> BTreeMap<String, u64> {
    a.extend(references(q, source));
    a
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::transform::window::find;

    fn spec(sql: &str, lateness: u64) -> WindowSpec {
        WindowSpec {
            window: find(sql).unwrap().unwrap(),
            delay: Duration::from_secs(10),
            emit: Emit::Update,
            allowed_lateness: Duration::from_secs(lateness),
            idle_timeout: Duration::from_secs(60),
            late_table: "late".into(),
        }
    }

    #[test]
    fn the_watermark_trails_the_slowest_active_partition_and_never_goes_back() {
        let w = spec("SELECT * FROM TUMBLE(t, at, INTERVAL '1 minute')", 0);
        let mut m = Watermarks::default();
        let s = 1_000_000i64;
        m.observe(
            &BTreeMap::from([("0".into(), 100 * s), ("1".into(), 50 * s)]),
            1_000,
        );
        assert_eq!(m.at(1_000, &w), Some(40 * s));
        m.watermark = m.at(1_000, &w);
        // Partition 1 idle for over a minute: no longer holds it back.
        m.observe(&BTreeMap::from([("0".into(), 200 * s)]), 70_000);
        assert_eq!(m.at(70_000, &w), Some(190 * s));
        m.watermark = Some(190 * s);
        // It wakes up far behind: the watermark stays.
        m.observe(&BTreeMap::from([("1".into(), 60 * s)]), 71_000);
        assert_eq!(m.at(71_000, &w), Some(190 * s));
        let back = Watermarks::read(&m.entries("x").into_iter().collect(), "x");
        assert_eq!(back, m);
    }

    #[test]
    fn open_and_closed_windows_follow_size_slide_and_lateness() {
        let w = spec(
            "SELECT * FROM HOP(t, at, INTERVAL '1 minute', INTERVAL '3 minutes')",
            60,
        );
        let min = 60_000_000i64;
        // At 10:00 (600 min), windows ending after 9:59 are open: start > 9:56.
        assert_eq!(first_open(600 * min, &w), 597 * min);
        assert_eq!(last_closed(600 * min, &w), 596 * min);
    }
}
