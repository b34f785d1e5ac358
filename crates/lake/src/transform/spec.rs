//! A validated transform ([`TransformSpec`]): what the runner runs, every
//! default applied, and where its SQL sits in the config file (so a
//! problem found later, when the tables are known, still points at
//! `file:line:col`).

use std::ops::Range;
use std::time::Duration;

use super::window::Window;
use crate::sql::Place;

/// How often a transform looks for new source versions by default.
pub const DEFAULT_TRIGGER: Duration = Duration::from_secs(1);

/// Source versions one commit of a transform carries at most by default.
pub const DEFAULT_MAX_SOURCE_VERSIONS: u64 = 100;

/// A validated `[[transform]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformSpec {
    /// The transform's name (the `transform run` argument and the prefix
    /// of its `txn` app ids).
    pub name: String,
    /// The lake table whose new rows the SQL reads.
    pub source: String,
    /// The query: `source` by its table name, joins with any lake table.
    pub sql: String,
    /// The output table.
    pub table: String,
    /// The output table's partition columns (columns of the answer).
    pub partition_by: Vec<String>,
    /// Where each `partition_by` entry is in the config file.
    pub partition_spans: Vec<Range<usize>>,
    /// How often to look for new source versions.
    pub trigger: Duration,
    /// Source versions one commit carries at most (a first run reads the
    /// whole table once, whatever this says).
    pub max_source_versions: u64,
    /// Where the SQL text starts in the config file, and the whole value's
    /// span.
    pub sql_at: SqlOrigin,
    /// The window, its watermark and when windows are written, for SQL
    /// over `TUMBLE(…)` / `HOP(…)`.
    pub window: Option<WindowSpec>,
    /// A Kafka topic the output's rows are published to as well.
    pub sink: Option<SinkSpec>,
}

/// Where a transform's output rows are published as well
/// (`sink = { topic = "…" }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkSpec {
    /// The topic.
    pub topic: String,
    /// The output column whose value keys each record (else the row's id).
    pub key: Option<String>,
    /// How records are delivered.
    pub delivery: Delivery,
}

/// How a sink delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Each output version in one Kafka transaction (the default).
    ExactlyOnce,
    /// An idempotent producer; a version may be sent again after a crash.
    AtLeastOnce,
}

impl TransformSpec {
    /// The place of the window call in the SQL.
    pub fn sql_at_window(&self) -> Option<Place> {
        let w = self.window.as_ref()?;
        let before = &self.sql[..w.window.at.start];
        let line = before.matches('\n').count() as u64 + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() as u64 + 1;
        Some(Place { line, column })
    }

    /// The SQL as it is planned: a window call rewritten into plain SQL.
    pub fn planned_sql(&self) -> String {
        match &self.window {
            Some(w) => super::window::rewrite(&self.sql, &w.window, None),
            None => self.sql.clone(),
        }
    }
}

/// When a window's row is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// At every step that adds rows to the window, replacing its row.
    Update,
    /// Once, after the watermark passes its end (plus the allowed lateness).
    Final,
}

/// A windowed transform's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpec {
    /// The `TUMBLE` / `HOP` call.
    pub window: Window,
    /// How far the watermark trails the latest event time seen.
    pub delay: Duration,
    /// When windows are written.
    pub emit: Emit,
    /// How long after the watermark passes a window's end its rows are
    /// still taken; later ones go to `late_table`.
    pub allowed_lateness: Duration,
    /// A source partition (`_partition`) without rows for this long, by the
    /// source's commit times, stops holding the watermark back.
    pub idle_timeout: Duration,
    /// Where late rows go.
    pub late_table: String,
}

/// Where a transform's SQL is in its config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqlOrigin {
    /// Byte offset of the SQL's first character in the file.
    pub start: usize,
    /// The TOML value's span (quotes included).
    pub value: Range<usize>,
}

impl SqlOrigin {
    /// The span in the file of a place in the SQL (the value's span when
    /// the place is unknown or does not fit).
    pub fn span(&self, sql: &str, place: Option<Place>) -> Range<usize> {
        let Some(p) = place else {
            return self.value.clone();
        };
        let mut offset = 0usize;
        for (i, line) in sql.split_inclusive('\n').enumerate() {
            if i + 1 == p.line as usize {
                let col: usize = line
                    .chars()
                    .take(p.column.saturating_sub(1) as usize)
                    .map(char::len_utf8)
                    .sum();
                let at = self.start + offset + col;
                return if at < self.value.end {
                    at..at + 1
                } else {
                    self.value.clone()
                };
            }
            offset += line.len();
        }
        self.value.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_in_the_sql_map_to_offsets_in_the_file() {
        let file = "sql = \"\"\"\nSELECT a\nFROM users\n\"\"\"\n";
        let start = file.find("SELECT").unwrap();
        let origin = SqlOrigin {
            start,
            value: 6..file.len() - 1,
        };
        let sql = "SELECT a\nFROM users\n";
        let at = origin.span(sql, Some(Place { line: 2, column: 6 }));
        assert_eq!(&file[at.start..at.start + 5], "users");
        assert_eq!(origin.span(sql, None), origin.value);
        assert_eq!(
            origin.span(sql, Some(Place { line: 9, column: 1 })),
            origin.value
        );
    }
}
