"""Tool use and images through `costfloor serve`, with the official `openai` and
`anthropic` SDKs unchanged, against `costfloor sim` in both formats.

Every round trip is the agent loop: the model asks for a tool, the client runs it,
sends the result back, and gets the final answer. The simulator's rule is known
(crates/sim/src/tools.rs): it calls every offered tool named in the last user
message (or the named `tool_choice`), fills each string property with "sim", and
once the conversation ends in tool results it answers `Tool results: <their text>`.
A call costs the words of its arguments plus one output token.

`local` routes to an OpenAI-compatible backend and `api` to an Anthropic one, so each
SDK is tested against its own format and against the other, through translation.
"""

from __future__ import annotations

import json

import pytest

import anthropic
import openai
from conftest import free_port
from openai.lib.streaming.chat import ChatCompletionStreamState

TIMEOUT_S = 30
KEY = "sk-costfloor-tools-5d1a"

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name"}},
    "required": ["city"],
}
TIME_SCHEMA = {"type": "object", "properties": {"tz": {"type": "string"}}}
OPENAI_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city", "parameters": WEATHER_SCHEMA}},
    {"type": "function", "function": {"name": "get_time", "description": "Local time", "parameters": TIME_SCHEMA}},
]
ANTHROPIC_TOOLS = [
    {"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER_SCHEMA},
    {"name": "get_time", "description": "Local time", "input_schema": TIME_SCHEMA},
]
ASK_ONE = "What is the weather in Paris? Use get_weather."
ASK_BOTH = "Use get_weather and get_time for Paris."
RESULTS = {"get_weather": "18C and sunny", "get_time": "14:05"}
# {"city":"sim"} and {"tz":"sim"} are one word each: 1 + 1 for the name.
TOKENS_PER_CALL = 2
# A 1x1 PNG.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
MEDIA_TOKENS = 85  # crates/sim/src/tools.rs: MEDIA_TOKENS


@pytest.fixture(scope="module")
def sim(module_launcher):
    return module_launcher.sim(output_tokens=8)


@pytest.fixture(scope="module")
def gateway(module_launcher, sim):
    return module_launcher.gateway(
        client_keys=[{"name": "agents", "secret_env": "AGENTS_KEY"}],
        backends=[
            {"name": "selfhosted", "type": "openai_compatible", "base_url": f"{sim.url}/v1", "model": "sim-llama",
             "deployment": "llama-3.3-70b-4xa100"},
            {"name": "claude", "type": "anthropic", "base_url": sim.url, "model": "claude-haiku-4-5",
             "price": "claude-haiku-4.5"},
            # OpenAI's Responses API itself: Responses clients pass through, state included.
            {"name": "openai-responses", "type": "openai_responses", "base_url": f"{sim.url}/v1",
             "model": "gpt-4.1-mini", "price": "gpt-4.1-mini"},
            # A server with no tokenizer endpoint at all (nothing listens there).
            {"name": "silent", "type": "openai_compatible", "base_url": f"http://127.0.0.1:{free_port()}/v1",
             "model": "silent-llama", "deployment": "llama-3.3-70b-4xa100"},
        ],
        routes=[
            {"name": "local", "models": ["local"], "targets": ["selfhosted"], "reference_api": "claude-haiku-4.5"},
            {"name": "api", "models": ["api"], "targets": ["claude"]},
            {"name": "silent", "models": ["silent"], "targets": ["silent"]},
            {"name": "stateful", "models": ["stateful"], "targets": ["openai-responses"]},
        ],
        env={"AGENTS_KEY": KEY},
    )


@pytest.fixture
def oai(gateway):
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0, timeout=TIMEOUT_S) as client:
        yield client


@pytest.fixture
def ant(gateway):
    with anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0, timeout=TIMEOUT_S) as client:
        yield client


def openai_turn(client, model: str, messages: list, stream: bool, **extra):  # noqa: ANN001
    """One chat completion, whole or streamed (accumulated by the SDK's own helper),
    and its request id."""
    if not stream:
        raw = client.chat.completions.with_raw_response.create(model=model, messages=messages, tools=OPENAI_TOOLS, **extra)
        return raw.parse(), raw.headers["x-costfloor-request-id"]
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=messages, tools=OPENAI_TOOLS, stream=True, stream_options={"include_usage": True}, **extra
    )
    state = ChatCompletionStreamState(input_tools=OPENAI_TOOLS)
    for chunk in raw.parse():
        state.handle_chunk(chunk)
    return state.get_final_completion(), raw.headers["x-costfloor-request-id"]


