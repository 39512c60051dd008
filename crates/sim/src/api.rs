//! What the two API formats share: error bodies, authentication, body reading, and the
//! faults that replace a response.

use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Value};

use crate::config::{FaultKind, FaultStep};
use crate::state::SimState;

/// The header that requests a fault for one request.
pub const FAULT_HEADER: &str = "x-sim-fault";

/// Which vendor's wire format an endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    OpenAi,
    Anthropic,
}

impl Format {
    /// The response header that carries the request id.
    fn request_id_header(self) -> &'static str {
        match self {
            Format::OpenAi => "x-request-id",
            Format::Anthropic => "request-id",
        }
    }
}

/// The classes of error both APIs share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    InvalidRequest,
    Authentication,
    NotFound,
    TooLarge,
    RateLimit,
    Api,
    Overloaded,
}

impl ErrorKind {
    fn status(self, fmt: Format) -> StatusCode {
        match self {
            ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Authentication => StatusCode::UNAUTHORIZED,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::RateLimit => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Api => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Overloaded => match fmt {
                // Anthropic's own status; OpenAI-style servers answer 503.
                Format::Anthropic => {
                    StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
                }
                Format::OpenAi => StatusCode::SERVICE_UNAVAILABLE,
            },
        }
    }

    fn anthropic_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::TooLarge => "request_too_large",
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::Api => "api_error",
            ErrorKind::Overloaded => "overloaded_error",
        }
    }

    fn openai_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest
            | ErrorKind::Authentication
            | ErrorKind::NotFound
            | ErrorKind::TooLarge => "invalid_request_error",
            ErrorKind::RateLimit => "requests",
            ErrorKind::Api | ErrorKind::Overloaded => "server_error",
        }
    }

    fn openai_default_code(self) -> Option<&'static str> {
        match self {
            ErrorKind::Authentication => Some("invalid_api_key"),
            ErrorKind::RateLimit => Some("rate_limit_exceeded"),
            _ => None,
        }
    }
}

/// An error response, rendered in the format of the endpoint that was called.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    /// OpenAI's `param`.
    pub param: Option<String>,
    /// OpenAI's `code` (a default per kind applies when unset).
    pub code: Option<String>,
    /// `retry-after` seconds.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
            param: None,
            code: None,
            retry_after: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::InvalidRequest, message)
    }

    pub fn param(mut self, param: &str) -> ApiError {
        self.param = Some(param.to_string());
        self
    }

    pub fn code(mut self, code: &str) -> ApiError {
        self.code = Some(code.to_string());
        self
    }

    /// The JSON error body of `fmt`.
    pub fn body(&self, fmt: Format, request_id: &str) -> Value {
        match fmt {
            Format::Anthropic => json!({
                "type": "error",
                "error": {"type": self.kind.anthropic_type(), "message": self.message},
                "request_id": request_id,
            }),
            Format::OpenAi => json!({
                "error": {
                    "message": self.message,
                    "type": self.kind.openai_type(),
                    "param": self.param,
                    "code": self.code.as_deref().or(self.kind.openai_default_code()),
                }
            }),
        }
    }

    pub fn into_response(self, fmt: Format, request_id: &str) -> Response {
        let body = self.body(fmt, request_id).to_string();
        let mut resp = (self.kind.status(fmt), body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(v) = HeaderValue::from_str(request_id) {
            h.insert(fmt.request_id_header(), v);
        }
        if let Some(s) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

/// A 200 JSON response with the request id header.
pub(crate) fn json_response(fmt: Format, request_id: &str, body: Body) -> Response {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert(fmt.request_id_header(), v);
    }
    resp
}

/// A 200 `text/event-stream` response with the request id header.
pub(crate) fn sse_response(fmt: Format, request_id: &str, body: Body) -> Response {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert(fmt.request_id_header(), v);
    }
    resp
}

/// Checks the API key when the config requires one.
pub(crate) fn check_auth(st: &SimState, fmt: Format, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = st.config().api_key.as_deref() else {
        return Ok(());
    };
    let x_api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if x_api_key == Some(expected) || bearer == Some(expected) {
        return Ok(());
    }
    let message = match (fmt, x_api_key.or(bearer)) {
        (Format::Anthropic, None) => "x-api-key header is required",
        (Format::Anthropic, Some(_)) => "invalid x-api-key",
        (Format::OpenAi, None) => {
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        }
        (Format::OpenAi, Some(_)) => "Incorrect API key provided.",
    };
    Err(ApiError::new(ErrorKind::Authentication, message))
}

/// Reads the request body, refusing more than `limit` bytes with a 413.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorKind::TooLarge,
            format!("Request exceeds the maximum allowed number of bytes ({limit})."),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::invalid(format!("could not read the request body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// Parses a JSON object body.
pub(crate) fn parse_object(
    fmt: Format,
    bytes: &[u8],
) -> Result<serde_json::Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid(match fmt {
            Format::Anthropic => "Input should be a valid dictionary or object",
            Format::OpenAi => "The request body must be a JSON object.",
        })),
        Err(e) => Err(ApiError::invalid(match fmt {
            Format::Anthropic => format!("There was an issue with your request body: invalid JSON ({e})"),
            Format::OpenAi => format!(
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.) ({e})"
            ),
        })),
    }
}

