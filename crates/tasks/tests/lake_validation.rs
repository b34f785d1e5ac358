//! The lake task kinds' settings, checked when a DAG file is loaded: the
//! SQL parsed with its template variables, errors at the line and column of the
//! DAG file (or of the `sql_file`), every mode's required keys.

use std::path::Path;

use scheduler::dag::validate_source;

fn diags_in(file: &Path, src: &str) -> Vec<String> {
    validate_source(file, src, &tasks::registry())
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn diags(src: &str) -> Vec<String> {
    diags_in(Path::new("dags/t.toml"), src)
}

fn one(src: &str) -> String {
    let d = diags(src);
    assert_eq!(d.len(), 1, "expected one problem, got {d:#?}");
    d.into_iter().next().unwrap()
}

fn sql_task(settings: &str) -> String {
    format!(
        "dag_id = \"t\"\n[[task]]\nid = \"daily\"\nkind = \"lake_sql\"\ntable = \"daily\"\n{settings}\n"
    )
}

#[test]
fn a_syntax_error_in_inline_sql_is_placed_in_the_dag_file() {
    // `FORM` reads as an alias of count(*), so the parser stops at `users`:
    // line 9 (the query's second line), column 6.
    let src = sql_task(
        "mode = \"overwrite\"\nsql = '''\nSELECT nation, count(*)\nFORM users GROUP BY nation\n'''",
    );
    let e = one(&src);
    assert!(e.starts_with("dags/t.toml:9:6:"), "{e}");
    assert!(e.contains("found: users"), "{e}");
    assert!(e.contains("sql:"), "{e}");
}

#[test]
fn template_variables_are_checked_at_load() {
    let e = one(&sql_task(
        "mode = \"overwrite\"\nsql = \"SELECT * FROM users WHERE at >= {{ data_interval_begin }}\"",
    ));
    assert!(
        e.contains("unknown template variable `{{ data_interval_begin }}`"),
        "{e}"
    );
    assert!(e.contains("data_interval_start"), "{e}");
    // Line 7, column 40: where the template variable starts inside the string.
    assert!(e.starts_with("dags/t.toml:7:40:"), "{e}");
    let e = one(&sql_task(
        "mode = \"overwrite\"\nsql = \"SELECT * FROM users WHERE d = '{{ ds }}'\"",
    ));
    assert!(e.contains("`{{ ds }}` is inside a quoted string"), "{e}");
}

#[test]
fn statements_other_than_a_query_are_refused() {
    let e = one(&sql_task(
        "mode = \"overwrite\"\nsql = \"DELETE FROM users WHERE true\"",
    ));
    assert!(e.contains("one query (SELECT"), "{e}");
}

#[test]
fn each_mode_needs_its_keys_and_no_others() {
    let q = "sql = \"SELECT 1 AS x\"";
    let e = one(&sql_task(&format!("mode = \"interval\"\n{q}")));
    assert!(e.contains("needs `interval_column`"), "{e}");
    let e = one(&sql_task(&format!("mode = \"merge\"\n{q}")));
    assert!(e.contains("needs `unique_key`"), "{e}");
    let e = one(&sql_task(&format!(
        "mode = \"append\"\ninterval_column = \"day\"\n{q}"
    )));
    assert!(
        e.contains("`interval_column` is for `mode = \"interval\"`"),
        "{e}"
    );
    let e = one(&sql_task(&format!("mode = \"upsert\"\n{q}")));
    assert!(e.contains("upsert"), "{e}");
    let e = one(&sql_task("mode = \"append\""));
    assert!(e.contains("needs its query"), "{e}");
    let e = one(&sql_task(&format!(
        "mode = \"append\"\n{q}\nparquet = {{ compression = \"brotli\" }}"
    )));
    assert!(e.contains("parquet.compression \"brotli\""), "{e}");
}

#[test]
fn an_interval_query_that_ignores_the_interval_is_warned_about() {
    let src = sql_task(
        "mode = \"interval\"\ninterval_column = \"day\"\nsql = \"SELECT date_trunc('day', at) AS day FROM users\"",
    );
    let dag = scheduler::dag::parse_dag(Path::new("dags/t.toml"), &src, &tasks::registry())
        .expect("valid");
    let w: Vec<String> = dag.warnings.iter().map(ToString::to_string).collect();
    assert!(
        w.iter()
            .any(|w| w.contains("does not use {{ data_interval_start }}")),
        "{w:#?}"
    );
}

#[test]
fn sql_files_are_read_next_to_the_dag_and_their_errors_placed_in_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("dags/sql")).unwrap();
    std::fs::write(
        dir.path().join("dags/sql/daily.sql"),
        "-- users per nation\nSELECT nation,\n  count(*) AS n\nFROM users\nGROUP nation\n",
    )
    .unwrap();
    let file = dir.path().join("dags/t.toml");
    let src = sql_task("mode = \"overwrite\"\nsql_file = \"sql/daily.sql\"");
    let d = diags_in(&file, &src);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert!(d[0].contains("daily.sql:5:"), "{}", d[0]);
    std::fs::write(
        dir.path().join("dags/sql/daily.sql"),
        "SELECT nation, count(*) AS n FROM users GROUP BY nation\n",
    )
    .unwrap();
    assert!(diags_in(&file, &src).is_empty());
    let missing = sql_task("mode = \"overwrite\"\nsql_file = \"sql/nope.sql\"");
    let d = diags_in(&file, &missing);
    assert!(
        d[0].contains("cannot read") && d[0].contains("nope.sql"),
        "{d:#?}"
    );
}

