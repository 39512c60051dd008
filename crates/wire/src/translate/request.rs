//! Request translation: OpenAI chat completion requests to Anthropic Messages requests and back.

use serde_json::{Map, Value};

use super::{media, tools, Unsupported};
use crate::anthropic;
use crate::openai;

/// Joins several system prompts or text blocks into one string.
const TEXT_JOINER: &str = "\n\n";

/// Translates an OpenAI request for an Anthropic backend.
///
/// - `system` and `developer` messages become the top-level `system`, joined
///   with a blank line when there are several (wherever they appear).
/// - `user` and `assistant` messages keep their order; text parts become text blocks.
/// - `max_completion_tokens`, else `max_tokens`, else `default_max_tokens`
///   becomes `max_tokens` (which Anthropic requires).
/// - `temperature` above 1.0 (OpenAI allows up to 2.0, Anthropic up to 1.0)
///   is clamped to 1.0; `top_p`, `stop`, `stream` and `user` (as
///   `metadata.user_id`) carry over; a `top_k` extension field becomes `top_k`.
/// - Fields without an Anthropic meaning that do nothing at their default
///   (`seed`, `store`, `parallel_tool_calls`, zero penalties, `n: 1`, a text
///   `response_format`, empty `tools`, `null` anything) are dropped.
///
/// Anything else is refused: image, audio and file parts, tool calls and tool
/// results, non-empty `tools`, JSON `response_format`, `n > 1`, `logprobs`,
/// non-zero penalties, `logit_bias`, and fields this function does not know.
pub fn openai_to_anthropic_request(
    request: &openai::ChatRequest,
    default_max_tokens: u32,
) -> Result<anthropic::MessagesRequest, Unsupported> {
    if let Some(choices) = request.n.filter(|&choices| choices != 1) {
        return Err(Unsupported::new(format!(
            "`n` = {choices}: Anthropic generates exactly one choice per request"
        )));
    }
    let mut top_k = None;
    let mut tools = Vec::new();
    for (key, value) in &request.extra {
        if key == "tools" && !value.is_null() {
            let Some(list) = value.as_array() else {
                return Err(Unsupported::new("`tools` must be an array"));
            };
            tools = tools::openai_tools_to_anthropic(list)?;
            continue;
        }
        if matches!(key.as_str(), "tool_choice" | "parallel_tool_calls") {
            continue;
        }
        if key == "top_k" && !value.is_null() {
            let parsed = value
                .as_u64()
                .and_then(|number| u32::try_from(number).ok())
                .ok_or_else(|| {
                    Unsupported::new(format!(
                        "`top_k` = {}: expected a non-negative integer",
                        summary(value)
                    ))
                })?;
            top_k = Some(parsed);
            continue;
        }
        check_openai_field(key, value)?;
    }
    let parallel_tool_calls = request
        .extra
        .get("parallel_tool_calls")
        .and_then(Value::as_bool);
    let tool_choice = if tools.is_empty() {
        match request.extra.get("tool_choice").and_then(Value::as_str) {
            None | Some("none" | "auto") => None,
            Some(_) => {
                return Err(Unsupported::new(
                    "`tool_choice` names or requires a tool, but `tools` is empty",
                ))
            }
        }
    } else {
        tools::openai_tool_choice_to_anthropic(
            request.extra.get("tool_choice"),
            parallel_tool_calls,
        )?
    };

    let mut system_texts = Vec::new();
    let mut messages: Vec<anthropic::Message> = Vec::with_capacity(request.messages.len());
    // Whether the last message holds the tool results of the turn before it, so
    // that the next results and the user's own words join it.
    let mut last_is_results = false;
    for (message_index, message) in request.messages.iter().enumerate() {
        check_openai_message_fields(message_index, message)?;
        match message.role.as_str() {
            "system" | "developer" => {
                system_texts.push(openai_text_only(message_index, message)?);
            }
            "assistant" => {
                last_is_results = false;
                messages.push(anthropic::Message {
                    role: message.role.clone(),
                    content: openai_assistant_to_anthropic(message_index, message)?,
                    extra: Map::new(),
                });
            }
            "user" => {
                let content = openai_content_to_anthropic(message_index, message)?;
                match messages.last_mut() {
                    Some(previous) if last_is_results => {
                        let blocks = blocks_of(&mut previous.content);
                        match content {
                            anthropic::MessageContent::Text(text) => {
                                blocks.push(anthropic::ContentBlock::text(&text))
                            }
                            anthropic::MessageContent::Blocks(more) => blocks.extend(more),
                        }
                    }
                    _ => messages.push(anthropic::Message {
                        role: message.role.clone(),
                        content,
                        extra: Map::new(),
                    }),
                }
                last_is_results = false;
            }
            "tool" => {
                let path = format!("messages[{message_index}]");
                let tool_use_id = message.tool_call_id.clone().ok_or_else(|| {
                    Unsupported::new(format!("{path}.tool_call_id is missing"))
                })?;
                let text = tools::openai_tool_message_text(&path, message.content.as_ref())?;
                let block = anthropic::ContentBlock::ToolResult {
                    tool_use_id,
                    content: Some(Value::String(text)),
                    is_error: None,
                    extra: Map::new(),
                };
                match messages.last_mut() {
                    Some(previous) if last_is_results => blocks_of(&mut previous.content).push(block),
                    _ => messages.push(anthropic::Message {
                        role: "user".to_owned(),
                        content: anthropic::MessageContent::Blocks(vec![block]),
                        extra: Map::new(),
                    }),
                }
                last_is_results = true;
            }
            "function" => {
                return Err(Unsupported::new(format!(
                    "messages[{message_index}].role = \"function\": the deprecated function-call form cannot be translated; use `tool` messages"
                )))
            }
            other => {
                return Err(Unsupported::new(format!(
                    "messages[{message_index}].role = {other:?}: expected system, developer, user or assistant"
                )))
            }
        }
    }

    let max_tokens = request
        .max_completion_tokens
        .or(request.max_tokens)
        .unwrap_or(default_max_tokens);
    let stop_sequences = request
        .stop
        .as_ref()
        .map(openai::Stop::to_vec)
        .filter(|sequences| !sequences.is_empty());
    let metadata = request
        .user
        .as_ref()
        .map(|user| serde_json::json!({ "user_id": user }));

    Ok(anthropic::MessagesRequest {
        model: request.model.clone(),
        messages,
        max_tokens: Some(max_tokens),
        system: (!system_texts.is_empty())
            .then(|| anthropic::SystemPrompt::Text(system_texts.join(TEXT_JOINER))),
        temperature: request.temperature.map(|temperature| temperature.min(1.0)),
        top_p: request.top_p,
        top_k,
        stop_sequences,
        stream: request.stream,
        metadata,
        extra: anthropic_tool_fields(tools, tool_choice),
    })
}

