//! `POST /v1/responses` in the OpenAI Responses format, with the state OpenAI keeps:
//! a response is stored unless `store: false`, and `previous_response_id` continues
//! from a stored one (its input and output come before the new input, and count as
//! input tokens). Function tools follow the rule of `crate::tools`: the named
//! `tool_choice`, or every offered tool named in the last user message, is called
//! (`function_call` output items, streamed as `response.function_call_arguments.delta`),
//! and once the input ends in `function_call_output` items the answer is text.
//!
//! Names follow the API reference (<https://platform.openai.com/docs/api-reference/responses>):
//! the `response` object, `usage.input_tokens_details.cached_tokens`, and the stream
//! events `response.created`, `response.in_progress`, `response.output_item.added`,
//! `response.content_part.added`, `response.output_text.delta`,
//! `response.output_text.done`, `response.content_part.done`,
//! `response.output_item.done` and `response.completed`, each with a `sequence_number`.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::HeaderMap;
use serde_json::{json, Map, Value};

use crate::api::{
    apply_early_fault, check_auth, check_model, json_response, parse_object, pause_whole,
    pick_fault, read_body, sse_response, unix_now, ApiError, Early, Format,
};
use crate::state::{SimState, StreamGuard};
use crate::stream::{sse_event, Ending, Script};
use crate::text::{Finish, Segment};

pub(crate) const PATH: &str = "/v1/responses";
const FMT: Format = Format::OpenAi;

struct Request {
    model: String,
    /// Stored conversation (if any), instructions, then the new input.
    segments: Vec<Segment>,
    /// What is stored: the conversation without the instructions (which do not carry over).
    carried: Vec<Segment>,
    max_output_tokens: Option<u64>,
    stream: bool,
    store: bool,
    instructions: Option<String>,
    offer: Option<crate::tools::Offer>,
    /// The input as chat messages, for the tool rule.
    messages: Vec<Value>,
}

fn parse(st: &SimState, map: &Map<String, Value>) -> Result<Request, ApiError> {
    let model = match map.get("model") {
        Some(Value::String(model)) => model.clone(),
        _ => {
            return Err(ApiError::invalid("Missing required parameter: 'model'.")
                .param("model")
                .code("missing_required_parameter"))
        }
    };
    let mut carried = Vec::new();
    if let Some(previous) = map.get("previous_response_id").and_then(Value::as_str) {
        carried = st.stored_response(previous).ok_or_else(|| {
            ApiError::invalid(format!("Previous response with id '{previous}' not found."))
                .param("previous_response_id")
                .code("previous_response_not_found")
        })?;
    }
    let mut messages = Vec::new();
    match map.get("input") {
        Some(Value::String(text)) => {
            carried.push(Segment::new("user", &Value::from(text.as_str())));
            messages.push(json!({"role": "user", "content": text}));
        }
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let implied = if item.get("role").is_some() {
                    "message"
                } else {
                    ""
                };
                let kind = item.get("type").and_then(Value::as_str).unwrap_or(implied);
                let field = |name: &str| item.get(name).cloned().unwrap_or(Value::Null);
                match kind {
                    "message" => {
                        let role = item.get("role").and_then(Value::as_str).unwrap_or("user");
                        carried.push(Segment::new(role, &field("content")));
                        messages.push(json!({"role": role, "content": field("content")}));
                    }
                    "function_call_output" => {
                        carried.push(Segment::new("tool", &field("output")));
                        messages.push(json!({"role": "tool", "tool_call_id": field("call_id"), "content": field("output")}));
                    }
                    "function_call" => {
                        carried.push(Segment::new("assistant", &field("arguments")));
                        messages.push(json!({"role": "assistant", "tool_calls": [{"id": field("call_id")}]}));
                    }
                    other => {
                        return Err(ApiError::invalid(format!(
                            "Invalid value: '{other}'. Supported values are: 'message', 'function_call' and 'function_call_output'."
                        ))
                        .param(&format!("input[{i}].type"))
                        .code("invalid_value"))
                    }
                }
            }
        }
        _ => {
            return Err(ApiError::invalid("Missing required parameter: 'input'.")
                .param("input")
                .code("missing_required_parameter"))
        }
    }
    let instructions = map
        .get("instructions")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut segments = Vec::with_capacity(carried.len() + 1);
    if let Some(text) = &instructions {
        segments.push(Segment::new("system", &Value::from(text.as_str())));
    }
    segments.extend(carried.iter().cloned());
    let max_output_tokens = map.get("max_output_tokens").and_then(Value::as_u64);
    if max_output_tokens.is_some_and(|m| m < 16) {
        return Err(ApiError::invalid(
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16.",
        )
        .param("max_output_tokens")
        .code("integer_below_min_value"));
    }
    // Responses tools are flat (`{type, name, parameters}`); the rule reads chat tools.
    let mut chat = Map::new();
    if let Some(Value::Array(tools)) = map.get("tools") {
        let tools: Vec<Value> = tools
            .iter()
            .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
            .map(|t| json!({"type": "function", "function": {"name": t.get("name"), "parameters": t.get("parameters")}}))
            .collect();
        chat.insert("tools".to_owned(), Value::Array(tools));
    }
    match map.get("tool_choice") {
        Some(Value::Object(named)) => {
            let name = named.get("name").cloned().unwrap_or(Value::Null);
            chat.insert(
                "tool_choice".to_owned(),
                json!({"type": "function", "function": {"name": name}}),
            );
        }
        Some(other) => {
            chat.insert("tool_choice".to_owned(), other.clone());
        }
        None => {}
    }
    if let Some(parallel) = map.get("parallel_tool_calls") {
        chat.insert("parallel_tool_calls".to_owned(), parallel.clone());
    }
    let offer = crate::tools::parse_openai(&chat)?;
    Ok(Request {
        offer,
        messages,
        model,
        segments,
        carried,
        max_output_tokens,
        stream: map.get("stream").and_then(Value::as_bool).unwrap_or(false),
        // OpenAI stores responses unless told not to.
        store: map.get("store").and_then(Value::as_bool).unwrap_or(true),
        instructions,
    })
}

