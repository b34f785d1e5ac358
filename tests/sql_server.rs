//! `tributary sql` with a server of the project running: the command asks
//! it (the answer comes as an Arrow stream) and prints exactly what a run in
//! its own process prints, in every output form; errors keep their place
//! in the query's file; a server of another project, or none, leaves the
//! query to the command's own process; a failure part way through an answer
//! is an error, never a short answer.

mod common;

use std::process::Output;

use common::lake::Project;
use common::{dev_broker, free_port, text};

fn run(project: &Project, args: &[&str]) -> Output {
    project.cmd(args).output().unwrap()
}

fn ok(project: &Project, args: &[&str]) -> String {
    let out = run(project, args);
    assert!(
        out.status.success(),
        "{args:?} failed:\n{}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A table's lines without its footer (the time differs between runs).
fn without_footer(out: &str) -> String {
    let lines: Vec<&str> = out.lines().collect();
    let (last, rest) = lines.split_last().expect("a footer");
    assert!(last.starts_with('('), "footer {last:?}");
    rest.join("\n")
}

#[test]
fn sql_asks_the_projects_running_server_and_prints_what_a_local_run_prints() {
    let broker = dev_broker("events", 2);
    let project = Project::landed(&broker.bootstrap, 300);
    let port = free_port();
    project.add_config(&format!("\n[web]\nbind = \"127.0.0.1:{port}\"\n"));
    let url = format!("http://127.0.0.1:{port}");
    let grouped = "SELECT nation, count(*) AS n, sum(id) AS total FROM events GROUP BY nation ORDER BY nation";

    // No server yet: the command runs the query itself.
    let alone = ok(&project, &["sql", grouped, "--max-rows", "3"]);
    assert!(!alone.contains("answered by"), "{alone}");

    let (_web, addr) = project.web_on(&[]);
    assert_eq!(addr, format!("127.0.0.1:{port}"));
    let asked = ok(&project, &["sql", grouped, "--max-rows", "3"]);
    assert!(
        asked.contains(&format!("answered by the server at {url})")),
        "{asked}"
    );
    assert!(asked.contains("… 2 more rows"), "{asked}");
    assert!(asked.contains("read events v"), "{asked}");
    assert_eq!(without_footer(&asked), without_footer(&alone));
    let local = ok(&project, &["sql", grouped, "--max-rows", "3", "--local"]);
    assert!(!local.contains("answered by"), "{local}");
    assert_eq!(without_footer(&local), without_footer(&alone));

    // Every output form gives the same bytes either way.
    let all = "SELECT id, nation, at FROM events ORDER BY id";
    for form in [["-o", "json"], ["-o", "csv"]] {
        let served = ok(&project, &[&["sql", all], &form[..]].concat());
        let here = ok(&project, &[&["sql", all, "--local"], &form[..]].concat());
        assert_eq!(served, here, "{form:?}");
        assert!(served.contains("299"), "{served}");
    }
    let dir = project.dir.path();
    for (file, flag) in [("served.parquet", None), ("here.parquet", Some("--local"))] {
        let path = dir.join(file);
        let mut args = vec!["sql", all, "--out", path.to_str().unwrap()];
        args.extend(flag);
        let out = run(&project, &args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("wrote 300 rows"));
    }
    let same = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, os, pyarrow.parquet as pq\n\
             a, b = pq.read_table(sys.argv[1]), pq.read_table(sys.argv[2])\n\
             print(a.num_rows, a.equals(b), [k for k in (a.schema.metadata or {}) if b'tributary' in k])\nos._exit(0)",
            dir.join("served.parquet").to_str().unwrap(),
            dir.join("here.parquet").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        text(&same.stdout).trim(),
        "300 True []",
        "{}",
        text(&same.stderr)
    );

    // A bad query is refused at its place in its file, as here.
    let bad = dir.join("bad.sql");
    std::fs::write(&bad, "SELECT nation\nFROM events\nWHERE id >").unwrap();
    let served = run(&project, &["sql", "-f", bad.to_str().unwrap()]);
    let here = run(&project, &["sql", "-f", bad.to_str().unwrap(), "--local"]);
    assert_eq!(served.status.code(), Some(1));
    assert_eq!(text(&served.stderr), text(&here.stderr));
    assert!(
        text(&served.stderr).contains("bad.sql:3:"),
        "{}",
        text(&served.stderr)
    );

    // A failure part way through a streamed answer (the first batches are
    // sent, then a division by zero) is an error, not a short answer.
    let breaks = "SELECT value, 10 / (value - 60000) AS x FROM generate_series(1, 100000)";
    let out = run(&project, &["sql", breaks, "-o", "csv"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("stopped sending the answer part way"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&project, &["sql", breaks, "-o", "csv", "--local"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).to_lowercase().contains("divide by zero"));

    // `--server` names one; when it cannot answer, that is an error.
    let out = run(
        &project,
        &["sql", "SELECT 1", "--server", "http://127.0.0.1:1"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot reach the server at http://127.0.0.1:1"));
    let named = ok(&project, &["sql", "SELECT 1 AS one", "--server", &url]);
    assert!(named.contains("answered by the server"), "{named}");

    // Another project with the same web address: its queries are its own.
    let other = Project::new(&broker.bootstrap, "lake", "", "{ max_rows = 100 }");
    other.add_config(&format!("\n[web]\nbind = \"127.0.0.1:{port}\"\n"));
    let out = run(&other, &["sql", "SELECT count(*) FROM events"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("no table \"events\""),
        "{}",
        text(&out.stderr)
    );
    let out = run(&other, &["sql", "SELECT 1", "--server", &url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("serves the project"),
        "{}",
        text(&out.stderr)
    );
}