fn anthropic_tool_fields(tools: Vec<Value>, tool_choice: Option<Value>) -> Map<String, Value> {
    let mut extra = Map::new();
    if !tools.is_empty() {
        extra.insert("tools".to_owned(), Value::Array(tools));
        if let Some(choice) = tool_choice {
            extra.insert("tool_choice".to_owned(), choice);
        }
    }
    extra
}

/// The blocks of a message's content, turning string content into one text block.
fn blocks_of(content: &mut anthropic::MessageContent) -> &mut Vec<anthropic::ContentBlock> {
    if let anthropic::MessageContent::Text(text) = content {
        let block = anthropic::ContentBlock::text(text);
        *content = anthropic::MessageContent::Blocks(vec![block]);
    }
    match content {
        anthropic::MessageContent::Blocks(blocks) => blocks,
        anthropic::MessageContent::Text(_) => unreachable!("text content was just replaced"),
    }
}

/// An OpenAI assistant message as Anthropic content: its text, then a `tool_use`
/// block per tool call.
fn openai_assistant_to_anthropic(
    message_index: usize,
    message: &openai::Message,
) -> Result<anthropic::MessageContent, Unsupported> {
    let calls = message.tool_calls.as_deref().unwrap_or_default();
    if calls.is_empty() {
        return openai_content_to_anthropic(message_index, message);
    }
    let mut blocks = Vec::with_capacity(calls.len() + 1);
    let text = openai_text_only(message_index, message)?;
    if !text.is_empty() {
        blocks.push(anthropic::ContentBlock::text(&text));
    }
    for (call_index, call) in calls.iter().enumerate() {
        let path = format!("messages[{message_index}].tool_calls[{call_index}]");
        blocks.push(tools::openai_tool_call_to_tool_use(&path, call)?);
    }
    Ok(anthropic::MessageContent::Blocks(blocks))
}

