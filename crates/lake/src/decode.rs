//! Kafka values (JSON objects) → Arrow record batches in the table schema.
//!
//! Records are staged per Kafka partition in a [`RawBatch`] (values in one
//! contiguous buffer) and decoded in bulk with `arrow-json`. The fast path
//! feeds the values to one decoder one after another and checks, after each,
//! that it added exactly one complete row: so values can never merge into
//! or split across rows, and row `i` of the batch is record `i`. UTF-8 is
//! left to the bulk decode, which validates every string. When anything is
//! off (a null value, a value that is not exactly one JSON object, a wrong
//! type, a missing required field, bad JSON), the slow path checks each
//! value's structure with [`single_object`] and UTF-8, decodes the records
//! one by one to find the culprits, which become [`Rejected`] records with
//! the reason, and decodes the rest in bulk again. Nothing is dropped:
//! every input record is either a row or a rejection.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Builder, Int32Array, Int32Builder, Int64Array,
    RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::DataType;
use arrow::json::ReaderBuilder;
use chrono::{DateTime, Datelike, TimeZone, Timelike};
use chrono_tz::Tz;

use crate::config::{LatePolicy, StreamSpec};
use crate::schema::PartitionColumn;
use crate::schema::timestamp_type;

/// Raw records of one Kafka partition, in offset order.
#[derive(Debug)]
pub struct RawBatch {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    values: Vec<u8>,
    /// Per record: the value's byte range in `values` (None for a null value).
    value_ranges: Vec<Option<(u32, u32)>>,
    keys: Vec<u8>,
    key_ranges: Vec<Option<(u32, u32)>>,
    offsets: Vec<i64>,
    timestamps: Vec<Option<i64>>,
}

impl RawBatch {
    /// An empty batch for one partition.
    pub fn new(topic: Arc<str>, partition: i32) -> Self {
        RawBatch {
            topic,
            partition,
            values: Vec::new(),
            value_ranges: Vec::new(),
            keys: Vec::new(),
            key_ranges: Vec::new(),
            offsets: Vec::new(),
            timestamps: Vec::new(),
        }
    }

    /// Appends a record. `timestamp_ms` is the Kafka timestamp.
    pub fn push(
        &mut self,
        offset: i64,
        timestamp_ms: Option<i64>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) {
        let append = |buf: &mut Vec<u8>, bytes: Option<&[u8]>| {
            bytes.map(|b| {
                let start = buf.len() as u32;
                buf.extend_from_slice(b);
                (start, buf.len() as u32)
            })
        };
        self.value_ranges.push(append(&mut self.values, value));
        self.key_ranges.push(append(&mut self.keys, key));
        self.offsets.push(offset);
        self.timestamps.push(timestamp_ms);
    }

    /// Empties the batch, keeping its buffers' capacity.
    pub fn clear(&mut self) {
        self.values.clear();
        self.value_ranges.clear();
        self.keys.clear();
        self.key_ranges.clear();
        self.offsets.clear();
        self.timestamps.clear();
    }

    /// Records staged.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// No records staged.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Bytes staged (values and keys).
    pub fn bytes(&self) -> usize {
        self.values.len() + self.keys.len()
    }

    /// The last offset staged.
    pub fn last_offset(&self) -> Option<i64> {
        self.offsets.last().copied()
    }

    fn value(&self, i: usize) -> Option<&[u8]> {
        self.value_ranges[i].map(|(a, b)| &self.values[a as usize..b as usize])
    }

    fn key(&self, i: usize) -> Option<&[u8]> {
        self.key_ranges[i].map(|(a, b)| &self.keys[a as usize..b as usize])
    }

    /// Record `i` as a rejection with this reason (raw key and value kept).
    fn reject(&self, i: usize, error: String) -> Rejected {
        Rejected {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offsets[i],
            timestamp_ms: self.timestamps[i],
            key: self.key(i).map(<[u8]>::to_vec),
            value: self.value(i).map(<[u8]>::to_vec),
            error,
        }
    }
}

