//! Every DAG validation error, with its file:line:col, and all at once.

use std::path::Path;
use std::time::Duration;

use scheduler::dag::{TriggerRule, parse_dag, validate_source};

fn diags(src: &str) -> Vec<String> {
    validate_source(Path::new("dags/t.toml"), src, &tasks::registry())
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn one(src: &str) -> String {
    let d = diags(src);
    assert_eq!(d.len(), 1, "expected one problem, got {d:#?}");
    d.into_iter().next().unwrap()
}

const HEAD: &str = "dag_id = \"t\"\n";

#[test]
fn valid_file_builds_a_dag_with_defaults() {
    let src = r#"
dag_id = "etl"
schedule = "@daily"
timezone = "Europe/Paris"
start_date = 2026-11-01
[defaults]
retries = 2
retry_delay = "10s"
[[task]]
id = "load"
kind = "noop"
depends_on = ["extract"]
retries = 0
trigger_rule = "all_done"
[[task]]
id = "extract"
kind = "shell"
command = "echo hi"
"#;
    let dag = parse_dag(Path::new("dags/etl.toml"), src, &tasks::registry()).unwrap();
    let ids: Vec<&str> = dag.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, vec!["extract", "load"], "topological order");
    let extract = dag.task("extract").unwrap();
    assert_eq!(
        (extract.retry.retries, extract.retry.retry_delay),
        (2, Duration::from_secs(10))
    );
    let load = dag.task("load").unwrap();
    assert_eq!(
        (load.retry.retries, load.trigger_rule),
        (0, TriggerRule::AllDone)
    );
    assert_eq!(load.pool, "default_pool");
    assert_eq!(
        dag.timetable.start.unwrap().to_rfc3339(),
        "2026-10-31T23:00:00+00:00",
        "midnight in Paris"
    );
    assert_eq!(extract.settings["command"], "echo hi");
}

#[test]
fn toml_syntax_error_has_position() {
    let d = one("dag_id = \"t\"\nschedule = \n");
    assert!(d.starts_with("dags/t.toml:2:"), "{d}");
    assert!(d.contains("TOML syntax"), "{d}");
}

#[test]
fn unknown_dag_key_suggests_the_right_one() {
    let d = one(&format!(
        "{HEAD}schedul = \"@daily\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\n"
    ));
    assert!(
        d.contains("unknown key `schedul` (did you mean `schedule`?)"),
        "{d}"
    );
    assert!(d.starts_with("dags/t.toml:2:1:"), "{d}");
}

#[test]
fn wrong_type_names_the_key() {
    let d = one(&format!(
        "{HEAD}max_active_runs = \"many\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\n"
    ));
    assert_eq!(
        d,
        "dags/t.toml:2:1: DAG: `max_active_runs`: expected a whole number ≥ 1, found the string \"many\""
    );
}

#[test]
fn unknown_task_key_suggests_common_keys_too() {
    let d = one(&format!(
        "{HEAD}[[task]]\nid = \"a\"\nkind = \"shell\"\ncommand = \"true\"\nretires = 3\n"
    ));
    assert!(
        d.contains("task \"a\": unknown key `retires` for a shell task (did you mean `retries`?)"),
        "{d}"
    );
    assert!(d.starts_with("dags/t.toml:6:1:"), "{d}");
}

#[test]
fn duplicate_task_ids() {
    let d = one(&format!(
        "{HEAD}[[task]]\nid = \"a\"\nkind = \"noop\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\n"
    ));
    assert_eq!(
        d,
        "dags/t.toml:6:6: duplicate task id \"a\" (first defined on line 3)"
    );
}

#[test]
fn unknown_upstream_with_suggestion() {
    let d = one(&format!(
        "{HEAD}[[task]]\nid = \"fetch_users\"\nkind = \"noop\"\n[[task]]\nid = \"load\"\nkind = \"noop\"\ndepends_on = [\"fetch_user\"]\n"
    ));
    assert_eq!(
        d,
        "dags/t.toml:8:15: task \"load\" depends on unknown task \"fetch_user\" (did you mean \"fetch_users\"?)"
    );
}