/// Translates an Anthropic request for an OpenAI-compatible backend.
///
/// - `system` (a string, or text blocks joined with a blank line) becomes the first `system` message.
/// - Text blocks of a message are joined with a blank line into string content.
/// - `max_tokens` becomes `max_tokens` (the field OpenAI-compatible servers
///   read; `None` stays `None` for the caller to report).
/// - `temperature`, `top_p`, `stream`, `stop_sequences` (as `stop`) and
///   `metadata.user_id` (as `user`) carry over; a stream asks for
///   `stream_options.include_usage` so that its usage is not lost.
/// - `top_k` has no OpenAI field; it is sent as the `top_k` extension field,
///   which vLLM and llama.cpp read (OpenAI itself rejects it).
/// - `cache_control` and other block annotations are dropped.
///
/// Refused: image, document, tool-use, tool-result and thinking blocks,
/// non-empty `tools`, enabled `thinking`, and fields this function does not know.
pub fn anthropic_to_openai_request(
    request: &anthropic::MessagesRequest,
) -> Result<openai::ChatRequest, Unsupported> {
    let mut extra = Map::new();
    for (key, value) in &request.extra {
        match key.as_str() {
            "tools" if !value.is_null() => {
                let Some(list) = value.as_array() else {
                    return Err(Unsupported::new("`tools` must be a list"));
                };
                if !list.is_empty() {
                    let tools = tools::anthropic_tools_to_openai(list)?;
                    extra.insert("tools".to_owned(), Value::Array(tools));
                }
            }
            "tool_choice" if !value.is_null() => {}
            _ => check_anthropic_field(key, value)?,
        }
    }
    if let Some(choice) = request.extra.get("tool_choice").filter(|c| !c.is_null()) {
        let (choice, parallel) = tools::anthropic_tool_choice_to_openai(choice)?;
        if extra.contains_key("tools") {
            if let Some(choice) = choice {
                extra.insert("tool_choice".to_owned(), choice);
            }
            if let Some(parallel) = parallel {
                extra.insert("parallel_tool_calls".to_owned(), Value::Bool(parallel));
            }
        } else if !matches!(
            choice.as_ref().and_then(Value::as_str),
            Some("auto" | "none")
        ) {
            return Err(Unsupported::new(
                "`tool_choice` names or requires a tool, but `tools` is empty",
            ));
        }
    }

    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    match &request.system {
        Some(anthropic::SystemPrompt::Text(text)) if !text.is_empty() => {
            messages.push(openai::Message::text("system", text));
        }
        Some(anthropic::SystemPrompt::Blocks(blocks)) if !blocks.is_empty() => {
            let text = anthropic_blocks_text(blocks, "system")?;
            messages.push(openai::Message::text("system", &text));
        }
        _ => {}
    }
    for (message_index, message) in request.messages.iter().enumerate() {
        let path = format!("messages.{message_index}.content");
        match (message.role.as_str(), &message.content) {
            ("user" | "assistant", anthropic::MessageContent::Text(text)) => {
                messages.push(openai::Message::text(&message.role, text));
            }
            ("assistant", anthropic::MessageContent::Blocks(blocks)) => {
                messages.push(anthropic_assistant_to_openai(&path, blocks)?);
            }
            ("user", anthropic::MessageContent::Blocks(blocks)) => {
                anthropic_user_to_openai(&path, blocks, &mut messages)?;
            }
            (role, _) => {
                return Err(Unsupported::new(format!(
                    "messages[{message_index}].role = {role:?}: expected user or assistant"
                )))
            }
        }
    }

    if let Some(top_k) = request.top_k {
        extra.insert("top_k".to_owned(), Value::from(top_k));
    }
    let user = request
        .metadata
        .as_ref()
        .and_then(|metadata| metadata.get("user_id"))
        .and_then(Value::as_str)
        .map(str::to_owned);

    Ok(openai::ChatRequest {
        model: request.model.clone(),
        messages,
        max_tokens: request.max_tokens,
        temperature: request.temperature,
        top_p: request.top_p,
        stop: request
            .stop_sequences
            .as_ref()
            .filter(|sequences| !sequences.is_empty())
            .map(|sequences| openai::Stop::Many(sequences.clone())),
        stream: request.stream,
        stream_options: request.is_stream().then(|| openai::StreamOptions {
            include_usage: Some(true),
            extra: Map::new(),
        }),
        user,
        extra,
        ..openai::ChatRequest::default()
    })
}

