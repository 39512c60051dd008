#!/usr/bin/env bash
# Builds llama.cpp's own HTTP server (`llama-server`, the C++ one, which has a
# Prometheus `/metrics` endpoint with `--metrics`) from the llama.cpp sources inside the
# llama-cpp-python sdist of the version the test venv holds, and caches the binary.
# The utilisation test samples it; the other llama tests use llama-cpp-python's server.
#
# Usage: setup-llama-server.sh VENV   Prints the binary's path on its last line.
set -euo pipefail

venv="$1"
cache="${COSTFLOOR_CACHE:-$HOME/.cache/costfloor}"
version="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("llama_cpp_python"))')"
dir="$cache/llama-server/$version"
binary="$dir/llama-server"
if [[ -x "$binary" ]]; then
  echo "$binary"
  exit 0
fi

if ! command -v cmake >/dev/null; then
  as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
  echo "installing cmake (Debian package)" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cmake >&2 \
    || { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 \
         && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cmake >&2; }
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "building llama-server $version from the llama-cpp-python sdist (a few minutes on 2 cores)" >&2
"$venv/bin/pip" download --quiet --no-deps --no-binary llama-cpp-python \
  "llama-cpp-python==$version" -d "$work" >&2
tar xzf "$work"/llama_cpp_python-*.tar.gz -C "$work"
src="$(echo "$work"/llama_cpp_python-*/vendor/llama.cpp)"
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON \
  -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=OFF >&2
cmake --build "$work/build" --target llama-server -j "${CMAKE_BUILD_PARALLEL_LEVEL:-2}" >&2
mkdir -p "$dir"
cp "$work/build/bin/llama-server" "$binary.partial"
mv "$binary.partial" "$binary"
echo "$binary"
