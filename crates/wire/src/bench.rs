//! What a load generator (`costfloor bench`) sends and reads, in either format: a
//! streaming generation request of a given prompt and output length, the tokenizer
//! request that counts a prompt, a model list and an error body read back, and one
//! stream event read into what a benchmark counts (a token arrived, the usage, the
//! end, an error).
//!
//! Output length is forced where the server allows it: OpenAI-format requests carry
//! `max_tokens` and, with [`Forcing::IgnoreEosMinTokens`], vLLM's `ignore_eos` and
//! `min_tokens` (the llama.cpp server reads `ignore_eos` and ignores `min_tokens`;
//! llama-cpp-python's server reads `min_tokens` and ignores `ignore_eos`; both ignore
//! fields they do not know). Anthropic-format requests carry `max_tokens` only: the
//! Messages API refuses unknown fields.
//!
//! Reading a stream event allocates nothing: the text of a delta is only checked for
//! being non-empty, never kept.

use std::fmt;

use bytes::Bytes;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::json::to_vec;
use crate::pair::{read_count, BackendProtocol, CountSource, CountTarget, UpstreamHeader};
use crate::sse::SseEvent;
use crate::{anthropic, openai};

/// The `anthropic-version` a benchmark sends.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// Where both formats list their models.
pub const MODELS_PATH: &str = "/v1/models";
/// The tokenizer endpoint of vLLM and the llama.cpp server, at the server's root.
pub const TOKENIZE_PATH: &str = "/tokenize";

/// The wire format a benchmark speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchFormat {
    /// OpenAI Chat Completions (`POST /v1/chat/completions`).
    OpenAi,
    /// Anthropic Messages (`POST /v1/messages`).
    Anthropic,
}

impl BenchFormat {
    /// `openai` or `anthropic`, as the measurement file records it.
    pub fn as_str(self) -> &'static str {
        match self {
            BenchFormat::OpenAi => "openai",
            BenchFormat::Anthropic => "anthropic",
        }
    }

    /// The generation endpoint's path.
    pub fn generation_path(self) -> &'static str {
        match self {
            BenchFormat::OpenAi => "/v1/chat/completions",
            BenchFormat::Anthropic => "/v1/messages",
        }
    }

    fn protocol(self) -> BackendProtocol {
        match self {
            BenchFormat::OpenAi => BackendProtocol::OpenAiCompatible,
            BenchFormat::Anthropic => BackendProtocol::Anthropic,
        }
    }

    /// The headers of every request: content type, the Anthropic version, and the key
    /// in the header this format reads it from (marked `secret`).
    pub fn headers(self, api_key: Option<&str>) -> Vec<UpstreamHeader<'_>> {
        self.protocol().upstream_headers(api_key, ANTHROPIC_VERSION)
    }

    /// Whether this format can carry the length-forcing fields.
    pub fn can_force_length(self) -> bool {
        self == BenchFormat::OpenAi
    }
}

/// How a request asks for its exact output length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forcing {
    /// `max_tokens` only: the output may stop early at the end-of-sequence token.
    MaxTokensOnly,
    /// `max_tokens` plus `ignore_eos: true` and `min_tokens = max_tokens`.
    IgnoreEosMinTokens,
}

impl Forcing {
    /// The label the measurement records (`output_forcing`).
    pub fn as_str(self) -> &'static str {
        match self {
            Forcing::MaxTokensOnly => "max_tokens only",
            Forcing::IgnoreEosMinTokens => "ignore_eos+min_tokens",
        }
    }
}

/// One generation request: a single user message.
#[derive(Clone, Copy, Debug)]
pub struct Generation<'a> {
    pub model: &'a str,
    pub prompt: &'a str,
    pub max_tokens: u32,
    pub forcing: Forcing,
    /// `stream: true` (with the usage chunk asked for, in OpenAI format), or one
    /// whole answer.
    pub stream: bool,
}

