#!/usr/bin/env bash
# Kappa benchmark: prints `name value unit` lines.
#
# RECORDS random-user records (default 2,000,000) are pre-produced into a
# Tansu broker. In the same run:
#   writer_*   the live stream writer lands them in `users` (stream run
#              --until-caught-up): records/s and CPU-seconds — the peer;
#   replay_*   `lake replay users` writes them again into users@v2 with the
#              same writer code: records/s, CPU-seconds, and the ratio to
#              the writer (target: within 10%);
#   verify_s   `lake verify users@v2 --against users`;
#   swap_*     with the live writer running and records arriving (2,000 a
#              second from one long-lived producer), SWITCHES switches back and forth (`lake swap` then
#              `lake rollback`, …): the switching commit's own time (target
#              ≤ 1 s for a table of thousands of files), the table's file
#              count, and how long the live writer paused at each. The
#              pause is read from the table itself: each record the live
#              writer committed waited from when it could have been visible
#              (produced, or the switch, whichever is later: a rollback
#              hides the records the other generation held until the writer
#              writes them again) to its commit. `swap_record_wait_*` is
#              that wait for the records of the writer's first commit after
#              each switch (target p99 ≤ 2 s), beside `writer_record_wait_*`
#              for every other commit of the live phase. The older measure,
#              the time from the writer's last commit before a switch to
#              its first after (it counts the writer's usual cadence too),
#              is `swap_writer_commit_gap_*`.
#
# Needs tansu (./scripts/test.sh installs it). RECORDS=…, SWITCHES=…, DAYS=…
# override the defaults; KEEP=1 keeps the project folder.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS="${RECORDS:-2000000}"
SWITCHES="${SWITCHES:-6}"
work=$(mktemp -d)
cleanup() {
  kill "${writer_pid:-}" "${feed_pid:-}" "${tansu_pid:-}" 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "kept the project in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

cargo build --release --quiet --bin tributary --example lake_bench
bin="$PWD/target/release/tributary"
helper="$PWD/target/release/examples/lake_bench"

source bench/lib.sh

# Over 30 days (nation × day partitions), so the table holds thousands of
# files, as the swap target is stated for.
users_project "$RECORDS" "${DAYS:-30}"

timed "$work/writer.time" "$bin" stream run users --until-caught-up >"$work/writer.out" 2>&1
read -r w_el w_us w_sy <"$work/writer.time"
timed "$work/replay.time" "$bin" lake replay users >"$work/replay.out" 2>&1
read -r r_el r_us r_sy <"$work/replay.time"
rows=$("$bin" sql -o csv 'SELECT count(*) AS n FROM "users@v2"' | tail -1)
[ "$rows" = "$RECORDS" ] || { echo "users@v2 holds $rows rows, not $RECORDS" >&2; exit 1; }
python3 -c "
w, r = $RECORDS / $w_el, $RECORDS / $r_el
print(f'writer_records_per_s {w:.0f} records/s'); print(f'writer_cpu_s {$w_us + $w_sy:.2f} s')
print(f'replay_records_per_s {r:.0f} records/s'); print(f'replay_cpu_s {$r_us + $r_sy:.2f} s')
print(f'replay_vs_writer {r / w:.2f} x')"

timed "$work/verify.time" "$bin" lake verify users@v2 --against users >"$work/verify.out" 2>&1
read -r v_el _ _ <"$work/verify.time"
echo "verify_s $v_el s"

# Switches with the live writer running and records arriving.
live_start_ms=$(date +%s%3N)
"$bin" stream run users --metrics-bind off >"$work/live.out" 2>&1 &
writer_pid=$!
"$helper" feed "$bootstrap" users 2000 >/dev/null 2>&1 &
feed_pid=$!
# Switch once the live writer is up: it has committed the feed's records.
version() { "$bin" lake ls users -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])'; }
before=$(version)
until [ "$(version)" -gt "$before" ]; do sleep 0.2; done
: >"$work/switches.out"
for i in $(seq 1 "$SWITCHES"); do
  if [ $((i % 2)) = 1 ]; then
    "$bin" lake swap users users@v2 -o json >>"$work/switches.out"
  else
    "$bin" lake rollback users -o json >>"$work/switches.out"
  fi
  echo >>"$work/switches.out"
  sleep 3 # the writer commits a few times between switches
