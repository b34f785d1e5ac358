#!/usr/bin/env bash
# Scheduler benchmark: prints `name value unit` lines, on SQLite and PostgreSQL.
#   - chain20_{noop,shell}: 20-task chain; trigger→success wall time, and
#     p50/p99 of the gap between one task's end and the next task's start
#   - fanout100: 100 parallel noop tasks then a join; trigger→success
#   - baseline: bash spawn time and one metadata round trip, same run
#   - backfill1000: backfill of 1,000 daily intervals of a 1-task noop DAG
#   - throughput_10k: 100 runs × 100 noop tasks queued at once, then 1, 2
#     or 3 schedulers started on the database: task instances per second
#     from the first run's start to the last run's end
#   - dags1000: 1,000 DAGs × 10 tasks: the DAG folder's sync at start and
#     after one file changed (as the scheduler logs it), `dags list` and the
#     web UI's DAG list page (median of 5)
#   - statements per task instance: every statement the scheduler sent
#     (sqlx's statement log) during 10 runs × 100 tasks, divided by the task
#     instances; and during one 20-task chain, divided by its 20 tasks
#     (a handoff's round trips: BEGIN is sent but not logged)
# Usage: bench/scheduler.sh [runs per case, default 5]
#   ONLY=latency|throughput|statements|dags (comma-separated): those parts only
# Needs PostgreSQL on 127.0.0.1:5432 (scripts/test.sh starts it).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-5}"
# TRIBUTARY_BIN: measure that binary instead of building the release one.
if [ -z "${TRIBUTARY_BIN:-}" ]; then cargo build --release --quiet; fi
BIN="${TRIBUTARY_BIN:-$PWD/target/release/tributary}"
ONLY="${ONLY:-latency,throughput,statements,dags}"
want() { [[ ",$ONLY," == *",$1,"* ]]; }
PG_ADMIN="${TRIBUTARY_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

mkdir -p "$WORK/dags"
{
  echo 'dag_id = "chain20_noop"'
  for i in $(seq 1 20); do
    echo "[[task]]"; echo "id = \"t$i\""; echo 'kind = "noop"'
    [ "$i" -gt 1 ] && echo "depends_on = [\"t$((i - 1))\"]"
  done
} > "$WORK/dags/chain20_noop.toml"
sed -e 's/chain20_noop/chain20_shell/' -e 's/kind = "noop"/kind = "shell"\ncommand = "true"/' \
  "$WORK/dags/chain20_noop.toml" > "$WORK/dags/chain20_shell.toml"
{
  echo 'dag_id = "fanout100"'
  echo 'max_active_tasks = 128'
  deps=""
  for i in $(seq 1 100); do
    echo "[[task]]"; echo "id = \"w$i\""; echo 'kind = "noop"'
    deps="$deps\"w$i\", "
  done
  echo "[[task]]"; echo 'id = "join"'; echo 'kind = "noop"'; echo "depends_on = [${deps%, }]"
} > "$WORK/dags/fanout100.toml"
{
  echo 'dag_id = "wide100"'
  echo 'max_active_runs = 100'
  echo 'max_active_tasks = 1000'
  for i in $(seq 1 100); do
    echo "[[task]]"; echo "id = \"w$i\""; echo 'kind = "noop"'
  done
} > "$WORK/wide100.toml"
mkdir -p "$WORK/dags-wide" "$WORK/dags-chain"
cp "$WORK/wide100.toml" "$WORK/dags-wide/"
printf 'dag_id = "backfill1000"\nschedule = "@daily"\nstart_date = 2020-01-01\n[[task]]\nid = "a"\nkind = "noop"\n' \
  > "$WORK/dags/backfill1000.toml"
cp "$WORK/dags/chain20_noop.toml" "$WORK/dags-chain/"
"$BIN" dags validate "$WORK/dags" >/dev/null

python3 - <<'PY'
import subprocess, time
t = time.perf_counter()
for _ in range(20):
    subprocess.run(["bash", "-c", "true"], check=True)
print(f"baseline_bash_spawn {(time.perf_counter() - t) / 20 * 1000:.2f} ms")
PY

