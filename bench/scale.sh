#!/usr/bin/env bash
# Issue 5's scale-up runs on a seeded PostgreSQL database, as reported in the README:
# tokens, JWT introspection and API-key introspection at 32 connections, requests spread
# over 10 and over 10,000 credentials, then API-key introspection over all 1,000,000 keys
# (no priming: most requests are a database round trip), each on a freshly started release
# server whose peak RSS and time to /readyz are reported.
#   bench/scale.sh <database-url> <credentials.jsonl> [seconds]
# Seed first (README, "Scale runs"):
#   target/release/gatehouse-bench seed --database-url $PG --collections 1000 --clients 10000 \
#     --profiles 100000 --api-keys 1000000 --credentials /tmp/gh-creds.jsonl
# GATEHOUSE_SECRET_KEY must be the key the database was seeded with.
set -euo pipefail
PG=${1:?database url}
CREDS=${2:?credentials file}
SECS=${3:-15}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B="$ROOT/target/release"
[ -x "$B/gatehouse" ] && [ -x "$B/gatehouse-bench" ] \
  || cargo build --release -p gatehouse-server -p gatehouse-bench --manifest-path "$ROOT/Cargo.toml"
: "${GATEHOUSE_SECRET_KEY:?set GATEHOUSE_SECRET_KEY}"
OUT=${OUT:-$ROOT/bench/results/scale-$(date -u +%Y-%m-%d).jsonl}
mkdir -p "$(dirname "$OUT")"
run() {
  local spread=$1 scenarios=$2; shift 2
  echo "== spread $spread: $scenarios" >&2
  "$B/gatehouse-bench" run "$scenarios" --public http://127.0.0.1:18280 --admin-addr 127.0.0.1:18281 \
    --credentials "$CREDS" --connections 32 --duration "${SECS}s" --spread "$spread" \
    --server-bin "$B/gatehouse" --database-url "$PG" "$@" | tee -a "$OUT"
}
run 10 tokens,introspect-jwt,introspect-key
run 10000 tokens,introspect-jwt,introspect-key
run 1000000 introspect-key --no-prime --warmup 20s
echo "results appended to $OUT" >&2