def anthropic_turn(client, model: str, messages: list, stream: bool, **extra):  # noqa: ANN001
    if not stream:
        raw = client.messages.with_raw_response.create(
            model=model, max_tokens=200, messages=messages, tools=ANTHROPIC_TOOLS, **extra
        )
        return raw.parse(), raw.headers["x-costfloor-request-id"]
    with client.messages.stream(model=model, max_tokens=200, messages=messages, tools=ANTHROPIC_TOOLS, **extra) as s:
        request_id = s.response.headers["x-costfloor-request-id"]
        return s.get_final_message(), request_id


def assert_row(gateway, request_id: str, *, input_tokens: int, output_tokens: int) -> None:  # noqa: ANN001
    row = gateway.row(request_id)
    assert row["outcome"] == "success", row
    # No `server.replica` here: the host's name (gateway::row::replica_name).
    assert row["replica"], row
    assert row["input_tokens"] + row["cache_read_tokens"] + row["cache_write_tokens"] == input_tokens
    assert row["output_tokens"] == output_tokens
    assert row["estimated"] == 0


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", ["local", "api"])
def test_openai_sdk_tool_round_trip(oai, gateway, model: str, stream: bool) -> None:
    messages = [{"role": "user", "content": ASK_BOTH}]
    first, request_id = openai_turn(oai, model, messages, stream)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"], "both tools, in order: parallel calls"
    assert json.loads(calls[0].function.arguments) == {"city": "sim"}
    assert json.loads(calls[1].function.arguments) == {"tz": "sim"}
    assert len({c.id for c in calls}) == 2 and all(c.id for c in calls)
    assert first.usage.completion_tokens == 2 * TOKENS_PER_CALL
    assert_row(gateway, request_id, input_tokens=first.usage.prompt_tokens, output_tokens=2 * TOKENS_PER_CALL)

    messages.append(choice.message.model_dump(exclude_none=True))
    for call in calls:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": RESULTS[call.function.name]})
    final, request_id = openai_turn(oai, model, messages, stream)
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "Tool results: 18C and sunny 14:05"
    assert not final.choices[0].message.tool_calls
    assert_row(gateway, request_id, input_tokens=final.usage.prompt_tokens, output_tokens=final.usage.completion_tokens)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", ["local", "api"])
def test_anthropic_sdk_tool_round_trip(ant, gateway, model: str, stream: bool) -> None:
    messages = [{"role": "user", "content": ASK_BOTH}]
    first, request_id = anthropic_turn(ant, model, messages, stream)
    assert first.stop_reason == "tool_use"
    uses = [b for b in first.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [("get_weather", {"city": "sim"}), ("get_time", {"tz": "sim"})]
    assert all(b.type != "text" or b.text for b in first.content), "no empty text block comes back"
    assert first.usage.output_tokens == 2 * TOKENS_PER_CALL
    input_total = first.usage.input_tokens + (first.usage.cache_read_input_tokens or 0) + (
        first.usage.cache_creation_input_tokens or 0
    )
    assert_row(gateway, request_id, input_tokens=input_total, output_tokens=2 * TOKENS_PER_CALL)

    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]})
    messages.append({
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": uses[0].id, "content": RESULTS["get_weather"]},
            {"type": "tool_result", "tool_use_id": uses[1].id, "content": [{"type": "text", "text": "no clock"}], "is_error": True},
        ],
    })
    final, _ = anthropic_turn(ant, model, messages, stream)
    assert final.stop_reason == "end_turn"
    # The error flag reaches an OpenAI backend as the text's prefix (wire::translate::tools).
    expected = "Tool results: 18C and sunny " + ("Error: no clock" if model == "local" else "no clock")
    assert [b.text for b in final.content if b.type == "text"] == [expected]


