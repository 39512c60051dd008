#!/usr/bin/env bash
# The soak: two gateway replicas under steady load for DURATION seconds, with a sim
# backend that injects faults (429, 529, 500, resets and error events mid-stream), and
# a client key whose monthly budget the load crosses part-way. STORE=postgres (the
# default) puts both replicas on one PostgreSQL database (a throwaway cluster from
# scripts/setup-postgres.sh) with one budget between them, and stops the database for
# OUTAGE_S seconds in the middle; STORE=sqlite gives each replica a file and a budget
# of its own. Then the checks: every replica's ledger rows equal the requests it
# answered (its own costfloor_requests_total, after a SIGTERM drain), no row lost, no
# panic in the logs, the key's spend within its budget, and RSS at the start, the
# middle and the end. Not a timed test: it prints the figures for
# bench/soak/RESULTS.md and exits non-zero if a check fails.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DURATION="${DURATION:-600}"
RATE="${RATE:-20}"                 # requests/s offered to each replica (Poisson)
STORE="${STORE:-postgres}"         # postgres (one database, one budget) or sqlite
if [[ "$STORE" == postgres ]]; then
  BUDGET_USD="${BUDGET_USD:-4.0}"  # shared by both replicas, on counterfactual cost
else
  BUDGET_USD="${BUDGET_USD:-2.0}"  # per replica, on counterfactual cost
fi
OUTAGE_S="${OUTAGE_S:-20}"         # postgres: the database is stopped this long, mid-run
COSTFLOOR_BIN="${COSTFLOOR_BIN:-}"
OUT="${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/soak.XXXXXX")}"
mkdir -p "$OUT"
log() { printf '[soak %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
if [[ -z "$COSTFLOOR_BIN" ]]; then
  (cd "$ROOT" && cargo build --release -p costfloor >&2)
  COSTFLOOR_BIN="$ROOT/target/release/costfloor"
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

PG_URL=""
if [[ "$STORE" == postgres ]]; then
  pg_out="$(bash "$ROOT/scripts/setup-postgres.sh" start)"
  PG_DIR="$(echo "$pg_out" | tail -n 2 | head -n 1)"
  PG_URL="$(echo "$pg_out" | tail -n 1)"
  trap 'cleanup; bash "$ROOT/scripts/setup-postgres.sh" stop "$PG_DIR"' EXIT
  log "postgres: $PG_URL"
fi

SIM_PORT="$(free_port)"
cat >"$OUT/sim.toml" <<TOML
models = ["sim-model", "claude-haiku-4-5"]
[[faults]]
kind = "rate_limit"
probability = 0.02
retry_after_s = 1
[[faults]]
kind = "overloaded"
probability = 0.01
[[faults]]
kind = "server_error"
probability = 0.01
[[faults]]
kind = "reset_mid_stream"
probability = 0.01
[[faults]]
kind = "error_event_mid_stream"
probability = 0.01
TOML
"$COSTFLOOR_BIN" sim --listen "127.0.0.1:$SIM_PORT" --config "$OUT/sim.toml" --ttft-ms 20 \
  --token-delay-ms 5 --output-tokens 32 >"$OUT/sim.log" 2>&1 &
pids+=($!)

export SOAK_KEY="sk-soak-$RANDOM$RANDOM"
ports=(); gw_pids=()
for r in 0 1; do
  port="$(free_port)"; ports+=("$port")
  if [[ "$STORE" == postgres ]]; then ledger="$PG_URL"; else ledger="$OUT/replica-$r.db"; fi
  cat >"$OUT/replica-$r.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
ledger = "$ledger"
ledger_spill = "$OUT/spill-$r.jsonl"
# A small memory backlog, so that the outage reaches the spill file.
ledger_backlog_rows = 100
replica = "replica-$r"

[[client_key]]
name = "soak"
secret_env = "SOAK_KEY"
monthly_budget_usd = $BUDGET_USD
budget_on = "counterfactual"

[[backend]]
name = "local"
type = "openai_compatible"
base_url = "http://127.0.0.1:$SIM_PORT/v1"
model = "sim-model"
deployment = "llama-3.3-70b-4xa100"

# The same server again as the fallback (bench's length-forcing fields, ignore_eos and
# min_tokens, have no Anthropic equivalent, so an API fallback would refuse them).
[[backend]]
name = "local-b"
type = "openai_compatible"
base_url = "http://127.0.0.1:$SIM_PORT/v1"
model = "sim-model"
deployment = "llama-3.3-70b-4xa100"

[[route]]
name = "chat"
models = ["chat"]
targets = ["local", "local-b"]
reference_api = "claude-haiku-4.5"
TOML
  "$COSTFLOOR_BIN" serve --config "$OUT/replica-$r.toml" >"$OUT/replica-$r.log" 2>&1 &
  gw_pids+=($!); pids+=($!)
  # The first replica migrates the new database; the second finds it done.
  sleep 1
done
for port in "${ports[@]}"; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
done
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

log "load: $RATE req/s on each of 2 replicas for ${DURATION}s; outputs in $OUT"
# bench waits out transient faults in its probes (five attempts each); should every
# attempt meet one, try the whole run again, up to 10 times.
load() {
  for attempt in $(seq 10); do
    "$COSTFLOOR_BIN" bench --target "http://127.0.0.1:${ports[$1]}" --model chat --api-key-env SOAK_KEY \
      --input-tokens 64 --output-tokens 32 --rate "$RATE" --duration "${DURATION}s" --seed "$1$attempt" \
      --slo-ttft-ms 600000 --slo-tpot-ms 600000 --out "$OUT/bench-$1.json" >"$OUT/bench-$1.txt" 2>&1 && return 0
    [[ -f "$OUT/bench-$1.json" ]] && return 0
    sleep 1
  done
  return 1
}
bench_pids=()
for r in 0 1; do
  load "$r" &
  bench_pids+=($!)
done
: >"$OUT/rss"
start=$(date +%s)
outage_at=$(( DURATION / 2 )); outage="before"
: >"$OUT/outage"
while kill -0 "${bench_pids[0]}" 2>/dev/null || kill -0 "${bench_pids[1]}" 2>/dev/null; do
  elapsed=$(( $(date +%s) - start ))
  printf '%s %s %s\n' "$elapsed" "$(rss_kib "${gw_pids[0]}")" "$(rss_kib "${gw_pids[1]}")" >>"$OUT/rss"
  if [[ "$STORE" == postgres && "$outage" == before && $elapsed -ge $outage_at ]]; then
    log "stopping the database for ${OUTAGE_S}s"
    bash "$ROOT/scripts/setup-postgres.sh" halt "$PG_DIR" >&2
    echo "stopped $elapsed" >>"$OUT/outage"
    sleep "$OUTAGE_S"
    for r in 0 1; do curl -s "http://127.0.0.1:${ports[$r]}/metrics" >"$OUT/metrics-outage-$r.txt"; done
    bash "$ROOT/scripts/setup-postgres.sh" resume "$PG_DIR" >&2
    echo "started $(( $(date +%s) - start ))" >>"$OUT/outage"
    log "database started again"
    outage="done"
    continue
  fi
  sleep 10
done
wait "${bench_pids[@]}" || true
for r in 0 1; do curl -s "http://127.0.0.1:${ports[$r]}/metrics" >"$OUT/metrics-$r.txt"; done
# Drain both (SIGTERM), then read the ledgers.
for r in 0 1; do kill -TERM "${gw_pids[$r]}"; done
for r in 0 1; do wait "${gw_pids[$r]}" || true; done
python3 "$HERE/check.py" "$OUT" "$BUDGET_USD" "$STORE" "$PG_URL"
