//! OpenAI Chat Completions wire types (`POST /v1/chat/completions`): request, response, stream chunk, usage, error.
//!
//! Field names follow the API reference,
//! <https://platform.openai.com/docs/api-reference/chat/create> and
//! <https://platform.openai.com/docs/api-reference/chat-streaming>.
//! Every object keeps the fields it does not model in an `extra` map, so a
//! request parsed and written back still carries `tools`, `seed` and the like.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::json::null_as_default;
use crate::usage::TokenUsage;

/// The `object` value of a chat completion.
pub const CHAT_COMPLETION_OBJECT: &str = "chat.completion";
/// The `object` value of a stream chunk.
pub const CHAT_COMPLETION_CHUNK_OBJECT: &str = "chat.completion.chunk";

/// A chat completion request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    /// Deprecated by OpenAI in favour of `max_completion_tokens`, still what most compatible servers read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// Every other field (`tools`, `response_format`, `seed`, …), kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatRequest {
    /// True when the client asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// True when a streaming client asked for the final usage chunk.
    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|options| options.include_usage)
            .unwrap_or(false)
    }
}

/// `stop`: one string or an array of strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    /// The stop sequences as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Self::One(sequence) => vec![sequence.clone()],
            Self::Many(sequences) => sequences.clone(),
        }
    }
}

/// `stream_options`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Ask for one extra chunk, before `[DONE]`, with `choices: []` and the whole request's usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One message of a request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `developer`, `user`, `assistant`, `tool` (or the legacy `function`).
    pub role: String,
    /// A string or an array of parts; absent or `null` on an assistant message with tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<MessageContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Message {
    /// A message with plain string content.
    pub fn text(role: &str, text: &str) -> Self {
        Self {
            role: role.to_owned(),
            content: Some(MessageContent::Text(text.to_owned())),
            ..Self::default()
        }
    }
}

/// Message content: a string or an array of typed parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl MessageContent {
    /// The text: the string, or the text parts joined with `separator` (other parts left out).
    pub fn text_joined(&self, separator: &str) -> String {
        match self {
            MessageContent::Text(text) => text.clone(),
            MessageContent::Parts(parts) => parts
                .iter()
                .filter_map(|part| match part {
                    ContentPart::Text { text, .. } => Some(text.as_str()),
                    ContentPart::Other(_) => None,
                })
                .collect::<Vec<_>>()
                .join(separator),
        }
    }
}

/// One part of array content. Only text is modelled; `image_url`,
/// `input_audio`, `file` and unknown parts are kept as raw JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text {
        text: String,
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    #[serde(untagged)]
    Other(Value),
}

impl ContentPart {
    /// The part's `type`.
    pub fn kind(&self) -> &str {
        match self {
            Self::Text { .. } => "text",
            Self::Other(value) => value
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("unknown"),
        }
    }
}

string_enum! {
    /// Why a choice stopped.
    pub enum FinishReason {
        Stop => "stop",
        Length => "length",
        ToolCalls => "tool_calls",
        ContentFilter => "content_filter",
        FunctionCall => "function_call",
    }
}

/// A non-streaming chat completion.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatResponse {
    #[serde(default)]
    pub id: String,
    /// Always `chat.completion`.
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// `system_fingerprint`, `service_tier` and the like.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatResponse {
    /// The choice with index 0 (else the first): the one answer the gateway translates.
    pub fn first_choice(&self) -> Option<&Choice> {
        self.choices
            .iter()
            .find(|choice| choice.index == 0)
            .or(self.choices.first())
    }
}

