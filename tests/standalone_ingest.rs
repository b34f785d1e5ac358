//! `tributary standalone` end to end for ingest: its dev broker and offline
//! API, a DAG triggered from the CLI, and the topic read back.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
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
    let mut child = env
        .cmd(&["standalone", "--web-bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut bootstrap = None;
    let mut api = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.trim_start().starts_with("kafka") {
            assert!(line.contains("in-memory, for development"), "{line}");
            bootstrap = line.split_whitespace().nth(1).map(str::to_string);
        }
        if line.trim_start().starts_with("users API") {
            api = line.split_whitespace().nth(2).map(str::to_string);
        }
        if line.starts_with("Ctrl-C") {
            break;
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

    let st = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(child.wait().unwrap().success(), "clean shutdown");
}
