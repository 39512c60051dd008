//! API error kinds with their HTTP statuses, and the error bodies each API's clients expect.
//!
//! Anthropic (<https://docs.claude.com/en/api/errors>): the body is
//! `{"type":"error","error":{"type":…,"message":…}}` and the types are
//! 400 `invalid_request_error`, 401 `authentication_error`, 403 `permission_error`,
//! 404 `not_found_error`, 413 `request_too_large`, 429 `rate_limit_error`,
//! 500 `api_error`, 529 `overloaded_error`. The SDKs also list `timeout_error`
//! (their `GatewayTimeoutError`, used here for 504) and `billing_error`.
//!
//! OpenAI (<https://platform.openai.com/docs/guides/error-codes>): the body is
//! `{"error":{"message":…,"type":…,"param":…,"code":…}}`. OpenAI's own types are
//! coarse: a bad key is `invalid_request_error` with code `invalid_api_key`, a
//! rate limit is type `requests` (or `tokens`) with code `rate_limit_exceeded`,
//! server faults are `server_error`. Its SDKs pick the exception class from the
//! HTTP status, not from `type`.

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::json::to_vec;
use crate::sse;

/// What went wrong, in terms both APIs can express.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiErrorKind {
    /// 400: the request is malformed or asks for something unsupported.
    InvalidRequest,
    /// 401: the API key is missing or wrong.
    Authentication,
    /// 403: the key may not use this resource.
    Permission,
    /// 404: no such model or route.
    NotFound,
    /// 413: the request body is too large.
    RequestTooLarge,
    /// 429: a rate limit or budget was hit.
    RateLimit,
    /// 500: an unexpected internal error.
    Api,
    /// 502: the upstream answered with something unusable, or could not be reached.
    BadGateway,
    /// 504: the upstream did not answer in time.
    Timeout,
    /// 529: the upstream (or this gateway) is temporarily overloaded.
    Overloaded,
}

impl ApiErrorKind {
    /// Every kind, for tests and tables.
    pub const ALL: [ApiErrorKind; 10] = [
        Self::InvalidRequest,
        Self::Authentication,
        Self::Permission,
        Self::NotFound,
        Self::RequestTooLarge,
        Self::RateLimit,
        Self::Api,
        Self::BadGateway,
        Self::Timeout,
        Self::Overloaded,
    ];

