//! Non-streaming response translation, and the mapping between finish and stop reasons.

use serde_json::{json, Map, Value};

use crate::anthropic::{self, StopReason};
use crate::json::unix_now;
use crate::openai::{self, FinishReason};

/// Anthropic `stop_reason` to OpenAI `finish_reason`: `end_turn`,
/// `stop_sequence` and `pause_turn` are `stop`; `max_tokens` and
/// `model_context_window_exceeded` are `length`; `tool_use` is `tool_calls`;
/// `refusal` is `content_filter`; anything else is `stop`.
pub fn anthropic_stop_to_openai_finish(reason: &StopReason) -> FinishReason {
    match reason {
        StopReason::MaxTokens | StopReason::ModelContextWindowExceeded => FinishReason::Length,
        StopReason::ToolUse => FinishReason::ToolCalls,
        StopReason::Refusal => FinishReason::ContentFilter,
        StopReason::EndTurn
        | StopReason::StopSequence
        | StopReason::PauseTurn
        | StopReason::Other(_) => FinishReason::Stop,
    }
}

/// OpenAI `finish_reason` to Anthropic `stop_reason`: `stop` is `end_turn`
/// (OpenAI does not say whether a stop sequence matched), `length` is
/// `max_tokens`, `tool_calls` and `function_call` are `tool_use`,
/// `content_filter` is `refusal`; anything else is `end_turn`.
pub fn openai_finish_to_anthropic_stop(reason: &FinishReason) -> StopReason {
    match reason {
        FinishReason::Length => StopReason::MaxTokens,
        FinishReason::ToolCalls | FinishReason::FunctionCall => StopReason::ToolUse,
        FinishReason::ContentFilter => StopReason::Refusal,
        FinishReason::Stop | FinishReason::Other(_) => StopReason::EndTurn,
    }
}

/// Translates an Anthropic response for an OpenAI client.
///
/// Text blocks are concatenated into `content`; `tool_use` blocks become
/// `tool_calls`; other blocks (thinking, server tools) are dropped. Usage:
/// `prompt_tokens = input + cache_read + cache_write`, `cached_tokens = cache_read`.
/// `created` is the current time.
pub fn anthropic_to_openai_response(
    response: &anthropic::MessagesResponse,
    model_name_for_client: &str,
) -> openai::ChatResponse {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in &response.content {
        match block {
            anthropic::ContentBlock::Text {
                text: block_text, ..
            } => text.push_str(block_text),
            anthropic::ContentBlock::ToolUse {
                id, name, input, ..
            } => tool_calls.push(json!({
                "id": id,
                "type": "function",
                "function": { "name": name, "arguments": input.to_string() },
            })),
            _ => {}
        }
    }
    let content = (!text.is_empty() || tool_calls.is_empty()).then_some(text);
    let finish_reason = response
        .stop_reason
        .as_ref()
        .map(anthropic_stop_to_openai_finish)
        .unwrap_or(FinishReason::Stop);
    openai::ChatResponse {
        id: response.id.clone(),
        object: openai::CHAT_COMPLETION_OBJECT.to_owned(),
        created: unix_now(),
        model: model_name_for_client.to_owned(),
        choices: vec![openai::Choice {
            index: 0,
            message: openai::ResponseMessage {
                role: "assistant".to_owned(),
                content,
                refusal: None,
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                extra: Map::new(),
            },
            logprobs: None,
            finish_reason: Some(finish_reason),
            extra: Map::new(),
        }],
        usage: Some(openai::Usage::from_token_usage(
            &response.usage.to_token_usage(),
        )),
        extra: Map::new(),
    }
}

