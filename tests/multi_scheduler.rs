//! Several schedulers on one PostgreSQL database: every task try runs exactly once.

mod common;

use std::collections::HashMap;

use common::*;

fn many_schedulers_run_each_task_once(n: usize) {
    let env = postgres_env();
    let log = env.path("ran.log");
    let mut dag = String::from("dag_id = \"wide\"\nmax_active_tasks = 64\n");
    for i in 0..200 {
        dag.push_str(&format!(
            "[[task]]\nid = \"t{i:03}\"\nkind = \"shell\"\ncommand = \"echo $TRIBUTARY_TASK_ID >> {}\"\n",
            log.display()
        ));
    }
    env.dag("wide", &dag);
    env.ok(&["db", "migrate"]);
    let schedulers: Vec<Scheduler> = (0..n).map(|_| env.scheduler()).collect();
    let out = env.ok(&["trigger", "wide", "--wait", "--timeout", "120"]);
    let run_id = run_id_from(&out);
    let lines = std::fs::read_to_string(&log).unwrap();
    let mut count: HashMap<&str, usize> = HashMap::new();
    for l in lines.lines() {
        *count.entry(l).or_insert(0) += 1;
    }
    assert_eq!(count.len(), 200, "every task ran");
    assert!(
        count.values().all(|c| *c == 1),
        "a task ran twice: {:?}",
        count.iter().filter(|(_, c)| **c > 1).collect::<Vec<_>>()
    );
    let tis = env.json(&["tasks", "list", "wide", &run_id]);
    let pids: std::collections::HashSet<i64> = tis
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["pid"].as_i64().unwrap())
        .collect();
    assert!(
        pids.len() >= 2,
        "the work was shared between schedulers: {pids:?}"
    );
    assert!(tis.as_array().unwrap().iter().all(|t| t["try_number"] == 1));
    drop(schedulers);
}

#[test]
fn two_schedulers_run_each_task_once() {
    many_schedulers_run_each_task_once(2);
}

#[test]
fn three_schedulers_run_each_task_once() {
    many_schedulers_run_each_task_once(3);
}
