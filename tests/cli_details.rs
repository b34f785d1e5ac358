//! The CLI's details a new user meets: every line of a kind's settings,
//! a DAG's dates in its own time zone, and suggestions for a wrong run or
//! task id that lead somewhere.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{BIN, text};

struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Cli {
        let dir = tempfile::tempdir().unwrap();
        let dags = dir.path().join("dags");
        std::fs::create_dir(&dags).unwrap();
        std::fs::write(
            dags.join("paris.toml"),
            "dag_id = \"paris\"\nschedule = \"@daily\"\ntimezone = \"Europe/Paris\"\n\
             start_date = 2026-11-01\n[[task]]\nid = \"extract\"\nkind = \"noop\"\n",
        )
        .unwrap();
        Cli { dir }
    }

    fn dags(&self) -> PathBuf {
        self.dir.path().join("dags")
    }

    fn run(&self, args: &[&str]) -> Output {
        let db = format!("sqlite://{}", self.dir.path().join("meta.db").display());
        Command::new(BIN)
            .args(["--database-url", &db, "--dags-folder"])
            .arg(self.dags())
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
        text(&o.stdout)
    }

    fn err(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o.stdout));
        text(&o.stderr)
    }
}

#[test]
fn tasks_kinds_prints_every_line_of_each_setting_and_its_default() {
    let cli = Cli::new();
    let table = cli.ok(&["tasks", "kinds"]);
    let json: serde_json::Value =
        serde_json::from_str(&cli.ok(&["-o", "json", "tasks", "kinds"])).unwrap();
    let mut defaults = 0;
    let mut multi_line = 0;
    for kind in json.as_array().unwrap() {
        let Some(props) = kind["settings"]["properties"].as_object() else {
            continue;
        };
        for (name, p) in props {
            if let Some(d) = p.get("default").filter(|d| !d.is_null()) {
                defaults += 1;
                assert!(
                    table.contains(&format!("default: {d}")),
                    "{} {name}: default {d} missing from\n{table}",
                    kind["kind"]
                );
            }
            let desc = p["description"].as_str().unwrap_or("");
            for line in desc.lines().filter(|l| !l.trim().is_empty()).skip(1) {
                multi_line += 1;
                assert!(table.contains(line.trim()), "{name}: {line:?} missing");
            }
        }
    }
    assert!(
        defaults > 0 && multi_line > 0,
        "the kinds have defaults and long descriptions"
    );
}

#[test]
fn a_dags_dates_are_shown_in_its_time_zone_with_the_zone_named() {
    let cli = Cli::new();
    let show = cli.ok(&["dags", "show", "paris"]);
    assert!(
        show.contains("start_date   2026-11-01 00:00:00 CET"),
        "{show}"
    );
    // A backfill error gives the dates as the user typed them, in the zone.
    let err = cli.err(&[
        "backfill",
        "paris",
        "--from",
        "2026-10-20",
        "--to",
        "2026-10-25",
    ]);
    assert!(
        err.contains("--from (2026-10-20 00:00:00 CEST) is before the DAG's start_date (2026-11-01 00:00:00 CET)"),
        "{err}"
    );
}

#[test]
fn a_wrong_run_or_task_id_suggests_what_exists() {
    let cli = Cli::new();
    let out = cli.ok(&["trigger", "paris", "--logical-date", "2026-11-05"]);
    let run_id = out
        .split_whitespace()
        .find(|w| w.starts_with("manual__"))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    let typo = &run_id[..run_id.len() - 1];
    let err = cli.err(&["tasks", "list", "paris", typo]);
    assert!(
        err.contains(&format!("did you mean \"{run_id}\"?")),
        "{err}"
    );
    let err = cli.err(&["tasks", "logs", "paris", &run_id, "extrat"]);
    assert!(
        err.contains("has no task \"extrat\" (did you mean \"extract\"?)"),
        "{err}"
    );
    // Far from every run id: the newest run and the command that lists them.
    let err = cli.err(&["tasks", "logs", "paris", "yesterday", "extract"]);
    assert!(
        err.contains(&format!("its newest run is \"{run_id}\""))
            && err.contains("`tributary runs list paris`"),
        "{err}"
    );
    assert!(
        !err.contains("tasks list"),
        "no command that fails the same way: {err}"
    );
}
