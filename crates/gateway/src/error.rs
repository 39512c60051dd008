//! The gateway's errors: [`ClientError`], answered to a client in its own format, and
//! [`GatewayError`], for starting, reloading and stopping the server.
//!
//! This module owns the `x-costfloor-*` response headers, since every answer carries
//! them. It must not name a vendor field: bodies and statuses come from
//! `wire::pair::ClientFormat`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use ledger::Outcome;
use wire::pair::{ClientFormat, RequestError};
use wire::ApiErrorKind;

use crate::config::ConfigError;

pub const HEADER_BACKEND: &str = "x-costfloor-backend";
pub const HEADER_ROUTE: &str = "x-costfloor-route";
pub const HEADER_REQUEST_ID: &str = "x-costfloor-request-id";
pub const HEADER_TASK: &str = "x-costfloor-task";

/// An error answered to the client in its own format. `message` is what the client
/// reads: it names the field or the backend, never an address, URL or secret.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ClientError {
    pub kind: ApiErrorKind,
    pub message: String,
    pub retry_after: Option<Duration>,
    /// How the ledger records it: the client's mistake or an upstream failure.
    pub outcome: Outcome,
    /// For the log only: the cause behind the message (it may name upstream addresses).
    pub detail: Option<String>,
}

impl ClientError {
    /// The client's mistake (bad key, bad body, unknown model).
    pub fn client(kind: ApiErrorKind, message: impl Into<String>) -> ClientError {
        ClientError {
            kind,
            message: message.into(),
            retry_after: None,
            outcome: Outcome::ClientError,
            detail: None,
        }
    }

    /// No backend could answer.
    pub fn upstream(kind: ApiErrorKind, message: impl Into<String>) -> ClientError {
        ClientError {
            kind,
            message: message.into(),
            retry_after: None,
            outcome: Outcome::UpstreamError,
            detail: None,
        }
    }

    /// The response: status and body in the client's format, `retry-after` when the
    /// upstream gave one, and the `x-costfloor-*` headers.
    pub fn into_response(
        &self,
        format: ClientFormat,
        request_id: &str,
        route: &str,
        backend: &str,
    ) -> Response {
        let status = format.error_status(self.kind);
        let mut response = Response::new(Body::from(format.error_body(self.kind, &self.message)));
        *response.status_mut() =
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(wait) = self.retry_after {
            if let Ok(value) = HeaderValue::from_str(&wait.as_secs_f64().ceil().to_string()) {
                headers.insert(http::header::RETRY_AFTER, value);
            }
        }
        tag(headers, request_id, route, backend);
        response
    }
}

impl From<RequestError> for ClientError {
    fn from(error: RequestError) -> ClientError {
        ClientError::client(error.kind, error.message)
    }
}

/// Sets the three `x-costfloor-*` headers; an empty route or backend reads `none`.
pub fn tag(headers: &mut HeaderMap, request_id: &str, route: &str, backend: &str) {
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

/// Why the gateway could not start, reload or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("backend `{backend}`: {reason}")]
    Backend { backend: String, reason: String },
    #[error("opening the ledger {path}")]
    LedgerOpen {
        path: String,
        #[source]
        source: ledger::LedgerError,
    },
    #[error("flushing the ledger")]
    LedgerFlush(#[source] ledger::LedgerError),
    #[error("binding {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("installing the {signal} handler")]
    Signal {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("no config file to reload from")]
    NoConfigFile,
    #[error("the gateway task panicked")]
    Panicked(#[source] tokio::task::JoinError),
}

/// The whole chain of an error, `: `-separated, for logs and messages.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_response_is_tagged_and_shaped_for_its_client() {
        let mut error = ClientError::upstream(ApiErrorKind::RateLimit, "slow down");
        error.retry_after = Some(Duration::from_millis(1500));
        let response = error.into_response(ClientFormat::Anthropic, "id-1", "", "claude");
        assert_eq!(response.status(), 429);
        let headers = response.headers();
        assert_eq!(headers[HEADER_REQUEST_ID], "id-1");
        assert_eq!(headers[HEADER_ROUTE], "none");
        assert_eq!(headers[HEADER_BACKEND], "claude");
        // Rounded up to whole seconds.
        assert_eq!(headers[http::header::RETRY_AFTER], "2");
        assert_eq!(error.outcome, Outcome::UpstreamError);
        let client = ClientError::from(RequestError {
            kind: ApiErrorKind::InvalidRequest,
            message: "bad".into(),
        });
        assert_eq!(client.outcome, Outcome::ClientError);
    }
}
