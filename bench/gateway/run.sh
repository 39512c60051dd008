#!/usr/bin/env bash
# Gateway overhead benchmark.
#
# An nginx on 127.0.0.1 plays the upstream: it answers POST /v1/chat/completions with a
# fixed OpenAI chat.completion body. `oha` loads it directly, then through
# `costfloor serve` (ledger on), in the same run:
#
#   fixed  RATE requests/s for DURATION seconds  -> p50/p99 latency, overhead = gateway - direct
#   max    CONNECTIONS connections, no rate cap   -> throughput
#
# and checks that the gateway's SQLite ledger holds one row per request answered.
# See bench/gateway/README.md for the knobs and how to read the output.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SUMMARIZE="$HERE/summarize.py"

# ---- knobs (environment) ---------------------------------------------------------------
RATE="${RATE:-2000}"                         # fixed-rate scenario, requests per second
DURATION="${DURATION:-15}"                   # seconds per measured run
WARMUP="${WARMUP:-2}"                        # seconds of unmeasured load before each run (0 = none)
CONNECTIONS="${CONNECTIONS:-32}"             # connections in the max-rate scenario
FIXED_CONNECTIONS="${FIXED_CONNECTIONS:-32}" # connections available to the fixed-rate scenario
NGINX_WORKERS="${NGINX_WORKERS:-1}"          # nginx worker processes
SCENARIOS="${SCENARIOS:-fixed,max}"          # any of: fixed,max
TARGETS="${TARGETS:-direct,gateway}"         # any of: direct,gateway
NGINX_PORT="${NGINX_PORT:-}"                 # default: a free port
GATEWAY_PORT="${GATEWAY_PORT:-}"             # default: a free port
RESULTS_DIR="${RESULTS_DIR:-}"               # default: a new directory under ${TMPDIR:-/tmp}
KEEP_LEDGER="${KEEP_LEDGER:-0}"              # 1 = keep the gateway's ledger file
ALLOW_BUSY="${ALLOW_BUSY:-0}"                # 1 = run even while cargo/rustc are running
SHADOW="${SHADOW:-0}"                        # share of gateway requests mirrored to a shadow backend (0 = off)
COSTFLOOR_BIN="${COSTFLOOR_BIN:-}"           # prebuilt binary; default: cargo build --release
OHA="${OHA:-}"                               # path to oha; default: PATH, then ~/.cargo/bin
HOST=127.0.0.1                               # loopback only, deliberately not configurable

BODY='{"model":"bench","messages":[{"role":"user","content":"hello"}],"max_tokens":16}'

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
for v in RATE DURATION WARMUP CONNECTIONS FIXED_CONNECTIONS NGINX_WORKERS; do
    is_uint "${!v}" || die "$v=${!v} is not a non-negative integer"