/// A record that does not fit the table, bound for the dead-letter table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Kafka timestamp (ms).
    pub timestamp_ms: Option<i64>,
    /// Raw key.
    pub key: Option<Vec<u8>>,
    /// Raw value.
    pub value: Option<Vec<u8>>,
    /// Why it was rejected.
    pub error: String,
}

/// What decoding a [`RawBatch`] produced.
#[derive(Debug)]
pub struct Decoded {
    /// Rows in the table schema (None when every record was rejected).
    pub rows: Option<RecordBatch>,
    /// Rejected records, in offset order.
    pub rejected: Vec<Rejected>,
}

/// Checks that `bytes` is one JSON object and nothing else (whitespace
/// aside). Validates structure only (braces, brackets, strings); values
/// are checked by the JSON decoder.
pub fn single_object(bytes: &[u8]) -> Result<(), &'static str> {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .ok_or("value is empty")?;
    if bytes[start] != b'{' {
        return Err("value is not a JSON object");
    }
    const TRUNCATED: &str = "value is truncated (the JSON object is not closed)";
    let mut depth: u32 = 0;
    let mut end = None;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Most of a record's bytes are inside strings: jump from
                // quote or backslash to the next one (memchr scans 32 bytes
                // at a time) instead of looking at every byte.
                let mut j = i + 1;
                loop {
                    let k = j + memchr::memchr2(b'"', b'\\', &bytes[j..]).ok_or(TRUNCATED)?;
                    if bytes[k] == b'"' {
                        i = k;
                        break;
                    }
                    j = k + 2; // skip the escaped character
                    if j >= bytes.len() {
                        return Err(TRUNCATED);
                    }
                }
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1).ok_or("unbalanced brackets")?;
                if depth == 0 {
                    end = Some(i);
                    break;
                }
            }
            _ => {}
        }
        i += 1;
    }
    let end = end.ok_or(TRUNCATED)?;
    if bytes[end + 1..].iter().all(|b| b.is_ascii_whitespace()) {
        Ok(())
    } else {
        Err("value holds more than one JSON value")
    }
}

/// Decodes raw records against a stream's schema.
#[derive(Debug)]
pub struct RecordDecoder {
    spec: Arc<StreamSpec>,
}

impl RecordDecoder {
    /// A decoder for a stream.
    pub fn new(spec: Arc<StreamSpec>) -> Self {
        RecordDecoder { spec }
    }

    /// Decodes records `idx` of `raw` with one `arrow-json` decoder, fed
    /// one value at a time and checked after each to have added exactly one
    /// complete row: a value holding two objects, half an object or nothing
    /// is an error here, never joined with its neighbours, so row `n` of the
    /// result is record `idx[n]`.
    fn rows(&self, raw: &RawBatch, idx: &[usize]) -> Result<Option<RecordBatch>, String> {
        let mut d = ReaderBuilder::new(self.spec.record_schema.clone())
            .with_batch_size(idx.len().max(1))
            .build_decoder()
            .map_err(|e| e.to_string())?;
        for (n, &i) in idx.iter().enumerate() {
            let v = raw.value(i).ok_or("record has no value")?;
            let used = d.decode(v).map_err(|e| e.to_string())?;
            if used != v.len() || d.len() != n + 1 || d.has_partial_record() {
                return Err(format!(
                    "offset {} is not exactly one JSON value",
                    raw.offsets[i]
                ));
            }
        }
        d.flush().map_err(|e| e.to_string())
    }

