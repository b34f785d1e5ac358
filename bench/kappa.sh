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
#              second), SWITCHES switches back and forth (`lake swap` then
#              `lake rollback`, …): the switching commit's own time (target
#              ≤ 1 s for a table of thousands of files), the table's file
#              count, and how long the live writer paused at each — the
#              time between its last commit before a switch and its first
#              after, read from the Delta log (target p99 ≤ 2 s), beside
#              its usual time between commits in the same phase (a switch
#              with no writer commit in the 5 s before it is left out: the
#              writer was not yet running).
#
# Needs tansu (./scripts/test.sh installs it). RECORDS=…, SWITCHES=… override
# the defaults; KEEP=1 keeps the project folder.
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

users_project "$RECORDS"

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
"$bin" stream run users --metrics-bind off >"$work/live.out" 2>&1 &
writer_pid=$!
(while true; do "$helper" produce "$bootstrap" users 2000 >/dev/null 2>&1 || true; sleep 1; done) &
feed_pid=$!
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
python3 - "$work/lake/users" "$work/switches.out" <<'PY'
import glob, json, os, sys
table, reports = sys.argv[1], sys.argv[2]
switch_ms, files = [], []
text, at, dec = open(reports).read(), 0, json.JSONDecoder()
while text[at:].strip():
    at += len(text[at:]) - len(text[at:].lstrip())
    r, at = dec.raw_decode(text, at)
    switch_ms.append(r["commit_ms"])
    files.append(r["files_removed"] + r["files_added"])
commits = []
for f in sorted(glob.glob(f"{table}/_delta_log/*.json")):
    info = next(json.loads(l)["commitInfo"] for l in open(f) if '"commitInfo"' in l)
    query = (info.get("operationParameters") or {}).get("queryId", "")
    commits.append((info["timestamp"], query))
writer = [t for t, q in commits if q == "users"]
switches = [t for t, q in commits if q.startswith("tributary-generation:")]
pauses = []
for t in switches:
    before = [w for w in writer if w <= t]
    after = [w for w in writer if w > t]
    # A switch the running writer committed shortly before (the first one
    # may come before the live writer's first commit of this phase).
    if before and after and t - before[-1] < 5000:
        pauses.append((after[0] - before[-1]) / 1000)
# The writer's usual time between commits: gaps no switch falls in, while
# it ran beside the switches.
gaps = sorted((b - a) / 1000 for a, b in zip(writer, writer[1:])
              if b > switches[0] and not any(a < t < b for t in switches))
if not pauses:
    sys.exit("no switch had writer commits on both sides")
pauses.sort()
print(f"swap_switches {len(switch_ms)} switches")
print(f"swap_files_touched_max {max(files)} files")
print(f"swap_commit_p50_s {sorted(switch_ms)[len(switch_ms) // 2] / 1000:.3f} s")
print(f"swap_commit_max_s {max(switch_ms) / 1000:.3f} s")
print(f"swap_writer_pause_max_s {pauses[-1]:.3f} s")
print(f"swap_writer_pause_p50_s {pauses[len(pauses) // 2]:.3f} s")
print(f"writer_commit_gap_p50_s {gaps[len(gaps) // 2]:.3f} s")
print(f"writer_commit_gap_max_s {gaps[-1]:.3f} s")
sys.stdout.flush()
os._exit(0)
PY
