//! A validated stream ([`StreamSpec`]) and the resolved settings it holds:
//! what the writer runs, with every default applied.

use std::collections::BTreeMap;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use chrono_tz::Tz;

use super::file::LatePolicy;
use crate::schema::PartitionColumn;

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

impl Codec {
    /// The codec as the Parquet writer takes it.
    pub fn compression(self) -> parquet::basic::Compression {
        use parquet::basic::{Compression, GzipLevel, ZstdLevel};
        match self {
            Codec::Zstd(l) => Compression::ZSTD(ZstdLevel::try_new(l).unwrap_or_default()),
            Codec::Gzip(l) => Compression::GZIP(GzipLevel::try_new(l).unwrap_or_default()),
            Codec::Snappy => Compression::SNAPPY,
            Codec::Lz4 => Compression::LZ4_RAW,
            Codec::None => Compression::UNCOMPRESSED,
        }
    }
}

/// Late-data handling, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // plain data: the field names say it
pub struct LateData {
    /// The event-time column.
    pub column: String,
    /// Allowed lateness.
    pub allowed: Duration,
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
#[allow(missing_docs)] // plain data: the field names say it
pub struct StreamSpec {
    /// Stream name.
    pub name: String,
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
    /// The first offset to read of a (topic, partition) the table holds no
    /// offset of; the earliest where none is given. Empty for a declared
    /// stream; a replay from a point in the log sets it
    /// (`crate::generation`).
    pub start: BTreeMap<(String, i32), i64>,
}

/// Default memory budget of a stream.
pub const DEFAULT_MEMORY_BUDGET: u64 = 256 << 20;
