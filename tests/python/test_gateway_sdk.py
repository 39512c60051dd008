"""Drives `costfloor serve` with the official `openai` and `anthropic` Python SDKs,
unchanged, with `costfloor sim` as the backends.

The gateway has two backends on one simulator: `selfhosted` (openai_compatible, with a
catalog deployment, so its marginal cost is 0) and `claude` (anthropic, priced as
claude-haiku-4.5). The model alias `local` routes to the first, `api` to the second,
so each SDK is tested against a backend speaking its own format and the other one.

The simulator is deterministic: its text depends only on the conversation, and its
usage is exact (a message costs 4 + its whitespace words; each output word is one
token), so the gateway's answers can be compared with the simulator's own.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

# The official SDKs are required (scripts/setup-python.sh installs them): a missing one
# fails the run instead of skipping it.
import anthropic  # noqa: E402
import openai  # noqa: E402

OUTPUT_TOKENS = 12
SYSTEM = "You are terse."
QUESTION = "Say hello to the world"
OPENAI_MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
ANTHROPIC_MESSAGES = [{"role": "user", "content": QUESTION}]
TIMEOUT_S = 30

KEY_A = "sk-costfloor-team-a-7f3e"
KEY_B = "sk-costfloor-team-b-19c2"

# claude-haiku-4.5 costs $1 per million input tokens and $5 per million output
# tokens: 1e-6 USD = 1000 nano-USD per input token, 5000 nano-USD per output token.
HAIKU_INPUT_NUSD = 1000
HAIKU_OUTPUT_NUSD = 5000


def haiku_cost_nusd(input_tokens: int, output_tokens: int) -> int:
    return input_tokens * HAIKU_INPUT_NUSD + output_tokens * HAIKU_OUTPUT_NUSD


def words(text: str) -> int:
    return len(text.split())


def input_tokens(*texts: str) -> int:
    """The simulator's count: 4 per message plus its whitespace words."""
    return sum(4 + words(t) for t in texts)


PROMPT_TOKENS = input_tokens(SYSTEM, QUESTION)


@pytest.fixture(scope="module")
def sim(module_launcher):
    return module_launcher.sim(output_tokens=OUTPUT_TOKENS)


@pytest.fixture(scope="module")
def gateway(module_launcher, sim):
    return module_launcher.gateway(
        client_keys=[
            {"name": "team-a", "secret_env": "TEAM_A_KEY"},
            {"name": "team-b", "secret_env": "TEAM_B_KEY"},
        ],
        backends=[
            {
                "name": "selfhosted",
                "type": "openai_compatible",
                "base_url": f"{sim.url}/v1",
                "model": "sim-llama",
                "deployment": "llama-3.3-70b-4xa100",
            },
            {
                "name": "claude",
                "type": "anthropic",
                "base_url": sim.url,
                "model": "claude-haiku-4-5",
                "price": "claude-haiku-4.5",
            },
        ],
        routes=[
            {"name": "local", "models": ["local"], "targets": ["selfhosted"], "reference_api": "claude-haiku-4.5"},
            {"name": "api", "models": ["api"], "targets": ["claude"]},
            {
                "name": "classify",
                "models": ["auto"],
                "tasks": ["classify"],
                "targets": ["selfhosted", "claude"],
                "reference_api": "claude-haiku-4.5",
            },
            {"name": "auto", "models": ["auto"], "targets": ["claude"]},
        ],
        env={"TEAM_A_KEY": KEY_A, "TEAM_B_KEY": KEY_B},
    )


@pytest.fixture
def oai(gateway):
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY_A, max_retries=0, timeout=TIMEOUT_S) as client:
        yield client


@pytest.fixture
def ant(gateway):
    with anthropic.Anthropic(base_url=gateway.url, api_key=KEY_A, max_retries=0, timeout=TIMEOUT_S) as client:
        yield client


@pytest.fixture
def http(gateway):
    with httpx.Client(base_url=gateway.url, timeout=TIMEOUT_S) as client:
        yield client


@pytest.fixture(scope="module")
def direct_text(sim) -> str:
    """What the simulator itself answers to the conversation, asked without the gateway."""
    with openai.OpenAI(base_url=f"{sim.url}/v1", api_key="sk-direct", max_retries=0, timeout=TIMEOUT_S) as client:
        r = client.chat.completions.create(model="sim-llama", messages=OPENAI_MESSAGES)
    with anthropic.Anthropic(base_url=sim.url, api_key="sk-direct", max_retries=0, timeout=TIMEOUT_S) as client:
        m = client.messages.create(
            model="claude-haiku-4-5", max_tokens=100, system=SYSTEM, messages=ANTHROPIC_MESSAGES
        )
    text = r.choices[0].message.content
    assert text and words(text) == OUTPUT_TOKENS
    assert m.content[0].text == text, "the simulator answers the same conversation alike in both formats"
    return text


