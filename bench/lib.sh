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
