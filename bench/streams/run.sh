#!/usr/bin/env bash
# Many concurrent streams through one gateway replica: its memory per open stream and
# the inter-token latency it adds. Not a timed test: it prints the figures for
# bench/streams/RESULTS.md.
#
# For each N in STREAMS: `costfloor bench --rate` opens streams of TOKENS tokens, one
# every DELAY_MS (from `costfloor sim`), at N ÷ (stream length) a second, Poisson, so
# that about N are open at once after one stream length, at times spread as real
# clients' are (a closed loop would start them all at once, and their tokens would
# arrive in one burst a second). First straight to the sim (the baseline), then through
# the gateway. While the gateway holds them, its RSS is sampled every second, and its
# in-flight gauge and open files every 5 s (see watch_gateway); RSS per stream = (peak
# RSS − idle RSS) ÷ peak in flight. Added ITL p99 = the gateway run's inter-token p99 −
# the direct one's.
#
# UPSTREAM=2 (the default) speaks HTTP/2 to the sim (h2c), as the gateway does to the
# vendors' APIs over TLS: 100 streams a connection, so one socket per stream (the
# client's) and N is bounded by the open-file limit (`ulimit -n`); UPSTREAM=1.1 opens a
# connection per stream upstream too, which bounds N by the limit ÷ 2.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
STREAMS="${STREAMS:-1000 4000 9000}"
TOKENS="${TOKENS:-20}"
DELAY_MS="${DELAY_MS:-1000}"
UPSTREAM="${UPSTREAM-2}"   # empty: no [backend.http] (a binary from before it existed)
# PIN=1: the gateway on CPU 1, the sim and the load generator on CPU 0 (taskset), so the
# added latency is the gateway's own work, not a wait for a core the other two hold.
PIN="${PIN:-0}"
GW_CPU=(); LOAD_CPU=()
if [[ "$PIN" == 1 ]]; then GW_CPU=(taskset -c 1); LOAD_CPU=(taskset -c 0); fi
DURATION="${DURATION:-}"   # default: three stream lengths
COSTFLOOR_BIN="${COSTFLOOR_BIN:-}"
OUT="${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/streams.XXXXXX")}"
mkdir -p "$OUT"
log() { printf '[streams %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ -z "$COSTFLOOR_BIN" ]]; then
  (cd "$ROOT" && cargo build --release -p costfloor >&2)
  COSTFLOOR_BIN="$ROOT/target/release/costfloor"
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SIM_PORT="$(free_port)"; GW_PORT="$(free_port)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"${LOAD_CPU[@]}" "$COSTFLOOR_BIN" sim --listen "127.0.0.1:$SIM_PORT" --ttft-ms 50 --token-delay-ms "$DELAY_MS" \
  --output-tokens "$TOKENS" >"$OUT/sim.log" 2>&1 &
pids+=($!)
HTTP_LINE=""
[[ -n "$UPSTREAM" ]] && HTTP_LINE="http = { version = \"$UPSTREAM\" }"
cat >"$OUT/gateway.toml" <<TOML
[server]
listen = "127.0.0.1:$GW_PORT"
ledger = "$OUT/ledger.db"

[[backend]]
name = "local"
type = "openai_compatible"
base_url = "http://127.0.0.1:$SIM_PORT/v1"
model = "sim-model"
deployment = "llama-3.3-70b-4xa100"
$HTTP_LINE
TOML
"${GW_CPU[@]}" "$COSTFLOOR_BIN" serve --config "$OUT/gateway.toml" >"$OUT/gateway.log" 2>&1 &
GW_PID=$!
pids+=($GW_PID)
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$GW_PORT/readyz" >/dev/null 2>&1 && curl -sf "http://127.0.0.1:$SIM_PORT/v1/models" >/dev/null 2>&1 && break
  sleep 0.1
done
sim_connections() { curl -s "http://127.0.0.1:$SIM_PORT/sim/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("connections_accepted", 0))'; }
# Sets RSS_KIB to the resident memory of process $1, without a fork.
read_rss() {
  local key value rest
  RSS_KIB=0
  while read -r key value rest; do
    if [[ "$key" == VmRSS: ]]; then RSS_KIB=$value; fi
  done <"/proc/$1/status"
}
in_flight() { curl -s "http://127.0.0.1:$GW_PORT/metrics" | awk '/^costfloor_backend_in_flight\{/ {print $2}' | head -1; }

STREAM_S=$(( (TOKENS * DELAY_MS + 999) / 1000 ))
DURATION="${DURATION:-$(( 3 * STREAM_S ))}"
run_bench() { # target label streams
  rate="$(python3 -c "print($3 / $STREAM_S)")"
  "${LOAD_CPU[@]}" "$COSTFLOOR_BIN" bench --target "$1" --model sim-model --input-tokens 16 --output-tokens "$TOKENS" \
    --rate "$rate" --duration "${DURATION}s" --slo-ttft-ms 600000 --slo-tpot-ms 600000 \
    --out "$OUT/$2-$3.json" >"$OUT/$2-$3.txt" 2>&1
}

# Warm the gateway (its pools, its allocator) with a short run, then take the idle RSS.
run_bench "http://127.0.0.1:$GW_PORT" warm 50
sleep 2
read_rss "$GW_PID"; IDLE_KIB=$RSS_KIB
log "gateway idle RSS ${IDLE_KIB} KiB"
printf '%s\n' "$IDLE_KIB" >"$OUT/idle_kib"

# Samples the gateway while the bench with pid $1 runs and prints its peaks: RSS every
# second, the in-flight gauge and open files every 5 s, as a
# Prometheus scrape would (the scrape and the listing of 10,000 open files take
# milliseconds of the cores the streams share). It runs through the direct runs too, so
# that both sides of the comparison carry its cost.
watch_gateway() {
  local peak_rss=0 peak_flight=0 peak_fds=0 tick=0 flight fds
  while kill -0 "$1" 2>/dev/null; do
    read_rss "$GW_PID"
    if (( RSS_KIB > peak_rss )); then peak_rss=$RSS_KIB; fi
    if (( tick % 5 == 0 )); then
      flight="$(in_flight || echo 0)"; flight="${flight%.*}"
      if (( ${flight:-0} > peak_flight )); then peak_flight=${flight:-0}; fi
      fds="$(ls -U "/proc/$GW_PID/fd" | wc -l)"
      if (( fds > peak_fds )); then peak_fds=$fds; fi
    fi
    tick=$((tick + 1))
    sleep 1
  done
  printf '%s %s %s\n' "$peak_rss" "$peak_flight" "$peak_fds"
}

for n in $STREAMS; do
  log "$n streams straight to the sim"
  run_bench "http://127.0.0.1:$SIM_PORT" direct "$n" &
  watch_gateway $! >/dev/null
  wait $! || true
  log "$n streams through the gateway"
  before="$(sim_connections)"
  run_bench "http://127.0.0.1:$GW_PORT" gateway "$n" &
  bench_pid=$!
  peaks="$(watch_gateway "$bench_pid")"
  wait "$bench_pid" || true
  printf '%s %s %s\n' "$n" "$peaks" "$(( $(sim_connections) - before ))" >>"$OUT/samples"
  sleep 3
done
printf '%s\n' "${UPSTREAM:-1.1 (no [backend.http])}" >"$OUT/upstream"

python3 "$HERE/summarize.py" "$OUT"
log "raw results: $OUT"
