//! An answer as an Arrow IPC stream: what `POST /api/v1/sql` sends when
//! asked for [`MEDIA_TYPE`], and what `tributary sql` reads when a running
//! server of its project answers for it.
//!
//! The stream is plain Arrow (any Arrow reader reads the rows). What an
//! answer says besides its rows rides in the schema's metadata
//! ([`AnswerMeta`]): the tables and versions read and the view layers'
//! sentences, known once the query is planned, and — for an answer kept to
//! a row limit, which the server runs to the end before sending — how many
//! rows there were and how long it took.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::ipc::writer::StreamWriter;

/// The media type of an Arrow IPC stream.
pub const MEDIA_TYPE: &str = "application/vnd.apache.arrow.stream";

/// The header with which `tributary sql` names the project it expects the
/// server to serve (the server answers 409 to another).
pub const PROJECT_HEADER: &str = "x-tributary-project";

const TABLES: &str = "tributary.tables";
const MADE_OF: &str = "tributary.made_of";
const ROWS: &str = "tributary.rows";
const ELAPSED_MS: &str = "tributary.elapsed_ms";

/// What an answer says besides its rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnswerMeta {
    /// Each table read, as named, and its version.
    pub tables: BTreeMap<String, u64>,
    /// What each view layer read is made of.
    pub made_of: Vec<String>,
    /// With a row limit: the rows the query returned in all.
    pub rows: Option<u64>,
    /// With a row limit: planning and running on the server.
    pub elapsed: Option<Duration>,
}

impl AnswerMeta {
    /// `schema` with this in its metadata.
    pub fn attach(&self, schema: &Schema) -> SchemaRef {
        let mut meta = schema.metadata().clone();
        let json = |v: serde_json::Value| v.to_string();
        meta.insert(TABLES.into(), json(serde_json::json!(self.tables)));
        meta.insert(MADE_OF.into(), json(serde_json::json!(self.made_of)));
        if let Some(rows) = self.rows {
            meta.insert(ROWS.into(), rows.to_string());
        }
        if let Some(e) = self.elapsed {
            meta.insert(ELAPSED_MS.into(), e.as_millis().to_string());
        }
        Arc::new(schema.clone().with_metadata(meta))
    }

    /// What `schema` carries, and the schema without it (the answer's own
    /// columns and metadata).
    pub fn detach(schema: &Schema) -> Result<(AnswerMeta, SchemaRef), String> {
        let mut meta: HashMap<String, String> = schema.metadata().clone();
        let bad = |key: &str, e: &dyn std::fmt::Display| format!("answer metadata {key}: {e}");
        let tables = match meta.remove(TABLES) {
            Some(t) => serde_json::from_str(&t).map_err(|e| bad(TABLES, &e))?,
            None => BTreeMap::new(),
        };
        let made_of = match meta.remove(MADE_OF) {
            Some(m) => serde_json::from_str(&m).map_err(|e| bad(MADE_OF, &e))?,
            None => Vec::new(),
        };
        let number = |v: Option<String>, key: &str| {
            v.map(|s| s.parse::<u64>().map_err(|e| bad(key, &e)))
                .transpose()
        };
        let rows = number(meta.remove(ROWS), ROWS)?;
        let elapsed = number(meta.remove(ELAPSED_MS), ELAPSED_MS)?.map(Duration::from_millis);
        let own = Arc::new(Schema::new_with_metadata(schema.fields().clone(), meta));
        Ok((
            AnswerMeta {
                tables,
                made_of,
                rows,
                elapsed,
            },
            own,
        ))
    }
}

/// Encodes an answer as IPC stream bytes, message by message (a server
/// sends each as it comes).
pub struct Encoder {
    writer: StreamWriter<Vec<u8>>,
}

impl Encoder {
    /// Starts a stream; the bytes of its schema message.
    pub fn start(schema: &Schema) -> Result<(Encoder, Vec<u8>), ArrowError> {
        let mut writer = StreamWriter::try_new(Vec::new(), schema)?;
        let head = std::mem::take(writer.get_mut());
        Ok((Encoder { writer }, head))
    }

    /// The bytes of one batch.
    pub fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
        self.writer.write(batch)?;
        Ok(std::mem::take(self.writer.get_mut()))
    }

    /// The bytes of the end-of-stream marker.
    pub fn finish(mut self) -> Result<Vec<u8>, ArrowError> {
        self.writer.finish()?;
        Ok(std::mem::take(self.writer.get_mut()))
    }
}

/// A whole answer as one IPC stream. The schema message carries
/// `schema` (with its metadata); a batch message carries only columns, so
/// the batches need not carry that metadata.
pub fn encode_all(schema: &Schema, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let (mut enc, mut out) = Encoder::start(schema)?;
    for b in batches {
        out.extend(enc.batch(b)?);
    }
    out.extend(enc.finish()?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use arrow::buffer::Buffer;
    use arrow::datatypes::{DataType, Field};
    use arrow::ipc::reader::StreamDecoder;

    use super::*;

    #[test]
    fn an_answer_survives_the_stream_with_what_it_says() {
        let own = Schema::new(vec![
            Field::new("nation", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ])
        .with_metadata(HashMap::from([("x".to_string(), "kept".to_string())]));
        let meta = AnswerMeta {
            tables: BTreeMap::from([("users".to_string(), 12), ("users@3".to_string(), 3)]),
            made_of: vec!["live.v = batch … + speed: the 90 rows of events@14".into()],
            rows: Some(3),
            elapsed: Some(Duration::from_millis(42)),
        };
        let schema = meta.attach(&own);
        let batch = RecordBatch::try_new(
            Arc::new(own.clone()),
            vec![
                Arc::new(StringArray::from(vec!["FR", "ÎS"])),
                Arc::new(Int64Array::from(vec![2, 1])),
            ],
        )
        .unwrap();
        let bytes = encode_all(&schema, &[batch.clone(), batch.slice(1, 1)]).unwrap();

        let mut decoder = StreamDecoder::new();
        let mut buf = Buffer::from_vec(bytes);
        let mut rows = Vec::new();
        while let Some(b) = decoder.decode(&mut buf).unwrap() {
            rows.push(b);
        }
        decoder.finish().unwrap();
        assert_eq!(rows.len(), 2);
        let (got, stripped) = AnswerMeta::detach(&rows[0].schema()).unwrap();
        assert_eq!(got, meta);
        assert_eq!(*stripped, own, "the answer's own metadata stays, ours goes");
        assert_eq!(rows[0].columns(), batch.columns());
    }

    #[test]
    fn metadata_that_is_not_ours_is_refused_by_name() {
        let s = Schema::empty().with_metadata(HashMap::from([(ROWS.into(), "many".into())]));
        let e = AnswerMeta::detach(&s).unwrap_err();
        assert!(e.contains("tributary.rows"), "{e}");
    }
}
