//! Tests of the Responses translation: requests read into chat, chat completions and
//! chat streams written back as `response` objects and Responses events.

use serde_json::{json, Value};

use super::*;
use crate::openai::ChatChunk;
use crate::sse::SseParser;

fn parse(body: Value) -> Result<ResponsesRequest, String> {
    parse_request(&serde_json::to_vec(&body).unwrap())
}

#[test]
fn a_string_input_with_instructions_is_a_system_and_a_user_message() {
    let request = parse(json!({
        "model": "local", "instructions": "Be brief.", "input": "Hi",
        "max_output_tokens": 64, "temperature": 0.2, "stream": true, "store": false,
        "metadata": {"task": "chat"}, "truncation": "disabled", "include": []
    }))
    .unwrap();
    let chat = serde_json::to_value(&request.chat).unwrap();
    assert_eq!(
        chat,
        json!({"model": "local", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
               "max_tokens": 64, "temperature": 0.2, "stream": true, "metadata": {"task": "chat"}})
    );
    assert_eq!(request.echo.instructions.as_deref(), Some("Be brief."));
    assert_eq!(request.echo.tool_choice, json!("auto"));
}

/// The item list of a function-calling turn, as OpenAI's function-calling guide
/// builds it: the user's message, the model's `function_call` items fed back, and a
/// `function_call_output` for each.
#[test]
fn function_call_items_become_tool_calls_and_tool_messages() {
    let request = parse(json!({
        "model": "m",
        "input": [
            {"role": "user", "content": [
                {"type": "input_text", "text": "Weather?"},
                {"type": "input_image", "image_url": "https://example.com/map.png", "detail": "low"}
            ]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "18C"}
        ],
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true}],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "parallel_tool_calls": false
    }))
    .unwrap();
    let chat = serde_json::to_value(&request.chat).unwrap();
    assert_eq!(
        chat["messages"],
        json!([
            {"role": "user", "content": [
                {"type": "text", "text": "Weather?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/map.png", "detail": "low"}}
            ]},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
            ]},
            {"role": "tool", "content": "18C", "tool_call_id": "call_1"}
        ])
    );
    assert_eq!(
        chat["tools"],
        json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true}}])
    );
    assert_eq!(
        chat["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );
    assert_eq!(chat["parallel_tool_calls"], json!(false));
    assert_eq!(request.echo.tools.len(), 1);
}

/// What only OpenAI's servers can do is noted, for a Responses backend to take and any
/// other backend to refuse naming it; malformed requests are refused at once.
#[test]
fn refusals_name_the_field_and_why() {
    let untranslatable = [
        "previous_response_id: needs the earlier response",
        "store: `store: true`",
        "conversation:",
        "background:",
        "text.format.type",
        "tools[0].type: `file_search`",
        "input[0].type: `computer_call` items",
        "file_id",
        "input[0].call_id: `x`",
        "frobnicate:",
    ];
    for (fields, needle) in [
        (
            json!({"previous_response_id": "resp_1"}),
            "previous_response_id: needs the earlier response",
        ),
        (json!({"store": true}), "store: `store: true`"),
        (json!({"conversation": "conv_1"}), "conversation:"),
        (json!({"background": true}), "background:"),
        (
            json!({"text": {"format": {"type": "json_schema"}}}),
            "text.format.type",
        ),
        (
            json!({"tools": [{"type": "file_search"}]}),
            "tools[0].type: `file_search`",
        ),
        (
            json!({"tools": [{"type": "function", "name": "f", "parameters": {"type": "array"}}]}),
            "tools[0].parameters",
        ),
        (json!({"max_output_tokens": 8}), "max_output_tokens: 8"),
        (
            json!({"input": [{"type": "computer_call", "id": "c"}]}),
            "input[0].type: `computer_call` items",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
            "input[0].content[0].type",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]}),
            "file_id",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:image/png;base64,%%"}]}]}),
            "input[0].content[0].image_url",
        ),
        (
            json!({"input": [{"type": "function_call_output", "call_id": "x", "output": "1"}]}),
            "input[0].call_id: `x`",
        ),
        (
            json!({"input": [{"role": "tool", "content": "x"}]}),
            "input[0].role",
        ),
        (json!({"input": null}), "input: Field required"),
        (json!({"frobnicate": 1}), "frobnicate:"),
    ] {
        let mut body = json!({"model": "m", "input": "hi"});
        for (key, value) in fields.as_object().unwrap() {
            body[key] = value.clone();
        }
        let error = match parse(body) {
            Err(error) => {
                assert!(
                    !untranslatable.contains(&needle),
                    "{needle} is noted, not refused at once"
                );
                error
            }
            Ok(request) => {
                assert!(
                    untranslatable.contains(&needle),
                    "{needle}: accepted without a note"
                );
                request.untranslatable.unwrap()
            }
        };
        assert!(error.contains(needle), "{needle}: {error}");
    }
}

fn chat_response(finish: &str) -> openai::ChatResponse {
    serde_json::from_value(json!({
        "id": "chatcmpl-abc", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": "Hello there",
            "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}]
    }))
    .unwrap()
}

