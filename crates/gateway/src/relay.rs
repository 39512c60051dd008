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
    let deadline = Box::pin(tokio::time::sleep_until(
        state.context.total_deadline.into(),
    ));
    *out.body_mut() = Body::from_stream(Relayed { state, deadline });
    out
}

/// The stream the client reads: one [`StreamState`] and one timer for the whole
/// stream, polled in place (an `unfold` of an async step would hold the state twice
/// over and a new timer per chunk; every open stream pays for what this holds).
struct Relayed {
    state: StreamState,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl futures_util::Stream for Relayed {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::future::Future;
        use std::task::Poll;
        let this = &mut *self;
        loop {
            if this.state.finished {
                return Poll::Ready(None);
            }
            let next = match this.state.upstream.poll_next_unpin(cx) {
                Poll::Ready(next) => Some(next),
                Poll::Pending => match this.deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => None,
                    Poll::Pending => return Poll::Pending,
                },
            };
            if let Some(frames) = this.state.on_upstream(next) {
                return Poll::Ready(Some(Ok(frames)));
            }
        }
    }
}

impl StreamState {
    /// Turns what the upstream gave (`None`: the total deadline passed) into frames for
    /// the client; `None` when there is nothing to send yet.
    fn on_upstream(&mut self, next: Option<Option<reqwest::Result<Bytes>>>) -> Option<Bytes> {
        let mut out = BytesMut::new();
        let name = &self.backend.config.name;
        let step = match next {
            Some(Some(Ok(chunk))) => self.relay.feed(&chunk, &mut out),
            Some(Some(Err(e))) => {
                let message = format!("backend `{name}` broke off the stream");
                let detail = error_chain(&e);
                self.fail(ApiErrorKind::Overloaded, &message, Some(&detail), &mut out);
                return Some(out.freeze());
            }
            Some(None) => match self.relay.end_of_input(&mut out) {
                RelayStep::Continue => {
                    let message =
                        format!("backend `{name}` ended the stream before it was complete");
                    self.fail(ApiErrorKind::Overloaded, &message, None, &mut out);
                    return Some(out.freeze());
                }
                step => step,
            },
            None => {
                let message = format!(
                    "backend `{name}` did not finish within {} ms",
                    self.backend.config.timeouts.total.as_millis()
                );
                self.fail(ApiErrorKind::Timeout, &message, None, &mut out);
                return Some(out.freeze());
            }
        };
        if !self.first_token_sent && !out.is_empty() {
            self.first_token_sent = true;
            self.guard.row().ttft_us = Some(self.guard.started.elapsed().as_micros() as i64);
        }
        match step {
            RelayStep::Continue if out.is_empty() => return None,
            RelayStep::Continue => {}
            RelayStep::Done => self.finish_ok(),
            RelayStep::UpstreamError { kind, message } => {
                let message = format!("backend `{name}` reported: {message}");
                self.fail(kind, &message, None, &mut out);
            }
        }
        Some(out.freeze())
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