/// Translates an OpenAI response (its first choice) for an Anthropic client.
///
/// `content` becomes one text block (none when empty); `tool_calls` become
/// `tool_use` blocks. Usage: `input = prompt_tokens - cached_tokens`,
/// `cache_read = cached_tokens`, `cache_creation = 0`. A response without
/// usage reports zeros.
pub fn openai_to_anthropic_response(
    response: &openai::ChatResponse,
    model_name_for_client: &str,
) -> anthropic::MessagesResponse {
    let choice = response.first_choice();
    let mut content = Vec::new();
    let mut stop_reason = StopReason::EndTurn;
    if let Some(choice) = choice {
        if let Some(text) = choice
            .message
            .content
            .as_deref()
            .filter(|text| !text.is_empty())
        {
            content.push(anthropic::ContentBlock::text(text));
        }
        for call in choice.message.tool_calls.iter().flatten() {
            content.push(tool_call_to_tool_use(call));
        }
        if let Some(reason) = &choice.finish_reason {
            stop_reason = openai_finish_to_anthropic_stop(reason);
        }
    }
    let usage = response
        .usage
        .as_ref()
        .map(openai::Usage::to_token_usage)
        .unwrap_or_default();
    anthropic::MessagesResponse {
        id: response.id.clone(),
        content,
        model: model_name_for_client.to_owned(),
        stop_reason: Some(stop_reason),
        stop_sequence: None,
        usage: anthropic::Usage::from_token_usage(&usage),
        ..anthropic::MessagesResponse::default()
    }
}

