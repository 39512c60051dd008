//! The OpenAI Responses API (`POST /v1/responses`), stateless: a request read into a
//! Chat Completions request (which every backend can be sent, translated where
//! needed), a chat completion written back as a `response` object, and a chat stream
//! as Responses events ([`ResponsesStream`]).
//!
//! Names follow the API reference (<https://platform.openai.com/docs/api-reference/responses>)
//! and the `openai` Python SDK's `types/responses`.
//!
//! | Responses | Chat Completions |
//! |---|---|
//! | `instructions` | a first `system` message |
//! | `input` (a string) | one `user` message |
//! | `message` items (`input_text`, `input_image`, `input_file`, `output_text`) | messages with text, `image_url` and `file` parts |
//! | `function_call` items | the assistant message's `tool_calls` |
//! | `function_call_output` items | `tool` messages |
//! | `tools[]` `{type: function, name, parameters}` | `tools[]` `{type: function, function: {…}}` |
//! | `max_output_tokens` | `max_tokens` |
//! | `usage.input_tokens_details.cached_tokens` | `usage.prompt_tokens_details.cached_tokens` |
//!
//! What only OpenAI's servers can do (`previous_response_id`, `store: true`,
//! `conversation`, `background`, built-in tools, uploaded files, stored prompts, …)
//! is noted as [`ResponsesRequest::untranslatable`]: the request then passes through
//! to a backend that speaks the Responses API itself, and any other backend refuses
//! it naming the field. Malformed requests are refused at once.

mod stream;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::openai;
use crate::usage::TokenUsage;

pub use stream::{PassEvent, ResponsesPass, ResponsesStream};

/// A Responses request, as the Chat Completions request it is sent as, with what the
/// `response` object echoes back, and the body as it came for a Responses backend.
#[derive(Clone, Debug, PartialEq)]
pub struct ResponsesRequest {
    pub chat: openai::ChatRequest,
    pub echo: Echo,
    /// The body as the client sent it.
    pub raw: Map<String, Value>,
    /// Why the request cannot be translated for a chat or Messages backend (the first
    /// such field), when it needs OpenAI's own Responses API.
    pub untranslatable: Option<String>,
}

/// The request's fields that a `response` object repeats.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Echo {
    pub model: String,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    /// The tools as the client sent them (Responses form).
    pub tools: Vec<Value>,
    pub tool_choice: Value,
    pub parallel_tool_calls: bool,
    pub metadata: Map<String, Value>,
    pub user: Option<String>,
}

#[derive(Deserialize)]
struct Raw {
    model: String,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    max_output_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
    #[serde(default)]
    user: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// Parses and checks a Responses request. The error names the field.
pub fn parse_request(body: &[u8]) -> Result<ResponsesRequest, String> {
    let object: Map<String, Value> = serde_json::from_slice(body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            format!("invalid JSON body: {e}")
        } else {
            format!("invalid request body: {e}")
        }
    })?;
    let raw: Raw = serde_json::from_value(Value::Object(object.clone()))
        .map_err(|e| format!("invalid request body: {e}"))?;
    let mut notes = Notes::default();
    for (key, value) in &raw.extra {
        if let Err(why) = check_field(key, value) {
            notes.note(why);
        }
    }
    if let Some(max) = raw.max_output_tokens {
        if max < 16 {
            return Err(format!(
                "max_output_tokens: {max} is below the minimum of 16"
            ));
        }
    }
    let mut messages = Vec::new();
    if let Some(instructions) = raw.instructions.as_deref().filter(|i| !i.is_empty()) {
        messages.push(openai::Message::text("system", instructions));
    }
    match &raw.input {
        None | Some(Value::Null) => return Err("input: Field required".to_owned()),
        Some(Value::String(text)) => messages.push(openai::Message::text("user", text)),
        Some(Value::Array(items)) => input_items(items, &mut messages, &mut notes)?,
        Some(_) => return Err("input: must be a string or a list of items".to_owned()),
    }
    let mut extra = Map::new();
    let tools = raw.tools.clone().unwrap_or_default();
    if !tools.is_empty() {
        extra.insert(
            "tools".to_owned(),
            Value::Array(chat_tools(&tools, &mut notes)?),
        );
    }
    if let Some(choice) = raw.tool_choice.as_ref().filter(|c| !c.is_null()) {
        match chat_tool_choice(choice) {
            Ok(choice) => {
                extra.insert("tool_choice".to_owned(), choice);
            }
            Err(why) => notes.note(why),
        }
    }
    if let Some(parallel) = raw.parallel_tool_calls {
        extra.insert("parallel_tool_calls".to_owned(), Value::Bool(parallel));
    }
    let chat = openai::ChatRequest {
        model: raw.model.clone(),
        messages,
        max_tokens: raw.max_output_tokens,
        temperature: raw.temperature,
        top_p: raw.top_p,
        stream: raw.stream,
        user: raw.user.clone(),
        metadata: raw.metadata.clone(),
        extra,
        ..openai::ChatRequest::default()
    };
    let echo = Echo {
        model: raw.model,
        instructions: raw.instructions,
        max_output_tokens: raw.max_output_tokens,
        temperature: raw.temperature,
        top_p: raw.top_p,
        tools,
        tool_choice: raw.tool_choice.unwrap_or_else(|| Value::from("auto")),
        parallel_tool_calls: raw.parallel_tool_calls.unwrap_or(true),
        metadata: raw.metadata.unwrap_or_default(),
        user: raw.user,
    };
    Ok(ResponsesRequest {
        chat,
        echo,
        raw: object,
        untranslatable: notes.first,
    })
}

