#!/usr/bin/env bash
# Benchmark of `costfloor plan` with its sweep and chart, against the process-start
# baseline (`costfloor --version`), run side by side with hyperfine.
# Usage: bash bench/plan/run.sh   (needs hyperfine: apt-get install hyperfine)
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine; }
cargo build --release -p costfloor >/dev/null
bin="$PWD/target/release/costfloor"
out="$(mktemp -d)"
hyperfine --warmup 5 --min-runs 50 --export-markdown "$out/plan.md" \
  -n baseline "$bin --version" \
  -n "plan --json" "$bin plan --json" \
  -n "plan + chart (1,200-point sweep, SVG)" "$bin plan --json --chart $out/cost.svg" \
  -n "plan, 3-task workload + chart" "$bin plan --json --workload examples/workload.toml --chart $out/cost2.svg" \
  -n "plan --search, whole catalog" "$bin plan --json --search --search-models all" \
  -n "plan --search, whole catalog + chart" "$bin plan --json --search --search-models all --chart $out/search.svg"
cat "$out/plan.md"
# The search's chart, kept beside the results.
"$bin" plan --search --search-models all --chart bench/plan/search.svg >/dev/null