/// An Anthropic assistant turn as one OpenAI assistant message: its text blocks
/// joined as `content`, its `tool_use` blocks as `tool_calls`.
fn anthropic_assistant_to_openai(
    path: &str,
    blocks: &[anthropic::ContentBlock],
) -> Result<openai::Message, Unsupported> {
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for (block_index, block) in blocks.iter().enumerate() {
        match block {
            anthropic::ContentBlock::Text { text, .. } => texts.push(text.as_str()),
            anthropic::ContentBlock::ToolUse {
                id, name, input, ..
            } => calls.push(tools::tool_use_to_openai_call(id, name, input)),
            other => {
                return Err(Unsupported::new(format!(
                    "{path}[{block_index}]: `{}` blocks in assistant turns have no OpenAI equivalent; text and tool_use are translated",
                    other.kind()
                )))
            }
        }
    }
    let text = texts.join(TEXT_JOINER);
    Ok(openai::Message {
        role: "assistant".to_owned(),
        // Empty rather than absent beside tool calls: chat templates of compatible
        // servers read `content` on every message (llama-cpp-python's fails without it).
        content: Some(openai::MessageContent::Text(text)),
        tool_calls: (!calls.is_empty()).then_some(calls),
        ..openai::Message::default()
    })
}

/// An Anthropic user turn as OpenAI messages: a `tool` message per `tool_result`
/// (in order, first), then a user message with the rest, as one string when it
/// is all text and as parts when it holds images or documents.
fn anthropic_user_to_openai(
    path: &str,
    blocks: &[anthropic::ContentBlock],
    messages: &mut Vec<openai::Message>,
) -> Result<(), Unsupported> {
    let mut parts = Vec::new();
    let mut all_text = true;
    for (block_index, block) in blocks.iter().enumerate() {
        let block_path = format!("{path}.{block_index}");
        match block {
            anthropic::ContentBlock::ToolResult {
                tool_use_id,
                content,
                is_error,
                ..
            } => {
                let text = tools::tool_result_text(
                    &block_path,
                    content.as_ref(),
                    is_error.unwrap_or(false),
                )?;
                messages.push(openai::Message {
                    role: "tool".to_owned(),
                    content: Some(openai::MessageContent::Text(text)),
                    tool_call_id: Some(tool_use_id.clone()),
                    ..openai::Message::default()
                });
            }
            anthropic::ContentBlock::Text { text, .. } => parts.push(openai::ContentPart::Text {
                text: text.clone(),
                extra: Map::new(),
            }),
            anthropic::ContentBlock::Image { source, extra }
            | anthropic::ContentBlock::Document { source, extra } => {
                all_text = false;
                let part = media::anthropic_media_to_openai(&block_path, block.kind(), source, extra)?;
                parts.push(openai::ContentPart::Other(part));
            }
            other => {
                return Err(Unsupported::new(format!(
                    "{path}[{block_index}]: `{}` blocks have no OpenAI equivalent here; text, image, document and tool_result are translated",
                    other.kind()
                )))
            }
        }
    }
    if parts.is_empty() {
        return Ok(());
    }
    let content = if all_text {
        let texts: Vec<&str> = parts
            .iter()
            .filter_map(|part| match part {
                openai::ContentPart::Text { text, .. } => Some(text.as_str()),
                openai::ContentPart::Other(_) => None,
            })
            .collect();
        openai::MessageContent::Text(texts.join(TEXT_JOINER))
    } else {
        openai::MessageContent::Parts(parts)
    };
    messages.push(openai::Message {
        role: "user".to_owned(),
        content: Some(content),
        ..openai::Message::default()
    });
    Ok(())
}

/// A short, single-line rendering of a JSON value for error messages.
fn summary(value: &Value) -> String {
    super::shorten(&value.to_string(), 60)
}

fn is_empty_array(value: &Value) -> bool {
    value.as_array().is_some_and(Vec::is_empty)
}

fn is_zero(value: &Value) -> bool {
    value.as_f64() == Some(0.0)
}

