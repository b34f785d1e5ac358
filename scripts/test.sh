#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs and starts what the
# tests need (PostgreSQL, cargo-nextest), then format, lint and tests.
# Usage: ./scripts/test.sh [extra nextest args]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

apt_install() {
  if command -v apt-get >/dev/null 2>&1; then
    log "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
  else
    echo "cannot install $* (no apt-get); install it and re-run" >&2
    exit 1
  fi
}

# --- PostgreSQL on 127.0.0.1:5432, user postgres, trust auth ---------------
pg_ready() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
if ! command -v pg_isready >/dev/null 2>&1; then
  apt_install postgresql postgresql-client
fi
if ! pg_ready; then
  log "starting PostgreSQL"
  if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null 2>&1; then
    ver=$(ls /etc/postgresql | sort -V | tail -1)
    if [ ! -d "/etc/postgresql/$ver/main" ]; then
      pg_createcluster "$ver" main
    fi
    # Tests connect over TCP as postgres without a password.
    hba="/etc/postgresql/$ver/main/pg_hba.conf"
    if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
      sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    fi
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  fi
  for _ in $(seq 1 60); do pg_ready && break; sleep 0.5; done
  pg_ready || { echo "PostgreSQL did not start on 127.0.0.1:5432" >&2; exit 1; }
fi
export TRIBUTARY_TEST_POSTGRES="${TRIBUTARY_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
# Scratch databases of earlier runs.
psql "$TRIBUTARY_TEST_POSTGRES" -Atqc \
  "SELECT datname FROM pg_database WHERE datname LIKE 'tributary\_scratch\_%'" 2>/dev/null |
  while read -r db; do psql "$TRIBUTARY_TEST_POSTGRES" -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1 || true; done

# --- Python: moto (S3 API server), the outside Delta readers, schemathesis ---
command -v python3 >/dev/null 2>&1 || apt_install python3 python3-pip
# DuckDB with its delta extension (matching versions; DuckDB cannot download
# extensions here, so tests LOAD the file the package ships).
py_pkgs=('moto[server]==5.2.1' 'deltalake>=1.1,<2' 'pyarrow>=17' 'schemathesis==4.32.5'
  'duckdb==1.4.4' 'duckdb-ext-delta==1.4.4.20260205')
if ! python3 -c 'import moto, deltalake, pyarrow, flask, schemathesis, duckdb, duckdb_ext' >/dev/null 2>&1 || ! command -v st >/dev/null 2>&1; then
  log "installing moto[server], deltalake, pyarrow, schemathesis and duckdb from PyPI"
  python3 -m pip install -q "${py_pkgs[@]}" ||
    python3 -m pip install -q --break-system-packages "${py_pkgs[@]}"
fi
# pip may put `st` (schemathesis) in the user scripts folder.
command -v st >/dev/null 2>&1 || export PATH="$(python3 -m site --user-base)/bin:$PATH"
command -v st >/dev/null 2>&1 || { echo "schemathesis installed but \`st\` is not on PATH" >&2; exit 1; }
# A moto S3 server on loopback (moto 5.2 honours If-None-Match, so the lake's
# conditional commits are really exercised).
export TRIBUTARY_TEST_S3="${TRIBUTARY_TEST_S3:-http://127.0.0.1:5055}"
s3_port="${TRIBUTARY_TEST_S3##*:}"
if ! (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null; then
  log "starting moto on 127.0.0.1:$s3_port"
  mkdir -p target
  nohup python3 -m moto.server -H 127.0.0.1 -p "$s3_port" >target/moto.log 2>&1 &
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null && break; sleep 0.2; done
  (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null || { echo "moto did not start; see target/moto.log" >&2; exit 1; }
fi

# --- Tansu: an independent Kafka-compatible broker for chaos runs ----------
# (cargo install caches it in ~/.cargo/bin: about 10 minutes once.)
if ! command -v tansu >/dev/null 2>&1; then
  log "installing tansu 0.6.0 (once; about 10 minutes)"
  cargo install tansu --version 0.6.0 --features dynostore,libsql --locked
fi

# --- Headless Chromium + ChromeDriver for the browser test (Debian) --------
if ! command -v chromedriver >/dev/null 2>&1 || ! { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }; then
  apt_install chromium chromium-driver
fi

# --- docker-compose.yml is validated when the docker client is present ----
# (Compose v2 when installed; otherwise Debian's docker-compose.)
if command -v docker >/dev/null 2>&1; then
  if docker compose version >/dev/null 2>&1; then
    log "docker compose config"
    TRIBUTARY_WEB_TOKEN=compose-config-check-token docker compose -f docker-compose.yml config --quiet
    # Without a token compose must refuse: a known default token is no token.
    if env -u TRIBUTARY_WEB_TOKEN docker compose -f docker-compose.yml config --quiet 2>/dev/null; then
      echo "docker-compose.yml starts without TRIBUTARY_WEB_TOKEN; it must refuse" >&2
      exit 1
    fi
  else
    command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose
    log "docker-compose config"
    TRIBUTARY_WEB_TOKEN=compose-config-check-token docker-compose -f docker-compose.yml config -q
    if env -u TRIBUTARY_WEB_TOKEN docker-compose -f docker-compose.yml config -q 2>/dev/null; then
      echo "docker-compose.yml starts without TRIBUTARY_WEB_TOKEN; it must refuse" >&2
      exit 1
    fi
  fi
fi

# --- Rust tools ------------------------------------------------------------
command -v bash >/dev/null || apt_install bash
if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

log "cargo fmt --check"
cargo fmt --all -- --check

log "no import cycles between modules"
python3 scripts/module-cycles.py

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "tests"
cargo nextest run --workspace --locked --no-fail-fast "$@"