@pytest.mark.parametrize("model", ["local", "api"])
def test_named_tool_choice_and_no_parallel_calls(oai, ant, model: str) -> None:
    r, _ = openai_turn(
        oai, model, [{"role": "user", "content": ASK_BOTH}], False,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert [c.function.name for c in r.choices[0].message.tool_calls] == ["get_time"]
    r, _ = openai_turn(oai, model, [{"role": "user", "content": ASK_BOTH}], True, parallel_tool_calls=False)
    assert [c.function.name for c in r.choices[0].message.tool_calls] == ["get_weather"]
    m, _ = anthropic_turn(
        ant, model, [{"role": "user", "content": ASK_BOTH}], False,
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )
    assert [b.name for b in m.content if b.type == "tool_use"] == ["get_weather"]
    m, _ = anthropic_turn(ant, model, [{"role": "user", "content": ASK_ONE}], False, tool_choice={"type": "none"})
    assert m.stop_reason != "tool_use" and m.content[0].type == "text"


@pytest.mark.parametrize("model", ["local", "api"])
def test_images_reach_both_backends_and_are_counted(oai, ant, model: str) -> None:
    text_only = oai.chat.completions.create(model=model, messages=[{"role": "user", "content": [{"type": "text", "text": "Describe it"}]}])
    with_image = oai.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "Describe it"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        ]}],
    )
    assert with_image.usage.prompt_tokens == text_only.usage.prompt_tokens + MEDIA_TOKENS
    m = ant.messages.create(
        model=model, max_tokens=50,
        messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
            {"type": "text", "text": "Describe it"},
        ]}],
    )
    assert m.usage.input_tokens + (m.usage.cache_read_input_tokens or 0) == text_only.usage.prompt_tokens + MEDIA_TOKENS


@pytest.mark.parametrize("model", ["local", "api"])
def test_bad_tool_and_image_input_is_a_400_in_the_clients_shape(oai, ant, model: str) -> None:
    bad_schema = [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], tools=bad_schema)
    assert "tools[0].function.parameters" in caught.value.body["message"]
    assert caught.value.body["type"] == "invalid_request_error"

    with pytest.raises(anthropic.BadRequestError) as caught:
        ant.messages.create(
            model=model, max_tokens=10, tools=ANTHROPIC_TOOLS,
            messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_nowhere", "content": "1"}]}],
        )
    error = caught.value.body["error"]
    assert error["type"] == "invalid_request_error"
    assert "toolu_nowhere" in error["message"] and "tool_use" in error["message"]

    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,not base64!"}}]}],
        )
    assert "messages[0].content[0].image_url.url" in caught.value.body["message"]

    with pytest.raises(anthropic.BadRequestError) as caught:
        ant.messages.create(
            model=model, max_tokens=10,
            messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "%%%"}}]}],
        )
    assert "messages.0.content.0.source.data" in caught.value.body["error"]["message"]


@pytest.mark.parametrize("model", ["local", "api"])
def test_count_tokens_is_what_the_backend_then_bills(ant, model: str) -> None:
    params = {"system": "You are terse.", "messages": [{"role": "user", "content": ASK_ONE}], "tools": ANTHROPIC_TOOLS}
    raw = ant.messages.with_raw_response.count_tokens(model=model, **params)
    counted = raw.parse().input_tokens
    # Anthropic's own count_tokens for `api`; the server's /tokenize of the chat for `local`.
    assert raw.headers["x-costfloor-token-count"] == "backend"
    assert raw.headers["x-costfloor-backend"] == ("claude" if model == "api" else "selfhosted")
    m = ant.messages.create(model=model, max_tokens=5, tool_choice={"type": "none"}, **params)
    assert counted == m.usage.input_tokens > 0


def test_count_tokens_without_a_tokenizer_is_an_estimate(ant) -> None:
    raw = ant.messages.with_raw_response.count_tokens(
        model="silent", messages=[{"role": "user", "content": "x" * 400}]
    )
    assert raw.headers["x-costfloor-token-count"] == "estimate"
    # wire::translate::estimate_tokens: one token per four characters.
    assert raw.parse().input_tokens == 100


def test_count_tokens_checks_the_request(ant) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        ant.messages.count_tokens(model="api", messages=[])
    assert "messages" in caught.value.body["error"]["message"]
    with pytest.raises(anthropic.NotFoundError):
        ant.messages.count_tokens(model="nope", messages=[{"role": "user", "content": "x"}])


# --- The Responses API (client.responses.create) -------------------------------------

RESPONSES_TOOLS = [
    {"type": "function", "name": "get_weather", "description": "Weather for a city", "parameters": WEATHER_SCHEMA},
    {"type": "function", "name": "get_time", "description": "Local time", "parameters": TIME_SCHEMA},
]


