#!/usr/bin/env bash
# SQL benchmark: prints `name value unit` lines.
#
# 2,000,000 random-user records spread over 30 days (each page of 5,000 is
# one day's) are pre-produced into a Tansu broker and landed in a local
# `users` table by the real stream writer (`stream run --until-caught-up`,
# nation/date partitions). Then, in the same run, three queries
#   q1  a filtered count
#   q2  a group-by nation and day with averages
#   q3  a top-10 by count
# each timed warm (one untimed run, then the best of RUNS), through
#   sql_tributary_*  `tributary sql` with the project's server running
#                    (`tributary web`; the command asks it, as it does by
#                    default): the whole command's wall-clock time, a new
#                    process each time
#   sql_tributary_local_*  `tributary sql --local`: the query in a new
#                    process (the time it reports: opening the table at
#                    its latest version, planning and running)
#   sql_tributary_api_*  the server's `POST /api/v1/sql` (the HTTP round
#                    trip; one process answers them all, as DuckDB and
#                    Polars below answer in one process)
#   sql_duckdb_*     DuckDB's delta_scan (PyPI duckdb + duckdb-ext-delta),
#                    the execute-and-fetch time in one process
#   sql_polars_*     Polars scan_delta(...).collect(), likewise
# and sql_ratio_qN = tributary sql / DuckDB (target: ≤ 1.5), beside
# sql_ratio_local_qN and sql_ratio_api_qN.
#
# Then lake_sql: a DAG whose run for 2026-11-15 refreshes that day of a
# batch table (mode = "interval") and rebuilds the whole table (mode =
# "overwrite"), one after the other; the task durations of RUNS re-runs of
# the same day (the table exists: the steady state), best of each, give
#   lake_sql_interval_day_s, lake_sql_overwrite_all_s and
#   lake_sql_interval_speedup (target: ≥ 10).
#
# Needs tansu, duckdb and duckdb-ext-delta (./scripts/test.sh installs
# them) and polars (installed here when missing). RECORDS=… and RUNS=…
# override the defaults; KEEP=1 keeps the project folder (its path goes to
# stderr) for profiling; FROM_TABLE=<kept project>/lake/users runs on a
# copy of that table instead of producing and landing a new one.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
RECORDS="${RECORDS:-2000000}"
RUNS="${RUNS:-5}"
DAYS=30
work=$(mktemp -d)
cleanup() {
  kill "${sched_pid:-}" "${web_pid:-}" "${tansu_pid:-}" 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "kept the project in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

cargo build --release --quiet --bin tributary --example lake_bench
bin="$PWD/target/release/tributary"
helper="$PWD/target/release/examples/lake_bench"

source bench/lib.sh
python3 -c 'import polars' 2>/dev/null ||
  python3 -m pip install -q --break-system-packages 'polars==2.1.0' >&2

if [ -n "${FROM_TABLE:-}" ]; then
  # A users table an earlier run kept (KEEP=1): copied, not produced.
  mkdir -p "$work/lake"
  cp -r "$FROM_TABLE" "$work/lake/users"
  bootstrap="127.0.0.1:9"
else
  start_tansu "$work/tansu.log"
  "$helper" create "$bootstrap" users 8
  "$helper" produce "$bootstrap" users "$RECORDS" "$DAYS" >"$work/produce.out"
fi
cd "$work"
mkdir dags
cat >tributary.toml <<EOF
database_url = "sqlite://$work/meta.db"
[kafka]
bootstrap_servers = "$bootstrap"
[lake]
url = "lake"
[metrics]
bind = "off"
[[stream]]
name = "users"
topics = ["users"]
table = "users"
schema = "random_user"
partition_by = ["nation", "date(event_time)"]
memory_budget = "256MiB"
rotation = { max_rows = 1000000, max_bytes = "128MiB", max_age = "10s" }
[web]
bind = "127.0.0.1:$(free_port)"
EOF
[ -n "${FROM_TABLE:-}" ] || "$bin" stream run users --until-caught-up >"$work/writer.out" 2>&1
rows=$("$bin" sql "SELECT count(*) AS n FROM users" -o csv | tail -1)
[ "$rows" = "$RECORDS" ] || { echo "the users table holds $rows rows, not $RECORDS" >&2; exit 1; }
echo "sql_table_rows $rows rows"

q1="SELECT count(*) AS n FROM users WHERE nation = 'France' AND latitude > 0"
q2="SELECT nation, CAST(event_time AS DATE) AS day, count(*) AS n, avg(latitude) AS lat, avg(longitude) AS lon FROM users GROUP BY nation, CAST(event_time AS DATE)"
q3="SELECT city, count(*) AS n FROM users GROUP BY city ORDER BY n DESC, city LIMIT 10"

tributary_time() { # query → seconds (best of RUNS, after one warm-up)
  local best=""
  for i in $(seq 0 "$RUNS"); do
    local t
    t=$("$bin" sql --local "$1" --max-rows 1 | sed -n 's/.* rows\? in \([0-9.]*\)s.*/\1/p' | tail -1)
    [ -n "$t" ] || { echo "no time in tributary sql's footer" >&2; exit 1; }
    if [ "$i" -gt 0 ]; then best=$(python3 -c "print(min(float('$t'), float('${best:-1e9}')))"); fi
  done
  echo "$best"
}

for q in q1 q2 q3; do
  t=$(tributary_time "${!q}")
  echo "sql_tributary_local_${q}_s $t s"
  echo "$t" >"$work/local_$q"
done

# With the project's server running (`tributary web`), as for a user with
# the UI open: one process keeps the tables' logs and footers, as DuckDB's
# and Polars' below do. `tributary sql` asks it (the footer must say so);
# the whole command is timed. Then the API alone (`POST /api/v1/sql`).
port=$(sed -n 's/^bind = "127.0.0.1:\([0-9]*\)"/\1/p' tributary.toml)
"$bin" web >"$work/web.out" 2>&1 &
web_pid=$!
python3 "$repo/bench/sqlapi.py" --cli "$bin" "$port" "$RUNS" "$q1" "$q2" "$q3" >"$work/cli.out"
python3 "$repo/bench/sqlapi.py" "$port" "$RUNS" "$q1" "$q2" "$q3" >"$work/api.out"
kill "$web_pid"
wait "$web_pid" 2>/dev/null || true
for i in 1 2 3; do
  t=$(sed -n "${i}p" "$work/cli.out")
  echo "sql_tributary_q${i}_s $t s"
  echo "$t" >"$work/tributary_q$i"
  t=$(sed -n "${i}p" "$work/api.out")
  echo "sql_tributary_api_q${i}_s $t s"
  echo "$t" >"$work/api_q$i"
done

python3 - "$work/lake/users" "$RUNS" "$q1" "$q2" "$q3" <<'PY' | tee "$work/peers.out"
import glob, os, site, sys, time
import duckdb, polars as pl
path, runs, queries = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
ext = [p for d in site.getsitepackages() + [site.getusersitepackages()]
       for p in glob.glob(d + "/duckdb_ext/extensions/*/*/delta.duckdb_extension")]
con = duckdb.connect()
con.execute(f"LOAD '{ext[0]}'")
con.execute("SET TimeZone = 'UTC'")
def best(f):
    f()
    out = []
    for _ in range(runs):
        t = time.perf_counter(); f(); out.append(time.perf_counter() - t)
    return min(out)
for i, q in enumerate(queries, 1):
    sql = q.replace("FROM users", f"FROM delta_scan('{path}')")
    print(f"sql_duckdb_q{i}_s {best(lambda: con.execute(sql).fetchall()):.4f} s")
users = lambda: pl.scan_delta(path)
polars = [
    lambda: users().filter((pl.col("nation") == "France") & (pl.col("latitude") > 0)).select(pl.len()).collect(),
    lambda: users().group_by("nation", pl.col("event_time").dt.date().alias("day"))
        .agg(pl.len().alias("n"), pl.col("latitude").mean(), pl.col("longitude").mean()).collect(),
    lambda: users().group_by("city").agg(pl.len().alias("n")).sort(["n", "city"], descending=[True, False]).head(10).collect(),
]
for i, f in enumerate(polars, 1):
    print(f"sql_polars_q{i}_s {best(f):.4f} s")
sys.stdout.flush()
os._exit(0)
PY
for q in q1 q2 q3; do
  ours=$(cat "$work/tributary_$q")
  local=$(cat "$work/local_$q")
  api=$(cat "$work/api_$q")
  theirs=$(awk "/sql_duckdb_${q}_s/ {print \$2}" "$work/peers.out")
  python3 -c "print(f'sql_ratio_${q} {float(\"$ours\") / float(\"$theirs\"):.2f} x')"
  python3 -c "print(f'sql_ratio_local_${q} {float(\"$local\") / float(\"$theirs\"):.2f} x')"
  python3 -c "print(f'sql_ratio_api_${q} {float(\"$api\") / float(\"$theirs\"):.2f} x')"
done

# lake_sql: refresh one day vs rebuild everything.
cat >dags/batch.toml <<'EOF'
dag_id = "batch"
schedule = "@daily"
start_date = 2026-11-01
catchup = false

[[task]]
id = "day"
kind = "lake_sql"
table = "by_day"
mode = "interval"
interval_column = "day"
partition_by = ["day"]
sql = '''
SELECT CAST(logical_date AS DATE) AS day, nation, count(*) AS users, avg(latitude) AS lat,
       avg(longitude) AS lon, count(DISTINCT city) AS cities
FROM users
WHERE logical_date >= {{ data_interval_start }} AND logical_date < {{ data_interval_end }}
GROUP BY 1, 2
'''

[[task]]
id = "all"
kind = "lake_sql"
depends_on = ["day"]
table = "by_day_full"
mode = "overwrite"
partition_by = ["day"]
sql = '''
SELECT CAST(logical_date AS DATE) AS day, nation, count(*) AS users, avg(latitude) AS lat,
       avg(longitude) AS lon, count(DISTINCT city) AS cities
FROM users
GROUP BY 1, 2
'''
EOF
"$bin" dags pause batch >/dev/null
"$bin" scheduler >"$work/scheduler.log" 2>&1 &
sched_pid=$!
"$bin" backfill batch --from 2026-11-15 --to 2026-11-15 >/dev/null
run=$("$bin" runs list batch -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["run_id"])')
# Each re-run of the day (the table exists: the steady state) is one
# sample of each task; the best of RUNS, as for the queries.
for i in $(seq 1 "$RUNS"); do
  "$bin" backfill batch --from 2026-11-15 --to 2026-11-15 --reprocess all >/dev/null
  "$bin" tasks list batch "$run" -o json >"$work/lake_sql_$i.json"
done
python3 - "$work"/lake_sql_*.json <<'PY'
import json, sys
best = {}
for path in sys.argv[1:]:
    for t in json.load(open(path)):
        assert t["state"] == "success", t
        best[t["task_id"]] = min(best.get(t["task_id"], 1e9), t["duration_ms"] / 1000)
day, full = best["day"], best["all"]
print(f"lake_sql_interval_day_s {day:.3f} s")
print(f"lake_sql_overwrite_all_s {full:.3f} s")
print(f"lake_sql_interval_speedup {full / day:.1f} x")
PY
