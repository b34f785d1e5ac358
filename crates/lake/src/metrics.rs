//! Stream writer metrics, rendered in the Prometheus text format.
//!
//! One [`Metrics`] per process holds a [`StreamMetrics`] per stream.
//! Counters are atomics; per-partition figures (high watermark, committed
//! offset) sit behind a mutex touched once per commit or statistics tick.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Commit latency histogram bounds, seconds.
const LATENCY_BOUNDS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

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
    latency_buckets: [AtomicU64; LATENCY_BOUNDS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
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
        let s = took.as_secs_f64();
        for (i, b) in LATENCY_BOUNDS.iter().enumerate() {
            if s <= *b {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
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

/// All streams' metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    streams: Mutex<BTreeMap<String, Arc<StreamMetrics>>>,
}

type Getter = fn(&StreamMetrics) -> u64;

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// The metrics of a stream (created on first use).
    pub fn stream(&self, name: &str) -> Arc<StreamMetrics> {
        self.streams
            .lock()
            .expect("metrics lock")
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// Names and metrics of every stream.
    pub fn streams(&self) -> Vec<(String, Arc<StreamMetrics>)> {
        self.streams
            .lock()
            .expect("metrics lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        let streams = self.streams();
        let mut out = String::new();
        render_counters(&mut out, &streams);
        render_last_commit(&mut out, &streams);
        render_commit_latency(&mut out, &streams);
        render_partitions(&mut out, &streams);
        out
    }
}

/// The per-stream counters and gauges that are one atomic each.
const COUNTERS: [(&str, &str, Getter); 9] = [
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

/// The `# HELP` and `# TYPE` lines of one metric family.
fn family(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn render_counters(out: &mut String, streams: &Streams) {
    for (name, help, get) in COUNTERS {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        family(out, name, help, kind);
        for (s, m) in streams {
            let _ = writeln!(out, "{name}{{stream=\"{}\"}} {}", escape(s), get(m));
        }
    }
}

fn render_last_commit(out: &mut String, streams: &Streams) {
    let name = "tributary_stream_last_commit_timestamp_seconds";
    family(out, name, "Time of the last commit.", "gauge");
    for (s, m) in streams {
        let ms = m.last_commit_ms.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}{{stream=\"{}\"}} {}",
            escape(s),
            ms as f64 / 1000.0
        );
    }
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
        let s = escape(s);
        for (i, b) in LATENCY_BOUNDS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{stream=\"{s}\",le=\"{b}\"}} {}",
                m.latency_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = m.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{stream=\"{s}\",le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum{{stream=\"{s}\"}} {}",
            m.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{{stream=\"{s}\"}} {count}");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_lag() {
        let m = Metrics::default();
        let s = m.stream("us\"ers");
        s.records_in.fetch_add(10, Ordering::Relaxed);
        s.observe_commit(Duration::from_millis(30));
        s.partition("users", 2, |f| {
            f.high_watermark = Some(100);
            f.committed = Some(89);
        });
        let text = m.render();
        assert!(
            text.contains("tributary_stream_records_in_total{stream=\"us\\\"ers\"} 10"),
            "{text}"
        );
        assert!(text.contains(
            "tributary_stream_commit_latency_seconds_bucket{stream=\"us\\\"ers\",le=\"0.025\"} 0"
        ));
        assert!(text.contains(
            "tributary_stream_commit_latency_seconds_bucket{stream=\"us\\\"ers\",le=\"0.05\"} 1"
        ));
        assert!(text.contains("tributary_stream_partition_lag{stream=\"us\\\"ers\",topic=\"users\",partition=\"2\"} 10"));
        assert_eq!(
            PartitionFigures {
                high_watermark: Some(5),
                committed: None,
                assigned: true
            }
            .lag(),
            Some(5)
        );
    }
}
