//! The request path: authenticate, parse, validate, route, forward (with fallback,
//! spill-over and retry-after), translate, stream, and write exactly one ledger row.
//!
//! Nothing here takes a lock shared across requests: the runtime is an `ArcSwap`
//! snapshot, circuits and in-flight counts are atomics, and the ledger is a channel.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use costfloor_core::cost::{request_cost, TokenCounts};
use costfloor_core::money::Money;
use futures_util::StreamExt;
use ledger::{LedgerHandle, LedgerRow, Outcome};
use tokio_util::task::TaskTracker;
use wire::error::{self as wire_error, ApiErrorKind};
use wire::sse::SseParser;
use wire::translate::{
    self, AnthropicStreamUsage, AnthropicToOpenAiStream, OpenAiStreamUsage, OpenAiToAnthropicStream,
};
use wire::{anthropic, openai, TokenUsage};

use crate::config::BackendConfig;
use crate::metrics;
use crate::runtime::{Backend, InFlight, RouteChoice, RouteQuery, Runtime};
use crate::server::AppState;

pub const HEADER_BACKEND: &str = "x-costfloor-backend";
pub const HEADER_ROUTE: &str = "x-costfloor-route";
pub const HEADER_REQUEST_ID: &str = "x-costfloor-request-id";
pub const HEADER_TASK: &str = "x-costfloor-task";

/// The wire format a client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OpenAi,
    Anthropic,
}

enum ClientRequest {
    OpenAi(openai::ChatRequest),
    Anthropic(anthropic::MessagesRequest),
}

impl ClientRequest {
    fn model(&self) -> &str {
        match self {
            ClientRequest::OpenAi(r) => &r.model,
            ClientRequest::Anthropic(r) => &r.model,
        }
    }

    fn stream(&self) -> bool {
        match self {
            ClientRequest::OpenAi(r) => r.is_stream(),
            ClientRequest::Anthropic(r) => r.is_stream(),
        }
    }

    fn max_tokens(&self, default: u32) -> u64 {
        match self {
            ClientRequest::OpenAi(r) => {
                r.max_completion_tokens.or(r.max_tokens).unwrap_or(default) as u64
            }
            ClientRequest::Anthropic(r) => r.max_tokens.unwrap_or(default) as u64,
        }
    }

    fn estimated_input_tokens(&self) -> u64 {
        match self {
            ClientRequest::OpenAi(r) => translate::estimate_openai_input_tokens(r),
            ClientRequest::Anthropic(r) => translate::estimate_anthropic_input_tokens(r),
        }
    }

