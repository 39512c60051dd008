//! Forwarding: tries a route's targets in order until one answers, with context-window
//! checks, spill-over, the circuit, `retry-after` hold-offs, fallback and the retry
//! budget. A non-streamed response is read and checked here, before anything reaches
//! the client, so a broken body can still fall back.
//!
//! It must not build or read vendor JSON: bodies, headers and checks come from
//! `wire::pair::FormatPair`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wire::error as wire_error;
use wire::pair::{ClientRequest, Completed, FormatPair};
use wire::ApiErrorKind;

use crate::connections::Lease;
use crate::error::{error_chain, ClientError};
use crate::metrics;
use crate::row::RowGuard;
use crate::runtime::{Backend, InFlight, RouteChoice, Runtime};

/// What a successful attempt holds.
pub(crate) struct Attempted {
    pub backend: Arc<Backend>,
    pub slot: InFlight,
    pub upstream: Upstream,
    pub sent_at: Instant,
}

/// A stream to relay, or a whole response read and converted.
pub(crate) enum Upstream {
    Stream(reqwest::Response, Lease),
    Complete(Completed),
}

/// Why an upstream attempt failed, before any byte reached the client.
pub(crate) struct Failure {
    /// `backend:what`, for the fallback chain.
    label: String,
    pub kind: ApiErrorKind,
    pub message: String,
    /// What the log gets beyond the message (transport errors name the upstream
    /// address, which the client must not see).
    detail: Option<String>,
    pub retryable: bool,
    counts_for_circuit: bool,
    pub retry_after: Option<Duration>,
}

impl Failure {
    /// A failure of `backend`: retryable, counted by the circuit, no hold-off.
    fn new(backend: &str, what: &str, kind: ApiErrorKind, message: String) -> Failure {
        Failure {
            label: format!("{backend}:{what}"),
            kind,
            message,
            detail: None,
            retryable: true,
            counts_for_circuit: true,
            retry_after: None,
        }
    }

    fn final_attempt(mut self) -> Failure {
        self.retryable = false;
        self
    }

    /// The error the client gets for a single attempt (no fallback chain).
    pub(crate) fn into_client_error(self) -> ClientError {
        let mut error = ClientError::upstream(self.kind, self.message);
        error.retry_after = self.retry_after;
        error.detail = self.detail;
        error
    }

    fn with_detail(mut self, error: &dyn std::error::Error) -> Failure {
        self.detail = Some(error_chain(error));
        self
    }
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(3600.0)))
}

/// An upstream answer with a success status, and the lease on its connection to hold
/// while its body is read.
pub(crate) type Sent = (reqwest::Response, Lease);

pub(crate) async fn send(backend: &Backend, body: Bytes) -> Result<Sent, Failure> {
    send_to(backend, backend.endpoint.clone(), body).await
}

/// [`send`] to another path of the backend's server (token counting), with the same
/// headers, first-byte timeout and error reading.
pub(crate) async fn send_to(
    backend: &Backend,
    url: reqwest::Url,
    body: Bytes,
) -> Result<Sent, Failure> {
    let config = &backend.config;
    let (client, lease) = backend.connections.lease();
    let mut request = client.post(url).body(body);
    for (name, value) in &backend.upstream_headers {
        request = request.header(name.clone(), value.clone());
    }
    let name = &config.name;
    let response = match tokio::time::timeout(config.timeouts.first_byte, request.send()).await {
        Err(_) => {
            return Err(Failure::new(
                name,
                "timeout",
                ApiErrorKind::Timeout,
                format!(
                    "backend `{name}` sent no response within {} ms",
                    config.timeouts.first_byte.as_millis()
                ),
            ))
        }
        Ok(Err(e)) => {
            let what = if e.is_connect() {
                "connect"
            } else {
                "transport"
            };
            // The chain names the upstream address: it goes to the log, never the client.
            return Err(Failure::new(
                name,
                what,
                ApiErrorKind::BadGateway,
                format!("backend `{name}` {what} error"),
            )
            .with_detail(&e));
        }
        Ok(Ok(response)) => response,
    };
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok((response, lease));
    }
    let wait = retry_after(response.headers());
    let body = tokio::time::timeout(Duration::from_secs(5), response.bytes())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let upstream_message = wire_error::message_from_body(&body)
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    let (kind, message) = match status {
        401 | 403 => (
            ApiErrorKind::BadGateway,
            format!(
                "backend `{name}` rejected the gateway's credentials ({status}): {upstream_message}"
            ),
        ),
        _ => (
            wire_error::kind_from_body(&body).unwrap_or_else(|| ApiErrorKind::from_status(status)),
            format!("backend `{name}` answered {status}: {upstream_message}"),
        ),
    };
    Err(Failure {
        retryable: status == 429 || status >= 500,
        counts_for_circuit: status >= 500,
        retry_after: wait,
        ..Failure::new(name, &status.to_string(), kind, message)
    })
}

/// Reads and checks a whole (non-streamed) upstream response and converts it to the
/// client's format. Nothing has reached the client yet, so every failure here may fall
/// back to the next target, except running out of the total time.
pub(crate) async fn read_complete(
    pair: FormatPair,
    backend: &Backend,
    response: reqwest::Response,
    deadline: Instant,
    input_estimate: u64,
    request: &ClientRequest,
) -> Result<Completed, Failure> {
    let config = &backend.config;
    let name = &config.name;
    let remaining = deadline.saturating_duration_since(Instant::now());
    let body = match tokio::time::timeout(remaining, response.bytes()).await {
        Err(_) => {
            return Err(Failure::new(
                name,
                "timeout",
                ApiErrorKind::Timeout,
                format!(
                    "backend `{name}` did not finish within {} ms",
                    config.timeouts.total.as_millis()
                ),
            )
            .final_attempt())
        }
        Ok(Err(e)) => {
            return Err(Failure::new(
                name,
                "broken",
                ApiErrorKind::BadGateway,
                format!("backend `{name}` broke off its response"),
            )
            .with_detail(&e));
        }
        Ok(Ok(body)) => body,
    };
    pair.read_complete(body, input_estimate, request)
        .map_err(|invalid| {
            Failure::new(
                name,
                "invalid",
                ApiErrorKind::BadGateway,
                format!("backend `{name}` {invalid}"),
            )
        })
}

