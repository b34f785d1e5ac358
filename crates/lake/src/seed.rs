//! Seeds: small reference files (CSV with a header line, or JSON — one
//! array of objects or one object per line) read into Arrow rows, their
//! column types inferred, for loading into a lake table (the `lake_load`
//! task kind). A bad file is refused with the file, the line where known,
//! and what is wrong.

use std::io::{BufReader, Cursor, Seek};
use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::LakeError;

/// A seed file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedFormat {
    /// Comma-separated values with a header line.
    Csv,
    /// A JSON array of objects, or one object per line.
    Json,
}

impl SeedFormat {
    /// The format a file's extension says (`.csv`, `.json`, `.jsonl`,
    /// `.ndjson`).
    pub fn from_path(path: &Path) -> Option<SeedFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(SeedFormat::Csv),
            "json" | "jsonl" | "ndjson" => Some(SeedFormat::Json),
            _ => None,
        }
    }

    /// The format by name (`csv`, `json`).
    pub fn parse(name: &str) -> Option<SeedFormat> {
        match name {
            "csv" => Some(SeedFormat::Csv),
            "json" => Some(SeedFormat::Json),
            _ => None,
        }
    }
}

/// Reads a seed file: its rows and their inferred schema.
pub fn read(path: &Path, format: SeedFormat) -> Result<(SchemaRef, Vec<RecordBatch>), LakeError> {
    let bytes = std::fs::read(path)
        .map_err(|e| LakeError::Config(format!("cannot read {}: {e}", path.display())))?;
    let bad = |e: &dyn std::fmt::Display| LakeError::Config(format!("{}: {e}", path.display()));
    match format {
        SeedFormat::Csv => {
            let fmt = arrow_csv::reader::Format::default().with_header(true);
            let mut cursor = Cursor::new(&bytes);
            let (schema, _) = fmt.infer_schema(&mut cursor, None).map_err(|e| bad(&e))?;
            if schema.fields().is_empty() {
                return Err(bad(&"the file has no header line"));
            }
            cursor.rewind().map_err(|e| bad(&e))?;
            let schema = Arc::new(schema);
            let reader = arrow_csv::ReaderBuilder::new(schema.clone())
                .with_format(fmt)
                .build(cursor)
                .map_err(|e| bad(&e))?;
            let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| bad(&e))?;
            Ok((schema, batches))
        }
        SeedFormat::Json => {
            let lines = json_lines(&bytes).map_err(|e| bad(&e))?;
            let (schema, _) = arrow::json::reader::infer_json_schema(
                BufReader::new(Cursor::new(lines.as_bytes())),
                None,
            )
            .map_err(|e| bad(&e))?;
            if schema.fields().is_empty() {
                return Err(bad(&"the file holds no objects"));
            }
            let schema = Arc::new(schema);
            let reader = arrow::json::ReaderBuilder::new(schema.clone())
                .build(BufReader::new(Cursor::new(lines.as_bytes())))
                .map_err(|e| bad(&e))?;
            let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| bad(&e))?;
            Ok((schema, batches))
        }
    }
}

/// JSON as one object per line: an array's elements, or the lines as
/// they are.
fn json_lines(bytes: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    if !text.trim_start().starts_with('[') {
        return Ok(text.to_string());
    }
    let items: Vec<serde_json::Value> = serde_json::from_str(text)
        .map_err(|e| format!("line {}, column {}: {e}", e.line(), e.column()))?;
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if !item.is_object() {
            return Err(format!("element {i} of the array is not an object"));
        }
        out.push_str(&item.to_string());
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn csv_and_json_seeds_read_with_inferred_types() {
        let (_d, p) = file(
            "n.csv",
            "code,region,population\nFR,Europe,68\nUS,Americas,335\n",
        );
        let (schema, batches) = read(&p, SeedFormat::from_path(&p).unwrap()).unwrap();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["code", "region", "population"]);
        assert_eq!(
            schema.field(2).data_type(),
            &arrow::datatypes::DataType::Int64
        );
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);

        let (_d, p) = file(
            "n.json",
            r#"[{"code": "FR", "eu": true}, {"code": "US", "eu": false}]"#,
        );
        let (schema, batches) = read(&p, SeedFormat::Json).unwrap();
        assert_eq!(
            schema.field(1).data_type(),
            &arrow::datatypes::DataType::Boolean
        );
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    }

    #[test]
    fn a_bad_seed_names_the_file_and_the_problem() {
        let (_d, p) = file("n.json", "[{\"code\": \"FR\"}, 3]");
        let e = read(&p, SeedFormat::Json).unwrap_err().to_string();
        assert!(e.contains("n.json") && e.contains("element 1"), "{e}");
        let (_d, p) = file("n.csv", "code,region\nFR,Europe,extra\n");
        let e = read(&p, SeedFormat::Csv).unwrap_err().to_string();
        assert!(e.contains("n.csv"), "{e}");
    }
}
