//! What every metric family shares: a latency histogram of atomics, the
//! `# HELP` / `# TYPE` lines, label escaping, and families of one number
//! per labelled item.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latency histogram bounds, seconds.
const BOUNDS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A Prometheus histogram of durations (cumulative buckets).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, took: Duration) {
        let s = took.as_secs_f64();
        for (i, b) in BOUNDS.iter().enumerate() {
            if s <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The `_bucket`, `_sum` and `_count` lines of family `name`, with
    /// `labels` (already escaped, `k="v"` pairs).
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (i, b) in BOUNDS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"{b}\"}} {}",
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum{{{labels}}} {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// The `# HELP` and `# TYPE` lines of one metric family.
pub fn family(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value escaped for the text format.
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A family of one number per item: name, help, and how to read it.
pub type Family<M> = (&'static str, &'static str, fn(&M) -> u64);

/// Renders `families` for every item, labelled `label="<item name>"`; a
/// name ending in `_total` is a counter, any other a gauge.
pub fn render_families<M>(
    out: &mut String,
    label: &str,
    items: &[(String, Arc<M>)],
    families: &[Family<M>],
) {
    for (name, help, get) in families {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        family(out, name, help, kind);
        for (item, m) in items {
            let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {}", escape(item), get(m));
        }
    }
}

/// Renders a `…_last_commit_timestamp_seconds` gauge from a Unix time in
/// milliseconds per item.
pub fn render_last_commit<M>(
    out: &mut String,
    name: &str,
    label: &str,
    items: &[(String, Arc<M>)],
    ms: fn(&M) -> u64,
) {
    family(out, name, "Time of the last commit.", "gauge");
    for (item, m) in items {
        let _ = writeln!(
            out,
            "{name}{{{label}=\"{}\"}} {}",
            escape(item),
            ms(m) as f64 / 1000.0
        );
    }
}
