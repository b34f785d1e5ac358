//! Stream declarations (`[[stream]]` in `tributary.toml`) and their
//! validation into a [`StreamSpec`] the writer runs.
//!
//! The serde types keep byte spans (`toml::Spanned`) so that every problem
//! found after parsing (an unknown partition column, a bad Arrow type, a
//! zero rotation limit) still points at `file:line:col`. Resolution needs one
//! thing from outside the crate: the named schemas that task kinds export
//! (`schema = "random_user"`), passed in as a [`SchemaCatalog`].

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;

use crate::schema::{parse_arrow_type, table_schema};

/// A problem in a stream declaration: the byte span it concerns (if known)
/// and a sentence.
pub type ConfigProblem = (Option<Range<usize>>, String);

/// Named Arrow schemas that streams may refer to by name.
pub type SchemaCatalog = BTreeMap<String, SchemaRef>;

/// Keys a `[[stream]]` table accepts (for "did you mean" suggestions).
pub const STREAM_KEYS: &[&str] = &[
    "name",
    "topics",
    "group",
    "table",
    "lake",
    "schema",
    "partition_by",
    "timezone",
    "late_data",
    "rotation",
    "parquet",
    "dead_letter_table",
    "memory_budget",
    "consumer",
];

/// One `[[stream]]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Stream name (also the `stream run` argument and the prefix of the
    /// Delta `txn` app ids).
    pub name: Spanned<String>,
    /// Kafka topics to consume.
    pub topics: Spanned<Vec<String>>,
    /// Consumer group; defaults to `tributary-<name>`.
    #[serde(default)]
    pub group: Option<String>,
    /// Table name under the lake location.
    pub table: Spanned<String>,
    /// Lake location for this stream; defaults to the project's `[lake] url`.
    #[serde(default)]
    pub lake: Option<Spanned<String>>,
    /// Record schema: a name from the catalog or inline columns.
    pub schema: Spanned<SchemaSpec>,
    /// Partition columns: data columns, or `date(col)` / `hour(col)` buckets
    /// of a timestamp column.
    #[serde(default)]
    pub partition_by: Vec<Spanned<String>>,
    /// IANA time zone for `date()` / `hour()` buckets (default UTC).
    #[serde(default)]
    pub timezone: Option<Spanned<String>>,
    /// What to do with records whose event time is far behind their Kafka
    /// timestamp.
    #[serde(default)]
    pub late_data: Option<Spanned<LateDataConfig>>,
    /// When buffered data is written and committed.
    #[serde(default)]
    pub rotation: Option<Spanned<RotationConfig>>,
    /// Parquet encoding options.
    #[serde(default)]
    pub parquet: Option<Spanned<ParquetConfig>>,
    /// Dead-letter table name (default `<table>_dead_letter`).
    #[serde(default)]
    pub dead_letter_table: Option<Spanned<String>>,
    /// Budget for all buffered data of this stream, e.g. `"256MiB"`.
    #[serde(default)]
    pub memory_budget: Option<Spanned<String>>,
    /// Extra librdkafka consumer properties.
    #[serde(default)]
    pub consumer: BTreeMap<String, String>,
}

/// `schema = "random_user"` or `schema = { columns = [...] }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "a schema name such as \"random_user\" or a table { columns = [{ name = \"id\", type = \"int64\" }, ...] }"
)]
pub enum SchemaSpec {
    /// A schema exported by a task kind.
    Named(String),
    /// Columns declared inline.
    Inline {
        /// The columns, in order.
        columns: Vec<ColumnSpec>,
    },
}

/// One inline column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// Column name (the JSON key).
    pub name: String,
    /// Arrow type: `utf8`, `int64`, `float64`, `bool`, `date32`,
    /// `timestamp[us, UTC]`, `binary`, …
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether the field may be missing or null (default true).
    #[serde(default = "yes")]
    pub nullable: bool,
}

fn yes() -> bool {
    true
}

/// `[stream.late_data]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LateDataConfig {
    /// How far the event time may be behind the record's Kafka timestamp,
    /// e.g. `"7d"`.
    pub allowed_lateness: String,
    /// `write` (into its own, older partition) or `dead_letter`.
    #[serde(default)]
    pub policy: LatePolicy,
}

