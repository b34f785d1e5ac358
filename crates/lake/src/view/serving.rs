//! What a long-running engine (the web server, `standalone`) keeps of each
//! view between queries, so that `live` reads only what changed since the
//! last query:
//!
//! - the batch's mark, per batch-table version (read from its log once);
//! - the **speed rows' partial aggregates** up to a source version `to`.
//!   The next query at source version `to' > to` computes partials of the
//!   files versions `to + 1 ..= to'` added, and combines them with the
//!   kept ones (partials of partials: counts and sums add, minima and
//!   maxima compare), as long as those versions only appended. That
//!   equals the partials of every speed row at `to'`: the speed rows at
//!   `to'` are the speed rows at `to` and the rows the appends added,
//!   which for a stream table are all past the batch's mark (each writer
//!   commit is fenced on the offsets before it), and for a derived table
//!   are added after the batch's version by definition.
//!
//! Anything else — a new batch version, a compaction, a delete, a source
//! version that went back (a rolled-back generation) — drops the kept
//! partials and recomputes them from the batch's mark.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::coverage::Coverage;
use super::merge::MergePlan;
use super::spec::ViewSpec;
use super::speed::{Batch, MOST_COMMITS_READ, Opened, Speed, speed};
use crate::sql::write::quote_ident;
use crate::sql::{Bound, Rows, Run, SqlError};
use crate::transform::changes::{Since, added_since, file_rows};

/// Partials above this size are used for the query that made them but not
/// kept (a view with millions of groups).
const MOST_KEPT_BYTES: usize = 64 << 20;

/// The name the speed rows are bound to in the SQL combining partials.
const PARTIALS: &str = "speed_partials";

/// A view's kept state, by view name.
#[derive(Debug, Default)]
pub struct Serving {
    views: Mutex<HashMap<String, Kept>>,
}

#[derive(Debug, Default)]
struct Kept {
    /// Batch-table version → its mark and the sentence describing it.
    mark: Option<(u64, Coverage, String)>,
    partials: Option<Partials>,
}

/// The speed rows' partial aggregates.
#[derive(Debug, Clone)]
pub struct Partials {
    /// The batch-table version they complement.
    pub batch: u64,
    /// The source version they are up to.
    pub to: u64,
    /// The source version they were first computed at, from the batch's
    /// mark (`to` when no appends were folded in since).
    pub from_mark_at: u64,
    /// How many source rows they summarise, when the files say.
    pub rows: Option<u64>,
    /// One row per group, the plan's partial columns.
    pub partials: Rows,
}