/// The first reason a request cannot be translated.
#[derive(Default)]
struct Notes {
    first: Option<String>,
}

impl Notes {
    fn note(&mut self, why: String) {
        self.first.get_or_insert(why);
    }
}

/// Accepts a field that is not modelled if it does nothing here; refuses it by name.
fn check_field(key: &str, value: &Value) -> Result<(), String> {
    if value.is_null() {
        return Ok(());
    }
    let refuse = |why: &str| Err(format!("{key}: {why}"));
    match key {
        "store" if value == &Value::Bool(true) => refuse(
            "`store: true` keeps the response on the server; this gateway is stateless, so send `store: false`",
        ),
        "store" => Ok(()),
        "previous_response_id" => refuse(
            "needs the earlier response stored on the server; this gateway is stateless, so send the whole conversation in `input`",
        ),
        "conversation" => refuse("conversations are stored on the server; this gateway is stateless"),
        "background" if value == &Value::Bool(true) => {
            refuse("background responses are stored on the server; this gateway is stateless")
        }
        "background" => Ok(()),
        "prompt" => refuse("stored prompt templates live on OpenAI's servers"),
        "include" if value.as_array().is_some_and(Vec::is_empty) => Ok(()),
        "include" => refuse("extra output data (`include`) cannot be produced here"),
        "reasoning" => refuse("reasoning settings have no equivalent on every backend"),
        "text" => match value.pointer("/format/type").and_then(Value::as_str) {
            None | Some("text") => Ok(()),
            Some(other) => Err(format!(
                "text.format.type: `{other}` (structured output) cannot be translated; only `text` is"
            )),
        },
        "truncation" | "service_tier" | "prompt_cache_key" | "safety_identifier"
        | "stream_options" | "top_logprobs" | "max_tool_calls" => Ok(()),
        other => Err(format!("{other}: is not a Responses field this gateway can translate")),
    }
}

