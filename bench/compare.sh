#!/usr/bin/env bash
# Interleaved before/after runs with the project's bench tool (`gatehouse-bench run`), for a
# change's performance note: each version gets its own freshly seeded SQLite database (its
# own migrations), then rounds alternate A, B, A, B… on the same machine, so drift and noise
# land on both sides; the order flips every round (A B, B A, A B …) so neither side always
# runs first. Loopback only; every run is bounded by --duration.
#   bench/compare.sh DIR_A DIR_B [rounds] [duration] [scenarios]
# DIR_A and DIR_B each hold a release `gatehouse` and `gatehouse-bench` (the load generator of
# DIR_B drives both servers). Prints one JSON line per run and a summary table (means).
set -euo pipefail
A=${1:?dir with release gatehouse + gatehouse-bench (before)}
B=${2:?dir with release gatehouse + gatehouse-bench (after)}
ROUNDS=${3:-3}
DURATION=${4:-10s}
SCENARIOS=${5:-tokens,introspect-jwt,introspect-key,jwks}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for side in A B; do
  dir=${!side}
  "$dir/gatehouse-bench" seed --database-url "sqlite://$WORK/$side.db?mode=rwc" \
    --collections 10 --clients 10 --profiles 100 --api-keys 200 \
    --credentials "$WORK/$side.jsonl" --server-bin "$dir/gatehouse" >/dev/null 2>&1
done
for round in $(seq 1 "$ROUNDS"); do
  order="A B"
  if [ $((round % 2)) -eq 0 ]; then order="B A"; fi
  for side in $order; do
    dir=${!side}
    "$B/gatehouse-bench" run "$SCENARIOS" --server-bin "$dir/gatehouse" \
      --database-url "sqlite://$WORK/$side.db?mode=rwc" --credentials "$WORK/$side.jsonl" \
      --public http://127.0.0.1:18480 --admin-addr 127.0.0.1:18481 \
      --connections 32 --duration "$DURATION" --spread 100 2>/dev/null \
      | while read -r line; do echo "{\"side\":\"$side\",\"round\":$round,\"report\":$line}"; done
  done
done | tee "$WORK/runs.jsonl"
python3 - "$WORK/runs.jsonl" <<'PY'
import json, sys, collections, statistics
runs = collections.defaultdict(list)
cpu = collections.defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    key = (r["report"]["scenario"], r["side"])
    runs[key].append(r["report"]["rps"])
    if r["report"].get("server_cpu_us_per_request") is not None:
        cpu[key].append(r["report"]["server_cpu_us_per_request"])
scenarios = sorted({s for s, _ in runs})
mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")
print("| scenario | A runs (req/s) | B runs (req/s) | mean A | mean B | change | median change | server CPU µs/req A → B |")
print("|---|---|---|---:|---:|---:|---:|---:|")
for s in scenarios:
    a, b = runs[(s, "A")], runs[(s, "B")]
    ma, mb = mean(a), mean(b)
    da, db = statistics.median(a), statistics.median(b)
    print(f"| {s} | {' / '.join(f'{x:,.0f}' for x in a)} | {' / '.join(f'{x:,.0f}' for x in b)} "
          f"| {ma:,.0f} | {mb:,.0f} | {100 * (mb - ma) / ma:+.1f} % | {100 * (db - da) / da:+.1f} % "
          f"| {mean(cpu[(s, 'A')]):.1f} → {mean(cpu[(s, 'B')]):.1f} |")
PY