#[test]
fn cycle_prints_its_path() {
    let src = format!(
        "{HEAD}[[task]]\nid = \"a\"\nkind = \"noop\"\ndepends_on = [\"c\"]\n[[task]]\nid = \"b\"\nkind = \"noop\"\ndepends_on = [\"a\"]\n[[task]]\nid = \"c\"\nkind = \"noop\"\ndepends_on = [\"b\"]\n[[task]]\nid = \"d\"\nkind = \"noop\"\n"
    );
    let d = one(&src);
    assert_eq!(d, "dags/t.toml:3:6: tasks form a cycle: a → b → c → a");
}

#[test]
fn task_with_bad_kind_still_counts_as_upstream() {
    let d = one(&format!(
        "{HEAD}[[task]]\nid = \"a\"\nkind = \"nope\"\n[[task]]\nid = \"b\"\nkind = \"noop\"\ndepends_on = [\"a\"]\n"
    ));
    assert!(d.contains("unknown task kind \"nope\""), "{d}");
}

#[test]
fn self_dependency() {
    let d = one(&format!(
        "{HEAD}[[task]]\nid = \"a\"\nkind = \"noop\"\ndepends_on = [\"a\"]\n"
    ));
    assert!(d.contains("task \"a\" depends on itself"), "{d}");
}

#[test]
fn invalid_cron_and_time_zone() {
    let d = diags(&format!(
        "{HEAD}schedule = \"0 25 * * *\"\ntimezone = \"Europe/Pariss\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\n"
    ));
    assert_eq!(d.len(), 2, "{d:#?}");
    assert!(
        d.iter()
            .any(|x| x.starts_with("dags/t.toml:2:12: invalid cron expression \"0 25 * * *\"")),
        "{d:#?}"
    );
    assert!(
        d.iter()
            .any(|x| x.starts_with("dags/t.toml:3:12: unknown time zone \"Europe/Pariss\"")),
        "{d:#?}"
    );
}

#[test]
fn unknown_kind_with_suggestion() {
    let d = one(&format!("{HEAD}[[task]]\nid = \"a\"\nkind = \"shel\"\n"));
    assert_eq!(
        d,
        "dags/t.toml:4:8: task \"a\": unknown task kind \"shel\" (did you mean \"shell\"?)"
    );
}

#[test]
fn invalid_kind_settings() {
    let d = one(&format!("{HEAD}[[task]]\nid = \"a\"\nkind = \"shell\"\n"));
    assert!(d.contains("task \"a\": missing key `command`"), "{d}");
    let d = one(&format!(
        "{HEAD}[[task]]\nid = \"a\"\nkind = \"shell\"\ncommand = \"  \"\n"
    ));
    assert!(d.contains("`command` must not be empty"), "{d}");
    let d = one(&format!(
        "{HEAD}[[task]]\nid = \"a\"\nkind = \"shell\"\ncommand = \"x\"\nenv = {{ T = \"${{OOPS\" }}\n"
    ));
    assert!(d.contains("env.T: unclosed reference"), "{d}");
    let d = one(&format!(
        "{HEAD}[[task]]\nid = \"a\"\nkind = \"noop\"\ncommand = \"x\"\n"
    ));
    assert!(d.contains("unknown key `command` for a noop task"), "{d}");
}

#[test]
fn end_date_before_start_date() {
    let d = one(&format!(
        "{HEAD}start_date = 2026-11-10\nend_date = \"2026-11-01\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\n"
    ));
    assert!(d.starts_with("dags/t.toml:3:12: end_date"), "{d}");
    assert!(d.contains("is before start_date"), "{d}");
}

#[test]
fn bad_dates() {
    let d = one(&format!(
        "{HEAD}start_date = \"next tuesday\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\n"
    ));
    assert!(d.contains("invalid start_date"), "{d}");
}

#[test]
fn param_default_must_match_type() {
    let d = one(&format!(
        "{HEAD}[params.n]\ntype = \"integer\"\ndefault = \"ten\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\n"
    ));
    assert!(
        d.contains("param \"n\": default \"ten\" does not fit: expected integer, got string"),
        "{d}"
    );
    let d = one(&format!(
        "{HEAD}[params.n]\ntype = \"decimal\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\n"
    ));
    assert!(d.contains("param \"n\"") && d.contains("decimal"), "{d}");
}

