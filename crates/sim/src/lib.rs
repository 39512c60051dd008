//! A simulated LLM backend that speaks both the OpenAI Chat Completions and the
//! Anthropic Messages wire formats, with deterministic output, exact usage, vLLM-style
//! metrics and fault injection. Tests, benchmarks and dry runs of a gateway config
//! point at it instead of a real provider.
//!
//! # Endpoints
//!
//! | method and path | what |
//! |---|---|
//! | `POST /v1/chat/completions` | OpenAI `chat.completion`, or `chat.completion.chunk` SSE with `stream: true` |
//! | `POST /v1/messages` | Anthropic `message`, or its SSE events with `stream: true` |
//! | `POST /v1/messages/count_tokens` | Anthropic `{"input_tokens": N}` |
//! | `GET /v1/models` | OpenAI list (`{"object": "list", "data": [...]}`); Anthropic's shape when the request has `anthropic-version` |
//! | `GET /metrics` | Prometheus text with vLLM's metric names (see [`metrics`]) |
//! | `GET /health` | 200, empty body |
//! | `GET /sim/stats` | [`SimStats`] as JSON |
//! | `GET /sim/faults`, `POST /sim/faults` | the current [`FaultPlan`] (with remaining counts); POST replaces it and returns it |
//!
//! It takes HTTP/1.1 and HTTP/2 without TLS (h2c with prior knowledge; hyper's limit of
//! 200 concurrent streams a connection), so a gateway's HTTP/2 path can be tested as
//! it would run against the vendors' APIs, which negotiate HTTP/2 over TLS.
//! [`SimStats::connections_accepted`] counts the TCP connections.
//!
//! Authentication: when [`SimConfig::api_key`] is set, the two generation endpoints
//! (and `count_tokens`) require `Authorization: Bearer KEY` or `x-api-key: KEY`, else
//! 401 in the endpoint's format. `/v1/messages` also requires an `anthropic-version`
//! header, as the real API does (see [`SimConfig::require_anthropic_version`]).
//!
//! # Output and usage
//!
//! - A token is a whitespace-separated word. The text of a message is its string
//!   content, or the `text` of its parts/blocks (looking into the `content` of nested
//!   blocks such as `tool_result`); images, tool calls and tool definitions count 0.
//! - Input tokens = for each message, 4 + its words; an Anthropic top-level `system`
//!   counts as one more message. The same conversation therefore costs the same in
//!   both formats (a system message in OpenAI form, the `system` parameter in Anthropic
//!   form).
//! - The output is a sequence of words from [`text::VOCAB`], picked by a generator
//!   seeded with the FNV-1a hash of the conversation's (role, text) pairs: same
//!   conversation, same text, in both formats. Each word is one output token and one
//!   streamed delta (the deltas after the first start with a space).
//! - Output length = `min(max_tokens, default_output_tokens)` (OpenAI:
//!   `max_completion_tokens`, else `max_tokens`). Reaching `max_tokens` gives
//!   `max_tokens` / `length`; otherwise `end_turn` / `stop`. A stop sequence (Anthropic
//!   `stop_sequences`, OpenAI `stop`) matches a word equal to it after trimming; the
//!   output ends before that word (`stop_sequence` with the matched string / `stop`).
//! - The reported usage always equals the tokens emitted. In Anthropic streams,
//!   `message_start` carries the input usage and `output_tokens: 1` (as the real API
//!   does), and `message_delta` carries the cumulative totals: `input_tokens`, the two
//!   cache fields and `output_tokens` = the number of `text_delta`s sent. OpenAI
//!   streams with `stream_options.include_usage` end with a chunk whose `choices` is
//!   `[]` and whose `usage` is the total; every other chunk has `"usage": null`.
//!   Without it, chunks have no `usage` key.
//!
//! ## Prompt cache simulation
//!
//! - Anthropic: when a block of the `system` or of a message has `cache_control`, the
//!   cacheable prefix runs up to the last message (or `system`) holding one. The
//!   longest part of it, at a message boundary, that an earlier request stored is
//!   reported as `cache_read_input_tokens`; the rest of the prefix as
//!   `cache_creation_input_tokens` (in `cache_creation.ephemeral_1h_input_tokens` when
//!   the last marker has `"ttl": "1h"`, else `ephemeral_5m_input_tokens`); the tokens
//!   after it as `input_tokens`. A request stores the prefixes ending at each of its
//!   markers. So the first request with a prefix writes it, and repeats read it.
//! - OpenAI: every request stores all its message-boundary prefixes; the longest one
//!   stored before gives `prompt_tokens_details.cached_tokens`, if it has at least
//!   1024 tokens, rounded down to 1024 + a multiple of 128. `prompt_tokens` includes
//!   the cached tokens, as in the real API.
//! - Entries are kept per format and model and never expire.
//!
//! # Faults
//!
//! A [`FaultPlan`] comes from the config at start-up, can be replaced at run time with
//! `POST /sim/faults`, and a single request can ask for one with the `x-sim-fault`
//! header (`kind[;key=value...]`, e.g. `rate_limit;retry_after_s=3` or
//! `reset_mid_stream;after_tokens=5`). Faults apply to `POST /v1/chat/completions` and
//! `POST /v1/messages` only, after authentication and validation (an invalid request
//! gets its 4xx and leaves the plan alone). Kinds: see [`FaultKind`]. The plan is a
//! JSON array of steps:
//!
//! ```json
//! [
//!   {"kind": "rate_limit", "count": 2, "retry_after_s": 3},
//!   {"kind": "overloaded", "probability": 0.05},
//!   {"kind": "error_event_mid_stream", "count": 1, "after_tokens": 4},
//!   {"kind": "slow_first_byte", "delay_ms": 250}
//! ]
//! ```
//!
//! Fields: `kind` (required), `count` (apply to the next N requests, then stop),
//! `probability` (0–1, drawn from a generator seeded with [`SimConfig::seed`]),
//! `retry_after_s`, `after_tokens`, `delay_ms`. See [`FaultPlan`] for the order in
//! which steps are tried.
//!
//! Error bodies: Anthropic `{"type":"error","error":{"type":...,"message":...},"request_id":...}`
//! with 400 `invalid_request_error`, 401 `authentication_error`, 404 `not_found_error`,
//! 413 `request_too_large`, 429 `rate_limit_error`, 500 `api_error`, 529
//! `overloaded_error`; OpenAI `{"error":{"message","type","param","code"}}` with the
//! same statuses, except that `overloaded` answers 503 (`server_error`), the status
//! OpenAI-style servers use for it.

