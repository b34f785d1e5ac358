//! `[[transform]]` as written (serde types with byte spans) and its
//! resolution into a [`TransformSpec`]: every problem collected, each at
//! its key — names, the trigger, and the SQL (it must parse, be a query and
//! read its source; a place in the SQL maps back into the file).

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use std::time::Duration;

use super::spec::{
    DEFAULT_MAX_SOURCE_VERSIONS, DEFAULT_TRIGGER, Delivery, Emit, SinkSpec, SqlOrigin,
    TransformSpec, WindowSpec,
};
use crate::config::{ConfigProblem, checked_name, valid_name};
use crate::units::parse_duration;

/// One `[[transform]]` table as written.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformConfig {
    /// Transform name (the `transform run` argument).
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// The lake table whose new rows the SQL reads (a stream's table, or
    /// another transform's).
    #[schemars(with = "String")]
    pub source: Spanned<String>,
    /// The query over `source` (by its table name); it may join any lake
    /// table, read as of each commit.
    #[schemars(with = "String")]
    pub sql: Spanned<String>,
    /// The output table.
    #[schemars(with = "String")]
    pub table: Spanned<String>,
    /// Partition columns of the output table (columns of the answer).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub partition_by: Vec<Spanned<String>>,
    /// How often to look for new source versions (default `1s`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub trigger: Option<Spanned<String>>,
    /// Source versions one commit carries at most (default 100).
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub max_source_versions: Option<Spanned<u64>>,
    /// Windowed SQL: how far the watermark trails the latest event time
    /// (`{ column = "event_time", delay = "5s" }`; the column is the
    /// window's).
    #[serde(default)]
    #[schemars(with = "Option<WatermarkConfig>")]
    pub watermark: Option<Spanned<WatermarkConfig>>,
    /// Windowed SQL: `"update"` (a window's row is replaced as rows arrive,
    /// the default) or `"final"` (written once, when the watermark passes
    /// its end).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub emit: Option<Spanned<String>>,
    /// Windowed SQL: rows this far behind the watermark are still counted
    /// (default `0s`); later ones go to the late table.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub allowed_lateness: Option<Spanned<String>>,
    /// Windowed SQL: a source partition without rows for this long (by
    /// source commit times) stops holding the watermark back (default `1m`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub idle_timeout: Option<Spanned<String>>,
    /// Windowed SQL: where late rows go (default `<table>_late`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub late_table: Option<Spanned<String>>,
    /// Publish each new output row to a Kafka topic as well:
    /// `{ topic = "…", key = "<column>", delivery = "exactly_once" |
    /// "at_least_once" }`.
    #[serde(default)]
    #[schemars(with = "Option<SinkConfig>")]
    pub sink: Option<Spanned<SinkConfig>>,
}

/// `sink = { topic = "…", key = "…", delivery = "…" }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// The Kafka topic.
    pub topic: String,
    /// An output column whose value keys each record (default: the row's
    /// id, `version/file/row`).
    #[serde(default)]
    pub key: Option<String>,
    /// `"exactly_once"` (default: one Kafka transaction per output version)
    /// or `"at_least_once"` (brokers without transactions).
    #[serde(default)]
    pub delivery: Option<String>,
}

/// `watermark = { column = "…", delay = "…" }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WatermarkConfig {
    /// The event-time column (the window's time column).
    pub column: String,
    /// How far the watermark trails the latest event time seen (default `0s`).
    #[serde(default)]
    pub delay: Option<String>,
}

