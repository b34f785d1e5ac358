//! The transforms the streams page and `/api/v1/transforms` show: each
//! one's position read from the lake (source version, checkpoint, versions
//! behind, last commit, reference versions) and, when it runs in this
//! process, its live figures.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use lake::metrics::Metrics;
use lake::sql::LakeCatalog;
use lake::transform::{TransformSpec, TransformStatus};
use serde::Serialize;

/// Figures of a transform running in this process.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(crate) struct TransformLive {
    pub rows_in: u64,
    pub rows_out: u64,
    pub commits: u64,
    pub fenced: u64,
}

/// One transform as the page and the API show it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(crate) struct TransformInfo {
    #[serde(flatten)]
    pub status: TransformStatus,
    /// Every how many milliseconds it looks for new source versions.
    pub trigger_ms: u64,
    /// The SQL.
    pub sql: String,
    /// Figures of this process's run, if it runs here.
    pub live: Option<TransformLive>,
    /// Why its position could not be read.
    pub problem: Option<String>,
}

/// Every transform's position.
pub(crate) async fn all(
    specs: &[Arc<TransformSpec>],
    catalog: Option<&LakeCatalog>,
    metrics: Option<&Metrics>,
) -> Vec<TransformInfo> {
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        let read = match catalog {
            Some(c) => lake::transform::status(spec, c)
                .await
                .map_err(|e| e.to_string()),
            None => Err("the server has no lake".to_string()),
        };
        let (status, problem) = match read {
            Ok(s) => (s, None),
            Err(e) => (
                TransformStatus {
                    name: spec.name.clone(),
                    source: spec.source.clone(),
                    table: spec.table.clone(),
                    source_version: None,
                    checkpoint: None,
                    behind: None,
                    output_version: None,
                    last_commit: None,
                    references: Default::default(),
                },
                Some(e),
            ),
        };
        let live = metrics
            .and_then(|m| m.transforms().into_iter().find(|(n, _)| *n == spec.name))
            .map(|(_, m)| TransformLive {
                rows_in: m.rows_in.load(Ordering::Relaxed),
                rows_out: m.rows_out.load(Ordering::Relaxed),
                commits: m.commits.load(Ordering::Relaxed),
                fenced: m.fenced.load(Ordering::Relaxed),
            });
        out.push(TransformInfo {
            status,
            trigger_ms: spec.trigger.as_millis() as u64,
            sql: spec.sql.clone(),
            live,
            problem,
        });
    }
    out
}
