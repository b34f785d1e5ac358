//! Geometry of the two drawings, computed here (pure, unit-tested) and
//! drawn by the templates: the DAG graph (tasks in layers, left to right)
//! and a run's Gantt chart.

use chrono::{DateTime, Utc};
use scheduler::dag::Dag;
use serde::Serialize;

/// Width of a graph node.
pub const NODE_W: u32 = 168;
/// Height of a graph node.
pub const NODE_H: u32 = 34;
const GAP_X: u32 = 56;
const GAP_Y: u32 = 18;
const MARGIN: u32 = 8;

/// A task box of the graph.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Node {
    /// Task id.
    pub id: String,
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// State in the selected run (`none` when it has none).
    pub state: String,
    /// Task kind.
    pub kind: String,
}

/// An arrow from an upstream task to a downstream one, as an SVG path.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Edge {
    /// Upstream task id.
    pub from: String,
    /// Downstream task id.
    pub to: String,
    /// The `d` attribute of the path.
    pub path: String,
}

/// The laid-out graph.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Graph {
    /// Drawing width.
    pub width: u32,
    /// Drawing height.
    pub height: u32,
    /// Boxes.
    pub nodes: Vec<Node>,
    /// Arrows.
    pub edges: Vec<Edge>,
}

/// Lays the DAG out in layers (longest path from a root), left to right;
/// `state_of` gives each task's state in the selected run.
pub fn graph(dag: &Dag, state_of: impl Fn(&str) -> Option<String>) -> Graph {
    let layers = dag.layers();
    let mut row_in_layer = vec![0u32; layers.iter().max().map_or(0, |m| m + 1)];
    let mut pos = Vec::with_capacity(dag.tasks.len());
    for l in layers.iter().copied() {
        let r = row_in_layer[l];
        row_in_layer[l] += 1;
        let (x, y) = (
            MARGIN + l as u32 * (NODE_W + GAP_X),
            MARGIN + r * (NODE_H + GAP_Y),
        );
        pos.push((x, y));
    }
    let nodes: Vec<Node> = dag
        .tasks
        .iter()
        .zip(&pos)
        .map(|(t, &(x, y))| Node {
            id: t.id.clone(),
            x,
            y,
            state: state_of(&t.id).unwrap_or_else(|| "none".into()),
            kind: t.kind.clone(),
        })
        .collect();
    let mut edges = Vec::new();
    for (i, t) in dag.tasks.iter().enumerate() {
        for &u in dag.upstream_of(i) {
            let (ux, uy) = pos[u];
            let (dx, dy) = pos[i];
            let (x1, y1) = (ux + NODE_W, uy + NODE_H / 2);
            let (x2, y2) = (dx, dy + NODE_H / 2);
            let mid = (x1 + x2) / 2;
            edges.push(Edge {
                from: dag.tasks[u].id.clone(),
                to: t.id.clone(),
                path: format!("M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"),
            });
        }
    }
    let width = nodes.iter().map(|n| n.x + NODE_W).max().unwrap_or(0) + MARGIN;
    let height = nodes.iter().map(|n| n.y + NODE_H).max().unwrap_or(0) + MARGIN;
    Graph {
        width,
        height,
        nodes,
        edges,
    }
}

/// A bar of the Gantt chart.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct Bar {
    pub task_id: String,
    pub state: String,
    /// Left edge, percent of the chart width.
    pub left: f64,
    /// Width, percent of the chart width (at least a sliver, to stay visible).
    pub width: f64,
    /// Duration shown on hover.
    pub label: String,
}

/// A task's span for [`gantt`]: id, state, start, end.
pub type Span = (String, String, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// A run's Gantt chart: one bar per task that started, on a common time axis
/// from the first start to the last end (`now` for tasks still running).
pub fn gantt(tasks: &[Span], now: DateTime<Utc>) -> (Vec<Bar>, i64) {
    let spans: Vec<(&String, &String, DateTime<Utc>, DateTime<Utc>)> = tasks
        .iter()
        .filter_map(|(id, st, s, e)| s.map(|s| (id, st, s, e.unwrap_or(now).max(s))))
        .collect();
    let (Some(t0), Some(t1)) = (
        spans.iter().map(|s| s.2).min(),
        spans.iter().map(|s| s.3).max(),
    ) else {
        return (Vec::new(), 0);
    };
    let total = (t1 - t0).num_milliseconds().max(1) as f64;
    let bars = spans
        .into_iter()
        .map(|(id, st, s, e)| {
            let ms = (e - s).num_milliseconds();
            Bar {
                task_id: id.clone(),
                state: st.clone(),
                left: round2((s - t0).num_milliseconds() as f64 / total * 100.0),
                width: round2((ms as f64 / total * 100.0).max(0.4)),
                label: format!("{id}: {}", human_ms(ms)),
            }
        })
        .collect();
    (bars, (t1 - t0).num_milliseconds())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A duration for people: `850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`.
pub fn human_ms(ms: i64) -> String {
    match ms {
        ..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {:02} s", ms / 60_000, (ms % 60_000) / 1000),
        _ => format!("{} h {:02} min", ms / 3_600_000, (ms % 3_600_000) / 60_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn gantt_scales_to_the_run() {
        let tasks = vec![
            (
                "a".to_string(),
                "success".to_string(),
                Some(t(0)),
                Some(t(10)),
            ),
            ("b".to_string(), "running".to_string(), Some(t(10)), None),
            ("c".to_string(), "pending".to_string(), None, None),
        ];
        let (bars, total) = gantt(&tasks, t(40));
        assert_eq!(total, 40_000);
        assert_eq!(bars.len(), 2, "a task that never started has no bar");
        assert_eq!((bars[0].left, bars[0].width), (0.0, 25.0));
        assert_eq!((bars[1].left, bars[1].width), (25.0, 75.0));
        assert_eq!(bars[1].label, "b: 30.0 s");
        assert_eq!(gantt(&tasks[2..], t(40)), (Vec::new(), 0));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_ms(850), "850 ms");
        assert_eq!(human_ms(12_345), "12.3 s");
        assert_eq!(human_ms(245_000), "4 min 05 s");
        assert_eq!(human_ms(7_380_000), "2 h 03 min");
    }
}