/// What happens to a late record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatePolicy {
    /// Write it into the partition its event time belongs to.
    #[default]
    Write,
    /// Send it to the dead-letter table with the reason.
    DeadLetter,
}

/// `[stream.rotation]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationConfig {
    /// Rows buffered before a flush.
    #[serde(default)]
    pub max_rows: Option<u64>,
    /// Buffered Arrow bytes before a flush, e.g. `"128MiB"`.
    #[serde(default)]
    pub max_bytes: Option<String>,
    /// Age of the oldest buffered record before a flush, e.g. `"10s"`.
    #[serde(default)]
    pub max_age: Option<String>,
}

/// `[stream.parquet]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetConfig {
    /// `zstd` (default), `snappy`, `lz4`, `gzip` or `none`.
    #[serde(default)]
    pub compression: Option<String>,
    /// Compression level (zstd 1–22, gzip 0–9).
    #[serde(default)]
    pub level: Option<i32>,
    /// Maximum rows per row group.
    #[serde(default)]
    pub row_group_rows: Option<usize>,
    /// Dictionary encoding: `auto` (default), `on` or `off`.
    #[serde(default)]
    pub dictionary: Option<String>,
}

/// Which columns get Parquet dictionary encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dictionary {
    /// Every column except those whose values are nearly all distinct in
    /// the first rows the stream sees (ids, e-mails, coordinates): for
    /// those a dictionary costs time and memory and saves nothing.
    Auto,
    /// Every column (Parquet's default).
    On,
    /// No column.
    Off,
}

/// Parquet compression codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Zstandard with a level.
    Zstd(i32),
    /// Snappy.
    Snappy,
    /// LZ4 (raw).
    Lz4,
    /// Gzip with a level.
    Gzip(u32),
    /// No compression.
    None,
}

/// A partition column of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionColumn {
    /// A data column, used as is.
    Column(String),
    /// `date(col)`: the calendar date of a timestamp in the stream's zone,
    /// stored as a `date` partition column named `date`.
    Date(String),
    /// `hour(col)`: the hour (0–23) of a timestamp in the stream's zone,
    /// stored as an `int` partition column named `hour`.
    Hour(String),
}

impl PartitionColumn {
    /// The partition column's name in the table.
    pub fn name(&self) -> &str {
        match self {
            PartitionColumn::Column(c) => c,
            PartitionColumn::Date(_) => "date",
            PartitionColumn::Hour(_) => "hour",
        }
    }
}

/// Late-data handling, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateData {
    /// The event-time column.
    pub column: String,
    /// Allowed lateness.
    pub allowed: Duration,
    /// The policy.
    pub policy: LatePolicy,
}

/// Rotation limits, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Rows buffered per Kafka partition before a flush.
    pub max_rows: u64,
    /// Arrow bytes buffered per Kafka partition before a flush.
    pub max_bytes: u64,
    /// Age of the oldest buffered record before a flush.
    pub max_age: Duration,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_rows: 1_000_000,
            max_bytes: 128 << 20,
            max_age: Duration::from_secs(10),
        }
    }
}

/// A validated stream, ready to run.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// Stream name.
    pub name: String,
    /// Topics.
    pub topics: Vec<String>,
    /// Consumer group.
    pub group: String,
    /// Table name.
    pub table: String,
    /// Lake location override (else the project's).
    pub lake: Option<String>,
    /// Dead-letter table name.
    pub dead_letter_table: String,
    /// The record schema (what the JSON values hold).
    pub record_schema: SchemaRef,
    /// The table schema: record columns, derived partition columns, Kafka
    /// coordinates.
    pub table_schema: SchemaRef,
    /// Partition columns in order.
    pub partition_by: Vec<PartitionColumn>,
    /// Zone of `date()` / `hour()` buckets.
    pub timezone: Tz,
    /// Late-data handling.
    pub late_data: Option<LateData>,
    /// Rotation limits.
    pub rotation: Rotation,
    /// Parquet codec.
    pub codec: Codec,
    /// Maximum rows per row group.
    pub row_group_rows: usize,
    /// Dictionary encoding.
    pub dictionary: Dictionary,
    /// Memory budget for all buffered data.
    pub memory_budget: u64,
    /// Extra consumer properties.
    pub consumer: BTreeMap<String, String>,
}

