//! The format pair: every rule that depends on the wire format the client speaks and
//! the protocol the backend speaks.
//!
//! It owns parsing and validating a client request ([`ClientRequest`]), building the
//! upstream body and headers ([`FormatPair::upstream_body`],
//! [`BackendProtocol::upstream_headers`]), checking and translating a whole response
//! ([`FormatPair::read_complete`]), relaying a stream ([`StreamRelay`]), where each
//! backend counts a request's tokens ([`ClientRequest::count_attempts`]), and the
//! error and `/v1/models` bodies each client expects ([`ClientFormat`]).
//!
//! It must not do I/O, route, retry or price: the gateway hands it bytes and gets back
//! bytes, token usage and errors to answer in the client's format.

mod complete;
mod count;
mod request;
mod stream;

use std::borrow::Cow;

use bytes::Bytes;
use serde::Serialize;

pub use complete::{Completed, InvalidResponse};
pub use count::{count_body, read_count, CountAttempt, CountSource, CountTarget};
pub use request::{ChatParts, ClientRequest, Media};
pub use stream::{RelayInit, RelayStep, StreamRelay};

use crate::error::{self, ApiErrorKind};
use crate::json::to_vec;
use crate::translate;

/// The header that carries the Anthropic API version; its presence on `GET /v1/models`
/// marks an Anthropic client.
pub const ANTHROPIC_VERSION_HEADER: &str = "anthropic-version";
/// The header Anthropic clients other than the current Python SDK send their key in.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The wire format a client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientFormat {
    /// Chat Completions, `POST /v1/chat/completions`.
    OpenAi,
    /// Messages, `POST /v1/messages`.
    Anthropic,
    /// Responses, `POST /v1/responses`: OpenAI's error and model-list shapes, sent
    /// upstream as Chat Completions.
    Responses,
}

/// The protocol a backend speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendProtocol {
    /// The Anthropic Messages API.
    Anthropic,
    /// OpenAI's own Chat Completions API: keeps request `metadata`.
    OpenAi,
    /// A compatible server (vLLM, the llama.cpp server, TGI, Ollama): gets no
    /// `metadata`, which some of them reject.
    OpenAiCompatible,
    /// OpenAI's Responses API (`POST /v1/responses`), which keeps responses on the
    /// server: Responses clients pass through to it, `previous_response_id` and
    /// `store` included; other clients are refused.
    OpenAiResponses,
}

/// A request the client must fix, or one that cannot be sent to the chosen backend:
/// the kind decides the status in the client's format, the message names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    pub kind: ApiErrorKind,
    pub message: String,
}

impl RequestError {
    pub(crate) fn invalid(message: impl Into<String>) -> RequestError {
        RequestError {
            kind: ApiErrorKind::InvalidRequest,
            message: message.into(),
        }
    }
}

impl From<translate::Unsupported> for RequestError {
    fn from(unsupported: translate::Unsupported) -> RequestError {
        RequestError::invalid(unsupported.to_string())
    }
}

impl ClientFormat {
    /// The HTTP status this client expects for an error of `kind`.
    pub fn error_status(self, kind: ApiErrorKind) -> u16 {
        match self {
            ClientFormat::OpenAi | ClientFormat::Responses => kind.openai_status(),
            ClientFormat::Anthropic => kind.status(),
        }
    }

    /// The error body in this client's shape.
    pub fn error_body(self, kind: ApiErrorKind, message: &str) -> Vec<u8> {
        match self {
            ClientFormat::OpenAi | ClientFormat::Responses => {
                error::openai_body(kind, message, None, None)
            }
            ClientFormat::Anthropic => error::anthropic_body(kind, message),
        }
    }

    /// The format of a request to a path that is not an endpoint: Anthropic under
    /// `/v1/messages`, OpenAI otherwise.
    pub fn for_path(path: &str) -> ClientFormat {
        if path.starts_with("/v1/messages") {
            ClientFormat::Anthropic
        } else if path.starts_with("/v1/responses") {
            ClientFormat::Responses
        } else {
            ClientFormat::OpenAi
        }
    }

    /// The format of a `GET /v1/models` request: Anthropic clients send
    /// [`ANTHROPIC_VERSION_HEADER`].
    pub fn for_models(has_anthropic_version: bool) -> ClientFormat {
        if has_anthropic_version {
            ClientFormat::Anthropic
        } else {
            ClientFormat::OpenAi
        }
    }