#[test]
fn no_tasks_and_bad_ids() {
    let d = one("dag_id = \"has space\"\n[[task]]\nid = \"a\"\nkind = \"noop\"\n");
    assert!(d.contains("invalid dag_id \"has space\""), "{d}");
    let d = one(HEAD);
    assert!(d.contains("the DAG has no tasks"), "{d}");
    let d = one(&format!("{HEAD}[[task]]\nkind = \"noop\"\n"));
    assert!(d.contains("task #1: missing key `id`"), "{d}");
}

#[test]
fn bad_durations_and_trigger_rules() {
    let d = diags(&format!(
        "{HEAD}[[task]]\nid = \"a\"\nkind = \"noop\"\nretry_delay = \"soon\"\n[[task]]\nid = \"b\"\nkind = \"noop\"\ntrigger_rule = \"all_succes\"\n"
    ));
    assert_eq!(d.len(), 2, "{d:#?}");
    assert!(d[0].contains("invalid duration \"soon\""), "{d:#?}");
    assert!(d[1].contains("all_succes"), "{d:#?}");
}

/// One file with many problems reports every one of them, in one pass.
#[test]
fn every_problem_at_once() {
    let src = r#"dag_id = "t"
schedule = "every day"
timezone = "Mars/Olympus"
[params.n]
type = "boolean"
default = 3
[[task]]
id = "a"
kind = "shel"
[[task]]
id = "b"
kind = "noop"
depends_on = ["zz"]
[[task]]
id = "b"
kind = "noop"
[[task]]
id = "c"
kind = "shell"
command = "x"
colour = "red"
"#;
    let d = diags(src);
    assert_eq!(d.len(), 7, "{d:#?}");
    assert!(
        d[0].contains(":2:12:") && d[6].contains(":21:1:"),
        "sorted by position: {d:#?}"
    );
    for needle in [
        "15:6: duplicate task id \"b\" (first defined on line 11)",
        "2:12: invalid cron",
        "3:12: unknown time zone",
        "param \"n\"",
        "9:8: task \"a\": unknown task kind",
        "13:15: task \"b\" depends on unknown task \"zz\"",
        "21:1: task \"c\": unknown key `colour`",
    ] {
        assert!(
            d.iter().any(|x| x.contains(needle)),
            "missing {needle:?} in {d:#?}"
        );
    }
}

/// The example DAGs shipped in `dags/` are all valid.
#[test]
fn shipped_examples_are_valid() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dags");
    let bag = scheduler::dagbag::DagBag::load(&[folder], &tasks::registry()).unwrap();
    assert!(bag.errors.is_empty(), "{:#?}", bag.diagnostics());
    assert!(bag.dags.len() >= 3);
}

/// The published JSON Schema describes every kind and validates nothing away.
#[test]
fn json_schema_lists_kinds() {
    let s = scheduler::dag::file::json_schema(&tasks::registry());
    let kinds = s.pointer("/$defs/TaskHeader/properties/kind/enum").unwrap();
    assert_eq!(
        kinds,
        &serde_json::json!([
            "http_json_to_kafka",
            "lake_check",
            "lake_load",
            "lake_maintenance",
            "lake_replay",
            "lake_sql",
            "lake_swap",
            "lake_verify",
            "lake_view",
            "noop",
            "random_user_to_kafka",
            "shell"
        ])
    );
    assert!(s.pointer("/properties/schedule").is_some());
    let branches = s
        .pointer("/$defs/TaskHeader/allOf")
        .unwrap()
        .as_array()
        .unwrap();
    let branch = |kind: &str| {
        branches
            .iter()
            .find(|b| b["if"]["properties"]["kind"]["const"] == kind)
            .unwrap_or_else(|| panic!("{kind}"))
    };
    assert!(branch("shell")["then"]["properties"]["command"].is_object());
    assert_eq!(
        branch("shell")["then"]["required"],
        serde_json::json!(["command"])
    );
    assert!(branch("random_user_to_kafka")["then"]["properties"]["kafka"].is_object());
    assert!(branch("http_json_to_kafka")["then"]["properties"]["records_pointer"].is_object());
}
