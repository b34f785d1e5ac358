"""Queries through a running server's `POST /api/v1/sql`, timed warm.

Shared by the benchmark scripts: `import sqlapi` (with bench/ on
sys.path), or run as

    python3 bench/sqlapi.py PORT RUNS SQL [SQL ...]

which waits for the server, then prints, for each query, the best of RUNS
round trips after one untimed run (one number per line, in seconds).
"""

import json
import sys
import time
import urllib.request


def base(port):
    return f"http://127.0.0.1:{port}"


def wait(port, seconds=60):
    """Waits until the server answers /healthz."""
    for _ in range(int(seconds * 10)):
        try:
            urllib.request.urlopen(base(port) + "/healthz", timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"the server on port {port} never answered /healthz")


def query(port, sql):
    """One round trip: (seconds, the answer's JSON)."""
    req = urllib.request.Request(
        base(port) + "/api/v1/sql",
        data=json.dumps({"sql": sql}).encode(),
        headers={"content-type": "application/json"},
    )
    started = time.perf_counter()
    body = json.loads(urllib.request.urlopen(req, timeout=300).read())
    return time.perf_counter() - started, body


def best(port, sql, runs):
    """The best of `runs` round trips, after one untimed (the table's first
    log read and file footers)."""
    query(port, sql)
    return min(query(port, sql)[0] for _ in range(runs))


if __name__ == "__main__":
    port, runs, queries = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    wait(port)
    for q in queries:
        print(f"{best(port, q, runs):.4f}")