#[test]
fn checks_need_a_scope_and_well_formed_expectations() {
    let head = "dag_id = \"t\"\n[[task]]\nid = \"c\"\nkind = \"lake_check\"\n";
    let ok = format!(
        "{head}table = \"users\"\nwhere = \"at >= {{{{ data_interval_start }}}}\"\n\
         [[task.expect]]\nassert = \"count(*) > 0\"\n[[task.expect]]\nrow = \"latitude BETWEEN -90 AND 90\"\n\
         on_failure = \"warn\"\n[[task.expect]]\nfresh = \"at\"\nwithin = \"1h\"\n"
    );
    assert!(diags(&ok).is_empty(), "{:#?}", diags(&ok));
    let e = one(&format!(
        "{head}[[task.expect]]\nassert = \"count(*) > 0\"\n"
    ));
    assert!(e.contains("needs what to check"), "{e}");
    let e = one(&format!(
        "{head}table = \"users\"\n[[task.expect]]\nassert = \"count(*) > 0\"\nrow = \"x > 1\"\n"
    ));
    assert!(e.contains("exactly one of `row`"), "{e}");
    let e = one(&format!(
        "{head}table = \"users\"\n[[task.expect]]\nfresh = \"at\"\n"
    ));
    assert!(e.contains("`fresh` needs `within`"), "{e}");
    let e = one(&format!(
        "{head}table = \"users\"\n[[task.expect]]\nassert = \"count(* > 0\"\n"
    ));
    assert!(e.contains("expect[0].assert"), "{e}");
    let e = one(&format!(
        "{head}table = \"users\"\nwhere = \"at >=\"\n[[task.expect]]\nassert = \"count(*) > 0\"\n"
    ));
    assert!(e.contains("where:"), "{e}");
}

#[test]
fn maintenance_settings_are_checked() {
    let head =
        "dag_id = \"t\"\n[[task]]\nid = \"m\"\nkind = \"lake_maintenance\"\ntable = \"users\"\n";
    assert!(
        diags(&format!(
            "{head}zorder_by = [\"nation\"]\nretain = \"30d\"\n"
        ))
        .is_empty()
    );
    let e = one(&format!("{head}target_size = \"12 parsecs\"\n"));
    assert!(e.contains("target_size"), "{e}");
    let e = one(&format!(
        "{head}optimize = false\ncheckpoint = false\nvacuum = false\n"
    ));
    assert!(e.contains("every step is off"), "{e}");
    let e = one(&format!("{head}vacuum = false\nretain = \"1d\"\n"));
    assert!(e.contains("`retain` is for `vacuum = true`"), "{e}");
}
