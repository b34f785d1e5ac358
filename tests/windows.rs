//! Windowed transforms end to end: the real binary, the `events` table the
//! real stream writer lands from a two-partition dev broker, and an
//! independent judge — a Python simulation of the documented watermark
//! rules over the source table's own Delta log and Parquet files (pyarrow),
//! version by version.
//!
//! The events are chosen so that partition 1 falls silent (idle) while
//! partition 0 moves on, the watermark then passes three windows, and a row
//! of partition 1 arrives behind it (late). Three transforms over the same
//! source: TUMBLE with `emit = "update"`, TUMBLE with `emit = "final"`, HOP
//! with `emit = "update"`. Each must equal the simulation, the late row
//! must be in the late table, and a run killed and restarted must give the
//! same tables.

mod common;

use std::process::Command;
use std::time::Duration;

use common::lake::{Project, duckdb};
use common::{dev_broker, text};
use serde_json::{Value, json};

const TRANSFORMS: &str = r#"
[[transform]]
name = "per_minute"
source = "events"
sql = """
SELECT window_start, window_end, count(*) AS n, sum(id) AS ids
FROM TUMBLE(events, at, INTERVAL '1 minute')
GROUP BY window_start, window_end
"""
table = "per_minute"
trigger = "100ms"
watermark = { column = "at", delay = "0s" }
idle_timeout = "2s"

[[transform]]
name = "per_minute_final"
source = "events"
sql = """
SELECT window_start, window_end, count(*) AS n, sum(id) AS ids
FROM TUMBLE(events, at, INTERVAL '1 minute')
GROUP BY window_start, window_end
"""
table = "per_minute_final"
emit = "final"
trigger = "100ms"
idle_timeout = "2s"

[[transform]]
name = "sliding"
source = "events"
sql = """
SELECT window_start, window_end, count(*) AS n, sum(id) AS ids
FROM HOP(events, at, INTERVAL '1 minute', INTERVAL '2 minutes')
GROUP BY window_start, window_end
"""
table = "sliding"
trigger = "100ms"
idle_timeout = "2s"
"#;

/// Produces `(partition, id, time)` events and waits for every delivery.
fn produce(bootstrap: &str, events: &[(i32, u64, &str)]) {
    let nations = ["FR", "DE"];
    let records: Vec<(i32, Vec<u8>)> = events
        .iter()
        .map(|(p, id, at)| {
            let v = format!(
                r#"{{"id": {id}, "nation": "{}", "at": "2026-12-01T{at}Z"}}"#,
                nations[*p as usize]
            );
            (*p, v.into_bytes())
        })
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let p = testkit::kafka::producer(bootstrap);
        testkit::kafka::produce_to(&p, "events", records).await;
    });
}

fn run_all(project: &Project) {
    for t in ["per_minute", "per_minute_final", "sliding"] {
        project.catch_up_transform(t);
    }
}

/// The documented rules, applied version by version to the source's log.
const SIMULATION: &str = r#"
import glob, json, os, sys
import pyarrow.parquet as pq
table, size, slide, lateness, idle, emit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
US = 1_000_000
parts, watermark = {}, None   # partition -> [max event µs, seen ms]
def mark(now):
    active = [m for m, seen in parts.values() if now - seen <= idle]
    least = min(active) if active else (max(m for m, _ in parts.values()) if parts else None)
    if least is None: return watermark
    return least if watermark is None else max(least, watermark)
