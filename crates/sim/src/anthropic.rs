//! `POST /v1/messages` and `POST /v1/messages/count_tokens` in the Anthropic Messages
//! format.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Map, Value};

use crate::api::{
    apply_early_fault, check_auth, check_model, json_response, mid_stream_fault, opt_u64,
    parse_object, pause_whole, pick_fault, read_body, sse_response, ApiError, Early, Format,
};
use crate::config::FaultKind;
use crate::state::{SimState, StreamGuard};
use crate::stream::{sse_event, truncated_body, Ending, Script};
use crate::text::{prefix_hashes, prompt_tokens, CacheTtl, Finish, Segment};
use crate::tools;

pub(crate) const PATH: &str = "/v1/messages";
pub(crate) const COUNT_TOKENS_PATH: &str = "/v1/messages/count_tokens";
const FMT: Format = Format::Anthropic;

#[derive(Debug)]
struct MessagesRequest {
    model: String,
    /// The `system` parameter (if any) first, then the messages.
    segments: Vec<Segment>,
    max_tokens: Option<u64>,
    stops: Vec<String>,
    stream: bool,
    offer: Option<tools::Offer>,
    messages: Vec<Value>,
}

fn field_required(field: &str) -> ApiError {
    ApiError::invalid(format!("{field}: Field required"))
}

/// Parses a request. `count_only`: `/v1/messages/count_tokens`, where `max_tokens`
/// is not required.
fn parse(map: &Map<String, Value>, count_only: bool) -> Result<MessagesRequest, ApiError> {
    let model = match map.get("model") {
        None => return Err(field_required("model")),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::invalid("model: Input should be a valid string")),
    };
    let messages = match map.get("messages") {
        None => return Err(field_required("messages")),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(ApiError::invalid("messages: Input should be a valid list")),
    };
    let max_tokens = match (map.get("max_tokens"), count_only) {
        (None, false) => return Err(field_required("max_tokens")),
        (None, true) => None,
        (Some(_), _) => {
            let v = opt_u64(map, "max_tokens").map_err(ApiError::invalid)?;
            match v {
                Some(0) => {
                    return Err(ApiError::invalid(
                        "max_tokens: Input should be greater than or equal to 1",
                    ))
                }
                Some(n) => Some(n),
                None => {
                    return Err(ApiError::invalid(
                        "max_tokens: Input should be a valid integer",
                    ))
                }
            }
        }
    };
    if messages.is_empty() {
        return Err(ApiError::invalid(
            "messages: at least one message is required",
        ));
    }
    let mut segments = Vec::with_capacity(messages.len() + 1);
    match map.get("system") {
        None | Some(Value::Null) => {}
        Some(v @ (Value::String(_) | Value::Array(_))) => segments.push(Segment::new("system", v)),
        Some(_) => return Err(ApiError::invalid("system: Input should be a valid list")),
    }
    for (i, m) in messages.iter().enumerate() {
        let Value::Object(m) = m else {
            return Err(ApiError::invalid(format!(
                "messages.{i}: Input should be a valid dictionary or object"
            )));
        };
        let role = match m.get("role") {
            Some(Value::String(r)) if r == "user" || r == "assistant" => r.as_str(),
            Some(Value::String(r)) if r == "system" => {
                return Err(ApiError::invalid(format!(
                    "messages.{i}.role: Unexpected role \"system\". The Messages API accepts a top-level `system` parameter, not \"system\" as an input message role."
                )))
            }
            Some(_) => {
                return Err(ApiError::invalid(format!(
                    "messages.{i}.role: Input should be 'user' or 'assistant'"
                )))
            }
            None => return Err(field_required(&format!("messages.{i}.role"))),
        };
        match m.get("content") {
            Some(v @ (Value::String(_) | Value::Array(_))) => {
                tools::check_media(v, &format!("messages.{i}.content"))?;
                segments.push(Segment::new(role, v));
            }
            None => return Err(field_required(&format!("messages.{i}.content"))),
            Some(_) => {
                return Err(ApiError::invalid(format!(
                    "messages.{i}.content: Input should be a valid list"
                )))
            }
        }
    }
    let stops = match map.get("stop_sequences") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(_) => {
            return Err(ApiError::invalid(
                "stop_sequences: Input should be a valid list",
            ))
        }
    };
    let stream = match map.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::invalid("stream: Input should be a valid boolean")),
    };
    tools::check_anthropic_results(messages)?;
    let offer = tools::parse_anthropic(map)?;
    if let Some(list) = map.get("tools").filter(|_| offer.is_some()) {
        // Tool definitions come first in the prompt, before the system prompt.
        segments.insert(0, Segment::new("tools", &Value::String(list.to_string())));
    }
    Ok(MessagesRequest {
        model,
        segments,
        max_tokens,
        stops,
        stream,
        offer,
        messages: messages.clone(),
    })
}

