//! The bad-input corpus: every file under `tests/bad_input/` is a broken DAG
//! file (`dags/`, checked with `tributary dags validate`) or a broken
//! `tributary.toml` (`config/`, checked with `tributary --config F config`),
//! and says in its comments what the tool must answer:
//!
//! ```toml
//! # expect: 6:1 `retries`: expected a whole number ≥ 0
//! # expect: some words of a problem that has no position
//! # exit: 1
//! ```
//!
//! Each `L:C` expectation needs a `FILE:L:C: …` line containing its words,
//! and there must be exactly as many `FILE:L:C:` lines as such
//! expectations: every problem at once, nothing else. The exit code
//! defaults to 1, and no output line may be longer than 1,000 characters.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{BIN, text};

/// What a case file says it must produce.
struct Expected {
    exit: i32,
    /// (line, col, words)
    positioned: Vec<(usize, usize, String)>,
    anywhere: Vec<String>,
}

fn expected(source: &str, file: &Path) -> Expected {
    let mut e = Expected {
        exit: 1,
        positioned: Vec::new(),
        anywhere: Vec::new(),
    };
    for line in source.lines() {
        if let Some(code) = line.strip_prefix("# exit: ") {
            e.exit = code.trim().parse().expect("exit code");
        } else if let Some(rest) = line.strip_prefix("# expect: ") {
            let (first, words) = rest.split_once(' ').unwrap_or((rest, ""));
            let position = first
                .split_once(':')
                .and_then(|(l, c)| Some((l.parse().ok()?, c.parse().ok()?)));
            match position {
                Some((l, c)) => e.positioned.push((l, c, words.to_string())),
                None => e.anywhere.push(rest.to_string()),
            }
        }
    }
    assert!(
        !e.positioned.is_empty() || !e.anywhere.is_empty(),
        "{}: a case needs at least one `# expect:` line",
        file.display()
    );
    e
}

/// Whether `line` is a diagnostic of `file`: `FILE:L:C: …`.
fn position_of(line: &str, file: &str) -> Option<(usize, usize)> {
    let rest = line.strip_prefix(file)?.strip_prefix(':')?;
    let mut parts = rest.splitn(3, ':');
    let l = parts.next()?.parse().ok()?;
    let c = parts.next()?.parse().ok()?;
    parts.next()?.strip_prefix(' ')?;
    Some((l, c))
}

fn check_case(path: &Path, args: &[&str]) -> Result<(), String> {
    let source = std::fs::read_to_string(path).unwrap();
    let want = expected(&source, path);
    let file = path.to_str().unwrap();
    let out = Command::new(BIN)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("TRIBUTARY_WEB_TOKEN")
        .env_remove("TRIBUTARY_KAFKA_BOOTSTRAP")
        .env_remove("TRIBUTARY_CONFIG")
        .env_remove("DATABASE_URL")
        .env_remove("TRIBUTARY_DATABASE_URL")
        .output()
        .unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let lines: Vec<&str> = all.lines().collect();
    let mut problems = Vec::new();
    if out.status.code() != Some(want.exit) {
        problems.push(format!(
            "exit code {:?}, expected {}",
            out.status.code(),
            want.exit
        ));
    }
    for (l, c, words) in &want.positioned {
        let found = lines
            .iter()
            .any(|x| position_of(x, file) == Some((*l, *c)) && x.contains(words.as_str()));
        if !found {
            problems.push(format!("no `{file}:{l}:{c}: …{words}…` line"));
        }
    }
    let reported = lines
        .iter()
        .filter(|x| position_of(x, file).is_some())
        .count();
    if reported != want.positioned.len() {
        problems.push(format!(
            "{reported} positioned problem(s) reported, {} expected",
            want.positioned.len()
        ));
    }
    for words in &want.anywhere {
        if !all.contains(words.as_str()) {
            problems.push(format!("no line says …{words}…"));
        }
    }
    if let Some(long) = lines.iter().find(|x| x.chars().count() > 1000) {
        problems.push(format!("a line of {} characters", long.chars().count()));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{file}:\n  {}\noutput:\n{}",
            problems.join("\n  "),
            diag::cut(&all, 3000)
        ))
    }
}

fn cases(folder: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new("tests/bad_input").join(folder))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "the {folder} corpus has {} cases",
        files.len()
    );
    files
}

fn run_all(folder: &str, args: impl Fn(&str) -> Vec<String>) {
    let failures: Vec<String> = cases(folder)
        .iter()
        .filter_map(|p| {
            let a = args(p.to_str().unwrap());
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            check_case(p, &a).err()
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_broken_dag_file_gets_its_problems_at_their_keys() {
    run_all("dags", |f| vec!["dags".into(), "validate".into(), f.into()]);
}

#[test]
fn every_broken_config_file_fails_tributary_config_with_its_problems() {
    run_all("config", |f| {
        vec!["--config".into(), f.into(), "config".into()]
    });
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    // `tributary dags schema | head -c 0`: the reader is gone before the
    // first write. Before, println! panicked with a backtrace.
    let mut child = Command::new(BIN)
        .args(["dags", "schema"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(141), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn a_pool_the_database_does_not_have_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("meta.db").display());
    let dag = dir.path().join("pooled.toml");
    std::fs::write(
        &dag,
        "dag_id = \"pooled\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\npool = \"gpu_pool\"\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(["--database-url", &db])
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    // No database yet: validation does not create one, and says nothing.
    let out = run(&["dags", "validate", dag.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stdout).contains("warning"),
        "{}",
        text(&out.stdout)
    );
    assert!(!dir.path().join("meta.db").exists());
    // With a database that has other pools: a warning naming the fix.
    let out = run(&["pools", "set", "gpu", "--slots", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&["dags", "validate", dag.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "warning: task \"a\" of DAG \"pooled\" uses pool \"gpu_pool\", which does not exist"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("tributary pools set gpu_pool --slots N"),
        "{stdout}"
    );
    assert!(stdout.contains("1 warning(s)"), "{stdout}");
}

#[test]
fn a_misspelt_dag_id_gets_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let dags = dir.path().join("dags");
    std::fs::create_dir(&dags).unwrap();
    std::fs::write(
        dags.join("hello.toml"),
        "dag_id = \"hello\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\n",
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.path().join("meta.db").display());
    let out = Command::new(BIN)
        .args(["--database-url", &db, "--dags-folder"])
        .arg(&dags)
        .args(["trigger", "helo"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("DAG \"helo\" not found (did you mean \"hello\"?)"),
        "{err}"
    );
}

#[test]
fn config_says_what_standalone_uses_for_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("config")
        .current_dir(dir.path())
        .env_remove("TRIBUTARY_KAFKA_BOOTSTRAP")
        .env_remove("TRIBUTARY_CONFIG")
        .env_remove("TRIBUTARY_WEB_TOKEN")
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(
            "kafka        localhost:9092 (standalone starts its in-memory dev broker instead)"
        ),
        "{stdout}"
    );
    // The built-in transforms read `nations`, which an example DAG loads:
    // without that DAG they wait for it, the check passes.
    assert!(stdout.contains("transforms   2\n"), "{stdout}");
    assert!(stdout.trim_end().ends_with("OK"), "{stdout}");
}
