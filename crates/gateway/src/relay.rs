//! Answering the client once a backend has answered: a whole response, or a stream
//! relayed frame by frame through `wire::pair::StreamRelay`, with the time to first
//! token, the usage and the ledger row settled when it ends however it ends.
//!
//! Nothing is retried here: bytes may already have reached the client. It must not
//! name a vendor field.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::HeaderValue;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use ledger::Outcome;
use wire::pair::{ClientFormat, Completed, RelayInit, RelayStep, StreamRelay};
use wire::ApiErrorKind;

use crate::connections::Lease;
use crate::error::{error_chain, tag};
use crate::row::RowGuard;
use crate::runtime::{Backend, InFlight, RouteChoice};

/// What the answer needs to know of the request.
pub(crate) struct Context {
    pub format: ClientFormat,
    pub route: RouteChoice,
    pub request_id: String,
    pub input_estimate: u64,
    pub client_wants_usage: bool,
    pub total_deadline: Instant,
    pub attempts: u32,
    /// A shadow copy waiting for this stream's text and usage (`crate::shadow`).
    pub shadow_wants: Option<tokio::sync::oneshot::Sender<crate::shadow::Streamed>>,
    /// What a Responses client's stream repeats of its request.
    pub responses_echo: Option<wire::responses::Echo>,
}

/// Answers a non-streamed request with the response `forward` read and checked.
pub(crate) async fn complete_response(
    context: Context,
    backend: &Backend,
    completed: Completed,
    guard: &mut RowGuard,
) -> Response {
    let config = &backend.config;
    crate::metrics::count_invalid_tool_arguments(&config.name, completed.invalid_tool_arguments);
    guard.record_usage(
        config,
        &context.route,
        &completed.usage,
        completed.estimated,
    );
    guard.row().http_status = 200;
    let mut response = Response::new(Body::from(completed.body));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    tag(
        headers,
        &context.request_id,
        &context.route.name,
        &config.name,
    );
    guard.take().commit().await;
    response
}

struct StreamState {
    context: Context,
    backend: Arc<Backend>,
    /// The backend's in-flight slot and the connection's stream count, held to the end.
    _slot: (InFlight, Lease),
    upstream: futures_util::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    relay: StreamRelay,
    guard: RowGuard,
    sent_at: Instant,
    first_token_sent: bool,
    finished: bool,
}

/// Starts relaying an upstream stream; the row is written when the stream ends.
pub(crate) fn stream_response(
    context: Context,
    backend: Arc<Backend>,
    slot: (InFlight, Lease),
    response: reqwest::Response,
    sent_at: Instant,
    mut guard: RowGuard,
) -> Response {
    let created_unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut relay =
        wire::pair::FormatPair::new(context.format, backend.protocol).stream_relay(&RelayInit {
            request_id: &context.request_id,
            model: &backend.config.model,
            created_unix_s,
            client_wants_usage: context.client_wants_usage,
            input_estimate: context.input_estimate,
            responses_echo: context.responses_echo.as_ref(),
        });
    // Only a mirrored stream keeps its text.
    if context.shadow_wants.is_some() {
        relay.capture_text();
    }
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
        relay,
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
        let name = &state.backend.config.name;
        let step = match next {
            Ok(Some(Ok(chunk))) => state.relay.feed(&chunk, &mut out),
            Ok(Some(Err(e))) => {
                let message = format!("backend `{name}` broke off the stream");
                let detail = error_chain(&e);
                state.fail(ApiErrorKind::Overloaded, &message, Some(&detail), &mut out);
                return Some((Ok(out.freeze()), state));
            }
            Ok(None) => match state.relay.end_of_input(&mut out) {
                RelayStep::Continue => {
                    let message =
                        format!("backend `{name}` ended the stream before it was complete");
                    state.fail(ApiErrorKind::Overloaded, &message, None, &mut out);
                    return Some((Ok(out.freeze()), state));
                }
                step => step,
            },
            Err(_) => {
                let message = format!(
                    "backend `{name}` did not finish within {} ms",
                    state.backend.config.timeouts.total.as_millis()
                );
                state.fail(ApiErrorKind::Timeout, &message, None, &mut out);
                return Some((Ok(out.freeze()), state));
            }
        };
        if !state.first_token_sent && !out.is_empty() {
            state.first_token_sent = true;
            state.guard.row().ttft_us = Some(state.guard.started.elapsed().as_micros() as i64);
        }
        match step {
            RelayStep::Continue if out.is_empty() => continue,
            RelayStep::Continue => {}
            RelayStep::Done => state.finish_ok(),
            RelayStep::UpstreamError { kind, message } => {
                let message = format!("backend `{name}` reported: {message}");
                state.fail(kind, &message, None, &mut out);
            }
        }
        return Some((Ok(out.freeze()), state));
    }
}

impl StreamState {
    fn settle(&mut self) {
        self.finished = true;
        self.guard.upstream_time = self.sent_at.elapsed();
        let (usage, estimated) = self.relay.usage();
        crate::metrics::count_invalid_tool_arguments(
            &self.backend.config.name,
            self.relay.invalid_tool_arguments(),
        );
        self.guard
            .record_usage(&self.backend.config, &self.context.route, &usage, estimated);
    }

    fn finish_ok(&mut self) {
        self.backend.circuit.on_success();
        self.settle();
        if let Some(wants) = self.context.shadow_wants.take() {
            let _ = wants.send(crate::shadow::Streamed {
                text: self.relay.text().unwrap_or_default().to_string(),
                usage: self.relay.usage().0,
            });
        }
        self.guard.take().commit_detached();
    }

    /// A mid-stream failure: an error event in the client's format, a row with the
    /// partial usage (estimated where the upstream never reported it), and one log line.
    fn fail(
        &mut self,
        kind: ApiErrorKind,
        message: &str,
        detail: Option<&str>,
        out: &mut BytesMut,
    ) {
        if self.finished {
            return;
        }
        self.relay.fail(kind, message, out);
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
        tracing::warn!(
            request_id = %self.context.request_id,
            backend = %self.backend.config.name,
            error_kind = kind.anthropic_type(),
            attempt = self.context.attempts,
            detail = detail.unwrap_or(""),
            "stream failed: {message}"
        );
        let row = self.guard.row();
        row.outcome = Outcome::UpstreamError;
        row.error_kind = Some(kind.anthropic_type().to_string());
        // The row is complete; queue it without holding the stream back.
        self.guard.take().commit_detached();
    }
}