/// `anthropic-version` is required by the real API.
fn check_version(st: &SimState, headers: &HeaderMap) -> Result<(), ApiError> {
    if st.config().require_anthropic_version && !headers.contains_key("anthropic-version") {
        return Err(ApiError::invalid("anthropic-version: header is required"));
    }
    Ok(())
}

/// The input side of the usage.
#[derive(Debug, Clone, Copy, Default)]
struct InputUsage {
    uncached: u64,
    cache_creation: u64,
    cache_read: u64,
    ttl: Option<CacheTtl>,
}

impl InputUsage {
    fn json(&self, output: u64, start: bool) -> Value {
        let (five, hour) = match self.ttl {
            Some(CacheTtl::OneHour) => (0, self.cache_creation),
            _ => (self.cache_creation, 0),
        };
        let mut u = json!({
            "input_tokens": self.uncached,
            "cache_creation_input_tokens": self.cache_creation,
            "cache_read_input_tokens": self.cache_read,
        });
        if start {
            u["cache_creation"] = json!({
                "ephemeral_5m_input_tokens": five,
                "ephemeral_1h_input_tokens": hour,
            });
        }
        u["output_tokens"] = json!(output);
        if start {
            u["service_tier"] = json!("standard");
        }
        u
    }
}

/// Splits the input tokens with the simulated prompt cache: the prefix up to the last
/// `cache_control` marker is read from the cache as far as an earlier request stored
/// it (at any message boundary), and written for the rest.
fn input_usage(st: &SimState, req: &MessagesRequest) -> InputUsage {
    let total = prompt_tokens(&req.segments);
    let markers: Vec<usize> = req
        .segments
        .iter()
        .enumerate()
        .filter(|(_, s)| s.cache_marker.is_some())
        .map(|(i, _)| i)
        .collect();
    let Some(&last) = markers.last() else {
        return InputUsage {
            uncached: total,
            ..InputUsage::default()
        };
    };
    let hashes = prefix_hashes(&format!("anthropic\u{0}{}", req.model), &req.segments);
    let hit = st.cache_lookup(&hashes, last, &markers);
    let upto = |i: usize| -> u64 { req.segments[..=i].iter().map(Segment::tokens).sum() };
    let cached = upto(last);
    let cache_read = hit.map(upto).unwrap_or(0);
    InputUsage {
        uncached: total - cached,
        cache_creation: cached - cache_read,
        cache_read,
        ttl: req.segments[last].cache_marker,
    }
}

fn stop_reason(finish: &Finish) -> (&'static str, Value) {
    match finish {
        Finish::Natural => ("end_turn", Value::Null),
        Finish::Length => ("max_tokens", Value::Null),
        Finish::Stop(s) => ("stop_sequence", json!(s)),
    }
}