    /// The `GET /v1/models` body listing `names`, in this client's shape.
    pub fn models_body(self, names: &[String]) -> Vec<u8> {
        match self {
            ClientFormat::OpenAi | ClientFormat::Responses => {
                #[derive(Serialize)]
                struct Model<'a> {
                    id: &'a str,
                    object: &'static str,
                    created: u64,
                    owned_by: &'static str,
                }
                #[derive(Serialize)]
                struct List<'a> {
                    object: &'static str,
                    data: Vec<Model<'a>>,
                }
                to_vec(&List {
                    object: "list",
                    data: names
                        .iter()
                        .map(|id| Model {
                            id,
                            object: "model",
                            created: 0,
                            owned_by: "costfloor",
                        })
                        .collect(),
                })
            }
            ClientFormat::Anthropic => {
                #[derive(Serialize)]
                struct Model<'a> {
                    #[serde(rename = "type")]
                    kind: &'static str,
                    id: &'a str,
                    display_name: &'a str,
                    created_at: &'static str,
                }
                #[derive(Serialize)]
                struct List<'a> {
                    data: Vec<Model<'a>>,
                    has_more: bool,
                    first_id: Option<&'a str>,
                    last_id: Option<&'a str>,
                }
                to_vec(&List {
                    data: names
                        .iter()
                        .map(|id| Model {
                            kind: "model",
                            id,
                            display_name: id,
                            created_at: "1970-01-01T00:00:00Z",
                        })
                        .collect(),
                    has_more: false,
                    first_id: names.first().map(String::as_str),
                    last_id: names.last().map(String::as_str),
                })
            }
        }
    }

    /// Parses a request body in this format and makes the checks the official API
    /// makes before generating anything, so that a backend that answers bad input
    /// with a 500 (the llama.cpp server) never sees it.
    pub fn parse_request(self, body: &[u8]) -> Result<ClientRequest, RequestError> {
        ClientRequest::parse(self, body)
    }
}

/// The key a client presented: `Authorization: Bearer KEY` (OpenAI SDK, Anthropic
/// SDK 2.x) or `x-api-key: KEY` (other Anthropic clients), from the two header values.
pub fn presented_key<'a>(
    authorization: Option<&'a str>,
    api_key: Option<&'a str>,
) -> Option<&'a str> {
    authorization
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or(api_key)
        .map(str::trim)
}

/// One header of an upstream request. `secret` marks the credential, which the
/// caller must flag as sensitive and never log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamHeader<'a> {
    pub name: &'static str,
    pub value: Cow<'a, str>,
    pub secret: bool,
}

impl BackendProtocol {
    /// True for the Anthropic Messages API.
    pub fn speaks_anthropic(self) -> bool {
        self == BackendProtocol::Anthropic
    }

    /// True for OpenAI's Responses API.
    pub fn speaks_responses(self) -> bool {
        self == BackendProtocol::OpenAiResponses
    }

    /// The name of the format, for messages.
    pub fn name(self) -> &'static str {
        match self {
            BackendProtocol::Anthropic => "Anthropic",
            BackendProtocol::OpenAiResponses => "OpenAI Responses",
            BackendProtocol::OpenAi | BackendProtocol::OpenAiCompatible => "OpenAI",
        }
    }

    /// The generation endpoint under a base URL without a trailing slash: Anthropic
    /// base URLs are the host (`https://api.anthropic.com`), OpenAI ones include `/v1`.
    pub fn generation_url(self, base_url: &str) -> String {
        match self {
            BackendProtocol::Anthropic => format!("{base_url}/v1/messages"),
            BackendProtocol::OpenAi | BackendProtocol::OpenAiCompatible => {
                format!("{base_url}/chat/completions")
            }
            BackendProtocol::OpenAiResponses => format!("{base_url}/responses"),
        }
    }

    /// The headers of a generation request: the content type, the version header for
    /// Anthropic, and the key in the header this protocol reads it from.
    pub fn upstream_headers<'a>(
        self,
        api_key: Option<&'a str>,
        anthropic_version: &'a str,
    ) -> Vec<UpstreamHeader<'a>> {
        let mut headers = vec![UpstreamHeader {
            name: "content-type",
            value: Cow::Borrowed("application/json"),
            secret: false,
        }];
        if self.speaks_anthropic() {
            headers.push(UpstreamHeader {
                name: ANTHROPIC_VERSION_HEADER,
                value: Cow::Borrowed(anthropic_version),
                secret: false,
            });
            if let Some(key) = api_key {
                headers.push(UpstreamHeader {
                    name: API_KEY_HEADER,
                    value: Cow::Borrowed(key),
                    secret: true,
                });
            }
        } else if let Some(key) = api_key {
            headers.push(UpstreamHeader {
                name: "authorization",
                value: Cow::Owned(format!("Bearer {key}")),
                secret: true,
            });
        }
        headers
    }
}

/// A (client format, backend protocol) pair: the one place that matches on both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormatPair {
    pub client: ClientFormat,
    pub backend: BackendProtocol,
}

impl FormatPair {
    pub fn new(client: ClientFormat, backend: BackendProtocol) -> FormatPair {
        FormatPair { client, backend }
    }

    /// True when the backend speaks the client's format and bodies pass through.
    pub fn passes_through(self) -> bool {
        matches!(
            (self.client, self.backend),
            (
                ClientFormat::OpenAi,
                BackendProtocol::OpenAi | BackendProtocol::OpenAiCompatible
            ) | (ClientFormat::Anthropic, BackendProtocol::Anthropic)
                | (ClientFormat::Responses, BackendProtocol::OpenAiResponses)
        )
    }

