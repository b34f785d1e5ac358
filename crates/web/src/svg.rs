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

/// One try's span for [`gantt`].
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct Span {
    pub task_id: String,
    pub try_number: u32,
    /// The try's state (a CSS class).
    pub state: String,
    pub start: DateTime<Utc>,
    /// `None` while it runs (drawn up to `now`).
    pub end: Option<DateTime<Utc>>,
}

/// A bar of the Gantt chart: one try.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct Bar {
    pub state: String,
    /// Left edge, percent of the chart width.
    pub left: f64,
    /// Width, percent of the chart width (at least a sliver, to stay visible).
    pub width: f64,
    /// Try, state and duration, shown on hover.
    pub label: String,
}

/// A task's row of the chart: every try it made, in order.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct GanttRow {
    pub task_id: String,
    pub bars: Vec<Bar>,
}

/// A mark of the time axis.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct Tick {
    /// Percent of the chart width.
    pub left: f64,
    /// Time since the first start: `0 s`, `30 s`, `2 min`, `1 h`.
    pub label: String,
}

/// A run's Gantt chart.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct Gantt {
    /// One row per task that started, in the order given.
    pub rows: Vec<GanttRow>,
    pub ticks: Vec<Tick>,
    /// From the first start to the last end.
    pub total_ms: i64,
    pub first_start: Option<DateTime<Utc>>,
}

/// Axis steps, in milliseconds: the first that gives at most 6 marks.
const STEPS_MS: &[i64] = &[
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000,
    120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000,
    43_200_000, 86_400_000,
];

/// A run's Gantt chart: one row per task, one bar per try (a failed try
/// before its retry shows, not a gap), on a common time axis from the first
/// start to the last end (`now` for tries still running).
pub fn gantt(spans: &[Span], now: DateTime<Utc>) -> Gantt {
    let end_of = |s: &Span| s.end.unwrap_or(now).max(s.start);
    let (Some(t0), Some(t1)) = (
        spans.iter().map(|s| s.start).min(),
        spans.iter().map(end_of).max(),
    ) else {
        return Gantt::default();
    };
    let total_ms = (t1 - t0).num_milliseconds();
    let total = total_ms.max(1) as f64;
    let mut rows: Vec<GanttRow> = Vec::new();
    for s in spans {
        let ms = (end_of(s) - s.start).num_milliseconds();
        let bar = Bar {
            state: s.state.clone(),
            left: round2((s.start - t0).num_milliseconds() as f64 / total * 100.0),
            width: round2((ms as f64 / total * 100.0).max(0.4)),
            label: format!(
                "{} try {}: {}, {}",
                s.task_id,
                s.try_number,
                s.state,
                human_ms(ms)
            ),
        };
        match rows.iter_mut().find(|r| r.task_id == s.task_id) {
            Some(r) => r.bars.push(bar),
            None => rows.push(GanttRow {
                task_id: s.task_id.clone(),
                bars: vec![bar],
            }),
        }
    }
    let step = STEPS_MS
        .iter()
        .copied()
        .find(|st| total_ms / st <= 6)
        .unwrap_or(86_400_000 * (total_ms / 86_400_000 / 6 + 1));
    let ticks = (0..=total_ms / step)
        .map(|k| Tick {
            left: round2((k * step) as f64 / total * 100.0),
            label: axis_label(k * step, step),
        })
        .collect();
    Gantt {
        rows,
        ticks,
        total_ms,
        first_start: Some(t0),
    }
}

/// An axis mark's label; marks fall on whole milliseconds (sub-second
/// steps), seconds, minutes or hours.
fn axis_label(ms: i64, step: i64) -> String {
    if step < 1000 {
        return format!("{ms} ms");
    }
    match ms {
        ..60_000 => format!("{} s", ms / 1000),
        60_000..3_600_000 if ms % 60_000 == 0 => format!("{} min", ms / 60_000),
        60_000..3_600_000 => format!("{}:{:02}", ms / 60_000, (ms % 60_000) / 1000),
        _ if ms % 3_600_000 == 0 => format!("{} h", ms / 3_600_000),
        _ => format!("{} h {:02}", ms / 3_600_000, (ms % 3_600_000) / 60_000),
    }
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

    fn span(task: &str, n: u32, state: &str, start: i64, end: Option<i64>) -> Span {
        Span {
            task_id: task.into(),
            try_number: n,
            state: state.into(),
            start: t(start),
            end: end.map(t),
        }
    }

    #[test]
    fn gantt_draws_every_try_on_one_axis() {
        let spans = vec![
            span("a", 1, "up_for_retry", 0, Some(4)),
            span("a", 2, "success", 6, Some(10)),
            span("b", 1, "running", 10, None),
        ];
        let g = gantt(&spans, t(40));
        assert_eq!(g.total_ms, 40_000);
        assert_eq!(g.first_start, Some(t(0)));
        assert_eq!(g.rows.len(), 2, "one row per task");
        let a = &g.rows[0];
        assert_eq!(a.bars.len(), 2, "the failed first try is drawn");
        assert_eq!((a.bars[0].left, a.bars[0].width), (0.0, 10.0));
        assert_eq!((a.bars[1].left, a.bars[1].width), (15.0, 10.0));
        assert_eq!(a.bars[0].state, "up_for_retry");
        assert_eq!(g.rows[1].bars[0].label, "b try 1: running, 30.0 s");
        let labels: Vec<&str> = g.ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["0 s", "10 s", "20 s", "30 s", "40 s"]);
        assert_eq!(g.ticks[2].left, 50.0);
        assert_eq!(gantt(&[], t(40)), Gantt::default());
    }

    #[test]
    fn axis_marks_are_round_and_few() {
        let g = gantt(&[span("a", 1, "success", 0, Some(4 * 3600 + 60))], t(0));
        let labels: Vec<&str> = g.ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["0 s", "1 h", "2 h", "3 h", "4 h"]);
        let g = gantt(&[span("a", 1, "success", 0, Some(150))], t(0));
        let labels: Vec<&str> = g.ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["0 s", "30 s", "1 min", "1:30", "2 min", "2:30"]);
        // A run of a few milliseconds gets a millisecond axis, not one mark.
        let t0 = t(0);
        let quick = Span {
            end: Some(t0 + chrono::Duration::milliseconds(28)),
            ..span("a", 1, "success", 0, None)
        };
        let g = gantt(&[quick], t0);
        let labels: Vec<&str> = g.ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["0 ms", "5 ms", "10 ms", "15 ms", "20 ms", "25 ms"]);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_ms(850), "850 ms");
        assert_eq!(human_ms(12_345), "12.3 s");
        assert_eq!(human_ms(245_000), "4 min 05 s");
        assert_eq!(human_ms(7_380_000), "2 h 03 min");
    }
}
