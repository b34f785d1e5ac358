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
#[allow(missing_docs)] // plain data: the field names say it
pub struct RawBatch {
    pub topic: Arc<str>,
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

    /// The fingerprint of the last record staged ([`crate::fingerprint`]).
    pub fn last_fingerprint(&self) -> Option<i64> {
        let i = self.len().checked_sub(1)?;
        Some(crate::fingerprint::fingerprint(
            self.timestamps[i],
            self.key(i),
            self.value(i),
        ))
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
#[allow(missing_docs)] // plain data: the field names say it
pub struct Rejected {
    pub topic: Arc<str>,
    pub partition: i32,
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
mod tests;
