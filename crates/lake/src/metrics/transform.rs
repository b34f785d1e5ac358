//! A continuous transform's metrics: how far behind its source it is (in
//! source versions), rows in and out, and the time from a source commit to
//! the transform commit that carries it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::histogram::{Family, Histogram, escape, family, render_families, render_last_commit};

/// Metrics of one transform.
#[derive(Debug, Default)]
pub struct TransformMetrics {
    /// Source rows read (from the files the source commits added).
    pub rows_in: AtomicU64,
    /// Rows committed to the output table.
    pub rows_out: AtomicU64,
    /// Commits of the output table.
    pub commits: AtomicU64,
    /// Commits refused because another run had moved the checkpoint.
    pub fenced: AtomicU64,
    /// The source's latest version, as last seen.
    pub source_version: AtomicU64,
    /// The last source version the output holds (+1; 0 = none yet).
    pub checkpoint_plus_one: AtomicU64,
    /// Unix time (ms) of the last commit.
    pub last_commit_ms: AtomicU64,
    /// Output table version of the last commit.
    pub last_version: AtomicU64,
    /// Rows the sink published to its Kafka topic.
    pub rows_published: AtomicU64,
    /// The last output version the sink published (+1; 0 = none yet).
    pub published_plus_one: AtomicU64,
    latency: Histogram,
}

impl TransformMetrics {
    /// Records the time from a source commit to the transform's commit of it.
    pub fn observe_latency(&self, took: Duration) {
        self.latency.observe(took);
    }

    /// Source versions not yet carried into the output.
    pub fn lag_versions(&self) -> u64 {
        let source = self.source_version.load(Ordering::Relaxed);
        match self.checkpoint_plus_one.load(Ordering::Relaxed) {
            0 => source + 1,
            c => source.saturating_sub(c - 1),
        }
    }
}

type Transforms = [(String, Arc<TransformMetrics>)];
const FAMILIES: [Family<TransformMetrics>; 9] = [
    (
        "tributary_transform_rows_in_total",
        "Source rows read.",
        |m| m.rows_in.load(Ordering::Relaxed),
    ),
    (
        "tributary_transform_rows_out_total",
        "Rows committed to the output table.",
        |m| m.rows_out.load(Ordering::Relaxed),
    ),
    (
        "tributary_transform_commits_total",
        "Output table commits.",
        |m| m.commits.load(Ordering::Relaxed),
    ),
    (
        "tributary_transform_fenced_total",
        "Commits refused because another run had moved the checkpoint.",
        |m| m.fenced.load(Ordering::Relaxed),
    ),
    (
        "tributary_transform_source_versions_behind",
        "Source versions not yet carried into the output.",
        TransformMetrics::lag_versions,
    ),
    (
        "tributary_transform_source_version",
        "The source table's latest version, as last seen.",
        |m| m.source_version.load(Ordering::Relaxed),
    ),
    (
        "tributary_transform_output_version",
        "Output table version of the last commit.",
        |m| m.last_version.load(Ordering::Relaxed),
    ),
    (
        "tributary_transform_sink_rows_total",
        "Rows the sink published to its Kafka topic.",
        |m| m.rows_published.load(Ordering::Relaxed),
    ),
    (
        "tributary_transform_sink_versions_behind",
        "Output versions the sink has not published yet.",
        |m| match m.published_plus_one.load(Ordering::Relaxed) {
            0 => 0,
            p => m.last_version.load(Ordering::Relaxed).saturating_sub(p - 1),
        },
    ),
];

/// Renders every transform's metrics.
pub(super) fn render(out: &mut String, transforms: &Transforms) {
    if transforms.is_empty() {
        return;
    }
    render_families(out, "transform", transforms, &FAMILIES);
    render_last_commit(
        out,
        "tributary_transform_last_commit_timestamp_seconds",
        "transform",
        transforms,
        |m| m.last_commit_ms.load(Ordering::Relaxed),
    );
    let name = "tributary_transform_commit_latency_seconds";
    family(
        out,
        name,
        "Time from a source commit to the transform commit that carries it.",
        "histogram",
    );
    for (t, m) in transforms {
        m.latency
            .render(out, name, &format!("transform=\"{}\"", escape(t)));
    }
}
