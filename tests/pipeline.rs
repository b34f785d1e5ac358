//! The whole pipeline in one command: `tributary standalone` in an empty
//! folder (no config: SQLite, the in-memory dev broker, the offline
//! random-user API, the `users` stream into ./lake, the web UI). The example
//! DAG `random_user_to_kafka` is triggered; the `users` table must then hold
//! exactly the records the topic holds (by `lake verify`, by user_id through
//! the Python `deltalake` reader, and through the web API); SIGINT must stop
//! everything cleanly with the commits flushed.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use std::time::{Duration, Instant};

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value;

/// Every record of topic `users`: user_id → how many times.
fn topic_user_ids(bootstrap: &str) -> BTreeMap<String, usize> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "e2e-pipeline")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for p in 0..4 {
        let (_, high) = c
            .fetch_watermarks("users", p, Duration::from_secs(10))
            .unwrap();
        ends.insert(p, high);
        tpl.add_partition_offset("users", p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let total: i64 = ends.values().sum();
    let mut ids = BTreeMap::new();
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while n < total {
        assert!(Instant::now() < deadline, "read {n} of {total} records");
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            let v: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            *ids.entry(v["user_id"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
            n += 1;
        }
    }
    ids
}

/// user_id → count, as an outside reader (Python deltalake + pyarrow) sees
/// the table (`storage`: deltalake storage options as JSON). The script
/// leaves with `os._exit`: deltalake's runtime sometimes aborts during
/// interpreter teardown ("terminate called without an active exception")
/// after the answer is printed.
fn table_user_ids(table: &str, storage: &Value) -> BTreeMap<String, usize> {
    let script = "import collections, json, os, sys, deltalake\n\
                  t = deltalake.DeltaTable(sys.argv[1], storage_options=json.loads(sys.argv[2]) or None)\n\
                  t = t.to_pyarrow_table(columns=['user_id'])\n\
                  print(json.dumps(collections.Counter(t.column('user_id').to_pylist())))\n\
                  sys.stdout.flush(); os._exit(0)";
    let out = Command::new("python3")
        .args(["-c", script, table, &storage.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The shipped example DAG, made quick: 5 users every 300 ms for 3 s
/// instead of one every 10 s for two minutes.
fn quick_example_dag(env: &Env) {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("dags/random_user_to_kafka.toml"),
    )
    .unwrap();
    let quick = shipped
        .replace("results = 1\n", "results = 5\n")
        .replace("duration = \"120s\"", "duration = \"3s\"")
        .replace("interval = \"10s\"", "interval = \"300ms\"");
    assert_eq!(
        quick.matches("300ms").count(),
        1,
        "the DAG's settings moved"
    );
    assert!(quick.contains("results = 5") && quick.contains("\"3s\""));
    env.dag("random_user_to_kafka", &quick);
}

#[test]
fn standalone_runs_the_reference_pipeline_end_to_end() {
    let env = sqlite_env();
    quick_example_dag(&env);
    let cmd = env.cmd(&["standalone", "--web-bind", "127.0.0.1:0"]);
    let banner = pipeline(
        &env,
        cmd,
        &env.path("lake/users").display().to_string(),
        &Value::Null,
    );
    assert!(banner.contains("in-memory, for development"), "{banner}");
    assert!(banner.contains("metadata   sqlite://"), "{banner}");
    assert!(banner.contains("users API"), "{banner}");
    assert!(banner.contains("/lake/users/"), "{banner}");
}

#[test]
fn standalone_uses_postgres_kafka_and_s3_named_in_the_config() {
    let env = postgres_env();
    quick_example_dag(&env);
    let broker = dev_broker("users", 4);
    let endpoint = s3_endpoint();
    let bucket = format!("pipeline-{}", std::process::id());
    create_bucket(&endpoint, &bucket);
    std::fs::write(
        env.path("tributary.toml"),
        format!(
            r#"database_url = "{db}"

[kafka]
bootstrap_servers = "{kafka}"

[lake]
url = "s3://{bucket}/lake"
storage = {{ aws_endpoint = "{endpoint}", aws_allow_http = "true", aws_region = "us-east-1", aws_access_key_id = "testing", aws_secret_access_key = "testing" }}

[[stream]]
name = "users"
topics = ["users"]
table = "users"
schema = "random_user"
partition_by = ["nation", "date(event_time)"]
rotation = {{ max_age = "1s" }}
"#,
            db = env.db(),
            kafka = broker.bootstrap,
        ),
    )
    .unwrap();
    let mut cmd = env.cmd(&["standalone", "--web-bind", "127.0.0.1:0"]);
    cmd.env_remove("DATABASE_URL");
    let storage = serde_json::json!({
        "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
    });
    let banner = pipeline(&env, cmd, &format!("s3://{bucket}/lake/users"), &storage);
    assert!(banner.contains("metadata   postgres://"), "{banner}");
    assert!(
        banner.contains(&format!("kafka      {} (", broker.bootstrap)),
        "{banner}"
    );
    assert!(!banner.contains("in-memory"), "{banner}");
    assert!(
        banner.contains(&format!("s3://{bucket}/lake/users")),
        "{banner}"
    );
}

/// Starts standalone, triggers the example DAG, checks the table holds
/// exactly the topic, then stops it with SIGINT. Returns the banner.
fn pipeline(env: &Env, mut cmd: Command, table: &str, storage: &Value) -> String {
    let mut sa = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = sa.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut banner = Vec::new();
    let (mut bootstrap, mut web) = (None, None);
    let mut lines = BufReader::new(sa.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("kafka") {
            bootstrap = rest.split_whitespace().next().map(str::to_string);
        }
        if let Some(rest) = t.strip_prefix("web UI") {
            web = rest.split_whitespace().next().map(str::to_string);
        }
        banner.push(line.clone());
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    let banner = banner.join("\n");
    let out_reader = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let bootstrap = bootstrap.unwrap_or_else(|| panic!("no kafka line in:\n{banner}"));
    let web = web.unwrap_or_else(|| panic!("no web UI line in:\n{banner}"));
    assert!(banner.contains("stream     users"), "{banner}");
    assert!(banner.contains(&format!("Open {web}")), "{banner}");

    let out = env.ok(&[
        "trigger",
        "random_user_to_kafka",
        "--wait",
        "--timeout",
        "120",
    ]);
    let run_id = out
        .split_whitespace()
        .find(|w| w.starts_with("manual__"))
        .unwrap()
        .to_string();
    let log = env.ok(&[
        "tasks",
        "logs",
        "random_user_to_kafka",
        &run_id,
        "stream_users",
    ]);
    assert!(log.contains("delivered"), "{log}");
    // The schedule's own run (catchup = false: the latest interval) may be
    // producing too; wait until no run is active, then the topic is final.
    env.eventually("every run of the DAG to end", || {
        let runs = env.json(&["runs", "list", "random_user_to_kafka"]);
        runs.as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] == "success" || r["state"] == "failed")
    });
    let produced = topic_user_ids(&bootstrap);
    let total: usize = produced.values().sum();
    assert!(
        total >= 25,
        "the triggered run alone sends ≥ 25 users: {total}"
    );
    assert!(
        produced.values().all(|n| *n == 1),
        "user ids are unique in the topic"
    );

    // Within seconds the table holds them all (rotation max_age 2 s).
    env.eventually("the users table to hold every produced record", || {
        let o = env.run(&["lake", "ls", "users", "-o", "json"]);
        o.status.success()
            && serde_json::from_slice::<Value>(&o.stdout).unwrap()["rows"] == total as u64
    });
    let verify = env.run(&["lake", "verify", "users"]);
    assert!(
        verify.status.success(),
        "{}\n{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
    assert_eq!(table_user_ids(table, storage), produced);

    // The web UI's streams API says the same.
    let streams: Value = serde_json::from_str(
        &String::from_utf8(
            Command::new("curl")
                .args(["-sf", &format!("{web}api/v1/streams/users")])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(streams["rows"], total as u64, "{streams}");
    assert_eq!(streams["total_lag"], 0, "{streams}");
    assert_eq!(streams["state"], "caught up");

    // Ctrl-C: everything stops, cleanly and in bounded time.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sa.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(45);
    let status = loop {
        if let Some(s) = sa.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "standalone did not stop after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = err_reader.join().unwrap();
    let _ = out_reader.join();
    assert!(status.success(), "exit {status:?}\n{err}");
    assert!(err.contains("shutting down gracefully"), "{err}");
    assert!(!err.contains("did not stop within"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let after = env.run(&["lake", "verify", "users"]);
    assert!(after.status.success(), "{}", text(&after.stdout));
    banner
}