#[test]
fn a_chat_completion_becomes_a_response_with_its_usage() {
    let usage = TokenUsage {
        input_tokens: 10,
        cache_read_tokens: 30,
        cache_write_tokens: 5,
        output_tokens: 7,
        ..TokenUsage::default()
    };
    let echo = Echo {
        model: "local".into(),
        parallel_tool_calls: true,
        tool_choice: json!("auto"),
        ..Echo::default()
    };
    let response = from_chat_response(&chat_response("tool_calls"), &usage, &echo);
    assert_eq!(response["object"], "response");
    assert_eq!(response["status"], "completed");
    assert_eq!(response["model"], "local");
    assert_eq!(
        response["output"][0]["content"][0],
        json!({"type": "output_text", "text": "Hello there", "annotations": [], "logprobs": []})
    );
    assert_eq!(response["output"][1]["type"], "function_call");
    assert_eq!(response["output"][1]["call_id"], "call_9");
    assert_eq!(
        response["usage"],
        json!({"input_tokens": 45, "input_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 5},
               "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 52})
    );
    let cut = from_chat_response(&chat_response("length"), &usage, &echo);
    assert_eq!(cut["status"], "incomplete");
    assert_eq!(
        cut["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    let body = serde_json::to_vec(&response).unwrap();
    assert_eq!(output_text(&body).as_deref(), Some("Hello there"));
}

fn chunk(value: Value) -> ChatChunk {
    serde_json::from_value(value).unwrap()
}

fn delta(delta: Value, finish: Value) -> ChatChunk {
    chunk(
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
    )
}

/// The events of frames, as (type, payload), checking each frame's `event:` name
/// matches its `type` and the sequence numbers count up from 0.
fn events(frames: &[bytes::Bytes]) -> Vec<(String, Value)> {
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    for frame in frames {
        for event in parser.feed(frame) {
            let payload: Value = serde_json::from_str(&event.data).unwrap();
            assert_eq!(event.event.as_deref(), payload["type"].as_str());
            assert_eq!(payload["sequence_number"], out.len() as u64);
            out.push((event.event.unwrap(), payload));
        }
    }
    out
}

#[test]
fn a_chat_stream_becomes_responses_events() {
    let echo = Echo {
        model: "local".into(),
        ..Echo::default()
    };
    let mut stream = ResponsesStream::new("0193-abc", 1_700_000_000, echo);
    let mut frames = Vec::new();
    for c in [
        delta(json!({"role": "assistant", "content": ""}), Value::Null),
        delta(json!({"content": "Hel"}), Value::Null),
        delta(json!({"content": "lo"}), Value::Null),
        delta(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
            Value::Null,
        ),
        delta(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}),
            Value::Null,
        ),
        delta(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
            Value::Null,
        ),
        delta(json!({}), json!("tool_calls")),
    ] {
        frames.extend(stream.on_chunk(&c, None));
    }
    assert!(!stream.is_done(), "the usage is still to come");
    let usage_chunk = chunk(
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
        "usage": {"prompt_tokens": 20, "completion_tokens": 6, "total_tokens": 26}}),
    );
    let usage = usage_chunk
        .usage
        .as_ref()
        .map(openai::Usage::to_token_usage);
    frames.extend(stream.on_chunk(&usage_chunk, usage));
    assert!(stream.is_done());
    let events = events(&frames);
    let kinds: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let (_, done_text) = &events[6];
    assert_eq!(done_text["text"], "Hello");
    let (_, arguments) = &events[12];
    assert_eq!(arguments["arguments"], "{\"a\":1}");
    assert_eq!(arguments["output_index"], 1);
    let (_, completed) = events.last().unwrap();
    let response = &completed["response"];
    assert_eq!(response["status"], "completed");
    assert_eq!(response["id"], "resp_0193abc");
    assert_eq!(response["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(response["output"][1]["call_id"], "call_1");
    assert_eq!(response["usage"]["input_tokens"], 20);
    assert_eq!(response["usage"]["output_tokens"], 6);
    assert_eq!(stream.text(), "Hello");
}

#[test]
fn a_failed_stream_ends_with_error_and_response_failed() {
    let mut stream = ResponsesStream::new("r", 1, Echo::default());
    let mut frames = stream.on_chunk(&delta(json!({"content": "x"}), Value::Null), None);
    frames.extend(stream.fail(crate::ApiErrorKind::Overloaded, "upstream overloaded"));
    assert!(stream
        .fail(crate::ApiErrorKind::Overloaded, "again")
        .is_empty());
    let events = events(&frames);
    let (kind, error) = &events[events.len() - 2];
    assert_eq!(kind, "error");
    assert_eq!(error["message"], "upstream overloaded");
    let (kind, failed) = events.last().unwrap();
    assert_eq!(kind, "response.failed");
    assert_eq!(failed["response"]["status"], "failed");
    assert_eq!(
        failed["response"]["error"]["message"],
        "upstream overloaded"
    );
}

#[test]
fn a_stream_cut_at_the_output_limit_is_incomplete() {
    let mut stream = ResponsesStream::new("r", 1, Echo::default());
    let mut frames = stream.on_chunk(&delta(json!({"content": "x"}), json!("length")), None);
    frames.extend(stream.finish(TokenUsage {
        input_tokens: 3,
        output_tokens: 1,
        ..TokenUsage::default()
    }));
    let (kind, event) = events(&frames).pop().unwrap();
    assert_eq!(kind, "response.incomplete");
    assert_eq!(
        event["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
    assert_eq!(event["response"]["usage"]["input_tokens"], 3);
}