def tags(headers) -> tuple[str, str, str]:  # noqa: ANN001
    """(backend, route, request id) from the gateway's response headers."""
    return (
        headers["x-costfloor-backend"],
        headers["x-costfloor-route"],
        headers["x-costfloor-request-id"],
    )


def assert_self_hosted_row(row: dict, *, input_tokens: int, output_tokens: int, stream: bool) -> None:
    assert row["backend"] == "selfhosted"
    assert row["model"] == "sim-llama"
    assert row["self_hosted"] == 1
    assert row["outcome"] == "success"
    assert row["http_status"] == 200
    assert row["stream"] == int(stream)
    assert row["estimated"] == 0
    assert row["input_tokens"] == input_tokens
    assert row["output_tokens"] == output_tokens
    assert row["cache_read_tokens"] == 0
    assert row["cache_write_tokens"] == 0
    # Self-hosted: no marginal cost; the counterfactual is the route's reference API.
    assert row["cost_nusd"] == 0
    assert row["counterfactual_cost_nusd"] == haiku_cost_nusd(input_tokens, output_tokens) > 0
    assert row["fallback_chain"] == "selfhosted:200"
    assert row["error_kind"] is None
    assert row["total_us"] > 0 and 0 <= row["overhead_us"] <= row["total_us"]


def assert_haiku_row(row: dict, *, input_tokens: int, output_tokens: int, stream: bool) -> None:
    assert row["backend"] == "claude"
    assert row["model"] == "claude-haiku-4-5"
    assert row["self_hosted"] == 0
    assert row["outcome"] == "success"
    assert row["http_status"] == 200
    assert row["stream"] == int(stream)
    assert row["estimated"] == 0
    assert row["input_tokens"] == input_tokens
    assert row["output_tokens"] == output_tokens
    assert row["cache_read_tokens"] == 0
    assert row["cache_write_tokens"] == 0
    # An API backend: what it costs is what it would have cost.
    assert row["cost_nusd"] == haiku_cost_nusd(input_tokens, output_tokens)
    assert row["counterfactual_cost_nusd"] == row["cost_nusd"]
    assert row["fallback_chain"] == "claude:200"
    assert row["error_kind"] is None


# --- (a) OpenAI SDK -> openai_compatible backend ---------------------------------------


def test_openai_sdk_non_streaming_to_openai_backend(oai, gateway, direct_text) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="local", messages=OPENAI_MESSAGES)
    backend, route, request_id = tags(raw.headers)
    r = raw.parse()
    assert (backend, route) == ("selfhosted", "local")
    assert r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == direct_text
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens == PROMPT_TOKENS
    assert r.usage.completion_tokens == OUTPUT_TOKENS
    assert r.usage.total_tokens == PROMPT_TOKENS + OUTPUT_TOKENS

    row = gateway.row(request_id)
    assert_self_hosted_row(row, input_tokens=r.usage.prompt_tokens, output_tokens=r.usage.completion_tokens, stream=False)
    assert row["route"] == "local"
    assert row["client_key"] == "team-a"
    assert row["task"] is None
    # Non-streamed: there is no first token to time.
    assert row["ttft_us"] is None
    # The alias the client used, next to the model that served it.
    assert row["requested_model"] == "local"
    assert row["model"] == "sim-llama"


