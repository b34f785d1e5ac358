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

use super::coverage::Coverage;
use super::serving::{Serving, partials_name};
use super::spec::{LAYERS, Merge, ViewSpec};
use super::speed::{Batch, Opened, speed};
use crate::LakeError;
use crate::sql::write::quote_ident;
use crate::sql::{Bound, LakeCatalog, Layer, Layers, Run, SqlError};
use crate::transform::changes::commit_time;
use deltalake::DeltaTable;

/// The views of a project, and what a long-running engine keeps of them
/// between queries ([`Serving`]).
#[derive(Debug, Default)]
pub struct Views {
    views: BTreeMap<String, Arc<ViewSpec>>,
    serving: Serving,
}

impl Views {
    /// The views, by name.
    pub fn new(specs: &[Arc<ViewSpec>]) -> Views {
        Views {
            views: specs.iter().map(|v| (v.name.clone(), v.clone())).collect(),
            serving: Serving::default(),
        }
    }

    /// The view of this name.
    pub fn get(&self, name: &str) -> Option<&Arc<ViewSpec>> {
        self.views.get(name)
    }
}

/// Opens the view's source and batch table at their latest versions.
async fn open(
    catalog: &LakeCatalog,
    spec: &ViewSpec,
    serving: &Serving,
) -> Result<Opened, LakeError> {
    let source = catalog.latest(&spec.source).await?.ok_or_else(|| {
        LakeError::Config(format!(
            "view {}: its source table {:?} does not exist yet",
            spec.name, spec.source
        ))
    })?;
    let batch = match catalog.latest(&spec.table).await? {
        Some(table) => batch(spec, table, serving).await?,
        None => None,
    };
    Ok(Opened { source, batch })
}

/// The batch table with its mark, read from its log once per batch
/// version (`serving` keeps it); `None` before its first refresh.
async fn batch(
    spec: &ViewSpec,
    table: DeltaTable,
    serving: &Serving,
) -> Result<Option<Batch>, LakeError> {
    let version = table.version().unwrap_or(0);
    let (coverage, said) = match serving.mark(&spec.name, version) {
        Some(kept) => kept,
        None => {
            let txns = crate::table::all_txns(&table, version).await?;
            let Some(coverage) = Coverage::read(&txns, &spec.name) else {
                return Ok(None);
            };
            let said = describe_batch(spec, &table, &coverage).await;
            serving.keep_mark(&spec.name, version, &coverage, &said);
            (coverage, said)
        }
    };
    Ok(Some(Batch {
        table,
        coverage,
        said,
    }))
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
        run: &dyn Run,
        schema: &str,
        name: &str,
    ) -> Result<Option<Layer>, SqlError> {
        let Some(spec) = self.views.get(name) else {
            return Ok(None);
        };
        let o = open(run.catalog(), spec, &self.serving)
            .await
            .map_err(SqlError::lake)?;
        let source_at = format!("{}@{}", spec.source, o.source.version().unwrap_or(0));
        let whole = |why: &str| Layer {
            sql: spec.sql.clone(),
            bound: BTreeMap::from([(spec.source.clone(), Bound::Table(o.source.clone()))]),
            made_of: format!("live.{name} = the view over all of {source_at} ({why})"),
            read: BTreeMap::new(),
        };
        let layer = match (schema, &spec.merge, &o.batch) {
            ("batch", _, None) => return Err(no_batch(spec)),
            ("batch", merge, Some(b)) => {
                let table = quote_ident(&spec.table);
                Layer {
                    sql: match merge {
                        Merge::Exact(plan) => plan.combined_sql(&table),
                        Merge::Recompute => format!("SELECT * FROM {table}"),
                    },
                    bound: BTreeMap::from([(spec.table.clone(), Bound::Table(b.table.clone()))]),
                    made_of: format!("batch.{name} = {}", b.said),
                    read: BTreeMap::new(),
                }
            }
            ("speed", ..) => {
                let past = match &o.batch {
                    Some(b) => format!("past {}", b.coverage.describe(&spec.source)),
                    None => "all of them: no batch yet".to_string(),
                };
                let speed = speed(spec, &o).await.map_err(SqlError::lake)?;
                let Some(rows) = speed.rows else {
                    return Err(SqlError::lake(LakeError::Config(format!(
                        "view {name}: no speed rows: {}",
                        speed.stale.unwrap_or_default()
                    ))));
                };
                Layer {
                    sql: spec.sql.clone(),
                    bound: BTreeMap::from([(spec.source.clone(), rows)]),
                    made_of: format!("speed.{name} = the view over the rows of {source_at} {past}"),
                    read: BTreeMap::new(),
                }
            }
            (_, Merge::Exact(plan), Some(b)) => {
                match self.serving.speed_partials(run, spec, plan, &o, b).await? {
                    Ok(partials) => Layer {
                        sql: plan.combined_sql(
                            &plan.stacked(&quote_ident(&spec.table), &partials_name()),
                        ),
                        bound: BTreeMap::from([
                            (spec.table.clone(), Bound::Table(b.table.clone())),
                            partials.bound(),
                        ]),
                        made_of: format!(
                            "live.{name} = batch {} + speed: {}",
                            b.said,
                            partials.describe(&spec.source)
                        ),
                        read: BTreeMap::from([(spec.source.clone(), partials.to)]),
                    },
                    Err(stale) => whole(&stale),
                }
            }
            (_, Merge::Exact(_), None) => whole(&format!(
                "no batch yet: refresh it with `tributary view refresh {name}`"
            )),
            (_, Merge::Recompute, _) => whole("merge = \"recompute\""),
        };
        Ok(Some(layer))
    }
}

fn no_batch(spec: &ViewSpec) -> SqlError {
    SqlError::lake(LakeError::Config(format!(
        "view {}: no batch yet (table {:?}); refresh it with `tributary view refresh {}` or its lake_view task",
        spec.name, spec.table, spec.name
    )))
}
