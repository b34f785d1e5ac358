//! The OpenAPI document against the server it describes: schemathesis
//! (from PyPI) generates requests from the document — valid ones, and ones
//! that break each constraint — sends them to a real `tributary web` and
//! checks every answer against the document: status codes, content types,
//! headers and response bodies, no server error, invalid input refused,
//! undeclared methods answered 405.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, free_port, text};

#[test]
fn schemathesis_finds_no_mismatch_between_the_document_and_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let dags = dir.path().join("dags");
    std::fs::create_dir(&dags).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/dags/hello.toml"),
        dags.join("hello.toml"),
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.path().join("meta.db").display());
    let cli = |args: &[&str]| {
        let o = Command::new(BIN)
            .args(["--database-url", &db, "--dags-folder"])
            .arg(&dags)
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
    };
    // Something to find: a run.
    cli(&["trigger", "hello"]);
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let mut web = Command::new(BIN)
        .args(["--database-url", &db, "--dags-folder"])
        .arg(&dags)
        .args(["web", "--bind", &bind])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://{bind}/api/v1");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&bind).is_err() {
        assert!(Instant::now() < deadline, "the web server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let operations = operations_in(&get(&bind, "/api/v1/openapi.json"));
    let out = Command::new("st")
        .args(["run", &format!("{base}/openapi.json"), "--url", &base])
        .args(["--max-examples", "10", "--seed", "1"])
        .args(["--phases", "coverage,fuzzing"])
        // Random strings are valid dates to the document but not to the
        // server; every other check runs.
        .args(["--exclude-checks", "positive_data_acceptance"])
        .args(["--no-color"])
        .current_dir(dir.path())
        .output()
        .expect("schemathesis (`st`) is installed by scripts/test.sh");
    let _ = web.kill();
    let _ = web.wait();
    let report = text(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found mismatches:\n{report}\n{}",
        text(&out.stderr)
    );
    // Every operation of the document was exercised.
    assert!(
        report.contains(&format!("{operations} selected / {operations} total")),
        "{operations} operations in the document:\n{report}"
    );
}

/// The body of `GET path`, which must answer 200.
fn get(bind: &str, path: &str) -> serde_json::Value {
    let (status, body) = common::http(bind, "GET", path, None);
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// How many operations (path and method) an OpenAPI document declares,
/// but for `/openapi.json` itself: schemathesis loads the document from
/// it and leaves it out of what it tests.
fn operations_in(doc: &serde_json::Value) -> usize {
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .filter(|(path, _)| path.as_str() != "/openapi.json")
        .map(|(_, ops)| {
            ops.as_object().map_or(0, |o| {
                o.keys().filter(|k| METHODS.contains(&k.as_str())).count()
            })
        })
        .sum()
}
