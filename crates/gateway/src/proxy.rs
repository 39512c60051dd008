//! The request path of both generation endpoints: authenticate, read and parse the
//! body, route, forward, answer, and write exactly one ledger row.
//!
//! It owns the order of those steps and the single log line of a failed request. It
//! must not take a lock shared across requests (the runtime is an `ArcSwap` snapshot,
//! circuits and in-flight counts are atomics, the ledger is a channel) and must not
//! name a vendor field: `wire::pair` parses, validates and translates.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use wire::pair::{ClientFormat, ClientRequest};
use wire::ApiErrorKind;

use crate::auth::authenticate;
use crate::error::{ClientError, HEADER_TASK};
use crate::forward::{forward, Attempted, Upstream};
use crate::relay::{complete_response, stream_response, Context};
use crate::row::RowGuard;
use crate::runtime::{RouteQuery, Runtime};
use crate::state::AppState;

/// The entry point for both generation endpoints.
pub async fn handle(
    state: AppState,
    format: ClientFormat,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let request_id = uuid::Uuid::now_v7().to_string();
    let runtime = state.runtime.load_full();
    let mut guard = RowGuard::new(
        state.ledger.clone(),
        state.tracker.clone(),
        request_id.clone(),
        started,
        &state.replica,
    );
    let mut attempts = 0;
    match run(
        &runtime,
        &state,
        format,
        &headers,
        body,
        &mut guard,
        &mut attempts,
    )
    .await
    {
        Ok(response) => response,
        Err(error) => {
            let status = format.error_status(error.kind);
            let row = guard.row();
            row.http_status = status;
            row.outcome = error.outcome;
            row.error_kind = Some(error.kind.anthropic_type().to_string());
            // Once per failed request; the message never holds a prompt or a secret.
            tracing::warn!(
                request_id = %request_id,
                backend = %row.backend,
                route = %row.route,
                error_kind = error.kind.anthropic_type(),
                status,
                attempt = attempts,
                chain = %row.fallback_chain,
                detail = error.detail.as_deref().unwrap_or(""),
                "request failed: {}",
                error.message
            );
            let response = error.into_response(format, &request_id, &row.route, &row.backend);
            guard.commit().await;
            response
        }
    }
}

/// Reads the body within `server.max_body_bytes`: a declared length over it is refused
/// before reading, a chunked body as soon as it passes it (`http_body_util::Limited`,
/// through `axum::body::to_bytes`). Not a `tower_http` layer: that one answers 413
/// itself, outside the client's format and without a ledger row, and takes its limit
/// once at start rather than from the reloadable config.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<bytes::Bytes, ClientError> {
    let too_large = || {
        ClientError::client(
            ApiErrorKind::RequestTooLarge,
            format!(
                "request body exceeds the gateway's limit of {limit} bytes (server.max_body_bytes)"
            ),
        )
    };
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if is_length_limit(&e) {
            too_large()
        } else {
            ClientError::client(
                ApiErrorKind::InvalidRequest,
                format!("cannot read the request body: {e}"),
            )
        }
    })
}

/// True when the body read stopped at the limit.
fn is_length_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        current = e.source();
    }
    false
}

