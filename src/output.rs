//! Printing tables and JSON for the CLI.

use chrono::{DateTime, Utc};

/// Prints rows as aligned columns under a header.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut width: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < width.len() {
                width[i] = width[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(width[i] - c.chars().count() + 2));
            }
        }
        println!("{}", s.trim_end());
    };
    line(headers.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// Prints a value as pretty JSON.
pub fn json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// A timestamp for tables: `2026-11-21 10:00:00`, UTC.
pub fn ts(t: DateTime<Utc>) -> String {
    scheduler::timetable::format_utc(t)
}

/// An optional timestamp for tables.
pub fn opt_ts(t: Option<DateTime<Utc>>) -> String {
    t.map(ts).unwrap_or_else(|| "-".into())
}

/// Milliseconds as seconds with 3 decimals.
pub fn secs(ms: Option<i64>) -> String {
    ms.map(|m| format!("{:.3}s", m as f64 / 1000.0))
        .unwrap_or_else(|| "-".into())
}