    fn metadata_task(&self) -> Option<String> {
        let value = match self {
            ClientRequest::OpenAi(r) => r.metadata.as_ref().and_then(|m| m.get("task")),
            ClientRequest::Anthropic(r) => r.metadata.as_ref().and_then(|m| m.get("task")),
        };
        value.and_then(|v| v.as_str()).map(str::to_string)
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// An error answered to the client in its own format.
struct ClientError {
    kind: ApiErrorKind,
    message: String,
    retry_after: Option<Duration>,
    outcome: Outcome,
}

impl ClientError {
    fn client(kind: ApiErrorKind, message: impl Into<String>) -> ClientError {
        ClientError {
            kind,
            message: message.into(),
            retry_after: None,
            outcome: Outcome::ClientError,
        }
    }

    fn upstream(kind: ApiErrorKind, message: impl Into<String>) -> ClientError {
        ClientError {
            kind,
            message: message.into(),
            retry_after: None,
            outcome: Outcome::UpstreamError,
        }
    }

    fn status(&self, format: Format) -> u16 {
        match format {
            Format::OpenAi => self.kind.openai_status(),
            Format::Anthropic => self.kind.status(),
        }
    }

    fn body(&self, format: Format) -> Vec<u8> {
        match format {
            Format::OpenAi => wire_error::openai_body(
                self.kind,
                &self.message,
                None,
                self.kind.openai_default_code(),
            ),
            Format::Anthropic => wire_error::anthropic_body(self.kind, &self.message),
        }
    }
}

/// The ledger row of one request, written exactly once: by `commit`, or on drop when
/// the client went away first.
struct RowGuard {
    row: Option<LedgerRow>,
    ledger: LedgerHandle,
    /// Tracks the tasks that wait for ledger queue room; shutdown waits for them.
    tracker: TaskTracker,
    started: Instant,
    upstream_time: Duration,
    /// The backend that served the request, for its metric handles.
    backend: Option<Arc<Backend>>,
}

impl RowGuard {
    fn new(
        ledger: LedgerHandle,
        tracker: TaskTracker,
        request_id: String,
        started: Instant,
    ) -> RowGuard {
        RowGuard {
            row: Some(empty_row(request_id)),
            ledger,
            tracker,
            started,
            upstream_time: Duration::ZERO,
            backend: None,
        }
    }

    fn row(&mut self) -> &mut LedgerRow {
        // The row is only taken by commit/drop, which consume or end the guard.
        self.row.get_or_insert_with(|| empty_row(String::new()))
    }

    fn finalize(&self, row: &mut LedgerRow) {
        let total = self.started.elapsed();
        row.finished_at_unix_ms = unix_ms();
        row.total_us = total.as_micros() as i64;
        row.overhead_us = total.saturating_sub(self.upstream_time).as_micros() as i64;
        observe(row, self.backend.as_deref());
    }

    /// Writes the row, waiting for queue room (backpressure). The wait runs in its own
    /// task, so a client that disconnects meanwhile cannot lose the row.
    async fn commit(mut self) {
        let Some(mut row) = self.row.take() else {
            return;
        };
        self.finalize(&mut row);
        if let Err(row) = self.ledger.try_record(row) {
            let ledger = self.ledger.clone();
            let _ = self
                .tracker
                .spawn(async move { ledger.record(row).await })
                .await;
        }
    }

    /// Queues the row without waiting: used where nothing should hold the caller back.
    fn commit_detached(mut self) {
        let Some(mut row) = self.row.take() else {
            return;
        };
        self.finalize(&mut row);
        if let Err(row) = self.ledger.try_record(row) {
            let ledger = self.ledger.clone();
            self.tracker.spawn(async move { ledger.record(row).await });
        }
    }

    /// A guard with no row, left behind when the real one moves on.
    fn detached(&self) -> RowGuard {
        RowGuard {
            row: None,
            ledger: self.ledger.clone(),
            tracker: self.tracker.clone(),
            started: self.started,
            upstream_time: Duration::ZERO,
            backend: None,
        }
    }
}

fn empty_row(request_id: String) -> LedgerRow {
    LedgerRow {
        request_id,
        started_at_unix_ms: unix_ms(),
        finished_at_unix_ms: 0,
        client_key: None,
        route: String::new(),
        backend: String::new(),
        model: String::new(),
        task: None,
        stream: false,
        input_tokens: 0,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        output_tokens: 0,
        ttft_us: None,
        total_us: 0,
        overhead_us: 0,
        http_status: 0,
        outcome: Outcome::Success,
        error_kind: None,
        fallback_chain: String::new(),
        cost_nusd: 0,
        counterfactual_cost_nusd: 0,
        estimated: false,
        self_hosted: false,
    }
}

impl Drop for RowGuard {
    fn drop(&mut self) {
        let Some(mut row) = self.row.take() else {
            return;
        };
        row.outcome = Outcome::ClientDisconnect;
        row.http_status = 499;
        if row.error_kind.is_none() {
            row.error_kind = Some("client_disconnect".to_string());
        }
        self.finalize(&mut row);
        if let Err(row) = self.ledger.try_record(row) {
            if tokio::runtime::Handle::try_current().is_ok() {
                let ledger = self.ledger.clone();
                self.tracker.spawn(async move { ledger.record(row).await });
            } else {
                self.ledger
                    .note_lost(&row, "no runtime to wait for queue room");
            }
        }
    }
}

/// Prometheus series for one finished request.
fn observe(row: &LedgerRow, backend: Option<&Backend>) {
    let name = if row.backend.is_empty() {
        "none"
    } else {
        row.backend.as_str()
    };
    ::metrics::counter!(
        metrics::REQUESTS,
        "backend" => name.to_string(),
        "route" => row.route.clone(),
        "status" => status_label(row.http_status),
    )
    .increment(1);
    ::metrics::histogram!(metrics::OVERHEAD).record(row.overhead_us as f64 / 1e6);
    let Some(backend) = backend else {
        ::metrics::histogram!(metrics::LATENCY, "backend" => name.to_string())
            .record(row.total_us as f64 / 1e6);
        return;
    };
    let handles = &backend.metrics;
    let tokens = [
        row.input_tokens,
        row.cache_read_tokens,
        row.cache_write_tokens,
        row.output_tokens,
    ];
    for (counter, count) in handles.tokens.iter().zip(tokens) {
        if count > 0 {
            counter.increment(count as u64);
        }
    }
    if row.cost_nusd > 0 {
        handles.cost_nano_usd.increment(row.cost_nusd as u64);
    }
    if row.counterfactual_cost_nusd > 0 {
        handles
            .counterfactual_nano_usd
            .increment(row.counterfactual_cost_nusd as u64);
    }
    handles.latency.record(row.total_us as f64 / 1e6);
    if let Some(ttft) = row.ttft_us {
        handles.ttft.record(ttft as f64 / 1e6);
    }
}

/// Status labels without an allocation for the common ones.
fn status_label(status: u16) -> std::borrow::Cow<'static, str> {
    match status {
        200 => "200".into(),
        400 => "400".into(),
        404 => "404".into(),
        429 => "429".into(),
        499 => "499".into(),
        502 => "502".into(),
        503 => "503".into(),
        529 => "529".into(),
        other => other.to_string().into(),
    }
}

/// The client's key name: `Authorization: Bearer KEY` (OpenAI SDK, Anthropic SDK 2.x)
/// or `x-api-key: KEY` (other Anthropic clients), accepted on both endpoints.
fn authenticate(runtime: &Runtime, headers: &HeaderMap) -> Result<Option<String>, ClientError> {
    let keys = &runtime.config.client_keys;
    if keys.is_empty() {
        return Ok(None);
    }
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    let Some(presented) = presented else {
        return Err(ClientError::client(
            ApiErrorKind::Authentication,
            "missing API key: send `Authorization: Bearer KEY` or `x-api-key: KEY`",
        ));
    };
    keys.iter()
        .find(|k| constant_time_eq(k.secret.expose().as_bytes(), presented.trim().as_bytes()))
        .map(|k| Some(k.name.clone()))
        .ok_or_else(|| ClientError::client(ApiErrorKind::Authentication, "invalid API key"))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse(format: Format, body: &[u8]) -> Result<ClientRequest, ClientError> {
    let invalid = |e: serde_json::Error| {
        let message = if e.is_syntax() || e.is_eof() {
            format!("invalid JSON body: {e}")
        } else {
            format!("invalid request body: {e}")
        };
        ClientError::client(ApiErrorKind::InvalidRequest, message)
    };
    let request = match format {
        Format::OpenAi => ClientRequest::OpenAi(serde_json::from_slice(body).map_err(invalid)?),
        Format::Anthropic => {
            ClientRequest::Anthropic(serde_json::from_slice(body).map_err(invalid)?)
        }
    };
    validate(&request)?;
    Ok(request)
}

/// The checks the official APIs make before generating anything, so that a backend
/// that answers bad input with a 500 (the llama.cpp server) never sees it.
fn validate(request: &ClientRequest) -> Result<(), ClientError> {
    let bad = |message: String| Err(ClientError::client(ApiErrorKind::InvalidRequest, message));
    if request.model().is_empty() {
        return bad("model: must be a non-empty string".to_string());
    }
    let (messages_empty, temperature, temperature_max, top_p) = match request {
        ClientRequest::OpenAi(r) => (r.messages.is_empty(), r.temperature, 2.0, r.top_p),
        ClientRequest::Anthropic(r) => (r.messages.is_empty(), r.temperature, 1.0, r.top_p),
    };
    if messages_empty {
        return bad("messages: must contain at least one message".to_string());
    }
    if let Some(t) = temperature {
        if !(0.0..=temperature_max).contains(&t) {
            return bad(format!(
                "temperature: {t} is out of range; expected 0 to {temperature_max}"
            ));
        }
    }
    if let Some(p) = top_p {
        if !(0.0..=1.0).contains(&p) {
            return bad(format!("top_p: {p} is out of range; expected 0 to 1"));
        }
    }
    match request {
        ClientRequest::Anthropic(r) => {
            match r.max_tokens {
                None => return bad("max_tokens: Field required".to_string()),
                Some(0) => return bad("max_tokens: must be at least 1".to_string()),
                Some(_) => {}
            }
            for (index, message) in r.messages.iter().enumerate() {
                if message.role != "user" && message.role != "assistant" {
                    return bad(format!(
                        "messages.{index}.role: `{}` is not allowed; expected `user` or `assistant` (put the system prompt in `system`)",
                        message.role
                    ));
                }
            }
        }
        ClientRequest::OpenAi(r) => {
            if r.max_tokens == Some(0) || r.max_completion_tokens == Some(0) {
                return bad("max_tokens: must be at least 1".to_string());
            }
            for (index, message) in r.messages.iter().enumerate() {
                if !matches!(
                    message.role.as_str(),
                    "system" | "developer" | "user" | "assistant" | "tool" | "function"
                ) {
                    return bad(format!(
                        "messages[{index}].role: `{}` is not a valid role",
                        message.role
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Builds the upstream body for `backend`, translating if it speaks the other format.
fn upstream_body(
    request: &mut ClientRequest,
    backend: &BackendConfig,
    default_max_tokens: u32,
) -> Result<Bytes, ClientError> {
    let unsupported = |e: translate::Unsupported| {
        ClientError::client(ApiErrorKind::InvalidRequest, e.to_string())
    };
    let encoded = |value: Result<Vec<u8>, serde_json::Error>| {
        value.map(Bytes::from).map_err(|e| {
            ClientError::upstream(
                ApiErrorKind::Api,
                format!("cannot encode the upstream request: {e}"),
            )
        })
    };
    match (request, backend.kind.speaks_anthropic()) {
        // Same format: swap the few fields that differ, encode, and put them back, so
        // the request is never deep-copied and stays as the client sent it.
        (ClientRequest::Anthropic(r), true) => {
            let model = std::mem::replace(&mut r.model, backend.model.clone());
            let metadata = r.metadata.take();
            r.metadata = anthropic_metadata(metadata.as_ref());
            let body = encoded(serde_json::to_vec(r));
            r.model = model;
            r.metadata = metadata;
            body
        }
        (ClientRequest::OpenAi(r), false) => {
            let model = std::mem::replace(&mut r.model, backend.model.clone());
            let metadata = r.metadata.take();
            r.metadata = openai_metadata(metadata.as_ref(), backend.kind);
            let stream_options = r.stream_options.clone();
            ask_for_stream_usage(r);
            let body = encoded(serde_json::to_vec(r));
            r.model = model;
            r.metadata = metadata;
            r.stream_options = stream_options;
            body
        }
        (ClientRequest::OpenAi(r), true) => {
            let mut upstream = translate::openai_to_anthropic_request(r, default_max_tokens)
                .map_err(unsupported)?;
            upstream.model.clone_from(&backend.model);
            upstream.metadata = anthropic_metadata(upstream.metadata.as_ref());
            encoded(serde_json::to_vec(&upstream))
        }
        (ClientRequest::Anthropic(r), false) => {
            let mut upstream = translate::anthropic_to_openai_request(r).map_err(unsupported)?;
            upstream.model.clone_from(&backend.model);
            upstream.metadata = openai_metadata(upstream.metadata.as_ref(), backend.kind);
            ask_for_stream_usage(&mut upstream);
            encoded(serde_json::to_vec(&upstream))
        }
    }
}

/// Anthropic accepts only `user_id` in metadata; the task label is ours.
fn anthropic_metadata(metadata: Option<&serde_json::Value>) -> Option<serde_json::Value> {
    let mut map = metadata?.as_object()?.clone();
    map.remove("task");
    (!map.is_empty()).then_some(serde_json::Value::Object(map))
}

/// OpenAI keeps metadata (without our task label); compatible servers get none.
fn openai_metadata(
    metadata: Option<&serde_json::Map<String, serde_json::Value>>,
    kind: crate::config::BackendKind,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    if kind == crate::config::BackendKind::OpenaiCompatible {
        return None;
    }
    let mut map = metadata?.clone();
    map.remove("task");
    (!map.is_empty()).then_some(map)
}

/// Asks an OpenAI upstream for usage on streams even when the client did not; the
/// extra chunk is stripped before the client sees it.
fn ask_for_stream_usage(request: &mut openai::ChatRequest) {
    if request.is_stream() {
        let options = request.stream_options.get_or_insert_with(Default::default);
        options.include_usage = Some(true);
    }
}

/// Why an upstream attempt failed, before any byte reached the client.
struct Failure {
    label: String,
    kind: ApiErrorKind,
    message: String,
    retryable: bool,
    counts_for_circuit: bool,
    retry_after: Option<Duration>,
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(3600.0)))
}

async fn send(backend: &Backend, body: Bytes) -> Result<reqwest::Response, Failure> {
    let config = &backend.config;
    let mut request = backend
        .client
        .post(backend.endpoint.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body);
    if config.kind.speaks_anthropic() {
        request = request.header("anthropic-version", &config.anthropic_version);
        if let Some(key) = &config.api_key {
            request = request.header("x-api-key", key.expose());
        }
    } else if let Some(key) = &config.api_key {
        request = request.bearer_auth(key.expose());
    }
    let name = &config.name;
    let response = match tokio::time::timeout(config.timeouts.first_byte, request.send()).await {
        Err(_) => {
            return Err(Failure {
                label: format!("{name}:timeout"),
                kind: ApiErrorKind::Timeout,
                message: format!(
                    "backend `{name}` sent no response within {} ms",
                    config.timeouts.first_byte.as_millis()
                ),
                retryable: true,
                counts_for_circuit: true,
                retry_after: None,
            })
        }
        Ok(Err(e)) => {
            let what = if e.is_connect() {
                "connect"
            } else {
                "transport"
            };
            return Err(Failure {
                label: format!("{name}:{what}"),
                kind: ApiErrorKind::BadGateway,
                message: format!("backend `{name}` {what} error: {}", error_chain(&e)),
                retryable: true,
                counts_for_circuit: true,
                retry_after: None,
            });
        }
        Ok(Ok(response)) => response,
    };
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let wait = retry_after(response.headers());
    let body = tokio::time::timeout(Duration::from_secs(5), response.bytes())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let upstream_message = wire_error::message_from_body(&body)
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    let retryable = status == 429 || status >= 500;
    let kind = match status {
        401 | 403 => ApiErrorKind::BadGateway,
        _ => wire_error::kind_from_body(&body).unwrap_or_else(|| ApiErrorKind::from_status(status)),
    };
    let message = match status {
        401 | 403 => format!(
            "backend `{name}` rejected the gateway's credentials ({status}): {upstream_message}"
        ),
        _ => format!("backend `{name}` answered {status}: {upstream_message}"),
    };
    Err(Failure {
        label: format!("{name}:{status}"),
        kind,
        message,
        retryable,
        counts_for_circuit: status >= 500,
        retry_after: wait,
    })
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

struct Attempted {
    backend: Arc<Backend>,
    slot: InFlight,
    upstream: Upstream,
    sent_at: Instant,
}

/// What a successful attempt holds: a stream to relay, or a whole response read.
enum Upstream {
    Stream(reqwest::Response),
    Complete(Completed),
}

/// The entry point for both generation endpoints.
pub async fn handle(state: AppState, format: Format, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let request_id = uuid::Uuid::now_v7().to_string();
    let runtime = state.runtime.load_full();
    let mut guard = RowGuard::new(
        state.ledger.clone(),
        state.tracker.clone(),
        request_id.clone(),
        started,
    );
    match run(&runtime, format, &headers, body, &mut guard).await {
        Ok(response) => response,
        Err(error) => {
            let status = error.status(format);
            let row = guard.row();
            row.http_status = status;
            row.outcome = error.outcome;
            row.error_kind = Some(error.kind.anthropic_type().to_string());
            let route = row.route.clone();
            let backend = row.backend.clone();
            let response = error_response(format, &error, &request_id, &route, &backend);
            guard.commit().await;
            response
        }
    }
}

fn error_response(
    format: Format,
    error: &ClientError,
    request_id: &str,
    route: &str,
    backend: &str,
) -> Response {
    let mut response = Response::new(Body::from(error.body(format)));
    *response.status_mut() =
        StatusCode::from_u16(error.status(format)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(wait) = error.retry_after {
        if let Ok(value) = HeaderValue::from_str(&wait.as_secs_f64().ceil().to_string()) {
            headers.insert(http::header::RETRY_AFTER, value);
        }
    }
    tag(headers, request_id, route, backend);
    response
}

fn tag(headers: &mut HeaderMap, request_id: &str, route: &str, backend: &str) {
    let value = |text: &str| {
        HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
    };
    headers.insert(HEADER_REQUEST_ID, value(request_id));
    headers.insert(
        HEADER_ROUTE,
        value(if route.is_empty() { "none" } else { route }),
    );
    headers.insert(
        HEADER_BACKEND,
        value(if backend.is_empty() { "none" } else { backend }),
    );
}

async fn run(
    runtime: &Arc<Runtime>,
    format: Format,
    headers: &HeaderMap,
    body: Body,
    guard: &mut RowGuard,
) -> Result<Response, ClientError> {
    let config = &runtime.config;
    let key = authenticate(runtime, headers)?;
    guard.row().client_key = key.clone();
    // While draining, requests already read are served in full: the server stops
    // reading new ones, and /readyz reports not ready so balancers move away.
    let limit = config.max_body_bytes;
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let too_large = || {
        ClientError::client(
            ApiErrorKind::RequestTooLarge,
            format!(
                "request body exceeds the gateway's limit of {limit} bytes (server.max_body_bytes)"
            ),
        )
    };
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if error_chain(&e).contains("length limit") {
            too_large()
        } else {
            ClientError::client(
                ApiErrorKind::InvalidRequest,
                format!("cannot read the request body: {e}"),
            )
        }
    })?;
    let mut request = parse(format, &bytes)?;
    let stream = request.stream();
    let task = headers
        .get(HEADER_TASK)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.metadata_task());
    let input_estimate = request.estimated_input_tokens();
    {
        let row = guard.row();
        row.stream = stream;
        row.model = request.model().to_string();
        row.task = task.clone();
        row.input_tokens = input_estimate as i64;
        row.estimated = true;
    }
    let Some(route) = runtime.route(&RouteQuery {
        model: request.model(),
        task: task.as_deref(),
        input_tokens: input_estimate,
        client_key: key.as_deref(),
    }) else {
        let known = runtime.model_names();
        return Err(ClientError::client(
            ApiErrorKind::NotFound,
            format!(
                "model `{}` has no route{}; valid models: {}",
                request.model(),
                task.as_deref()
                    .map_or(String::new(), |t| format!(" for task `{t}`")),
                known.join(", ")
            ),
        ));
    };
    guard.row().route.clone_from(&route.name);
    let attempted = forward(runtime, &route, format, &mut request, input_estimate, guard).await?;
    let backend = Arc::clone(&attempted.backend);
    guard.backend = Some(Arc::clone(&backend));
    {
        let row = guard.row();
        row.backend.clone_from(&backend.config.name);
        row.self_hosted = backend.config.self_hosted();
        row.model.clone_from(&backend.config.model);
    }
    let context = Context {
        format,
        route,
        request_id: guard.row().request_id.clone(),
        input_estimate,
        client_wants_usage: match &request {
            ClientRequest::OpenAi(r) => r.wants_stream_usage(),
            ClientRequest::Anthropic(_) => false,
        },
        total_deadline: attempted.sent_at + backend.config.timeouts.total,
    };
    let Attempted {
        backend,
        slot,
        upstream,
        sent_at,
    } = attempted;
    match upstream {
        Upstream::Stream(response) => {
            let detached = guard.detached();
            let guard = std::mem::replace(guard, detached);
            Ok(stream_response(
                context, backend, slot, response, sent_at, guard,
            ))
        }
        Upstream::Complete(completed) => {
            drop(slot);
            Ok(complete_response(context, &backend, completed, guard).await)
        }
    }
}

struct Context {
    format: Format,
    route: RouteChoice,
    request_id: String,
    input_estimate: u64,
    client_wants_usage: bool,
    total_deadline: Instant,
}

/// Tries the route's targets in order: skips those whose context is too small, that
/// are full (spill-over), open-circuited or holding off after a `retry-after`; falls
/// back on retryable failures; waits out a `retry-after` within the retry budget.
async fn forward(
    runtime: &Arc<Runtime>,
    route: &RouteChoice,
    format: Format,
    request: &mut ClientRequest,
    input_estimate: u64,
    guard: &mut RowGuard,
) -> Result<Attempted, ClientError> {
    let config = &runtime.config;
    let stream = request.stream();
    let needed_context = input_estimate + request.max_tokens(config.default_max_tokens);
    let mut chain: Vec<String> = Vec::new();
    let mut attempts = 0u32;
    let mut waited = Duration::ZERO;
    let mut last_failure: Option<Failure> = None;
    let mut context_misses = Vec::new();
    loop {
        let mut soonest_retry: Option<Duration> = None;
        for &index in &route.targets {
            let backend = &runtime.backends[index];
            let name = &backend.config.name;
            if needed_context > backend.config.max_context {
                chain.push(format!("{name}:context"));
                context_misses.push(format!("{name} ({} tokens)", backend.config.max_context));
                continue;
            }
            // The slot first: a half-open circuit hands out one probe, which must not be
            // spent on a backend that turns out to be full.
            let Some(slot) = backend.try_reserve() else {
                chain.push(format!("{name}:full"));
                continue;
            };
            if !backend.circuit.try_acquire() {
                drop(slot);
                let held = backend.circuit.held_for();
                if held > Duration::ZERO {
                    soonest_retry = Some(soonest_retry.map_or(held, |s| s.min(held)));
                    chain.push(format!("{name}:held"));
                } else {
                    chain.push(format!("{name}:open"));
                }
                continue;
            }
            let body = upstream_body(request, &backend.config, config.default_max_tokens)?;
            attempts += 1;
            let sent_at = Instant::now();
            let result = match send(backend, body).await {
                Ok(response) if stream => {
                    Ok((response.status().as_u16(), Upstream::Stream(response)))
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let deadline = sent_at + backend.config.timeouts.total;
                    read_complete(format, backend, response, deadline, input_estimate)
                        .await
                        .map(|completed| (status, Upstream::Complete(completed)))
                }
                Err(failure) => Err(failure),
            };
            guard.upstream_time += sent_at.elapsed();
            match result {
                Ok((status, upstream)) => {
                    chain.push(format!("{name}:{status}"));
                    guard.row().fallback_chain = chain.join(">");
                    ::metrics::counter!(metrics::UPSTREAM_ATTEMPTS, "backend" => name.clone(), "result" => "ok").increment(1);
                    if !stream {
                        backend.circuit.on_success();
                    }
                    return Ok(Attempted {
                        backend: Arc::clone(backend),
                        slot,
                        upstream,
                        sent_at,
                    });
                }
                Err(failure) => {
                    drop(slot);
                    ::metrics::counter!(metrics::UPSTREAM_ATTEMPTS, "backend" => name.clone(), "result" => "error").increment(1);
                    chain.push(failure.label.clone());
                    if failure.counts_for_circuit {
                        backend.circuit.on_failure();
                    } else {
                        // A 429 or 4xx answer proves the backend is up.
                        backend.circuit.on_success();
                    }
                    ::metrics::gauge!(metrics::CIRCUIT, "backend" => name.clone())
                        .set(backend.circuit.state().gauge());
                    if let Some(wait) = failure.retry_after {
                        backend.circuit.hold_off(wait);
                        soonest_retry = Some(soonest_retry.map_or(wait, |s| s.min(wait)));
                    }
                    let retryable = failure.retryable;
                    last_failure = Some(failure);
                    if !retryable || attempts >= config.max_attempts {
                        return Err(give_up(chain, last_failure, &context_misses, guard));
                    }
                }
            }
        }
        // Every target tried or skipped. Wait out a retry-after if the budget allows.
        match soonest_retry {
            Some(wait)
                if attempts < config.max_attempts && waited + wait <= config.max_retry_wait =>
            {
                tokio::time::sleep(wait + Duration::from_millis(5)).await;
                waited += wait;
                context_misses.clear();
            }
            _ => return Err(give_up(chain, last_failure, &context_misses, guard)),
        }
    }
}

fn give_up(
    chain: Vec<String>,
    last_failure: Option<Failure>,
    context_misses: &[String],
    guard: &mut RowGuard,
) -> ClientError {
    let chain_text = chain.join(">");
    guard.row().fallback_chain.clone_from(&chain_text);
    if let Some(failure) = last_failure {
        let mut error = ClientError::upstream(
            failure.kind,
            format!("{} (tried: {chain_text})", failure.message),
        );
        if !failure.retryable && failure.kind == ApiErrorKind::InvalidRequest {
            error.outcome = Outcome::ClientError;
        }
        error.retry_after = failure.retry_after;
        return error;
    }
    if !context_misses.is_empty() && context_misses.len() == chain.len() {
        return ClientError::client(
            ApiErrorKind::InvalidRequest,
            format!(
                "the prompt (~{} tokens estimated) plus max_tokens exceeds the context window of every eligible backend: {}",
                guard.row().input_tokens,
                context_misses.join(", ")
            ),
        );
    }
    ClientError::upstream(
        ApiErrorKind::Overloaded,
        format!("no backend of this route can take the request now (tried: {chain_text})"),
    )
}

fn price(backend: &BackendConfig, route: &RouteChoice, usage: &TokenUsage) -> (Money, Money) {
    let tokens = TokenCounts {
        input: usage.input_tokens,
        cache_read: usage.cache_read_tokens,
        cache_write: usage.cache_write_tokens,
        cache_write_1h: 0,
        output: usage.output_tokens,
    };
    if backend.self_hosted() {
        let counterfactual = route
            .reference_api
            .as_ref()
            .map_or(Money::ZERO, |m| request_cost(m, &tokens));
        (Money::ZERO, counterfactual)
    } else if let Some(model) = &backend.price {
        let cost = request_cost(model, &tokens);
        (cost, cost)
    } else {
        (Money::ZERO, Money::ZERO)
    }
}

fn record_usage(
    guard: &mut RowGuard,
    backend: &BackendConfig,
    route: &RouteChoice,
    usage: &TokenUsage,
    estimated: bool,
) {
    let (cost, counterfactual) = price(backend, route, usage);
    let row = guard.row();
    row.input_tokens = usage.input_tokens as i64;
    row.cache_read_tokens = usage.cache_read_tokens as i64;
    row.cache_write_tokens = usage.cache_write_tokens as i64;
    row.output_tokens = usage.output_tokens as i64;
    row.cost_nusd = cost.nano_usd();
    row.counterfactual_cost_nusd = counterfactual.nano_usd();
    row.estimated = estimated;
}

fn success_headers(
    response: &mut Response,
    context: &Context,
    backend: &str,
    content_type: &'static str,
) {
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    tag(headers, &context.request_id, &context.route.name, backend);
}

/// A non-streaming response: read it whole, take its usage, translate if needed.
/// Reads and checks a whole (non-streamed) upstream response and converts it to the
/// client's format. Nothing has reached the client yet, so every failure here may fall
/// back to the next target, except running out of the total time.
async fn read_complete(
    format: Format,
    backend: &Backend,
    response: reqwest::Response,
    deadline: Instant,
    input_estimate: u64,
) -> Result<Completed, Failure> {
    let config = &backend.config;
    let name = &config.name;
    let remaining = deadline.saturating_duration_since(Instant::now());
    let body = match tokio::time::timeout(remaining, response.bytes()).await {
        Err(_) => {
            return Err(Failure {
                label: format!("{name}:timeout"),
                kind: ApiErrorKind::Timeout,
                message: format!(
                    "backend `{name}` did not finish within {} ms",
                    config.timeouts.total.as_millis()
                ),
                retryable: false,
                counts_for_circuit: true,
                retry_after: None,
            })
        }
        Ok(Err(e)) => {
            return Err(Failure {
                label: format!("{name}:broken"),
                kind: ApiErrorKind::BadGateway,
                message: format!(
                    "backend `{name}` broke off its response: {}",
                    error_chain(&e)
                ),
                retryable: true,
                counts_for_circuit: true,
                retry_after: None,
            })
        }
        Ok(Ok(body)) => body,
    };
    let invalid =
        || Failure {
            label: format!("{name}:invalid"),
            kind: ApiErrorKind::BadGateway,
            message: format!(
            "backend `{name}` returned a body that is not a valid {} response (starts with {:?})",
            if config.kind.speaks_anthropic() { "Anthropic" } else { "OpenAI" },
            String::from_utf8_lossy(&body[..body.len().min(60)])
        ),
            retryable: true,
            counts_for_circuit: true,
            retry_after: None,
        };
    let completed = match (format, config.kind.speaks_anthropic()) {
        (Format::OpenAi, false) => {
            #[derive(serde::Deserialize)]
            struct Peek {
                usage: Option<openai::Usage>,
                #[serde(default)]
                choices: Option<Vec<serde::de::IgnoredAny>>,
            }
            let peek: Peek = serde_json::from_slice(&body).map_err(|_| invalid())?;
            if peek.choices.is_none() {
                return Err(invalid());
            }
            let (usage, estimated) = match peek.usage {
                Some(usage) => (usage.to_token_usage(), false),
                None => (estimate_from_openai_body(&body, input_estimate), true),
            };
            Completed {
                body,
                usage,
                estimated,
            }
        }
        (Format::Anthropic, true) => {
            #[derive(serde::Deserialize)]
            struct Peek {
                usage: Option<anthropic::Usage>,
                content: Option<serde::de::IgnoredAny>,
            }
            let peek: Peek = serde_json::from_slice(&body).map_err(|_| invalid())?;
            if peek.content.is_none() {
                return Err(invalid());
            }
            let (usage, estimated) = match peek.usage {
                Some(usage) => (usage.to_token_usage(), false),
                None => (
                    TokenUsage {
                        input_tokens: input_estimate,
                        ..Default::default()
                    },
                    true,
                ),
            };
            Completed {
                body,
                usage,
                estimated,
            }
        }
        (Format::OpenAi, true) => {
            let upstream: anthropic::MessagesResponse =
                serde_json::from_slice(&body).map_err(|_| invalid())?;
            let translated = translate::anthropic_to_openai_response(&upstream, &upstream.model);
            Completed {
                body: Bytes::from(serde_json::to_vec(&translated).unwrap_or_default()),
                usage: upstream.usage.to_token_usage(),
                estimated: false,
            }
        }
        (Format::Anthropic, false) => {
            let upstream: openai::ChatResponse =
                serde_json::from_slice(&body).map_err(|_| invalid())?;
            let (usage, estimated) = match &upstream.usage {
                Some(usage) => (usage.to_token_usage(), false),
                None => (estimate_from_openai_body(&body, input_estimate), true),
            };
            let translated = translate::openai_to_anthropic_response(&upstream, &upstream.model);
            Completed {
                body: Bytes::from(serde_json::to_vec(&translated).unwrap_or_default()),
                usage,
                estimated,
            }
        }
    };
    Ok(completed)
}

/// A whole response, already in the client's format, with its usage.
struct Completed {
    body: Bytes,
    usage: TokenUsage,
    estimated: bool,
}

/// Answers a non-streamed request with the response `forward` read and checked.
async fn complete_response(
    context: Context,
    backend: &Backend,
    completed: Completed,
    guard: &mut RowGuard,
) -> Response {
    let config = &backend.config;
    record_usage(
        guard,
        config,
        &context.route,
        &completed.usage,
        completed.estimated,
    );
    guard.row().http_status = 200;
    let mut response = Response::new(Body::from(completed.body));
    success_headers(&mut response, &context, &config.name, "application/json");
    let detached = guard.detached();
    std::mem::replace(guard, detached).commit().await;
    response
}

fn estimate_from_openai_body(body: &[u8], input_estimate: u64) -> TokenUsage {
    let text = serde_json::from_slice::<openai::ChatResponse>(body)
        .ok()
        .and_then(|r| r.choices.into_iter().next())
        .and_then(|c| c.message.content)
        .unwrap_or_default();
    TokenUsage {
        input_tokens: input_estimate,
        output_tokens: translate::estimate_tokens(&text),
        ..Default::default()
    }
}

/// Per-stream translation and usage state.
enum StreamMode {
    /// OpenAI → OpenAI, passed through; strips the usage chunk the client did not ask for.
    OpenAiPass(OpenAiStreamUsage),
    /// Anthropic → Anthropic, passed through.
    AnthropicPass(AnthropicStreamUsage),
    /// Anthropic backend → OpenAI client.
    ToOpenAi(Box<AnthropicToOpenAiStream>),
    /// OpenAI backend → Anthropic client.
    ToAnthropic(Box<OpenAiToAnthropicStream>),
}

struct StreamState {
    context: Context,
    backend: Arc<Backend>,
    _slot: InFlight,
    upstream: futures_util::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    parser: SseParser,
    mode: StreamMode,
    guard: RowGuard,
    sent_at: Instant,
    first_token_sent: bool,
    finished: bool,
}

fn stream_response(
    context: Context,
    backend: Arc<Backend>,
    slot: InFlight,
    response: reqwest::Response,
    sent_at: Instant,
    mut guard: RowGuard,
) -> Response {
    let id = format!("gen-{}", context.request_id);
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mode = match (context.format, backend.config.kind.speaks_anthropic()) {
        (Format::OpenAi, false) => StreamMode::OpenAiPass(OpenAiStreamUsage::new()),
        (Format::Anthropic, true) => StreamMode::AnthropicPass(AnthropicStreamUsage::new()),
        (Format::OpenAi, true) => StreamMode::ToOpenAi(Box::new(AnthropicToOpenAiStream::new(
            &id,
            &backend.config.model,
            created,
            context.client_wants_usage,
        ))),
        (Format::Anthropic, false) => StreamMode::ToAnthropic(Box::new(
            OpenAiToAnthropicStream::new(
                &format!("msg_{}", context.request_id.replace('-', "")),
                &backend.config.model,
            )
            .with_input_estimate(context.input_estimate),
        )),
    };
    guard.row().http_status = 200;
    let mut out = Response::new(Body::empty());
    {
        let headers = out.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
        tag(
            headers,
            &context.request_id,
            &context.route.name,
            &backend.config.name,
        );
    }
    let state = StreamState {
        upstream: response.bytes_stream().boxed(),
        context,
        backend,
        _slot: slot,
        parser: SseParser::new(),
        mode,
        guard,
        sent_at,
        first_token_sent: false,
        finished: false,
    };
    *out.body_mut() = Body::from_stream(futures_util::stream::unfold(state, next_frames));
    out
}

async fn next_frames(
    mut state: StreamState,
) -> Option<(Result<Bytes, std::io::Error>, StreamState)> {
    if state.finished {
        return None;
    }
    loop {
        let next =
            tokio::time::timeout_at(state.context.total_deadline.into(), state.upstream.next())
                .await;
        let mut out = BytesMut::new();
        match next {
            Ok(Some(Ok(chunk))) => {
                let events = state.parser.feed(&chunk);
                let mut done = false;
                for event in events {
                    done |= state.on_event(&event, &mut out);
                }
                if !state.first_token_sent && !out.is_empty() {
                    state.first_token_sent = true;
                    state.guard.row().ttft_us =
                        Some(state.guard.started.elapsed().as_micros() as i64);
                }
                if done {
                    state.finish_ok();
                    return Some((Ok(out.freeze()), state));
                }
                if out.is_empty() {
                    continue;
                }
                return Some((Ok(out.freeze()), state));
            }
            Ok(Some(Err(e))) => {
                let message = format!(
                    "backend `{}` broke off the stream: {}",
                    state.backend.config.name,
                    error_chain(&e)
                );
                state.fail(ApiErrorKind::Overloaded, &message, &mut out);
                return Some((Ok(out.freeze()), state));
            }
            Ok(None) => {
                if let Some(event) = state.parser.finish() {
                    if state.on_event(&event, &mut out) {
                        state.finish_ok();
                        return Some((Ok(out.freeze()), state));
                    }
                }
                let message = format!(
                    "backend `{}` ended the stream before it was complete",
                    state.backend.config.name
                );
                state.fail(ApiErrorKind::Overloaded, &message, &mut out);
                return Some((Ok(out.freeze()), state));
            }
            Err(_) => {
                let message = format!(
                    "backend `{}` did not finish within {} ms",
                    state.backend.config.name,
                    state.backend.config.timeouts.total.as_millis()
                );
                state.fail(ApiErrorKind::Timeout, &message, &mut out);
                return Some((Ok(out.freeze()), state));
            }
        }
    }
}

/// Usage of an Anthropic stream: the final `message_delta` counts when they came;
/// otherwise what was seen, with the input estimated if `message_start` never came and
/// the output at least the number of text deltas, marked estimated.
fn anthropic_stream_usage(
    tracker: &AnthropicStreamUsage,
    input_estimate: u64,
) -> (TokenUsage, bool) {
    let mut usage = tracker.usage();
    if tracker.saw_final_usage() {
        return (usage, false);
    }
    if !tracker.saw_message_start() {
        usage.input_tokens = input_estimate;
    }
    usage.output_tokens = usage.output_tokens.max(tracker.estimated_output_tokens());
    (usage, true)
}

/// Ends a passed-through OpenAI stream. A client that asked for `include_usage` gets
/// its usage chunk even from a server that sends none (the llama.cpp server ignores
/// the option): the estimate, as the ledger records it.
fn finish_openai_stream(usage: &OpenAiStreamUsage, context: &Context, out: &mut BytesMut) {
    if context.client_wants_usage && usage.usage().is_none() {
        let estimate = TokenUsage {
            input_tokens: context.input_estimate,
            output_tokens: usage.estimated_output_tokens(),
            ..TokenUsage::default()
        };
        out.extend_from_slice(&usage.usage_chunk(&estimate));
    }
    out.extend_from_slice(wire::sse::OPENAI_DONE);
}

impl StreamState {
    /// Handles one upstream SSE event, appending client frames to `out`. Returns true
    /// when the stream ended normally.
    fn on_event(&mut self, event: &wire::sse::SseEvent, out: &mut BytesMut) -> bool {
        match &mut self.mode {
            StreamMode::OpenAiPass(usage) => {
                if event.is_openai_done() {
                    finish_openai_stream(usage, &self.context, out);
                    return true;
                }
                match openai::parse_stream_data(&event.data) {
                    openai::StreamData::Chunk(mut chunk) => {
                        usage.on_chunk(&chunk);
                        if chunk.usage.is_some() && !self.context.client_wants_usage {
                            if chunk.choices.is_empty() {
                                return false;
                            }
                            chunk.usage = None;
                            if let Ok(json) = serde_json::to_vec(&chunk) {
                                out.extend_from_slice(&wire::sse::openai_data(&json));
                            }
                            return false;
                        }
                        out.extend_from_slice(&wire::sse::openai_data(event.data.as_bytes()));
                    }
                    openai::StreamData::Error(error) => {
                        self.fail_with_openai_error(&error, out);
                    }
                    openai::StreamData::Done => {
                        finish_openai_stream(usage, &self.context, out);
                        return true;
                    }
                    openai::StreamData::Invalid(_) => {}
                }
                false
            }
            StreamMode::AnthropicPass(usage) => {
                let name = event.event.as_deref().unwrap_or("message");
                if name == "error" {
                    self.fail_with_anthropic_error(&event.data, out);
                    return false;
                }
                usage.on_data(&event.data);
                out.extend_from_slice(&wire::sse::anthropic_event(name, event.data.as_bytes()));
                name == "message_stop"
            }
            StreamMode::ToOpenAi(translator) => {
                if event.event.as_deref() == Some("error") {
                    self.fail_with_anthropic_error(&event.data, out);
                    return false;
                }
                let Ok(parsed) = anthropic::StreamEvent::parse(&event.data) else {
                    return false;
                };
                for frame in translator.on_event(&parsed) {
                    out.extend_from_slice(&frame);
                }
                translator.is_done()
            }
            StreamMode::ToAnthropic(translator) => {
                if let openai::StreamData::Error(error) = openai::parse_stream_data(&event.data) {
                    self.fail_with_openai_error(&error, out);
                    return false;
                }
                for frame in translator.on_data(&event.data) {
                    out.extend_from_slice(&frame);
                }
                translator.is_done()
            }
        }
    }

    /// An OpenAI mid-stream `{"error": …}` from upstream, passed on in the client's format.
    fn fail_with_openai_error(&mut self, error: &openai::ErrorObject, out: &mut BytesMut) {
        let kind = ApiErrorKind::from_openai_error(&error.kind, error.code_str());
        let message = format!(
            "backend `{}` reported: {}",
            self.backend.config.name, error.message
        );
        self.fail(kind, &message, out);
    }

    /// An Anthropic `event: error` from upstream, passed on in the client's format.
    fn fail_with_anthropic_error(&mut self, data: &str, out: &mut BytesMut) {
        let kind = wire_error::kind_from_body(data.as_bytes()).unwrap_or(ApiErrorKind::Overloaded);
        let message = wire_error::message_from_body(data.as_bytes()).unwrap_or_default();
        let message = format!("backend `{}` reported: {message}", self.backend.config.name);
        self.fail(kind, &message, out);
    }

    fn usage(&self) -> (TokenUsage, bool) {
        let input = self.context.input_estimate;
        match &self.mode {
            StreamMode::OpenAiPass(usage) => match usage.usage() {
                Some(u) => (u, false),
                None => (
                    TokenUsage {
                        input_tokens: input,
                        output_tokens: usage.estimated_output_tokens(),
                        ..Default::default()
                    },
                    true,
                ),
            },
            StreamMode::AnthropicPass(usage) => anthropic_stream_usage(usage, input),
            StreamMode::ToOpenAi(translator) => {
                anthropic_stream_usage(translator.usage_tracker(), input)
            }
            StreamMode::ToAnthropic(translator) => {
                if translator.has_usage() {
                    (translator.usage(), false)
                } else {
                    (
                        TokenUsage {
                            input_tokens: input,
                            output_tokens: translator.estimated_output_tokens(),
                            ..Default::default()
                        },
                        true,
                    )
                }
            }
        }
    }

    fn settle(&mut self) {
        self.finished = true;
        self.guard.upstream_time = self.sent_at.elapsed();
        let (usage, estimated) = self.usage();
        record_usage(
            &mut self.guard,
            &self.backend.config,
            &self.context.route,
            &usage,
            estimated,
        );
    }

    fn finish_ok(&mut self) {
        self.backend.circuit.on_success();
        self.settle();
        self.commit_row();
    }

    /// A mid-stream failure: an error event in the client's format, and a row with the
    /// partial usage, marked estimated where the upstream never reported it.
    fn fail(&mut self, kind: ApiErrorKind, message: &str, out: &mut BytesMut) {
        if self.finished {
            return;
        }
        let frames = match &mut self.mode {
            StreamMode::ToOpenAi(translator) => translator.fail(kind, message),
            StreamMode::ToAnthropic(translator) => translator.fail(kind, message),
            StreamMode::OpenAiPass(_) => vec![wire_error::openai_stream_error(kind, message)],
            StreamMode::AnthropicPass(_) => vec![wire_error::anthropic_stream_error(kind, message)],
        };
        for frame in frames {
            out.extend_from_slice(&frame);
        }
        if matches!(
            kind,
            ApiErrorKind::Overloaded
                | ApiErrorKind::Api
                | ApiErrorKind::BadGateway
                | ApiErrorKind::Timeout
        ) {
            self.backend.circuit.on_failure();
        }
        self.settle();
        let row = self.guard.row();
        row.outcome = Outcome::UpstreamError;
        row.error_kind = Some(kind.anthropic_type().to_string());
        self.commit_row();
    }

    fn commit_row(&mut self) {
        let detached = self.guard.detached();
        // The row is complete; queue it without holding the stream back.
        std::mem::replace(&mut self.guard, detached).commit_detached();
    }
}