/// The `POST /v1/responses` handler.
pub(crate) async fn responses(
    State(st): State<SimState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let arrived = Instant::now();
    st.count_request(PATH);
    let request_id = st.new_id("req_", 32);
    match handle(&st, arrived, &request_id, &headers, body).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(FMT, &request_id),
    }
}

async fn handle(
    st: &SimState,
    arrived: Instant,
    request_id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let in_flight = st.in_flight();
    check_auth(st, FMT, headers)?;
    let bytes = read_body(headers, body, st.config().max_body_bytes).await?;
    let req = parse(st, &parse_object(FMT, &bytes)?)?;
    check_model(st, FMT, &req.model)?;
    let fault = pick_fault(st, headers)?;
    if let Early::Respond(resp) =
        apply_early_fault(st, FMT, request_id, fault.as_ref(), req.stream).await
    {
        return Ok(resp);
    }
    let cfg = st.config();
    let (prompt, cached) = crate::openai::prompt_and_cached(st, &req.model, &req.segments);
    let mut output =
        crate::quality::output(cfg, &req.model, &req.segments, req.max_output_tokens, &[]);
    let calls = crate::tools::calls_or_answer(
        req.offer.as_ref(),
        &req.messages,
        &req.segments,
        &mut output,
        || st.new_id("call_", 24),
    );
    let slot = st.run_slot().await;
    st.count_input(prompt - cached, 0, cached);
    let id = st.new_id("resp_", 32);
    let message_id = st.new_id("msg_", 32);
    if req.store {
        let mut conversation = req.carried.clone();
        let answer = if calls.is_empty() {
            output.text()
        } else {
            calls
                .iter()
                .map(|c| c.arguments.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        conversation.push(Segment::new("assistant", &Value::from(answer)));
        st.store_response(&id, conversation);
    }
    let output_tokens = if calls.is_empty() {
        output.tokens()
    } else {
        crate::tools::call_tokens(&calls)
    };
    let usage = json!({
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + output_tokens,
    });
    let call_item = |call: &crate::tools::Call, arguments: &str, status: &str| {
        json!({"id": format!("fc_{}", &call.id[5..]), "type": "function_call", "status": status,
               "call_id": call.id, "name": call.name, "arguments": arguments})
    };
    let created = unix_now();
    let object = |status: &str, text: Option<&str>, usage: Value| {
        let (status, incomplete) = match (status, &output.finish) {
            ("completed", Finish::Length) if calls.is_empty() => {
                ("incomplete", json!({"reason": "max_output_tokens"}))
            }
            (status, _) => (status, Value::Null),
        };
        let output_items = match text {
            Some(_) if !calls.is_empty() => Value::Array(
                calls
                    .iter()
                    .map(|c| call_item(c, &c.arguments, "completed"))
                    .collect(),
            ),
            Some(text) => json!([message(&message_id, text, "completed")]),
            None => json!([]),
        };
        json!({
            "id": id, "object": "response", "created_at": created, "status": status,
            "error": null, "incomplete_details": incomplete, "instructions": req.instructions,
            "max_output_tokens": req.max_output_tokens, "model": req.model, "output": output_items,
            "parallel_tool_calls": true, "previous_response_id": null, "store": req.store,
            "temperature": 1.0, "text": {"format": {"type": "text"}}, "tool_choice": "auto",
            "tools": [], "top_p": 1.0, "truncation": "disabled", "usage": usage, "metadata": {},
        })
    };
    let text = output.text();
    if !req.stream {
        let ttft_s = pause_whole(st, arrived, output_tokens).await;
        drop((in_flight, slot));
        st.count_unary(
            arrived,
            ttft_s,
            output_tokens,
            calls.is_empty() && output.finish == Finish::Length,
        );
        let body = object("completed", Some(&text), usage);
        return Ok(json_response(FMT, request_id, Body::from(body.to_string())));
    }
    let mut script = Script::new(cfg.ttft);
    let mut sequence = 0u64;
    let mut event = |script: &mut Script, kind: &str, mut body: Value, token: bool| {
        body["type"] = Value::from(kind);
        body["sequence_number"] = Value::from(sequence);
        sequence += 1;
        script.push(sse_event(kind, &body), token);
    };
    let started = object("in_progress", None, Value::Null);
    event(
        &mut script,
        "response.created",
        json!({"response": started}),
        false,
    );
    event(
        &mut script,
        "response.in_progress",
        json!({"response": started}),
        false,
    );
    for (index, call) in calls.iter().enumerate() {
        let item_id = format!("fc_{}", &call.id[5..]);
        event(
            &mut script,
            "response.output_item.added",
            json!({"output_index": index, "item": call_item(call, "", "in_progress")}),
            true,
        );
        for piece in crate::tools::pieces(&call.arguments) {
            script.wait_token(cfg.token_delay);
            event(
                &mut script,
                "response.function_call_arguments.delta",
                json!({"item_id": item_id, "output_index": index, "delta": piece}),
                true,
            );
        }
        event(
            &mut script,
            "response.function_call_arguments.done",
            json!({"item_id": item_id, "output_index": index, "arguments": call.arguments, "name": call.name}),
            false,
        );
        event(
            &mut script,
            "response.output_item.done",
            json!({"output_index": index, "item": call_item(call, &call.arguments, "completed")}),
            false,
        );
    }
    if !calls.is_empty() {
        let done = object("completed", Some(""), usage);
        event(
            &mut script,
            "response.completed",
            json!({"response": done}),
            false,
        );
        let guard = StreamGuard::new(st.clone(), in_flight, slot, arrived, false);
        return Ok(sse_response(
            FMT,
            request_id,
            script.into_body(Ending::Complete, guard),
        ));
    }
    let mut item = message(&message_id, "", "in_progress");
    item["content"] = json!([]);
    event(
        &mut script,
        "response.output_item.added",
        json!({"output_index": 0, "item": item}),
        false,
    );
    let part = |text: &str| json!({"type": "output_text", "text": text, "annotations": []});
    event(
        &mut script,
        "response.content_part.added",
        json!({"item_id": message_id, "output_index": 0, "content_index": 0, "part": part("")}),
        false,
    );
    for i in 0..output.words.len() {
        if i > 0 {
            script.wait_token(cfg.token_delay);
        }
        event(
            &mut script,
            "response.output_text.delta",
            json!({"item_id": message_id, "output_index": 0, "content_index": 0, "delta": output.delta(i), "logprobs": []}),
            true,
        );
    }
    event(
        &mut script,
        "response.output_text.done",
        json!({"item_id": message_id, "output_index": 0, "content_index": 0, "text": text, "logprobs": []}),
        false,
    );
    event(
        &mut script,
        "response.content_part.done",
        json!({"item_id": message_id, "output_index": 0, "content_index": 0, "part": part(&text)}),
        false,
    );
    event(
        &mut script,
        "response.output_item.done",
        json!({"output_index": 0, "item": message(&message_id, &text, "completed")}),
        false,
    );
    let done = object("completed", Some(&text), usage);
    let kind = if done["status"] == "incomplete" {
        "response.incomplete"
    } else {
        "response.completed"
    };
    event(&mut script, kind, json!({"response": done}), false);
    let guard = StreamGuard::new(
        st.clone(),
        in_flight,
        slot,
        arrived,
        output.finish == Finish::Length,
    );
    Ok(sse_response(
        FMT,
        request_id,
        script.into_body(Ending::Complete, guard),
    ))
}

fn message(id: &str, text: &str, status: &str) -> Value {
    json!({
        "id": id, "type": "message", "status": status, "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    })
}