/// An OpenAI `tool_calls` entry as an Anthropic `tool_use` block. Arguments
/// that are not JSON are kept as a JSON string.
fn tool_call_to_tool_use(call: &Value) -> anthropic::ContentBlock {
    let text_field =
        |value: Option<&Value>| value.and_then(Value::as_str).unwrap_or_default().to_owned();
    let function = call.get("function");
    let arguments = function.and_then(|function| function.get("arguments"));
    let input = match arguments {
        Some(Value::String(text)) => {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()))
        }
        Some(other) => other.clone(),
        None => Value::Object(Map::new()),
    };
    anthropic::ContentBlock::ToolUse {
        id: text_field(call.get("id")),
        name: text_field(function.and_then(|function| function.get("name"))),
        input,
        extra: Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::TokenUsage;

    #[test]
    fn stop_and_finish_reason_tables() {
        for (stop, finish) in [
            (StopReason::EndTurn, FinishReason::Stop),
            (StopReason::StopSequence, FinishReason::Stop),
            (StopReason::PauseTurn, FinishReason::Stop),
            (StopReason::MaxTokens, FinishReason::Length),
            (StopReason::ModelContextWindowExceeded, FinishReason::Length),
            (StopReason::ToolUse, FinishReason::ToolCalls),
            (StopReason::Refusal, FinishReason::ContentFilter),
            (StopReason::Other("new".into()), FinishReason::Stop),
        ] {
            assert_eq!(anthropic_stop_to_openai_finish(&stop), finish, "{stop}");
        }
        for (finish, stop) in [
            (FinishReason::Stop, StopReason::EndTurn),
            (FinishReason::Length, StopReason::MaxTokens),
            (FinishReason::ToolCalls, StopReason::ToolUse),
            (FinishReason::FunctionCall, StopReason::ToolUse),
            (FinishReason::ContentFilter, StopReason::Refusal),
            (FinishReason::Other("eos".into()), StopReason::EndTurn),
        ] {
            assert_eq!(openai_finish_to_anthropic_stop(&finish), stop, "{finish}");
        }
    }

    #[test]
    fn anthropic_response_to_openai_with_cache_usage() {
        let response: anthropic::MessagesResponse = serde_json::from_value(json!({
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "...", "signature": "s"},
                {"type": "text", "text": "Hello"},
                {"type": "text", "text": ", world"}
            ],
            "model": "claude-sonnet-4-5-20250929",
            "stop_reason": "max_tokens",
            "stop_sequence": null,
            "usage": {"input_tokens": 10, "cache_creation_input_tokens": 20,
                      "cache_read_input_tokens": 100, "output_tokens": 5}
        }))
        .unwrap();
        let translated = anthropic_to_openai_response(&response, "fast");
        let mut value = serde_json::to_value(&translated).unwrap();
        assert!(value["created"].as_u64().unwrap() > 1_700_000_000);
        value["created"] = json!(0);
        assert_eq!(
            value,
            json!({
                "id": "msg_1",
                "object": "chat.completion",
                "created": 0,
                "model": "fast",
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello, world", "refusal": null},
                    "logprobs": null,
                    "finish_reason": "length"
                }],
                "usage": {"prompt_tokens": 130, "completion_tokens": 5, "total_tokens": 135,
                          "prompt_tokens_details": {"cached_tokens": 100}}
            })
        );
    }

    #[test]
    fn anthropic_tool_use_becomes_tool_calls_with_null_content() {
        let response: anthropic::MessagesResponse = serde_json::from_value(json!({
            "id": "msg_2", "type": "message", "role": "assistant", "model": "m",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 1, "output_tokens": 2}
        }))
        .unwrap();
        let translated = anthropic_to_openai_response(&response, "m");
        let message = &translated.choices[0].message;
        assert_eq!(message.content, None);
        assert_eq!(
            message.tool_calls,
            Some(vec![json!({"id": "toolu_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}})])
        );
        assert_eq!(
            translated.choices[0].finish_reason,
            Some(FinishReason::ToolCalls)
        );
    }

    #[test]
    fn openai_response_to_anthropic_with_cached_tokens() {
        let response: openai::ChatResponse = serde_json::from_value(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there", "refusal": null},
                         "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
                      "prompt_tokens_details": {"cached_tokens": 1920}}
        }))
        .unwrap();
        let translated = openai_to_anthropic_response(&response, "claude-compatible");
        assert_eq!(
            serde_json::to_value(&translated).unwrap(),
            json!({
                "id": "chatcmpl-1",
                "type": "message",
                "role": "assistant",
                "content": [{"type": "text", "text": "Hi there"}],
                "model": "claude-compatible",
                "stop_reason": "end_turn",
                "stop_sequence": null,
                "usage": {"input_tokens": 86, "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 1920, "output_tokens": 300}
            })
        );
    }

    #[test]
    fn openai_response_without_usage_or_choices() {
        let response: openai::ChatResponse =
            serde_json::from_value(json!({"id": "x", "choices": []})).unwrap();
        let translated = openai_to_anthropic_response(&response, "m");
        assert!(translated.content.is_empty());
        assert_eq!(translated.stop_reason, Some(StopReason::EndTurn));
        assert_eq!(translated.usage.to_token_usage(), TokenUsage::default());
    }

    #[test]
    fn openai_tool_calls_become_tool_use_blocks() {
        let response: openai::ChatResponse = serde_json::from_value(json!({
            "id": "x",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "not json"}}
                ]}}]
        }))
        .unwrap();
        let translated = openai_to_anthropic_response(&response, "m");
        assert_eq!(
            serde_json::to_value(&translated.content).unwrap(),
            json!([
                {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
                {"type": "tool_use", "id": "call_2", "name": "g", "input": "not json"}
            ])
        );
        assert_eq!(translated.stop_reason, Some(StopReason::ToolUse));
    }

    #[test]
    fn usage_survives_a_round_trip_through_both_formats() {
        let neutral = TokenUsage {
            input_tokens: 7,
            output_tokens: 3,
            cache_read_tokens: 50,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
        };
        let anthropic_response = anthropic::MessagesResponse {
            content: vec![anthropic::ContentBlock::text("x")],
            usage: anthropic::Usage::from_token_usage(&neutral),
            ..anthropic::MessagesResponse::default()
        };
        let openai_response = anthropic_to_openai_response(&anthropic_response, "m");
        let back = openai_to_anthropic_response(&openai_response, "m");
        assert_eq!(back.usage.to_token_usage(), neutral);
    }
}