impl TransformConfig {
    /// Validates the declaration; `file` is the config file's text (to
    /// find where the SQL starts inside its quotes).
    pub fn resolve(&self, file: &str) -> Result<TransformSpec, Vec<ConfigProblem>> {
        let mut p: Vec<ConfigProblem> = Vec::new();
        let name = checked_name(&self.name, "transform", &mut p);
        let source = checked_name(&self.source, "source table", &mut p);
        let table = checked_name(&self.table, "table", &mut p);
        let partition_by: Vec<String> = self
            .partition_by
            .iter()
            .map(|c| c.get_ref().clone())
            .collect();
        if source == table {
            p.push((
                Some(self.table.span()),
                format!("table {table:?} is the source: write the output to a table of its own"),
            ));
        }
        let trigger = match &self.trigger {
            None => DEFAULT_TRIGGER,
            Some(t) => match parse_duration(t.get_ref(), "trigger") {
                Ok(d) if d.is_zero() => {
                    p.push((Some(t.span()), "trigger must be above zero".to_string()));
                    DEFAULT_TRIGGER
                }
                Ok(d) => d,
                Err(e) => {
                    p.push((Some(t.span()), e));
                    DEFAULT_TRIGGER
                }
            },
        };
        let max_source_versions = match &self.max_source_versions {
            None => DEFAULT_MAX_SOURCE_VERSIONS,
            Some(m) if *m.get_ref() == 0 => {
                p.push((
                    Some(m.span()),
                    "max_source_versions must be at least 1".to_string(),
                ));
                DEFAULT_MAX_SOURCE_VERSIONS
            }
            Some(m) => *m.get_ref(),
        };
        let sql = self.sql.get_ref().clone();
        let sql_at = origin(file, self.sql.span());
        let window = self.window(&sql, &sql_at, &table, &mut p);
        if let Some(w) = &window
            && w.window.table != source
        {
            p.push((
                Some(self.sql.span()),
                format!(
                    "sql: the window is over {:?}; it must be over the source table {source:?}",
                    w.window.table
                ),
            ));
        }
        let planned = match &window {
            Some(w) => super::window::rewrite(&sql, &w.window, None),
            None => sql.clone(),
        };
        match crate::sql::tables_named(&planned) {
            Err(e) => p.push((
                Some(sql_at.span(&sql, e.place)),
                format!("sql: {}", e.message),
            )),
            Ok(names) => {
                if !names.contains(&source) {
                    p.push((
                        Some(self.sql.span()),
                        format!(
                            "sql: the query does not read its source table {source:?} (it reads {}); \
                             the source's new rows are the rows of that name",
                            if names.is_empty() { "no table".to_string() } else { names.join(", ") }
                        ),
                    ));
                }
                if names.contains(&table) {
                    p.push((
                        Some(self.sql.span()),
                        format!("sql: the query reads the transform's own output table {table:?}"),
                    ));
                }
            }
        }
        let sink = self.sink(&mut p);
        if !p.is_empty() {
            return Err(p);
        }
        Ok(TransformSpec {
            name,
            source,
            sql,
            table,
            partition_by,
            partition_spans: self.partition_by.iter().map(Spanned::span).collect(),
            trigger,
            max_source_versions,
            sql_at,
            window,
            sink,
        })
    }

    /// The sink settings, when there is a `sink`.
    fn sink(&self, p: &mut Vec<ConfigProblem>) -> Option<SinkSpec> {
        let s = self.sink.as_ref()?;
        let c = s.get_ref();
        let valid_topic = !c.topic.is_empty()
            && c.topic.len() <= 249
            && c.topic
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'));
        if !valid_topic {
            p.push((
                Some(s.span()),
                format!(
                    "sink topic {:?}: a Kafka topic name is 1 to 249 letters, digits, '.', '_' or '-'",
                    c.topic
                ),
            ));
        }
        let delivery = match c.delivery.as_deref() {
            None | Some("exactly_once") => Delivery::ExactlyOnce,
            Some("at_least_once") => Delivery::AtLeastOnce,
            Some(other) => {
                p.push((
                    Some(s.span()),
                    format!("sink delivery {other:?}: write \"exactly_once\" or \"at_least_once\""),
                ));
                Delivery::ExactlyOnce
            }
        };
        Some(SinkSpec {
            topic: c.topic.clone(),
            key: c.key.clone(),
            delivery,
        })
    }

