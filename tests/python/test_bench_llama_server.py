"""`costfloor bench` against a real llama.cpp server: llama.cpp's own `llama-server` (built
by scripts/setup-llama-server.sh, $COSTFLOOR_LLAMA_SERVER) running SmolLM2-135M with two
slots, at concurrencies 1 and 2.

What must hold:
- every level's requests are counted once (none failed here), and the output tokens the
  bench counted are the ones the server generated: its `llamacpp:tokens_predicted_total`
  grew by the levels' sum plus the probes' (at most PROBE_TOKENS);
- the output length was forced (`ignore_eos`): 16 tokens per request, exactly;
- throughput is the tokens counted over the level's time, and that time is the
  level's 4 s plus the requests it waited for, within the test's own wall clock;
- a closed loop at C holds C requests in flight (Little's law: mean_in_flight ≈ C).

The test fails (never skips) when the server or the model is missing.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import start_llama_cpp_server

START_TIMEOUT_S = 120
OUTPUT_TOKENS = 16
DURATION_S = 4.0
# The probes before the levels: one 1-token request, at most one 1-token usage request
# for the template's tokens, and one streamed request of the full shape.
PROBE_TOKENS = 1 + 1 + OUTPUT_TOKENS


@pytest.fixture
def llama_server(launcher):
    return start_llama_cpp_server(launcher, ["-c", "4096", "-np", "2", "-t", "2"], START_TIMEOUT_S)


def predicted_tokens(url: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        text = r.read().decode()
    match = re.search(r"^llamacpp:tokens_predicted_total\s+(\S+)$", text, re.MULTILINE)
    assert match, text
    return float(match.group(1))


def test_bench_counts_add_up_against_the_llama_server(llama_server, costfloor_bin: Path, tmp_path: Path) -> None:
    out = tmp_path / "measured.json"
    before = predicted_tokens(llama_server.url)
    started = time.monotonic()
    result = subprocess.run(
        [str(costfloor_bin), "bench", "--target", llama_server.url, "--model", "smollm2",
         "--input-tokens", "64", "--output-tokens", str(OUTPUT_TOKENS), "--concurrency", "1,2",
         "--duration", f"{DURATION_S}s", "--slo-ttft-ms", "60000", "--slo-tpot-ms", "10000",
         "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    wall_s = time.monotonic() - started
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\n{llama_server.log()}"
    generated = predicted_tokens(llama_server.url) - before
    m = json.loads(out.read_text())

    assert m["version"] == 1 and m["target"] == llama_server.url and m["format"] == "openai"
    assert m["shape"]["input_calibration"] == "tokenize", m["shape"]
    assert m["shape"]["output_forcing"] == "ignore_eos+min_tokens", m["shape"]
    # The llama.cpp server counts the text; the template's tokens come from usage; the
    # fit lands within a token or two of 64 (digits and words tokenise unevenly).
    assert abs(m["shape"]["input_tokens_mean"] - 64) <= 2, m["shape"]
    assert m["shape"]["output_tokens_mean"] == OUTPUT_TOKENS, m["shape"]

    levels = m["levels"]
    assert [(lv["mode"], lv["load"]) for lv in levels] == [("concurrency", 1), ("concurrency", 2)]
    counted = 0
    for lv in levels:
        failures = [line for line in result.stdout.splitlines() if "failures" in line]
        assert lv["failed"] == 0, (lv["failed"], failures)
        assert lv["completed"] >= 2, lv
        assert lv["output_tokens"] == OUTPUT_TOKENS * lv["completed"], lv
        counted += lv["output_tokens"]
        # Throughput = tokens counted ÷ the level's time.
        assert lv["output_tokens_per_s"] == pytest.approx(lv["output_tokens"] / lv["duration_s"], rel=1e-9)
        assert lv["requests_per_s"] == pytest.approx(lv["completed"] / lv["duration_s"], rel=1e-9)
        assert lv["total_tokens_per_s"] == pytest.approx(
            (lv["input_tokens"] + lv["output_tokens"]) / lv["duration_s"], rel=1e-9)
        # The level ran its 4 s, then waited at most for the requests in flight.
        assert DURATION_S <= lv["duration_s"] <= DURATION_S + lv["e2e_ms"]["p99"] / 1000 * 1.5 + 0.5, lv
        # Little's law: C streams in flight, less the moments between two requests.
        assert lv["mean_in_flight"] == pytest.approx(lv["load"], rel=0.15), lv
        for name in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
            p = lv[name]
            assert 0 < p["p50"] <= p["p90"] <= p["p99"], (name, lv)
        assert lv["meets_slo"], lv
    assert sum(lv["duration_s"] for lv in levels) < wall_s
    # What the bench counted is what the server generated, plus the probes'.
    assert counted <= generated <= counted + PROBE_TOKENS, (counted, generated)
    assert m["capacity"] is not None
    assert "capacity:" in result.stdout
