"""Drives `costfloor sim` with the official `openai` and `anthropic` Python SDKs.

The SDKs parse responses into typed objects and raise typed errors, so these tests
check that the simulator's wire format is the one the vendors' own clients expect.
Token counts follow the simulator's documented rules: a token is a whitespace word,
each message (and an Anthropic `system`) costs 4 + its words, and the output is
`min(max_tokens, --output-tokens)` words.
"""

from __future__ import annotations

import pytest

# The official SDKs are required (scripts/setup-python.sh installs them): a missing one
# fails the run instead of skipping it.
import anthropic  # noqa: E402
import openai  # noqa: E402

OUTPUT_TOKENS = 12
SYSTEM = "You are terse."
QUESTION = "Say hello to the world"


def words(text: str) -> int:
    return len(text.split())


def input_tokens(*texts: str) -> int:
    return sum(4 + words(t) for t in texts)


@pytest.fixture(scope="module")
def sim_url(start_process) -> str:
    _, url = start_process(
        ["sim", "--ttft-ms", "5", "--token-delay-ms", "1", "--output-tokens", str(OUTPUT_TOKENS)]
    )
    return url


@pytest.fixture
def oai(sim_url: str):
    return openai.OpenAI(base_url=f"{sim_url}/v1", api_key="sk-test", max_retries=0, timeout=20)


@pytest.fixture
def ant(sim_url: str):
    return anthropic.Anthropic(base_url=sim_url, api_key="sk-ant-test", max_retries=0, timeout=20)


OPENAI_MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
ANTHROPIC_MESSAGES = [{"role": "user", "content": QUESTION}]


# --- OpenAI -------------------------------------------------------------------------


def test_openai_non_streaming(oai) -> None:
    r = oai.chat.completions.create(model="gpt-4o-mini", messages=OPENAI_MESSAGES)
    assert r.object == "chat.completion"
    assert r.id.startswith("chatcmpl-")
    assert r.model == "gpt-4o-mini"
    choice = r.choices[0]
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert words(choice.message.content) == OUTPUT_TOKENS
    assert r.usage.completion_tokens == OUTPUT_TOKENS
    assert r.usage.prompt_tokens == input_tokens(SYSTEM, QUESTION)
    assert r.usage.total_tokens == r.usage.prompt_tokens + OUTPUT_TOKENS
    assert r.usage.prompt_tokens_details.cached_tokens == 0


def test_openai_streaming_with_include_usage(oai) -> None:
    unary = oai.chat.completions.create(model="gpt-4o-mini", messages=OPENAI_MESSAGES)
    stream = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=OPENAI_MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    *body, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert all(c.usage is None for c in body)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert body[0].choices[0].delta.role == "assistant"
    deltas = [c.choices[0].delta.content for c in body if c.choices[0].delta.content]
    assert len(deltas) == last.usage.completion_tokens == OUTPUT_TOKENS
    assert last.usage.prompt_tokens == input_tokens(SYSTEM, QUESTION)
    assert body[-1].choices[0].finish_reason == "stop"
    assert "".join(deltas) == unary.choices[0].message.content


def test_openai_max_tokens_gives_length(oai) -> None:
    r = oai.chat.completions.create(model="gpt-4o-mini", messages=OPENAI_MESSAGES, max_tokens=3)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 3


def test_openai_rate_limit(oai) -> None:
    with pytest.raises(openai.RateLimitError) as err:
        oai.chat.completions.create(
            model="gpt-4o-mini",
            messages=OPENAI_MESSAGES,
            extra_headers={"x-sim-fault": "rate_limit;retry_after_s=2"},
        )
    assert err.value.status_code == 429
    assert err.value.response.headers["retry-after"] == "2"
    assert err.value.code == "rate_limit_exceeded"


def test_openai_overloaded_is_503(oai) -> None:
    with pytest.raises(openai.InternalServerError) as err:
        oai.chat.completions.create(
            model="gpt-4o-mini", messages=OPENAI_MESSAGES, extra_headers={"x-sim-fault": "overloaded"}
        )
    assert err.value.status_code == 503


def test_openai_error_mid_stream(oai) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=OPENAI_MESSAGES,
        stream=True,
        extra_headers={"x-sim-fault": "error_event_mid_stream;after_tokens=2"},
    )
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk)
    # The role chunk and two tokens came before the error.
    assert len(received) == 3


def test_openai_reset_mid_stream(oai) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=OPENAI_MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-sim-fault": "reset_mid_stream;after_tokens=4"},
    )
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 5
    assert all(c.usage is None for c in received)


# --- Anthropic ----------------------------------------------------------------------


