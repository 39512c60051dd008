//! Token counting, `POST /v1/messages/count_tokens`: the client's request, where each
//! backend protocol counts it, the count read back, and the body the client gets.
//!
//! - An Anthropic backend counts it itself: the same request, with only the fields
//!   its `count_tokens` accepts, at `<messages endpoint>/count_tokens`.
//! - An OpenAI-compatible server is asked at its `/tokenize`: one body that vLLM
//!   reads as a chat (`messages`, its chat template applied; it answers `count`) and
//!   the llama.cpp server reads as text (`content`; it answers `tokens`). Then the
//!   llama-cpp-python server's `/extras/tokenize/count` (`input`; it answers `count`).
//! - Where none answers (OpenAI itself has no such endpoint), the gateway answers
//!   its estimate. [`CountSource`] says which it was.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{BackendProtocol, ClientFormat, ClientRequest, RequestError};
use crate::json::to_vec;
use crate::{anthropic, openai, translate};

/// The fields Anthropic's `count_tokens` accepts besides `model` and `messages`.
const COUNT_FIELDS: [&str; 5] = ["system", "tools", "tool_choice", "thinking", "mcp_servers"];

/// Who counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountSource {
    /// The backend counted the request as it would bill or run it (Anthropic's
    /// `count_tokens`, vLLM's `/tokenize` of the chat).
    Backend,
    /// The backend's tokenizer counted the request's text, without its chat template.
    BackendText,
    /// The gateway's estimate (about four characters a token).
    Estimate,
}

impl CountSource {
    /// The value of the `x-costfloor-token-count` header.
    pub fn as_str(self) -> &'static str {
        match self {
            CountSource::Backend => "backend",
            CountSource::BackendText => "backend_text",
            CountSource::Estimate => "estimate",
        }
    }
}

/// Where an attempt is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountTarget {
    /// Appended to the backend's generation endpoint's path.
    EndpointSuffix(&'static str),
    /// A path from the backend server's root.
    ServerPath(&'static str),
}

/// One place to ask for the count, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct CountAttempt {
    pub target: CountTarget,
    pub body: Bytes,
}

impl ClientRequest {
    /// Parses a `count_tokens` body: a Messages request without `max_tokens`, with
    /// the same checks as `/v1/messages` otherwise.
    pub fn parse_count(body: &[u8]) -> Result<ClientRequest, RequestError> {
        let mut value: Value = serde_json::from_slice(body)
            .map_err(|e| RequestError::invalid(format!("invalid JSON body: {e}")))?;
        let object = value
            .as_object_mut()
            .ok_or_else(|| RequestError::invalid("the body must be a JSON object"))?;
        object.entry("max_tokens").or_insert(Value::from(1));
        ClientRequest::parse(ClientFormat::Anthropic, &to_vec(&value))
    }

    /// Where to ask `backend` for this request's count, in order; empty when only
    /// an estimate is possible.
    pub fn count_attempts(
        &self,
        backend: BackendProtocol,
        model: &str,
    ) -> Result<Vec<CountAttempt>, RequestError> {
        let ClientRequest::Anthropic(request) = self else {
            return Ok(Vec::new());
        };
        match backend {
            BackendProtocol::Anthropic => {
                let mut body = Map::new();
                body.insert("model".to_owned(), Value::from(model));
                body.insert("messages".to_owned(), json!(request.messages));
                if let Some(system) = &request.system {
                    body.insert("system".to_owned(), json!(system));
                }
                for key in COUNT_FIELDS {
                    if let Some(value) = request.extra.get(key).filter(|v| !v.is_null()) {
                        body.insert(key.to_owned(), value.clone());
                    }
                }
                Ok(vec![CountAttempt {
                    target: CountTarget::EndpointSuffix("/count_tokens"),
                    body: Bytes::from(to_vec(&body)),
                }])
            }
            BackendProtocol::OpenAi | BackendProtocol::OpenAiResponses => Ok(Vec::new()),
            BackendProtocol::OpenAiCompatible => {
                let chat = translate::anthropic_to_openai_request(request)?;
                let text = chat_text(&chat);
                let mut tokenize = json!({
                    "model": model,
                    "messages": chat.messages,
                    "add_generation_prompt": true,
                    "content": text,
                    "add_special": true,
                });
                if let Some(tools) = chat.extra.get("tools") {
                    tokenize["tools"] = tools.clone();
                }
                let extras = json!({ "model": model, "input": text });
                Ok(vec![
                    CountAttempt {
                        target: CountTarget::ServerPath("/tokenize"),
                        body: Bytes::from(to_vec(&tokenize)),
                    },
                    CountAttempt {
                        target: CountTarget::ServerPath("/extras/tokenize/count"),
                        body: Bytes::from(to_vec(&extras)),
                    },
                ])
            }
        }
    }
}

/// The text of a chat's messages, one per line, for a tokenizer that takes text.
fn chat_text(chat: &openai::ChatRequest) -> String {
    let mut out = String::new();
    for message in &chat.messages {
        let text = message
            .content
            .as_ref()
            .map_or_else(String::new, |content| content.text_joined("\n"));
        for call in message.tool_calls.iter().flatten() {
            out.push_str(&call.to_string());
            out.push('\n');
        }
        if !text.is_empty() {
            out.push_str(&text);
            out.push('\n');
        }
    }
    out
}