def responses_turn(client, model: str, stream: bool, **params):  # noqa: ANN001
    """One Responses call, whole or streamed (the SDK's own stream helper accumulates
    the events), its request id, and the event types seen."""
    if not stream:
        raw = client.responses.with_raw_response.create(model=model, **params)
        return raw.parse(), raw.headers["x-costfloor-request-id"], []
    with client.responses.stream(model=model, **params) as s:
        kinds = [event.type for event in s]
        final = s.get_final_response()
        # The SDK keeps the HTTP response of a stream as `_response` (openai/lib/streaming/responses).
        return final, s._response.headers["x-costfloor-request-id"], kinds


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", ["local", "api"])
def test_responses_text_with_usage_in_the_ledger(oai, gateway, model: str, stream: bool) -> None:
    r, request_id, kinds = responses_turn(
        oai, model, stream, instructions="You are terse.", input="Say hello to the world", max_output_tokens=64
    )
    assert r.object == "response" and r.status == "completed"
    assert r.model == model
    assert r.instructions == "You are terse."
    assert r.output[0].type == "message" and r.output[0].role == "assistant"
    text = r.output_text
    assert text and len(text.split()) == r.usage.output_tokens == 8, "the sim answers 8 words, one token each"
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert r.usage.input_tokens_details.cached_tokens == 0
    if stream:
        assert kinds[:2] == ["response.created", "response.in_progress"]
        assert kinds[-1] == "response.completed"
        assert kinds.count("response.output_text.delta") == 8
        for kind in ["response.output_item.added", "response.content_part.added", "response.output_text.done",
                     "response.content_part.done", "response.output_item.done"]:
            assert kind in kinds
    assert_row(gateway, request_id, input_tokens=r.usage.input_tokens, output_tokens=r.usage.output_tokens)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", ["local", "api"])
def test_responses_function_calls_round_trip(oai, model: str, stream: bool) -> None:
    first, _, kinds = responses_turn(oai, model, stream, input=ASK_BOTH, tools=RESPONSES_TOOLS)
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "sim"}), ("get_time", {"tz": "sim"})]
    if stream:
        assert "response.function_call_arguments.delta" in kinds
        assert "response.function_call_arguments.done" in kinds
    follow_up = [{"role": "user", "content": ASK_BOTH}]
    follow_up += [{"type": "function_call", "call_id": c.call_id, "name": c.name, "arguments": c.arguments} for c in calls]
    follow_up += [{"type": "function_call_output", "call_id": c.call_id, "output": RESULTS[c.name]} for c in calls]
    final, _, _ = responses_turn(oai, model, stream, input=follow_up, tools=RESPONSES_TOOLS)
    assert final.output_text == "Tool results: 18C and sunny 14:05"


def test_responses_that_need_server_state_or_are_malformed_are_a_400(oai) -> None:
    for params, needle in [
        ({"input": "hi", "previous_response_id": "resp_123"}, "previous_response_id"),
        ({"input": "hi", "store": True}, "store"),
        ({"input": [{"type": "reasoning", "id": "rs_1", "summary": []}]}, "input[0].type: `reasoning`"),
        ({"input": "hi", "previous_response_id": "resp_123"}, "openai_responses"),
        ({"input": [{"type": "function_call_output", "call_id": "call_9", "output": "1"}]}, "input[0].call_id"),
        ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
    ]:
        with pytest.raises(openai.BadRequestError) as caught:
            oai.responses.create(model="local", **params)
        assert needle in caught.value.body["message"], caught.value.body
        assert caught.value.body["type"] == "invalid_request_error"


def test_responses_cached_tokens_are_reported_and_priced(oai, gateway) -> None:
    # The sim caches OpenAI prompts of 1024 tokens or more, in steps of 128
    # (crates/sim/src/openai.rs: openai_cached_tokens), as OpenAI documents.
    instructions = " ".join(["policy"] * 1500)
    params = {"instructions": instructions, "input": "Summarise the policy"}
    responses_turn(oai, "local", False, **params)
    second, request_id, _ = responses_turn(oai, "local", False, **params)
    cached = second.usage.input_tokens_details.cached_tokens
    assert cached >= 1024 and (cached - 1024) % 128 == 0
    row = gateway.row(request_id)
    assert row["cache_read_tokens"] == cached
    assert row["input_tokens"] == second.usage.input_tokens - cached
    # Self-hosted, so free; the counterfactual is claude-haiku-4.5's rate card: $1 per
    # million input tokens, $0.10 per million cache reads, $5 per million output tokens.
    assert row["cost_nusd"] == 0
    assert row["counterfactual_cost_nusd"] == row["input_tokens"] * 1000 + cached * 100 + row["output_tokens"] * 5000