    /// Decodes a batch: rows for the table and rejections.
    pub fn decode(&self, raw: &RawBatch) -> Decoded {
        let mut rejected = Vec::new();
        let reject =
            |i: usize, error: String, out: &mut Vec<Rejected>| out.push(raw.reject(i, error));
        // 1. The fast path: every record in bulk.
        let mut ok: Vec<usize> = (0..raw.len()).collect();
        let mut batch = self.rows(raw, &ok);
        if batch.is_err() {
            // 2. Structure of each value (bytes only: UTF-8 is left to the
            // bulk decode, which validates every string, and checked per
            // value only when that decode fails), then the rest in bulk.
            ok.clear();
            for i in 0..raw.len() {
                match raw.value(i) {
                    None => reject(
                        i,
                        "record has no value (null / tombstone)".into(),
                        &mut rejected,
                    ),
                    Some(v) => match single_object(v) {
                        Ok(()) => ok.push(i),
                        Err(e) => reject(i, e.to_string(), &mut rejected),
                    },
                }
            }
            batch = self.rows(raw, &ok);
        }
        if batch.is_err() {
            // 3. Find the culprits one by one; the rest in bulk again.
            let mut good = Vec::with_capacity(ok.len());
            for &i in &ok {
                if let Err(e) = std::str::from_utf8(raw.value(i).unwrap_or_default()) {
                    reject(i, format!("value is not UTF-8: {e}"), &mut rejected);
                    continue;
                }
                match self.rows(raw, &[i]) {
                    Ok(_) => good.push(i),
                    Err(e) => reject(i, format!("does not match the schema: {e}"), &mut rejected),
                }
            }
            ok = good;
            batch = self.rows(raw, &ok);
        }
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                // Records that decode alone but not together: reject them all
                // rather than guess (never observed; kept for totality).
                for &i in &ok {
                    reject(i, format!("does not match the schema: {e}"), &mut rejected);
                }
                ok.clear();
                None
            }
        };
        let rows = match batch {
            Some(b) if !ok.is_empty() => self.finish(raw, &ok, b, &mut rejected),
            _ => None,
        };
        rejected.sort_by_key(|r| r.offset);
        Decoded { rows, rejected }
    }

    /// Casts timestamps, adds derived partition columns and coordinates, and
    /// applies the late-data policy.
    fn finish(
        &self,
        raw: &RawBatch,
        ok: &[usize],
        batch: RecordBatch,
        rejected: &mut Vec<Rejected>,
    ) -> Option<RecordBatch> {
        let spec = &self.spec;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(spec.table_schema.fields().len());
        for (i, f) in spec.record_schema.fields().iter().enumerate() {
            let col = batch.column(i);
            columns.push(match f.data_type() {
                DataType::Timestamp(unit, _)
                    if *unit != arrow::datatypes::TimeUnit::Microsecond =>
                {
                    cast(col, &timestamp_type()).expect("timestamp casts to microseconds")
                }
                DataType::Timestamp(_, _) => {
                    cast(col, &timestamp_type()).expect("timestamp zone cast")
                }
                _ => col.clone(),
            });
        }
        let micros = |columns: &[ArrayRef], name: &str| -> TimestampMicrosecondArray {
            let idx = spec.record_schema.index_of(name).expect("validated column");
            columns[idx]
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .expect("timestamps are cast to µs")
                .clone()
        };
        for p in &spec.partition_by {
            match p {
                PartitionColumn::Column(_) => {}
                PartitionColumn::Date(c) => {
                    let d = date_bucket(&micros(&columns, c), spec.timezone);
                    columns.push(Arc::new(d));
                }
                PartitionColumn::Hour(c) => {
                    let h = hour_bucket(&micros(&columns, c), spec.timezone);
                    columns.push(Arc::new(h));
                }
            }
        }
        let n = ok.len();
        columns.push(Arc::new(StringArray::from_iter_values(
            std::iter::repeat_n(raw.topic.as_ref(), n),
        )));
        columns.push(Arc::new(Int32Array::from_value(raw.partition, n)));
        columns.push(Arc::new(Int64Array::from_iter_values(
            ok.iter().map(|&i| raw.offsets[i]),
        )));
        columns.push(Arc::new(
            TimestampMicrosecondArray::from_iter(
                ok.iter().map(|&i| raw.timestamps[i].map(|ms| ms * 1000)),
            )
            .with_timezone("UTC"),
        ));
        let out =
            RecordBatch::try_new(spec.table_schema.clone(), columns).expect("table schema matches");

        let Some(late) = spec
            .late_data
            .as_ref()
            .filter(|l| l.policy == LatePolicy::DeadLetter)
        else {
            return Some(out);
        };
        let event = micros(out.columns(), &late.column);
        let allowed = late.allowed.as_micros() as i64;
        let mut keep = Vec::with_capacity(n);
        for (row, &i) in ok.iter().enumerate() {
            let late_by = match (raw.timestamps[i], event.is_valid(row)) {
                (Some(ts), true) => ts * 1000 - event.value(row),
                _ => 0,
            };
            if late_by > allowed {
                keep.push(false);
                rejected.push(raw.reject(
                    i,
                    format!(
                        "late: {} is {} behind the Kafka timestamp (allowed {})",
                        late.column,
                        humantime::format_duration(std::time::Duration::from_secs(
                            (late_by / 1_000_000) as u64
                        )),
                        humantime::format_duration(late.allowed)
                    ),
                ));
            } else {
                keep.push(true);
            }
        }
        if keep.iter().all(|k| *k) {
            return Some(out);
        }
        let kept = filter_record_batch(&out, &BooleanArray::from(keep))
            .expect("mask has the batch's length");
        (kept.num_rows() > 0).then_some(kept)
    }
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