    /// The HTTP status for this kind (Anthropic's statuses; 529 for overload).
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidRequest => 400,
            Self::Authentication => 401,
            Self::Permission => 403,
            Self::NotFound => 404,
            Self::RequestTooLarge => 413,
            Self::RateLimit => 429,
            Self::Api => 500,
            Self::BadGateway => 502,
            Self::Timeout => 504,
            Self::Overloaded => 529,
        }
    }

    /// The HTTP status to send an OpenAI client: as [`status`](Self::status),
    /// except overload is 503, since 529 is not an OpenAI status.
    pub fn openai_status(self) -> u16 {
        match self {
            Self::Overloaded => 503,
            other => other.status(),
        }
    }

    /// The Anthropic `error.type`. 502 has no type of its own and uses `api_error`;
    /// 504 uses `timeout_error`, the type of the SDKs' `GatewayTimeoutError`.
    pub fn anthropic_type(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request_error",
            Self::Authentication => "authentication_error",
            Self::Permission => "permission_error",
            Self::NotFound => "not_found_error",
            Self::RequestTooLarge => "request_too_large",
            Self::RateLimit => "rate_limit_error",
            Self::Api | Self::BadGateway => "api_error",
            Self::Timeout => "timeout_error",
            Self::Overloaded => "overloaded_error",
        }
    }

    /// The OpenAI `error.type`, as OpenAI itself sends it: most client errors
    /// are `invalid_request_error` (401 and 404 included), rate limits are
    /// `requests`, and server-side failures are `server_error`.
    pub fn openai_type(self) -> &'static str {
        match self {
            Self::InvalidRequest
            | Self::Authentication
            | Self::Permission
            | Self::NotFound
            | Self::RequestTooLarge => "invalid_request_error",
            Self::RateLimit => "requests",
            Self::Api | Self::BadGateway | Self::Timeout | Self::Overloaded => "server_error",
        }
    }

    /// The OpenAI `error.code` used when the caller gives none: `invalid_api_key`
    /// for 401 and `rate_limit_exceeded` for 429, as OpenAI sends them.
    pub fn openai_default_code(self) -> Option<&'static str> {
        match self {
            Self::Authentication => Some("invalid_api_key"),
            Self::RateLimit => Some("rate_limit_exceeded"),
            _ => None,
        }
    }

    /// Maps an upstream HTTP status to a kind. Other 4xx statuses are
    /// `InvalidRequest` (as Anthropic documents); other statuses are `Api`.
    pub fn from_status(status: u16) -> Self {
        match status {
            401 => Self::Authentication,
            403 => Self::Permission,
            404 => Self::NotFound,
            408 | 504 => Self::Timeout,
            413 => Self::RequestTooLarge,
            429 => Self::RateLimit,
            502 => Self::BadGateway,
            503 | 529 => Self::Overloaded,
            400..=499 => Self::InvalidRequest,
            _ => Self::Api,
        }
    }

    /// Maps an Anthropic `error.type` (from a body or a stream `error` event) to a kind.
    pub fn from_anthropic_type(error_type: &str) -> Self {
        match error_type {
            "invalid_request_error" | "billing_error" => Self::InvalidRequest,
            "authentication_error" => Self::Authentication,
            "permission_error" => Self::Permission,
            "not_found_error" => Self::NotFound,
            "request_too_large" => Self::RequestTooLarge,
            "rate_limit_error" => Self::RateLimit,
            "timeout_error" => Self::Timeout,
            "overloaded_error" => Self::Overloaded,
            _ => Self::Api,
        }
    }

    /// Maps an OpenAI `error.type` and `error.code` (from a body or a mid-stream
    /// error) to a kind. OpenAI's types are coarse, so the code is checked first.
    pub fn from_openai_error(error_type: &str, code: Option<&str>) -> Self {
        match code {
            Some("invalid_api_key") => return Self::Authentication,
            Some("rate_limit_exceeded" | "insufficient_quota") => return Self::RateLimit,
            Some("model_not_found") => return Self::NotFound,
            Some("unsupported_country_region_territory") => return Self::Permission,
            _ => {}
        }
        match error_type {
            "invalid_request_error" => Self::InvalidRequest,
            "authentication_error" => Self::Authentication,
            "permission_error" | "request_forbidden" => Self::Permission,
            "not_found_error" => Self::NotFound,
            "requests"
            | "tokens"
            | "rate_limit_error"
            | "rate_limit_exceeded"
            | "insufficient_quota" => Self::RateLimit,
            "timeout" | "timeout_error" => Self::Timeout,
            "overloaded_error" | "service_unavailable_error" => Self::Overloaded,
            _ => Self::Api,
        }
    }
}

/// The Anthropic error body, fields in the documented order.
#[derive(Serialize)]
struct AnthropicBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: AnthropicError<'a>,
}

#[derive(Serialize)]
struct AnthropicError<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

/// The OpenAI error body, fields in the documented order.
#[derive(Serialize)]
struct OpenAiBody<'a> {
    error: OpenAiError<'a>,
}

#[derive(Serialize)]
struct OpenAiError<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// The Anthropic error body: `{"type":"error","error":{"type":…,"message":…}}`.
pub fn anthropic_body(kind: ApiErrorKind, message: &str) -> Vec<u8> {
    to_vec(&AnthropicBody {
        kind: "error",
        error: AnthropicError {
            kind: kind.anthropic_type(),
            message,
        },
    })
}

