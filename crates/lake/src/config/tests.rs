//! Resolution of `[[stream]]` declarations: defaults, every section, and
//! every problem reported at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, Field, Schema};

use super::*;

fn catalog() -> SchemaCatalog {
    let s = Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("nation", DataType::Utf8, false),
        Field::new(
            "event_time",
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("score", DataType::Float64, true),
    ]);
    BTreeMap::from([("users".to_string(), Arc::new(s))])
}

fn parse(text: &str) -> Result<StreamSpec, Vec<String>> {
    let c: StreamConfig = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
    c.resolve(&catalog())
        .map_err(|v| v.into_iter().map(|(_, m)| m).collect())
}

#[test]
fn a_full_stream_resolves() {
    let s = parse(
        r#"
        name = "users"
        topics = ["users"]
        table = "users"
        schema = "users"
        partition_by = ["nation", "date(event_time)", "hour(event_time)"]
        timezone = "Europe/Paris"
        memory_budget = "64MiB"
        late_data = { allowed_lateness = "2d", policy = "dead_letter" }
        rotation = { max_rows = 5000, max_age = "2s" }
        parquet = { compression = "zstd", level = 5, row_group_rows = 10000, dictionary = "off" }
        "#,
    )
    .unwrap();
    assert_eq!(s.dictionary, Dictionary::Off);
    assert_eq!(s.group, "tributary-users");
    assert_eq!(s.dead_letter_table, "users_dead_letter");
    assert_eq!(s.codec, Codec::Zstd(5));
    assert_eq!(s.rotation.max_rows, 5000);
    assert_eq!(s.rotation.max_bytes, 128 << 20);
    assert_eq!(s.rotation.max_age, Duration::from_secs(2));
    assert_eq!(s.memory_budget, 64 << 20);
    assert_eq!(s.late_data.unwrap().column, "event_time");
    let names: Vec<&str> = s
        .table_schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(
        names,
        [
            "id",
            "nation",
            "event_time",
            "score",
            "date",
            "hour",
            "_topic",
            "_partition",
            "_offset",
            "_timestamp"
        ]
    );
}

#[test]
fn every_problem_is_reported() {
    let errs = parse(
        r#"
        name = "bad name"
        topics = []
        table = "users"
        schema = "users"
        partition_by = ["natoin", "date(score)", "score"]
        timezone = "Mars/Olympus"
        late_data = { allowed_lateness = "soon" }
        rotation = { max_rows = 0, max_bytes = "9 parsecs" }
        parquet = { compression = "brotli", dictionary = "sometimes" }
        consumer = { "group.id" = "x" }
        "#,
    )
    .unwrap_err();
    let all = errs.join("\n");
    for want in [
        "invalid stream name",
        "topics: name at least one topic",
        "no column \"natoin\" in the schema (did you mean \"nation\"?)",
        "date(score) needs a timestamp column",
        "column \"score\" has type Float64",
        "unknown time zone \"Mars/Olympus\"",
        "late_data.allowed_lateness: invalid duration \"soon\"",
        "rotation.max_rows must be at least 1",
        "rotation.max_bytes: invalid size",
        "parquet.compression \"brotli\"",
        "parquet.dictionary \"sometimes\": use auto, on or off",
        "consumer.\"group.id\"",
    ] {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }
}

#[test]
fn inline_columns() {
    let s = parse(
        r#"
        name = "events"
        topics = ["events"]
        table = "events"
        schema = { columns = [
          { name = "id", type = "int64", nullable = false },
          { name = "kind", type = "utf8" },
          { name = "at", type = "timestamp[ms, UTC]" },
        ] }
        partition_by = ["kind", "date(at)"]
        "#,
    )
    .unwrap();
    assert_eq!(s.record_schema.fields().len(), 3);
    assert!(!s.record_schema.field(0).is_nullable());
    let errs = parse(
        r#"
        name = "events"
        topics = ["events"]
        table = "events"
        schema = { columns = [{ name = "id", type = "int65" }, { name = "_offset", type = "int64" }] }
        "#,
    )
    .unwrap_err()
    .join("\n");
    assert!(
        errs.contains("column \"id\": unknown Arrow type \"int65\""),
        "{errs}"
    );
    assert!(
        errs.contains("reserved for the Kafka coordinates"),
        "{errs}"
    );
}