done
[[ "$SHADOW" =~ ^(0|0?\.[0-9]+|1)$ ]] || die "SHADOW=$SHADOW: expected a share from 0 to 1, e.g. 0.05"
(( DURATION >= 1 && DURATION <= 300 )) || die "DURATION=$DURATION: expected 1..300 seconds"
(( WARMUP <= 60 )) || die "WARMUP=$WARMUP: expected 0..60 seconds"
(( RATE >= 1 && RATE <= 200000 )) || die "RATE=$RATE: expected 1..200000"
(( CONNECTIONS >= 1 && CONNECTIONS <= 4096 )) || die "CONNECTIONS=$CONNECTIONS: expected 1..4096"
(( FIXED_CONNECTIONS >= 1 && FIXED_CONNECTIONS <= 4096 )) || die "FIXED_CONNECTIONS: expected 1..4096"
(( NGINX_WORKERS >= 1 && NGINX_WORKERS <= 64 )) || die "NGINX_WORKERS: expected 1..64"
want() { [[ ",$2," == *",$1,"* ]]; }   # want ITEM LIST
for s in ${SCENARIOS//,/ }; do [[ "$s" == fixed || "$s" == max ]] || die "SCENARIOS: unknown '$s'"; done
for t in ${TARGETS//,/ }; do [[ "$t" == direct || "$t" == gateway ]] || die "TARGETS: unknown '$t'"; done

# ---- process bookkeeping: everything started here is stopped on exit -------------------
PIDS=()
WORK=""
GATEWAY_PID=""
NGINX_PID=""

stop_pid() { # stop_pid PID SIGNAL GRACE_SECONDS: signal, wait, then SIGKILL it and its children
    local pid="$1" sig="$2" grace="$3" kids i
    kill -0 "$pid" 2>/dev/null || return 0
    kids="$(pgrep -P "$pid" 2>/dev/null || true)"
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid did not stop after ${grace}s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    for k in $kids; do kill -KILL "$k" 2>/dev/null || true; done
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT
    trap '' INT TERM   # finish stopping things even if interrupted again
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid" TERM 5; done
    if [[ -n "$WORK" && -d "$WORK" ]]; then
        if [[ "$KEEP_LEDGER" != 1 ]]; then rm -f "$WORK"/ledger.db "$WORK"/ledger.db-wal "$WORK"/ledger.db-shm; fi
        rm -rf "$WORK/nginx/tmp"
        log "raw results: $WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# run_waited STDOUT_FILE STDERR_FILE COMMAND...: runs COMMAND in the background and waits for
# it, so that INT/TERM reach the trap at once (the script's own stderr stays where it was).
run_waited() {
    local out="$1" err="$2"
    shift 2
    "$@" >"$out" 2>"$err" &
    local pid=$!
    PIDS+=("$pid")
    local rc=0
    wait "$pid" || rc=$?
    forget_pid "$pid"
    return "$rc"
}

# Drops a reaped pid from PIDS, so that cleanup never signals a pid the system has reused.
forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

wait_port() { # wait_port PORT SECONDS PID_THAT_MUST_STAY_ALIVE
    local port="$1" secs="$2" pid="$3" i
    for ((i = 0; i < secs * 10; i++)); do
        if (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then return 0; fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

now_ms() { python3 -c 'import time; print(int(time.time() * 1000))'; }

cargo_busy() { pgrep -x cargo >/dev/null 2>&1 || pgrep -x rustc >/dev/null 2>&1; }

# ---- tools ---------------------------------------------------------------------------------
command -v python3 >/dev/null || die "python3 is required (JSON parsing and the ledger query)"
python3 -c 'import sqlite3' 2>/dev/null || die "python3 lacks the sqlite3 module"
command -v curl >/dev/null || die "curl is required"
command -v timeout >/dev/null || die "timeout (coreutils) is required"

APT_UPDATED=0
apt_install() {
    [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null \
        || die "$* is missing: install it (Debian: apt-get install $*)"
    if [[ "$APT_UPDATED" == 0 ]]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

NGINX="$(command -v nginx || true)"
if [[ -z "$NGINX" && -x /usr/sbin/nginx ]]; then NGINX=/usr/sbin/nginx; fi
if [[ -z "$NGINX" ]]; then
    # nginx-light is the small build; on Debian 12 it pulls in the regular package.
    apt_install nginx-light || apt_install nginx
    NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
fi
[[ -x "$NGINX" ]] || die "nginx not found after installing it"

if [[ -z "$OHA" ]]; then
    OHA="$(command -v oha || true)"
    if [[ -z "$OHA" && -x "$HOME/.cargo/bin/oha" ]]; then OHA="$HOME/.cargo/bin/oha"; fi
fi
if [[ -z "$OHA" ]]; then
    if apt-cache show oha >/dev/null 2>&1; then
        apt_install oha
        OHA="$(command -v oha)"
    else
        command -v cargo >/dev/null || die "oha is missing and cargo is not available to install it"
        log "oha is missing and Debian has no package: cargo install oha --locked (several minutes)"
        cargo install oha --locked
        OHA="$HOME/.cargo/bin/oha"
    fi
fi
[[ -x "$OHA" ]] || die "oha not found at $OHA"

# Flag spellings differ between oha releases.
OHA_HELP="$("$OHA" --help 2>&1)"
if grep -q -- '--output-format' <<<"$OHA_HELP"; then OHA_JSON=(--output-format json)
elif grep -q -- '--json' <<<"$OHA_HELP"; then OHA_JSON=(--json)
else die "this oha ($("$OHA" --version)) has no JSON output; install a newer one"; fi
OHA_WAIT=()
if grep -q -- '--wait-ongoing-requests-after-deadline' <<<"$OHA_HELP"; then OHA_WAIT=(--wait-ongoing-requests-after-deadline); fi
OHA_LC=()
if grep -q -- '--latency-correction' <<<"$OHA_HELP"; then OHA_LC=(--latency-correction); fi

# ---- costfloor -----------------------------------------------------------------------------
if want gateway "$TARGETS"; then
    if [[ -z "$COSTFLOOR_BIN" ]]; then
        log "cargo build --release -p costfloor"
        (cd "$ROOT" && cargo build --release -p costfloor)
        COSTFLOOR_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/costfloor"
    fi
    [[ -x "$COSTFLOOR_BIN" ]] || die "COSTFLOOR_BIN=$COSTFLOOR_BIN is not an executable"
    "$COSTFLOOR_BIN" serve --help >/dev/null 2>&1 \
        || die "$COSTFLOOR_BIN has no working 'serve' subcommand (use TARGETS=direct for the nginx baseline)"
fi

if cargo_busy && [[ "$ALLOW_BUSY" != 1 ]]; then
    die "cargo/rustc is running: a build competes for the CPUs and skews the figures. Wait for it, or set ALLOW_BUSY=1"
fi

# ---- work dir ------------------------------------------------------------------------------
if [[ -n "$RESULTS_DIR" ]]; then
    mkdir -p "$RESULTS_DIR"
    WORK="$(cd "$RESULTS_DIR" && pwd)"
else
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/costfloor-bench.XXXXXX")"
fi
mkdir -p "$WORK/nginx/tmp"
[[ -n "$NGINX_PORT" ]] || NGINX_PORT="$(free_port)"
[[ -n "$GATEWAY_PORT" ]] || GATEWAY_PORT="$(free_port)"
[[ "$NGINX_PORT" != "$GATEWAY_PORT" ]] || die "NGINX_PORT and GATEWAY_PORT must differ"
log "work dir $WORK; nginx on $HOST:$NGINX_PORT, gateway on $HOST:$GATEWAY_PORT"

# ---- metadata ------------------------------------------------------------------------------
{
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc=$(nproc)"
    echo "cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "mem_total=$(grep -m1 '^MemTotal' /proc/meminfo | awk '{printf "%.1f GiB", $2 / 1048576}')"
    echo "kernel=$(uname -r)"
    echo "nginx=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
    echo "oha=$("$OHA" --version 2>&1 | head -n1)"
    if [[ -n "$COSTFLOOR_BIN" ]]; then echo "costfloor=$("$COSTFLOOR_BIN" --version 2>&1 | head -n1)"; fi
    echo "settings=RATE=$RATE DURATION=$DURATION WARMUP=$WARMUP CONNECTIONS=$CONNECTIONS FIXED_CONNECTIONS=$FIXED_CONNECTIONS NGINX_WORKERS=$NGINX_WORKERS SHADOW=$SHADOW"
} >"$WORK/meta.txt"

# ---- nginx upstream --------------------------------------------------------------------------
# The fixed response: an OpenAI chat.completion with a realistic usage object.
UPSTREAM_BODY='{"id":"chatcmpl-bench000000000000000000000001","object":"chat.completion","created":1767225600,"model":"gpt-4.1-mini-2025-04-14","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":8,"completion_tokens":10,"total_tokens":18,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_bench0001"}'

N="$WORK/nginx"
cat >"$N/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $NGINX_WORKERS;
pid $N/nginx.pid;
error_log $N/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    server_tokens off;
    client_body_temp_path $N/tmp/body;
    proxy_temp_path $N/tmp/proxy;
    fastcgi_temp_path $N/tmp/fastcgi;
    uwsgi_temp_path $N/tmp/uwsgi;
    scgi_temp_path $N/tmp/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    client_body_buffer_size 64k;
    server {
        listen $HOST:$NGINX_PORT;
        location = /v1/chat/completions {
            default_type application/json;
            return 200 '$UPSTREAM_BODY';
        }
        location / {
            return 404;
        }
    }
}
EOF
"$NGINX" -t -q -p "$N/" -c "$N/nginx.conf" -e "$N/error.log" || die "nginx rejected $N/nginx.conf"
"$NGINX" -p "$N/" -c "$N/nginx.conf" -e "$N/error.log" >"$N/stdout" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_port "$NGINX_PORT" 10 "$NGINX_PID" || die "nginx did not listen on $HOST:$NGINX_PORT (see $N/error.log)"
log "nginx up (pid $NGINX_PID)"

DIRECT_URL="http://$HOST:$NGINX_PORT/v1/chat/completions"
GATEWAY_URL="http://$HOST:$GATEWAY_PORT/v1/chat/completions"

smoke() { # smoke NAME URL: one request; must be 200 with a usage object
    local name="$1" url="$2" code
    code="$(curl -sS --max-time 10 -o "$WORK/smoke-$name.json" -w '%{http_code}' -X POST \
        -H 'Content-Type: application/json' -H 'Authorization: Bearer x' --data "$BODY" "$url")" \
        || die "smoke request to $name failed"
    [[ "$code" == 200 ]] || die "smoke request to $name: HTTP $code: $(head -c 500 "$WORK/smoke-$name.json")"
    grep -q '"usage"' "$WORK/smoke-$name.json" || die "smoke response from $name has no usage object"
    log "smoke $name: HTTP 200, $(head -c 200 "$WORK/smoke-$name.json")"
}

# oha_run NAME URL MODE SECONDS   (MODE: fixed | max); writes $WORK/NAME.json
oha_run() {
    local name="$1" url="$2" mode="$3" secs="$4" conns
    local args=(-z "${secs}s" --no-tui "${OHA_JSON[@]}" "${OHA_WAIT[@]}"
        -m POST -T application/json -H 'Authorization: Bearer x' -d "$BODY")
    if [[ "$mode" == fixed ]]; then
        conns="$FIXED_CONNECTIONS"
        args+=(-c "$conns" -q "$RATE" "${OHA_LC[@]}")
    else
        conns="$CONNECTIONS"
        args+=(-c "$conns")
    fi
    local start end
    start="$(now_ms)"
    # --foreground: on a signal, timeout then signals only oha, not the whole process group (this script included).
    run_waited "$WORK/$name.json" "$WORK/$name.stderr" \
        timeout --foreground -k 5 "$((secs + 60))" "$OHA" "${args[@]}" "$url" \
        || die "oha failed for $name (see $WORK/$name.stderr)"
    end="$(now_ms)"
    printf '{"name":"%s","mode":"%s","connections":%s,"rate":%s,"duration_s":%s,"start_ms":%s,"end_ms":%s}\n' \
        "$name" "$mode" "$conns" "$([[ $mode == fixed ]] && echo "$RATE" || echo null)" "$secs" "$start" "$end" \
        >"$WORK/$name.run.json"
    log "$name: $(python3 "$SUMMARIZE" brief "$WORK/$name.json")"
}

GW_ANSWERED=0   # responses the gateway gave to any client in this run, smoke and warm-up included

# scenario TARGET MODE
scenario() {
    local target="$1" mode="$2" url
    [[ "$target" == direct ]] && url="$DIRECT_URL" || url="$GATEWAY_URL"
    if (( WARMUP > 0 )); then
        oha_run "warmup-$mode-$target" "$url" "$mode" "$WARMUP"
        if [[ "$target" == gateway ]]; then
            GW_ANSWERED=$((GW_ANSWERED + $(python3 "$SUMMARIZE" answered "$WORK/warmup-$mode-$target.json")))
        fi
    fi
    oha_run "$mode-$target" "$url" "$mode" "$DURATION"
    if [[ "$target" == gateway ]]; then
        local answered
        answered="$(python3 "$SUMMARIZE" answered "$WORK/$mode-$target.json")"
        GW_ANSWERED=$((GW_ANSWERED + answered))
        # Rows are written by a background writer: give it a moment to catch up.
        python3 "$SUMMARIZE" ledger-window "$WORK/ledger.db" "$WORK/$mode-$target.run.json" "$answered" \
            >"$WORK/$mode-$target.ledger.json"
        log "$mode-$target ledger: $(cat "$WORK/$mode-$target.ledger.json")"
    fi
}

# ---- direct ---------------------------------------------------------------------------------
smoke direct "$DIRECT_URL"
if want direct "$TARGETS"; then
    for mode in fixed max; do
        if want "$mode" "$SCENARIOS"; then scenario direct "$mode"; fi
    done
fi

# ---- through the gateway --------------------------------------------------------------------
if want gateway "$TARGETS"; then
    cat >"$WORK/gateway.toml" <<EOF
# Written by bench/gateway/run.sh
[server]
listen = "$HOST:$GATEWAY_PORT"
ledger = "$WORK/ledger.db"
drain_seconds = 5

[[backend]]
name = "nginx"
type = "openai_compatible"
base_url = "http://$HOST:$NGINX_PORT/v1"
model = "gpt-4.1-mini"
price = "gpt-4.1-mini"
max_in_flight = 4096

[[backend]]
name = "nginx-shadow"
type = "openai_compatible"
base_url = "http://$HOST:$NGINX_PORT/v1"
model = "gpt-4.1-mini"
price = "gpt-4.1-mini"

[[route]]
name = "bench"
models = ["bench"]
targets = ["nginx"]
$( [[ "$SHADOW" != 0 ]] && echo "shadow = { backend = \"nginx-shadow\", sample = $SHADOW, monthly_cap_usd = 1000000, max_in_flight = 64 }" || true )
EOF
    "$COSTFLOOR_BIN" serve --config "$WORK/gateway.toml" >"$WORK/gateway.stdout" 2>"$WORK/gateway.stderr" &
    GATEWAY_PID=$!
    PIDS+=("$GATEWAY_PID")
    for ((i = 0; i < 300; i++)); do
        [[ -s "$WORK/gateway.stdout" ]] && break
        kill -0 "$GATEWAY_PID" 2>/dev/null || die "costfloor serve exited: $(tail -n 20 "$WORK/gateway.stderr")"
        sleep 0.1
    done
    first_line="$(head -n1 "$WORK/gateway.stdout" 2>/dev/null || true)"
    [[ "$first_line" == "listening on http://"* ]] \
        || die "costfloor serve: expected 'listening on http://...' as the first stdout line, got '${first_line}' ($(tail -n 5 "$WORK/gateway.stderr"))"
    wait_port "$GATEWAY_PORT" 10 "$GATEWAY_PID" || die "costfloor serve is not accepting on $HOST:$GATEWAY_PORT"
    log "gateway up (pid $GATEWAY_PID): $first_line"

    smoke gateway "$GATEWAY_URL"
    GW_ANSWERED=1
    for mode in fixed max; do
        if want "$mode" "$SCENARIOS"; then scenario gateway "$mode"; fi
    done

    # Best effort: the gateway's own counters, if it serves /metrics.
    curl -s --max-time 5 "http://$HOST:$GATEWAY_PORT/metrics" >"$WORK/gateway.metrics" 2>/dev/null || true

    # A graceful stop flushes the ledger queue; then every answered request must have a row.
    log "stopping the gateway (SIGTERM)"
    stop_pid "$GATEWAY_PID" TERM 20
    forget_pid "$GATEWAY_PID"
    python3 "$SUMMARIZE" ledger-total "$WORK/ledger.db" "$GW_ANSWERED" >"$WORK/ledger-total.json"
    log "ledger after shutdown: $(cat "$WORK/ledger-total.json")"
fi

# ---- summary --------------------------------------------------------------------------------
python3 "$SUMMARIZE" table "$WORK" | tee "$WORK/summary.txt"
