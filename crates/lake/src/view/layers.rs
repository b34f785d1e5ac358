//! A project's views as SQL names: `batch.<view>`, `speed.<view>` and
//! `live.<view>` — each a query over bound tables that the engine plans as
//! a view, with a sentence saying what the answer is made of.
//!
//! - `batch`: the batch table's partials combined per group (one row per
//!   group already; combining turns averages back into averages).
//! - `speed`: the view's SQL over the source rows past the batch's mark.
//! - `live`: the batch's partials and the speed rows' partials stacked and
//!   combined per group; the source itself before the first refresh.

use std::collections::BTreeMap;
use std::sync::Arc;

use deltalake::DeltaTable;

use super::coverage::{Coverage, keyed_by_offset};
use super::spec::{LAYERS, Merge, ViewSpec};
use crate::LakeError;
use crate::sql::write::quote_ident;
use crate::sql::{Bound, LakeCatalog, Layer, Layers};
use crate::transform::changes::{Since, added_since, appended, commit_time};

/// The views of a project.
#[derive(Debug, Default)]
pub struct Views {
    views: BTreeMap<String, Arc<ViewSpec>>,
}

impl Views {
    /// The views, by name.
    pub fn new(specs: &[Arc<ViewSpec>]) -> Views {
        Views {
            views: specs.iter().map(|v| (v.name.clone(), v.clone())).collect(),
        }
    }

    /// The view of this name.
    pub fn get(&self, name: &str) -> Option<&Arc<ViewSpec>> {
        self.views.get(name)
    }
}

/// The tables a layer reads, opened once.
struct Opened {
    source: DeltaTable,
    batch: Option<(DeltaTable, Coverage)>,
}

async fn open(catalog: &LakeCatalog, spec: &ViewSpec) -> Result<Opened, LakeError> {
    let source = catalog.latest(&spec.source).await?.ok_or_else(|| {
        LakeError::Config(format!(
            "view {}: its source table {:?} does not exist yet",
            spec.name, spec.source
        ))
    })?;
    let batch = match catalog.latest(&spec.table).await? {
        Some(t) => {
            let txns = crate::table::all_txns(&t, t.version().unwrap_or(0)).await?;
            Coverage::read(&txns, &spec.name).map(|c| (t, c))
        }
        None => None,
    };
    Ok(Opened { source, batch })
}

/// The most source commits a query reads to find the files added since
/// the batch; past that (a stale batch) the speed rows are found by
/// scanning the whole source with the offset predicate instead.
const MOST_COMMITS_READ: u64 = 500;

/// The speed layer's rows, and whether batch + speed is the source.
struct Speed {
    /// The source rows past the batch's mark (all of them without a
    /// batch); `None` when they cannot be told apart (a derived source that
    /// removed rows after the batch).
    rows: Option<Bound>,
    /// Why the batch no longer merges: the source removed rows after it (a
    /// `DELETE`, an overwrite), so the batch counts rows the source no
    /// longer holds and only a recomputation is exact.
    stale: Option<String>,
}

async fn speed(spec: &ViewSpec, o: &Opened) -> Result<Speed, LakeError> {
    let source = || o.source.clone();
    let Some((_, coverage)) = &o.batch else {
        return Ok(Speed {
            rows: Some(Bound::Table(source())),
            stale: None,
        });
    };
    let keyed = keyed_by_offset(&o.source.snapshot()?.snapshot().arrow_schema());
    let to = o.source.version().unwrap_or(0);
    let since = added_since(
        &o.source,
        &spec.source,
        coverage.version,
        to,
        MOST_COMMITS_READ,
    )
    .await?;
    let stale = match since {
        Since::Rewritten(v) => Some(format!(
            "{}@{v} removed rows after the batch (refresh it)",
            spec.source
        )),
        _ => None,
    };
    let files = |files| Bound::Files {
        table: source(),
        files,
    };
    let filtered = |rows| Bound::Where {
        rows: Box::new(rows),
        predicate: coverage.speed_predicate(),
    };
    let rows = match (since, keyed) {
        // A stream table: a writer's appends after the batch hold only
        // offsets past the mark (each of its commits is fenced on the
        // offsets before it), so they need no test; a compaction's files
        // may also hold rows the batch has, so then the offsets decide row
        // by row, and over the whole table when the files are unknown.
        (
            Since::Files {
                files: f,
                rearranged: false,
            },
            true,
        ) => Some(files(f)),
        (Since::Files { files: f, .. }, true) => Some(filtered(files(f))),
        (_, true) => Some(filtered(Bound::Table(source()))),
        // A derived table's rows carry no mark of their own: the appends.
        (
            Since::Files {
                files: f,
                rearranged: false,
            },
            false,
        ) => Some(files(f)),
        (Since::Rewritten(_), false) => None,
        (_, false) => Some(files(
            appended(&o.source, &spec.source, coverage.version, to)
                .await?
                .files,
        )),
    };
    Ok(Speed { rows, stale })
}