def test_openai_sdk_streaming_to_openai_backend(oai, gateway, direct_text) -> None:
    stream = oai.chat.completions.create(
        model="local", messages=OPENAI_MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    backend, route, request_id = tags(stream.response.headers)
    chunks = list(stream)
    assert (backend, route) == ("selfhosted", "local")
    *body, last = chunks
    assert last.choices == [] and last.usage is not None
    assert all(c.usage is None for c in body)
    text = "".join(c.choices[0].delta.content or "" for c in body if c.choices)
    assert text == direct_text
    assert body[-1].choices[0].finish_reason == "stop"
    assert last.usage.prompt_tokens == PROMPT_TOKENS
    assert last.usage.completion_tokens == OUTPUT_TOKENS

    row = gateway.row(request_id)
    assert_self_hosted_row(
        row, input_tokens=last.usage.prompt_tokens, output_tokens=last.usage.completion_tokens, stream=True
    )
    assert row["ttft_us"] is not None and 0 < row["ttft_us"] <= row["total_us"]


def test_openai_sdk_streaming_without_include_usage_still_meters_exactly(oai, gateway, direct_text) -> None:
    """The client did not ask for usage: it gets no usage chunk, but the gateway asked
    the backend for it, so the ledger row is still exact."""
    stream = oai.chat.completions.create(model="local", messages=OPENAI_MESSAGES, stream=True)
    _, _, request_id = tags(stream.response.headers)
    chunks = list(stream)
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == direct_text

    row = gateway.row(request_id)
    assert_self_hosted_row(row, input_tokens=PROMPT_TOKENS, output_tokens=OUTPUT_TOKENS, stream=True)


# --- (b) Anthropic SDK -> anthropic backend --------------------------------------------


def test_anthropic_sdk_non_streaming_to_anthropic_backend(ant, gateway, direct_text) -> None:
    raw = ant.messages.with_raw_response.create(
        model="api", max_tokens=100, system=SYSTEM, messages=ANTHROPIC_MESSAGES
    )
    backend, route, request_id = tags(raw.headers)
    m = raw.parse()
    assert (backend, route) == ("claude", "api")
    assert m.type == "message" and m.role == "assistant"
    assert m.content[0].type == "text"
    assert m.content[0].text == direct_text
    assert m.stop_reason == "end_turn"
    assert m.usage.input_tokens == PROMPT_TOKENS
    assert m.usage.output_tokens == OUTPUT_TOKENS

    row = gateway.row(request_id)
    assert_haiku_row(row, input_tokens=m.usage.input_tokens, output_tokens=m.usage.output_tokens, stream=False)
    assert row["cost_nusd"] == PROMPT_TOKENS * 1000 + OUTPUT_TOKENS * 5000
    assert row["route"] == "api"
    assert row["client_key"] == "team-a"


def test_anthropic_sdk_streaming_to_anthropic_backend(ant, gateway, direct_text) -> None:
    with ant.messages.stream(
        model="api", max_tokens=100, system=SYSTEM, messages=ANTHROPIC_MESSAGES
    ) as stream:
        backend, route, request_id = tags(stream.response.headers)
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert (backend, route) == ("claude", "api")
    assert "".join(texts) == final.content[0].text == direct_text
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == PROMPT_TOKENS
    assert final.usage.output_tokens == OUTPUT_TOKENS

    row = gateway.row(request_id)
    assert_haiku_row(row, input_tokens=final.usage.input_tokens, output_tokens=final.usage.output_tokens, stream=True)
    assert row["ttft_us"] is not None and row["ttft_us"] > 0


def test_anthropic_sdk_max_tokens_cuts_the_output(ant, gateway, direct_text) -> None:
    raw = ant.messages.with_raw_response.create(
        model="api", max_tokens=5, system=SYSTEM, messages=ANTHROPIC_MESSAGES
    )
    m = raw.parse()
    assert m.stop_reason == "max_tokens"
    assert m.usage.output_tokens == 5
    assert m.content[0].text == " ".join(direct_text.split()[:5])
    row = gateway.row(raw.headers["x-costfloor-request-id"])
    assert_haiku_row(row, input_tokens=PROMPT_TOKENS, output_tokens=5, stream=False)


def test_anthropic_sdk_prompt_cache_is_metered_and_priced(ant, gateway) -> None:
    # A system prompt no other test sends, so that the simulator's cache starts cold.
    text = f"A long and stable system prompt for the caching test {uuid.uuid4().hex}"
    system = [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]
    prefix = input_tokens(text)
    rows = []
    for question in ("first question", "second question"):
        raw = ant.messages.with_raw_response.create(
            model="api", max_tokens=6, system=system, messages=[{"role": "user", "content": question}]
        )
        m = raw.parse()
        assert m.usage.input_tokens == input_tokens(question)
        row = gateway.row(raw.headers["x-costfloor-request-id"])
        assert row["input_tokens"] == m.usage.input_tokens
        assert row["cache_write_tokens"] == m.usage.cache_creation_input_tokens
        assert row["cache_read_tokens"] == m.usage.cache_read_input_tokens
        assert row["output_tokens"] == m.usage.output_tokens == 6
        rows.append(row)
    first, second = rows
    assert (first["cache_write_tokens"], first["cache_read_tokens"]) == (prefix, 0)
    assert (second["cache_write_tokens"], second["cache_read_tokens"]) == (0, prefix)
    # claude-haiku-4.5: cache writes (5-minute) $1.25 per million tokens = 1250
    # nano-USD per token, cache reads $0.10 per million = 100 nano-USD per token.
    assert first["cost_nusd"] == haiku_cost_nusd(first["input_tokens"], 6) + prefix * 1250
    assert second["cost_nusd"] == haiku_cost_nusd(second["input_tokens"], 6) + prefix * 100


# --- (c) cross-format ------------------------------------------------------------------


def test_openai_sdk_non_streaming_to_anthropic_backend(oai, gateway, direct_text) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="api", messages=OPENAI_MESSAGES)
    backend, route, request_id = tags(raw.headers)
    r = raw.parse()
    assert (backend, route) == ("claude", "api")
    assert r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == direct_text
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens == PROMPT_TOKENS
    assert r.usage.completion_tokens == OUTPUT_TOKENS
    assert r.usage.total_tokens == PROMPT_TOKENS + OUTPUT_TOKENS

    row = gateway.row(request_id)
    assert_haiku_row(row, input_tokens=r.usage.prompt_tokens, output_tokens=r.usage.completion_tokens, stream=False)


