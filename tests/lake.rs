//! The lake through the real binary: streams declared in `tributary.toml`,
//! `stream run` killed with SIGKILL over and over during a continuous
//! produce (on the dev broker and on Tansu), two writers on S3 (moto), bad
//! config, `lake verify` failing on a broken table, and outside readers
//! (Python `deltalake` + `pyarrow`) agreeing with `lake verify`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::lake::{Guard, Project, produce, produce_batched, python_read};
use common::{BIN, BrokerProcess, create_bucket, dev_broker, free_port, s3_endpoint, text};
use rdkafka::ClientConfig;
use serde_json::Value;

/// Tansu, the independent Kafka-compatible broker (installed by
/// scripts/test.sh), with an in-memory store.
fn tansu_broker(topic: &str, partitions: i32) -> BrokerProcess {
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new("tansu")
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start tansu ({e}): run ./scripts/test.sh, which installs it")
        });
    let b = BrokerProcess {
        child,
        bootstrap: format!("127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(&b.bootstrap).is_err() {
        assert!(
            Instant::now() < deadline,
            "tansu did not listen on {}",
            b.bootstrap
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    create_topic(&b.bootstrap, topic, partitions);
    b
}

fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .unwrap();
        let r = admin
            .create_topics(
                &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new(),
            )
            .await
            .unwrap();
        for x in r {
            x.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e}"));
        }
    });
}

/// A small deterministic generator for kill moments (seed printed).
struct Lcg(u64);
impl Lcg {
    fn next_in(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        lo + (self.0 >> 33) % (hi - lo)
    }
}

fn sigkill(child: &mut Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
}

