//! Refreshing a batch view: the view's partial SQL over the source at its
//! latest version `V`, written over the batch table in one commit that
//! also records `V` and, for a stream table, the highest offset per
//! topic-partition `V` holds ([`Coverage`]). A reader sees the old batch
//! with its old mark or the new batch with its new one, never a mix, so
//! `live` stays exact while a refresh runs.

use std::collections::BTreeMap;
use std::time::Instant;

use arrow::array::Array;

use super::coverage::{Coverage, keyed_by_offset, offsets_sql};
use super::spec::ViewSpec;
use crate::sql::write::write;
use crate::sql::{Bound, SqlEngine, SqlError, SqlErrorKind, WriteMode, WriteSpec};

/// What a refresh did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Refreshed {
    /// The view.
    pub view: String,
    /// The batch table.
    pub table: String,
    /// The batch table's version after the refresh.
    pub version: u64,
    /// Groups (rows) in the batch.
    pub rows: u64,
    /// What the batch covers, said for a reader.
    pub covers: String,
    /// Milliseconds taken.
    pub elapsed_ms: u64,
}

/// Recomputes the batch table of `spec` from its source's latest version.
pub async fn refresh(engine: &SqlEngine, spec: &ViewSpec) -> Result<Refreshed, SqlError> {
    let started = Instant::now();
    let source = engine
        .catalog()
        .latest(&spec.source)
        .await
        .map_err(SqlError::lake)?
        .ok_or_else(|| {
            SqlError::new(
                SqlErrorKind::UnknownTable,
                format!(
                    "view {}: its source table {:?} does not exist yet",
                    spec.name, spec.source
                ),
            )
        })?;
    let version = source.version().unwrap_or(0);
    let schema = source
        .snapshot()
        .map_err(|e| SqlError::lake(e.into()))?
        .snapshot()
        .arrow_schema();
    let bound = BTreeMap::from([(spec.source.clone(), Bound::Table(source))]);
    let mut coverage = Coverage {
        version,
        offsets: BTreeMap::new(),
    };
    if keyed_by_offset(&schema) {
        let marks = engine
            .plan_bound(&offsets_sql(&spec.source), &bound)
            .await?
            .collect(None)
            .await?;
        for b in &marks.batches {
            let text = |c: usize, i: usize| {
                arrow::util::display::array_value_to_string(b.column(c), i).unwrap_or_default()
            };
            for i in 0..b.num_rows() {
                if b.column(1).is_null(i) || b.column(2).is_null(i) {
                    continue;
                }
                let (Ok(p), Ok(o)) = (text(1, i).parse(), text(2, i).parse()) else {
                    continue;
                };
                coverage.offsets.insert((text(0, i), p), o);
            }
        }
    }
    let query = engine.plan_bound(spec.batch_sql(), &bound).await?;
    let mut entries = coverage.entries(&spec.name);
    let txn = entries.remove(0);
    let report = write(
        engine.catalog(),
        query,
        &WriteSpec {
            table: spec.table.clone(),
            mode: WriteMode::Overwrite,
            partition_by: Vec::new(),
            txn,
            also: entries,
            once: false,
            parquet: None,
        },
    )
    .await?;
    Ok(Refreshed {
        view: spec.name.clone(),
        table: spec.table.clone(),
        version: report.version,
        rows: report.rows,
        covers: coverage.describe(&spec.source),
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}