/// Accepts an OpenAI request field that is not modelled if it does nothing
/// at its value; refuses it otherwise.
fn check_openai_field(key: &str, value: &Value) -> Result<(), Unsupported> {
    if value.is_null() {
        return Ok(());
    }
    let neutral = match key {
        "seed"
        | "store"
        | "service_tier"
        | "parallel_tool_calls"
        | "prompt_cache_key"
        | "safety_identifier" => true,
        "logprobs" => value == &Value::Bool(false),
        "frequency_penalty" | "presence_penalty" => is_zero(value),
        "logit_bias" => value.as_object().is_some_and(Map::is_empty),
        "response_format" => value.get("type").and_then(Value::as_str) == Some("text"),
        "tools" | "functions" => is_empty_array(value),
        "tool_choice" | "function_call" => matches!(value.as_str(), Some("none" | "auto")),
        "modalities" => value.as_array().is_some_and(|modalities| {
            modalities
                .iter()
                .all(|modality| modality.as_str() == Some("text"))
        }),
        "top_logprobs" | "audio" | "prediction" | "reasoning_effort" | "web_search_options"
        | "verbosity" => false,
        _ => {
            return Err(Unsupported::new(format!(
                "`{key}` is not a field that can be translated to the Anthropic Messages API"
            )))
        }
    };
    if neutral {
        Ok(())
    } else {
        Err(Unsupported::new(format!(
            "`{key}` = {}: has no Anthropic Messages equivalent",
            summary(value)
        )))
    }
}

/// Refuses message fields that carry the deprecated function-call or audio exchanges.
fn check_openai_message_fields(
    message_index: usize,
    message: &openai::Message,
) -> Result<(), Unsupported> {
    for key in ["function_call", "audio"] {
        if message.extra.get(key).is_some_and(|value| !value.is_null()) {
            return Err(Unsupported::new(format!(
                "messages[{message_index}].{key}: cannot be translated"
            )));
        }
    }
    Ok(())
}

