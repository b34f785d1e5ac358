//! Table schemas: Arrow type names for inline columns, and the table schema
//! built from a record schema (record columns, derived partition columns,
//! then the Kafka coordinates every row carries).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Kafka topic of the row.
pub const COL_TOPIC: &str = "_topic";
/// Kafka partition of the row.
pub const COL_PARTITION: &str = "_partition";
/// Kafka offset of the row.
pub const COL_OFFSET: &str = "_offset";
/// Kafka timestamp of the row (create or log-append time, as the broker says).
pub const COL_TIMESTAMP: &str = "_timestamp";

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

impl PartitionColumn {
    /// Reads `col`, `date(col)` or `hour(col)` as written in `partition_by`.
    pub fn parse(text: &str) -> Result<PartitionColumn, String> {
        let text = text.trim();
        let Some((function, rest)) = text.split_once('(') else {
            return Ok(PartitionColumn::Column(text.to_string()));
        };
        let Some(column) = rest.strip_suffix(')').map(str::trim) else {
            return Err(format!(
                "{text:?}: a partition function is written date(column) or hour(column)"
            ));
        };
        match function.trim() {
            "date" => Ok(PartitionColumn::Date(column.to_string())),
            "hour" => Ok(PartitionColumn::Hour(column.to_string())),
            other => {
                let hint = diag::suggest(other, &PARTITION_FUNCTIONS)
                    .map(|s| format!("did you mean {s}({column})? "))
                    .unwrap_or_default();
                Err(format!(
                    "unknown partition function {other:?} ({hint}the functions are date(column) and hour(column))"
                ))
            }
        }
    }

    /// The record column it is computed from.
    pub fn source(&self) -> &str {
        match self {
            PartitionColumn::Column(c) | PartitionColumn::Date(c) | PartitionColumn::Hour(c) => c,
        }
    }
}

/// The functions `partition_by` may apply to a timestamp column.
const PARTITION_FUNCTIONS: [&str; 2] = ["date", "hour"];

/// UTC microsecond timestamps, the lake's one timestamp type.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The four coordinate columns, in order.
pub fn coordinate_fields() -> Vec<Field> {
    vec![
        Field::new(COL_TOPIC, DataType::Utf8, false),
        Field::new(COL_PARTITION, DataType::Int32, false),
        Field::new(COL_OFFSET, DataType::Int64, false),
        Field::new(COL_TIMESTAMP, timestamp_type(), true),
    ]
}

/// The table schema of a stream: record columns, derived `date`/`hour`
/// columns, then the coordinates. Timestamps of any unit are stored as
/// microseconds in UTC (Delta's `timestamp` type).
pub fn table_schema(record: &Schema, partition_by: &[PartitionColumn]) -> SchemaRef {
    let mut fields: Vec<Field> = record
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Timestamp(_, _) => Field::new(f.name(), timestamp_type(), f.is_nullable()),
            _ => f.as_ref().clone(),
        })
        .collect();
    for p in partition_by {
        let nullable = |c: &str| {
            record
                .field_with_name(c)
                .map(|f| f.is_nullable())
                .unwrap_or(true)
        };
        match p {
            PartitionColumn::Column(_) => {}
            PartitionColumn::Date(c) => {
                fields.push(Field::new("date", DataType::Date32, nullable(c)))
            }
            PartitionColumn::Hour(c) => {
                fields.push(Field::new("hour", DataType::Int32, nullable(c)))
            }
        }
    }
    fields.extend(coordinate_fields());
    Arc::new(Schema::new(fields))
}

/// The dead-letter table's schema.
pub fn dead_letter_schema() -> SchemaRef {
    let mut fields = coordinate_fields();
    fields.extend([
        Field::new("key", DataType::Binary, true),
        Field::new("value", DataType::Binary, true),
        Field::new("error", DataType::Utf8, false),
        Field::new("rejected_at", timestamp_type(), false),
    ]);
    Arc::new(Schema::new(fields))
}