/// Default memory budget of a stream.
pub const DEFAULT_MEMORY_BUDGET: u64 = 256 << 20;

/// Parses sizes such as `1048576`, `"512KiB"`, `"128MiB"`, `"1GB"`.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '_'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.replace('_', "").parse().map_err(|_| {
        format!("invalid size {text:?}: use a number with an optional unit such as \"128MiB\"")
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        other => {
            return Err(format!(
                "invalid size {text:?}: unknown unit {other:?} (use B, KiB, MiB, GiB, KB, MB or GB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

fn parse_duration(text: &str, what: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("{what}: invalid duration {text:?} ({e}); use e.g. \"10s\", \"5m\", \"7d\"")
    })
}

/// A valid stream or table name: letters, digits, `_` and `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl StreamConfig {
    /// Validates the declaration against the schema catalog, collecting
    /// every problem.
    pub fn resolve(&self, catalog: &SchemaCatalog) -> Result<StreamSpec, Vec<ConfigProblem>> {
        let mut problems: Vec<ConfigProblem> = Vec::new();
        let mut err = |span: Range<usize>, msg: String| problems.push((Some(span), msg));

        let name = self.name.get_ref().clone();
        if !valid_name(&name) {
            err(
                self.name.span(),
                format!("invalid stream name {name:?}: use letters, digits, '_' or '-'"),
            );
        }
        let table = self.table.get_ref().clone();
        if !valid_name(&table) {
            err(
                self.table.span(),
                format!("invalid table name {table:?}: use letters, digits, '_' or '-'"),
            );
        }
        let topics = self.topics.get_ref().clone();
        if topics.is_empty() {
            err(self.topics.span(), "topics: name at least one topic".into());
        }
        let dead_letter_table = match &self.dead_letter_table {
            Some(d) => {
                if !valid_name(d.get_ref()) || d.get_ref() == &table {
                    err(
                        d.span(),
                        format!(
                            "invalid dead_letter_table {:?}: use a name other than the table's, with letters, digits, '_' or '-'",
                            d.get_ref()
                        ),
                    );
                }
                d.get_ref().clone()
            }
            None => format!("{table}_dead_letter"),
        };

        // Schema.
        let record_schema: Option<SchemaRef> = match self.schema.get_ref() {
            SchemaSpec::Named(n) => match catalog.get(n) {
                Some(s) => Some(s.clone()),
                None => {
                    let known: Vec<&str> = catalog.keys().map(String::as_str).collect();
                    err(
                        self.schema.span(),
                        format!(
                            "unknown schema {n:?} (known: {}); or declare columns inline",
                            known.join(", ")
                        ),
                    );
                    None
                }
            },
            SchemaSpec::Inline { columns } => {
                let mut fields = Vec::new();
                let mut seen = std::collections::HashSet::new();
                for c in columns {
                    if !seen.insert(c.name.clone()) {
                        err(
                            self.schema.span(),
                            format!("column {:?} is declared twice", c.name),
                        );
                    }
                    if c.name.starts_with('_') {
                        err(
                            self.schema.span(),
                            format!(
                                "column {:?}: names starting with '_' are reserved for the Kafka coordinates",
                                c.name
                            ),
                        );
                    }
                    match parse_arrow_type(&c.data_type) {
                        Ok(t) => fields.push(Field::new(&c.name, t, c.nullable)),
                        Err(e) => err(self.schema.span(), format!("column {:?}: {e}", c.name)),
                    }
                }
                if columns.is_empty() {
                    err(
                        self.schema.span(),
                        "schema: declare at least one column".into(),
                    );
                }
                Some(Arc::new(Schema::new(fields)))
            }
        };

        // Time zone.
        let timezone = match &self.timezone {
            Some(z) => z.get_ref().parse::<Tz>().unwrap_or_else(|_| {
                err(
                    z.span(),
                    format!("unknown time zone {:?}: use an IANA name such as \"UTC\" or \"Europe/Paris\"", z.get_ref()),
                );
                Tz::UTC
            }),
            None => Tz::UTC,
        };

        // Partitions.
        let mut partition_by = Vec::new();
        for p in &self.partition_by {
            let text = p.get_ref().trim();
            let parsed = if let Some(inner) =
                text.strip_prefix("date(").and_then(|r| r.strip_suffix(')'))
            {
                PartitionColumn::Date(inner.trim().to_string())
            } else if let Some(inner) = text.strip_prefix("hour(").and_then(|r| r.strip_suffix(')'))
            {
                PartitionColumn::Hour(inner.trim().to_string())
            } else {
                PartitionColumn::Column(text.to_string())
            };
            if let Some(schema) = &record_schema {
                let source = match &parsed {
                    PartitionColumn::Column(c)
                    | PartitionColumn::Date(c)
                    | PartitionColumn::Hour(c) => c,
                };
                match schema.field_with_name(source) {
                    Err(_) => {
                        let names: Vec<&str> =
                            schema.fields().iter().map(|f| f.name().as_str()).collect();
                        let hint = crate::suggest(source, &names)
                            .map(|s| format!(" (did you mean {s:?}?)"))
                            .unwrap_or_default();
                        err(
                            p.span(),
                            format!("partition_by: no column {source:?} in the schema{hint}"),
                        );
                    }
                    Ok(f) => match (&parsed, f.data_type()) {
                        (
                            PartitionColumn::Column(_),
                            DataType::Utf8
                            | DataType::Int8
                            | DataType::Int16
                            | DataType::Int32
                            | DataType::Int64
                            | DataType::Boolean
                            | DataType::Date32,
                        ) => {}
                        (PartitionColumn::Column(_), t) => err(
                            p.span(),
                            format!(
                                "partition_by: column {source:?} has type {t}; partition by text, integer, boolean or date columns, or use date({source}) / hour({source}) for timestamps"
                            ),
                        ),
                        (_, DataType::Timestamp(_, _)) => {
                            if schema.field_with_name(parsed.name()).is_ok() {
                                err(
                                    p.span(),
                                    format!(
                                        "partition_by: {text} makes a column {:?}, but the schema already has one",
                                        parsed.name()
                                    ),
                                );
                            }
                        }
                        (_, t) => err(
                            p.span(),
                            format!(
                                "partition_by: {text} needs a timestamp column; {source:?} is {t}"
                            ),
                        ),
                    },
                }
            }
            if partition_by
                .iter()
                .any(|q: &PartitionColumn| q.name() == parsed.name())
            {
                err(
                    p.span(),
                    format!("partition_by: {:?} appears twice", parsed.name()),
                );
            }
            partition_by.push(parsed);
        }

        // Late data.
        let late_data = match &self.late_data {
            None => None,
            Some(l) => {
                let column = partition_by.iter().find_map(|p| match p {
                    PartitionColumn::Date(c) | PartitionColumn::Hour(c) => Some(c.clone()),
                    PartitionColumn::Column(_) => None,
                });
                match (
                    column,
                    parse_duration(&l.get_ref().allowed_lateness, "late_data.allowed_lateness"),
                ) {
                    (None, _) => {
                        err(l.span(), "late_data needs an event-time bucket in partition_by, such as \"date(event_time)\"".into());
                        None
                    }
                    (_, Err(e)) => {
                        err(l.span(), e);
                        None
                    }
                    (Some(column), Ok(allowed)) => Some(LateData {
                        column,
                        allowed,
                        policy: l.get_ref().policy,
                    }),
                }
            }
        };

        // Rotation.
        let mut rotation = Rotation::default();
        if let Some(r) = &self.rotation {
            let span = r.span();
            let r = r.get_ref();
            if let Some(n) = r.max_rows {
                if n == 0 {
                    err(span.clone(), "rotation.max_rows must be at least 1".into());
                }
                rotation.max_rows = n;
            }
            if let Some(b) = &r.max_bytes {
                match parse_bytes(b) {
                    Ok(0) => err(span.clone(), "rotation.max_bytes must be above 0".into()),
                    Ok(n) => rotation.max_bytes = n,
                    Err(e) => err(span.clone(), format!("rotation.max_bytes: {e}")),
                }
            }
            if let Some(a) = &r.max_age {
                match parse_duration(a, "rotation.max_age") {
                    Ok(d) if d.is_zero() => {
                        err(span.clone(), "rotation.max_age must be above 0".into())
                    }
                    Ok(d) => rotation.max_age = d,
                    Err(e) => err(span.clone(), e),
                }
            }
        }

        // Parquet.
        let mut codec = Codec::Zstd(1);
        let mut row_group_rows = 1 << 20;
        let mut dictionary = Dictionary::Auto;
        if let Some(p) = &self.parquet {
            let span = p.span();
            let p = p.get_ref();
            let name = p
                .compression
                .as_deref()
                .unwrap_or("zstd")
                .to_ascii_lowercase();
            codec = match (name.as_str(), p.level) {
                ("zstd", l) => {
                    let l = l.unwrap_or(1);
                    if !(1..=22).contains(&l) {
                        err(
                            span.clone(),
                            format!("parquet.level {l}: zstd levels are 1 to 22"),
                        );
                    }
                    Codec::Zstd(l)
                }
                ("gzip", l) => {
                    let l = l.unwrap_or(6);
                    if !(0..=9).contains(&l) {
                        err(
                            span.clone(),
                            format!("parquet.level {l}: gzip levels are 0 to 9"),
                        );
                    }
                    Codec::Gzip(l.clamp(0, 9) as u32)
                }
                ("snappy" | "lz4" | "none", Some(_)) => {
                    err(span.clone(), format!("parquet.level: {name} has no levels"));
                    Codec::None
                }
                ("snappy", None) => Codec::Snappy,
                ("lz4", None) => Codec::Lz4,
                ("none", None) => Codec::None,
                (other, _) => {
                    err(
                        span.clone(),
                        format!(
                            "parquet.compression {other:?}: use zstd, snappy, lz4, gzip or none"
                        ),
                    );
                    Codec::None
                }
            };
            if let Some(n) = p.row_group_rows {
                if n == 0 {
                    err(
                        span.clone(),
                        "parquet.row_group_rows must be at least 1".into(),
                    );
                }
                row_group_rows = n;
            }
            dictionary = match p.dictionary.as_deref() {
                None | Some("auto") => Dictionary::Auto,
                Some("on") => Dictionary::On,
                Some("off") => Dictionary::Off,
                Some(other) => {
                    err(
                        span.clone(),
                        format!("parquet.dictionary {other:?}: use auto, on or off"),
                    );
                    Dictionary::Auto
                }
            };
        }

        let memory_budget = match &self.memory_budget {
            None => DEFAULT_MEMORY_BUDGET,
            Some(m) => match parse_bytes(m.get_ref()) {
                Ok(n) if n >= 1 << 20 => n,
                Ok(_) => {
                    err(m.span(), "memory_budget must be at least 1MiB".into());
                    DEFAULT_MEMORY_BUDGET
                }
                Err(e) => {
                    err(m.span(), format!("memory_budget: {e}"));
                    DEFAULT_MEMORY_BUDGET
                }
            },
        };

        for key in self.consumer.keys() {
            if matches!(
                key.as_str(),
                "group.id"
                    | "enable.auto.commit"
                    | "enable.auto.offset.store"
                    | "bootstrap.servers"
            ) {
                err(
                    self.name.span(),
                    format!(
                        "consumer.{key:?}: set by the writer (it must own offsets for exactly once)"
                    ),
                );
            }
        }

        let (Some(record_schema), true) = (record_schema, problems.is_empty()) else {
            return Err(problems);
        };
        let table_schema = table_schema(&record_schema, &partition_by);
        Ok(StreamSpec {
            group: self
                .group
                .clone()
                .unwrap_or_else(|| format!("tributary-{name}")),
            name,
            topics,
            table,
            lake: self.lake.as_ref().map(|l| l.get_ref().clone()),
            dead_letter_table,
            record_schema,
            table_schema,
            partition_by,
            timezone,
            late_data,
            rotation,
            codec,
            row_group_rows,
            dictionary,
            memory_budget,
            consumer: self.consumer.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> SchemaCatalog {
        let s = Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("nation", DataType::Utf8, false),
            Field::new(
                "event_time",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("score", DataType::Float64, true),
        ]);
        BTreeMap::from([("users".to_string(), Arc::new(s))])
    }

    fn parse(text: &str) -> Result<StreamSpec, Vec<String>> {
        let c: StreamConfig = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        c.resolve(&catalog())
            .map_err(|v| v.into_iter().map(|(_, m)| m).collect())
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("128MiB").unwrap(), 128 << 20);
        assert_eq!(parse_bytes("1_000").unwrap(), 1000);
        assert_eq!(parse_bytes("2 GB").unwrap(), 2_000_000_000);
        assert!(
            parse_bytes("12 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_bytes("MiB").is_err());
    }

    #[test]
    fn a_full_stream_resolves() {
        let s = parse(
            r#"
            name = "users"
            topics = ["users"]
            table = "users"
            schema = "users"
            partition_by = ["nation", "date(event_time)", "hour(event_time)"]
            timezone = "Europe/Paris"
            memory_budget = "64MiB"
            late_data = { allowed_lateness = "2d", policy = "dead_letter" }
            rotation = { max_rows = 5000, max_age = "2s" }
            parquet = { compression = "zstd", level = 5, row_group_rows = 10000, dictionary = "off" }
            "#,
        )
        .unwrap();
        assert_eq!(s.dictionary, Dictionary::Off);
        assert_eq!(s.group, "tributary-users");
        assert_eq!(s.dead_letter_table, "users_dead_letter");
        assert_eq!(s.codec, Codec::Zstd(5));
        assert_eq!(s.rotation.max_rows, 5000);
        assert_eq!(s.rotation.max_bytes, 128 << 20);
        assert_eq!(s.rotation.max_age, Duration::from_secs(2));
        assert_eq!(s.memory_budget, 64 << 20);
        assert_eq!(s.late_data.unwrap().column, "event_time");
        let names: Vec<&str> = s
            .table_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(
            names,
            [
                "id",
                "nation",
                "event_time",
                "score",
                "date",
                "hour",
                "_topic",
                "_partition",
                "_offset",
                "_timestamp"
            ]
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let errs = parse(
            r#"
            name = "bad name"
            topics = []
            table = "users"
            schema = "users"
            partition_by = ["natoin", "date(score)", "score"]
            timezone = "Mars/Olympus"
            late_data = { allowed_lateness = "soon" }
            rotation = { max_rows = 0, max_bytes = "9 parsecs" }
            parquet = { compression = "brotli", dictionary = "sometimes" }
            consumer = { "group.id" = "x" }
            "#,
        )
        .unwrap_err();
        let all = errs.join("\n");
        for want in [
            "invalid stream name",
            "topics: name at least one topic",
            "no column \"natoin\" in the schema (did you mean \"nation\"?)",
            "date(score) needs a timestamp column",
            "column \"score\" has type Float64",
            "unknown time zone \"Mars/Olympus\"",
            "late_data.allowed_lateness: invalid duration \"soon\"",
            "rotation.max_rows must be at least 1",
            "rotation.max_bytes: invalid size",
            "parquet.compression \"brotli\"",
            "parquet.dictionary \"sometimes\": use auto, on or off",
            "consumer.\"group.id\"",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
    }

    #[test]
    fn inline_columns() {
        let s = parse(
            r#"
            name = "events"
            topics = ["events"]
            table = "events"
            schema = { columns = [
              { name = "id", type = "int64", nullable = false },
              { name = "kind", type = "utf8" },
              { name = "at", type = "timestamp[ms, UTC]" },
            ] }
            partition_by = ["kind", "date(at)"]
            "#,
        )
        .unwrap();
        assert_eq!(s.record_schema.fields().len(), 3);
        assert!(!s.record_schema.field(0).is_nullable());
        let errs = parse(
            r#"
            name = "events"
            topics = ["events"]
            table = "events"
            schema = { columns = [{ name = "id", type = "int65" }, { name = "_offset", type = "int64" }] }
            "#,
        )
        .unwrap_err()
        .join("\n");
        assert!(
            errs.contains("column \"id\": unknown Arrow type \"int65\""),
            "{errs}"
        );
        assert!(
            errs.contains("reserved for the Kafka coordinates"),
            "{errs}"
        );
    }
}
