#!/usr/bin/env bash
# The load generator's own limits: `costfloor bench` against `costfloor sim` on this
# machine, beside `oha` (a Rust HTTP load generator) sending the same streaming request
# at the same load. Not a timed test: it prints the figures (and the raw JSON under
# RESULTS_DIR) for bench/loadgen/RESULTS.md.
#
#   rate     open loop at each of RATES requests/s for DURATION s: achieved rate,
#            failures, e2e latency, client CPU per request, client max RSS
#   max      closed loop at MAX_CONNECTIONS streams, no rate cap: the most each
#            client completes per second
#   streams  STREAMS concurrent streams of STREAM_TOKENS tokens, 100 ms apart, for
#            STREAM_DURATION s: the in-flight count the sim sees (sampled each second),
#            inter-token latency and time per token as the client measured them
#
# The sim and the client share the machine's cores; the sim answers at once (rate,
# max) or paces its tokens (streams). Requests are those bench sends: a 16-token prompt,
# 2 (or STREAM_TOKENS) output tokens, stream: true with the usage chunk.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

RATES="${RATES:-5000 10000}"
DURATION="${DURATION:-10}"
MAX_CONNECTIONS="${MAX_CONNECTIONS:-64}"
STREAMS="${STREAMS:-2000}"
STREAM_TOKENS="${STREAM_TOKENS:-50}"
STREAM_DURATION="${STREAM_DURATION:-15}"
SCENARIOS="${SCENARIOS:-rate,max,streams}"
COSTFLOOR_BIN="${COSTFLOOR_BIN:-}"
OHA="${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}"
RESULTS_DIR="${RESULTS_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/loadgen.XXXXXX")}"
HOST=127.0.0.1

log() { printf '[loadgen %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ -z "$COSTFLOOR_BIN" ]]; then
  log "building costfloor (release)"
  (cd "$ROOT" && cargo build --release -p costfloor --locked >&2)
  COSTFLOOR_BIN="$ROOT/target/release/costfloor"
fi
[[ -x "$OHA" ]] || { echo "oha not found (cargo install oha, or set OHA)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "/usr/bin/time (GNU time) is needed for CPU and RSS" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mkdir -p "$RESULTS_DIR"
log "results in $RESULTS_DIR; $(nproc) cores; $("$OHA" --version)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

SIM_PID=""
stop_sim() { if [[ -n "$SIM_PID" ]]; then kill "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; SIM_PID=""; fi; }
trap stop_sim EXIT

# start_sim TTFT_MS TOKEN_DELAY_MS: sets SIM_URL.
start_sim() {
  local config="$RESULTS_DIR/sim.toml" port
  printf 'ttft_ms = %s\ntoken_delay_ms = %s\ndefault_output_tokens = 100000\n' "$1" "$2" > "$config"
  port="$(free_port)"
  "$COSTFLOOR_BIN" sim --listen "$HOST:$port" --config "$config" > "$RESULTS_DIR/sim.log" 2>&1 &
  SIM_PID=$!
  SIM_URL="http://$HOST:$port"
  for _ in $(seq 50); do curl -sf "$SIM_URL/health" >/dev/null && return 0; sleep 0.1; done
  echo "the sim did not start: $(cat "$RESULTS_DIR/sim.log")" >&2; exit 1
}

# The body bench sends for a 16-token prompt and $1 output tokens (the sim counts words).
body() {
  printf '{"model":"sim-model","messages":[{"role":"user","content":"12345678 the time people year way day man thing woman life child world school state"}],"max_tokens":%s,"stream":true,"stream_options":{"include_usage":true},"ignore_eos":true,"min_tokens":%s}' "$1" "$1"
}

TIME_FORMAT='{"wall_s": %e, "user_s": %U, "sys_s": %S, "max_rss_kib": %M}'

# run_bench NAME ARGS...: bench's measurement in NAME.json, its resources in NAME.time.
run_bench() {
  local name="$1"; shift
  /usr/bin/time -o "$RESULTS_DIR/$name.time" -f "$TIME_FORMAT" \
    "$COSTFLOOR_BIN" bench --target "$SIM_URL" --model sim-model --input-tokens 16 \
    --slo-ttft-ms 1000 --slo-tpot-ms 1000 --json "$@" > "$RESULTS_DIR/$name.json" 2> "$RESULTS_DIR/$name.err"
}

# run_oha NAME ARGS...
run_oha() {
  local name="$1"; shift
  /usr/bin/time -o "$RESULTS_DIR/$name.time" -f "$TIME_FORMAT" \
    "$OHA" --no-tui -m POST -H 'content-type: application/json' --output-format json \
    -o "$RESULTS_DIR/$name.json" "$@" "$SIM_URL/v1/chat/completions" > /dev/null 2> "$RESULTS_DIR/$name.err"
}

# sample_in_flight SECONDS: the sim's in-flight count each second, the maximum printed.
sample_in_flight() {
  local max=0 n
  for _ in $(seq "$1"); do
    n="$(curl -sf "$SIM_URL/sim/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["in_flight"])' || echo 0)"
    (( n > max )) && max=$n
    sleep 1
  done
  echo "$max"
}

if [[ ",$SCENARIOS," == *",rate,"* || ",$SCENARIOS," == *",max,"* ]]; then
  start_sim 0 0
  if [[ ",$SCENARIOS," == *",rate,"* ]]; then
    for rate in $RATES; do
      log "rate $rate/s for ${DURATION}s: bench"
      run_bench "rate-$rate-bench" --output-tokens 2 --rate "$rate" --duration "${DURATION}s"
      log "rate $rate/s for ${DURATION}s: oha"
      run_oha "rate-$rate-oha" -q "$rate" -c 512 --latency-correction -z "${DURATION}s" -d "$(body 2)"
    done
  fi
  if [[ ",$SCENARIOS," == *",max,"* ]]; then
    log "closed loop, $MAX_CONNECTIONS streams, ${DURATION}s: bench"
    run_bench "max-bench" --output-tokens 2 --concurrency "$MAX_CONNECTIONS" --duration "${DURATION}s"
    log "closed loop, $MAX_CONNECTIONS connections, ${DURATION}s: oha"
    run_oha "max-oha" -c "$MAX_CONNECTIONS" -z "${DURATION}s" -d "$(body 2)"
  fi
  stop_sim
fi

if [[ ",$SCENARIOS," == *",streams,"* ]]; then
  start_sim 100 100
  log "$STREAMS streams of $STREAM_TOKENS tokens for ${STREAM_DURATION}s: bench"
  run_bench "streams-bench" --output-tokens "$STREAM_TOKENS" --concurrency "$STREAMS" \
    --duration "${STREAM_DURATION}s" &
  client=$!
  sleep 3
  sample_in_flight $((STREAM_DURATION - 4)) > "$RESULTS_DIR/streams-bench.inflight"
  wait "$client"
  log "$STREAMS connections for ${STREAM_DURATION}s: oha"
  run_oha "streams-oha" -w -c "$STREAMS" -z "${STREAM_DURATION}s" -d "$(body "$STREAM_TOKENS")" &
  client=$!
  sleep 3
  sample_in_flight $((STREAM_DURATION - 4)) > "$RESULTS_DIR/streams-oha.inflight"
  wait "$client"
  stop_sim
fi

python3 "$HERE/summarize.py" "$RESULTS_DIR"
