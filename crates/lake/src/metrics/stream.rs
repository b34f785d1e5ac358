//! A stream writer's metrics: counters are atomics; per-partition figures
//! (high watermark, committed offset) sit behind a mutex touched once per
//! commit or statistics tick.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::histogram::{
    Family, Histogram, escape, family, render_families, render_last_commit as render_last_commit_of,
};

/// Partition figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionFigures {
    /// High watermark the broker reported (next offset to be written).
    pub high_watermark: Option<i64>,
    /// Last offset durable in the table.
    pub committed: Option<i64>,
    /// Whether this process owns the partition now.
    pub assigned: bool,
}

impl PartitionFigures {
    /// Records not yet durable in the table.
    pub fn lag(&self) -> Option<i64> {
        let hw = self.high_watermark?;
        Some((hw - self.committed.map_or(0, |c| c + 1)).max(0))
    }
}

/// Metrics of one stream.
#[derive(Debug, Default)]
pub struct StreamMetrics {
    /// Records received from Kafka.
    pub records_in: AtomicU64,
    /// Rows committed to the table.
    pub records_written: AtomicU64,
    /// Records committed to the dead-letter table.
    pub records_rejected: AtomicU64,
    /// Table commits.
    pub commits: AtomicU64,
    /// Commits refused because another writer had moved the offsets.
    pub fenced: AtomicU64,
    /// Data files committed.
    pub files: AtomicU64,
    /// Bytes of data files committed.
    pub bytes: AtomicU64,
    /// Bytes buffered now.
    pub buffered_bytes: AtomicU64,
    /// Most bytes ever buffered at once.
    pub peak_buffered_bytes: AtomicU64,
    /// Unix time (ms) of the last commit.
    pub last_commit_ms: AtomicU64,
    /// Table version of the last commit.
    pub last_version: AtomicU64,
    latency: Histogram,
    partitions: Mutex<BTreeMap<(String, i32), PartitionFigures>>,
}

impl StreamMetrics {
    /// Records the bytes buffered now (and the peak).
    pub fn set_buffered(&self, bytes: u64) {
        self.buffered_bytes.store(bytes, Ordering::Relaxed);
        self.peak_buffered_bytes.fetch_max(bytes, Ordering::Relaxed);
    }

    /// Records one commit's latency.
    pub fn observe_commit(&self, took: Duration) {
        self.latency.observe(took);
    }

    /// Updates one partition's figures.
    pub fn partition(&self, topic: &str, partition: i32, f: impl FnOnce(&mut PartitionFigures)) {
        let mut map = self.partitions.lock().expect("metrics lock");
        f(map.entry((topic.to_string(), partition)).or_default());
    }

    /// A copy of every partition's figures.
    pub fn partitions(&self) -> BTreeMap<(String, i32), PartitionFigures> {
        self.partitions.lock().expect("metrics lock").clone()
    }
}

/// Renders every stream's metrics.
pub(super) fn render(out: &mut String, streams: &Streams) {
    render_counters(out, streams);
    render_last_commit(out, streams);
    render_commit_latency(out, streams);
    render_partitions(out, streams);
}

/// The per-stream counters and gauges that are one atomic each.
const COUNTERS: [Family<StreamMetrics>; 9] = [
    (
        "tributary_stream_records_in_total",
        "Records received from Kafka.",
        |m| m.records_in.load(Ordering::Relaxed),
    ),
    (
        "tributary_stream_records_written_total",
        "Rows committed to the table.",
        |m| m.records_written.load(Ordering::Relaxed),
    ),
    (
        "tributary_stream_records_rejected_total",
        "Records committed to the dead-letter table.",
        |m| m.records_rejected.load(Ordering::Relaxed),
    ),
    ("tributary_stream_commits_total", "Table commits.", |m| {
        m.commits.load(Ordering::Relaxed)
    }),
    (
        "tributary_stream_fenced_total",
        "Commits refused because another writer had moved the offsets.",
        |m| m.fenced.load(Ordering::Relaxed),
    ),
    (
        "tributary_stream_files_total",
        "Data files committed.",
        |m| m.files.load(Ordering::Relaxed),
    ),
    (
        "tributary_stream_bytes_total",
        "Bytes of data files committed.",
        |m| m.bytes.load(Ordering::Relaxed),
    ),
    (
        "tributary_stream_buffered_bytes",
        "Bytes buffered, not yet committed.",
        |m| m.buffered_bytes.load(Ordering::Relaxed),
    ),
    (
        "tributary_stream_peak_buffered_bytes",
        "Most bytes buffered at once.",
        |m| m.peak_buffered_bytes.load(Ordering::Relaxed),
    ),
];

type Streams = [(String, Arc<StreamMetrics>)];

fn render_counters(out: &mut String, streams: &Streams) {
    render_families(out, "stream", streams, &COUNTERS);
}

fn render_last_commit(out: &mut String, streams: &Streams) {
    render_last_commit_of(
        out,
        "tributary_stream_last_commit_timestamp_seconds",
        "stream",
        streams,
        |m| m.last_commit_ms.load(Ordering::Relaxed),
    );
}

fn render_commit_latency(out: &mut String, streams: &Streams) {
    let name = "tributary_stream_commit_latency_seconds";
    family(
        out,
        name,
        "Time to write the log entry of a commit.",
        "histogram",
    );
    for (s, m) in streams {
        m.latency
            .render(out, name, &format!("stream=\"{}\"", escape(s)));
    }
}

/// Lag and committed offset per topic partition, where known.
fn render_partitions(out: &mut String, streams: &Streams) {
    type PartitionGauge = fn(&PartitionFigures) -> Option<i64>;
    let gauges: [(&str, &str, PartitionGauge); 2] = [
        (
            "tributary_stream_partition_lag",
            "Records of the partition not yet durable in the table.",
            |f| f.lag(),
        ),
        (
            "tributary_stream_partition_committed_offset",
            "Last offset durable in the table.",
            |f| f.committed,
        ),
    ];
    for (name, help, get) in gauges {
        family(out, name, help, "gauge");
        for (s, m) in streams {
            for ((t, p), f) in m.partitions() {
                if let Some(v) = get(&f) {
                    let _ = writeln!(
                        out,
                        "{name}{{stream=\"{}\",topic=\"{}\",partition=\"{p}\"}} {v}",
                        escape(s),
                        escape(&t)
                    );
                }
            }
        }
    }
}