/// The body of a generation request.
pub fn generation_body(format: BenchFormat, generation: &Generation<'_>) -> Bytes {
    match format {
        BenchFormat::OpenAi => {
            let mut extra = Map::new();
            if generation.forcing == Forcing::IgnoreEosMinTokens {
                extra.insert("ignore_eos".to_owned(), Value::Bool(true));
                extra.insert("min_tokens".to_owned(), Value::from(generation.max_tokens));
            }
            let request = openai::ChatRequest {
                model: generation.model.to_owned(),
                messages: vec![openai::Message::text("user", generation.prompt)],
                max_tokens: Some(generation.max_tokens),
                stream: Some(generation.stream),
                stream_options: generation.stream.then(|| openai::StreamOptions {
                    include_usage: Some(true),
                    extra: Map::new(),
                }),
                extra,
                ..openai::ChatRequest::default()
            };
            Bytes::from(to_vec(&request))
        }
        BenchFormat::Anthropic => {
            let request = anthropic::MessagesRequest {
                model: generation.model.to_owned(),
                messages: vec![anthropic::Message::text("user", generation.prompt)],
                max_tokens: Some(generation.max_tokens),
                stream: Some(generation.stream),
                ..anthropic::MessagesRequest::default()
            };
            Bytes::from(to_vec(&request))
        }
    }
}

/// The body of a `POST /tokenize` for `text` as one user message: vLLM reads it as a
/// chat (`messages`, with its chat template, and answers `count`), the llama.cpp
/// server as text (`content`, and answers `tokens`).
pub fn tokenize_body(model: &str, text: &str) -> Bytes {
    Bytes::from(to_vec(&json!({
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "add_generation_prompt": true,
        "content": text,
        "add_special": true,
    })))
}

/// What a tokenizer counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenizeCount {
    pub tokens: u64,
    /// True when the count includes the chat template (vLLM's chat form), so it is
    /// what the generation request's usage reports; false for the text alone.
    pub chat: bool,
}

/// Reads a `/tokenize` answer; `None` when it holds no count.
pub fn read_tokenize(body: &[u8]) -> Option<TokenizeCount> {
    let (tokens, source) = read_count(CountTarget::ServerPath(TOKENIZE_PATH), body)?;
    Some(TokenizeCount {
        tokens,
        chat: source == CountSource::Backend,
    })
}

/// The model ids of a `GET /v1/models` answer (OpenAI's and Anthropic's list both
/// hold `data: [{"id": …}]`); `None` when the body is not such a list.
pub fn read_model_ids(body: &[u8]) -> Option<Vec<String>> {
    #[derive(Deserialize)]
    struct List {
        data: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        id: String,
    }
    let list: List = serde_json::from_slice(body).ok()?;
    Some(list.data.into_iter().map(|entry| entry.id).collect())
}

