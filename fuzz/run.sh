#!/usr/bin/env bash
# Run every fuzz target for SECONDS (default 600) each, two at a time (this box has 2 cores),
# then fold what was found into the committed corpora, minimised (libFuzzer -set_cover_merge=1).
# fuzz/seeds/<target>/ holds the hand-written starting points (kept as they are);
# fuzz/corpus/<target>/ what the fuzzer found that adds coverage beyond them.
#
#   cargo install cargo-fuzz --locked     # once (about 3 minutes)
#   fuzz/run.sh [SECONDS] [TARGET ...]
#
# With GATEHOUSE_TEST_DATABASE_URL set (a PostgreSQL server URL), the server targets run on
# PostgreSQL instead of SQLite.
#
# Logs go to fuzz/logs/, new inputs to fuzz/corpus-raw/ (both ignored by git); a crash leaves
# its input in fuzz/artifacts/<target>/ — minimise it (`cargo fuzz tmin`), fix the bug, and
# commit the input under fuzz/regressions/<target>/ so the replay test keeps it fixed.
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1   # cargo fuzz needs -Z flags; this uses them on the stable toolchain
secs="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(token_request ip_rule api_key server_oauth server_admin)
mkdir -p logs
cargo fuzz build -O

run() {
  local t="$1" extra=()
  case "$t" in
    # The server targets: a real server on loopback with background threads, so no per-input
    # leak check; larger inputs from the start (JWTs), and a time-out per input.
    server_*) extra=(-max_len=4096 -len_control=0 -timeout=30 -detect_leaks=0 -rss_limit_mb=4096) ;;
    token_request) extra=(-max_len=4096) ;;
    *) extra=(-max_len=512) ;;
  esac
  mkdir -p "corpus-raw/$t" "corpus/$t"
  cargo fuzz run -O "$t" "corpus-raw/$t" "seeds/$t" "corpus/$t" -- \
    -max_total_time="$secs" -print_final_stats=1 "${extra[@]}" >"logs/$t.log" 2>&1
}

pids=()
for t in "${targets[@]}"; do
  run "$t" &
  pids+=($!)
  if [ ${#pids[@]} -ge 2 ]; then
    wait "${pids[0]}"
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p"; done

for t in "${targets[@]}"; do
  grep -E "^Done|stat::peak_rss_mb" "logs/$t.log" | sed "s/^/$t: /"
  merged="corpus-min/$t"
  rm -rf "$merged" && mkdir -p "$merged"
  case "$t" in server_*) leak=(-detect_leaks=0 -rss_limit_mb=4096) ;; *) leak=() ;; esac
  # The seeds go in first, so only inputs that add coverage beyond them are kept; then they
  # are taken out again (they stay in seeds/).
  cp "seeds/$t"/seed-* "$merged"/
  cargo fuzz run -O "$t" "$merged" "corpus/$t" "corpus-raw/$t" -- -set_cover_merge=1 "${leak[@]}" \
    >"logs/$t.merge.log" 2>&1
  rm -f "$merged"/seed-*
  rm -rf "corpus/$t" && mv "$merged" "corpus/$t"
  echo "$t: corpus now $(ls "corpus/$t" | wc -l) inputs"
done
rmdir corpus-min 2>/dev/null || true
