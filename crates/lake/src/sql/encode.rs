//! An answer's rows in the forms users take them: text cells for a table
//! on screen, JSON objects, CSV, and a Parquet file.

use std::io::Write;

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde::Serialize;

use crate::LakeError;

/// One column of an answer: its name and its SQL-facing type.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// Arrow type, e.g. `Int64`, `Utf8`, `Timestamp(µs, "UTC")`.
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether the column is a number (charts use it).
    pub numeric: bool,
    /// Whether the column is a date or a time.
    pub temporal: bool,
}

/// The columns of a schema.
pub fn columns(schema: &Schema) -> Vec<ColumnInfo> {
    schema
        .fields()
        .iter()
        .map(|f| ColumnInfo {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
            numeric: f.data_type().is_numeric(),
            temporal: f.data_type().is_temporal(),
        })
        .collect()
}

/// Every cell of the batches as display text (nulls as `null`).
pub fn cells(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, LakeError> {
    let options = FormatOptions::default().with_null("null");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for i in 0..batch.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(i).to_string()).collect());
        }
    }
    Ok(rows)
}

/// The batches as JSON arrays, one per row, values in column order (nulls
/// kept as `null`).
pub fn json_arrays(
    schema: &Schema,
    batches: &[RecordBatch],
) -> Result<Vec<Vec<serde_json::Value>>, LakeError> {
    let objects = json_rows(batches)?;
    Ok(objects
        .into_iter()
        .map(|o| {
            schema
                .fields()
                .iter()
                .map(|f| o.get(f.name()).cloned().unwrap_or(serde_json::Value::Null))
                .collect()
        })
        .collect())
}

/// The batches as JSON objects, one per row (nulls kept as `null`).
fn json_rows(batches: &[RecordBatch]) -> Result<Vec<serde_json::Value>, LakeError> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(&mut buf);
        for b in batches {
            w.write(b)?;
        }
        w.finish()?;
    }
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&buf).map_err(|e| LakeError::Config(format!("JSON rows: {e}")))
}

/// A JSON writer: one array of row objects, or one object per line;
/// columns in the answer's order.
pub enum JsonOut<W: Write> {
    /// `[{…}, {…}]`.
    Array(arrow::json::Writer<W, arrow::json::writer::JsonArray>),
    /// `{…}\n{…}\n`.
    Lines(arrow::json::Writer<W, arrow::json::writer::LineDelimited>),
}

impl<W: Write> JsonOut<W> {
    /// A writer of one JSON array (`lines = false`) or JSON lines.
    pub fn new(out: W, lines: bool) -> JsonOut<W> {
        let b = arrow::json::WriterBuilder::new().with_explicit_nulls(true);
        if lines {
            JsonOut::Lines(b.build(out))
        } else {
            JsonOut::Array(b.build(out))
        }
    }

    /// Writes one batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), LakeError> {
        match self {
            JsonOut::Array(w) => w.write(batch)?,
            JsonOut::Lines(w) => w.write(batch)?,
        }
        Ok(())
    }

    /// Ends the output (an empty answer is `[]`).
    pub fn finish(self) -> Result<W, LakeError> {
        let mut out = match self {
            JsonOut::Array(mut w) => {
                w.finish()?;
                w.into_inner()
            }
            JsonOut::Lines(mut w) => {
                w.finish()?;
                w.into_inner()
            }
        };
        out.write_all(b"\n")
            .and_then(|()| out.flush())
            .map_err(|e| LakeError::Config(format!("writing JSON: {e}")))?;
        Ok(out)
    }
}

/// A CSV writer: a header line, then rows; values quoted where needed.
pub struct CsvOut<W: Write> {
    inner: arrow_csv::Writer<W>,
    wrote: bool,
}

impl<W: Write> CsvOut<W> {
    /// A writer that puts the header first.
    pub fn new(out: W) -> CsvOut<W> {
        CsvOut {
            inner: arrow_csv::WriterBuilder::new()
                .with_header(true)
                .with_timestamp_tz_format("%Y-%m-%dT%H:%M:%S%.f%:z".to_string())
                .build(out),
            wrote: false,
        }
    }

    /// Writes one batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), LakeError> {
        self.inner.write(batch)?;
        self.wrote = true;
        Ok(())
    }

    /// Ends the output: an answer without rows still gets its header.
    pub fn finish(mut self, schema: &arrow::datatypes::SchemaRef) -> Result<W, LakeError> {
        if !self.wrote {
            self.inner.write(&RecordBatch::new_empty(schema.clone()))?;
        }
        let mut out = self.inner.into_inner();
        out.flush()
            .map_err(|e| LakeError::Config(format!("writing CSV: {e}")))?;
        Ok(out)
    }
}

/// A Parquet file being written batch by batch.
pub struct ParquetOut {
    inner: parquet::arrow::ArrowWriter<std::fs::File>,
}

impl ParquetOut {
    /// Creates the file (zstd-compressed).
    pub fn create(path: &std::path::Path, schema: &Schema) -> Result<ParquetOut, LakeError> {
        let file = std::fs::File::create(path)
            .map_err(|e| LakeError::Config(format!("cannot create {}: {e}", path.display())))?;
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
            .build();
        let inner = parquet::arrow::ArrowWriter::try_new(
            file,
            std::sync::Arc::new(schema.clone()),
            Some(props),
        )?;
        Ok(ParquetOut { inner })
    }

    /// Writes one batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), LakeError> {
        self.inner.write(batch)?;
        Ok(())
    }

    /// Finishes the file (its footer).
    pub fn finish(self) -> Result<(), LakeError> {
        self.inner.close()?;
        Ok(())
    }
}

/// Where a whole answer goes, batch by batch: one of the writers above.
pub enum AnswerOut<'a> {
    /// CSV with a header line.
    Csv(CsvOut<Box<dyn Write + 'a>>),
    /// A JSON array, or JSON lines.
    Json(JsonOut<Box<dyn Write + 'a>>),
    /// A Parquet file.
    Parquet(ParquetOut),
}

impl AnswerOut<'_> {
    /// Writes one batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), LakeError> {
        match self {
            AnswerOut::Csv(w) => w.write(batch),
            AnswerOut::Json(w) => w.write(batch),
            AnswerOut::Parquet(w) => w.write(batch),
        }
    }

    /// Ends the output (an empty CSV answer still gets its header).
    pub fn finish(self, schema: &arrow::datatypes::SchemaRef) -> Result<(), LakeError> {
        match self {
            AnswerOut::Csv(w) => w.finish(schema).map(drop),
            AnswerOut::Json(w) => w.finish().map(drop),
            AnswerOut::Parquet(w) => w.finish(),
        }
    }
}