/// The message of an error body in either format (`{"error": {"message": …}}`), or
/// FastAPI's `{"detail": …}` (llama-cpp-python, vLLM's validation errors).
pub fn error_message(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Peek {
        #[serde(default)]
        error: Option<Value>,
        #[serde(default)]
        detail: Option<Value>,
    }
    let peek: Peek = serde_json::from_slice(body).ok()?;
    let text = |value: &Value| match value {
        Value::String(text) => Some(text.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    match (peek.error, peek.detail) {
        (Some(Value::Object(error)), _) => error.get("message").and_then(text),
        (Some(other), _) => text(&other),
        (None, Some(detail)) => text(&detail),
        (None, None) => None,
    }
}

/// The usage of a whole (non-streamed) answer: (input tokens, output tokens).
pub fn read_whole_usage(format: BenchFormat, body: &[u8]) -> Option<(u64, u64)> {
    match format {
        BenchFormat::OpenAi => {
            openai::peek_usage(body).map(|usage| (usage.prompt_tokens, usage.completion_tokens))
        }
        BenchFormat::Anthropic => {
            #[derive(Deserialize)]
            struct Peek {
                usage: anthropic::Usage,
            }
            let peek: Peek = serde_json::from_slice(body).ok()?;
            let usage = peek.usage.to_token_usage();
            Some((usage.total_input_tokens(), usage.output_tokens))
        }
    }
}

/// What one stream event told a benchmark.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameReading {
    /// Deltas carrying generated text (answer or reasoning) in this event.
    pub text_deltas: u32,
    /// Prompt tokens, when the event reports them.
    pub input_tokens: Option<u64>,
    /// Output tokens so far (Anthropic: cumulative) or in all (OpenAI's usage chunk).
    pub output_tokens: Option<u64>,
    /// The stream's terminal event (`[DONE]`, `message_stop`).
    pub end: bool,
    /// A mid-stream error, with its message.
    pub error: Option<String>,
    /// The event is not JSON of either format.
    pub invalid: bool,
}

/// Reads one SSE event of a stream in `format`.
pub fn read_event(format: BenchFormat, event: &SseEvent) -> FrameReading {
    match format {
        BenchFormat::OpenAi => read_openai_event(&event.data),
        BenchFormat::Anthropic => read_anthropic_event(&event.data),
    }
}

fn read_openai_event(data: &str) -> FrameReading {
    if data.trim() == "[DONE]" {
        return FrameReading {
            end: true,
            ..FrameReading::default()
        };
    }
    #[derive(Deserialize)]
    struct Chunk {
        #[serde(default)]
        choices: TextChoices,
        #[serde(default)]
        usage: Option<UsagePeek>,
        #[serde(default)]
        error: Option<ErrorPeek>,
    }
    #[derive(Deserialize)]
    struct UsagePeek {
        #[serde(default)]
        prompt_tokens: Option<u64>,
        #[serde(default)]
        completion_tokens: Option<u64>,
    }
    match serde_json::from_str::<Chunk>(data) {
        Ok(chunk) => FrameReading {
            text_deltas: chunk.choices.0,
            input_tokens: chunk.usage.as_ref().and_then(|usage| usage.prompt_tokens),
            output_tokens: chunk.usage.and_then(|usage| usage.completion_tokens),
            error: chunk.error.map(ErrorPeek::into_message),
            ..FrameReading::default()
        },
        Err(_) => FrameReading {
            invalid: true,
            ..FrameReading::default()
        },
    }
}

fn read_anthropic_event(data: &str) -> FrameReading {
    #[derive(Deserialize)]
    struct Event {
        #[serde(rename = "type", default)]
        kind: EventKind,
        #[serde(default)]
        message: Option<MessagePeek>,
        #[serde(default)]
        usage: Option<UsagePeek>,
        #[serde(default)]
        delta: Option<Delta>,
        #[serde(default)]
        error: Option<ErrorPeek>,
    }
    #[derive(Deserialize)]
    struct MessagePeek {
        #[serde(default)]
        usage: Option<UsagePeek>,
    }
    #[derive(Deserialize)]
    struct UsagePeek {
        #[serde(default)]
        input_tokens: Option<u64>,
        #[serde(default)]
        cache_creation_input_tokens: Option<u64>,
        #[serde(default)]
        cache_read_input_tokens: Option<u64>,
        #[serde(default)]
        output_tokens: Option<u64>,
    }
    impl UsagePeek {
        fn input(&self) -> Option<u64> {
            self.input_tokens.map(|uncached| {
                uncached
                    + self.cache_creation_input_tokens.unwrap_or(0)
                    + self.cache_read_input_tokens.unwrap_or(0)
            })
        }
    }
    #[derive(Deserialize)]
    struct Delta {
        #[serde(default)]
        text: NonEmptyText,
        #[serde(default)]
        thinking: NonEmptyText,
    }
    let event = match serde_json::from_str::<Event>(data) {
        Ok(event) => event,
        Err(_) => {
            return FrameReading {
                invalid: true,
                ..FrameReading::default()
            }
        }
    };
    let mut reading = FrameReading::default();
    match event.kind {
        EventKind::MessageStart => {
            if let Some(usage) = event.message.and_then(|message| message.usage) {
                reading.input_tokens = usage.input();
            }
        }
        EventKind::ContentBlockDelta => {
            if let Some(delta) = event.delta {
                reading.text_deltas = u32::from(delta.text.0 || delta.thinking.0);
            }
        }
        EventKind::MessageDelta => {
            if let Some(usage) = event.usage {
                reading.input_tokens = usage.input();
                reading.output_tokens = usage.output_tokens;
            }
        }
        EventKind::MessageStop => reading.end = true,
        EventKind::Error => {
            reading.error = Some(
                event
                    .error
                    .map(ErrorPeek::into_message)
                    .unwrap_or_else(|| "error event".to_owned()),
            );
        }
        EventKind::Other => {}
    }
    reading
}

/// The Anthropic stream event types a benchmark reads.
#[derive(Debug, Default)]
enum EventKind {
    MessageStart,
    ContentBlockDelta,
    MessageDelta,
    MessageStop,
    Error,
    #[default]
    Other,
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KindVisitor;
        impl Visitor<'_> for KindVisitor {
            type Value = EventKind;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("an event type")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<EventKind, E> {
                Ok(match value {
                    "message_start" => EventKind::MessageStart,
                    "content_block_delta" => EventKind::ContentBlockDelta,
                    "message_delta" => EventKind::MessageDelta,
                    "message_stop" => EventKind::MessageStop,
                    "error" => EventKind::Error,
                    _ => EventKind::Other,
                })
            }
        }
        deserializer.deserialize_str(KindVisitor)
    }
}