def test_openai_sdk_max_tokens_to_anthropic_backend_gives_length(oai, gateway) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="api", messages=OPENAI_MESSAGES, max_tokens=4)
    r = raw.parse()
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 4
    assert words(r.choices[0].message.content) == 4
    row = gateway.row(raw.headers["x-costfloor-request-id"])
    assert_haiku_row(row, input_tokens=PROMPT_TOKENS, output_tokens=4, stream=False)


def test_openai_sdk_streaming_to_anthropic_backend(oai, gateway, direct_text) -> None:
    stream = oai.chat.completions.create(
        model="api", messages=OPENAI_MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    backend, route, request_id = tags(stream.response.headers)
    chunks = list(stream)
    assert (backend, route) == ("claude", "api")
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    *body, last = chunks
    assert last.choices == [] and last.usage is not None
    assert all(c.usage is None for c in body)
    assert body[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in body if c.choices)
    assert text == direct_text
    assert [c.choices[0].finish_reason for c in body if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert last.usage.prompt_tokens == PROMPT_TOKENS
    assert last.usage.completion_tokens == OUTPUT_TOKENS

    row = gateway.row(request_id)
    assert_haiku_row(
        row, input_tokens=last.usage.prompt_tokens, output_tokens=last.usage.completion_tokens, stream=True
    )


def test_openai_sdk_streaming_to_anthropic_backend_without_include_usage(oai, gateway, direct_text) -> None:
    stream = oai.chat.completions.create(model="api", messages=OPENAI_MESSAGES, stream=True)
    request_id = stream.response.headers["x-costfloor-request-id"]
    chunks = list(stream)
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == direct_text
    row = gateway.row(request_id)
    assert_haiku_row(row, input_tokens=PROMPT_TOKENS, output_tokens=OUTPUT_TOKENS, stream=True)


def test_anthropic_sdk_non_streaming_to_openai_backend(ant, gateway, direct_text) -> None:
    raw = ant.messages.with_raw_response.create(
        model="local", max_tokens=100, system=SYSTEM, messages=ANTHROPIC_MESSAGES
    )
    backend, route, request_id = tags(raw.headers)
    m = raw.parse()
    assert (backend, route) == ("selfhosted", "local")
    assert m.type == "message" and m.role == "assistant"
    assert m.id
    assert m.content[0].type == "text"
    assert m.content[0].text == direct_text
    assert m.stop_reason == "end_turn"
    assert m.usage.input_tokens == PROMPT_TOKENS
    assert m.usage.output_tokens == OUTPUT_TOKENS

    row = gateway.row(request_id)
    assert_self_hosted_row(row, input_tokens=m.usage.input_tokens, output_tokens=m.usage.output_tokens, stream=False)


def test_anthropic_sdk_streaming_to_openai_backend(ant, gateway, direct_text) -> None:
    with ant.messages.stream(
        model="local", max_tokens=100, system=SYSTEM, messages=ANTHROPIC_MESSAGES
    ) as stream:
        backend, route, request_id = tags(stream.response.headers)
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert (backend, route) == ("selfhosted", "local")
    assert "".join(texts) == final.content[0].text == direct_text
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == PROMPT_TOKENS
    assert final.usage.output_tokens == OUTPUT_TOKENS

    row = gateway.row(request_id)
    assert_self_hosted_row(
        row, input_tokens=final.usage.input_tokens, output_tokens=final.usage.output_tokens, stream=True
    )


def test_anthropic_sdk_max_tokens_to_openai_backend(ant, gateway, direct_text) -> None:
    with ant.messages.stream(
        model="local", max_tokens=3, system=SYSTEM, messages=ANTHROPIC_MESSAGES
    ) as stream:
        request_id = stream.response.headers["x-costfloor-request-id"]
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 3
    assert final.content[0].text == " ".join(direct_text.split()[:3])
    row = gateway.row(request_id)
    assert_self_hosted_row(row, input_tokens=PROMPT_TOKENS, output_tokens=3, stream=True)


# --- routing by task label -------------------------------------------------------------


def test_task_label_from_header_and_metadata(oai, ant, gateway) -> None:
    by_header = oai.chat.completions.with_raw_response.create(
        model="auto", messages=OPENAI_MESSAGES, extra_headers={"x-costfloor-task": "classify"}
    )
    assert tags(by_header.headers)[:2] == ("selfhosted", "classify")
    by_metadata = ant.messages.with_raw_response.create(
        model="auto", max_tokens=50, messages=ANTHROPIC_MESSAGES, extra_body={"metadata": {"task": "classify"}}
    )
    assert tags(by_metadata.headers)[:2] == ("selfhosted", "classify")
    untagged = ant.messages.with_raw_response.create(model="auto", max_tokens=50, messages=ANTHROPIC_MESSAGES)
    assert tags(untagged.headers)[:2] == ("claude", "auto")

    assert gateway.row(tags(by_header.headers)[2])["task"] == "classify"
    assert gateway.row(tags(by_metadata.headers)[2])["task"] == "classify"
    row = gateway.row(tags(untagged.headers)[2])
    assert row["task"] is None and row["route"] == "auto"


def test_models_list_and_health(oai, ant, http) -> None:
    ids = [m.id for m in oai.models.list()]
    assert {"local", "api", "auto", "sim-llama", "claude-haiku-4-5"} <= set(ids)
    assert [m.id for m in ant.models.list()] == ids
    assert http.get("/healthz").status_code == 200
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"ready": True}
    metrics = http.get("/metrics")
    assert metrics.status_code == 200


# --- (d) errors ------------------------------------------------------------------------


def test_openai_sdk_unknown_model_is_not_found(oai, gateway) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        oai.chat.completions.create(model="gpt-nonexistent", messages=OPENAI_MESSAGES)
    assert err.value.status_code == 404
    message = err.value.body["message"]
    assert "gpt-nonexistent" in message
    for valid in ("local", "api", "sim-llama", "claude-haiku-4-5"):
        assert valid in message
    assert err.value.type == "invalid_request_error"
    _, route, request_id = tags(err.value.response.headers)
    assert route == "none"
    row = gateway.row(request_id)
    assert row["outcome"] == "client_error"
    assert row["http_status"] == 404
    assert row["error_kind"] == "not_found_error"
    assert row["cost_nusd"] == 0 and row["output_tokens"] == 0


def test_anthropic_sdk_unknown_model_is_not_found(ant, gateway) -> None:
    with pytest.raises(anthropic.NotFoundError) as err:
        ant.messages.create(model="claude-nonexistent", max_tokens=10, messages=ANTHROPIC_MESSAGES)
    assert err.value.status_code == 404
    assert err.value.body["type"] == "error"
    assert err.value.body["error"]["type"] == "not_found_error"
    assert "claude-nonexistent" in err.value.body["error"]["message"]
    assert "api" in err.value.body["error"]["message"]
    row = gateway.row(err.value.response.headers["x-costfloor-request-id"])
    assert (row["outcome"], row["http_status"]) == ("client_error", 404)


def test_malformed_json_is_400_in_each_format(http, gateway) -> None:
    auth = {"authorization": f"Bearer {KEY_A}", "content-type": "application/json"}
    r = http.post("/v1/chat/completions", content=b'{"model": "local", "messages": [', headers=auth)
    assert r.status_code == 400
    body = r.json()
    assert set(body) == {"error"}
    assert body["error"]["type"] == "invalid_request_error"
    assert "JSON" in body["error"]["message"]
    assert gateway.row(r.headers["x-costfloor-request-id"])["outcome"] == "client_error"

    r = http.post(
        "/v1/messages",
        content=b"not json at all",
        headers={**auth, "anthropic-version": "2023-06-01"},
    )
    assert r.status_code == 400
    body = r.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "JSON" in body["error"]["message"]


def test_anthropic_request_without_max_tokens_is_400(http, gateway) -> None:
    r = http.post(
        "/v1/messages",
        json={"model": "api", "messages": ANTHROPIC_MESSAGES},
        headers={"x-api-key": KEY_A, "anthropic-version": "2023-06-01"},
    )
    assert r.status_code == 400
    body = r.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"]
    row = gateway.row(r.headers["x-costfloor-request-id"])
    assert (row["outcome"], row["http_status"], row["error_kind"]) == ("client_error", 400, "invalid_request_error")


def test_anthropic_sdk_rejects_a_system_role_message(ant) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        ant.messages.create(
            model="api", max_tokens=10, messages=[{"role": "system", "content": SYSTEM}, *ANTHROPIC_MESSAGES]
        )
    assert err.value.body["error"]["type"] == "invalid_request_error"


def test_openai_sdk_out_of_range_temperature_is_400(oai) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oai.chat.completions.create(model="local", messages=OPENAI_MESSAGES, temperature=3.5)
    assert "temperature" in err.value.body["message"]


# --- (e) client keys -------------------------------------------------------------------


def test_second_client_key_is_recorded(gateway) -> None:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY_B, max_retries=0, timeout=TIMEOUT_S) as client:
        raw = client.chat.completions.with_raw_response.create(model="api", messages=OPENAI_MESSAGES)
    assert raw.parse().choices[0].message.content
    assert gateway.row(raw.headers["x-costfloor-request-id"])["client_key"] == "team-b"