    /// The window settings, when the SQL has a `TUMBLE` / `HOP` call.
    fn window(
        &self,
        sql: &str,
        sql_at: &SqlOrigin,
        table: &str,
        p: &mut Vec<ConfigProblem>,
    ) -> Option<WindowSpec> {
        let call = match super::window::find(sql) {
            Ok(c) => c,
            Err(e) => {
                p.push((Some(sql_at.value.clone()), format!("sql: {e}")));
                return None;
            }
        };
        let Some(window) = call else {
            for (key, span) in [
                ("watermark", self.watermark.as_ref().map(Spanned::span)),
                ("emit", self.emit.as_ref().map(Spanned::span)),
                (
                    "allowed_lateness",
                    self.allowed_lateness.as_ref().map(Spanned::span),
                ),
                (
                    "idle_timeout",
                    self.idle_timeout.as_ref().map(Spanned::span),
                ),
                ("late_table", self.late_table.as_ref().map(Spanned::span)),
            ] {
                if let Some(span) = span {
                    p.push((
                        Some(span),
                        format!("{key} is for windowed SQL (FROM TUMBLE(…) or HOP(…))"),
                    ));
                }
            }
            return None;
        };
        let mut duration = |v: Option<&Spanned<String>>, what: &str, default: Duration| match v {
            None => default,
            Some(t) => parse_duration(t.get_ref(), what).unwrap_or_else(|e| {
                p.push((Some(t.span()), e));
                default
            }),
        };
        let allowed_lateness = duration(
            self.allowed_lateness.as_ref(),
            "allowed_lateness",
            Duration::ZERO,
        );
        let idle_timeout = duration(
            self.idle_timeout.as_ref(),
            "idle_timeout",
            Duration::from_secs(60),
        );
        let mut delay = Duration::ZERO;
        if let Some(w) = &self.watermark {
            let wm = w.get_ref();
            if wm.column != window.column {
                p.push((
                    Some(w.span()),
                    format!(
                        "watermark column {:?} is not the window's time column {:?}",
                        wm.column, window.column
                    ),
                ));
            }
            if let Some(d) = &wm.delay {
                match parse_duration(d, "watermark.delay") {
                    Ok(d) => delay = d,
                    Err(e) => p.push((Some(w.span()), e)),
                }
            }
        }
        let emit = match self.emit.as_ref().map(|e| (e.get_ref().as_str(), e.span())) {
            None | Some(("update", _)) => Emit::Update,
            Some(("final", _)) => Emit::Final,
            Some((other, span)) => {
                p.push((
                    Some(span),
                    format!("emit {other:?}: write \"update\" or \"final\""),
                ));
                Emit::Update
            }
        };
        let late_table = match &self.late_table {
            Some(t) if !valid_name(t.get_ref()) => {
                p.push((
                    Some(t.span()),
                    format!("invalid late_table name {:?}", t.get_ref()),
                ));
                String::new()
            }
            Some(t) => t.get_ref().clone(),
            None => format!("{table}_late"),
        };
        Some(WindowSpec {
            window,
            delay,
            emit,
            allowed_lateness,
            idle_timeout,
            late_table,
        })
    }
}

/// Where a string value's text starts: after `"`, `'`, `"""` or `'''`,
/// and the newline TOML drops right after opening triple quotes.
pub(crate) fn origin(file: &str, value: std::ops::Range<usize>) -> SqlOrigin {
    let raw = file.get(value.clone()).unwrap_or("");
    let mut start = value.start;
    if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
        start += 3;
        let rest = &file[start.min(file.len())..];
        if rest.starts_with("\r\n") {
            start += 2;
        } else if rest.starts_with('\n') {
            start += 1;
        }
    } else if raw.starts_with('"') || raw.starts_with('\'') {
        start += 1;
    }
    SqlOrigin { start, value }
}
