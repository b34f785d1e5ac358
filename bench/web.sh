#!/usr/bin/env bash
# Web benchmark: prints `name value unit` lines.
#
# A DAG of 50 tasks with 10,000 runs (500,000 task instances, each with
# start/end/duration) in a fresh PostgreSQL database, then `tributary web`
# against it. Each endpoint is requested 30 times after one warm-up; the
# figures are the median and the slowest answer in milliseconds (curl's
# time_total, loopback). Target: every line ≤ 300 ms. The same run also
# prints the sizes of the tables, so the history is known to be there.
# Needs PostgreSQL on 127.0.0.1:5432 (./scripts/test.sh starts it).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-10000}"
TASKS="${TASKS:-50}"
work=$(mktemp -d)
pg="postgres://postgres@127.0.0.1:5432"
db="tributary_bench_web"
cleanup() { kill "${web_pid:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cargo build --release --quiet --bin tributary
bin=$PWD/target/release/tributary

psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
psql "$pg/postgres" -qc "CREATE DATABASE $db" >/dev/null
export DATABASE_URL="$pg/$db"
mkdir -p "$work/dags"
{
  echo 'dag_id = "big"'
  echo 'description = "50 tasks in 5 layers, 10,000 runs of history"'
  echo 'schedule = "@hourly"'
  echo 'start_date = 2025-01-01'
  echo 'catchup = false'
  for t in $(seq 1 "$TASKS"); do
    echo "[[task]]"
    printf 'id = "t%02d"\nkind = "noop"\n' "$t"
    if [ "$t" -gt 10 ]; then printf 'depends_on = ["t%02d"]\n' $((t - 10)); fi
  done
} >"$work/dags/big.toml"
export TRIBUTARY_DAGS_FOLDER="$work/dags"
"$bin" dags list >/dev/null   # migrates and records the DAG
"$bin" dags pause big >/dev/null

# History: runs an hour apart, every task finished.
psql "$DATABASE_URL" -q <<SQL
INSERT INTO dag_runs (dag_id, run_id, run_type, logical_date, data_interval_start, data_interval_end,
                      state, conf, created_at, start_date, end_date)
SELECT 'big',
       'scheduled__' || to_char(to_timestamp(ld / 1000000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') || '+00:00',
       'scheduled', ld, ld, ld + 3600000000,
       CASE WHEN g % 17 = 0 THEN 'failed' ELSE 'success' END, '{}', ld + 3600000000,
       ld + 3600000000, ld + 3660000000
FROM (SELECT g, 1735689600000000::bigint + g::bigint * 3600000000 AS ld
      FROM generate_series(1, $RUNS) g) s;
INSERT INTO task_instances (dag_run_id, dag_id, run_id, task_id, state, try_number, max_tries, pool,
                            priority, start_date, end_date, duration_ms)
SELECT r.id, r.dag_id, r.run_id, 't' || lpad(t::text, 2, '0'),
       CASE WHEN r.state = 'failed' AND t = $TASKS THEN 'failed' ELSE 'success' END, 1, 1,
       'default_pool', 1, r.start_date + t * 1000000, r.start_date + t * 1000000 + 800000, 800
FROM dag_runs r, generate_series(1, $TASKS) t WHERE r.dag_id = 'big';
ANALYZE;
SQL
echo "web_history_runs $(psql "$DATABASE_URL" -Atc "SELECT count(*) FROM dag_runs") runs"
echo "web_history_task_instances $(psql "$DATABASE_URL" -Atc "SELECT count(*) FROM task_instances") rows"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" web --bind "127.0.0.1:$port" >"$work/web.log" 2>&1 &
web_pid=$!
for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.05; done
base="http://127.0.0.1:$port"
mid_run=$(psql "$DATABASE_URL" -Atc "SELECT run_id FROM dag_runs ORDER BY logical_date LIMIT 1 OFFSET $((RUNS / 2))")
mid_date=$(psql "$DATABASE_URL" -Atc "SELECT to_char(to_timestamp(logical_date / 1000000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM dag_runs ORDER BY logical_date LIMIT 1 OFFSET $((RUNS / 2))")
enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

measure() { # name path
  local name=$1 url="$base$2" code
  code=$(curl -s -o /dev/null -w '%{http_code}' "$url")
  [ "$code" = 200 ] || { echo "$url answered $code" >&2; exit 1; }
  for _ in $(seq 1 30); do curl -s -o /dev/null -w '%{time_total}\n' "$url"; done | sort -n |
    awk -v n="$name" '{ t[NR] = $1 * 1000 } END { printf "%s_p50 %.1f ms\n%s_max %.1f ms\n", n, t[int((NR + 1) / 2)], n, t[NR] }'
}

measure web_dag_list_page "/"
measure web_dag_grid_page "/dags/big"
measure web_dag_grid_page_older "/dags/big?before=$(enc "$mid_date")"
measure web_run_page "/dags/big/runs/$(enc "$mid_run")"
measure web_api_dags "/api/v1/dags"
measure web_api_runs "/api/v1/dags/big/runs?limit=100"
measure web_api_runs_keyset_middle "/api/v1/dags/big/runs?limit=100&before=$(enc "$mid_date")"
measure web_api_task_instances "/api/v1/dags/big/runs/$(enc "$mid_run")/tasks"
measure web_api_backfills "/api/v1/backfills"
psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