done
kill "$feed_pid"
kill -INT "$writer_pid"
wait "$writer_pid" || true
python3 - "$work/lake/users" "$work/switches.out" "$live_start_ms" <<'PY'
import glob, json, os, sys
from urllib.parse import unquote
import pyarrow as pa
import pyarrow.parquet as pq
table, reports, live_start = sys.argv[1], sys.argv[2], int(sys.argv[3])
switch_ms, files = [], []
text, at, dec = open(reports).read(), 0, json.JSONDecoder()
while text[at:].strip():
    at += len(text[at:]) - len(text[at:].lstrip())
    r, at = dec.raw_decode(text, at)
    switch_ms.append(r["commit_ms"])
    files.append(r["files_removed"] + r["files_added"])
commits = []
for f in sorted(glob.glob(f"{table}/_delta_log/*.json")):
    actions = [json.loads(l) for l in open(f) if l.strip()]
    info = next(a["commitInfo"] for a in actions if "commitInfo" in a)
    query = (info.get("operationParameters") or {}).get("queryId", "")
    adds = [a["add"]["path"] for a in actions if "add" in a]
    commits.append((info["timestamp"], query, adds))
# The live writer's commits (not the catch-up run's before it).
writer = [(t, adds) for t, q, adds in commits if q == "users" and t >= live_start]
switches = [t for t, q, _ in commits if q.startswith("tributary-generation:")]
def produced_ms(path):
    col = pq.read_table(os.path.join(table, unquote(path)), columns=["_timestamp"])["_timestamp"]
    return col.cast(pa.timestamp("ms")).cast(pa.int64()).to_pylist()
def pct(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
at_switch, usual, gaps_across = [], [], []
firsts = set()
for s in switches:
    before = [t for t, _ in writer if t <= s]
    after = [i for i, (t, _) in enumerate(writer) if t > s]
    if before and after:  # the live writer ran on both sides
        firsts.add(after[0])
        gaps_across.append((writer[after[0]][0] - before[-1]) / 1000)
for i, (t, adds) in enumerate(writer):
    if t < switches[0]:
        continue  # only the phase with switches
    last_switch = max([s for s in switches if s < t], default=0)
    waits = [(t - max(p, last_switch)) / 1000 for a in adds for p in produced_ms(a) if p is not None]
    (at_switch if i in firsts else usual).extend(waits)
if not at_switch:
    sys.exit("no switch had live writer commits on both sides")
print(f"swap_switches {len(switch_ms)} switches")
print(f"swap_switches_with_writer_commits_around {len(firsts)} switches")
print(f"swap_files_touched_max {max(files)} files")
print(f"swap_commit_p50_s {sorted(switch_ms)[len(switch_ms) // 2] / 1000:.3f} s")
print(f"swap_commit_max_s {max(switch_ms) / 1000:.3f} s")
print(f"swap_record_wait_p50_s {pct(at_switch, 50):.3f} s")
print(f"swap_record_wait_p99_s {pct(at_switch, 99):.3f} s")
print(f"swap_record_wait_max_s {max(at_switch):.3f} s")
print(f"writer_record_wait_p50_s {pct(usual, 50):.3f} s")
print(f"writer_record_wait_p99_s {pct(usual, 99):.3f} s")
print(f"swap_writer_commit_gap_p50_s {pct(gaps_across, 50):.3f} s")
print(f"swap_writer_commit_gap_max_s {max(gaps_across):.3f} s")
sys.stdout.flush()
os._exit(0)
PY
