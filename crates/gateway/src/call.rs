//! One whole request to one named backend, outside any route: what `costfloor eval`
//! sends for each sample and judge, and what a shadow copy is. It goes through the
//! same code as `serve` (upstream body and headers, timeouts, the response check and
//! translation, usage, the price), so eval measures what production runs.
//!
//! It must not retry, fall back or write a ledger row: the caller decides what a
//! failure means (eval backs off on 429 and 529; a shadow copy is dropped).

use std::sync::Arc;
use std::time::{Duration, Instant};

use costfloor_core::money::Money;
use wire::pair::{ClientRequest, FormatPair};
use wire::{ApiErrorKind, TokenUsage};

use crate::forward::{read_complete, send};
use crate::row::backend_cost;
use crate::runtime::{Backend, Runtime};

/// A backend's whole answer.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The text, in the request's own format; empty when the answer had none.
    pub text: String,
    pub usage: TokenUsage,
    /// True when the backend reported no usage and it was estimated.
    pub estimated: bool,
    /// What the request cost on this backend (zero on a self-hosted one).
    pub cost: Money,
    pub latency: Duration,
}

/// Why a call failed.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct CallFailure {
    pub kind: ApiErrorKind,
    /// What a client would have been told (never an upstream address).
    pub message: String,
    /// The backend's `retry-after`, if it sent one.
    pub retry_after: Option<Duration>,
    /// True for a 429, a 529 (overloaded) or another 5xx, a timeout or a transport
    /// error: worth trying again later.
    pub transient: bool,
    pub latency: Duration,
}

/// The backend named `name`, or `None`.
pub fn backend<'a>(runtime: &'a Runtime, name: &str) -> Option<&'a Arc<Backend>> {
    runtime.backends.iter().find(|b| b.config.name == name)
}

/// Sends `request` (made whole, not streamed) to `backend` once and reads the answer.
pub async fn call(
    runtime: &Runtime,
    backend: &Backend,
    request: &ClientRequest,
) -> Result<Answer, CallFailure> {
    let started = Instant::now();
    let mut request = request.without_stream();
    let format = request.format();
    let pair = FormatPair::new(format, backend.protocol);
    let body = pair
        .upstream_body(
            &mut request,
            &backend.config.model,
            runtime.config.default_max_tokens,
        )
        .map_err(|e| CallFailure {
            kind: e.kind,
            message: e.message,
            retry_after: None,
            transient: false,
            latency: started.elapsed(),
        })?;
    let input_estimate = backend
        .calibration
        .estimate(request.estimated_input_tokens());
    let result = match send(backend, body).await {
        Ok((response, _lease)) => {
            let deadline = started + backend.config.timeouts.total;
            read_complete(pair, backend, response, deadline, input_estimate, &request).await
        }
        Err(failure) => Err(failure),
    };
    let latency = started.elapsed();
    match result {
        Ok(completed) => Ok(Answer {
            text: completed.text(format).unwrap_or_default(),
            cost: backend_cost(&backend.config, &completed.usage),
            usage: completed.usage,
            estimated: completed.estimated,
            latency,
        }),
        Err(failure) => Err(CallFailure {
            transient: failure.retryable,
            kind: failure.kind,
            message: failure.message,
            retry_after: failure.retry_after,
            latency,
        }),
    }
}

/// What `input_tokens` in and `output_tokens` out would cost on `backend`, priced as
/// its answers are: for an estimate before anything is sent.
pub fn estimate_cost(backend: &Backend, input_tokens: u64, output_tokens: u64) -> Money {
    backend_cost(
        &backend.config,
        &TokenUsage {
            input_tokens,
            output_tokens,
            ..TokenUsage::default()
        },
    )
}