fn local(micros: i64, tz: Tz) -> Option<DateTime<Tz>> {
    DateTime::from_timestamp_micros(micros).map(|t| tz.from_utc_datetime(&t.naive_utc()))
}

/// Calendar date (days since 1970-01-01) of each instant in `tz`.
pub fn date_bucket(ts: &TimestampMicrosecondArray, tz: Tz) -> arrow::array::Date32Array {
    let mut b = Date32Builder::with_capacity(ts.len());
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    for v in ts.iter() {
        b.append_option(v.and_then(|m| {
            if tz == Tz::UTC {
                Some(m.div_euclid(MICROS_PER_DAY) as i32)
            } else {
                local(m, tz).map(|t| (t.date_naive() - epoch).num_days() as i32)
            }
        }));
    }
    b.finish()
}

/// Hour of day (0–23) of each instant in `tz`.
pub fn hour_bucket(ts: &TimestampMicrosecondArray, tz: Tz) -> Int32Array {
    let mut b = Int32Builder::with_capacity(ts.len());
    for v in ts.iter() {
        b.append_option(v.and_then(|m| {
            if tz == Tz::UTC {
                Some((m.rem_euclid(MICROS_PER_DAY) / 3_600_000_000) as i32)
            } else {
                local(m, tz).map(|t| t.hour() as i32)
            }
        }));
    }
    b.finish()
}

