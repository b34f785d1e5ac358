//! Metrics of the stream writers and transforms of a process, rendered in
//! the Prometheus text format.
//!
//! One [`Metrics`] per process holds a [`StreamMetrics`] per stream and a
//! [`TransformMetrics`] per transform.
//!
//! - [`stream`]: a writer's counters, commit latency and partition lag;
//! - [`transform`]: a transform's rows, checkpoint lag and latency;
//! - [`histogram`]: the latency histogram and text-format helpers.

pub mod histogram;
pub mod stream;
pub mod transform;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub use stream::{PartitionFigures, StreamMetrics};
pub use transform::TransformMetrics;

/// Every stream's and transform's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    streams: Mutex<BTreeMap<String, Arc<StreamMetrics>>>,
    transforms: Mutex<BTreeMap<String, Arc<TransformMetrics>>>,
}

fn get_or_add<T: Default>(map: &Mutex<BTreeMap<String, Arc<T>>>, name: &str) -> Arc<T> {
    map.lock()
        .expect("metrics lock")
        .entry(name.to_string())
        .or_default()
        .clone()
}

fn all<T>(map: &Mutex<BTreeMap<String, Arc<T>>>) -> Vec<(String, Arc<T>)> {
    map.lock()
        .expect("metrics lock")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl Metrics {
    /// The metrics of a stream (created on first use).
    pub fn stream(&self, name: &str) -> Arc<StreamMetrics> {
        get_or_add(&self.streams, name)
    }

    /// Names and metrics of every stream.
    pub fn streams(&self) -> Vec<(String, Arc<StreamMetrics>)> {
        all(&self.streams)
    }

    /// The metrics of a transform (created on first use).
    pub fn transform(&self, name: &str) -> Arc<TransformMetrics> {
        get_or_add(&self.transforms, name)
    }

    /// Names and metrics of every transform.
    pub fn transforms(&self) -> Vec<(String, Arc<TransformMetrics>)> {
        all(&self.transforms)
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        let mut out = String::new();
        stream::render(&mut out, &self.streams());
        transform::render(&mut out, &self.transforms());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

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

    #[test]
    fn renders_transform_lag_and_latency() {
        let m = Metrics::default();
        let t = m.transform("enriched");
        t.source_version.store(12, Ordering::Relaxed);
        t.checkpoint_plus_one.store(10, Ordering::Relaxed);
        t.observe_latency(Duration::from_millis(700));
        t.last_version.store(8, Ordering::Relaxed);
        t.published_plus_one.store(6, Ordering::Relaxed);
        t.rows_published.store(40, Ordering::Relaxed);
        let text = m.render();
        assert!(
            text.contains("tributary_transform_sink_versions_behind{transform=\"enriched\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("tributary_transform_sink_rows_total{transform=\"enriched\"} 40"),
            "{text}"
        );
        assert!(
            text.contains("tributary_transform_source_versions_behind{transform=\"enriched\"} 3"),
            "{text}"
        );
        assert!(text.contains(
            "tributary_transform_commit_latency_seconds_bucket{transform=\"enriched\",le=\"1\"} 1"
        ));
        assert!(text.contains(
            "tributary_transform_commit_latency_seconds_bucket{transform=\"enriched\",le=\"0.5\"} 0"
        ));
    }
}