/// The OpenAI error body: `{"error":{"message":…,"type":…,"param":…,"code":…}}`.
/// `param` and `code` are written as `null` when absent; a missing `code`
/// falls back to [`ApiErrorKind::openai_default_code`].
pub fn openai_body(
    kind: ApiErrorKind,
    message: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Vec<u8> {
    to_vec(&OpenAiBody {
        error: OpenAiError {
            message,
            kind: kind.openai_type(),
            param,
            code: code.or(kind.openai_default_code()),
        },
    })
}

/// A mid-stream failure for an Anthropic client: `event: error` with the
/// error body. No `message_stop` follows it.
pub fn anthropic_stream_error(kind: ApiErrorKind, message: &str) -> Bytes {
    sse::anthropic_event("error", &anthropic_body(kind, message))
}

/// A mid-stream failure for an OpenAI client: an unnamed `data:` frame holding
/// the error body, which the OpenAI SDKs raise as an `APIError` (they check
/// every data payload for an `error` key). No `[DONE]` follows it.
pub fn openai_stream_error(kind: ApiErrorKind, message: &str) -> Bytes {
    sse::openai_data(&openai_body(kind, message, None, None))
}

/// The `error.message` of an upstream error body in either API's shape, if it has one.
pub fn message_from_body(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let message = value.get("error")?.get("message")?.as_str()?;
    Some(message.to_owned())
}

/// The kind an upstream error body names, in either API's shape, if it names one.
pub fn kind_from_body(body: &[u8]) -> Option<ApiErrorKind> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let error = value.get("error")?;
    let error_type = error.get("type")?.as_str()?;
    if value.get("type").and_then(Value::as_str) == Some("error") {
        return Some(ApiErrorKind::from_anthropic_type(error_type));
    }
    let code = error.get("code").and_then(Value::as_str);
    Some(ApiErrorKind::from_openai_error(error_type, code))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// (kind, status, Anthropic type, OpenAI type, OpenAI status).
    /// Anthropic types and statuses: https://docs.claude.com/en/api/errors
    /// (504 `timeout_error`: the SDKs' `GatewayTimeoutError`,
    /// @anthropic-ai/sdk resources/shared.d.mts, https://app.unpkg.com/@anthropic-ai/sdk@0.81.0/files/resources/shared.d.mts).
    /// OpenAI types: https://platform.openai.com/docs/guides/error-codes and bodies seen from api.openai.com.
    const TABLE: [(ApiErrorKind, u16, &str, &str, u16); 10] = [
        (
            ApiErrorKind::InvalidRequest,
            400,
            "invalid_request_error",
            "invalid_request_error",
            400,
        ),
        (
            ApiErrorKind::Authentication,
            401,
            "authentication_error",
            "invalid_request_error",
            401,
        ),
        (
            ApiErrorKind::Permission,
            403,
            "permission_error",
            "invalid_request_error",
            403,
        ),
        (
            ApiErrorKind::NotFound,
            404,
            "not_found_error",
            "invalid_request_error",
            404,
        ),
        (
            ApiErrorKind::RequestTooLarge,
            413,
            "request_too_large",
            "invalid_request_error",
            413,
        ),
        (
            ApiErrorKind::RateLimit,
            429,
            "rate_limit_error",
            "requests",
            429,
        ),
        (ApiErrorKind::Api, 500, "api_error", "server_error", 500),
        (
            ApiErrorKind::BadGateway,
            502,
            "api_error",
            "server_error",
            502,
        ),
        (
            ApiErrorKind::Timeout,
            504,
            "timeout_error",
            "server_error",
            504,
        ),
        (
            ApiErrorKind::Overloaded,
            529,
            "overloaded_error",
            "server_error",
            503,
        ),
    ];

    #[test]
    fn table_of_statuses_and_types() {
        for (kind, status, anthropic, openai, openai_status) in TABLE {
            assert_eq!(kind.status(), status, "{kind:?}");
            assert_eq!(kind.anthropic_type(), anthropic, "{kind:?}");
            assert_eq!(kind.openai_type(), openai, "{kind:?}");
            assert_eq!(kind.openai_status(), openai_status, "{kind:?}");
            assert_eq!(ApiErrorKind::from_status(status), kind, "{kind:?}");
        }
        assert_eq!(TABLE.len(), ApiErrorKind::ALL.len());
    }

    #[test]
    fn anthropic_types_map_back_except_the_shared_api_error() {
        for kind in ApiErrorKind::ALL {
            let back = ApiErrorKind::from_anthropic_type(kind.anthropic_type());
            let expected = if kind == ApiErrorKind::BadGateway {
                ApiErrorKind::Api
            } else {
                kind
            };
            assert_eq!(back, expected);
        }
        assert_eq!(
            ApiErrorKind::from_anthropic_type("something_new"),
            ApiErrorKind::Api
        );
    }

    #[test]
    fn other_statuses() {
        for (status, kind) in [
            (408, ApiErrorKind::Timeout),
            (422, ApiErrorKind::InvalidRequest),
            (402, ApiErrorKind::InvalidRequest),
            (503, ApiErrorKind::Overloaded),
            (501, ApiErrorKind::Api),
            (200, ApiErrorKind::Api),
        ] {
            assert_eq!(ApiErrorKind::from_status(status), kind, "{status}");
        }
    }

    #[test]
    fn anthropic_body_shape() {
        // Documented example: {"type":"error","error":{"type":"not_found_error","message":"The requested resource could not be found."}}
        let body: Value = serde_json::from_slice(&anthropic_body(
            ApiErrorKind::NotFound,
            "The requested resource could not be found.",
        ))
        .unwrap();
        assert_eq!(
            body,
            json!({"type":"error","error":{"type":"not_found_error","message":"The requested resource could not be found."}})
        );
    }

    #[test]
    fn openai_body_shape_with_nulls_and_default_codes() {
        let body: Value = serde_json::from_slice(&openai_body(
            ApiErrorKind::InvalidRequest,
            "bad temperature",
            Some("temperature"),
            None,
        ))
        .unwrap();
        assert_eq!(
            body,
            json!({"error":{"message":"bad temperature","type":"invalid_request_error","param":"temperature","code":null}})
        );
        // The body OpenAI sends for a wrong key.
        let body: Value = serde_json::from_slice(&openai_body(
            ApiErrorKind::Authentication,
            "Incorrect API key provided",
            None,
            None,
        ))
        .unwrap();
        assert_eq!(
            body,
            json!({"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}})
        );
        let body: Value = serde_json::from_slice(&openai_body(
            ApiErrorKind::RateLimit,
            "slow down",
            None,
            Some("budget_exceeded"),
        ))
        .unwrap();
        assert_eq!(body["error"]["code"], "budget_exceeded");
        assert_eq!(body["error"]["type"], "requests");
    }

    #[test]
    fn message_text_is_escaped() {
        let body = anthropic_body(ApiErrorKind::InvalidRequest, "quote \" and\nnewline");
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["error"]["message"], "quote \" and\nnewline");
        assert!(!body.contains(&b'\n'));
    }

    #[test]
    fn stream_error_frames() {
        let frame = anthropic_stream_error(ApiErrorKind::Overloaded, "Overloaded");
        assert_eq!(
            &frame[..],
            &b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"[..]
        );
        let frame = openai_stream_error(ApiErrorKind::Api, "upstream failed");
        assert_eq!(
            &frame[..],
            &b"data: {\"error\":{\"message\":\"upstream failed\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n"[..]
        );
        let text = std::str::from_utf8(&frame).unwrap();
        assert!(text.starts_with("data: {\"error\":{"), "{text}");
        assert!(text.ends_with("}\n\n"));
        let value: Value = serde_json::from_str(&text["data: ".len()..]).unwrap();
        assert_eq!(value["error"]["type"], "server_error");
    }

    #[test]
    fn reading_upstream_error_bodies() {
        let anthropic = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#;
        assert_eq!(message_from_body(anthropic).as_deref(), Some("Overloaded"));
        assert_eq!(kind_from_body(anthropic), Some(ApiErrorKind::Overloaded));

        let openai = br#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        assert_eq!(
            message_from_body(openai).as_deref(),
            Some("Rate limit reached")
        );
        assert_eq!(kind_from_body(openai), Some(ApiErrorKind::RateLimit));

        let region = br#"{"error":{"code":"unsupported_country_region_territory","message":"Country, region, or territory not supported","param":null,"type":"request_forbidden"}}"#;
        assert_eq!(kind_from_body(region), Some(ApiErrorKind::Permission));

        let key = br#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        assert_eq!(kind_from_body(key), Some(ApiErrorKind::Authentication));

        assert_eq!(message_from_body(b"<html>502</html>"), None);
        assert_eq!(kind_from_body(br#"{"error":"plain string"}"#), None);
    }
}