/// `YYYY-MM-DD` of a Date32 value (for partition paths and messages).
pub fn date_string(days: i32) -> String {
    let d = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date") + chrono::Days::new(0);
    let d = d
        .checked_add_signed(chrono::TimeDelta::days(days as i64))
        .unwrap_or(d);
    format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SchemaCatalog, StreamConfig};
    use arrow::datatypes::{Field, Schema, TimeUnit};
    use std::collections::BTreeMap;

    fn spec(extra: &str) -> Arc<StreamSpec> {
        let s = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
        ]);
        let catalog: SchemaCatalog = BTreeMap::from([("t".to_string(), Arc::new(s))]);
        let text = format!(
            "name = \"s\"\ntopics = [\"t\"]\ntable = \"t\"\nschema = \"t\"\npartition_by = [\"date(at)\", \"hour(at)\"]\n{extra}"
        );
        let c: StreamConfig = toml::from_str(&text).unwrap();
        Arc::new(c.resolve(&catalog).unwrap())
    }

    fn raw(values: &[Option<&str>]) -> RawBatch {
        let mut r = RawBatch::new("t".into(), 3);
        for (i, v) in values.iter().enumerate() {
            r.push(
                100 + i as i64,
                Some(1_700_000_000_000),
                Some(b"k"),
                v.map(str::as_bytes),
            );
        }
        r
    }

    #[test]
    fn structure_check() {
        assert!(single_object(br#" {"a": "}{", "b": [1, {"c": "\""}]} "#).is_ok());
        assert_eq!(
            single_object(br#"{"a":1}{"a":2}"#),
            Err("value holds more than one JSON value")
        );
        assert_eq!(
            single_object(br#"{"a":"#),
            Err("value is truncated (the JSON object is not closed)")
        );
        assert_eq!(single_object(b"[1]"), Err("value is not a JSON object"));
        assert_eq!(single_object(b"  "), Err("value is empty"));
        assert_eq!(single_object(b"}"), Err("value is not a JSON object"));
        // Escapes: an escaped quote does not end a string, an escaped
        // backslash does not escape the quote after it.
        assert!(single_object(br#"{"a": "x\"}{"}"#).is_ok());
        assert_eq!(
            single_object(br#"{"a": "x\\"}{"b": 1}"#),
            Err("value holds more than one JSON value")
        );
        assert_eq!(
            single_object(br#"{"a": "x\"#),
            Err("value is truncated (the JSON object is not closed)")
        );
        assert_eq!(
            single_object(br#"{"a": "unterminated"#),
            Err("value is truncated (the JSON object is not closed)")
        );
    }

    #[test]
    fn good_records_become_rows_with_coordinates_and_buckets() {
        let d = RecordDecoder::new(spec(""));
        let out = d.decode(&raw(&[
            Some(r#"{"id": 1, "name": "a", "at": "2026-11-21T23:30:00Z"}"#),
            Some(r#"{"id": 2, "at": "2026-11-22T01:00:00+01:00", "extra": true}"#),
        ]));
        assert!(out.rejected.is_empty(), "{:?}", out.rejected);
        let b = out.rows.unwrap();
        assert_eq!(b.num_rows(), 2);
        let date = b
            .column_by_name("date")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::Date32Array>()
            .unwrap();
        assert_eq!(date_string(date.value(0)), "2026-11-21");
        assert_eq!(date_string(date.value(1)), "2026-11-22");
        let hour = b
            .column_by_name("hour")
            .unwrap()
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap();
        assert_eq!((hour.value(0), hour.value(1)), (23, 0));
        let off = b
            .column_by_name("_offset")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(off.values().to_vec(), vec![100, 101]);
        let part = b
            .column_by_name("_partition")
            .unwrap()
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap();
        assert_eq!(part.value(1), 3);
    }

    #[test]
    fn every_kind_of_bad_record_is_rejected_with_its_reason() {
        let d = RecordDecoder::new(spec(""));
        let mut r = raw(&[
            Some(r#"{"id": 1, "at": "2026-11-21T00:00:00Z"}"#),
            None,
            Some(r#"{"id": "one", "at": "2026-11-21T00:00:00Z"}"#),
            Some(r#"{"name": "no id", "at": "2026-11-21T00:00:00Z"}"#),
            Some(r#"{"id": 5, "at": "yesterday"}"#),
            Some(r#"[1, 2]"#),
            Some(r#"{"id": 7, "at": "2026-11-21T00:00:00Z"}{"id": 8}"#),
            Some(r#"{"id": 9, "at": "2026-11-21T00:00:00Z""#),
            Some(r#"{"id": tru, "at": "2026-11-21T00:00:00Z"}"#),
            Some(r#"{"id": 11, "at": "2026-11-21T00:00:00Z"}"#),
        ]);
        r.push(110, None, None, Some(&[b'{', 0xff, b'}']));
        // Invalid UTF-8 inside a string, where only the JSON decoder looks.
        r.push(111, None, None, Some(b"{\"id\": 12, \"at\": \"\xc3\x28\"}"));
        let out = d.decode(&r);
        let rows = out.rows.unwrap();
        let off = rows
            .column_by_name("_offset")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(off.values().to_vec(), vec![100, 109]);
        let by_offset: BTreeMap<i64, &str> = out
            .rejected
            .iter()
            .map(|r| (r.offset, r.error.as_str()))
            .collect();
        assert_eq!(by_offset.len(), 10, "{by_offset:#?}");
        assert!(by_offset[&101].contains("no value"));
        assert!(by_offset[&102].contains("does not match the schema"));
        assert!(by_offset[&103].contains("does not match the schema"));
        assert!(by_offset[&104].contains("does not match the schema"));
        assert!(by_offset[&105].contains("not a JSON object"));
        assert!(by_offset[&106].contains("more than one JSON value"));
        assert!(by_offset[&107].contains("truncated"));
        assert!(by_offset[&108].contains("does not match the schema"));
        assert!(by_offset[&110].contains("not UTF-8"));
        assert!(by_offset[&111].contains("not UTF-8"));
        let r = out.rejected.iter().find(|r| r.offset == 102).unwrap();
        assert_eq!(
            r.value.as_deref(),
            Some(br#"{"id": "one", "at": "2026-11-21T00:00:00Z"}"#.as_slice())
        );
        assert_eq!(r.key.as_deref(), Some(b"k".as_slice()));
    }

    #[test]
    fn values_never_merge_or_split_across_rows() {
        // Each batch is good records around one value the fast path must
        // not turn into a row count that happens to line up.
        let d = RecordDecoder::new(spec(""));
        let good = r#"{"id": 1, "at": "2026-11-21T00:00:00Z"}"#;
        // (values, expected rejections as (offset, part of the reason))
        type Case<'a> = (&'a [&'a str], &'a [(i64, &'a str)]);
        let cases: &[Case] = &[
            // Two halves that would join into one valid object.
            (
                &[
                    good,
                    r#"{"id": 2, "#,
                    r#""at": "2026-11-21T00:00:00Z"}"#,
                    good,
                ],
                &[(101, "truncated"), (102, "not a JSON object")],
            ),
            // Two objects in one value, next to an empty value.
            (
                &[good, &format!("{good}{good}"), "  ", good],
                &[(101, "more than one JSON value"), (102, "empty")],
            ),
            // JSON that is not an object at the top.
            (
                &[good, "null", "5", r#""x""#],
                &[
                    (101, "not a JSON object"),
                    (102, "not a JSON object"),
                    (103, "not a JSON object"),
                ],
            ),
        ];
        for (values, want) in cases {
            let values: Vec<Option<&str>> = values.iter().map(|v| Some(*v)).collect();
            let out = d.decode(&raw(&values));
            let got: Vec<(i64, &str)> = out
                .rejected
                .iter()
                .map(|r| (r.offset, r.error.as_str()))
                .collect();
            assert_eq!(got.len(), want.len(), "{values:?}: {got:?}");
            for ((o, e), (wo, we)) in got.iter().zip(want.iter()) {
                assert_eq!(o, wo, "{values:?}: {got:?}");
                assert!(e.contains(we), "{values:?}: {got:?}");
            }
            let rows = out.rows.map_or(0, |b| b.num_rows());
            assert_eq!(rows + got.len(), values.len(), "{values:?}");
        }
    }

    #[test]
    fn late_records_go_to_the_dead_letter_table_when_asked() {
        let d = RecordDecoder::new(spec(
            "late_data = { allowed_lateness = \"1d\", policy = \"dead_letter\" }",
        ));
        // Kafka timestamp 2023-11-14T22:13:20Z.
        let out = d.decode(&raw(&[
            Some(r#"{"id": 1, "at": "2023-11-14T10:00:00Z"}"#),
            Some(r#"{"id": 2, "at": "2023-11-01T10:00:00Z"}"#),
        ]));
        assert_eq!(out.rows.unwrap().num_rows(), 1);
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].offset, 101);
        assert!(
            out.rejected[0].error.starts_with("late: at is 13days"),
            "{}",
            out.rejected[0].error
        );
    }

    #[test]
    fn buckets_follow_the_time_zone() {
        let ts = TimestampMicrosecondArray::from(vec![
            // 2026-03-29T00:30:00Z = 01:30 in Paris (before the DST jump).
            1_774_744_200_000_000,
            // 2026-03-29T22:30:00Z = 00:30 on the 30th in Paris (CEST).
            1_774_823_400_000_000,
        ]);
        let tz: Tz = "Europe/Paris".parse().unwrap();
        let d = date_bucket(&ts, tz);
        assert_eq!(date_string(d.value(0)), "2026-03-29");
        assert_eq!(date_string(d.value(1)), "2026-03-30");
        let h = hour_bucket(&ts, tz);
        assert_eq!((h.value(0), h.value(1)), (1, 0));
    }
}