#[derive(Deserialize)]
struct ErrorPeek {
    #[serde(default)]
    message: Option<String>,
}

impl ErrorPeek {
    fn into_message(self) -> String {
        self.message
            .unwrap_or_else(|| "error without a message".to_owned())
    }
}

/// Whether a string field is present and non-empty, read without keeping the text.
#[derive(Debug, Default)]
struct NonEmptyText(bool);

impl<'de> Deserialize<'de> for NonEmptyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = NonEmptyText;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a string or null")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<NonEmptyText, E> {
                Ok(NonEmptyText(!value.is_empty()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<NonEmptyText, E> {
                Ok(NonEmptyText(false))
            }
            fn visit_none<E: de::Error>(self) -> Result<NonEmptyText, E> {
                Ok(NonEmptyText(false))
            }
            fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<NonEmptyText, D::Error> {
                inner.deserialize_any(TextVisitor)
            }
        }
        deserializer.deserialize_option(TextVisitor)
    }
}

/// The number of `choices` whose delta carries text (`content`, or the reasoning
/// fields vLLM and llama.cpp stream), counted without building the choices.
#[derive(Debug, Default)]
struct TextChoices(u32);

impl<'de> Deserialize<'de> for TextChoices {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Choice {
            #[serde(default)]
            delta: Option<ChoiceDelta>,
        }
        #[derive(Deserialize)]
        struct ChoiceDelta {
            #[serde(default)]
            content: NonEmptyText,
            #[serde(default)]
            reasoning_content: NonEmptyText,
            #[serde(default)]
            reasoning: NonEmptyText,
        }
        struct ChoicesVisitor;
        impl<'de> Visitor<'de> for ChoicesVisitor {
            type Value = TextChoices;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("an array of choices or null")
            }
            fn visit_unit<E: de::Error>(self) -> Result<TextChoices, E> {
                Ok(TextChoices(0))
            }
            fn visit_none<E: de::Error>(self) -> Result<TextChoices, E> {
                Ok(TextChoices(0))
            }
            fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<TextChoices, D::Error> {
                inner.deserialize_seq(ChoicesVisitor)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TextChoices, A::Error> {
                let mut with_text = 0;
                while let Some(choice) = seq.next_element::<Choice>()? {
                    if let Some(delta) = choice.delta {
                        if delta.content.0 || delta.reasoning_content.0 || delta.reasoning.0 {
                            with_text += 1;
                        }
                    }
                }
                Ok(TextChoices(with_text))
            }
        }
        deserializer.deserialize_option(ChoicesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &str) -> SseEvent {
        SseEvent {
            event: None,
            data: data.to_owned(),
        }
    }

