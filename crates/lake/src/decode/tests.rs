//! The decoder against hand-made batches: fast path, fallbacks, rejects.

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