/// One choice of a non-streaming completion.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Choice {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub message: ResponseMessage,
    /// Written as `null` when absent, as OpenAI does.
    #[serde(default)]
    pub logprobs: Option<Value>,
    /// Written as `null` when absent.
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The assistant message of a non-streaming choice.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ResponseMessage {
    #[serde(default)]
    pub role: String,
    /// Written as `null` when absent (a pure tool-call answer), as OpenAI does.
    #[serde(default)]
    pub content: Option<String>,
    /// Written as `null` when absent, as OpenAI does.
    #[serde(default)]
    pub refusal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<Value>>,
    /// `annotations`, `audio`, vendor reasoning fields and the like.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One stream chunk (`object: chat.completion.chunk`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatChunk {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    /// Empty on the final usage chunk; some servers send `null` there, read as empty.
    #[serde(default, deserialize_with = "null_as_default")]
    pub choices: Vec<ChunkChoice>,
    /// Written as `null` when absent: with `include_usage`, OpenAI sends
    /// `"usage": null` on every chunk but the last.
    #[serde(default)]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One choice of a stream chunk.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub delta: ChunkDelta,
    /// Written as `null` when absent.
    #[serde(default)]
    pub logprobs: Option<Value>,
    /// Written as `null` until the choice finishes.
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The incremental part of a stream choice.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChunkDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<Value>>,
    /// `refusal`, vendor reasoning fields and the like.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Token usage. `prompt_tokens` includes the cached tokens counted in
/// `prompt_tokens_details.cached_tokens`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default, deserialize_with = "null_as_default")]
    pub prompt_tokens: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub completion_tokens: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    #[serde(default, deserialize_with = "null_as_default")]
    pub cached_tokens: u64,
    /// `audio_tokens` and the like.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Usage {
    /// Cached prompt tokens (0 when not reported).
    pub fn cached_tokens(&self) -> u64 {
        self.prompt_tokens_details
            .as_ref()
            .map_or(0, |details| details.cached_tokens)
    }

    /// The vendor-neutral usage: `input = prompt_tokens - cached_tokens`,
    /// `cache_read = cached_tokens`; OpenAI reports no cache writes.
    pub fn to_token_usage(&self) -> TokenUsage {
        let cached = self.cached_tokens();
        TokenUsage {
            input_tokens: self.prompt_tokens.saturating_sub(cached),
            output_tokens: self.completion_tokens,
            cache_read_tokens: cached,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
        }
    }

    /// OpenAI usage for a vendor-neutral one: `prompt_tokens` is all input
    /// (uncached + cache reads + cache writes) and `cached_tokens` the cache reads.
    pub fn from_token_usage(usage: &TokenUsage) -> Self {
        let prompt_tokens = usage.total_input_tokens();
        Self {
            prompt_tokens,
            completion_tokens: usage.output_tokens,
            total_tokens: prompt_tokens.saturating_add(usage.output_tokens),
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: usage.cache_read_tokens,
                extra: Map::new(),
            }),
            completion_tokens_details: None,
            extra: Map::new(),
        }
    }
}

impl From<&Usage> for TokenUsage {
    fn from(usage: &Usage) -> Self {
        usage.to_token_usage()
    }
}

/// An error body: `{"error":{"message","type","param","code"}}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: ErrorObject,
}

/// The `error` object. `param` and `code` are written as `null` when absent.
/// `code` is a string at OpenAI but a number at some compatible servers, so it
/// is kept as a raw value.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ErrorObject {
    #[serde(default, deserialize_with = "null_as_default")]
    pub message: String,
    #[serde(rename = "type", default, deserialize_with = "null_as_default")]
    pub kind: String,
    #[serde(default)]
    pub param: Option<Value>,
    #[serde(default)]
    pub code: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ErrorObject {
    /// `code` when it is a string.
    pub fn code_str(&self) -> Option<&str> {
        self.code.as_ref().and_then(Value::as_str)
    }
}

/// Reads only `usage` from a `chat.completion` body, skipping everything else
/// without building it, for responses passed through unchanged. `None` when
/// the body is not JSON or has no usage.
pub fn peek_usage(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct UsageOnly {
        #[serde(default)]
        usage: Option<Usage>,
    }
    serde_json::from_slice::<UsageOnly>(body).ok()?.usage
}

/// What one `data:` payload of an OpenAI stream holds.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamData {
    /// `[DONE]`: the stream ended normally.
    Done,
    /// A chunk.
    Chunk(Box<ChatChunk>),
    /// A mid-stream failure: `{"error":{...}}`.
    Error(ErrorObject),
    /// Not JSON, or not a chunk; carries the parse error's text.
    Invalid(String),
}

