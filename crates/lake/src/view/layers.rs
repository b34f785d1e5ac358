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
use crate::transform::changes::{appended, commit_time};

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

/// The source rows past the batch's mark (all of them without a batch).
async fn speed_rows(spec: &ViewSpec, o: &Opened) -> Result<Bound, LakeError> {
    let Some((_, coverage)) = &o.batch else {
        return Ok(Bound::Table(o.source.clone()));
    };
    let schema = o.source.snapshot()?.snapshot().arrow_schema();
    if keyed_by_offset(&schema) {
        return Ok(Bound::Where {
            table: o.source.clone(),
            predicate: coverage.speed_predicate(),
        });
    }
    let to = o.source.version().unwrap_or(0);
    let added = appended(&o.source, &spec.source, coverage.version, to).await?;
    Ok(Bound::Files {
        table: o.source.clone(),
        files: added.files,
    })
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
                Layer {
                    sql: spec.sql.clone(),
                    bound: BTreeMap::from([(spec.source.clone(), speed_rows(spec, &o).await?)]),
                    made_of: format!("speed.{name} = the view over the rows of {source_at} {past}"),
                }
            }
            _ => match (&spec.merge, &o.batch) {
                (Merge::Exact(plan), Some((t, c))) => {
                    let batch = quote_ident(&spec.table);
                    let speed = format!("({}) AS speed", plan.partial_sql);
                    Layer {
                        sql: plan.combined_sql(&plan.stacked(&batch, &speed)),
                        bound: BTreeMap::from([
                            (spec.table.clone(), Bound::Table(t.clone())),
                            (spec.source.clone(), speed_rows(spec, &o).await?),
                        ]),
                        made_of: format!(
                            "live.{name} = batch {} + speed: the rows of {source_at} past that mark",
                            describe_batch(spec, t, c).await
                        ),
                    }
                }
                (Merge::Exact(_), None) => Layer {
                    sql: spec.sql.clone(),
                    bound: whole(),
                    made_of: format!(
                        "live.{name} = the view over all of {source_at} (no batch yet: refresh it with `tributary view refresh {name}`)"
                    ),
                },
                (Merge::Recompute, _) => Layer {
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