/// Parses an Arrow type name as written in stream configs: `utf8`
/// (`string`), `int8`…`int64`, `uint8`…`uint64`, `float32`/`float64`
/// (`double`), `bool`/`boolean`, `date32`/`date`, `binary`,
/// `timestamp[us, UTC]` (units s, ms, us, ns; zone optional → UTC) and
/// `decimal128(p, s)`.
pub fn parse_arrow_type(text: &str) -> Result<DataType, String> {
    let t = text.trim().to_ascii_lowercase();
    Ok(match t.as_str() {
        "utf8" | "string" | "str" | "text" => DataType::Utf8,
        "int8" => DataType::Int8,
        "int16" => DataType::Int16,
        "int32" | "int" => DataType::Int32,
        "int64" | "long" | "bigint" => DataType::Int64,
        "uint8" => DataType::UInt8,
        "uint16" => DataType::UInt16,
        "uint32" => DataType::UInt32,
        "uint64" => DataType::UInt64,
        "float32" | "float" => DataType::Float32,
        "float64" | "double" => DataType::Float64,
        "bool" | "boolean" => DataType::Boolean,
        "date32" | "date" => DataType::Date32,
        "binary" | "bytes" => DataType::Binary,
        "timestamp" => timestamp_type(),
        _ => {
            if let Some(inner) = t
                .strip_prefix("timestamp[")
                .and_then(|r| r.strip_suffix(']'))
            {
                let mut parts = inner.split(',').map(str::trim);
                let unit = match parts.next() {
                    Some("s") => TimeUnit::Second,
                    Some("ms") => TimeUnit::Millisecond,
                    Some("us") => TimeUnit::Microsecond,
                    Some("ns") => TimeUnit::Nanosecond,
                    other => {
                        return Err(format!(
                            "timestamp unit {:?}: use s, ms, us or ns",
                            other.unwrap_or("")
                        ));
                    }
                };
                match parts.next() {
                    None | Some("utc") => {}
                    Some(z) => {
                        return Err(format!(
                            "timestamp zone {z:?}: the lake stores UTC instants; write timestamp[{}, UTC]",
                            inner.split(',').next().unwrap_or("us").trim()
                        ));
                    }
                }
                // JSON numbers are read in this unit; the table stores µs UTC.
                DataType::Timestamp(unit, Some("UTC".into()))
            } else if let Some(inner) = t
                .strip_prefix("decimal128(")
                .and_then(|r| r.strip_suffix(')'))
            {
                let nums: Vec<&str> = inner.split(',').map(str::trim).collect();
                match nums.as_slice() {
                    [p, s] => match (p.parse::<u8>(), s.parse::<i8>()) {
                        (Ok(p), Ok(s)) if (1..=38).contains(&p) && s >= 0 && (s as u8) <= p => {
                            DataType::Decimal128(p, s)
                        }
                        _ => {
                            return Err(format!(
                                "decimal128({inner}): precision 1–38, scale 0–precision"
                            ));
                        }
                    },
                    _ => {
                        return Err(format!(
                            "decimal128({inner}): write decimal128(precision, scale)"
                        ));
                    }
                }
            } else {
                return Err(format!(
                    "unknown Arrow type {text:?} (use utf8, int32, int64, float64, bool, date32, binary, timestamp[us, UTC] or decimal128(p, s))"
                ));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names() {
        assert_eq!(parse_arrow_type("UTF8").unwrap(), DataType::Utf8);
        assert_eq!(
            parse_arrow_type("timestamp[ms, UTC]").unwrap(),
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        assert_eq!(parse_arrow_type("timestamp[us]").unwrap(), timestamp_type());
        assert_eq!(
            parse_arrow_type("decimal128(10, 2)").unwrap(),
            DataType::Decimal128(10, 2)
        );
        assert!(
            parse_arrow_type("timestamp[us, Europe/Paris]")
                .unwrap_err()
                .contains("UTC instants")
        );
        assert!(parse_arrow_type("timestamp[week]").is_err());
        assert!(parse_arrow_type("decimal128(50, 2)").is_err());
        assert!(
            parse_arrow_type("varchar")
                .unwrap_err()
                .contains("unknown Arrow type")
        );
    }
}