/// Classifies one `data:` payload of an OpenAI stream.
pub fn parse_stream_data(data: &str) -> StreamData {
    if data.trim() == "[DONE]" {
        return StreamData::Done;
    }
    let value: Value = match serde_json::from_str(data) {
        Ok(value) => value,
        Err(error) => return StreamData::Invalid(error.to_string()),
    };
    if let Some(error) = value.get("error").filter(|error| !error.is_null()) {
        return match serde_json::from_value::<ErrorObject>(error.clone()) {
            Ok(object) => StreamData::Error(object),
            Err(_) => StreamData::Error(ErrorObject {
                message: error
                    .as_str()
                    .map_or_else(|| error.to_string(), str::to_owned),
                ..ErrorObject::default()
            }),
        };
    }
    match serde_json::from_value::<ChatChunk>(value) {
        Ok(chunk) => StreamData::Chunk(Box::new(chunk)),
        Err(error) => StreamData::Invalid(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn round_trip<T: Serialize + for<'de> Deserialize<'de>>(value: &Value) -> Value {
        let parsed: T = serde_json::from_value(value.clone()).unwrap();
        serde_json::to_value(&parsed).unwrap()
    }

    #[test]
    fn request_keeps_unknown_fields_on_round_trip() {
        // Request body shape from https://platform.openai.com/docs/api-reference/chat/create
        let body = json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "developer", "content": "You are a helpful assistant."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What's in this image?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"}
            ],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": "auto",
            "seed": 7,
            "max_completion_tokens": 100,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": ["\n\n", "END"],
            "stream": true,
            "stream_options": {"include_usage": true},
            "n": 1,
            "user": "u-1",
            "metadata": {"team": "a"}
        });
        let parsed: ChatRequest = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(parsed.model, "gpt-4o");
        assert_eq!(parsed.max_completion_tokens, Some(100));
        assert_eq!(
            parsed.stop,
            Some(Stop::Many(vec!["\n\n".into(), "END".into()]))
        );
        assert!(parsed.is_stream() && parsed.wants_stream_usage());
        assert_eq!(
            parsed.extra.keys().collect::<Vec<_>>(),
            ["seed", "tool_choice", "tools"]
        );
        let MessageContent::Parts(parts) = parsed.messages[1].content.as_ref().unwrap() else {
            panic!("parts expected")
        };
        assert_eq!(parts[0].kind(), "text");
        assert_eq!(parts[1].kind(), "image_url");

        let mut expected = body;
        // `content: null` is written as an absent field, which OpenAI reads the same way.
        expected["messages"][2]
            .as_object_mut()
            .unwrap()
            .remove("content");
        assert_eq!(serde_json::to_value(&parsed).unwrap(), expected);
    }

    #[test]
    fn integer_sampling_values_and_null_options() {
        let parsed: ChatRequest = serde_json::from_value(json!({
            "model": "m", "messages": [], "temperature": 1, "top_p": 1, "max_tokens": null, "stream": null
        }))
        .unwrap();
        assert_eq!((parsed.temperature, parsed.top_p), (Some(1.0), Some(1.0)));
        assert_eq!((parsed.max_tokens, parsed.stream), (None, None));
        assert!(parsed.extra.is_empty());
    }

    #[test]
    fn stop_as_string() {
        let parsed: ChatRequest =
            serde_json::from_value(json!({"model": "m", "messages": [], "stop": "END"})).unwrap();
        assert_eq!(parsed.stop, Some(Stop::One("END".into())));
        assert_eq!(parsed.stop.unwrap().to_vec(), ["END"]);
    }

    #[test]
    fn missing_model_is_an_error_naming_the_field() {
        let error = serde_json::from_value::<ChatRequest>(json!({"messages": []})).unwrap_err();
        assert!(error.to_string().contains("model"), "{error}");
    }

    #[test]
    fn response_round_trip_matches_documented_example() {
        // Example response from https://platform.openai.com/docs/api-reference/chat/object
        let body = json!({
            "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
            "object": "chat.completion",
            "created": 1741570283,
            "model": "gpt-4o-2024-08-06",
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "The image shows a wooden boardwalk.",
                    "refusal": null,
                    "annotations": []
                },
                "logprobs": null,
                "finish_reason": "stop"
            }],
            "usage": {
                "prompt_tokens": 1117,
                "completion_tokens": 46,
                "total_tokens": 1163,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                    "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
            },
            "service_tier": "default",
            "system_fingerprint": "fp_fc9f1d7035"
        });
        assert_eq!(round_trip::<ChatResponse>(&body), body);
        let parsed: ChatResponse = serde_json::from_value(body).unwrap();
        assert_eq!(parsed.choices[0].finish_reason, Some(FinishReason::Stop));
    }

    #[test]
    fn chunk_round_trips_including_null_usage() {
        // Chunk shape from https://platform.openai.com/docs/api-reference/chat-streaming/streaming
        let chunks = [
            json!({"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,
                "model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb",
                "choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],
                "usage":null}),
            json!({"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,
                "model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb",
                "choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],
                "usage":null}),
            json!({"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,
                "model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[],
                "usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,
                    "prompt_tokens_details":{"cached_tokens":0}}}),
        ];
        for chunk in &chunks {
            assert_eq!(&round_trip::<ChatChunk>(chunk), chunk);
        }
    }

    #[test]
    fn chunk_without_usage_field_writes_explicit_null() {
        let parsed: ChatChunk =
            serde_json::from_value(json!({"id": "x", "choices": null})).unwrap();
        assert!(parsed.choices.is_empty());
        let written = serde_json::to_value(&parsed).unwrap();
        assert_eq!(written["usage"], Value::Null);
        assert!(written.as_object().unwrap().contains_key("usage"));
    }

    #[test]
    fn usage_to_token_usage_subtracts_cached_tokens() {
        let usage: Usage = serde_json::from_value(json!({
            "prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920}
        }))
        .unwrap();
        assert_eq!(
            usage.to_token_usage(),
            TokenUsage {
                input_tokens: 86,
                output_tokens: 300,
                cache_read_tokens: 1920,
                cache_write_tokens: 0,
                cache_write_1h_tokens: 0,
            }
        );
        // Servers that send no details, or null fields.
        let usage: Usage = serde_json::from_value(json!({
            "prompt_tokens": 10, "completion_tokens": null, "prompt_tokens_details": null
        }))
        .unwrap();
        assert_eq!(
            usage.to_token_usage(),
            TokenUsage {
                input_tokens: 10,
                ..TokenUsage::default()
            }
        );
    }

    #[test]
    fn usage_from_token_usage_counts_all_input_in_prompt_tokens() {
        let usage = Usage::from_token_usage(&TokenUsage {
            input_tokens: 10,
            output_tokens: 5,
            cache_read_tokens: 100,
            cache_write_tokens: 20,
            cache_write_1h_tokens: 0,
        });
        assert_eq!(
            serde_json::to_value(&usage).unwrap(),
            json!({"prompt_tokens": 130, "completion_tokens": 5, "total_tokens": 135,
                   "prompt_tokens_details": {"cached_tokens": 100}})
        );
        // Cache writes fold into uncached input on the way back: OpenAI has no field for them.
        assert_eq!(
            usage.to_token_usage(),
            TokenUsage {
                input_tokens: 30,
                output_tokens: 5,
                cache_read_tokens: 100,
                cache_write_tokens: 0,
                cache_write_1h_tokens: 0,
            }
        );
    }

    #[test]
    fn peek_usage_reads_only_usage() {
        let body =
            br#"{"id":"x","choices":[{"message":{"content":"\"usage\": {\"prompt_tokens\": 99}"}}],
            "usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
        let usage = peek_usage(body).unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (3, 4));
        assert_eq!(peek_usage(br#"{"id":"x"}"#), None);
        assert_eq!(peek_usage(br#"{"usage":null}"#), None);
        assert_eq!(peek_usage(b"not json"), None);
    }

    #[test]
    fn stream_data_classification() {
        assert_eq!(parse_stream_data("[DONE]"), StreamData::Done);
        let StreamData::Chunk(chunk) =
            parse_stream_data(r#"{"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}]}"#)
        else {
            panic!("chunk expected")
        };
        assert_eq!(chunk.choices[0].delta.content.as_deref(), Some("hi"));
        let StreamData::Error(error) = parse_stream_data(
            r#"{"error":{"message":"boom","type":"server_error","param":null,"code":null}}"#,
        ) else {
            panic!("error expected")
        };
        assert_eq!(
            (error.message.as_str(), error.kind.as_str()),
            ("boom", "server_error")
        );
        let StreamData::Error(error) = parse_stream_data(r#"{"error":"plain"}"#) else {
            panic!("error expected")
        };
        assert_eq!(error.message, "plain");
        assert!(matches!(parse_stream_data("{oops"), StreamData::Invalid(_)));
    }

    #[test]
    fn error_body_round_trip_and_numeric_code() {
        let body = json!({"error": {"message": "m", "type": "invalid_request_error", "param": "model", "code": null}});
        assert_eq!(round_trip::<ErrorResponse>(&body), body);
        let parsed: ErrorResponse =
            serde_json::from_value(json!({"error": {"message": "m", "code": 400}})).unwrap();
        assert_eq!(parsed.error.code, Some(json!(400)));
        assert_eq!(parsed.error.code_str(), None);
    }

    #[test]
    fn finish_reasons_known_and_unknown() {
        for (text, reason) in [
            ("stop", FinishReason::Stop),
            ("length", FinishReason::Length),
            ("tool_calls", FinishReason::ToolCalls),
            ("content_filter", FinishReason::ContentFilter),
            ("function_call", FinishReason::FunctionCall),
            ("eos", FinishReason::Other("eos".into())),
        ] {
            let parsed: FinishReason = serde_json::from_value(json!(text)).unwrap();
            assert_eq!(parsed, reason);
            assert_eq!(serde_json::to_value(&parsed).unwrap(), json!(text));
        }
    }
}
