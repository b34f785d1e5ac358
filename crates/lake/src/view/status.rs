//! Where a view stands, read from the lake: its batch table's version and
//! what it covers, against the source's latest version.

use super::coverage::Coverage;
use super::spec::{Merge, ViewSpec};
use crate::LakeError;
use crate::sql::LakeCatalog;

/// A view's state.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ViewStatus {
    /// The view.
    pub name: String,
    /// Its source table.
    pub source: String,
    /// Its batch table.
    pub table: String,
    /// `exact` or `recompute`.
    pub merge: &'static str,
    /// The source's latest version (None: no table yet).
    pub source_version: Option<u64>,
    /// The batch table's version (None: never refreshed).
    pub batch_version: Option<u64>,
    /// The source version the batch was computed at.
    pub batch_covers_version: Option<u64>,
    /// What the batch covers, said for a reader.
    pub covers: Option<String>,
}

/// Reads a view's state.
pub async fn status(spec: &ViewSpec, catalog: &LakeCatalog) -> Result<ViewStatus, LakeError> {
    let source_version = catalog
        .latest(&spec.source)
        .await?
        .map(|t| t.version().unwrap_or(0));
    let (mut batch_version, mut coverage) = (None, None);
    if let Some(t) = catalog.latest(&spec.table).await? {
        let v = t.version().unwrap_or(0);
        batch_version = Some(v);
        coverage = Coverage::read(&crate::table::all_txns(&t, v).await?, &spec.name);
    }
    Ok(ViewStatus {
        name: spec.name.clone(),
        source: spec.source.clone(),
        table: spec.table.clone(),
        merge: match spec.merge {
            Merge::Exact(_) => "exact",
            Merge::Recompute => "recompute",
        },
        source_version,
        batch_version,
        batch_covers_version: coverage.as_ref().map(|c| c.version),
        covers: coverage.map(|c| c.describe(&spec.source)),
    })
}