def test_sdks_send_bearer_and_it_is_accepted(gateway) -> None:
    with anthropic.Anthropic(base_url=gateway.url, api_key=KEY_B, max_retries=0, timeout=TIMEOUT_S) as client:
        raw = client.messages.with_raw_response.create(model="api", max_tokens=20, messages=ANTHROPIC_MESSAGES)
    assert raw.http_request.headers.get("authorization") == f"Bearer {KEY_B}"
    assert raw.parse().content[0].text
    assert gateway.row(raw.headers["x-costfloor-request-id"])["client_key"] == "team-b"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_x_api_key_is_accepted(http, gateway, path: str) -> None:
    if path == "/v1/messages":
        body = {"model": "api", "max_tokens": 20, "messages": ANTHROPIC_MESSAGES}
    else:
        body = {"model": "api", "messages": OPENAI_MESSAGES}
    r = http.post(path, json=body, headers={"x-api-key": KEY_B, "anthropic-version": "2023-06-01"})
    assert r.status_code == 200, r.text
    assert gateway.row(r.headers["x-costfloor-request-id"])["client_key"] == "team-b"


def test_wrong_key_is_401_for_both_sdks(gateway) -> None:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-wrong", max_retries=0, timeout=TIMEOUT_S) as oai:
        with pytest.raises(openai.AuthenticationError) as err:
            oai.chat.completions.create(model="local", messages=OPENAI_MESSAGES)
    assert err.value.status_code == 401
    assert err.value.code == "invalid_api_key"
    row = gateway.row(err.value.response.headers["x-costfloor-request-id"])
    assert (row["outcome"], row["http_status"], row["client_key"]) == ("client_error", 401, None)

    with anthropic.Anthropic(base_url=gateway.url, api_key="sk-wrong", max_retries=0, timeout=TIMEOUT_S) as ant:
        with pytest.raises(anthropic.AuthenticationError) as err2:
            ant.messages.create(model="api", max_tokens=10, messages=ANTHROPIC_MESSAGES)
    assert err2.value.status_code == 401
    assert err2.value.body["error"]["type"] == "authentication_error"


def test_wrong_or_missing_key_via_http(http) -> None:
    body = json.dumps({"model": "api", "max_tokens": 20, "messages": ANTHROPIC_MESSAGES})
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    wrong = http.post("/v1/messages", content=body, headers={**headers, "x-api-key": KEY_A + "x"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["type"] == "authentication_error"
    missing = http.post("/v1/messages", content=body, headers=headers)
    assert missing.status_code == 401
    assert "missing" in missing.json()["error"]["message"]