/// The `input` items as chat messages; the error names the item. Items only OpenAI's
/// servers can take are noted and left out.
fn input_items(
    items: &[Value],
    messages: &mut Vec<openai::Message>,
    notes: &mut Notes,
) -> Result<(), String> {
    let mut calls_seen: Vec<String> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let path = format!("input[{index}]");
        let Some(object) = item.as_object() else {
            return Err(format!("{path}: must be an object"));
        };
        let kind = match object.get("type").and_then(Value::as_str) {
            Some(kind) => kind,
            None if object.contains_key("role") => "message",
            None => return Err(format!("{path}.type: Field required")),
        };
        match kind {
            "message" => messages.push(input_message(&path, object, notes)?),
            "function_call" => {
                let text = |field: &str| {
                    object
                        .get(field)
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| format!("{path}.{field}: Field required"))
                };
                let call_id = text("call_id")?;
                let call = json!({
                    "id": call_id,
                    "type": "function",
                    "function": { "name": text("name")?, "arguments": text("arguments")? },
                });
                calls_seen.push(call_id);
                match messages.last_mut() {
                    Some(last) if last.role == "assistant" => {
                        last.tool_calls.get_or_insert_with(Vec::new).push(call);
                    }
                    _ => messages.push(openai::Message {
                        role: "assistant".to_owned(),
                        tool_calls: Some(vec![call]),
                        ..openai::Message::default()
                    }),
                }
            }
            "function_call_output" => {
                let call_id = object
                    .get("call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{path}.call_id: Field required"))?;
                if !calls_seen.iter().any(|seen| seen == call_id) {
                    // With `previous_response_id`, the call is in the stored response.
                    notes.note(format!(
                        "{path}.call_id: `{call_id}` answers no `function_call` item before it"
                    ));
                    continue;
                }
                let output = match object.get("output") {
                    Some(Value::String(text)) => text.clone(),
                    Some(Value::Array(parts)) => parts_text(&format!("{path}.output"), parts)?,
                    _ => return Err(format!("{path}.output: must be a string or a list of input_text items")),
                };
                messages.push(openai::Message {
                    role: "tool".to_owned(),
                    content: Some(openai::MessageContent::Text(output)),
                    tool_call_id: Some(call_id.to_owned()),
                    ..openai::Message::default()
                });
            }
            other => notes.note(format!(
                "{path}.type: `{other}` items cannot be translated; message, function_call and function_call_output are"
            )),
        }
    }
    Ok(())
}

fn input_message(
    path: &str,
    object: &Map<String, Value>,
    notes: &mut Notes,
) -> Result<openai::Message, String> {
    let role = object.get("role").and_then(Value::as_str).unwrap_or("");
    if !matches!(role, "user" | "assistant" | "system" | "developer") {
        return Err(format!(
            "{path}.role: `{role}` is not allowed; expected user, assistant, system or developer"
        ));
    }
    let content = match object.get("content") {
        Some(Value::String(text)) => openai::MessageContent::Text(text.clone()),
        Some(Value::Array(parts)) if role == "assistant" => {
            openai::MessageContent::Text(parts_text(&format!("{path}.content"), parts)?)
        }
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (index, part) in parts.iter().enumerate() {
                match input_part(&format!("{path}.content[{index}]"), part)? {
                    Ok(part) => out.push(part),
                    Err(why) => notes.note(why),
                }
            }
            openai::MessageContent::Parts(out)
        }
        _ => {
            return Err(format!(
                "{path}.content: must be a string or a list of content parts"
            ))
        }
    };
    Ok(openai::Message {
        role: role.to_owned(),
        content: Some(content),
        ..openai::Message::default()
    })
}

/// One content part of an input message as a chat content part; `Ok(Err(why))` for a
/// part only OpenAI's servers can take.
fn input_part(path: &str, part: &Value) -> Result<Result<openai::ContentPart, String>, String> {
    let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
    let text_of = |field: &str| part.get(field).and_then(Value::as_str);
    match kind {
        "input_text" | "output_text" => Ok(Ok(openai::ContentPart::Text {
            text: text_of("text").unwrap_or_default().to_owned(),
            extra: Map::new(),
        })),
        "input_image" => {
            let Some(url) = text_of("image_url") else {
                return Ok(Err(format!(
                    "{path}: only `image_url` images can be translated; an uploaded `file_id` exists on OpenAI alone"
                )));
            };
            crate::translate::media::check_image_url(url).map_err(|e| format!("{path}.image_url: {e}"))?;
            let mut image = json!({ "url": url });
            if let Some(detail) = text_of("detail") {
                image["detail"] = Value::from(detail);
            }
            Ok(Ok(openai::ContentPart::Other(json!({ "type": "image_url", "image_url": image }))))
        }
        "input_file" => {
            let Some(data) = text_of("file_data") else {
                return Ok(Err(format!(
                    "{path}: only inline `file_data` can be translated; `file_id` and `file_url` need OpenAI's servers"
                )));
            };
            let mut file = json!({ "file_data": data });
            if let Some(name) = text_of("filename") {
                file["filename"] = Value::from(name);
            }
            Ok(Ok(openai::ContentPart::Other(json!({ "type": "file", "file": file }))))
        }
        other => Err(format!(
            "{path}.type: `{other}` is not a content type here; expected input_text, input_image or input_file"
        )),
    }
}

