//! `tributary standalone` end to end for ingest: its dev broker and offline
//! API, a DAG triggered from the CLI, and the topic read back.

mod common;

use std::time::Duration;

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

#[test]
fn standalone_ingests_random_users_into_its_dev_broker() {
    let env = sqlite_env();
    env.dag(
        "users_fast",
        "dag_id = \"users_fast\"\n[[task]]\nid = \"fetch\"\nkind = \"random_user_to_kafka\"\nresults = 50\nrequests = 2\nseed = \"e2e\"\n",
    );
    let (child, banner) = env.standalone("127.0.0.1:0");
    let mut bootstrap = None;
    let mut api = None;
    for line in &banner {
        if line.trim_start().starts_with("kafka") {
            assert!(line.contains("in-memory, for development"), "{line}");
            bootstrap = line.split_whitespace().nth(1).map(str::to_string);
        }
        if line.trim_start().starts_with("users API") {
            api = line.split_whitespace().nth(2).map(str::to_string);
        }
    }
    let bootstrap = bootstrap.expect("banner names the broker");
    assert!(
        api.expect("banner names the API")
            .starts_with("http://127.0.0.1:")
    );
    let out = env.ok(&["trigger", "users_fast", "--wait", "--timeout", "120"]);
    let run_id = run_id_from(&out);
    let log = env.ok(&["tasks", "logs", "users_fast", &run_id, "fetch"]);
    assert!(
        log.contains("delivered 100 record(s) to users, skipped 0 bad"),
        "{log}"
    );

    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "e2e")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..4 {
        tpl.add_partition_offset("users", p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let mut idle = 0;
    while idle < 5 {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
                assert_eq!(m.key().unwrap(), v["user_id"].as_str().unwrap().as_bytes());
                assert_eq!(v["run_id"], run_id.as_str());
                got.push(v["user_id"].as_str().unwrap().to_string());
                idle = 0;
            }
            Some(Err(e)) => panic!("{e}"),
            None if got.len() >= 100 => idle += 1,
            None => {}
        }
    }
    // Close the consumer while its broker still exists (closing against a
    // vanished broker waits for librdkafka's timeouts).
    drop(c);
    let mut want: Vec<String> = (1..=2)
        .flat_map(|page| tasks::random_user::generator::users("e2e", page, 50, None))
        .map(|u| u["login"]["uuid"].as_str().unwrap().to_string())
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "exactly the users the offline API served");

    interrupt(child);
}

/// Rows of the `users` table, as `lake ls` reports them (0 before it exists).
fn users_rows(env: &Env) -> u64 {
    let o = env.run(&["lake", "ls", "users", "-o", "json"]);
    if !o.status.success() {
        return 0;
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["rows"].as_u64().unwrap_or(0)
}

/// Waits (bounded) until the table holds `n` rows.
fn wait_rows(env: &Env, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let rows = users_rows(env);
        if rows >= n {
            assert_eq!(rows, n, "no row twice");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{rows} of {n} rows landed"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn restarting_standalone_keeps_every_record_of_both_launches_exactly_once() {
    let env = sqlite_env();
    let dag = |seed: &str| {
        format!(
            "dag_id = \"users_fast\"\n[[task]]\nid = \"fetch\"\nkind = \"random_user_to_kafka\"\nresults = 30\nrequests = 1\nseed = \"{seed}\"\n"
        )
    };
    // First launch: 30 users land.
    env.dag("users_fast", &dag("first"));
    let (child, banner) = env.standalone("off");
    assert!(
        !banner.iter().any(|l| l.contains("lifetime")),
        "{banner:#?}"
    );
    env.ok(&["trigger", "users_fast", "--wait", "--timeout", "120"]);
    wait_rows(&env, 30);
    interrupt(child);

    // Second launch: a new, empty dev broker. Before, the writer resumed
    // past offsets the new broker did not have and dropped the new records.
    env.dag("users_fast", &dag("second"));
    let (child, banner) = env.standalone("off");
    assert!(
        banner
            .iter()
            .any(|l| l.contains("table users continues as Kafka log lifetime 1")),
        "{banner:#?}"
    );
    env.ok(&["trigger", "users_fast", "--wait", "--timeout", "120"]);
    wait_rows(&env, 60);
    interrupt(child);

    let out = env.ok(&["lake", "verify", "users"]);
    assert!(
        out.contains("OK: every offset is held exactly once"),
        "{out}"
    );
    assert!(out.contains("rows of up to 2 Kafka log lifetimes"), "{out}");
    // Every user of both launches, once.
    let o = env.ok(&["lake", "ls", "users", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(v["rows"], 60);
}
