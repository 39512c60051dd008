#!/usr/bin/env bash
# Eval runner benchmark: does `costfloor eval run` reach the time its concurrency allows?
#
# A sim answers every request after TTFT_MS (200 ms by default) with a known answer
# (examples/eval/sim.toml's accuracies). The 500 samples of examples/eval/dataset.jsonl
# go to both sides (1,000 requests) at CONCURRENCY (64); the baseline, side by side, is
# the same runner at concurrency 1 on BASELINE_SAMPLES samples (2 requests each), whose
# time per request gives the serial time of the whole run.
#
#   ideal   = ceil(1000 / CONCURRENCY) × TTFT_MS
#   serial  = 1000 × (baseline time ÷ baseline requests)
#
# Prints one line per figure and the ratios; loopback only, everything it starts stops.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CONCURRENCY="${CONCURRENCY:-64}"
TTFT_MS="${TTFT_MS:-200}"
BASELINE_SAMPLES="${BASELINE_SAMPLES:-20}"
COSTFLOOR_BIN="${COSTFLOOR_BIN:-}"
if [[ -z "$COSTFLOOR_BIN" ]]; then
    (cd "$ROOT" && cargo build --release -p costfloor >&2)
    COSTFLOOR_BIN="$ROOT/target/release/costfloor"
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/costfloor-bench-eval.XXXXXX")"
SIM_PID=""
cleanup() { [[ -n "$SIM_PID" ]] && kill "$SIM_PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
sed "s|^ttft_ms = .*|ttft_ms = $TTFT_MS|; s|^answers_file = .*|answers_file = \"$ROOT/examples/eval/dataset.jsonl\"|" \
    "$ROOT/examples/eval/sim.toml" >"$WORK/sim.toml"
if ! grep -q "^ttft_ms = $TTFT_MS" "$WORK/sim.toml"; then
    { echo "ttft_ms = $TTFT_MS"; cat "$WORK/sim.toml"; } >"$WORK/s"
    mv "$WORK/s" "$WORK/sim.toml"
fi
"$COSTFLOOR_BIN" sim --listen "127.0.0.1:$PORT" --config "$WORK/sim.toml" >"$WORK/sim.log" 2>&1 &
SIM_PID=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/v1/models" && break; sleep 0.1; done
sed "s|127.0.0.1:8090|127.0.0.1:$PORT|g; s|^ledger = .*|ledger = \"$WORK/eval.db\"|" \
    "$ROOT/examples/eval/gateway.toml" >"$WORK/gateway.toml"
run() { # run LABEL ARGS...: prints seconds
    local label="$1" start end
    shift
    start=$(date +%s.%N)
    "$COSTFLOOR_BIN" eval run --config "$WORK/gateway.toml" --dataset "$ROOT/examples/eval/dataset.jsonl" \
        --candidate llama --baseline haiku "$@" >"$WORK/$label.out" 2>"$WORK/$label.err" || { cat "$WORK/$label.err" >&2; exit 1; }
    end=$(date +%s.%N)
    python3 -c "print(f'{$end - $start:.2f}')"
}
base_s="$(run baseline --concurrency 1 --limit "$BASELINE_SAMPLES" --seed 1)"
full_s="$(run full --concurrency "$CONCURRENCY")"
python3 - "$base_s" "$full_s" "$BASELINE_SAMPLES" "$CONCURRENCY" "$TTFT_MS" <<'PY'
import math, sys
base_s, full_s, n, c, ttft = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
per_request = base_s / (2 * n)
serial = 1000 * per_request
ideal = math.ceil(1000 / c) * ttft / 1000
print(f"baseline (concurrency 1, {2*n} requests): {base_s:.2f} s, {per_request*1000:.0f} ms a request")
print(f"serial time of 1,000 requests (extrapolated): {serial:.1f} s")
print(f"concurrency {c}, 1,000 requests: {full_s:.2f} s (ideal {ideal:.2f} s)")
print(f"speed-up against serial: {serial/full_s:.1f}x; time / ideal: {full_s/ideal:.2f}")
PY
