//! The `[[stream]]` table as written: serde types with byte spans
//! (`toml::Spanned`), so problems found later still point at
//! `file:line:col`. [`super::resolve`] turns one into a [`super::StreamSpec`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

/// One `[[stream]]` table as written.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Stream name (also the `stream run` argument and the prefix of the
    /// Delta `txn` app ids).
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Kafka topics to consume.
    #[schemars(with = "Vec<String>")]
    pub topics: Spanned<Vec<String>>,
    /// Consumer group; defaults to `tributary-<name>`.
    #[serde(default)]
    pub group: Option<String>,
    /// Table name under the lake location.
    #[schemars(with = "String")]
    pub table: Spanned<String>,
    /// Lake location for this stream; defaults to the project's `[lake] url`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub lake: Option<Spanned<String>>,
    /// Record schema: a name from the catalog or inline columns.
    #[schemars(with = "SchemaSpec")]
    pub schema: Spanned<SchemaSpec>,
    /// Partition columns: data columns, or `date(col)` / `hour(col)` buckets
    /// of a timestamp column.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub partition_by: Vec<Spanned<String>>,
    /// IANA time zone for `date()` / `hour()` buckets (default UTC).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timezone: Option<Spanned<String>>,
    /// What to do with records whose event time is far behind their Kafka
    /// timestamp.
    #[serde(default)]
    #[schemars(with = "Option<LateDataConfig>")]
    pub late_data: Option<Spanned<LateDataConfig>>,
    /// When buffered data is written and committed.
    #[serde(default)]
    #[schemars(with = "Option<RotationConfig>")]
    pub rotation: Option<Spanned<RotationConfig>>,
    /// Parquet encoding options.
    #[serde(default)]
    #[schemars(with = "Option<ParquetConfig>")]
    pub parquet: Option<Spanned<ParquetConfig>>,
    /// Dead-letter table name (default `<table>_dead_letter`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub dead_letter_table: Option<Spanned<String>>,
    /// Budget for all buffered data of this stream, e.g. `"256MiB"`.
    #[serde(default)]
    #[schemars(with = "Option<String>", extend("x-expected" = "a size such as \"256MiB\""))]
    pub memory_budget: Option<Spanned<String>>,
    /// Extra librdkafka consumer properties.
    #[serde(default)]
    pub consumer: BTreeMap<String, String>,
}

/// `schema = "random_user"` or `schema = { columns = [...] }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "a schema name such as \"random_user\" or a table { columns = [{ name = \"id\", type = \"int64\" }, ...] }"
)]
#[schemars(extend("x-expected" = "a schema name such as \"random_user\" or a table { columns = [...] }"))]
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
#[derive(Debug, Clone, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LateDataConfig {
    /// How far the event time may be behind the record's Kafka timestamp,
    /// e.g. `"7d"`.
    #[schemars(extend("x-expected" = "a duration such as \"7d\""))]
    pub allowed_lateness: String,
    /// `write` (into its own, older partition) or `dead_letter`.
    #[serde(default)]
    pub policy: LatePolicy,
}

/// What happens to a late record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LatePolicy {
    /// Write it into the partition its event time belongs to.
    #[default]
    Write,
    /// Send it to the dead-letter table with the reason.
    DeadLetter,
}

/// `[stream.rotation]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotationConfig {
    /// Rows buffered before a flush.
    #[serde(default)]
    pub max_rows: Option<u64>,
    /// Buffered Arrow bytes before a flush, e.g. `"128MiB"`.
    #[serde(default)]
    #[schemars(extend("x-expected" = "a size such as \"128MiB\""))]
    pub max_bytes: Option<String>,
    /// Age of the oldest buffered record before a flush, e.g. `"10s"`.
    #[serde(default)]
    #[schemars(extend("x-expected" = "a duration such as \"10s\""))]
    pub max_age: Option<String>,
}

/// `[stream.parquet]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
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
