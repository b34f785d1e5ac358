//! Where a transform stands, read from the lake alone (no running process
//! needed): the source's latest version, the checkpoint its output holds,
//! the reference versions its last commit read, and when that was.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::checkpoint::parse_app_id;
use super::spec::TransformSpec;
use crate::LakeError;
use crate::sql::LakeCatalog;

/// A transform's position, as `transform list` and the UI show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct TransformStatus {
    /// Transform name.
    pub name: String,
    /// Source table.
    pub source: String,
    /// Output table.
    pub table: String,
    /// The source's latest version (none: no source table yet).
    pub source_version: Option<u64>,
    /// The last source version the output holds (none: nothing yet).
    pub checkpoint: Option<u64>,
    /// Source versions not yet carried into the output.
    pub behind: Option<u64>,
    /// The output table's version.
    pub output_version: Option<u64>,
    /// When the output was last committed.
    pub last_commit: Option<DateTime<Utc>>,
    /// The version of each reference table the last commit read.
    pub references: BTreeMap<String, u64>,
}

/// Reads a transform's position from its source and output tables.
pub async fn status(
    spec: &TransformSpec,
    catalog: &LakeCatalog,
) -> Result<TransformStatus, LakeError> {
    let source_version = match catalog.location(&spec.source).open(&spec.source).await? {
        Some(t) => t.version(),
        None => None,
    };
    let mut out = TransformStatus {
        name: spec.name.clone(),
        source: spec.source.clone(),
        table: spec.table.clone(),
        source_version,
        checkpoint: None,
        behind: source_version.map(|v| v + 1),
        output_version: None,
        last_commit: None,
        references: BTreeMap::new(),
    };
    let Some(t) = catalog.location(&spec.table).open(&spec.table).await? else {
        return Ok(out);
    };
    let version = t.version().unwrap_or(0);
    out.output_version = Some(version);
    for (id, v) in crate::table::all_txns(&t, version).await? {
        match parse_app_id(&id) {
            Some((name, "source", table)) if name == spec.name && table == spec.source => {
                out.checkpoint = u64::try_from(v).ok();
            }
            Some((name, "ref", table)) if name == spec.name => {
                out.references.insert(table.to_string(), v.max(0) as u64);
            }
            _ => {}
        }
    }
    out.behind = match (source_version, out.checkpoint) {
        (Some(s), Some(c)) => Some(s.saturating_sub(c)),
        (Some(s), None) => Some(s + 1),
        (None, _) => None,
    };
    let mut history = t.history(Some(1));
    if let Some(Ok(info)) = history.next().await {
        out.last_commit = info.timestamp.and_then(DateTime::from_timestamp_millis);
    }
    Ok(out)
}