/// The text of text parts (`input_text`, `output_text`, `refusal`), joined.
fn parts_text(path: &str, parts: &[Value]) -> Result<String, String> {
    let mut text = String::new();
    for (index, part) in parts.iter().enumerate() {
        match part.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text") => {
                text.push_str(part.get("text").and_then(Value::as_str).unwrap_or_default())
            }
            Some("refusal") => text.push_str(
                part.get("refusal")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            ),
            other => {
                return Err(format!(
                    "{path}[{index}].type: `{}` has no text form here",
                    other.unwrap_or("unknown")
                ))
            }
        }
    }
    Ok(text)
}

/// Responses function tools as chat tools; built-in tools are noted and left out.
fn chat_tools(tools: &[Value], notes: &mut Notes) -> Result<Vec<Value>, String> {
    let mut out = Vec::with_capacity(tools.len());
    for (index, tool) in tools.iter().enumerate() {
        let kind = tool.get("type").and_then(Value::as_str).unwrap_or("");
        if kind != "function" {
            notes.note(format!(
                "tools[{index}].type: `{kind}` is a built-in tool that runs on OpenAI's servers; only `function` tools can be translated"
            ));
            continue;
        }
        let name = tool
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("tools[{index}].name: Field required"))?;
        let parameters = tool
            .get("parameters")
            .filter(|p| !p.is_null())
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        if !parameters.is_object() || parameters.get("type").is_some_and(|t| t != "object") {
            return Err(format!(
                "tools[{index}].parameters: must be a JSON Schema object with `type: \"object\"`"
            ));
        }
        let mut function = Map::new();
        function.insert("name".to_owned(), Value::from(name));
        if let Some(description) = tool.get("description").filter(|d| !d.is_null()) {
            function.insert("description".to_owned(), description.clone());
        }
        function.insert("parameters".to_owned(), parameters);
        if let Some(strict) = tool.get("strict").filter(|s| !s.is_null()) {
            function.insert("strict".to_owned(), strict.clone());
        }
        out.push(json!({ "type": "function", "function": function }));
    }
    Ok(out)
}

fn chat_tool_choice(choice: &Value) -> Result<Value, String> {
    match choice {
        Value::String(mode) if matches!(mode.as_str(), "auto" | "none" | "required") => {
            Ok(choice.clone())
        }
        Value::Object(object) if object.get("type").and_then(Value::as_str) == Some("function") => {
            let name = object
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| "tool_choice.name: Field required".to_owned())?;
            Ok(json!({ "type": "function", "function": { "name": name } }))
        }
        other => Err(format!(
            "tool_choice: {other} cannot be translated; auto, none, required and {{\"type\": \"function\", \"name\": …}} can"
        )),
    }
}

/// The Responses `usage` object for a token count.
pub(crate) fn usage_json(usage: &TokenUsage) -> Value {
    let input = usage.total_input_tokens();
    json!({
        "input_tokens": input,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.all_cache_write_tokens(),
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": { "reasoning_tokens": 0 },
        "total_tokens": input + usage.output_tokens,
    })
}

/// The token usage of a `response` object (a whole body, or the `response` of a final
/// stream event): `None` unless it is one. `input_tokens` includes the cached share.
pub fn peek_usage(body: &[u8]) -> Option<TokenUsage> {
    #[derive(Deserialize)]
    struct Peek {
        object: String,
        #[serde(default)]
        usage: Option<UsagePeek>,
    }
    let peek: Peek = serde_json::from_slice(body).ok()?;
    if peek.object != "response" {
        return None;
    }
    Some(peek.usage.map(|u| u.token_usage()).unwrap_or_default())
}

#[derive(Deserialize)]
pub(crate) struct UsagePeek {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<DetailsPeek>,
    #[serde(default)]
    output_tokens: u64,
}

#[derive(Deserialize)]
struct DetailsPeek {
    #[serde(default)]
    cached_tokens: u64,
}

