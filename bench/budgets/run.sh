#!/usr/bin/env bash
# What a budget held in PostgreSQL costs a request, side by side with the same budget
# held in the process (SQLite ledger): one gateway each, the same `costfloor sim`
# upstream (no delay), the same budgeted client key, oha at a fixed RATE for DURATION
# seconds against each in turn, ROUNDS times alternating. Prints p50/p99 of each and the
# ratio; the budget is large enough that nothing is refused. Not a timed test.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
RATE="${RATE:-500}"
DURATION="${DURATION:-15}"
ROUNDS="${ROUNDS:-2}"
COSTFLOOR_BIN="${COSTFLOOR_BIN:-}"
OUT="${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/budgets.XXXXXX")}"
mkdir -p "$OUT"
log() { printf '[budgets %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
if [[ -z "$COSTFLOOR_BIN" ]]; then
  (cd "$ROOT" && cargo build --release -p costfloor >&2)
  COSTFLOOR_BIN="$ROOT/target/release/costfloor"
fi
command -v oha >/dev/null || { log "oha is needed (cargo install oha)"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -n "${PG_DIR:-}" ]] && bash "$ROOT/scripts/setup-postgres.sh" stop "$PG_DIR"
}
trap cleanup EXIT

pg_out="$(bash "$ROOT/scripts/setup-postgres.sh" start)"
PG_DIR="$(echo "$pg_out" | tail -n 2 | head -n 1)"
PG_URL="$(echo "$pg_out" | tail -n 1)"

SIM_PORT="$(free_port)"
"$COSTFLOOR_BIN" sim --listen "127.0.0.1:$SIM_PORT" --ttft-ms 0 --token-delay-ms 0 \
  --output-tokens 16 >"$OUT/sim.log" 2>&1 &
pids+=($!)

export BUDGET_KEY="sk-budget-$RANDOM$RANDOM"
declare -A port
for store in sqlite postgres; do
  port[$store]="$(free_port)"
  if [[ "$store" == postgres ]]; then ledger="$PG_URL"; else ledger="$OUT/ledger.db"; fi
  cat >"$OUT/$store.toml" <<TOML
[server]
listen = "127.0.0.1:${port[$store]}"
ledger = "$ledger"
ledger_spill = "$OUT/spill-$store.jsonl"

[[client_key]]
name = "team"
secret_env = "BUDGET_KEY"
monthly_budget_usd = 1000000

[[backend]]
name = "claude"
type = "anthropic"
base_url = "http://127.0.0.1:$SIM_PORT"
model = "claude-haiku-4-5"
price = "claude-haiku-4.5"
TOML
  "$COSTFLOOR_BIN" serve --config "$OUT/$store.toml" >"$OUT/$store.log" 2>&1 &
  pids+=($!)
  sleep 1
done
for store in sqlite postgres; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:${port[$store]}/readyz" >/dev/null && break; sleep 0.1; done
done

BODY='{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"hello"}],"max_tokens":16}'
for round in $(seq "$ROUNDS"); do
  for store in sqlite postgres; do
    log "round $round: $store, $RATE req/s for ${DURATION}s"
    oha --no-tui --output-format json -z "${DURATION}s" -q "$RATE" -c 32 --latency-correction \
      -m POST -H "authorization: Bearer $BUDGET_KEY" -H 'content-type: application/json' -d "$BODY" \
      "http://127.0.0.1:${port[$store]}/v1/chat/completions" >"$OUT/$store-$round.json"
  done
done

python3 - "$OUT" "$ROUNDS" <<'PY'
import json, sys
from pathlib import Path
out, rounds = Path(sys.argv[1]), int(sys.argv[2])
def figures(store):
    p50, p99, ok, total = [], [], 0, 0
    for r in range(1, rounds + 1):
        d = json.loads((out / f"{store}-{r}.json").read_text())
        p = d["latencyPercentiles"]
        p50.append(p["p50"] * 1000); p99.append(p["p99"] * 1000)
        codes = d.get("statusCodeDistribution", {})
        ok += codes.get("200", 0); total += sum(codes.values())
    return sum(p50) / len(p50), sum(p99) / len(p99), ok, total
s, p = figures("sqlite"), figures("postgres")
print(f"budget in the process (SQLite ledger): p50 {s[0]:.3f} ms, p99 {s[1]:.3f} ms, {s[2]}/{s[3]} answered 200")
print(f"budget in PostgreSQL:                  p50 {p[0]:.3f} ms, p99 {p[1]:.3f} ms, {p[2]}/{p[3]} answered 200")
print(f"PostgreSQL / process: p50 {p[0] / s[0]:.2f}x (+{p[0] - s[0]:.3f} ms), p99 {p[1] / s[1]:.2f}x (+{p[1] - s[1]:.3f} ms)")
PY