#[allow(clippy::too_many_arguments)]
async fn run(
    runtime: &Arc<Runtime>,
    state: &AppState,
    format: ClientFormat,
    headers: &HeaderMap,
    body: Body,
    guard: &mut RowGuard,
    attempts: &mut u32,
) -> Result<Response, ClientError> {
    let config = &runtime.config;
    let stored = state.stored_keys();
    let key = authenticate(&config.client_keys, &stored, state.keys_required(), headers)?;
    guard.row().client_key = key.map(|k| k.name.clone());
    // While draining, requests already read are served in full: the server stops
    // reading new ones, and /readyz reports not ready so balancers move away.
    let bytes = read_body(headers, body, config.max_body_bytes).await?;
    let mut request = format.parse_request(&bytes)?;
    let stream = request.stream();
    let task = headers
        .get(HEADER_TASK)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.task_label());
    let input_estimate = request.estimated_input_tokens();
    {
        let row = guard.row();
        row.stream = stream;
        row.model = request.model().to_string();
        row.requested_model = Some(request.model().to_string());
        row.task = task.clone();
        row.input_tokens = input_estimate as i64;
        row.input_estimate = Some(input_estimate as i64);
        row.estimated = true;
    }
    let Some(route) = runtime.route(&RouteQuery {
        model: request.model(),
        task: task.as_deref(),
        input_tokens: input_estimate,
        client_key: key,
    }) else {
        return Err(no_route(runtime, &request, task.as_deref()));
    };
    guard.row().route.clone_from(&route.name);
    if let Some(key) = key.filter(|k| !k.limits.is_empty()) {
        // The most this request can use and cost: its input estimate and max_tokens
        // at the dearest target of the route.
        let max_output = request.max_output_tokens(config.default_max_tokens);
        let bound = wire::TokenUsage {
            input_tokens: input_estimate,
            output_tokens: max_output,
            ..wire::TokenUsage::default()
        };
        let cost_bound = crate::row::cost_bound(config, &route, &bound, key.limits.budget_on);
        let now_ms = crate::row::unix_ms();
        // With a shared database the budget is held there; rates stay per process.
        let shared = state.shared.as_ref().zip(key.limits.monthly_budget);
        let local = crate::limits::KeyLimits {
            monthly_budget: key.limits.monthly_budget.filter(|_| shared.is_none()),
            ..key.limits
        };
        guard.reservation = state.limits.admit(
            &key.name,
            &local,
            cost_bound,
            input_estimate + max_output,
            Instant::now(),
            now_ms,
        )?;
        if let Some((shared, budget)) = shared {
            // Boxed: the reservation's future is large, and every request's future
            // would otherwise carry its space.
            let reserve = Box::pin(shared.reserve(key, budget, cost_bound, now_ms));
            guard.hold = Some(reserve.await?);
        }
    }
    let Attempted {
        backend,
        slot,
        upstream,
        sent_at,
    } = forward(
        runtime,
        &route,
        &mut request,
        input_estimate,
        guard,
        attempts,
    )
    .await?;
    guard.backend = Some(Arc::clone(&backend));
    {
        let row = guard.row();
        row.backend.clone_from(&backend.config.name);
        row.self_hosted = backend.config.self_hosted();
        row.model.clone_from(&backend.config.model);
    }
    let mut context = Context {
        format,
        route,
        request_id: guard.row().request_id.clone(),
        // What a stream without reported usage records: the estimate as this backend's
        // own counts have calibrated it.
        input_estimate: backend.calibration.estimate(input_estimate),
        client_wants_usage: request.wants_stream_usage(),
        total_deadline: sent_at + backend.config.timeouts.total,
        attempts: *attempts,
        shadow_wants: None,
        responses_echo: request.responses_echo().cloned(),
    };
    let started_at_unix_ms = guard.row().started_at_unix_ms;
    if let Some(admitted) = state.shadow.admit(
        runtime,
        &context.route,
        &backend.config.name,
        started_at_unix_ms,
    ) {
        let (text, usage, streamed) = match &upstream {
            Upstream::Complete(completed) => (completed.text(format), completed.usage, None),
            Upstream::Stream(..) => {
                let (wants, streamed) = tokio::sync::oneshot::channel();
                context.shadow_wants = Some(wants);
                (None, wire::TokenUsage::default(), Some(streamed))
            }
        };
        state.shadow.mirror(
            admitted,
            runtime,
            &request,
            crate::shadow::Primary {
                request_id: context.request_id.clone(),
                started_at_unix_ms,
                task: task.clone(),
                backend: backend.config.name.clone(),
                text,
                input_tokens: usage.total_input_tokens(),
                output_tokens: usage.output_tokens,
                streamed,
            },
        );
    }
    match upstream {
        Upstream::Stream(response, lease) => Ok(stream_response(
            context,
            backend,
            (slot, lease),
            response,
            sent_at,
            guard.take(),
        )),
        Upstream::Complete(completed) => {
            drop(slot);
            Ok(complete_response(context, &backend, completed, guard).await)
        }
    }
}

fn no_route(runtime: &Runtime, request: &ClientRequest, task: Option<&str>) -> ClientError {
    ClientError::client(
        ApiErrorKind::NotFound,
        format!(
            "model `{}` has no route{}; valid models: {}",
            request.model(),
            task.map_or(String::new(), |t| format!(" for task `{t}`")),
            runtime.model_names().join(", ")
        ),
    )
}