impl Serving {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Kept>) -> T) -> T {
        f(&mut self.views.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The mark kept for this batch-table version.
    pub(super) fn mark(&self, view: &str, version: u64) -> Option<(Coverage, String)> {
        self.with(|m| {
            m.get(view)
                .and_then(|k| k.mark.as_ref())
                .filter(|(v, ..)| *v == version)
                .map(|(_, c, s)| (c.clone(), s.clone()))
        })
    }

    pub(super) fn keep_mark(&self, view: &str, version: u64, coverage: &Coverage, said: &str) {
        self.with(|m| {
            m.entry(view.to_string()).or_default().mark =
                Some((version, coverage.clone(), said.to_string()));
        })
    }

    fn partials(&self, view: &str) -> Option<Partials> {
        self.with(|m| m.get(view).and_then(|k| k.partials.clone()))
    }

    fn keep_partials(&self, view: &str, p: &Partials) {
        let keep = (p.partials.bytes() <= MOST_KEPT_BYTES).then(|| p.clone());
        self.with(|m| m.entry(view.to_string()).or_default().partials = keep);
    }

    /// The speed rows' partials at the source version `o` holds, from the
    /// kept ones when only appends came since; `Err` says why batch +
    /// speed is not the source (the source removed rows after the batch).
    pub(super) async fn speed_partials(
        &self,
        run: &dyn Run,
        spec: &ViewSpec,
        plan: &MergePlan,
        o: &Opened,
        batch: &Batch,
    ) -> Result<Result<Partials, String>, SqlError> {
        let to = o.source.version().unwrap_or(0);
        let kept = self
            .partials(&spec.name)
            .filter(|p| p.batch == batch.version() && p.to <= to);
        if let Some(p) = kept {
            if p.to == to {
                return Ok(Ok(p));
            }
            let since = added_since(&o.source, &spec.source, p.to, to, MOST_COMMITS_READ)
                .await
                .map_err(SqlError::lake)?;
            if let Since::Files {
                files,
                rearranged: false,
            } = since
            {
                let added: u64 = files.iter().map(file_rows).sum();
                let partials = if files.is_empty() {
                    p.partials
                } else {
                    let rows = Bound::Files {
                        table: o.source.clone(),
                        files,
                    };
                    let new = partial_rows(run, spec, plan, rows).await?;
                    combined(run, plan, p.partials, new).await?
                };
                let next = Partials {
                    batch: p.batch,
                    to,
                    from_mark_at: p.from_mark_at,
                    rows: p.rows.map(|r| r + added),
                    partials,
                };
                self.keep_partials(&spec.name, &next);
                return Ok(Ok(next));
            }
        }
        let Speed { rows, stale } = speed(spec, o).await.map_err(SqlError::lake)?;
        let (Some(rows), None) = (rows, stale.clone()) else {
            return Ok(Err(stale.unwrap_or_default()));
        };
        let counted = match &rows {
            Bound::Files { files, .. } => Some(files.iter().map(file_rows).sum()),
            _ => None,
        };
        let next = Partials {
            batch: batch.version(),
            to,
            from_mark_at: to,
            rows: counted,
            partials: partial_rows(run, spec, plan, rows).await?,
        };
        self.keep_partials(&spec.name, &next);
        Ok(Ok(next))
    }
}

impl Partials {
    /// The SQL name and binding of the partials in a layer's query.
    pub(super) fn bound(&self) -> (String, Bound) {
        (PARTIALS.to_string(), Bound::Rows(self.partials.clone()))
    }

    /// What the speed layer is made of, for the reader of an answer.
    pub(super) fn describe(&self, source: &str) -> String {
        let rows = self
            .rows
            .map(|r| format!("the {r} rows"))
            .unwrap_or_else(|| "the rows".to_string());
        let kept = if self.from_mark_at < self.to {
            format!(
                "; partials kept from {source}@{} and the appends since",
                self.from_mark_at
            )
        } else {
            String::new()
        };
        format!(
            "{rows} of {source}@{} past that mark ({} groups{kept})",
            self.to,
            self.partials.len()
        )
    }
}

/// The plan's partial columns over `rows` (bound as the view's source).
async fn partial_rows(
    run: &dyn Run,
    spec: &ViewSpec,
    plan: &MergePlan,
    rows: Bound,
) -> Result<Rows, SqlError> {
    let bound = BTreeMap::from([(spec.source.clone(), rows)]);
    run.rows(&plan.partial_sql, &bound).await
}

/// Two sets of partials made one (one row per group). The two are
/// stacked with SQL's `UNION ALL`, which reconciles their types (a sum of
/// sums may be wider than the sum it adds to).
async fn combined(
    run: &dyn Run,
    plan: &MergePlan,
    kept: Rows,
    new: Rows,
) -> Result<Rows, SqlError> {
    let (a, b) = ("kept_partials", "new_partials");
    let bound = BTreeMap::from([
        (a.to_string(), Bound::Rows(kept)),
        (b.to_string(), Bound::Rows(new)),
    ]);
    let sql = plan.partials_combined_sql(&plan.stacked(&quote_ident(a), &quote_ident(b)));
    run.rows(&sql, &bound).await
}

/// The SQL name speed partials are bound to, quoted.
pub(super) fn partials_name() -> String {
    quote_ident(PARTIALS)
}
