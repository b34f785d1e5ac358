# Shared by the benchmark scripts (sourced, not run): ports and a Tansu
# broker on loopback.

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits (up to 10 s) until something listens on port $1.
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

# Starts a Tansu broker with in-memory storage, logging to $1; sets
# tansu_pid and bootstrap.
start_tansu() {
  local port
  port=$(free_port)
  tansu broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ >"$1" 2>&1 &
  tansu_pid=$!
  wait_port "$port"
  bootstrap="127.0.0.1:$port"
}

# Starts Tansu, makes topic `users` (8 partitions) holding $1 random-user
# records (via $helper, logs under $work; spread over $2 days, default 1),
# then a project in $work (cd there) whose tributary.toml streams them into
# the `users` table; a bench appends its own declarations.
users_project() {
  start_tansu "$work/tansu.log"
  "$helper" create "$bootstrap" users 8
  "$helper" produce "$bootstrap" users "$1" "${2:-1}" >"$work/produce.out"
  cd "$work"
  mkdir -p dags
  cat >tributary.toml <<TOML
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
rotation = { max_rows = 1000000, max_bytes = "128MiB", max_age = "1s" }
TOML
}

# Runs a command (after the output file), writing "elapsed user sys" to
# that file.
timed() {
  local out=$1
  shift
  /usr/bin/time -f "%e %U %S" -o "$out" "$@"
}
