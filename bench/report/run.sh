#!/usr/bin/env bash
# Benchmark of `costfloor report` over a ledger of 10 million rows (30 days of traffic):
# wall time and peak memory (`/usr/bin/time -v`), text and JSON.
# Usage: bash bench/report/run.sh [ROWS]   (default 10000000; the ledger is ~3 GB,
# written under ${COSTFLOOR_BENCH_DIR:-/tmp/costfloor-bench-report})
set -euo pipefail
cd "$(dirname "$0")/../.."
rows="${1:-10000000}"
dir="${COSTFLOOR_BENCH_DIR:-/tmp/costfloor-bench-report}"
cargo build --release -p costfloor >/dev/null
bin="$PWD/target/release/costfloor"
mkdir -p "$dir"
db="$dir/ledger-$rows.db"
# 2026-11-01T00:00:00Z; 30 days of rows.
start_ms=1793491200000
if [ ! -s "$db" ]; then
  rm -f "$db" "$db-wal" "$db-shm"
  # The gateway creates the ledger, so its schema is whatever this build writes.
  cat > "$dir/gateway.toml" <<TOML
[server]
ledger = "$(basename "$db")"
[[backend]]
name = "llama"
type = "openai_compatible"
base_url = "http://127.0.0.1:9/v1"
model = "llama-sim"
deployment = "llama-3.3-70b-4xa100"
TOML
  "$bin" serve --config "$dir/gateway.toml" --listen 127.0.0.1:0 > "$dir/serve.out" 2>/dev/null &
  pid=$!
  for _ in $(seq 100); do grep -q listening "$dir/serve.out" && break; sleep 0.1; done
  kill -TERM "$pid"; wait "$pid" || true
  python3 bench/report/gen_ledger.py "$db" "$rows" "$start_ms" 30
fi
cat > "$dir/gateway.toml" <<TOML
[server]
ledger = "$(basename "$db")"
[[backend]]
name = "llama"
type = "openai_compatible"
base_url = "http://127.0.0.1:9/v1"
model = "llama-sim"
deployment = "llama-3.3-70b-4xa100"
TOML
ls -l "$db"
for form in "--json" ""; do
  echo "== report $form over $rows rows"
  /usr/bin/time -v "$bin" report --config "$dir/gateway.toml" --since 2026-11-01 --until 2026-12-01 $form \
    > "$dir/report$form.out" 2> "$dir/time$form.txt"
  grep -E "Elapsed \(wall|Maximum resident|User time|System time" "$dir/time$form.txt"
done
head -20 "$dir/report.out"