/// The text of a system or developer message (parts joined).
fn openai_text_only(
    message_index: usize,
    message: &openai::Message,
) -> Result<String, Unsupported> {
    match &message.content {
        None => Ok(String::new()),
        Some(openai::MessageContent::Text(text)) => Ok(text.clone()),
        Some(openai::MessageContent::Parts(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (part_index, part) in parts.iter().enumerate() {
                match part {
                    openai::ContentPart::Text { text, .. } => texts.push(text.as_str()),
                    openai::ContentPart::Other(_) => {
                        return Err(unsupported_part(message_index, part_index, part.kind()))
                    }
                }
            }
            Ok(texts.join(TEXT_JOINER))
        }
    }
}

fn openai_content_to_anthropic(
    message_index: usize,
    message: &openai::Message,
) -> Result<anthropic::MessageContent, Unsupported> {
    match &message.content {
        None => Err(Unsupported::new(format!(
            "messages[{message_index}].content is missing or null"
        ))),
        Some(openai::MessageContent::Text(text)) => {
            Ok(anthropic::MessageContent::Text(text.clone()))
        }
        Some(openai::MessageContent::Parts(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (part_index, part) in parts.iter().enumerate() {
                match part {
                    openai::ContentPart::Text { text, .. } => {
                        blocks.push(anthropic::ContentBlock::text(text))
                    }
                    openai::ContentPart::Other(value) if message.role == "user" => {
                        let path = format!("messages[{message_index}].content[{part_index}]");
                        let block = media::openai_part_to_anthropic(&path, value)?;
                        blocks.push(
                            serde_json::from_value(block)
                                .map_err(|e| Unsupported::new(format!("{path}: {e}")))?,
                        );
                    }
                    openai::ContentPart::Other(_) => {
                        return Err(unsupported_part(message_index, part_index, part.kind()))
                    }
                }
            }
            Ok(anthropic::MessageContent::Blocks(blocks))
        }
    }
}

fn unsupported_part(message_index: usize, part_index: usize, kind: &str) -> Unsupported {
    Unsupported::new(format!(
        "messages[{message_index}].content[{part_index}]: `{kind}` parts have no Anthropic equivalent here; only text is translated"
    ))
}

/// Accepts an Anthropic request field that is not modelled if it does nothing
/// at its value; refuses it otherwise.
fn check_anthropic_field(key: &str, value: &Value) -> Result<(), Unsupported> {
    if value.is_null() {
        return Ok(());
    }
    let neutral = match key {
        "service_tier" => true,
        "tools" => is_empty_array(value),
        "tool_choice" => matches!(
            value.get("type").and_then(Value::as_str),
            Some("auto" | "none")
        ),
        "thinking" => value.get("type").and_then(Value::as_str) == Some("disabled"),
        "container" | "mcp_servers" | "context_management" | "output_format" => false,
        _ => {
            return Err(Unsupported::new(format!(
                "`{key}` is not a field that can be translated to the OpenAI Chat Completions API"
            )))
        }
    };
    if neutral {
        Ok(())
    } else {
        Err(Unsupported::new(format!(
            "`{key}` = {}: has no OpenAI Chat Completions equivalent",
            summary(value)
        )))
    }
}

/// The text of blocks that must all be text, joined; `path` names them in errors.
fn anthropic_blocks_text(
    blocks: &[anthropic::ContentBlock],
    path: &str,
) -> Result<String, Unsupported> {
    let mut texts = Vec::with_capacity(blocks.len());
    for (block_index, block) in blocks.iter().enumerate() {
        match block {
            anthropic::ContentBlock::Text { text, .. } => texts.push(text.as_str()),
            other => {
                return Err(Unsupported::new(format!(
                    "{path}[{block_index}]: `{}` blocks have no OpenAI equivalent here; only text is translated",
                    other.kind()
                )))
            }
        }
    }
    Ok(texts.join(TEXT_JOINER))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn openai_request(body: Value) -> openai::ChatRequest {
        serde_json::from_value(body).unwrap()
    }

    fn anthropic_request(body: Value) -> anthropic::MessagesRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn openai_to_anthropic_full_conversation() {
        let request = openai_request(json!({
            "model": "claude-sonnet-4-5",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                {"role": "user", "content": "Hi", "name": "alice"},
                {"role": "assistant", "content": "Bonjour", "refusal": null},
                {"role": "user", "content": [{"type": "text", "text": "Part one."}, {"type": "text", "text": "Part two."}]}
            ],
            "max_tokens": 50,
            "max_completion_tokens": 70,
            "temperature": 1.7,
            "top_p": 0.9,
            "stop": "END",
            "stream": true,
            "stream_options": {"include_usage": true},
            "n": 1,
            "user": "u-7",
            "seed": 3,
            "presence_penalty": 0,
            "response_format": {"type": "text"},
            "tools": [],
            "top_k": 20,
            "metadata": {"ignored": "yes"}
        }));
        let translated = openai_to_anthropic_request(&request, 4096).unwrap();
        assert_eq!(
            serde_json::to_value(&translated).unwrap(),
            json!({
                "model": "claude-sonnet-4-5",
                "system": "You are terse.\n\nAnswer in French.",
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Bonjour"},
                    {"role": "user", "content": [{"type": "text", "text": "Part one."}, {"type": "text", "text": "Part two."}]}
                ],
                "max_tokens": 70,
                "temperature": 1.0,
                "top_p": 0.9,
                "top_k": 20,
                "stop_sequences": ["END"],
                "stream": true,
                "metadata": {"user_id": "u-7"}
            })
        );
    }

    #[test]
    fn openai_to_anthropic_max_tokens_fallbacks() {
        let base = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        let translated = openai_to_anthropic_request(&openai_request(base.clone()), 1234).unwrap();
        assert_eq!(translated.max_tokens, Some(1234));
        assert_eq!(translated.system, None);
        assert_eq!(translated.stop_sequences, None);

        let mut with_max = base;
        with_max["max_tokens"] = json!(99);
        let translated = openai_to_anthropic_request(&openai_request(with_max), 1234).unwrap();
        assert_eq!(translated.max_tokens, Some(99));
    }

    /// Each request body is refused, and the message names the offending field.
    #[test]
    fn openai_to_anthropic_refusals_name_the_field() {
        let cases = [
            (json!({"n": 2}), "`n` = 2"),
            (
                json!({"tools": [{"type": "custom", "custom": {"name": "f"}}]}),
                "tools[0].type = \"custom\"",
            ),
            (json!({"tool_choice": "required"}), "`tool_choice`"),
            (
                json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]}),
                "tools[0].function.parameters",
            ),
            (
                json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}),
                "`response_format`",
            ),
            (
                json!({"response_format": {"type": "json_object"}}),
                "`response_format`",
            ),
            (json!({"logprobs": true}), "`logprobs`"),
            (json!({"frequency_penalty": 0.5}), "`frequency_penalty`"),
            (json!({"logit_bias": {"50256": -100}}), "`logit_bias`"),
            (json!({"modalities": ["text", "audio"]}), "`modalities`"),
            (json!({"reasoning_effort": "high"}), "`reasoning_effort`"),
            (json!({"brand_new_field": 1}), "`brand_new_field`"),
            (json!({"top_k": -1}), "`top_k`"),
        ];
        for (fields, needle) in cases {
            let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
            for (key, value) in fields.as_object().unwrap() {
                body[key] = value.clone();
            }
            let error = openai_to_anthropic_request(&openai_request(body), 100).unwrap_err();
            assert!(error.what.contains(needle), "{needle}: {}", error.what);
        }
    }

    #[test]
    fn openai_to_anthropic_refuses_untranslatable_messages() {
        let cases = [
            (
                json!({"role": "user", "content": [{"type": "text", "text": "see"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,%%"}}]}),
                "messages[0].content[1].image_url.url: the data is not valid base64",
            ),
            (
                json!({"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}),
                "`input_audio`",
            ),
            (
                json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1, 2]"}}]}),
                "messages[0].tool_calls[0].function.arguments",
            ),
            (
                json!({"role": "tool", "content": "1"}),
                "messages[0].tool_call_id is missing",
            ),
            (
                json!({"role": "function", "name": "f", "content": "1"}),
                "messages[0].role = \"function\"",
            ),
            (
                json!({"role": "assistant", "content": null}),
                "messages[0].content is missing",
            ),
            (
                json!({"role": "critic", "content": "x"}),
                "messages[0].role = \"critic\"",
            ),
            (
                json!({"role": "system", "content": [{"type": "image_url", "image_url": {}}]}),
                "messages[0].content[0]",
            ),
            (
                json!({"role": "assistant", "content": "x", "audio": {"id": "a"}}),
                "messages[0].audio",
            ),
        ];
        for (message, needle) in cases {
            let body = json!({"model": "m", "messages": [message]});
            let error = openai_to_anthropic_request(&openai_request(body), 100).unwrap_err();
            assert!(error.what.contains(needle), "{needle}: {}", error.what);
        }
    }

    #[test]
    fn anthropic_to_openai_full_conversation() {
        let request = anthropic_request(json!({
            "model": "llama-3.1-8b",
            "max_tokens": 256,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "Use metric."}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Context."}, {"type": "text", "text": "Question?"}]},
                {"role": "assistant", "content": "Answer."},
                {"role": "user", "content": "More?"}
            ],
            "temperature": 0.3,
            "top_p": 0.8,
            "top_k": 40,
            "stop_sequences": ["###"],
            "stream": true,
            "metadata": {"user_id": "u-9"},
            "tool_choice": {"type": "auto"},
            "thinking": {"type": "disabled"},
            "service_tier": "auto"
        }));
        let translated = anthropic_to_openai_request(&request).unwrap();
        assert_eq!(
            serde_json::to_value(&translated).unwrap(),
            json!({
                "model": "llama-3.1-8b",
                "messages": [
                    {"role": "system", "content": "Be brief.\n\nUse metric."},
                    {"role": "user", "content": "Context.\n\nQuestion?"},
                    {"role": "assistant", "content": "Answer."},
                    {"role": "user", "content": "More?"}
                ],
                "max_tokens": 256,
                "temperature": 0.3,
                "top_p": 0.8,
                "stop": ["###"],
                "stream": true,
                "stream_options": {"include_usage": true},
                "user": "u-9",
                "top_k": 40
            })
        );
    }

    #[test]
    fn anthropic_to_openai_minimal_keeps_missing_max_tokens() {
        let request = anthropic_request(json!({
            "model": "m", "system": "", "messages": [{"role": "user", "content": "x"}], "stream": false
        }));
        let translated = anthropic_to_openai_request(&request).unwrap();
        assert_eq!(
            serde_json::to_value(&translated).unwrap(),
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": false})
        );
    }

    #[test]
    fn anthropic_to_openai_refusals_name_the_field() {
        let message_cases = [
            (
                json!({"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}),
                "messages.0.content.0: a `image` block with source.type `file`",
            ),
            (
                json!({"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}]}),
                "messages.0.content.1: a `document` block",
            ),
            (
                json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image", "source": {}}]}]}),
                "messages.0.content.0.content.0: `image` blocks in tool results",
            ),
            (
                json!({"role": "user", "content": [{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}]}),
                "`server_tool_use` blocks",
            ),
            (
                json!({"role": "assistant", "content": [{"type": "thinking", "thinking": "x", "signature": "s"}]}),
                "`thinking` blocks",
            ),
            (
                json!({"role": "system", "content": "x"}),
                "messages[0].role = \"system\"",
            ),
        ];
        for (message, needle) in message_cases {
            let body = json!({"model": "m", "max_tokens": 1, "messages": [message]});
            let error = anthropic_to_openai_request(&anthropic_request(body)).unwrap_err();
            assert!(error.what.contains(needle), "{needle}: {}", error.what);
        }
        let field_cases = [
            (
                json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
                "tools.0.type = \"web_search_20250305\"",
            ),
            (json!({"tool_choice": {"type": "any"}}), "`tool_choice`"),
            (
                json!({"thinking": {"type": "enabled", "budget_tokens": 1024}}),
                "`thinking`",
            ),
            (json!({"mcp_servers": []}), "`mcp_servers`"),
            (
                json!({"system": [{"type": "image", "source": {}}]}),
                "system[0]: `image`",
            ),
            (json!({"unheard_of": true}), "`unheard_of`"),
        ];
        for (fields, needle) in field_cases {
            let mut body = json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]});
            for (key, value) in fields.as_object().unwrap() {
                body[key] = value.clone();
            }
            let error = anthropic_to_openai_request(&anthropic_request(body)).unwrap_err();
            assert!(error.what.contains(needle), "{needle}: {}", error.what);
        }
    }

    /// An agent's conversation with two parallel tool calls, one failing, an image
    /// and a named tool choice, as the OpenAI reference and Anthropic's tool-use
    /// guide write them.
    #[test]
    fn tool_conversation_translates_both_ways() {
        let png = "data:image/png;base64,iVBORw0KGgo=";
        let original = openai_request(json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "Use the tools."},
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather in Paris and Oslo? Here is a map."},
                    {"type": "image_url", "image_url": {"url": png}}
                ]},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "Error: "}, {"type": "text", "text": "unknown city"}]},
                {"role": "user", "content": "Thanks."}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": false,
            "max_tokens": 50
        }));
        let anthropic = openai_to_anthropic_request(&original, 100).unwrap();
        let value = serde_json::to_value(&anthropic).unwrap();
        assert_eq!(
            value["messages"],
            json!([
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather in Paris and Oslo? Here is a map."},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Oslo"}}
                ]},
                // Both results and the user's words in the one user turn that follows.
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "Error: unknown city"},
                    {"type": "text", "text": "Thanks."}
                ]}
            ])
        );
        assert_eq!(
            value["tool_choice"],
            json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true})
        );
        assert_eq!(
            value["tools"][0]["input_schema"]["properties"]["city"]["type"],
            "string"
        );

        let back = anthropic_to_openai_request(&anthropic).unwrap();
        let back = serde_json::to_value(&back).unwrap();
        assert_eq!(
            back["messages"],
            json!([
                {"role": "system", "content": "Use the tools."},
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather in Paris and Oslo? Here is a map."},
                    {"type": "image_url", "image_url": {"url": png}}
                ]},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": "Error: unknown city"},
                {"role": "user", "content": "Thanks."}
            ])
        );
        assert_eq!(back["tools"], original.extra["tools"]);
        assert_eq!(back["tool_choice"], original.extra["tool_choice"]);
        assert_eq!(back["parallel_tool_calls"], json!(false));
    }

    #[test]
    fn anthropic_error_results_and_tool_only_turns_reach_openai() {
        let request = anthropic_request(json!({
            "model": "m", "max_tokens": 10,
            "tools": [{"name": "f", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "timeout", "is_error": true}]}
            ]
        }));
        let translated =
            serde_json::to_value(anthropic_to_openai_request(&request).unwrap()).unwrap();
        assert_eq!(
            translated["messages"],
            json!([
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": "", "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "Error: timeout"}
            ])
        );
        assert_eq!(
            translated["tools"],
            json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])
        );
    }

    #[test]
    fn text_conversation_round_trips_through_both_translations() {
        let original = openai_request(json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "S"},
                {"role": "user", "content": "U1"},
                {"role": "assistant", "content": "A1"},
                {"role": "user", "content": "U2"}
            ],
            "max_tokens": 10,
            "temperature": 0.5,
            "top_p": 0.5,
            "stop": ["x", "y"]
        }));
        let there = openai_to_anthropic_request(&original, 99).unwrap();
        let back = anthropic_to_openai_request(&there).unwrap();
        assert_eq!(back, original);
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let long = Value::String("x".repeat(500));
        let error = check_openai_field("verbosity", &long).unwrap_err();
        assert!(error.what.chars().count() < 120, "{}", error.what);
        assert!(error.what.contains('…'));
    }
}
