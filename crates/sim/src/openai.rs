//! `POST /v1/chat/completions` in the OpenAI Chat Completions format.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Map, Value};

use crate::api::{
    apply_early_fault, check_auth, check_model, json_response, mid_stream_fault, opt_u64,
    parse_object, pause_whole, pick_fault, read_body, sse_response, unix_now, ApiError, Early,
    Format,
};
use crate::config::FaultKind;
use crate::state::{SimState, StreamGuard};
use crate::stream::{sse_data, truncated_body, Ending, Script};
use crate::text::{prefix_hashes, Finish, Segment};
use crate::tools;

pub(crate) const PATH: &str = "/v1/chat/completions";
/// vLLM's tokenizer endpoint, at the server's root.
pub(crate) const TOKENIZE_PATH: &str = "/tokenize";
/// The `max_model_len` `/tokenize` reports.
const MAX_MODEL_LEN: u64 = 131_072;
const FMT: Format = Format::OpenAi;
const ROLES: [&str; 6] = [
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];
/// The `system_fingerprint` of every response.
pub const SYSTEM_FINGERPRINT: &str = "fp_sim0000001";

/// OpenAI caches prompts of at least 1024 tokens, in steps of 128.
pub(crate) fn openai_cached_tokens(prefix_tokens: u64) -> u64 {
    if prefix_tokens < 1024 {
        0
    } else {
        1024 + (prefix_tokens - 1024) / 128 * 128
    }
}

/// The prompt's tokens, and the share of them OpenAI's prompt cache serves (looked up
/// and stored at every message boundary in the simulated cache, per model).
pub(crate) fn prompt_and_cached(st: &SimState, model: &str, segments: &[Segment]) -> (u64, u64) {
    let prompt = crate::text::prompt_tokens(segments);
    let hashes = prefix_hashes(&format!("openai\u{0}{model}"), segments);
    let all: Vec<usize> = (0..segments.len()).collect();
    let hit = st.cache_lookup(&hashes, segments.len().saturating_sub(1), &all);
    let cached = hit
        .map(|i| openai_cached_tokens(segments[..=i].iter().map(Segment::tokens).sum()))
        .unwrap_or(0);
    (prompt, cached)
}

#[derive(Debug)]
struct ChatRequest {
    model: String,
    segments: Vec<Segment>,
    max_tokens: Option<u64>,
    stops: Vec<String>,
    stream: bool,
    include_usage: bool,
    offer: Option<tools::Offer>,
    messages: Vec<Value>,
}

fn parse(map: &Map<String, Value>) -> Result<ChatRequest, ApiError> {
    let model = match map.get("model") {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid("you must provide a model parameter"))
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(
                ApiError::invalid("Invalid type for 'model': expected a string.")
                    .param("model")
                    .code("invalid_type"),
            )
        }
    };
    let messages = match map.get("messages") {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid("Missing required parameter: 'messages'.")
                .param("messages")
                .code("missing_required_parameter"))
        }
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(ApiError::invalid(
                "Invalid type for 'messages': expected an array of objects.",
            )
            .param("messages")
            .code("invalid_type"))
        }
    };
    if messages.is_empty() {
        return Err(ApiError::invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        )
        .param("messages")
        .code("empty_array"));
    }
    let mut segments = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let Value::Object(m) = m else {
            return Err(ApiError::invalid(format!(
                "Invalid type for 'messages[{i}]': expected an object."
            ))
            .param(&format!("messages[{i}]"))
            .code("invalid_type"));
        };
        let role = match m.get("role") {
            Some(Value::String(r)) if ROLES.contains(&r.as_str()) => r.as_str(),
            Some(Value::String(r)) => {
                return Err(ApiError::invalid(format!(
                    "Invalid value: '{r}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'."
                ))
                .param(&format!("messages[{i}].role"))
                .code("invalid_value"))
            }
            _ => {
                return Err(ApiError::invalid(format!("Missing required parameter: 'messages[{i}].role'."))
                    .param(&format!("messages[{i}].role"))
                    .code("missing_required_parameter"))
            }
        };
        let content = m.get("content").unwrap_or(&Value::Null);
        tools::check_media(content, &format!("messages[{i}].content"))?;
        segments.push(Segment::new(role, content));
    }
    tools::check_openai_results(messages)?;
    let offer = tools::parse_openai(map)?;
    if let Some(list) = map.get("tools").filter(|_| offer.is_some()) {
        // Tool definitions are part of the prompt, ahead of the messages.
        segments.insert(0, Segment::new("tools", &Value::String(list.to_string())));
    }
    let max_tokens = match opt_u64(map, "max_completion_tokens") {
        Ok(None) => opt_u64(map, "max_tokens").map_err(|e| (e, "max_tokens")),
        other => other.map_err(|e| (e, "max_completion_tokens")),
    }
    .map_err(|(e, p)| ApiError::invalid(e).param(p).code("invalid_type"))?;
    if max_tokens == Some(0) {
        return Err(ApiError::invalid(
            "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead.",
        )
        .param("max_tokens")
        .code("integer_below_min_value"));
    }
    match opt_u64(map, "n") {
        Ok(None) | Ok(Some(1)) => {}
        _ => {
            return Err(ApiError::invalid("The simulator supports only n = 1.")
                .param("n")
                .code("invalid_value"))
        }
    }
    let stream = match map.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(
                ApiError::invalid("Invalid type for 'stream': expected a boolean.")
                    .param("stream")
                    .code("invalid_type"),
            )
        }
    };
    let include_usage = match map.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(_) if !stream => {
            return Err(ApiError::invalid(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            )
            .param("stream_options"))
        }
        Some(opts) => opts
            .get("include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    let stops = match map.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(_) => {
            return Err(ApiError::invalid(
                "Invalid type for 'stop': expected a string or an array of strings.",
            )
            .param("stop")
            .code("invalid_type"))
        }
    };
    Ok(ChatRequest {
        model,
        segments,
        max_tokens,
        stops,
        stream,
        include_usage,
        offer,
        messages: messages.clone(),
    })
}