    #[test]
    fn openai_body_streams_with_usage_and_forces_the_length() {
        let body = generation_body(
            BenchFormat::OpenAi,
            &Generation {
                model: "m",
                prompt: "hello world",
                max_tokens: 7,
                forcing: Forcing::IgnoreEosMinTokens,
                stream: true,
            },
        );
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            json!({"model": "m", "messages": [{"role": "user", "content": "hello world"}],
                   "max_tokens": 7, "stream": true, "stream_options": {"include_usage": true},
                   "ignore_eos": true, "min_tokens": 7})
        );
        let plain = generation_body(
            BenchFormat::OpenAi,
            &Generation {
                model: "m",
                prompt: "p",
                max_tokens: 1,
                forcing: Forcing::MaxTokensOnly,
                stream: false,
            },
        );
        let value: Value = serde_json::from_slice(&plain).unwrap();
        assert!(value.get("ignore_eos").is_none() && value.get("stream_options").is_none());
    }

    #[test]
    fn anthropic_body_carries_max_tokens_only() {
        let body = generation_body(
            BenchFormat::Anthropic,
            &Generation {
                model: "m",
                prompt: "p",
                max_tokens: 3,
                forcing: Forcing::IgnoreEosMinTokens,
                stream: true,
            },
        );
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            json!({"model": "m", "messages": [{"role": "user", "content": "p"}],
                   "max_tokens": 3, "stream": true})
        );
    }

    #[test]
    fn openai_events() {
        let text = read_openai_event(
            r#"{"id":"x","choices":[{"index":0,"delta":{"content":"Hi \n"},"finish_reason":null}],"usage":null}"#,
        );
        assert_eq!(text.text_deltas, 1);
        assert_eq!(text.output_tokens, None);
        let role =
            read_openai_event(r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#);
        assert_eq!(role.text_deltas, 0);
        let reasoning = read_openai_event(r#"{"choices":[{"delta":{"reasoning_content":"hm"}}]}"#);
        assert_eq!(reasoning.text_deltas, 1);
        let usage = read_openai_event(
            r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#,
        );
        assert_eq!(
            (usage.input_tokens, usage.output_tokens),
            (Some(12), Some(5))
        );
        assert!(read_openai_event("[DONE]").end);
        let error =
            read_openai_event(r#"{"error":{"message":"overloaded","type":"server_error"}}"#);
        assert_eq!(error.error.as_deref(), Some("overloaded"));
        assert!(read_openai_event("<html>").invalid);
        assert_eq!(read_openai_event(r#"{"choices":null}"#).text_deltas, 0);
    }

    #[test]
    fn anthropic_events() {
        let start = read_event(
            BenchFormat::Anthropic,
            &event(
                r#"{"type":"message_start","message":{"id":"m","usage":{"input_tokens":10,"cache_read_input_tokens":2,"output_tokens":1}}}"#,
            ),
        );
        assert_eq!(start.input_tokens, Some(12));
        let delta = read_anthropic_event(
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
        );
        assert_eq!(delta.text_deltas, 1);
        let end = read_anthropic_event(
            r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":9}}"#,
        );
        assert_eq!(end.output_tokens, Some(9));
        assert_eq!(end.text_deltas, 0);
        assert!(read_anthropic_event(r#"{"type":"message_stop"}"#).end);
        let error = read_anthropic_event(
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert_eq!(error.error.as_deref(), Some("Overloaded"));
        assert_eq!(
            read_anthropic_event(r#"{"type":"ping"}"#),
            FrameReading::default()
        );
    }

    #[test]
    fn lists_errors_and_counts() {
        assert_eq!(
            read_model_ids(br#"{"object":"list","data":[{"id":"a","object":"model"}]}"#),
            Some(vec!["a".to_owned()])
        );
        assert_eq!(read_model_ids(b"<html></html>"), None);
        assert_eq!(
            error_message(br#"{"error":{"message":"bad key","type":"invalid_request_error"}}"#)
                .as_deref(),
            Some("bad key")
        );
        assert_eq!(
            error_message(br#"{"detail":"Not Found"}"#).as_deref(),
            Some("Not Found")
        );
        assert_eq!(
            read_tokenize(br#"{"count":7,"max_model_len":4096,"tokens":[1,2,3,4,5,6,7]}"#),
            Some(TokenizeCount {
                tokens: 7,
                chat: true
            })
        );
        assert_eq!(
            read_tokenize(br#"{"tokens":[1,2,3]}"#),
            Some(TokenizeCount {
                tokens: 3,
                chat: false
            })
        );
        assert_eq!(
            read_whole_usage(
                BenchFormat::OpenAi,
                br#"{"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":1}}"#
            ),
            Some((4, 1))
        );
        assert_eq!(
            read_whole_usage(
                BenchFormat::Anthropic,
                br#"{"type":"message","usage":{"input_tokens":4,"output_tokens":2}}"#
            ),
            Some((4, 2))
        );
    }
}