/// Picks the fault for this request: the `x-sim-fault` header, else the plan.
pub(crate) fn pick_fault(
    st: &SimState,
    headers: &HeaderMap,
) -> Result<Option<FaultStep>, ApiError> {
    if let Some(v) = headers.get(FAULT_HEADER) {
        let text = v
            .to_str()
            .map_err(|_| ApiError::invalid(format!("invalid {FAULT_HEADER} header")))?;
        let step = FaultStep::parse_header(text)
            .map_err(|e| ApiError::invalid(format!("invalid {FAULT_HEADER} header: {e}")))?;
        return Ok(Some(step));
    }
    Ok(st.next_planned_fault())
}

/// What a fault does before any generation: answer in its place, wait, or nothing.
pub(crate) enum Early {
    /// Answer with this response (the fault has been counted).
    Respond(Response),
    /// Go on generating (after a possible `slow_first_byte` wait).
    Continue,
}

/// Applies the faults that replace or delay the response. `stream` tells whether the
/// request asked for a stream: a mid-stream error on a non-streamed request becomes an
/// overloaded error.
pub(crate) async fn apply_early_fault(
    st: &SimState,
    fmt: Format,
    request_id: &str,
    fault: Option<&FaultStep>,
    stream: bool,
) -> Early {
    let Some(step) = fault else {
        return Early::Continue;
    };
    let error = |kind: ErrorKind, message: &str| {
        let mut e = ApiError::new(kind, message);
        e.retry_after = step.retry_after();
        e
    };
    let resp = match step.kind {
        FaultKind::RateLimit => error(
            ErrorKind::RateLimit,
            match fmt {
                Format::Anthropic => "Number of request tokens has exceeded your per-minute rate limit (simulated).",
                Format::OpenAi => "Rate limit reached for requests (simulated).",
            },
        )
        .into_response(fmt, request_id),
        FaultKind::Overloaded => overloaded(step, fmt).into_response(fmt, request_id),
        FaultKind::ErrorEventMidStream if !stream => overloaded(step, fmt).into_response(fmt, request_id),
        FaultKind::ServerError => error(
            ErrorKind::Api,
            match fmt {
                Format::Anthropic => "Internal server error (simulated)",
                Format::OpenAi => {
                    "The server had an error while processing your request. Sorry about that! (simulated)"
                }
            },
        )
        .into_response(fmt, request_id),
        FaultKind::Garbage => json_response(
            fmt,
            request_id,
            Body::from("<html><body><h1>502 Bad Gateway</h1>simulated garbage, not JSON</body></html>"),
        ),
        FaultKind::SlowFirstByte => {
            st.count_fault(step.kind);
            tokio::time::sleep(step.delay()).await;
            return Early::Continue;
        }
        FaultKind::ResetMidStream | FaultKind::ErrorEventMidStream => return Early::Continue,
    };
    st.count_fault(step.kind);
    Early::Respond(resp)
}

fn overloaded(step: &FaultStep, fmt: Format) -> ApiError {
    let mut e = ApiError::new(
        ErrorKind::Overloaded,
        match fmt {
            Format::Anthropic => "Overloaded",
            Format::OpenAi => {
                "The engine is currently overloaded, please try again later. (simulated)"
            }
        },
    );
    e.retry_after = step.retry_after();
    e
}

/// The mid-stream fault of a request, if it has one: (kind, tokens sent before it).
pub(crate) fn mid_stream_fault(fault: Option<&FaultStep>) -> Option<(FaultKind, u32)> {
    fault.and_then(|s| match s.kind {
        FaultKind::ResetMidStream | FaultKind::ErrorEventMidStream => {
            Some((s.kind, s.after_tokens()))
        }
        _ => None,
    })
}

/// Sleeps, skipping zero durations.
pub(crate) async fn pause(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

/// The wait of a whole (non-streamed) answer of `tokens` tokens: the TTFT, then one
/// token delay each (under the capacity model, one decode step per token after the
/// first, as a stream of it would take). Returns the seconds from `arrived` to the
/// first token.
pub(crate) async fn pause_whole(
    st: &crate::SimState,
    arrived: std::time::Instant,
    tokens: u64,
) -> f64 {
    let config = st.config();
    pause(config.ttft).await;
    let ttft_s = arrived.elapsed().as_secs_f64();
    if config.capacity_model().is_some() {
        let mut deadline = std::time::Instant::now();
        for _ in 1..tokens {
            deadline += st.step().unwrap_or_default();
            tokio::time::sleep_until(deadline.into()).await;
        }
        return ttft_s;
    }
    pause(
        config
            .token_delay
            .saturating_mul(u32::try_from(tokens).unwrap_or(u32::MAX)),
    )
    .await;
    ttft_s
}

/// Reads an optional non-negative integer field.
pub(crate) fn opt_u64(
    map: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<u64>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{key}: Input should be a valid integer")),
    }
}

/// With `models` configured, a request for another model gets a 404.
pub(crate) fn check_model(st: &SimState, fmt: Format, model: &str) -> Result<(), ApiError> {
    let models = &st.config().models;
    if models.is_empty() || models.iter().any(|m| m == model) {
        return Ok(());
    }
    Err(match fmt {
        Format::Anthropic => ApiError::new(ErrorKind::NotFound, format!("model: {model}")),
        Format::OpenAi => ApiError::new(
            ErrorKind::NotFound,
            format!("The model `{model}` does not exist or you do not have access to it."),
        )
        .code("model_not_found"),
    })
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
