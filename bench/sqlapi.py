"""Queries through a running server's `POST /api/v1/sql`, timed warm.

Shared by the benchmark scripts: `import sqlapi` (with bench/ on
sys.path), or run as

    python3 bench/sqlapi.py PORT RUNS SQL [SQL ...]

which waits for the server, then prints, for each query, the best of RUNS
round trips after one untimed run (one number per line, in seconds); with
`--cli BIN` first, the whole `BIN sql QUERY` command instead, which must
say the server answered it.
"""

import json
import subprocess
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


def command(bin, sql):
    """`tributary sql` as a user runs it, with the project's server up: its
    seconds, whole (process start, asking the server, printing)."""
    started = time.perf_counter()
    out = subprocess.run([bin, "sql", sql, "--max-rows", "1"], check=True,
                         capture_output=True, text=True).stdout
    took = time.perf_counter() - started
    assert "answered by the server" in out, out
    return took


def best_of(timed, runs):
    """The best of `runs` calls of `timed`, after one untimed (the table's
    first log read and file footers)."""
    timed()
    return min(timed() for _ in range(runs))


def best(port, sql, runs):
    """The best of `runs` round trips, after one untimed."""
    return best_of(lambda: query(port, sql)[0], runs)


if __name__ == "__main__":
    args = sys.argv[1:]
    bin = None
    if args[0] == "--cli":
        bin, args = args[1], args[2:]
    port, runs, queries = args[0], int(args[1]), args[2:]
    wait(port)
    for q in queries:
        timed = (lambda: command(bin, q)) if bin else (lambda: query(port, q)[0])
        print(f"{best_of(timed, runs):.4f}")
