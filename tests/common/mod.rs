//! Helpers shared by the end-to-end suites: a temporary project with its own
//! metadata database, the real binary, and scheduler processes.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod lake;

pub const BIN: &str = env!("CARGO_BIN_EXE_tributary");

pub struct Env {
    dir: tempfile::TempDir,
    db: String,
}

impl Env {
    pub fn new(db: String, dir: tempfile::TempDir) -> Env {
        std::fs::create_dir_all(dir.path().join("dags")).unwrap();
        Env { dir, db }
    }

    /// The metadata database URL.
    pub fn db(&self) -> &str {
        &self.db
    }

    pub fn dags(&self) -> PathBuf {
        self.dir.path().join("dags")
    }

    pub fn dag(&self, name: &str, text: &str) {
        std::fs::write(self.dags().join(format!("{name}.toml")), text).unwrap();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("DATABASE_URL", &self.db)
            .env("TRIBUTARY_DAGS_FOLDER", self.dags())
            .env("TMPDIR", self.dir.path())
            .current_dir(self.dir.path());
        c
    }

    /// Starts `tributary standalone` (web UI on `web_bind`, or `off`) and
    /// returns it with its banner's lines, once the banner is out. Its
    /// stdout is drained afterwards, so the process never blocks or finds
    /// its output closed.
    pub fn standalone(&self, web_bind: &str) -> (Child, Vec<String>) {
        let mut child = self
            .cmd(&["standalone", "--web-bind", web_bind])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut banner = Vec::new();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            let done = line.starts_with("Ctrl-C");
            banner.push(line);
            if done {
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        (child, banner)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "{args:?} failed:\n{}\n{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        text(&o.stdout)
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    pub fn scheduler(&self) -> Scheduler {
        let log = std::fs::File::create(self.path("scheduler.log")).unwrap();
        let child = self
            .cmd(&["scheduler", "--dag-refresh-secs", "1"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Scheduler(child)
    }

    /// Waits (bounded) until `check` holds, re-checking whenever asked.
    pub fn eventually(&self, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn task_states(&self, dag: &str, run_id: &str) -> Vec<(String, String, u64)> {
        let v = self.json(&["tasks", "list", dag, run_id]);
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["task_id"].as_str().unwrap().to_string(),
                    t["state"].as_str().unwrap().to_string(),
                    t["try_number"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    pub fn state_of(&self, dag: &str, run_id: &str, task: &str) -> String {
        self.task_states(dag, run_id)
            .into_iter()
            .find(|t| t.0 == task)
            .unwrap()
            .1
    }
}

pub struct Scheduler(pub Child);

impl Scheduler {
    pub fn interrupt(mut self) -> std::process::ExitStatus {
        let st = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let status = self.0.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn sqlite_env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("meta.db").display());
    Env::new(db, dir)
}

pub fn postgres_env() -> Env {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let admin = scheduler::store::scratch::admin_url();
    let db = rt
        .block_on(scheduler::store::scratch::postgres_database(&admin))
        .expect("PostgreSQL is running");
    Env::new(db, tempfile::tempdir().unwrap())
}

/// Generates one test per backend for each named function taking an [`Env`].
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[test] fn $name() { super::$name(super::common::sqlite_env()); })* }
        mod postgres { $(#[test] fn $name() { super::$name(super::common::postgres_env()); })* }
    };
}

/// The run id in `trigger` output.
pub fn run_id_from(out: &str) -> String {
    out.split_whitespace()
        .skip_while(|w| *w != "run")
        .nth(1)
        .unwrap()
        .to_string()
}

/// A broker in its own process, killed on drop.
pub struct BrokerProcess {
    pub child: Child,
    pub bootstrap: String,
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tributary dev kafka`: librdkafka's mock cluster in a separate process.
pub fn dev_broker(topic: &str, partitions: i32) -> BrokerProcess {
    dev_broker_with(&[(topic, partitions)])
}

/// The dev broker with several topics (name, partitions).
pub fn dev_broker_with(topics: &[(&str, i32)]) -> BrokerProcess {
    let mut cmd = Command::new(BIN);
    cmd.args(["dev", "kafka"]);
    for (topic, partitions) in topics {
        cmd.args(["--topic", &format!("{topic}:{partitions}")]);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    // Keep reading what it prints, so it never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let bootstrap = line
        .split_whitespace()
        .find(|w| w.contains(':') && w.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    BrokerProcess { child, bootstrap }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn s3_endpoint() -> String {
    std::env::var("TRIBUTARY_TEST_S3")
        .expect("TRIBUTARY_TEST_S3 (a moto server URL) is set by ./scripts/test.sh; run the suite through it")
}

/// Creates a bucket on the moto server (plain HTTP; moto does not check signatures).
pub fn create_bucket(endpoint: &str, bucket: &str) {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(host).unwrap_or_else(|e| panic!("moto at {endpoint}: {e}"));
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "create bucket: {resp}");
}

/// Stops a process the way Ctrl-C does and checks it shut down cleanly.
pub fn interrupt(mut child: Child) {
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(child.wait().unwrap().success(), "clean shutdown");
}

/// One HTTP/1.0 request (so the answer ends with the connection and is not
/// chunked): the status code and the body as JSON (`Null` when it is not
/// JSON).
pub fn http(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}
