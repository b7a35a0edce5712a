#!/usr/bin/env bash
# Soak: the release server at a steady fraction of its peak token rate for a long time, on
# loopback only, bounded in time; its RSS is sampled every 10 s into a CSV.
#   bench/soak.sh [seconds=600] [fraction=0.8]
# Seeds a small SQLite database (10 collections, 100 profiles, 100 API keys), starts the
# server, measures the peak (`tokens`, 32 connections, 10 s, closed loop), then holds
# fraction × peak requests/s (open loop, `--rate`) for the given time. Fails if any request
# fails, or if RSS after the first minute leaves ±10 % of its value at one minute.
# Writes bench/results/soak-<date>.csv (unix time, RSS kB) and prints a summary.
set -euo pipefail
SECS=${1:-600}
FRACTION=${2:-0.8}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B="$ROOT/target/release"
[ -x "$B/gatehouse" ] && [ -x "$B/gatehouse-bench" ] \
  || cargo build --release -p gatehouse-server -p gatehouse-bench --manifest-path "$ROOT/Cargo.toml"
command -v jq >/dev/null || { echo "install jq" >&2; exit 1; }
CSV=${CSV:-$ROOT/bench/results/soak-$(date -u +%Y-%m-%d).csv}
mkdir -p "$(dirname "$CSV")"
DIR=$(mktemp -d)
DB="sqlite://$DIR/gh.db?mode=rwc"
PUB=127.0.0.1:18380
"$B/gatehouse-bench" seed --database-url "$DB" --collections 10 --clients 10 --profiles 100 \
  --api-keys 100 --credentials "$DIR/creds.jsonl" >/dev/null
GATEHOUSE_DATABASE_URL="$DB" GATEHOUSE_PUBLIC_ADDR=$PUB GATEHOUSE_ADMIN_ADDR=127.0.0.1:18381 \
  GATEHOUSE_LOG=warn "$B/gatehouse" > "$DIR/server.log" 2>&1 &
SERVER=$!
SAMPLER=""
trap 'kill $SERVER $SAMPLER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 1 100); do curl -fs "http://$PUB/readyz" >/dev/null && break; sleep 0.1; done

RUN=("$B/gatehouse-bench" run tokens --public "http://$PUB" --credentials "$DIR/creds.jsonl"
     --connections 32 --spread 100 --server-pid "$SERVER")
PEAK=$("${RUN[@]}" --duration 10s 2>/dev/null | jq .rps)
RATE=$(jq -n "$PEAK * $FRACTION | floor")
echo "peak $PEAK tokens/s; soaking at $RATE/s for ${SECS}s" >&2

echo "unix_time,rss_kb" > "$CSV"
( while kill -0 "$SERVER" 2>/dev/null; do
    echo "$(date +%s),$(awk '/^VmRSS/{print $2}' /proc/$SERVER/status)" >> "$CSV"
    sleep 10
  done ) &
SAMPLER=$!
REPORT=$("${RUN[@]}" --duration "${SECS}s" --rate "$RATE" --warmup 0s --no-prime 2>/dev/null)
kill $SAMPLER 2>/dev/null || true
echo "$REPORT" | jq -c '{rps, p50_ms, p99_ms, max_ms, errors, requests, server_peak_rss_mb}'

ERRORS=$(echo "$REPORT" | jq .errors)
START=$(awk -F, 'NR==2{print $1}' "$CSV")
read -r BASE MIN MAX <<<"$(awk -F, -v s="$START" 'NR>1 && $1>=s+60 {if(!b){b=$2;mn=$2;mx=$2} if($2<mn)mn=$2; if($2>mx)mx=$2} END{print b, mn, mx}' "$CSV")"
echo "RSS after the first minute: at 1 min $BASE kB, min $MIN kB, max $MAX kB; errors $ERRORS" >&2
awk -v b="$BASE" -v mn="$MIN" -v mx="$MAX" -v e="$ERRORS" \
  'BEGIN{ok = (e == 0 && mn >= 0.9*b && mx <= 1.1*b); if(!ok){print "SOAK FAILED" > "/dev/stderr"; exit 1} print "soak ok" > "/dev/stderr"}'
