"""Utilisation from a real llama.cpp server: llama.cpp's own `llama-server` (the C++ one,
built from the llama.cpp sources of the llama-cpp-python sdist by
scripts/setup-llama-server.sh) runs SmolLM2 with `--metrics`; the gateway samples its
`/metrics` while real generations go through, and the report turns the samples into
utilisation over the capacity `size` computes for the deployment.

llama-cpp-python's own server has no `/metrics`, hence this second server. The same
server also answers `count_tokens` at its `/tokenize`.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import anthropic  # noqa: E402
import openai  # noqa: E402
import pytest

from conftest import start_llama_cpp_server

TIMEOUT_S = 120


@pytest.fixture
def llama_server(launcher):
    return start_llama_cpp_server(launcher, ["-c", "2048", "-np", "1"], TIMEOUT_S)


def test_utilisation_is_sampled_from_the_real_llama_server(launcher, llama_server, costfloor_bin: Path) -> None:
    # Its own metrics first: the names the gateway reads are there.
    with urllib.request.urlopen(f"{llama_server.url}/metrics", timeout=10) as r:
        exported = r.read().decode()
    for name in ("llamacpp:prompt_tokens_total", "llamacpp:tokens_predicted_total", "llamacpp:n_decode_total"):
        assert name in exported, exported

    gateway = launcher.gateway(
        backends=[{
            "name": "llama",
            "type": "openai_compatible",
            "base_url": f"{llama_server.url}/v1",
            "model": "smollm2",
            "deployment": "llama-3.3-70b-4xa100",
            "metrics_url": f"{llama_server.url}/metrics",
            "timeouts": {"first_byte_ms": 90000},
        }],
        server={"sample_interval_seconds": 1},
        name="gateway-llama-metrics",
    )
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-none", max_retries=0, timeout=TIMEOUT_S) as oai:
        for prompt in ("Count to five.", "Name three colours.", "Say hello in French."):
            r = oai.chat.completions.create(
                model="smollm2", messages=[{"role": "user", "content": prompt}], max_tokens=16, temperature=0
            )
            assert r.usage.prompt_tokens > 0
    time.sleep(2.5)  # samples after the traffic

    import sqlite3

    con = sqlite3.connect(f"file:{gateway.ledger}?mode=ro", uri=True)
    try:
        samples = con.execute(
            "SELECT source, prompt_tokens_total, generation_tokens_total, decode_steps_total "
            "FROM backend_samples WHERE backend = 'llama' ORDER BY sampled_at_unix_ms"
        ).fetchall()
        prompt_total = con.execute("SELECT SUM(input_tokens) FROM requests").fetchone()[0]
    finally:
        con.close()
    assert samples, "no samples of the llama-server's /metrics"
    assert {s[0] for s in samples} == {"llamacpp"}
    last = samples[-1]
    # The server's own counters cover the three generations the ledger recorded.
    assert last[1] >= prompt_total > 0, (last, prompt_total)
    assert last[2] > 0 and last[3] > 0, last

    done = subprocess.run(
        [str(costfloor_bin), "report", "--config", str(gateway.config), "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    utilisation = json.loads(done.stdout)["utilisation"]
    assert [u["backend"] for u in utilisation] == ["llama"]
    assert utilisation[0]["basis"] == "server_tokens"
    assert utilisation[0]["weeks"], utilisation
    assert utilisation[0]["weeks"][0]["peak"] > 0, (utilisation, samples)


def test_count_tokens_asks_the_real_llama_server(launcher, llama_server) -> None:
    """`count_tokens` through the gateway to llama.cpp's own server: its `/tokenize`
    counts the text (`content`), and the gateway labels the count `backend_text`."""

    gateway = launcher.gateway(
        backends=[{"name": "llama", "type": "openai_compatible", "base_url": f"{llama_server.url}/v1",
                   "model": "smollm2", "deployment": "llama-3.3-70b-4xa100", "timeouts": {"first_byte_ms": 90000}}],
        name="gateway-llama-count",
    )
    text = "Count the tokens of this sentence, please."
    with anthropic.Anthropic(base_url=gateway.url, api_key="sk-none", max_retries=0, timeout=TIMEOUT_S) as client:
        raw = client.messages.with_raw_response.count_tokens(model="smollm2", messages=[{"role": "user", "content": text}])
    assert raw.headers["x-costfloor-token-count"] == "backend_text"
    # The server's own count of the same text (the gateway sends the message text and a newline).
    body = json.dumps({"content": text + "\n", "add_special": True}).encode()
    request = urllib.request.Request(f"{llama_server.url}/tokenize", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as r:
        expected = len(json.load(r)["tokens"])
    assert raw.parse().input_tokens == expected > 0