windows, late, marks = {}, [], []
for f in sorted(glob.glob(f"{table}/_delta_log/*.json")):
    actions = [json.loads(l) for l in open(f) if l.strip()]
    now = next(a["commitInfo"]["timestamp"] for a in actions if "commitInfo" in a)
    rows = []
    for a in actions:
        if "add" in a and a["add"].get("dataChange", True):
            from urllib.parse import unquote
            t = pq.read_table(os.path.join(table, unquote(a["add"]["path"])))
            rows += t.select(["id", "at", "_partition"]).to_pylist()
    before = mark(now)
    for r in rows:
        at = int(r["at"].timestamp() * US)
        b = at - at % slide
        starts = [b - i * slide for i in range(size // slide)]
        if before is not None and b + size + lateness <= before:
            late.append(r["id"]); marks.append(before); continue
        for s in starts:
            if before is not None and s + size + lateness <= before:
                continue
            w = windows.setdefault(s, [0, 0]); w[0] += 1; w[1] += r["id"]
    for r in rows:
        at = int(r["at"].timestamp() * US)
        p = str(r["_partition"])
        e = parts.setdefault(p, [at, now]); e[0] = max(e[0], at); e[1] = now
    watermark = mark(now)
out = sorted(windows.items())
if emit == "final":
    out = [(s, w) for s, w in out if watermark is not None and s + size + lateness <= watermark]
print(json.dumps({"windows": [{"start_us": s, "n": w[0], "ids": w[1]} for s, w in out], "late": sorted(late), "late_marks_us": marks}))
sys.stdout.flush()
os._exit(0)
"#;

fn simulate(project: &Project, size_s: u64, slide_s: u64, emit: &str) -> Value {
    let table = project.table_path();
    let us = |s: u64| (s * 1_000_000).to_string();
    let out = Command::new("python3")
        .args([
            "-c",
            SIMULATION,
            table.to_str().unwrap(),
            &us(size_s),
            &us(slide_s),
            "0",
            "2000",
            emit,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "simulation failed:\n{}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A transform's windows as DuckDB reads its table.
fn windows_of(project: &Project, table: &str) -> Value {
    let lake = project.dir.path().join("lake");
    let rows = duckdb(
        &lake,
        &format!(
            "SELECT epoch_us(window_start) AS start_us, n, ids FROM delta_scan('{{path}}/{table}') ORDER BY window_start"
        ),
    );
    Value::Array(rows.into_iter().map(Value::Object).collect())
}

#[test]
fn windows_match_the_watermark_rules_with_an_idle_partition_and_a_late_row() {
    let broker = dev_broker("events", 2);
    let project = Project::new(&broker.bootstrap, "lake", "", "{ max_age = \"100ms\" }");
    project.add_config(TRANSFORMS);
    let round = |events: &[(i32, u64, &str)]| {
        produce(&broker.bootstrap, events);
        project.catch_up();
        run_all(&project);
    };
    // Both partitions active; partition 1 holds the watermark at 10:00:30.
    round(&[(0, 1, "10:00:10"), (0, 2, "10:00:20"), (1, 3, "10:00:30")]);
    round(&[(0, 4, "10:01:10"), (0, 5, "10:02:05")]);
    // Partition 1 is silent for longer than idle_timeout (2 s of source
    // commit time): partition 0 alone moves the watermark to 10:03.
    std::thread::sleep(Duration::from_millis(2500));
    round(&[(0, 6, "10:03:00")]);
    // Partition 1 wakes up behind the watermark: its row is late. It is
    // landed on its own, so the watermark it is judged by is 10:03 (row 8
    // in the same round could land first and move the watermark on).
    round(&[(1, 7, "10:00:45")]);
    round(&[(0, 8, "10:03:30")]);
    // A killed run changes nothing: the next one goes on from the log.
    let mut killed = project
        .cmd(&["transform", "run", "sliding", "--metrics-bind", "off"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    killed.kill().unwrap();
    killed.wait().unwrap();
    round(&[(0, 9, "10:03:40")]);

    for (table, size, slide, emit) in [
        ("per_minute", 60, 60, "update"),
        ("per_minute_final", 60, 60, "final"),
        ("sliding", 120, 60, "update"),
    ] {
        let want = simulate(&project, size, slide, emit);
        let got = windows_of(&project, table);
        assert_eq!(got, want["windows"], "{table}: ours vs the simulation");
        assert_eq!(want["late"], json!([7]), "{table}: the late row");
    }
    // Spelled out for the tumbling update table: 10:00 (ids 1–3; 7 came
    // late), 10:01, 10:02, 10:03 (ids 6, 8, 9).
    let got = windows_of(&project, "per_minute");
    let counts: Vec<u64> = got
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["n"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [3, 1, 1, 3], "{got:#}");
    let late = duckdb(
        &project.dir.path().join("lake"),
        "SELECT id, _watermark FROM delta_scan('{path}/per_minute_late')",
    );
    assert_eq!(late.len(), 1, "{late:?}");
    assert_eq!(late[0]["id"], json!(7));
    assert_eq!(late[0]["_watermark"], json!("2026-12-01T10:03:00.000000Z"));
    let marks = simulate(&project, 60, 60, "update")["late_marks_us"].clone();
    let ours = duckdb(
        &project.dir.path().join("lake"),
        "SELECT epoch_us(strptime(_watermark, '%Y-%m-%dT%H:%M:%S.%fZ')) AS w \
         FROM delta_scan('{path}/per_minute_late')",
    );
    assert_eq!(json!([ours[0]["w"]]), marks, "the late row's watermark");
}