def test_anthropic_non_streaming(ant) -> None:
    m = ant.messages.create(
        model="claude-haiku-4-5", max_tokens=100, system=SYSTEM, messages=ANTHROPIC_MESSAGES
    )
    assert m.type == "message"
    assert m.id.startswith("msg_")
    assert m.role == "assistant"
    assert m.model == "claude-haiku-4-5"
    assert m.stop_reason == "end_turn"
    assert m.stop_sequence is None
    assert m.content[0].type == "text"
    assert words(m.content[0].text) == OUTPUT_TOKENS
    assert m.usage.output_tokens == OUTPUT_TOKENS
    assert m.usage.input_tokens == input_tokens(SYSTEM, QUESTION)
    assert m.usage.cache_creation_input_tokens == 0
    assert m.usage.cache_read_input_tokens == 0


def test_anthropic_streaming_final_message(ant) -> None:
    with ant.messages.stream(
        model="claude-haiku-4-5", max_tokens=100, system=SYSTEM, messages=ANTHROPIC_MESSAGES
    ) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == final.content[0].text
    assert len(texts) == final.usage.output_tokens == OUTPUT_TOKENS
    assert final.usage.input_tokens == input_tokens(SYSTEM, QUESTION)
    assert final.stop_reason == "end_turn"


def test_anthropic_max_tokens_and_stop_sequence(ant) -> None:
    m = ant.messages.create(model="claude-haiku-4-5", max_tokens=4, messages=ANTHROPIC_MESSAGES)
    assert m.stop_reason == "max_tokens"
    assert m.usage.output_tokens == 4
    full = ant.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=ANTHROPIC_MESSAGES)
    ws = full.content[0].text.split(" ")
    cut = ws.index(ws[5])
    with ant.messages.stream(
        model="claude-haiku-4-5", max_tokens=100, messages=ANTHROPIC_MESSAGES, stop_sequences=[ws[5]]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "stop_sequence"
    assert final.stop_sequence == ws[5]
    assert final.usage.output_tokens == cut


def test_anthropic_prompt_cache(ant) -> None:
    text = "A long and stable system prompt kept for the caching test"
    system = [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]
    first = ant.messages.create(
        model="claude-haiku-4-5", max_tokens=10, system=system, messages=[{"role": "user", "content": "first"}]
    )
    second = ant.messages.create(
        model="claude-haiku-4-5", max_tokens=10, system=system, messages=[{"role": "user", "content": "second"}]
    )
    prefix = input_tokens(text)
    assert first.usage.cache_creation_input_tokens == prefix
    assert first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.cache_read_input_tokens == prefix
    assert second.usage.input_tokens == input_tokens("second")


def test_same_conversation_same_output_in_both_formats(oai, ant) -> None:
    o = oai.chat.completions.create(model="gpt-4o", messages=OPENAI_MESSAGES)
    a = ant.messages.create(model="claude-haiku-4-5", max_tokens=100, system=SYSTEM, messages=ANTHROPIC_MESSAGES)
    assert a.content[0].text == o.choices[0].message.content
    assert a.usage.input_tokens == o.usage.prompt_tokens


def test_anthropic_rate_limit(ant) -> None:
    with pytest.raises(anthropic.RateLimitError) as err:
        ant.messages.create(
            model="claude-haiku-4-5",
            max_tokens=10,
            messages=ANTHROPIC_MESSAGES,
            extra_headers={"x-sim-fault": "rate_limit"},
        )
    assert err.value.status_code == 429
    assert err.value.response.headers["retry-after"] == "1"
    assert err.value.body["error"]["type"] == "rate_limit_error"


def test_anthropic_overloaded_is_529(ant) -> None:
    with pytest.raises(anthropic.InternalServerError) as err:
        ant.messages.create(
            model="claude-haiku-4-5",
            max_tokens=10,
            messages=ANTHROPIC_MESSAGES,
            extra_headers={"x-sim-fault": "overloaded"},
        )
    assert err.value.status_code == 529
    assert err.value.body["error"]["type"] == "overloaded_error"


def test_anthropic_error_event_mid_stream(ant) -> None:
    texts = []
    with pytest.raises(anthropic.APIStatusError) as err:
        with ant.messages.stream(
            model="claude-haiku-4-5",
            max_tokens=100,
            messages=ANTHROPIC_MESSAGES,
            extra_headers={"x-sim-fault": "error_event_mid_stream;after_tokens=3"},
        ) as stream:
            for text in stream.text_stream:
                texts.append(text)
    assert len(texts) == 3
    assert err.value.body["error"]["type"] == "overloaded_error"


def test_anthropic_rejects_a_system_role_message(ant) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        ant.messages.create(
            model="claude-haiku-4-5",
            max_tokens=10,
            messages=[{"role": "system", "content": SYSTEM}, *ANTHROPIC_MESSAGES],
        )
    assert err.value.body["error"]["type"] == "invalid_request_error"