bench_backend() {
  local name="$1" url="$2"
  export DATABASE_URL="$url" TRIBUTARY_DAGS_FOLDER="$WORK/dags"
  "$BIN" db migrate >/dev/null
  "$BIN" scheduler --parallelism 128 >"$WORK/scheduler-$name.log" 2>&1 &
  local pid=$!
  for dag in chain20_noop chain20_shell fanout100; do
    for _ in $(seq 1 "$RUNS"); do
      "$BIN" trigger "$dag" --wait --timeout 120 >/dev/null
    done
    "$BIN" runs list "$dag" --limit "$RUNS" -o json >"$WORK/runs.json"
    rm -rf "$WORK/tis" && mkdir "$WORK/tis"
    n=0
    for run in $(python3 -c "import json;print(' '.join(r['run_id'] for r in json.load(open('$WORK/runs.json'))))"); do
      n=$((n + 1))
      "$BIN" tasks list "$dag" "$run" -o json >"$WORK/tis/$n.json"
    done
    python3 - "$name" "$dag" "$WORK/runs.json" "$WORK/tis" <<'PY'
import json, sys
from datetime import datetime
import glob
name, dag, runs_f, tis_dir = sys.argv[1:]
ts = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
runs = json.load(open(runs_f))
assert all(r["state"] == "success" for r in runs), [r["state"] for r in runs]
walls = sorted(ts(r["end_date"]) - ts(r["created_at"]) for r in runs)
def pct(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
print(f"{name}_{dag}_trigger_to_success_p50 {pct(walls, 50) * 1000:.1f} ms")
if dag.startswith("chain"):
    gaps = []
    for f in glob.glob(tis_dir + "/*.json"):
        tis = {t["task_id"]: t for t in json.load(open(f))}
        for i in range(1, 20):
            gaps.append(ts(tis[f"t{i+1}"]["start_date"]) - ts(tis[f"t{i}"]["end_date"]))
    print(f"{name}_{dag}_gap_p50 {pct(gaps, 50) * 1000:.2f} ms")
    print(f"{name}_{dag}_gap_p99 {pct(gaps, 99) * 1000:.2f} ms")
PY
  done
  # Paused, so only the backfill creates runs (backfills run on paused DAGs).
  "$BIN" dags pause backfill1000 >/dev/null
  local t0 t1
  t0=$(date +%s.%N)
  "$BIN" backfill backfill1000 --from 2023-01-01 --to 2025-09-26 --max-active-runs 16 >/dev/null
  t1=$(date +%s.%N)
  python3 -c "print(f'${name}_backfill1000_wall {${t1} - ${t0}:.2f} s')"
  kill -INT "$pid"; wait "$pid" || true
}

# Seconds from the first run's start to the last run's end, over every run
# of a database (timestamps are stored as microseconds).
span_sql="SELECT (MAX(end_date) - MIN(start_date)) / 1e6, SUM(CASE WHEN state = 'success' THEN 1 ELSE 0 END) \
FROM dag_runs WHERE dag_id = 'wide100'"
span() { # url
  case "$1" in
    sqlite://*) python3 -c "import sqlite3,sys; print(*sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone())" \
      "${1#sqlite://}" "$span_sql" ;;
    *) psql "$1" -Atc "$span_sql" | tr '|' ' ' ;;
  esac
}

# Queues `runs` runs of wide100 with no scheduler running, starts `n`
# schedulers, waits for every run to end; prints task instances per second.
throughput() { # name url n runs
  local name="$1" url="$2" n="$3" runs="$4" pids=() i
  export DATABASE_URL="$url" TRIBUTARY_DAGS_FOLDER="$WORK/dags-wide"
  "$BIN" db migrate >/dev/null
  "$BIN" pools set default_pool --slots 1024 >/dev/null
  for i in $(seq 1 "$runs"); do "$BIN" trigger wide100 >/dev/null; done
  for i in $(seq 1 "$n"); do
    TRIBUTARY_LOG="${STATEMENT_LOG:-warn}" "$BIN" scheduler --parallelism 128 >"$WORK/tp-$name-$i.log" 2>&1 &
    pids+=($!)
  done
  local done_runs=0 secs
  until [ "$done_runs" = "$runs" ]; do
    read -r secs done_runs < <(span "$url")
    done_runs="${done_runs:-0}"
    sleep 0.2
  done
  kill -INT "${pids[@]}"; wait "${pids[@]}" || true
  python3 -c "print(f'${name}_throughput_10k_tasks_per_s {$runs * 100 / $secs:.0f} tasks/s')"
}

pg_db() { # create|drop name
  if [ "$1" = create ]; then psql "$PG_ADMIN" -qc "CREATE DATABASE $2" >/dev/null; echo "${PG_ADMIN%/*}/$2"
  else psql "$PG_ADMIN" -qc "DROP DATABASE $2 WITH (FORCE)" >/dev/null; fi
}

