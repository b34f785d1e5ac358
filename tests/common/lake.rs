//! A lake project for end-to-end suites: a `tributary.toml` with one
//! `events` stream (id, nation, at; partitioned by nation and day), its
//! writer run through the real binary, and an outside reader (Python
//! `deltalake`) to check what it wrote.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{BIN, http, text};

pub fn record(i: u64) -> String {
    let nations = ["FR", "DE", "US", "BR", "NL"];
    format!(
        r#"{{"id": {i}, "nation": "{}", "at": "2026-11-2{}T10:00:00Z"}}"#,
        nations[(i % 5) as usize],
        1 + i % 3
    )
}

/// Produces `n` records (ids from `from`), keyed by id, and flushes.
pub fn produce(bootstrap: &str, topic: &str, from: u64, n: u64) {
    produce_batched(bootstrap, topic, from, n, true)
}

/// `batched = false` puts every record in a batch of its own (see
/// `testkit::kafka::produce_blocking` for why Tansu needs that).
pub fn produce_batched(bootstrap: &str, topic: &str, from: u64, n: u64, batched: bool) {
    let records = (from..from + n).map(|i| (i.to_string(), record(i)));
    testkit::kafka::produce_blocking(bootstrap, topic, records, !batched);
}

pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new(bootstrap: &str, lake: &str, storage: &str, rotation: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("dags")).unwrap();
        std::fs::write(
            dir.path().join("tributary.toml"),
            format!(
                r#"
[kafka]
bootstrap_servers = "{bootstrap}"
properties = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }}

[lake]
url = "{lake}"
{storage}

[metrics]
bind = "off"