fn finish_reason(finish: &Finish) -> &'static str {
    match finish {
        Finish::Length => "length",
        Finish::Natural | Finish::Stop(_) => "stop",
    }
}

fn usage_json(prompt: u64, cached: u64, completion: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0
        }
    })
}

/// `POST /tokenize` as vLLM answers a chat (`messages`): `{"count", "max_model_len",
/// "tokens"}`, where `count` is the `prompt_tokens` the same messages get from
/// `/v1/chat/completions`. The token ids are placeholders.
pub(crate) async fn tokenize(
    State(st): State<SimState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    st.count_request(TOKENIZE_PATH);
    let request_id = st.new_id("req_", 32);
    let result = async {
        let bytes = read_body(&headers, body, st.config().max_body_bytes).await?;
        let req = parse(&parse_object(FMT, &bytes)?)?;
        let count = crate::text::prompt_tokens(&req.segments);
        let tokens: Vec<u64> = (0..count).map(|i| 1000 + i % 30_000).collect();
        Ok::<_, ApiError>(json!({"count": count, "max_model_len": MAX_MODEL_LEN, "tokens": tokens}))
    }
    .await;
    match result {
        Ok(v) => json_response(FMT, &request_id, Body::from(v.to_string())),
        Err(e) => e.into_response(FMT, &request_id),
    }
}

/// The `POST /v1/chat/completions` handler.
pub(crate) async fn chat_completions(
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
    let req = parse(&parse_object(FMT, &bytes)?)?;
    check_model(st, FMT, &req.model)?;
    let fault = pick_fault(st, headers)?;
    if let Early::Respond(resp) =
        apply_early_fault(st, FMT, request_id, fault.as_ref(), req.stream).await
    {
        return Ok(resp);
    }

    let (prompt, cached) = prompt_and_cached(st, &req.model, &req.segments);
    let cfg = st.config();
    let mut output =
        crate::quality::output(cfg, &req.model, &req.segments, req.max_tokens, &req.stops);
    let calls = tools::calls_or_answer(
        req.offer.as_ref(),
        &req.messages,
        &req.segments,
        &mut output,
        || st.new_id("call_", 24),
    );
    let slot = st.run_slot().await;
    st.count_input(prompt - cached, 0, cached);

    let id = st.new_id("chatcmpl-", 29);
    let created = unix_now();
    let mid = mid_stream_fault(fault.as_ref());
    if !calls.is_empty() {
        let usage = usage_json(prompt, cached, tools::call_tokens(&calls));
        let answer = ToolAnswer {
            id: &id,
            created,
            calls: &calls,
            usage,
        };
        let held = (in_flight, slot);
        return Ok(tool_answer(st, &req, request_id, answer, held, arrived).await);
    }

    if !req.stream {
        let ttft_s = pause_whole(st, arrived, output.tokens()).await;
        let body = json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": req.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": output.text(), "refusal": null, "annotations": []},
                "logprobs": null,
                "finish_reason": finish_reason(&output.finish),
            }],
            "usage": usage_json(prompt, cached, output.tokens()),
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        })
        .to_string();
        drop(slot);
        if let Some((FaultKind::ResetMidStream, _)) = mid {
            st.count_fault(FaultKind::ResetMidStream);
            let half = body.len() / 2;
            let head = Bytes::from(body).slice(..half);
            return Ok(json_response(FMT, request_id, truncated_body(head)));
        }
        st.count_unary(
            arrived,
            ttft_s,
            output.tokens(),
            output.finish == Finish::Length,
        );
        return Ok(json_response(FMT, request_id, Body::from(body)));
    }

    let chunk = |choices: Value, usage: Option<Value>| -> Bytes {
        let mut c = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": req.model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
        });
        if req.include_usage {
            c["usage"] = usage.unwrap_or(Value::Null);
        }
        sse_data(&c.to_string())
    };
    let mut script = Script::new(cfg.ttft);
    script.push(
        chunk(
            json!([{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": null},
                    "logprobs": null, "finish_reason": null}]),
            None,
        ),
        false,
    );
    let sent = match mid {
        Some((_, after)) => output.tokens().min(u64::from(after)),
        None => output.tokens(),
    };
    for i in 0..usize::try_from(sent).unwrap_or(usize::MAX) {
        if i > 0 {
            script.wait_token(cfg.token_delay);
        }
        script.push(
            chunk(
                json!([{"index": 0, "delta": {"content": output.delta(i)}, "logprobs": null, "finish_reason": null}]),
                None,
            ),
            true,
        );
    }
    let ending = match mid {
        Some((FaultKind::ResetMidStream, _)) => Ending::Reset,
        Some(_) => {
            let err = json!({"error": {
                "message": "The server is overloaded and the stream was interrupted. (simulated)",
                "type": "server_error",
                "param": null,
                "code": null,
            }});
            script.push(sse_data(&err.to_string()), false);
            Ending::ErrorEvent
        }
        None => {
            script.push(
                chunk(
                    json!([{"index": 0, "delta": {}, "logprobs": null,
                            "finish_reason": finish_reason(&output.finish)}]),
                    None,
                ),
                false,
            );
            if req.include_usage {
                let usage = usage_json(prompt, cached, output.tokens());
                script.push(chunk(json!([]), Some(usage)), false);
            }
            script.push(sse_data("[DONE]"), false);
            Ending::Complete
        }
    };
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
        script.into_body(ending, guard),
    ))
}