/// The `POST /v1/messages` handler.
pub(crate) async fn messages(
    State(st): State<SimState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let arrived = Instant::now();
    st.count_request(PATH);
    let request_id = st.new_id("req_01", 22);
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
    check_version(st, headers)?;
    let bytes = read_body(headers, body, st.config().max_body_bytes).await?;
    let req = parse(&parse_object(FMT, &bytes)?, false)?;
    check_model(st, FMT, &req.model)?;
    let fault = pick_fault(st, headers)?;
    if let Early::Respond(resp) =
        apply_early_fault(st, FMT, request_id, fault.as_ref(), req.stream).await
    {
        return Ok(resp);
    }

    let input = input_usage(st, &req);
    let cfg = st.config();
    let mut output =
        crate::quality::output(cfg, &req.model, &req.segments, req.max_tokens, &req.stops);
    let calls = tools::calls_or_answer(
        req.offer.as_ref(),
        &req.messages,
        &req.segments,
        &mut output,
        || st.new_id("toolu_01", 22),
    );
    let slot = st.run_slot().await;
    st.count_input(input.uncached, input.cache_creation, input.cache_read);
    let id = st.new_id("msg_01", 22);
    if !calls.is_empty() {
        let held = (in_flight, slot);
        return Ok(tool_answer(st, &req, request_id, (&id, &calls, input), held, arrived).await);
    }
    let (reason, stop_sequence) = stop_reason(&output.finish);
    let mid = mid_stream_fault(fault.as_ref());

    if !req.stream {
        let ttft_s = pause_whole(st, arrived, output.tokens()).await;
        let content = if output.words.is_empty() {
            json!([])
        } else {
            json!([{"type": "text", "text": output.text()}])
        };
        let body = json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": req.model,
            "content": content,
            "stop_reason": reason,
            "stop_sequence": stop_sequence,
            "usage": input.json(output.tokens(), true),
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

    let mut script = Script::new(cfg.ttft);
    script.push(
        sse_event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": req.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                // As the real API does, message_start reports the first output token.
                "usage": input.json(output.tokens().min(1), true),
            }}),
        ),
        false,
    );
    let has_block = !output.words.is_empty();
    if has_block {
        script.push(
            sse_event(
                "content_block_start",
                &json!({"type": "content_block_start", "index": 0,
                        "content_block": {"type": "text", "text": ""}}),
            ),
            false,
        );
    }
    script.push(sse_event("ping", &json!({"type": "ping"})), false);
    let sent = match mid {
        Some((_, after)) => output.tokens().min(u64::from(after)),
        None => output.tokens(),
    };
    for i in 0..usize::try_from(sent).unwrap_or(usize::MAX) {
        if i > 0 {
            script.wait_token(cfg.token_delay);
        }
        script.push(
            sse_event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": output.delta(i)}}),
            ),
            true,
        );
    }
    let ending = match mid {
        Some((FaultKind::ResetMidStream, _)) => Ending::Reset,
        Some(_) => {
            script.push(
                sse_event(
                    "error",
                    &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                ),
                false,
            );
            Ending::ErrorEvent
        }
        None => {
            if has_block {
                script.push(
                    sse_event(
                        "content_block_stop",
                        &json!({"type": "content_block_stop", "index": 0}),
                    ),
                    false,
                );
            }
            script.push(
                sse_event(
                    "message_delta",
                    &json!({"type": "message_delta",
                            "delta": {"stop_reason": reason, "stop_sequence": stop_sequence},
                            "usage": input.json(output.tokens(), false)}),
                ),
                false,
            );
            script.push(
                sse_event("message_stop", &json!({"type": "message_stop"})),
                false,
            );
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

/// An answer that calls tools: `stop_reason: tool_use`, a `tool_use` block per call,
/// or streamed as the streaming guide shows: `content_block_start` with the block
/// and `input: {}`, the input as `input_json_delta` pieces (the first one empty),
/// `content_block_stop`.
async fn tool_answer(
    st: &SimState,
    req: &MessagesRequest,
    request_id: &str,
    (id, calls, input): (&str, &[tools::Call], InputUsage),
    (in_flight, slot): (crate::state::GaugeGuard, crate::state::RunSlot),
    arrived: Instant,
) -> Response {
    let cfg = st.config();
    let tokens = tools::call_tokens(calls);
    if !req.stream {
        let ttft_s = pause_whole(st, arrived, tokens).await;
        let content: Vec<Value> = calls
            .iter()
            .map(|c| {
                let input: Value = serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({}));
                json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input})
            })
            .collect();
        let body = json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": req.model,
            "content": content,
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": input.json(tokens, true),
        });
        drop((in_flight, slot));
        st.count_unary(arrived, ttft_s, tokens, false);
        return json_response(FMT, request_id, Body::from(body.to_string()));
    }
    let mut script = Script::new(cfg.ttft);
    script.push(
        sse_event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": req.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": input.json(tokens.min(1), true),
            }}),
        ),
        false,
    );
    for (index, call) in calls.iter().enumerate() {
        script.push(
            sse_event(
                "content_block_start",
                &json!({"type": "content_block_start", "index": index,
                        "content_block": {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}}),
            ),
            true,
        );
        let delta = |piece: &str| {
            sse_event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece}}),
            )
        };
        script.push(delta(""), false);
        for piece in tools::pieces(&call.arguments) {
            script.wait_token(cfg.token_delay);
            script.push(delta(&piece), true);
        }
        script.push(
            sse_event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            ),
            false,
        );
    }
    script.push(
        sse_event(
            "message_delta",
            &json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                    "usage": input.json(tokens, false)}),
        ),
        false,
    );
    script.push(
        sse_event("message_stop", &json!({"type": "message_stop"})),
        false,
    );
    let guard = StreamGuard::new(st.clone(), in_flight, slot, arrived, false);
    sse_response(FMT, request_id, script.into_body(Ending::Complete, guard))
}

/// The `POST /v1/messages/count_tokens` handler: `{"input_tokens": N}`, the total input
/// of the same request sent to `/v1/messages` (no cache split).
pub(crate) async fn count_tokens(
    State(st): State<SimState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    st.count_request(COUNT_TOKENS_PATH);
    let request_id = st.new_id("req_01", 22);
    let result = async {
        check_auth(&st, FMT, &headers)?;
        check_version(&st, &headers)?;
        let bytes = read_body(&headers, body, st.config().max_body_bytes).await?;
        let req = parse(&parse_object(FMT, &bytes)?, true)?;
        check_model(&st, FMT, &req.model)?;
        Ok::<_, ApiError>(json!({"input_tokens": prompt_tokens(&req.segments)}))
    }
    .await;
    match result {
        Ok(v) => json_response(FMT, &request_id, Body::from(v.to_string())),
        Err(e) => e.into_response(FMT, &request_id),
    }
}