pub mod config;
pub mod metrics;
pub mod quality;
pub mod text;

mod anthropic;
mod api;
mod openai;
mod responses;
mod state;
mod stream;
mod tools;

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http::{header, HeaderMap, StatusCode};
use serde_json::json;

pub use api::FAULT_HEADER;
pub use config::{
    CapacityModel, ConfigError, FaultError, FaultKind, FaultPlan, FaultStep, MetricsFormat,
    SimConfig,
};
pub use state::{SimState, SimStats, TokenStats};

/// The simulator's routes, sharing `state`.
pub fn router(state: SimState) -> Router {
    Router::new()
        .route(openai::PATH, post(openai::chat_completions))
        .route(anthropic::PATH, post(anthropic::messages))
        .route(anthropic::COUNT_TOKENS_PATH, post(anthropic::count_tokens))
        .route(openai::TOKENIZE_PATH, post(openai::tokenize))
        .route(responses::PATH, post(responses::responses))
        .route("/v1/models", get(models))
        .route("/metrics", get(metrics_handler))
        .route("/health", get(health))
        .route("/sim/stats", get(stats))
        .route("/sim/faults", get(get_faults).post(set_faults))
        .fallback(not_found)
        .with_state(state)
}

/// Why the simulator could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("binding the simulator's listener")]
    Bind(#[source] std::io::Error),
    #[error("the simulator's HTTP server failed")]
    Serve(#[source] std::io::Error),
    #[error("the simulator task panicked")]
    Panicked(#[source] tokio::task::JoinError),
}

/// Serves the simulator on an already bound listener until `shutdown` completes (then
/// waits for the open connections to finish).
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: SimConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SimError> {
    config.validate()?;
    serve_state(listener, SimState::new(config), shutdown).await
}

/// Like [`serve`], with a state the caller keeps (to read stats or change faults).
pub async fn serve_state(
    listener: tokio::net::TcpListener,
    state: SimState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SimError> {
    // As inference servers do (uvicorn, vLLM): no Nagle delay on streamed tokens, which
    // would otherwise wait on the client's delayed ACK (40 ms on Linux).
    let counted = state.clone();
    let listener = axum::serve::ListenerExt::tap_io(listener, move |tcp| {
        let _ = tcp.set_nodelay(true);
        counted.accepted();
    });
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(SimError::Serve)
}

/// A simulator running in the background of the current Tokio runtime; it stops when
/// dropped.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    state: SimState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), SimError>>>,
}

impl SimHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the base URL for either SDK (OpenAI clients add `/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The simulator's state: stats, faults, config.
    pub fn state(&self) -> &SimState {
        &self.state
    }

    /// Stops accepting connections and waits for the open ones to finish.
    pub async fn shutdown(mut self) -> Result<(), SimError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(SimError::Panicked)?,
            None => Ok(()),
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts a simulator on `127.0.0.1` with a free port, in the background.
pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(SimError::Bind)?;
    let addr = listener.local_addr().map_err(SimError::Bind)?;
    let state = SimState::new(config);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve_state(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    Ok(SimHandle {
        addr,
        state,
        stop: Some(stop),
        task: Some(task),
    })
}

async fn models(State(st): State<SimState>, headers: HeaderMap) -> Response {
    st.count_request("/v1/models");
    let cfg = st.config();
    let names: Vec<&str> = if cfg.models.is_empty() {
        vec![cfg.served_model_name()]
    } else {
        cfg.models.iter().map(String::as_str).collect()
    };
    let body = if headers.contains_key("anthropic-version") {
        let data: Vec<_> = names
            .iter()
            .map(|m| json!({"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}))
            .collect();
        json!({
            "data": data,
            "has_more": false,
            "first_id": names.first(),
            "last_id": names.last(),
        })
    } else {
        let created = api::unix_now();
        let data: Vec<_> = names
            .iter()
            .map(|m| json!({"id": m, "object": "model", "created": created, "owned_by": "sim"}))
            .collect();
        json!({"object": "list", "data": data})
    };
    axum::Json(body).into_response()
}

async fn metrics_handler(State(st): State<SimState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics_text(),
    )
        .into_response()
}

async fn health() -> StatusCode {
    StatusCode::OK
}

async fn stats(State(st): State<SimState>) -> Response {
    axum::Json(st.stats()).into_response()
}

async fn get_faults(State(st): State<SimState>) -> Response {
    axum::Json(st.faults()).into_response()
}

async fn set_faults(State(st): State<SimState>, body: Bytes) -> Response {
    let plan = serde_json::from_slice::<FaultPlan>(&body)
        .map_err(|e| e.to_string())
        .and_then(|p| p.validate().map(|()| p).map_err(|e| e.to_string()));
    match plan {
        Ok(plan) => {
            st.set_faults(plan.clone());
            axum::Json(plan).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": format!("invalid fault plan: {e}")})),
        )
            .into_response(),
    }
}

async fn not_found(headers: HeaderMap, uri: http::Uri) -> Response {
    let fmt = if headers.contains_key("anthropic-version") {
        api::Format::Anthropic
    } else {
        api::Format::OpenAi
    };
    let mut e = api::ApiError::new(
        api::ErrorKind::NotFound,
        format!("Not found: {}", uri.path()),
    );
    if fmt == api::Format::OpenAi {
        e = e.code("unknown_url");
    }
    e.into_response(fmt, "req_sim_not_found")
}