struct ToolAnswer<'a> {
    id: &'a str,
    created: u64,
    calls: &'a [tools::Call],
    usage: Value,
}

/// An answer that calls tools: `finish_reason: tool_calls`, the calls in
/// `message.tool_calls`, or streamed as the function-calling guide shows: a first
/// delta per call with its `index`, `id`, `type` and name, then its arguments in
/// pieces under the same `index`.
async fn tool_answer(
    st: &SimState,
    req: &ChatRequest,
    request_id: &str,
    answer: ToolAnswer<'_>,
    (in_flight, slot): (crate::state::GaugeGuard, crate::state::RunSlot),
    arrived: Instant,
) -> Response {
    let cfg = st.config();
    let tokens = tools::call_tokens(answer.calls);
    let calls: Vec<Value> = answer
        .calls
        .iter()
        .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
        .collect();
    if !req.stream {
        let ttft_s = pause_whole(st, arrived, tokens).await;
        let body = json!({
            "id": answer.id,
            "object": "chat.completion",
            "created": answer.created,
            "model": req.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": null, "tool_calls": calls, "refusal": null, "annotations": []},
                "logprobs": null,
                "finish_reason": "tool_calls",
            }],
            "usage": answer.usage,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        });
        drop((in_flight, slot));
        st.count_unary(arrived, ttft_s, tokens, false);
        return json_response(FMT, request_id, Body::from(body.to_string()));
    }
    let chunk = |delta: Value, finish: Value, usage: Option<&Value>| -> Bytes {
        let mut c = json!({
            "id": answer.id,
            "object": "chat.completion.chunk",
            "created": answer.created,
            "model": req.model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": if usage.is_some() { json!([]) } else { json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]) },
        });
        if req.include_usage {
            c["usage"] = usage.cloned().unwrap_or(Value::Null);
        }
        sse_data(&c.to_string())
    };
    let mut script = Script::new(cfg.ttft);
    script.push(
        chunk(
            json!({"role": "assistant", "content": null, "refusal": null}),
            Value::Null,
            None,
        ),
        false,
    );
    for (index, call) in answer.calls.iter().enumerate() {
        script.push(
            chunk(
                json!({"tool_calls": [{"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}]}),
                Value::Null,
                None,
            ),
            true,
        );
        for piece in tools::pieces(&call.arguments) {
            script.wait_token(cfg.token_delay);
            script.push(
                chunk(
                    json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                    Value::Null,
                    None,
                ),
                true,
            );
        }
    }
    script.push(chunk(json!({}), json!("tool_calls"), None), false);
    if req.include_usage {
        script.push(chunk(Value::Null, Value::Null, Some(&answer.usage)), false);
    }
    script.push(sse_data("[DONE]"), false);
    let guard = StreamGuard::new(st.clone(), in_flight, slot, arrived, false);
    sse_response(FMT, request_id, script.into_body(Ending::Complete, guard))
}