/// `table vN (covers, refreshed at T)`.
async fn describe_batch(spec: &ViewSpec, t: &DeltaTable, c: &Coverage) -> String {
    let v = t.version().unwrap_or(0);
    let at = commit_time(t, v)
        .await
        .ok()
        .flatten()
        .map(|t| format!(", refreshed {}", t.format("%Y-%m-%dT%H:%M:%SZ")))
        .unwrap_or_default();
    format!("{} v{v} ({}{at})", spec.table, c.describe(&spec.source))
}

#[async_trait::async_trait]
impl Layers for Views {
    fn schemas(&self) -> &'static [&'static str] {
        &LAYERS
    }

    fn names(&self) -> Vec<String> {
        self.views.keys().cloned().collect()
    }

    async fn layer(
        &self,
        catalog: &LakeCatalog,
        schema: &str,
        name: &str,
    ) -> Result<Option<Layer>, LakeError> {
        let Some(spec) = self.views.get(name) else {
            return Ok(None);
        };
        let o = open(catalog, spec).await?;
        let source_at = format!("{}@{}", spec.source, o.source.version().unwrap_or(0));
        let whole = || BTreeMap::from([(spec.source.clone(), Bound::Table(o.source.clone()))]);
        let layer = match schema {
            "batch" => {
                let Some((t, c)) = &o.batch else {
                    return Err(no_batch(spec));
                };
                let table = quote_ident(&spec.table);
                Layer {
                    sql: match &spec.merge {
                        Merge::Exact(plan) => plan.combined_sql(&table),
                        Merge::Recompute => format!("SELECT * FROM {table}"),
                    },
                    bound: BTreeMap::from([(spec.table.clone(), Bound::Table(t.clone()))]),
                    made_of: format!("batch.{name} = {}", describe_batch(spec, t, c).await),
                }
            }
            "speed" => {
                let past = match &o.batch {
                    Some((_, c)) => format!("past {}", c.describe(&spec.source)),
                    None => "all of them: no batch yet".to_string(),
                };
                let speed = speed(spec, &o).await?;
                let Some(rows) = speed.rows else {
                    return Err(LakeError::Config(format!(
                        "view {name}: no speed rows: {}",
                        speed.stale.unwrap_or_default()
                    )));
                };
                Layer {
                    sql: spec.sql.clone(),
                    bound: BTreeMap::from([(spec.source.clone(), rows)]),
                    made_of: format!("speed.{name} = the view over the rows of {source_at} {past}"),
                }
            }
            _ => match (&spec.merge, &o.batch, speed(spec, &o).await?) {
                (
                    Merge::Exact(plan),
                    Some((t, c)),
                    Speed {
                        rows: Some(rows),
                        stale: None,
                    },
                ) => {
                    let batch = quote_ident(&spec.table);
                    let speed = format!("({}) AS speed", plan.partial_sql);
                    Layer {
                        sql: plan.combined_sql(&plan.stacked(&batch, &speed)),
                        bound: BTreeMap::from([
                            (spec.table.clone(), Bound::Table(t.clone())),
                            (spec.source.clone(), rows),
                        ]),
                        made_of: format!(
                            "live.{name} = batch {} + speed: the rows of {source_at} past that mark",
                            describe_batch(spec, t, c).await
                        ),
                    }
                }
                (Merge::Exact(_), Some(_), Speed { stale, .. }) => Layer {
                    sql: spec.sql.clone(),
                    bound: whole(),
                    made_of: format!(
                        "live.{name} = the view over all of {source_at} ({})",
                        stale.unwrap_or_default()
                    ),
                },
                (Merge::Exact(_), None, _) => Layer {
                    sql: spec.sql.clone(),
                    bound: whole(),
                    made_of: format!(
                        "live.{name} = the view over all of {source_at} (no batch yet: refresh it with `tributary view refresh {name}`)"
                    ),
                },
                (Merge::Recompute, _, _) => Layer {
                    sql: spec.sql.clone(),
                    bound: whole(),
                    made_of: format!(
                        "live.{name} = the view over all of {source_at} (merge = \"recompute\")"
                    ),
                },
            },
        };
        Ok(Some(layer))
    }
}

fn no_batch(spec: &ViewSpec) -> LakeError {
    LakeError::Config(format!(
        "view {}: no batch yet (table {:?}); refresh it with `tributary view refresh {}` or its lake_view task",
        spec.name, spec.table, spec.name
    ))
}
