//! A windowed transform's watermark: per source partition the latest
//! event time and when the partition last had rows (in source commit
//! time), the watermark they give, and which windows it has passed. Kept
//! as `txn` entries in the output's own commits, so it is exactly as
//! durable as the windows it decided.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::checkpoint::{parse_app_id, state_app_id};
use super::spec::WindowSpec;

/// Per source partition: latest event time (µs) and when it last had rows
/// (source commit ms); and the watermark so far (µs).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Watermarks {
    parts: BTreeMap<String, (i64, i64)>,
    pub(super) watermark: Option<i64>,
}

impl Watermarks {
    pub(super) fn read(txns: &HashMap<String, i64>, name: &str) -> Watermarks {
        let mut w = Watermarks::default();
        for (id, v) in txns {
            match parse_app_id(id) {
                Some((n, "wm", p)) if n == name => w.parts.entry(p.to_string()).or_default().0 = *v,
                Some((n, "seen", p)) if n == name => {
                    w.parts.entry(p.to_string()).or_default().1 = *v
                }
                Some((n, "watermark", _)) if n == name => w.watermark = Some(*v),
                _ => {}
            }
        }
        w
    }

    /// The watermark at source commit time `now_ms` (µs), never below the
    /// last one.
    pub(super) fn at(&self, now_ms: i64, spec: &WindowSpec) -> Option<i64> {
        let idle_ms = spec.idle_timeout.as_millis() as i64;
        let active: Vec<i64> = self
            .parts
            .values()
            .filter(|(_, seen)| now_ms - seen <= idle_ms)
            .map(|(max, _)| *max)
            .collect();
        let least = if active.is_empty() {
            self.parts.values().map(|(max, _)| *max).max()
        } else {
            active.into_iter().min()
        };
        let computed = least.map(|l| l - spec.delay.as_micros() as i64);
        match (computed, self.watermark) {
            (Some(c), Some(w)) => Some(c.max(w)),
            (c, w) => c.or(w),
        }
    }

    pub(super) fn observe(&mut self, maxima: &BTreeMap<String, i64>, now_ms: i64) {
        for (p, m) in maxima {
            let e = self.parts.entry(p.clone()).or_insert((*m, now_ms));
            e.0 = e.0.max(*m);
            e.1 = now_ms;
        }
    }

    pub(super) fn entries(&self, name: &str) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for (p, (max, seen)) in &self.parts {
            out.push((state_app_id(name, "wm", p), *max));
            out.push((state_app_id(name, "seen", p), *seen));
        }
        if let Some(w) = self.watermark {
            out.push((state_app_id(name, "watermark", "all"), w));
        }
        out
    }
}

pub(super) fn micros(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t).unwrap_or_default()
}

/// The first window start (a multiple of the slide) whose window is still
/// open at watermark `w`: `start + size + lateness > w`.
pub(super) fn first_open(w: i64, spec: &WindowSpec) -> i64 {
    let slide = spec.window.slide.as_micros() as i64;
    let reach = (spec.window.size + spec.allowed_lateness).as_micros() as i64;
    (w - reach).div_euclid(slide) * slide + slide
}

/// The last window start whose window the watermark `w` has passed.
pub(super) fn last_closed(w: i64, spec: &WindowSpec) -> i64 {
    first_open(w, spec) - spec.window.slide.as_micros() as i64
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::transform::spec::Emit;
    use crate::transform::window::find;

    fn spec(sql: &str, lateness: u64) -> WindowSpec {
        WindowSpec {
            window: find(sql).unwrap().unwrap(),
            delay: Duration::from_secs(10),
            emit: Emit::Update,
            allowed_lateness: Duration::from_secs(lateness),
            idle_timeout: Duration::from_secs(60),
            late_table: "late".into(),
        }
    }

    #[test]
    fn the_watermark_trails_the_slowest_active_partition_and_never_goes_back() {
        let w = spec("SELECT * FROM TUMBLE(t, at, INTERVAL '1 minute')", 0);
        let mut m = Watermarks::default();
        let s = 1_000_000i64;
        m.observe(
            &BTreeMap::from([("0".into(), 100 * s), ("1".into(), 50 * s)]),
            1_000,
        );
        assert_eq!(m.at(1_000, &w), Some(40 * s));
        m.watermark = m.at(1_000, &w);
        // Partition 1 idle for over a minute: no longer holds it back.
        m.observe(&BTreeMap::from([("0".into(), 200 * s)]), 70_000);
        assert_eq!(m.at(70_000, &w), Some(190 * s));
        m.watermark = Some(190 * s);
        // It wakes up far behind: the watermark stays.
        m.observe(&BTreeMap::from([("1".into(), 60 * s)]), 71_000);
        assert_eq!(m.at(71_000, &w), Some(190 * s));
        let back = Watermarks::read(&m.entries("x").into_iter().collect(), "x");
        assert_eq!(back, m);
    }

    #[test]
    fn open_and_closed_windows_follow_size_slide_and_lateness() {
        let w = spec(
            "SELECT * FROM HOP(t, at, INTERVAL '1 minute', INTERVAL '3 minutes')",
            60,
        );
        let min = 60_000_000i64;
        // At 10:00 (600 min), windows ending after 9:59 are open: start > 9:56.
        assert_eq!(first_open(600 * min, &w), 597 * min);
        assert_eq!(last_closed(600 * min, &w), 596 * min);
    }
}
