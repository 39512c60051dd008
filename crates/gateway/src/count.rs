//! `POST /v1/messages/count_tokens`: a request's input tokens as the backend its route
//! picks would count them, for Anthropic clients routed to any backend.
//!
//! An Anthropic backend counts it at its own `count_tokens`; an OpenAI-compatible
//! server at its `/tokenize` (vLLM, the llama.cpp server, llama-cpp-python); where
//! none answers, the gateway's estimate, calibrated to the backend's own counts. The
//! `x-costfloor-token-count` header says which (`backend`, `backend_text`,
//! `estimate`). It must not write a ledger row (nothing is generated or billed) and
//! must not name a vendor field: `wire::pair` builds and reads the bodies.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use wire::pair::{self, ClientFormat, ClientRequest, CountSource, CountTarget};
use wire::ApiErrorKind;

use crate::auth::authenticate;
use crate::error::{tag, ClientError};
use crate::forward::send_to;
use crate::proxy::read_body;
use crate::runtime::{Backend, RouteQuery};
use crate::state::AppState;

/// The header that says who counted.
pub const HEADER_TOKEN_COUNT: &str = "x-costfloor-token-count";

/// How long an answer body may take once its headers came.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The `count_tokens` handler.
pub async fn handle(state: AppState, headers: HeaderMap, body: Body) -> Response {
    let request_id = uuid::Uuid::now_v7().to_string();
    let mut route = String::new();
    let mut backend_name = String::new();
    match run(&state, &headers, body, &mut route, &mut backend_name).await {
        Ok((count, source)) => {
            let mut response = Response::new(Body::from(pair::count_body(count)));
            let out = response.headers_mut();
            out.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            out.insert(
                HEADER_TOKEN_COUNT,
                HeaderValue::from_static(source.as_str()),
            );
            tag(out, &request_id, &route, &backend_name);
            response
        }
        Err(error) => {
            tracing::warn!(
                request_id = %request_id,
                backend = %backend_name,
                route = %route,
                error_kind = error.kind.anthropic_type(),
                detail = error.detail.as_deref().unwrap_or(""),
                "token count failed: {}",
                error.message
            );
            error.into_response(ClientFormat::Anthropic, &request_id, &route, &backend_name)
        }
    }
}

async fn run(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    route_name: &mut String,
    backend_name: &mut String,
) -> Result<(u64, CountSource), ClientError> {
    let runtime = state.runtime.load_full();
    let config = &runtime.config;
    let stored = state.stored_keys();
    let key = authenticate(&config.client_keys, &stored, state.keys_required(), headers)?;
    let bytes = read_body(headers, body, config.max_body_bytes).await?;
    let request = ClientRequest::parse_count(&bytes)?;
    let estimate = request.estimated_input_tokens();
    let route = runtime
        .route(&RouteQuery {
            model: request.model(),
            task: request.task_label().as_deref(),
            input_tokens: estimate,
            client_key: key,
        })
        .ok_or_else(|| {
            ClientError::client(
                ApiErrorKind::NotFound,
                format!(
                    "model `{}` has no route; valid models: {}",
                    request.model(),
                    runtime.model_names().join(", ")
                ),
            )
        })?;
    route_name.clone_from(&route.name);
    let Some(&index) = route.targets.first() else {
        return Err(ClientError::upstream(
            ApiErrorKind::Api,
            format!("route `{}` has no target", route.name),
        ));
    };
    let backend = &runtime.backends[index];
    backend_name.clone_from(&backend.config.name);
    let attempts = request.count_attempts(backend.protocol, &backend.config.model)?;
    let authoritative = backend.protocol.speaks_anthropic();
    for attempt in attempts {
        let url = count_url(backend, attempt.target);
        match send_to(backend, url, attempt.body).await {
            Ok((response, _lease)) => {
                let body = tokio::time::timeout(BODY_TIMEOUT, response.bytes()).await;
                if let Ok(Ok(body)) = body {
                    if let Some(counted) = pair::read_count(attempt.target, &body) {
                        return Ok(counted);
                    }
                }
            }
            // The Anthropic API's own answer stands, errors included.
            Err(failure) if authoritative => return Err(failure.into_client_error()),
            // A server without a tokenizer endpoint: try the next, then estimate.
            Err(_) => {}
        }
    }
    if authoritative {
        return Err(ClientError::upstream(
            ApiErrorKind::BadGateway,
            format!("backend `{}` returned no token count", backend.config.name),
        ));
    }
    Ok((
        backend.calibration.estimate(estimate),
        CountSource::Estimate,
    ))
}

/// The URL of an attempt: the generation endpoint with a suffix, or a path from the
/// server's root.
fn count_url(backend: &Backend, target: CountTarget) -> reqwest::Url {
    let mut url = backend.endpoint.clone();
    match target {
        CountTarget::EndpointSuffix(suffix) => {
            let path = format!("{}{suffix}", url.path().trim_end_matches('/'));
            url.set_path(&path);
        }
        CountTarget::ServerPath(path) => url.set_path(path),
    }
    url
}
