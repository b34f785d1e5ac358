//! The chart of a query's answer, computed here (pure, unit-tested) and
//! drawn by the Query page's template as SVG: when the answer has one label
//! column and numeric columns, a bar chart (a line chart when the labels
//! are dates or times), one series per numeric column.

use lake::sql::encode::ColumnInfo;
use serde_json::Value;

/// Drawing size in SVG units (the SVG scales to the page width).
pub const WIDTH: f64 = 720.0;
/// Drawing height.
pub const HEIGHT: f64 = 260.0;
const LEFT: f64 = 64.0;
const BOTTOM: f64 = 40.0;
const TOP: f64 = 12.0;
/// The most labels a bar chart draws (the first ones of the answer).
pub const MAX_BARS: usize = 60;
/// The most points a line chart draws.
pub const MAX_POINTS: usize = 2000;

/// One bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
    /// Series (colour) index.
    pub series: usize,
    /// Tooltip: label, series and value.
    pub title: String,
}

/// A label on an axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    /// Position along the axis.
    pub at: f64,
    /// Text.
    pub text: String,
}

/// A line through a series' points.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The `points` attribute of an SVG polyline.
    pub points: String,
    /// Series (colour) index.
    pub series: usize,
}

/// The laid-out chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// `bar` or `line`.
    pub kind: &'static str,
    /// The label column's name.
    pub label: String,
    /// The numeric columns' names (the legend), by series index.
    pub series: Vec<String>,
    /// Bars (bar chart).
    pub bars: Vec<Bar>,
    /// Lines (line chart).
    pub lines: Vec<Line>,
    /// Labels under the x axis.
    pub x_ticks: Vec<Tick>,
    /// Values left of the y axis.
    pub y_ticks: Vec<Tick>,
    /// The y of the zero line.
    pub zero_y: f64,
    /// How many rows were left out (beyond the most drawn).
    pub left_out: usize,
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn label_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// A round step for about `n` ticks over `span`.
fn nice_step(span: f64, n: f64) -> f64 {
    let raw = (span / n).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The chart of an answer, when it has exactly one label column (text,
/// date or time) and at least one numeric column, and at least one row.
pub fn chart(columns: &[ColumnInfo], rows: &[Vec<Value>]) -> Option<Chart> {
    let labels: Vec<usize> = (0..columns.len())
        .filter(|&i| !columns[i].numeric)
        .collect();
    let numeric: Vec<usize> = (0..columns.len()).filter(|&i| columns[i].numeric).collect();
    let label = match labels.as_slice() {
        [one] => *one,
        // Only numbers: the first column labels the others.
        [] if numeric.len() >= 2 => numeric[0],
        _ => return None,
    };
    let numeric: Vec<usize> = numeric.into_iter().filter(|&i| i != label).collect();
    if numeric.is_empty() || rows.is_empty() {
        return None;
    }
    let line = columns[label].temporal;
    let max = if line { MAX_POINTS } else { MAX_BARS };
    let shown = &rows[..rows.len().min(max)];
    let values: Vec<Vec<f64>> = shown
        .iter()
        .map(|r| {
            numeric
                .iter()
                .map(|&c| r.get(c).and_then(number).unwrap_or(0.0))
                .collect()
        })
        .collect();
    let lo = values.iter().flatten().copied().fold(0.0f64, f64::min);
    let hi = values.iter().flatten().copied().fold(0.0f64, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let step = nice_step(span, 4.0);
    let (lo, hi) = ((lo / step).floor() * step, (hi / step).ceil() * step);
    let plot_h = HEIGHT - TOP - BOTTOM;
    let plot_w = WIDTH - LEFT - 8.0;
    let y_of = |v: f64| TOP + plot_h * (1.0 - (v - lo) / (hi - lo).max(f64::MIN_POSITIVE));
    let mut y_ticks = Vec::new();
    let mut v = lo;
    while v <= hi + step / 2.0 {
        y_ticks.push(Tick {
            at: y_of(v),
            text: short(v),
        });
        v += step;
    }
    let n = shown.len();
    let slot = plot_w / n as f64;
    let every = (n / 12).max(1);
    let x_ticks = (0..n)
        .filter(|i| i % every == 0)
        .map(|i| Tick {
            at: LEFT + slot * (i as f64 + 0.5),
            text: diag::cut(&label_text(&shown[i][label]), 14).into_owned(),
        })
        .collect();
    let series: Vec<String> = numeric.iter().map(|&c| columns[c].name.clone()).collect();
    let mut bars = Vec::new();
    let mut lines = Vec::new();
    if line {
        for (s, _) in series.iter().enumerate() {
            let points = values
                .iter()
                .enumerate()
                .map(|(i, v)| format!("{:.1},{:.1}", LEFT + slot * (i as f64 + 0.5), y_of(v[s])))
                .collect::<Vec<_>>()
                .join(" ");
            lines.push(Line { points, series: s });
        }
    } else {
        let w = (slot * 0.8) / series.len() as f64;
        for (i, v) in values.iter().enumerate() {
            for (s, name) in series.iter().enumerate() {
                let (a, b) = (y_of(v[s].max(0.0)), y_of(v[s].min(0.0)));
                bars.push(Bar {
                    x: LEFT + slot * i as f64 + slot * 0.1 + w * s as f64,
                    y: a,
                    w,
                    h: (b - a).max(0.5),
                    series: s,
                    title: format!("{} · {name}: {}", label_text(&shown[i][label]), v[s]),
                });
            }
        }
    }
    Some(Chart {
        kind: if line { "line" } else { "bar" },
        label: columns[label].name.clone(),
        series,
        bars,
        lines,
        x_ticks,
        y_ticks,
        zero_y: y_of(0.0),
        left_out: rows.len() - n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn col(name: &str, numeric: bool, temporal: bool) -> ColumnInfo {
        ColumnInfo {
            name: name.into(),
            data_type: if numeric { "Int64" } else { "Utf8" }.into(),
            numeric,
            temporal,
        }
    }

    #[test]
    fn one_label_and_numbers_make_bars_scaled_to_the_largest() {
        let cols = [col("nation", false, false), col("n", true, false)];
        let rows = vec![vec![json!("FR"), json!(10)], vec![json!("DE"), json!(5)]];
        let c = chart(&cols, &rows).unwrap();
        assert_eq!(c.kind, "bar");
        assert_eq!(c.bars.len(), 2);
        // FR's bar is twice DE's and reaches the top of the scale (10).
        assert!((c.bars[0].h - 2.0 * c.bars[1].h).abs() < 1e-6, "{c:?}");
        assert!((c.bars[0].y - TOP).abs() < 1e-6);
        assert_eq!(c.x_ticks[1].text, "DE");
        assert_eq!(c.y_ticks.last().unwrap().text, "10");
    }

    #[test]
    fn dates_make_lines_and_two_labels_make_no_chart() {
        let cols = [
            col("day", false, true),
            col("n", true, false),
            col("avg", true, false),
        ];
        let rows = vec![
            vec![json!("2026-11-21"), json!(1), json!(0.5)],
            vec![json!("2026-11-22"), json!(3), json!(1.5)],
        ];
        let c = chart(&cols, &rows).unwrap();
        assert_eq!((c.kind, c.lines.len(), c.series.len()), ("line", 2, 2));
        let two_labels = [
            col("a", false, false),
            col("b", false, false),
            col("n", true, false),
        ];
        assert!(chart(&two_labels, &[vec![json!("x"), json!("y"), json!(1)]]).is_none());
        assert!(chart(&cols, &[]).is_none());
    }

    #[test]
    fn negative_values_hang_below_the_zero_line() {
        let cols = [col("k", false, false), col("v", true, false)];
        let c = chart(
            &cols,
            &[vec![json!("a"), json!(-4)], vec![json!("b"), json!(2)]],
        )
        .unwrap();
        assert!((c.bars[0].y - c.zero_y).abs() < 1e-6, "{c:?}");
        assert!(c.bars[1].y + c.bars[1].h <= c.zero_y + 1e-6);
    }
}