# gpt-4.1-mini: $0.40 per million input tokens, $0.10 cached, $1.60 output (catalog/default.toml).
MINI_INPUT_NUSD, MINI_CACHED_NUSD, MINI_OUTPUT_NUSD = 400, 100, 1600


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_responses_state_passes_through_to_a_responses_backend(oai, gateway, stream: bool) -> None:
    first, first_id, _ = responses_turn(oai, "stateful", stream, input="Remember the word orchid.", store=True)
    assert first.id.startswith("resp_") and first.output_text
    # The sim answers from the stored conversation: its tokens count as input.
    second, request_id, kinds = responses_turn(
        oai, "stateful", stream, input="Which word?", previous_response_id=first.id, store=True
    )
    assert second.usage.input_tokens > first.usage.input_tokens + 4
    if stream:
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    row = gateway.row(request_id)
    assert row["backend"] == "openai-responses" and row["outcome"] == "success" and row["estimated"] == 0
    cached = second.usage.input_tokens_details.cached_tokens
    assert row["input_tokens"] + row["cache_read_tokens"] == second.usage.input_tokens
    assert row["cache_read_tokens"] == cached
    assert row["output_tokens"] == second.usage.output_tokens
    assert row["cost_nusd"] == (row["input_tokens"] * MINI_INPUT_NUSD + cached * MINI_CACHED_NUSD
                                + row["output_tokens"] * MINI_OUTPUT_NUSD)
    assert gateway.row(first_id)["outcome"] == "success"


def test_a_responses_backend_refuses_other_clients_and_unknown_state(oai, ant) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model="stateful", messages=[{"role": "user", "content": "hi"}])
    assert "speaks only the OpenAI Responses API" in caught.value.body["message"]
    with pytest.raises(anthropic.BadRequestError):
        ant.messages.create(model="stateful", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    # The backend's own error comes back in the client's shape.
    with pytest.raises(openai.BadRequestError) as caught:
        oai.responses.create(model="stateful", input="x", previous_response_id="resp_unknown")
    assert "resp_unknown" in caught.value.body["message"]


def test_a_backend_that_takes_no_images_is_skipped_or_named(module_launcher, sim) -> None:
    gw = module_launcher.gateway(
        name="text-only",
        backends=[
            {"name": "textonly", "type": "openai_compatible", "base_url": f"{sim.url}/v1", "model": "sim-llama",
             "deployment": "llama-3.3-70b-4xa100", "inputs": ["text"]},
            {"name": "claude", "type": "anthropic", "base_url": sim.url, "model": "claude-haiku-4-5",
             "price": "claude-haiku-4.5"},
        ],
        routes=[
            {"name": "mixed", "models": ["mixed"], "targets": ["textonly", "claude"]},
            {"name": "text", "models": ["text"], "targets": ["textonly"]},
        ],
    )
    image = [{"role": "user", "content": [{"type": "text", "text": "what is it"},
                                          {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}]
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0, timeout=TIMEOUT_S) as client:
        raw = client.chat.completions.with_raw_response.create(model="mixed", messages=image)
        assert raw.headers["x-costfloor-backend"] == "claude", "the text-only backend is skipped"
        assert gw.row(raw.headers["x-costfloor-request-id"])["fallback_chain"] == "textonly:images>claude:200"
        text = client.chat.completions.with_raw_response.create(model="mixed", messages=[{"role": "user", "content": "hi"}])
        assert text.headers["x-costfloor-backend"] == "textonly"
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="text", messages=image)
    message = caught.value.body["message"]
    assert "images" in message and "textonly" in message and "inputs" in message, message


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_responses_function_calls_pass_through_to_a_responses_backend(oai, stream: bool) -> None:
    first, _, kinds = responses_turn(oai, "stateful", stream, input=ASK_BOTH, tools=RESPONSES_TOOLS)
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "sim"}), ("get_time", {"tz": "sim"})]
    assert first.usage.output_tokens == 2 * TOKENS_PER_CALL
    if stream:
        assert kinds.count("response.function_call_arguments.done") == 2
    # The calls are in the stored response: only their outputs go in the next input.
    outputs = [{"type": "function_call_output", "call_id": c.call_id, "output": RESULTS[c.name]} for c in calls]
    final, _, _ = responses_turn(oai, "stateful", stream, input=outputs, previous_response_id=first.id, tools=RESPONSES_TOOLS)
    assert final.output_text == "Tool results: 18C and sunny 14:05"


def test_an_open_gateway_says_so_once_and_a_keyed_one_does_not(module_launcher, sim, gateway) -> None:
    # The module's gateway has a client key: no warning.
    assert "no client key is configured" not in gateway.service.log(tail=10**7)
    open_gateway = module_launcher.gateway(
        name="open",
        backends=[{"name": "claude", "type": "anthropic", "base_url": sim.url, "model": "claude-haiku-4-5", "price": "claude-haiku-4.5"}],
    )
    lines = [line for line in open_gateway.service.log(tail=10**7).splitlines() if "no client key is configured" in line]
    assert len(lines) == 1 and "WARN" in lines[0], lines
