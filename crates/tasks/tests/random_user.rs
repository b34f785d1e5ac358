//! The random-user transform against every recorded fixture, compared field
//! by field with an independent implementation (tests/expected_users.py).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use tasks::random_user::{
    Provenance, UserRecord, parse_response, transform, user_record_json_schema,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/randomuser")
        .join(name)
}

fn provenance() -> Provenance {
    Provenance {
        fetched_at: "2026-11-21T10:00:00Z".into(),
        dag_id: "random_user_to_kafka".into(),
        run_id: "manual__x".into(),
        logical_date: "2026-11-21T00:00:00Z".into(),
    }
}

fn check(name: &str, expected_count: usize) {
    let body = std::fs::read(fixture(name)).unwrap();
    let resp = parse_response(&body).unwrap();
    assert_eq!(resp.users.len(), expected_count);
    let py = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/expected_users.py"
        ))
        .arg(fixture(name))
        .output()
        .expect("python3 runs");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let expected: Vec<Value> = serde_json::from_slice(&py.stdout).unwrap();
    assert_eq!(expected.len(), expected_count);
    for (i, (raw, want)) in resp.users.iter().zip(&expected).enumerate() {
        let got: UserRecord =
            transform(raw, &provenance()).unwrap_or_else(|e| panic!("{name} user {i}: {e}"));
        let got = serde_json::to_value(&got).unwrap();
        for (field, w) in want.as_object().unwrap() {
            assert_eq!(&got[field], w, "{name} user {i} field {field}");
        }
        assert_eq!(got["event_time"], "2026-11-21T10:00:00Z");
        assert_eq!(got["run_id"], "manual__x");
        assert_eq!(got["zip"].as_str().unwrap().len(), 32);
    }
}

#[test]
fn one_user() {
    check("results-1.json", 1);
}

#[test]
fn fifty_users() {
    check("results-50.json", 50);
}

#[test]
fn five_thousand_users_with_every_quirk() {
    check("results-5000.json", 5000);
}

#[test]
fn record_schema_lists_every_field() {
    let s = user_record_json_schema();
    let props = s["properties"].as_object().unwrap();
    for f in [
        "user_id",
        "name",
        "gender",
        "address",
        "city",
        "nation",
        "zip",
        "latitude",
        "longitude",
        "email",
        "event_time",
        "dag_id",
        "run_id",
        "logical_date",
    ] {
        assert!(props.contains_key(f), "{f}");
    }
    assert_eq!(props.len(), 14);
    assert_eq!(s["properties"]["latitude"]["type"], "number");
}

#[test]
fn arrow_and_json_schemas_agree() {
    tasks::random_user::check_schemas_agree().unwrap();
    let arrow = tasks::random_user::user_record_arrow_schema();
    assert_eq!(arrow.fields().len(), 14);
    assert_eq!(
        arrow
            .field_with_name("event_time")
            .unwrap()
            .data_type()
            .to_string(),
        "Timestamp(µs, \"UTC\")"
    );
}
