//! Helpers shared by the end-to-end suites: a temporary project with its own
//! metadata database, the real binary, and scheduler processes.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

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