[[stream]]
name = "events"
topics = ["events"]
table = "events"
schema = {{ columns = [
  {{ name = "id", type = "int64", nullable = false }},
  {{ name = "nation", type = "utf8", nullable = false }},
  {{ name = "at", type = "timestamp[us, UTC]", nullable = false }},
] }}
partition_by = ["nation", "date(at)"]
rotation = {rotation}
"#
            ),
        )
        .unwrap();
        Project { dir }
    }

    /// A local-lake project whose `events` table holds records `0..n`
    /// (rotation 100 rows or 200 ms), landed by the writer.
    pub fn landed(bootstrap: &str, n: u64) -> Project {
        let project = Project::new(
            bootstrap,
            "lake",
            "",
            "{ max_rows = 100, max_age = \"200ms\" }",
        );
        produce(bootstrap, "events", 0, n);
        project.catch_up();
        project
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("TRIBUTARY_CONFIG", self.dir.path().join("tributary.toml"))
            .env(
                "DATABASE_URL",
                format!("sqlite://{}/meta.db", self.dir.path().display()),
            )
            .env_remove("TRIBUTARY_KAFKA_BOOTSTRAP")
            .current_dir(self.dir.path());
        c
    }

    /// Starts `stream run events`; its output is appended to writers.log.
    pub fn writer(&self, until_caught_up: bool) -> Child {
        let mut args = vec!["stream", "run", "events"];
        if until_caught_up {
            args.push("--until-caught-up");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("writers.log"))
            .unwrap();
        self.cmd(&args)
            .env("TRIBUTARY_LOG", "info,lake=debug")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// The writers' output so far (shown when an assertion fails).
    pub fn writer_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("writers.log")).unwrap_or_default()
    }

    pub fn catch_up(&self) {
        let mut w = Guard(self.writer(true));
        let status = w.wait_for(Duration::from_secs(180));
        assert!(
            status.is_some_and(|s| s.success()),
            "catch-up failed ({status:?}):\n{}",
            self.writer_log()
        );
    }

    /// Gives the next writers their own consumer group.
    pub fn use_group(&self, group: &str) {
        let path = self.dir.path().join("tributary.toml");
        let cfg = std::fs::read_to_string(&path).unwrap();
        let mut out = String::new();
        for line in cfg.lines() {
            if line.starts_with("group = ") {
                continue;
            }
            out.push_str(line);
            out.push('\n');
            if line == "table = \"events\"" {
                out.push_str(&format!("group = \"{group}\"\n"));
            }
        }
        std::fs::write(path, out).unwrap();
    }

    pub fn verify(&self) -> Value {
        let out = self
            .cmd(&["lake", "verify", "events", "-o", "json"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "verify output ({e}):\n{}\n{}",
                text(&out.stdout),
                text(&out.stderr)
            )
        });
        assert!(out.status.success(), "lake verify failed: {v:#}");
        v
    }

    /// Starts `tributary web` on a free loopback port: one long-running
    /// SQL engine, as the Query page and the API use it. The process, and
    /// its address once it listens (read from its banner).
    pub fn web(&self) -> (Guard, String) {
        self.web_on(&["--bind", "127.0.0.1:0"])
    }

    /// [`Project::web`] with these arguments after `web` (none: the
    /// project's `[web] bind`).
    pub fn web_on(&self, args: &[&str]) -> (Guard, String) {
        let mut child = self
            .cmd(&[&["web"], args].concat())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let banner = lines.next().expect("the web server's banner").unwrap();
        let addr = banner
            .split("http://")
            .nth(1)
            .and_then(|s| s.split('/').next())
            .unwrap_or_else(|| panic!("no address in {banner:?}"))
            .to_string();
        std::thread::spawn(move || lines.for_each(drop));
        (Guard(child), addr)
    }

    /// `POST /api/v1/sql` to a running server: the rows as objects by
    /// column name, what the view layers read are made of, and the tables
    /// read with their versions.
    pub fn api_sql(addr: &str, sql: &str) -> (Vec<Value>, Vec<String>, Value) {
        let (status, body) = http(
            addr,
            "POST",
            "/api/v1/sql",
            Some(&serde_json::json!({ "sql": sql })),
        );
        assert_eq!(status, 200, "{sql}: {body:#}");
        let names: Vec<&str> = body["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        let rows = body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let cells = r.as_array().unwrap();
                Value::Object(
                    names
                        .iter()
                        .zip(cells)
                        .map(|(n, c)| (n.to_string(), c.clone()))
                        .collect(),
                )
            })
            .collect();
        let made_of = body["made_of"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap().to_string())
            .collect();
        (rows, made_of, body["tables"].clone())
    }

    /// Appends declarations to the project's `tributary.toml`.
    pub fn add_config(&self, text: &str) {
        let path = self.dir.path().join("tributary.toml");
        let mut cfg = std::fs::read_to_string(&path).unwrap();
        cfg.push_str(text);
        std::fs::write(path, cfg).unwrap();
    }

    /// Writes `name` beside `tributary.toml`: the project's config with
    /// `from` replaced by `to` (which must change it). Its path.
    pub fn config_variant(&self, name: &str, from: &str, to: &str) -> PathBuf {
        let base = std::fs::read_to_string(self.dir.path().join("tributary.toml")).unwrap();
        let text = base.replace(from, to);
        assert_ne!(base, text, "{from:?} is not in tributary.toml");
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs the binary on the project; it must succeed. Its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?} failed:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// A command's `-o json` answer (the command must succeed).
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// The state of generation `n` of `events` (`lake generations`).
    pub fn generation_state(&self, n: u32) -> String {
        let gens = self.json(&["lake", "generations", "events"]);
        gens.as_array()
            .unwrap()
            .iter()
            .find(|g| g["generation"] == n)
            .map(|g| g["state"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no generation {n}: {gens:#}"))
    }

    /// Runs a transform until it is caught up; its stdout (the summary).
    pub fn catch_up_transform(&self, name: &str) -> String {
        self.ok(&[
            "transform",
            "run",
            name,
            "--until-caught-up",
            "--metrics-bind",
            "off",
        ])
    }

    pub fn table_path(&self) -> PathBuf {
        self.dir.path().join("lake/events")
    }
}

/// Row count and distinct (partition, offset) pairs of a Delta table, read
/// by the Python `deltalake` and `pyarrow` packages.
pub fn python_read(table: &str, storage: &[(&str, &str)]) -> (u64, u64) {
    let opts: serde_json::Map<String, Value> = storage
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    let script = r#"
import json, os, sys
from deltalake import DeltaTable
import pyarrow.compute as pc
t = DeltaTable(sys.argv[1], storage_options=json.loads(sys.argv[2]) or None).to_pyarrow_table()
pairs = set(zip(t.column("_partition").to_pylist(), t.column("_offset").to_pylist()))
print(json.dumps({"rows": t.num_rows, "distinct": len(pairs)}))
sys.stdout.flush()
os._exit(0)  # deltalake sometimes aborts in interpreter teardown, after the answer
"#;
    let out = Command::new("python3")
        .args(["-c", script, table, &Value::Object(opts).to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python deltalake reader failed (./scripts/test.sh installs deltalake and pyarrow):\n{}",
        text(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (v["rows"].as_u64().unwrap(), v["distinct"].as_u64().unwrap())
}

/// A child process killed when dropped (a failing test leaves no writer behind).
pub struct Guard(pub Child);

impl Guard {
    /// Waits up to `limit` for the process to exit; None if it did not.
    pub fn wait_for(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// DuckDB (PyPI `duckdb` + `duckdb-ext-delta`, loaded from the file the
/// package ships) runs `sql`, where `{t}` is `delta_scan('<table>')` and
/// `{path}` the table's path; rows
/// as objects by column name.
pub fn duckdb(table: &std::path::Path, sql: &str) -> Vec<Row> {
    let script = r#"
import glob, json, os, site, sys
import duckdb
ext = [p for d in site.getsitepackages() + [site.getusersitepackages()]
       for p in glob.glob(d + "/duckdb_ext/extensions/*/*/delta.duckdb_extension")]
con = duckdb.connect()
con.execute(f"LOAD '{ext[0]}'")
cur = con.execute(sys.argv[2].replace("{t}", f"delta_scan('{sys.argv[1]}')").replace("{path}", sys.argv[1]))
names = [d[0] for d in cur.description]
print(json.dumps([dict(zip(names, r)) for r in cur.fetchall()], default=str))
sys.stdout.flush()
os._exit(0)
"#;
    let out = Command::new("python3")
        .args(["-c", script, table.to_str().unwrap(), sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "DuckDB failed (./scripts/test.sh installs duckdb and duckdb-ext-delta):\n{}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub type Row = serde_json::Map<String, Value>;

/// A lake in a fresh bucket of the moto S3 server: its URL, the
/// `storage = {…}` line of `tributary.toml`, and the endpoint.
pub fn s3_lake(prefix: &str) -> (String, String, String) {
    let endpoint = super::s3_endpoint();
    let bucket = format!("{prefix}-{}", std::process::id());
    super::create_bucket(&endpoint, &bucket);
    let storage = format!(
        "storage = {{ aws_endpoint = \"{endpoint}\", aws_allow_http = \"true\", aws_region = \"us-east-1\", \
         aws_access_key_id = \"testing\", aws_secret_access_key = \"testing\" }}"
    );
    (format!("s3://{bucket}/lake"), storage, endpoint)
}

/// Runs a Python script with arguments; it must succeed. The number it
/// prints. `what` names it in the failure.
fn python_number(script: &str, args: &[&str], what: &str) -> u64 {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what} failed (./scripts/test.sh installs deltalake and pyarrow):\n{}",
        text(&out.stderr)
    );
    text(&out.stdout).trim().parse().unwrap()
}

/// Rows of a local Delta table as Python `deltalake` reads them.
pub fn python_rows(path: &std::path::Path) -> u64 {
    let script = "import sys, os\nfrom deltalake import DeltaTable\nprint(DeltaTable(sys.argv[1]).to_pyarrow_table().num_rows)\nsys.stdout.flush()\nos._exit(0)";
    python_number(script, &[path.to_str().unwrap()], "python deltalake reader")
}

/// Writes rows (JSON objects, one column each key) to a local Delta table
/// with Python `deltalake` (`mode`: "append" or "overwrite"); returns the
/// table's version after.
pub fn python_write(path: &std::path::Path, rows: &Value, mode: &str) -> u64 {
    let script = r#"
import json, os, sys
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
write_deltalake(sys.argv[1], pa.Table.from_pylist(json.loads(sys.argv[2])), mode=sys.argv[3])
print(DeltaTable(sys.argv[1]).version())
sys.stdout.flush()
os._exit(0)
"#;
    python_number(
        script,
        &[path.to_str().unwrap(), &rows.to_string(), mode],
        "python deltalake writer",
    )
}

/// Deletes the rows where `predicate` holds from a local Delta table with
/// Python `deltalake` (a `DELETE` by another writer); returns the table's
/// version after.
pub fn python_delete(path: &std::path::Path, predicate: &str) -> u64 {
    let script = r#"
import os, sys
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1])
t.delete(sys.argv[2])
print(DeltaTable(sys.argv[1]).version())
sys.stdout.flush()
os._exit(0)
"#;
    python_number(
        script,
        &[path.to_str().unwrap(), predicate],
        "python deltalake delete",
    )
}

/// Rows of a Delta table on the moto S3 server, read by Python `deltalake`.
pub fn python_count_s3(table: &str, endpoint: &str) -> u64 {
    let script = r#"
import os, sys
from deltalake import DeltaTable
opts = {"AWS_ENDPOINT_URL": sys.argv[2], "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
print(DeltaTable(sys.argv[1], storage_options=opts).to_pyarrow_table().num_rows)
sys.stdout.flush()
os._exit(0)
"#;
    python_number(script, &[table, endpoint], "python deltalake reader (S3)")
}