/// Produces continuously while `stream run` is SIGKILLed at random moments
/// `kills` times; then one catch-up run, `lake verify` and the Python
/// reader must all agree that every record is in the table exactly once.
///
/// `own_groups` gives each writer run its own consumer group: Tansu 0.6
/// sometimes keeps a SIGKILLed member in the group far past its session
/// timeout (observed: a new member waited more than 2 minutes to be
/// assigned anything). Writers resume from the table log, not the group, so
/// the guarantee is the same either way.
fn chaos(broker: &BrokerProcess, kills: usize, batched: bool, own_groups: bool) {
    let project = Project::new(
        &broker.bootstrap,
        "lake",
        "",
        "{ max_rows = 400, max_age = \"250ms\" }",
    );
    let produced = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let producer = {
        let (bootstrap, produced, done) =
            (broker.bootstrap.clone(), produced.clone(), done.clone());
        std::thread::spawn(move || {
            // 30 batches of 500, spread over the kills.
            for b in 0..30u64 {
                produce_batched(&bootstrap, "events", b * 500, 500, batched);
                produced.fetch_add(500, Ordering::SeqCst);
                if done.load(Ordering::SeqCst) {
                    break;
                }
            }
        })
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("chaos seed {seed}");
    let mut rng = Lcg(seed);
    for i in 0..kills {
        if own_groups {
            project.use_group(&format!("chaos-{i}"));
        }
        let mut w = project.writer(false);
        std::thread::sleep(Duration::from_millis(rng.next_in(200, 2500)));
        sigkill(&mut w);
    }
    done.store(true, Ordering::SeqCst);
    producer.join().unwrap();
    let total = produced.load(Ordering::SeqCst);
    if own_groups {
        project.use_group("chaos-final");
    }
    project.catch_up();
    let out = project
        .cmd(&["lake", "verify", "events", "-o", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    if !out.status.success() || v["rows_read"].as_u64() != Some(total) {
        let _ = std::fs::write(
            std::env::temp_dir().join("tributary-chaos-writers.log"),
            project.writer_log(),
        );
        let log = project.writer_log();
        let interesting: Vec<&str> = log
            .lines()
            .filter(|l| {
                l.contains("WARN")
                    || l.contains("ERROR")
                    || l.contains("assigned")
                    || l.contains("revoked")
            })
            .collect();
        panic!("{v:#}\nwriters' warnings:\n{}", interesting.join("\n"));
    }
    assert_eq!(v["rejected_read"].as_u64(), Some(0));
    let (rows, distinct) = python_read(project.table_path().to_str().unwrap(), &[]);
    assert_eq!((rows, distinct), (total, total));
}

#[test]
fn exactly_once_while_the_writer_is_killed_20_times_on_the_dev_broker() {
    let broker = dev_broker("events", 4);
    chaos(&broker, 20, true, false);
}

#[test]
fn exactly_once_while_the_writer_is_killed_20_times_on_tansu() {
    let broker = tansu_broker("events", 4);
    chaos(&broker, 20, false, true);
}

fn delete_topic(bootstrap: &str, topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .unwrap();
        for x in admin
            .delete_topics(&[topic], &AdminOptions::new())
            .await
            .unwrap()
        {
            x.unwrap_or_else(|(t, e)| panic!("cannot delete topic {t}: {e}"));
        }
    });
}

#[test]
fn a_topic_deleted_and_recreated_under_a_running_writer_loses_nothing_and_reset_continues() {
    let broker = tansu_broker("events", 2);
    let project = Project::new(&broker.bootstrap, "lake", "", "{ max_rows = 10 }");
    produce_batched(&broker.bootstrap, "events", 0, 40, false);
    let mut w = Guard(project.writer(false));
    let deadline = Instant::now() + Duration::from_secs(120);
    let rows = || {
        let out = project
            .cmd(&["lake", "verify", "events", "-o", "json"])
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v["rows_read"].as_u64())
    };
    while rows() != Some(40) {
        assert!(
            Instant::now() < deadline,
            "40 rows did not land:\n{}",
            project.writer_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Under the running writer: the topic goes, comes back, and its new log
    // grows past what the table holds.
    delete_topic(&broker.bootstrap, "events");
    create_topic(&broker.bootstrap, "events", 2);
    produce_batched(&broker.bootstrap, "events", 1000, 200, false);
    // The running writer stops with the documented error, found by its
    // idle log check: Tansu answers fetches of the old topic id with no
    // topic at all, which librdkafka ignores (and 2.12.1 unpatched died on:
    // vendor/rdkafka-sys/PATCHED.md), so no record and no error arrive.
    // Nothing of the new log lands under the old offsets.
    let status = w.wait_for(Duration::from_secs(120));
    let log = project.writer_log();
    assert!(
        status.is_some_and(|s| s.code() == Some(1)),
        "the writer went on with another log, or died ({status:?}):\n{log}"
    );
    assert!(
        log.contains("is not the one the table recorded")
            && log.contains("`tributary stream reset-offsets events`"),
        "{log}"
    );
    assert_eq!(rows(), Some(40), "nothing written from the new log");
    // Restarted, it refuses with the documented error: the new log is
    // longer, so only the fingerprint of the record at the committed
    // offset tells it from the old one.
    let again = project
        .cmd(&["stream", "run", "events", "--until-caught-up"])
        .output()
        .unwrap();
    let err = text(&again.stderr);
    assert!(!again.status.success(), "{err}");
    assert!(
        err.contains("is not the one the table recorded")
            && err.contains("`tributary stream reset-offsets events`"),
        "{err}"
    );
    assert_eq!(rows(), Some(40));
    // The documented command keeps the table and takes the new log whole.
    let out = project
        .cmd(&["stream", "reset-offsets", "events"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    project.catch_up();
    assert_eq!(
        project.verify()["rows_read"].as_u64(),
        Some(240),
        "{}",
        project.writer_log()
    );
}

/// A plain HTTP GET (status line included in the result when not 200).
fn http_get(addr: &str, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp
}

#[test]
fn two_writers_on_s3_with_conditional_commits() {
    let endpoint = s3_endpoint();
    let bucket = format!("lake-{}", std::process::id());
    create_bucket(&endpoint, &bucket);
    let broker = dev_broker("events", 4);
    produce(&broker.bootstrap, "events", 0, 3000);
    let storage = format!(
        "storage = {{ aws_endpoint = \"{endpoint}\", aws_allow_http = \"true\", aws_region = \"us-east-1\", \
         aws_access_key_id = \"${{TEST_KEY:-testing}}\", aws_secret_access_key = \"testing\" }}"
    );
    let project = Project::new(
        &broker.bootstrap,
        &format!("s3://{bucket}/lake"),
        &storage,
        "{ max_rows = 200, max_age = \"200ms\" }",
    );
    // Two writers in one group, started together: partitions are split and
    // both commit to the same table through put-if-absent log entries.
    let a = Guard(project.writer(true));
    let b = Guard(project.writer(true));
    for (name, mut w) in [("a", a), ("b", b)] {
        let status = w.wait_for(Duration::from_secs(180));
        assert!(
            status.is_some_and(|s| s.success()),
            "writer {name} ({status:?}):\n{}",
            project.writer_log()
        );
    }
    produce(&broker.bootstrap, "events", 3000, 1000);
    project.catch_up();
    let v = project.verify();
    assert_eq!(v["rows_read"].as_u64(), Some(4000), "{v:#}");
    let (rows, distinct) = python_read(
        &format!("s3://{bucket}/lake/events"),
        &[
            ("AWS_ENDPOINT_URL", &endpoint),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ],
    );
    assert_eq!((rows, distinct), (4000, 4000));
    let ls = text(
        &project
            .cmd(&["lake", "ls", "events"])
            .output()
            .unwrap()
            .stdout,
    );
    assert!(ls.contains(&format!("s3://{bucket}/lake/events/")), "{ls}");
    assert!(ls.contains("nation=FR/date=2026-11-21"), "{ls}");
}

#[test]
fn graceful_stop_on_sigint_commits_and_verify_catches_a_broken_table() {
    let broker = dev_broker("events", 2);
    // Nothing is flushed on its own for an hour: only the stop commits.
    let project = Project::new(&broker.bootstrap, "lake", "", "{ max_age = \"1h\" }");
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let w = project
        .cmd(&["stream", "run", "events", "--metrics-bind", &bind])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    produce(&broker.bootstrap, "events", 0, 500);
    // Wait until the writer holds all 500 records (its metrics say so).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = http_get(&bind, "/metrics");
        if m.contains("tributary_stream_records_in_total{stream=\"events\"} 500") {
            assert!(
                m.contains("tributary_stream_commits_total{stream=\"events\"} 0"),
                "{m}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the writer never received the records:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Nothing is committed yet; SIGINT flushes and commits it all.
    assert!(
        !project
            .table_path()
            .join("_delta_log/00000000000000000001.json")
            .exists()
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(w.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = w.wait_with_output().unwrap();
    assert!(out.status.success(), "exit {:?}", out.status);
    assert!(
        text(&out.stdout).contains("500 records in, 500 rows written"),
        "{}",
        text(&out.stdout)
    );
    let v = project.verify();
    assert_eq!(v["rows_read"].as_u64(), Some(500), "{v:#}");

    // A second stream writing the same topic into the same table breaks
    // exactly once: verify says so and exits 1.
    let cfg = std::fs::read_to_string(project.dir.path().join("tributary.toml")).unwrap();
    let rogue = cfg
        .replace("name = \"events\"", "name = \"rogue\"")
        .replace(
            "table = \"events\"",
            "table = \"events\"\ngroup = \"rogue\"",
        );
    std::fs::write(project.dir.path().join("rogue.toml"), rogue).unwrap();
    let out = project
        .cmd(&[
            "stream",
            "run",
            "rogue",
            "--until-caught-up",
            "--config",
            "rogue.toml",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = project.cmd(&["lake", "verify", "events"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let report = text(&out.stdout);
    assert!(
        report.contains("events/0: offset 0 is in the table more than once"),
        "{report}"
    );
    assert!(
        report.contains("more offsets are in the table more than once"),
        "{report}"
    );
    assert!(
        report.lines().count() < 40,
        "problems are summarized:\n{report}"
    );
}

#[test]
fn bad_stream_config_is_reported_with_file_line_col() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tributary.toml");
    std::fs::write(
        &path,
        "[[stream]]\nname = \"users\"\ntopics = [\"users\"]\ntable = \"users\"\nschema = \"random_user\"\npartition_by = [\"nation\", \"date(event_tme)\"]\nrotation = { max_bytes = \"lots\" }\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["stream", "list"])
        .env("TRIBUTARY_CONFIG", &path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    let file = path.display().to_string();
    assert!(err.contains(&format!("{file}:6:27: stream \"users\": partition_by: no column \"event_tme\" in the schema (did you mean \"event_time\"?)")), "{err}");
    assert!(
        err.contains(&format!(
            "{file}:7:12: stream \"users\": rotation.max_bytes: invalid size \"lots\""
        )),
        "{err}"
    );
}

#[test]
fn the_built_in_config_declares_the_users_stream() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["stream", "list", "-o", "json"])
        .current_dir(dir.path())
        .env_remove("TRIBUTARY_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["name"], "users");
    assert_eq!(v[0]["partition_by"], serde_json::json!(["nation", "date"]));
    let lake = v[0]["lake"].as_str().unwrap();
    assert!(
        lake.starts_with("file:///") && lake.ends_with("/lake/"),
        "{lake}"
    );
}