    /// The upstream body for `request` sent to a backend serving `model`.
    ///
    /// - Same format: the model is swapped, the task label is removed from
    ///   `metadata` (Anthropic accepts only `user_id`; compatible servers get no
    ///   metadata at all), and OpenAI streams ask for usage even when the client did
    ///   not (the extra chunk is stripped by [`StreamRelay`]). The request is never
    ///   deep-copied: the swapped fields are put back after encoding.
    /// - Other format: translated, or refused naming the field that has no
    ///   equivalent.
    pub fn upstream_body(
        self,
        request: &mut ClientRequest,
        model: &str,
        default_max_tokens: u32,
    ) -> Result<Bytes, RequestError> {
        request::upstream_body(self.backend, request, model, default_max_tokens)
    }

    /// Reads a whole (non-streamed) upstream body: checks that it is a response of
    /// the backend's protocol, takes its usage, and converts it to the client's format
    /// (a Responses client's `response` object repeats fields of its `request`).
    pub fn read_complete(
        self,
        body: Bytes,
        input_estimate: u64,
        request: &ClientRequest,
    ) -> Result<Completed, InvalidResponse> {
        complete::read_complete(self, body, input_estimate, request.responses_echo())
    }

    /// A relay for one upstream stream to this client.
    pub fn stream_relay(self, init: &RelayInit<'_>) -> StreamRelay {
        StreamRelay::new(self, init)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn presented_key_takes_either_header() {
        let cases = [
            (Some("Bearer k1"), None, Some("k1")),
            (Some("bearer k1 "), None, Some("k1")),
            (None, Some("k2"), Some("k2")),
            (Some("Basic xyz"), Some("k2"), Some("k2")),
            (Some("Bearer k1"), Some("k2"), Some("k1")),
            (None, None, None),
        ];
        for (authorization, api_key, expected) in cases {
            assert_eq!(
                presented_key(authorization, api_key),
                expected,
                "{authorization:?} {api_key:?}"
            );
        }
    }

    #[test]
    fn upstream_headers_put_the_key_where_each_protocol_reads_it() {
        let anthropic = BackendProtocol::Anthropic.upstream_headers(Some("sk"), "2023-06-01");
        let names: Vec<_> = anthropic
            .iter()
            .map(|h| (h.name, h.value.as_ref(), h.secret))
            .collect();
        assert_eq!(
            names,
            [
                ("content-type", "application/json", false),
                ("anthropic-version", "2023-06-01", false),
                ("x-api-key", "sk", true)
            ]
        );
        for protocol in [BackendProtocol::OpenAi, BackendProtocol::OpenAiCompatible] {
            let headers = protocol.upstream_headers(Some("sk"), "2023-06-01");
            let names: Vec<_> = headers
                .iter()
                .map(|h| (h.name, h.value.as_ref(), h.secret))
                .collect();
            assert_eq!(
                names,
                [
                    ("content-type", "application/json", false),
                    ("authorization", "Bearer sk", true)
                ]
            );
        }
        assert_eq!(
            BackendProtocol::OpenAiCompatible
                .upstream_headers(None, "v")
                .len(),
            1
        );
    }

    #[test]
    fn models_bodies_have_each_vendors_shape() {
        let names = vec!["a".to_string(), "b".to_string()];
        let openai: Value =
            serde_json::from_slice(&ClientFormat::OpenAi.models_body(&names)).unwrap();
        assert_eq!(openai["object"], "list");
        assert_eq!(openai["data"][1]["id"], "b");
        assert_eq!(openai["data"][0]["object"], "model");
        let anthropic: Value =
            serde_json::from_slice(&ClientFormat::Anthropic.models_body(&names)).unwrap();
        assert_eq!(anthropic["data"][0]["type"], "model");
        assert_eq!(anthropic["first_id"], "a");
        assert_eq!(anthropic["last_id"], "b");
        assert_eq!(anthropic["has_more"], false);
        let empty: Value =
            serde_json::from_slice(&ClientFormat::Anthropic.models_body(&[])).unwrap();
        assert!(empty["first_id"].is_null());
    }

    #[test]
    fn error_bodies_and_statuses_follow_the_client() {
        let kind = ApiErrorKind::Overloaded;
        assert_eq!(ClientFormat::Anthropic.error_status(kind), 529);
        assert_eq!(
            ClientFormat::OpenAi.error_status(kind),
            kind.openai_status()
        );
        let body: Value =
            serde_json::from_slice(&ClientFormat::Anthropic.error_body(kind, "busy")).unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "overloaded_error");
        let body: Value =
            serde_json::from_slice(&ClientFormat::OpenAi.error_body(kind, "busy")).unwrap();
        assert_eq!(body["error"]["message"], "busy");
    }

    #[test]
    fn generation_urls() {
        assert_eq!(
            BackendProtocol::Anthropic.generation_url("https://api.anthropic.com"),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(
            BackendProtocol::OpenAiCompatible.generation_url("http://127.0.0.1:8000/v1"),
            "http://127.0.0.1:8000/v1/chat/completions"
        );
    }
}
