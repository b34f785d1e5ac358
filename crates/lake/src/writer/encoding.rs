//! The Parquet writer settings of a stream ([`Encoding`]): codec, row
//! groups, statistics, and which columns get a dictionary — decided once per
//! run; with `dictionary = "auto"`, from the first flush holding at least
//! [`DICTIONARY_SAMPLE`] rows (columns more than 90 % distinct, nulls aside,
//! get none).

use std::collections::HashSet;

use arrow::array::RecordBatch;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::config::{Dictionary, StreamSpec};

/// Rows looked at to decide which columns get a dictionary.
pub(super) const DICTIONARY_SAMPLE: usize = 1024;

/// A stream's Parquet writer settings. With `dictionary = "auto"` the
/// columns whose values are nearly all distinct are found once, from the
/// first chunk of at least [`DICTIONARY_SAMPLE`] rows.
#[derive(Debug, Default)]
pub(super) struct Encoding {
    decided: Option<WriterProperties>,
}

impl Encoding {
    pub(super) fn properties(&mut self, spec: &StreamSpec, rows: &RecordBatch) -> WriterProperties {
        if let Some(p) = &self.decided {
            return p.clone();
        }
        let base = || {
            WriterProperties::builder()
                .set_compression(spec.codec.compression())
                .set_max_row_group_row_count(Some(spec.row_group_rows))
                .set_statistics_enabled(parquet::file::properties::EnabledStatistics::Page)
        };
        let props = match spec.dictionary {
            Dictionary::On => base().build(),
            Dictionary::Off => base().set_dictionary_enabled(false).build(),
            Dictionary::Auto if rows.num_rows() < DICTIONARY_SAMPLE => {
                // Too few rows to judge: Parquet's default, decide later.
                return base().build();
            }
            Dictionary::Auto => {
                let plain = high_cardinality_columns(rows, DICTIONARY_SAMPLE);
                tracing::info!(stream = %spec.name, columns = %plain.join(","),
                    "no Parquet dictionary for columns whose values are nearly all distinct");
                plain
                    .iter()
                    .fold(base(), |b, c| {
                        b.set_column_dictionary_enabled(ColumnPath::from(c.as_str()), false)
                    })
                    .build()
            }
        };
        self.decided = Some(props.clone());
        props
    }
}

/// The columns of `rows` whose first `sample` values are, nulls aside,
/// more than 90 % distinct (strings, binaries and 64-bit numbers; other
/// types are cheap to dictionary-encode or rarely unique). Nulls are left
/// out because Parquet never puts them in a dictionary.
fn high_cardinality_columns(rows: &RecordBatch, sample: usize) -> Vec<String> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::DataType;
    use std::hash::{BuildHasher, RandomState};
    let n = rows.num_rows().min(sample);
    let hasher = RandomState::new();
    let mut out = Vec::new();
    for (field, col) in rows.schema().fields().iter().zip(rows.columns()) {
        let col = col.slice(0, n);
        let mut seen: HashSet<u64> = HashSet::with_capacity(n);
        match field.data_type() {
            DataType::Utf8 => col.as_string::<i32>().iter().flatten().for_each(|v| {
                seen.insert(hasher.hash_one(v));
            }),
            DataType::LargeUtf8 => col.as_string::<i64>().iter().flatten().for_each(|v| {
                seen.insert(hasher.hash_one(v));
            }),
            DataType::Binary => col.as_binary::<i32>().iter().flatten().for_each(|v| {
                seen.insert(hasher.hash_one(v));
            }),
            DataType::Int64 | DataType::Float64 | DataType::Timestamp(_, _) => {
                // All three are 8-byte values; their bits are enough.
                let data = col.to_data();
                let values: &[u64] = data.buffers()[0].typed_data();
                let values = &values[data.offset()..data.offset() + n];
                for (i, v) in values.iter().enumerate() {
                    if !col.is_null(i) {
                        seen.insert(*v);
                    }
                }
            }
            _ => continue,
        }
        let present = n - col.null_count();
        if present > 0 && seen.len() * 10 > present * 9 {
            out.push(field.name().clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use crate::config::StreamConfig;
    use arrow::array::Float64Array;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    fn rows(n: usize) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("score", DataType::Float64, true),
            Field::new("count", DataType::Int64, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("user-{i}")),
                )),
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| ["a", "b", "c"][i % 3]),
                )),
                Arc::new(Float64Array::from_iter(
                    (0..n).map(|i| (i % 7 != 0).then_some(i as f64 * 0.5)),
                )),
                Arc::new(Int64Array::from_iter_values(
                    (0..n).map(|i| (i % 50) as i64),
                )),
            ],
        )
        .unwrap()
    }

    fn spec(parquet: &str) -> StreamSpec {
        let text = format!(
            "name = \"s\"\ntopics = [\"t\"]\ntable = \"t\"\n\
             schema = {{ columns = [{{ name = \"id\", type = \"utf8\" }}] }}\n{parquet}"
        );
        let c: StreamConfig = toml::from_str(&text).unwrap();
        c.resolve(&BTreeMap::new()).unwrap()
    }

    #[test]
    fn nearly_unique_columns_are_found() {
        assert_eq!(high_cardinality_columns(&rows(2000), 1024), ["id", "score"]);
        // Looks at the sample only: the first three rows are all distinct.
        assert_eq!(high_cardinality_columns(&rows(2000), 3).len(), 4);
        // A column of nulls only has no dictionary to speak of either way.
        let nulls = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)])),
            vec![Arc::new(Int64Array::from(vec![None::<i64>; 2000]))],
        )
        .unwrap();
        assert!(high_cardinality_columns(&nulls, 1024).is_empty());
    }

    #[test]
    fn auto_dictionary_is_decided_once_from_enough_rows() {
        let spec = spec("");
        let on = |p: &WriterProperties, c: &str| p.dictionary_enabled(&ColumnPath::from(c));
        let mut e = Encoding::default();
        // A handful of rows says nothing yet: defaults, no decision.
        let p = e.properties(&spec, &rows(10));
        assert!(on(&p, "id") && on(&p, "kind"));
        assert!(e.decided.is_none());
        let p = e.properties(&spec, &rows(5000));
        assert!(!on(&p, "id") && on(&p, "kind") && !on(&p, "score") && on(&p, "count"));
        // Kept for the rest of the run.
        let p = e.properties(&spec, &rows(10));
        assert!(!on(&p, "id") && on(&p, "kind"));
    }

    #[test]
    fn dictionary_on_and_off_apply_to_every_column() {
        let on = |p: &WriterProperties, c: &str| p.dictionary_enabled(&ColumnPath::from(c));
        let p =
            Encoding::default().properties(&spec("parquet = { dictionary = \"on\" }"), &rows(5000));
        assert!(on(&p, "id") && on(&p, "kind"));
        let p = Encoding::default()
            .properties(&spec("parquet = { dictionary = \"off\" }"), &rows(5000));
        assert!(!on(&p, "id") && !on(&p, "kind"));
    }
}
