#!/usr/bin/env bash
# Translation overhead benchmark: what a 10-tool request with a streamed tool-call
# answer costs the gateway, next to a plain-text request, translated across formats.
#
# A sim with no delays answers both formats. The gateway (ledger on) routes four model
# aliases, one scenario each:
#
#   plain-a2o   Anthropic client, OpenAI-compatible backend, streamed text
#   tools-a2o   Anthropic client, OpenAI-compatible backend, 10 tools, streamed tool call
#   plain-o2a   OpenAI client, Anthropic backend, streamed text
#   tools-o2a   OpenAI client, Anthropic backend, 10 tools, streamed tool call
#
# `oha` sends RATE requests/s of each for DURATION seconds, one scenario after the other.
# The figure is the gateway's own time per request, the ledger's `overhead_us` (time
# in the gateway: parsing, translating, relaying; not the upstream's), at p50 and p99
# per scenario, and the ratio tools ÷ plain. Loopback only; everything it starts stops.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
RATE="${RATE:-200}"
DURATION="${DURATION:-10}"
COSTFLOOR_BIN="${COSTFLOOR_BIN:-}"
OHA="${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}"
[[ -x "$OHA" ]] || { echo "oha not found: cargo install oha" >&2; exit 1; }
if [[ -z "$COSTFLOOR_BIN" ]]; then
    (cd "$ROOT" && cargo build --release -p costfloor >&2)
    COSTFLOOR_BIN="$ROOT/target/release/costfloor"
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/costfloor-bench-translate.XXXXXX")"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SIM_PORT="$(port)"
GW_PORT="$(port)"
cat >"$WORK/sim.toml" <<TOML
ttft_ms = 0
token_delay_ms = 0
default_output_tokens = 16
TOML
"$COSTFLOOR_BIN" sim --listen "127.0.0.1:$SIM_PORT" --config "$WORK/sim.toml" >"$WORK/sim.log" 2>&1 &
PIDS+=($!)
cat >"$WORK/gateway.toml" <<TOML
[server]
listen = "127.0.0.1:$GW_PORT"
ledger = "$WORK/ledger.db"

[[backend]]
name = "oai"
type = "openai_compatible"
base_url = "http://127.0.0.1:$SIM_PORT/v1"
model = "sim-llama"
deployment = "llama-3.3-70b-4xa100"

[[backend]]
name = "claude"
type = "anthropic"
base_url = "http://127.0.0.1:$SIM_PORT"
model = "claude-haiku-4-5"
price = "claude-haiku-4.5"

[[route]]
name = "plain-a2o"
models = ["plain-a2o"]
targets = ["oai"]

[[route]]
name = "tools-a2o"
models = ["tools-a2o"]
targets = ["oai"]

[[route]]
name = "plain-o2a"
models = ["plain-o2a"]
targets = ["claude"]

[[route]]
name = "tools-o2a"
models = ["tools-o2a"]
targets = ["claude"]
TOML
"$COSTFLOOR_BIN" serve --config "$WORK/gateway.toml" >"$WORK/gateway.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$GW_PORT/readyz" && break; sleep 0.05; done
curl -s -o /dev/null -w '' "http://127.0.0.1:$SIM_PORT/v1/models" || { cat "$WORK/sim.log" >&2; exit 1; }
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
schema = lambda i: {"type": "object", "properties": {"city": {"type": "string", "description": f"City for lookup {i}"},
                                                     "unit": {"enum": ["c", "f"]}, "days": {"type": "integer"}},
                    "required": ["city"]}
names = [f"tool_{i}" for i in range(10)]
# The sim calls the tools named in the last user message: two of the ten.
ask = "Please call tool_3 and tool_7 for Paris."
plain = "Say hello to the world in a few words."
anthropic_tools = [{"name": n, "description": f"Looks up fact {i} about a city.", "input_schema": schema(i)} for i, n in enumerate(names)]
openai_tools = [{"type": "function", "function": {"name": t["name"], "description": t["description"], "parameters": t["input_schema"]}} for t in anthropic_tools]
bodies = {
    "plain-a2o": {"model": "plain-a2o", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": plain}]},
    "tools-a2o": {"model": "tools-a2o", "max_tokens": 64, "stream": True, "tools": anthropic_tools, "messages": [{"role": "user", "content": ask}]},
    "plain-o2a": {"model": "plain-o2a", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": plain}]},
    "tools-o2a": {"model": "tools-o2a", "max_tokens": 64, "stream": True, "tools": openai_tools, "messages": [{"role": "user", "content": ask}]},
}
for name, body in bodies.items():
    open(f"{work}/{name}.json", "w").write(json.dumps(body))
PY
for scenario in plain-a2o tools-a2o plain-o2a tools-o2a; do
    case "$scenario" in *-a2o) path=/v1/messages ;; *) path=/v1/chat/completions ;; esac
    # A quick check that the scenario answers what it should, before the load.
    curl -sf "http://127.0.0.1:$GW_PORT$path" -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' \
        --data-binary "@$WORK/$scenario.json" >"$WORK/$scenario.sample" || { echo "$scenario failed" >&2; cat "$WORK/gateway.log" >&2; exit 1; }
    case "$scenario" in
        tools-a2o) grep -q '"input_json_delta"' "$WORK/$scenario.sample" ;;
        tools-o2a) grep -q '"tool_calls"' "$WORK/$scenario.sample" ;;
    esac || { echo "$scenario: no streamed tool call in the answer" >&2; exit 1; }
    "$OHA" -q "$RATE" -z "${DURATION}s" -c 32 --no-tui -m POST -H 'content-type: application/json' \
        -H 'anthropic-version: 2023-06-01' -D "$WORK/$scenario.json" "http://127.0.0.1:$GW_PORT$path" >"$WORK/$scenario.oha" 2>&1
done
sleep 1
python3 - "$WORK/ledger.db" "$RATE" "$DURATION" <<'PY'
import sqlite3, sys
db, rate, duration = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
con = sqlite3.connect(db)
def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, -(-len(values) * p // 100) - 1))]
rows = {}
for route, overhead, total, outcome in con.execute("select route, overhead_us, total_us, outcome from requests"):
    rows.setdefault(route, []).append((overhead, total, outcome))
print(f"{rate} req/s for {duration} s per scenario; from the ledger, nearest rank")
print("overhead_us: the gateway's own time outside the upstream exchange (read, parse, route, translate the request, write the row)")
print("total_us: the whole request, the sim's answer and the stream's translation included")
print(f"{'scenario':<10} {'rows':>6} {'ok':>6} {'overhead p50':>13} {'p99':>6} {'total p50':>10} {'p99':>6}")
stats = {}
for route in ["plain-a2o", "tools-a2o", "plain-o2a", "tools-o2a"]:
    got = rows.get(route, [])
    ok = [(o, t) for o, t, outcome in got if outcome == "success"]
    over = [o for o, _ in ok]
    total = [t for _, t in ok]
    stats[route] = (pct(over, 50), pct(over, 99), pct(total, 50), pct(total, 99))
    s = stats[route]
    print(f"{route:<10} {len(got):>6} {len(ok):>6} {s[0]:>13} {s[1]:>6} {s[2]:>10} {s[3]:>6}")
for direction in ["a2o", "o2a"]:
    p, t = stats[f"plain-{direction}"], stats[f"tools-{direction}"]
    print(f"tools/plain {direction}: overhead p50 {t[0]/p[0]:.2f}x, p99 {t[1]/p[1]:.2f}x; total p50 {t[2]/p[2]:.2f}x, p99 {t[3]/p[3]:.2f}x")
PY