impl UsagePeek {
    pub(crate) fn token_usage(&self) -> TokenUsage {
        let cached = self
            .input_tokens_details
            .as_ref()
            .map_or(0, |d| d.cached_tokens);
        TokenUsage {
            input_tokens: self.input_tokens.saturating_sub(cached),
            cache_read_tokens: cached.min(self.input_tokens),
            output_tokens: self.output_tokens,
            ..TokenUsage::default()
        }
    }
}

/// `status` and `incomplete_details` for a chat finish reason.
fn status_for(finish: Option<&openai::FinishReason>) -> (&'static str, Value) {
    match finish {
        Some(openai::FinishReason::Length) => {
            ("incomplete", json!({ "reason": "max_output_tokens" }))
        }
        Some(openai::FinishReason::ContentFilter) => {
            ("incomplete", json!({ "reason": "content_filter" }))
        }
        _ => ("completed", Value::Null),
    }
}

/// A `response` object: the echoed request fields around `output`, `status` and `usage`.
pub(crate) fn response_object(
    id: &str,
    created_at: u64,
    echo: &Echo,
    status: &str,
    incomplete: Value,
    output: Vec<Value>,
    usage: Option<&TokenUsage>,
) -> Value {
    json!({
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": null,
        "incomplete_details": incomplete,
        "instructions": echo.instructions,
        "max_output_tokens": echo.max_output_tokens,
        "model": echo.model,
        "output": output,
        "parallel_tool_calls": echo.parallel_tool_calls,
        "previous_response_id": null,
        "store": false,
        "temperature": echo.temperature,
        "text": { "format": { "type": "text" } },
        "tool_choice": echo.tool_choice,
        "tools": echo.tools,
        "top_p": echo.top_p,
        "truncation": "disabled",
        "usage": usage.map(usage_json),
        "user": echo.user,
        "metadata": echo.metadata,
    })
}

/// An output `message` item with one `output_text` part.
pub(crate) fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({
        "id": id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{ "type": "output_text", "text": text, "annotations": [], "logprobs": [] }],
    })
}

/// An output `function_call` item.
pub(crate) fn function_call_item(
    id: &str,
    call_id: &str,
    name: &str,
    arguments: &str,
    status: &str,
) -> Value {
    json!({
        "id": id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    })
}

/// A whole chat completion (its first choice) as a `response` object, with `usage`.
pub fn from_chat_response(
    response: &openai::ChatResponse,
    usage: &TokenUsage,
    echo: &Echo,
) -> Value {
    let id = format!("resp_{}", id_part(&response.id));
    let choice = response.first_choice();
    let mut output = Vec::new();
    if let Some(choice) = choice {
        if let Some(text) = choice.message.content.as_deref().filter(|t| !t.is_empty()) {
            output.push(message_item(
                &format!("msg_{}", id_part(&response.id)),
                text,
                "completed",
            ));
        }
        for (index, call) in choice.message.tool_calls.iter().flatten().enumerate() {
            let field = |pointer: &str| {
                call.pointer(pointer)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            };
            output.push(function_call_item(
                &format!("fc_{}_{index}", id_part(&response.id)),
                field("/id"),
                field("/function/name"),
                field("/function/arguments"),
                "completed",
            ));
        }
    }
    let (status, incomplete) = status_for(choice.and_then(|c| c.finish_reason.as_ref()));
    response_object(
        &id,
        crate::json::unix_now(),
        echo,
        status,
        incomplete,
        output,
        Some(usage),
    )
}

/// The letters and digits of an upstream id, for ids of our own derived from it.
pub(crate) fn id_part(id: &str) -> String {
    let part: String = id.chars().filter(char::is_ascii_alphanumeric).collect();
    if part.is_empty() {
        "0".to_owned()
    } else {
        part
    }
}

/// The text of a `response` object's message items, joined.
pub fn output_text(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let mut text = String::new();
    let mut any = false;
    for item in value.get("output")?.as_array()? {
        if item.get("type").and_then(Value::as_str) != Some("message") {
            continue;
        }
        for part in item
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(part_text) = part.get("text").and_then(Value::as_str) {
                text.push_str(part_text);
                any = true;
            }
        }
    }
    any.then_some(text)
}

#[cfg(test)]
mod tests;
