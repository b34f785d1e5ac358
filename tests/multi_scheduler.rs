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

/// 3 schedulers × 10,000 task instances (100 runs × 100 shell tasks), one
/// scheduler killed with SIGKILL in the middle: every task instance ends in
/// success, no try of any task instance ran twice, and the only task
/// instances that needed a second try are those the killed scheduler held.
#[test]
fn three_schedulers_share_10k_tasks_through_a_kill() {
    const RUNS: usize = 100;
    const TASKS: usize = 100;
    let env = postgres_env();
    let log = env.path("ran.log");
    let mut dag = format!("dag_id = \"wide\"\nmax_active_runs = {RUNS}\nmax_active_tasks = 1000\n");
    for i in 0..TASKS {
        dag.push_str(&format!(
            "[[task]]\nid = \"t{i:03}\"\nkind = \"shell\"\nretries = 1\nretry_delay = 0\n\
             command = \"echo $TRIBUTARY_RUN_ID $TRIBUTARY_TASK_ID $TRIBUTARY_TRY_NUMBER $PPID >> {}\"\n",
            log.display()
        ));
    }
    env.dag("wide", &dag);
    env.ok(&["db", "migrate"]);
    for _ in 0..RUNS {
        env.ok(&["trigger", "wide"]);
    }
    let mut schedulers: Vec<Scheduler> = (0..3).map(|_| env.scheduler()).collect();
    let lines = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count()
    };
    env.eventually("a fifth of the tasks to run", || {
        lines() >= RUNS * TASKS / 5
    });
    let victim = schedulers.remove(0);
    let victim_pid = i64::from(victim.0.id());
    let mut victim = victim;
    victim.0.kill().unwrap(); // SIGKILL: no chance to hand anything back
    victim.0.wait().unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt
        .block_on(scheduler::store::SqlStore::connect(env.db()))
        .unwrap();
    use scheduler::store::Store;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    let runs = loop {
        let runs = rt.block_on(store.list_runs("wide", 1000)).unwrap();
        if runs.iter().all(|r| r.state.as_str() == "success") {
            break runs;
        }
        assert!(
            runs.iter().all(|r| r.state.as_str() != "failed"),
            "a run failed"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for every run"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(runs.len(), RUNS);
    let pks: Vec<i64> = runs.iter().map(|r| r.id).collect();
    let tis = rt.block_on(store.task_instances(&pks)).unwrap();
    assert_eq!(tis.len(), RUNS * TASKS);
    assert!(tis.iter().all(|t| t.state.as_str() == "success"));

    // Each line: run, task, try, the scheduler's pid (the shell's parent).
    let text = std::fs::read_to_string(&log).unwrap();
    let mut ran: HashMap<(String, String, u32), Vec<i64>> = HashMap::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        assert_eq!(f.len(), 4, "line {l:?}");
        ran.entry((f[0].into(), f[1].into(), f[2].parse().unwrap()))
            .or_default()
            .push(f[3].parse().unwrap());
    }
    let twice: Vec<_> = ran.iter().filter(|(_, p)| p.len() > 1).collect();
    assert!(twice.is_empty(), "tries that ran twice: {twice:?}");
    let tries = rt
        .block_on(store.tries(&tis.iter().map(|t| t.id).collect::<Vec<_>>()))
        .unwrap();
    let first_try_pid: HashMap<i64, Option<i64>> = tries
        .iter()
        .filter(|t| t.try_number == 1)
        .map(|t| (t.ti_id, t.pid))
        .collect();
    let mut retried = 0;
    for ti in &tis {
        let key = (ti.run_id.clone(), ti.task_id.clone(), ti.try_number);
        assert!(ran.contains_key(&key), "the last try of {key:?} ran");
        if ti.try_number > 1 {
            retried += 1;
            assert_eq!(
                first_try_pid.get(&ti.id).copied().flatten(),
                Some(victim_pid),
                "{key:?} needed another try, but its first was not the killed scheduler's"
            );
        }
    }
    let survivors: std::collections::HashSet<i64> = tis.iter().filter_map(|t| t.pid).collect();
    assert!(
        survivors.len() >= 2,
        "both survivors ran tasks: {survivors:?}"
    );
    eprintln!("{retried} task instances held by the killed scheduler ran again");
    drop(schedulers);
}
