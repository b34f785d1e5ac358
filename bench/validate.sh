#!/usr/bin/env bash
# DAG validation benchmark: prints `name value unit` lines.
#   validate_{chain,fanout}_{10k,20k,40k}_s  `tributary dags validate` of a
#       generated DAG file: a chain (each task depends on the one before) and
#       a fan-out (every task depends on the first), 10,000 to 40,000 tasks
#   validate_cycle_20k_s   a 20,000-task cycle (reported with its path, cut)
#   toml_parse_python_{10k,20k,40k}_s  the peer in the same run: Python's
#       tomllib parsing the same chain file, nothing more
#   validate_chain_growth_40k_over_10k  the 40k time over the 10k time:
#       about 4 when validation is linear
# Usage: bench/validate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin tributary
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/tributary"
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

gen() { # shape n file
  python3 - "$1" "$2" "$3" <<'PY'
import sys
shape, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(path, "w") as f:
    f.write(f'dag_id = "{shape}_{n}"\n')
    for i in range(n):
        f.write(f'[[task]]\nid = "t{i}"\nkind = "noop"\n')
        if shape == "chain" and i > 0:
            f.write(f'depends_on = ["t{i - 1}"]\n')
        elif shape == "fanout" and i > 0:
            f.write('depends_on = ["t0"]\n')
        elif shape == "cycle":
            f.write(f'depends_on = ["t{(i - 1) % n}"]\n')
PY
}

seconds() { # expected-exit command…: wall seconds of one run
  local want=$1 t0 t1 rc=0
  shift
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>&1 || rc=$?
  t1=$(date +%s.%N)
  [ "$rc" -eq "$want" ] || { echo "$* exited $rc, expected $want" >&2; exit 1; }
  echo "$t1 - $t0" | bc -l
}

declare -A chain
for n in 10000 20000 40000; do
  k="$((n / 1000))k"
  for shape in chain fanout; do
    gen "$shape" "$n" "$WORK/$shape$n.toml"
    s=$(seconds 0 "$BIN" dags validate "$WORK/$shape$n.toml")
    printf 'validate_%s_%s_s %.3f s\n' "$shape" "$k" "$s"
    [ "$shape" = chain ] && chain[$k]=$s
  done
  s=$(seconds 0 python3 -c 'import sys, tomllib; tomllib.load(open(sys.argv[1], "rb"))' "$WORK/chain$n.toml")
  printf 'toml_parse_python_%s_s %.3f s\n' "$k" "$s"
done
gen cycle 20000 "$WORK/cycle.toml"
s=$(seconds 1 "$BIN" dags validate "$WORK/cycle.toml")
printf 'validate_cycle_20k_s %.3f s\n' "$s"
printf 'validate_chain_growth_40k_over_10k %.2f x\n' "$(echo "${chain[40k]} / ${chain[10k]}" | bc -l)"