#[derive(Deserialize)]
struct CountPeek {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    tokens: Option<Vec<serde::de::IgnoredAny>>,
    #[serde(default)]
    max_model_len: Option<u64>,
}

/// Reads a count from an attempt's answer: Anthropic's `input_tokens`, vLLM's
/// `count` (with `max_model_len`: the chat was counted), llama-cpp-python's
/// `count`, or the length of the llama.cpp server's `tokens`. `None` when the body
/// holds none of them.
pub fn read_count(target: CountTarget, body: &[u8]) -> Option<(u64, CountSource)> {
    let peek: CountPeek = serde_json::from_slice(body).ok()?;
    match target {
        CountTarget::EndpointSuffix(_) => peek.input_tokens.map(|n| (n, CountSource::Backend)),
        CountTarget::ServerPath(_) => match (peek.count, peek.max_model_len, peek.tokens) {
            (Some(n), Some(_), _) => Some((n, CountSource::Backend)),
            (Some(n), None, _) => Some((n, CountSource::BackendText)),
            (None, _, Some(tokens)) if !tokens.is_empty() => {
                Some((tokens.len() as u64, CountSource::BackendText))
            }
            _ => None,
        },
    }
}

/// The body the client gets: `{"input_tokens": N}`, as Anthropic answers.
pub fn count_body(input_tokens: u64) -> Bytes {
    Bytes::from(to_vec(&anthropic::TokenCount { input_tokens }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value) -> ClientRequest {
        ClientRequest::parse_count(&serde_json::to_vec(&body).unwrap()).unwrap()
    }

    #[test]
    fn anthropic_backends_get_only_the_fields_count_tokens_accepts() {
        let r = request(json!({
            "model": "claude", "system": "Be brief.", "temperature": 0.2,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}]
        }));
        let attempts = r
            .count_attempts(BackendProtocol::Anthropic, "claude-haiku-4-5")
            .unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(
            attempts[0].target,
            CountTarget::EndpointSuffix("/count_tokens")
        );
        let body: Value = serde_json::from_slice(&attempts[0].body).unwrap();
        assert_eq!(
            body,
            json!({"model": "claude-haiku-4-5", "system": "Be brief.",
                   "messages": [{"role": "user", "content": "hi"}],
                   "tools": [{"name": "f", "input_schema": {"type": "object"}}]})
        );
    }

    #[test]
    fn compatible_servers_are_asked_at_tokenize_in_both_dialects() {
        let r = request(
            json!({"model": "m", "system": "S", "messages": [{"role": "user", "content": "hello there"}]}),
        );
        let attempts = r
            .count_attempts(BackendProtocol::OpenAiCompatible, "llama")
            .unwrap();
        assert_eq!(
            attempts.iter().map(|a| a.target).collect::<Vec<_>>(),
            [
                CountTarget::ServerPath("/tokenize"),
                CountTarget::ServerPath("/extras/tokenize/count")
            ]
        );
        let body: Value = serde_json::from_slice(&attempts[0].body).unwrap();
        assert_eq!(
            body["messages"],
            json!([{"role": "system", "content": "S"}, {"role": "user", "content": "hello there"}])
        );
        assert_eq!(body["content"], "S\nhello there\n");
        assert!(r
            .count_attempts(BackendProtocol::OpenAi, "gpt")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn counts_are_read_from_each_servers_answer() {
        let endpoint = CountTarget::EndpointSuffix("/count_tokens");
        let server = CountTarget::ServerPath("/tokenize");
        assert_eq!(
            read_count(endpoint, br#"{"input_tokens": 14}"#),
            Some((14, CountSource::Backend))
        );
        // vLLM: https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html (tokenizer API)
        assert_eq!(
            read_count(
                server,
                br#"{"count": 9, "max_model_len": 8192, "tokens": [1,2,3,4,5,6,7,8,9]}"#
            ),
            Some((9, CountSource::Backend))
        );
        assert_eq!(
            read_count(server, br#"{"tokens": [15, 27, 99]}"#),
            Some((3, CountSource::BackendText))
        );
        assert_eq!(
            read_count(server, br#"{"count": 4}"#),
            Some((4, CountSource::BackendText))
        );
        assert_eq!(read_count(server, br#"{"tokens": []}"#), None);
        assert_eq!(read_count(server, br#"{"detail": "Not Found"}"#), None);
        assert_eq!(
            count_body(42),
            Bytes::from_static(br#"{"input_tokens":42}"#)
        );
    }

    #[test]
    fn count_requests_need_no_max_tokens_but_keep_the_other_checks() {
        assert!(ClientRequest::parse_count(
            br#"{"model": "m", "messages": [{"role": "user", "content": "x"}]}"#
        )
        .is_ok());
        let error = ClientRequest::parse_count(br#"{"model": "m", "messages": []}"#).unwrap_err();
        assert!(error.message.contains("messages"), "{}", error.message);
    }
}
