#!/usr/bin/env bash
# Ingest benchmark: prints `name value unit` lines.
#   raw_producer_*  the idempotent zstd producer alone (same records), the ceiling
#   ingest_*        random_user_to_kafka end to end: offline API (results=5000,
#                   20 requests) → parse → transform → produce, every delivery awaited
# Both against librdkafka's in-process mock cluster, in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --quiet -p tasks --example ingest_bench