PG_DB="tributary_scratch_bench_$$"
if want latency; then
  bench_backend sqlite "sqlite://$WORK/bench.db"
  bench_backend postgres "$(pg_db create "$PG_DB")"
  pg_db drop "$PG_DB"
fi

if want throughput; then
  throughput sqlite_1_scheduler "sqlite://$WORK/tp.db" 1 100
  for n in 1 2 3; do
    url=$(pg_db create "${PG_DB}_tp$n")
    throughput "postgres_${n}_scheduler$([ "$n" -gt 1 ] && echo s)" "$url" "$n" 100
    pg_db drop "${PG_DB}_tp$n"
  done
fi

want statements || want dags || exit 0

# Statements per task instance, from sqlx's log of every statement it sends.
if want statements; then
  url=$(pg_db create "${PG_DB}_count")
  STATEMENT_LOG="warn,sqlx::query=debug" throughput postgres_counted "$url" 1 10 >/dev/null
  # And per handoff: one run of the 20-task chain, statements / 20.
  export DATABASE_URL="$url" TRIBUTARY_DAGS_FOLDER="$WORK/dags-chain"
  TRIBUTARY_LOG="warn,sqlx::query=debug" "$BIN" scheduler >"$WORK/chain-counted.log" 2>&1 &
  cpid=$!
  "$BIN" trigger chain20_noop --wait --timeout 120 >/dev/null
  kill -INT "$cpid"; wait "$cpid" || true
  python3 - "$WORK"/tp-postgres_counted-1.log "$WORK/chain-counted.log" <<'PY'
import sys
count = lambda f: sum(1 for l in open(f) if "sqlx::query" in l)
print(f"postgres_statements_per_task_instance {count(sys.argv[1]) / 1000:.1f} statements")
print(f"postgres_statements_per_chain_handoff {count(sys.argv[2]) / 20:.1f} statements")
PY
  pg_db drop "${PG_DB}_count"
fi
want dags || exit 0

# 1,000 DAGs × 10 tasks: sync at start and after a change, and the DAG lists.
mkdir -p "$WORK/dags1000"
python3 - "$WORK/dags1000" <<'PY'
import sys
for d in range(1000):
    with open(f"{sys.argv[1]}/d{d:04}.toml", "w") as f:
        f.write(f'dag_id = "d{d:04}"\ndescription = "one of a thousand"\n')
        for t in range(10):
            f.write(f'[[task]]\nid = "t{t}"\nkind = "noop"\n' + (f'depends_on = ["t{t - 1}"]\n' if t else ""))
PY
url=$(pg_db create "${PG_DB}_dags")
export DATABASE_URL="$url" TRIBUTARY_DAGS_FOLDER="$WORK/dags1000"
"$BIN" db migrate >/dev/null
"$BIN" scheduler --dag-refresh-secs 1 >"$WORK/dags1000.log" 2>&1 &
spid=$!
synced() { grep -c "DAG folder synced" "$WORK/dags1000.log" 2>/dev/null || true; }
until [ "$(synced)" -ge 1 ]; do sleep 0.1; done
sed -i 's/one of a thousand/changed/' "$WORK/dags1000/d0500.toml"
until [ "$(synced)" -ge 2 ]; do sleep 0.1; done
kill -INT "$spid"; wait "$spid" || true
python3 - "$WORK/dags1000.log" <<'PY'
import re, sys
lines = [l for l in open(sys.argv[1]) if "DAG folder synced" in l]
for name, line in zip(["start", "after_change"], lines):
    ms = re.search(r"total_ms=(\d+)", line).group(1)
    print(f"postgres_dags1000_sync_{name} {ms} ms")
PY
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BIN" web --bind "127.0.0.1:$port" >"$WORK/web.log" 2>&1 &
wpid=$!
until curl -sf "http://127.0.0.1:$port/" >/dev/null; do sleep 0.1; done
python3 - "$BIN" "$port" <<'PY'
import statistics, subprocess, sys, time, urllib.request
bin_, port = sys.argv[1:]
def median_ms(f):
    times = []
    for _ in range(5):
        t = time.perf_counter(); f(); times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)
cli = median_ms(lambda: subprocess.run([bin_, "dags", "list"], check=True, capture_output=True))
page = median_ms(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/").read())
print(f"postgres_dags1000_cli_dags_list {cli:.0f} ms")
print(f"postgres_dags1000_web_dag_list_page {page:.0f} ms")
PY
kill "$wpid"; wait "$wpid" 2>/dev/null || true
pg_db drop "${PG_DB}_dags"