/// Tries the route's targets in order: skips those whose context is too small, that
/// are full (spill-over), open-circuited or holding off after a `retry-after`; falls
/// back on retryable failures; waits out a `retry-after` within the retry budget.
/// `attempts` counts the requests sent upstream, whatever the result.
pub(crate) async fn forward(
    runtime: &Arc<Runtime>,
    route: &RouteChoice,
    request: &mut ClientRequest,
    input_estimate: u64,
    guard: &mut RowGuard,
    attempts: &mut u32,
) -> Result<Attempted, ClientError> {
    let config = &runtime.config;
    let stream = request.stream();
    let needed_context = input_estimate + request.max_output_tokens(config.default_max_tokens);
    let mut chain: Vec<String> = Vec::new();
    *attempts = 0;
    let mut waited = Duration::ZERO;
    let mut last_failure: Option<Failure> = None;
    let mut context_misses = Vec::new();
    let media = request.media();
    let cannot_take = |index: &usize| media.missing_in(runtime.backends[*index].config.takes);
    // `Some` only when every target lacks something the request holds.
    let every_target_lacks: Option<Vec<&str>> = route.targets.iter().map(cannot_take).collect();
    if let Some(&what) = every_target_lacks.as_deref().and_then(<[_]>::first) {
        let names: Vec<&str> = route
            .targets
            .iter()
            .map(|&i| runtime.backends[i].config.name.as_str())
            .collect();
        return Err(ClientError::client(
            ApiErrorKind::InvalidRequest,
            format!(
                "the request holds {what}, which no backend of route `{}` takes: {} (see each backend's `inputs`)",
                route.name,
                names.join(", ")
            ),
        ));
    }
    loop {
        let mut soonest_retry: Option<Duration> = None;
        for &index in &route.targets {
            let backend = &runtime.backends[index];
            let name = &backend.config.name;
            if let Some(what) = media.missing_in(backend.config.takes) {
                chain.push(format!("{name}:{what}"));
                continue;
            }
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
            let pair = FormatPair::new(request.format(), backend.protocol);
            let body = pair
                .upstream_body(request, &backend.config.model, config.default_max_tokens)
                .map_err(|e| {
                    ClientError::client(e.kind, format!("backend `{name}`: {}", e.message))
                })?;
            *attempts += 1;
            let sent_at = Instant::now();
            let result = match send(backend, body).await {
                Ok((response, lease)) if stream => Ok((
                    response.status().as_u16(),
                    Upstream::Stream(response, lease),
                )),
                Ok((response, _lease)) => {
                    let status = response.status().as_u16();
                    let deadline = sent_at + backend.config.timeouts.total;
                    let fallback_estimate = backend.calibration.estimate(input_estimate);
                    read_complete(
                        pair,
                        backend,
                        response,
                        deadline,
                        fallback_estimate,
                        request,
                    )
                    .await
                    .map(|completed| {
                        if !completed.estimated && backend.config.self_hosted() {
                            backend
                                .calibration
                                .learn(input_estimate, completed.usage.total_input_tokens());
                        }
                        (status, Upstream::Complete(completed))
                    })
                }
                Err(failure) => Err(failure),
            };
            guard.upstream_time += sent_at.elapsed();
            match result {
                Ok((status, upstream)) => {
                    chain.push(format!("{name}:{status}"));
                    guard.row().fallback_chain = chain.join(">");
                    backend.metrics.attempts_ok.increment(1);
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
                    // The row names the last backend tried until one answers.
                    guard.row().backend.clone_from(name);
                    backend.metrics.attempts_error.increment(1);
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
                    if !retryable || *attempts >= config.max_attempts {
                        return Err(give_up(chain, last_failure, &context_misses, guard));
                    }
                }
            }
        }
        // Every target tried or skipped. Wait out a retry-after if the budget allows.
        match soonest_retry {
            Some(wait)
                if *attempts < config.max_attempts && waited + wait <= config.max_retry_wait =>
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
            error.outcome = ledger::Outcome::ClientError;
        }
        error.retry_after = failure.retry_after;
        error.detail = failure.detail;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_caps_them() {
        let header = |value: &str| {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::RETRY_AFTER, value.parse().unwrap());
            retry_after(&headers)
        };
        assert_eq!(header("3"), Some(Duration::from_secs(3)));
        assert_eq!(header(" 0.5 "), Some(Duration::from_millis(500)));
        // Capped at an hour; an HTTP date or garbage is ignored.
        assert_eq!(header("99999"), Some(Duration::from_secs(3600)));
        assert_eq!(header("-1"), None);
        assert_eq!(header("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(retry_after(&reqwest::header::HeaderMap::new()), None);
    }

    #[test]
    fn failures_are_retryable_and_counted_unless_marked() {
        let failure = Failure::new("b", "timeout", ApiErrorKind::Timeout, "m".into());
        assert_eq!(failure.label, "b:timeout");
        assert!(failure.retryable && failure.counts_for_circuit);
        assert!(failure.detail.is_none() && failure.retry_after.is_none());
        assert!(!failure.final_attempt().retryable);
    }
}
