#!/usr/bin/env bash
# Lake benchmark: prints `name value unit` lines.
#
# 2,000,000 random-user records (the generator's users through the real
# transform, ~404 B of JSON each) are pre-produced into a Tansu broker
# (8 partitions, in-memory storage). Then, in the same run:
#   lake_consume_only_*  a plain consumer (partitions assigned directly)
#                        reading them all and dropping them: the ceiling any
#                        writer is measured against
#   lake_local_*         `tributary stream run users --until-caught-up` into a
#                        local folder (zstd Parquet, date/nation partitions)
#   lake_s3_*            the same into the moto S3 server
#   lake_visible_*       produce-to-visible latency (max_age 1 s): a record every
#                        5 ms, each row's Kafka timestamp vs the moment its commit
#                        was seen in the log
# Peak RSS and CPU seconds (user + system, all threads) come from
# /usr/bin/time; records_per_cpu_s is the "records/s per core" figure. CPU
# speed differs a lot between machines (the same writer measured 163k and
# 330k records per CPU-second on two machines of this project), so compare
# lake_local_cpu_s with lake_consume_only_cpu_s of the same run. Needs
# tansu and moto (./scripts/test.sh installs both). RECORDS=… overrides the
# record count.
#
# A/B mode, for tuning: `AB="old-binary new-binary" bench/lake.sh` pre-produces
# once, then runs each binary's writer to a local folder in turns, twice,
# and prints lake_abN_runR_* lines (N = position in AB). Run-to-run CPU
# noise is about ±10 % on the 2-core machines; differences smaller than that
# need more rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS="${RECORDS:-2000000}"
PARTITIONS=8
work=$(mktemp -d)
cleanup() { kill "${tansu_pid:-}" "${moto_pid:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cargo build --release --quiet --bin tributary --example lake_bench
bin=target/release/tributary
helper=target/release/examples/lake_bench

source bench/lib.sh
cpu_s() { awk -F: '/User time|System time/ {s+=$2} END {print s}' "$1"; } # user + system seconds in a /usr/bin/time -v report

start_tansu "$work/tansu.log"
s3port=$(free_port)
python3 -m moto.server -H 127.0.0.1 -p "$s3port" >"$work/moto.log" 2>&1 &
moto_pid=$!
wait_port "$s3port"
printf 'PUT /bench HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' |
  (exec 3<>"/dev/tcp/127.0.0.1/$s3port"; cat >&3; cat <&3 >/dev/null)

"$helper" create "$bootstrap" users "$PARTITIONS"
"$helper" create "$bootstrap" latency 1
"$helper" produce "$bootstrap" users "$RECORDS" | tee "$work/produce.out"
value_bytes=$(awk '/lake_preproduce_value_bytes/ {print $2}' "$work/produce.out")
/usr/bin/time -v -o "$work/consume.time" "$helper" consume "$bootstrap" users "$RECORDS"
consume_cpu=$(cpu_s "$work/consume.time")
python3 -c 'import sys; n, c = int(sys.argv[1]), float(sys.argv[2]); print(f"lake_consume_only_cpu_s {c:.2f} s"); print(f"lake_consume_only_records_per_cpu_s {n/c:.0f} records/s")' "$RECORDS" "$consume_cpu"

config() { # lake-url storage-line
  cat <<EOF
[kafka]
bootstrap_servers = "$bootstrap"
[lake]
url = "$1"
$2
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
[[stream]]
name = "latency"
topics = ["latency"]
table = "latency"
schema = "random_user"
partition_by = ["date(event_time)"]
rotation = { max_age = "1s" }
EOF
}

run_writer() { # name config [binary]
  local b="${3:-$bin}"
  local out="$work/$1.time"
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -v "$b" --config "$2" stream run users --until-caught-up >"$work/$1.out" 2>"$out"
  t1=$(date +%s.%N)
  local secs rss cpu
  secs=$(python3 -c "print($t1 - $t0)")
  rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$out")
  cpu=$(cpu_s "$out")
  python3 -c '
import sys
name, secs, rss, n, b, cpu = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
print(f"lake_{name}_records_per_s {n/secs:.0f} records/s")
print(f"lake_{name}_mb_per_s {b/secs/1e6:.1f} MB/s")
print(f"lake_{name}_cpu_s {cpu:.2f} s")
print(f"lake_{name}_records_per_cpu_s {n/cpu:.0f} records/s")
print(f"lake_{name}_seconds {secs:.2f} s")
print(f"lake_{name}_peak_rss {rss/1024:.0f} MiB")
' "$1" "$secs" "$rss" "$RECORDS" "$value_bytes" "$cpu"
  "$b" --config "$2" lake verify users >"$work/$1.verify" || { cat "$work/$1.verify" >&2; exit 1; }
}

if [ -n "${AB:-}" ]; then
  # A/B mode: each binary writes the same records to its own local folder,
  # in turns, twice over; compare their lake_abN_runR_cpu_s.
  for r in 1 2; do
    i=0
    for b in $AB; do
      i=$((i + 1))
      mkdir -p "$work/ab$i-$r"
      config "lake" "" >"$work/ab$i-$r/tributary.toml"
      echo "ab$i = $b" >&2
      run_writer "ab${i}_run$r" "$work/ab$i-$r/tributary.toml" "$b"
    done
  done
  exit 0
fi

mkdir -p "$work/local"
config "lake" "" >"$work/local/tributary.toml"
run_writer local "$work/local/tributary.toml"

mkdir -p "$work/s3"
config "s3://bench/lake" "storage = { aws_endpoint = \"http://127.0.0.1:$s3port\", aws_allow_http = \"true\", aws_region = \"us-east-1\", aws_access_key_id = \"bench\", aws_secret_access_key = \"bench\" }" >"$work/s3/tributary.toml"
run_writer s3 "$work/s3/tributary.toml"

"$helper" latency "$work/local/tributary.toml" latency "$bootstrap" latency 20
