//! Anthropic Messages wire types (`POST /v1/messages`): request, response, content blocks, usage, stream events, error.
//!
//! Field names follow <https://docs.claude.com/en/api/messages> and the
//! streaming guide, <https://docs.claude.com/en/docs/build-with-claude/streaming>.
//! Unknown content blocks, deltas and stream events are kept as raw JSON
//! values rather than failing the parse, as the streaming guide asks.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::json::{null_as_default, to_vec};
use crate::sse;
use crate::usage::TokenUsage;

/// A Messages request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MessagesRequest {
    pub model: String,
    pub messages: Vec<Message>,
    /// Required by the API; optional here so that the caller can report it missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemPrompt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// `{"user_id": …}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Every other field (`tools`, `tool_choice`, `thinking`, …), kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MessagesRequest {
    /// True when the client asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }
}

/// `system`: a string or an array of text blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SystemPrompt {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

/// One input message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `user` or `assistant`.
    pub role: String,
    pub content: MessageContent,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Message {
    /// A message with plain string content.
    pub fn text(role: &str, text: &str) -> Self {
        Self {
            role: role.to_owned(),
            content: MessageContent::Text(text.to_owned()),
            extra: Map::new(),
        }
    }
}

/// Message content: a string or an array of content blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

/// A content block. Blocks of a type not listed here (`thinking`,
/// `server_tool_use`, `search_result`, …) are kept verbatim in `Unknown`.
/// Each variant keeps its unmodelled fields (`cache_control`, `citations`, …) in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Text {
        text: String,
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    Image {
        source: Value,
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    Document {
        source: Value,
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_error: Option<bool>,
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    #[serde(untagged)]
    Unknown(Value),
}

impl ContentBlock {
    /// A text block with no other fields.
    pub fn text(text: &str) -> Self {
        Self::Text {
            text: text.to_owned(),
            extra: Map::new(),
        }
    }

    /// The block's `type`.
    pub fn kind(&self) -> &str {
        match self {
            Self::Text { .. } => "text",
            Self::Image { .. } => "image",
            Self::Document { .. } => "document",
            Self::ToolUse { .. } => "tool_use",
            Self::ToolResult { .. } => "tool_result",
            Self::Unknown(value) => value
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("unknown"),
        }
    }
}

/// The answer of `POST /v1/messages/count_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TokenCount {
    pub input_tokens: u64,
}

string_enum! {
    /// Why the model stopped.
    pub enum StopReason {
        EndTurn => "end_turn",
        MaxTokens => "max_tokens",
        StopSequence => "stop_sequence",
        ToolUse => "tool_use",
        PauseTurn => "pause_turn",
        Refusal => "refusal",
        ModelContextWindowExceeded => "model_context_window_exceeded",
    }
}

fn message_type() -> String {
    "message".to_owned()
}

fn assistant_role() -> String {
    "assistant".to_owned()
}

/// A Messages response; also the `message` of a `message_start` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesResponse {
    #[serde(default)]
    pub id: String,
    /// Always `message`.
    #[serde(rename = "type", default = "message_type")]
    pub kind: String,
    #[serde(default = "assistant_role")]
    pub role: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub content: Vec<ContentBlock>,
    #[serde(default)]
    pub model: String,
    /// Written as `null` when absent (in `message_start`).
    #[serde(default)]
    pub stop_reason: Option<StopReason>,
    /// Written as `null` when absent.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    #[serde(default)]
    pub usage: Usage,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for MessagesResponse {
    fn default() -> Self {
        Self {
            id: String::new(),
            kind: message_type(),
            role: assistant_role(),
            content: Vec::new(),
            model: String::new(),
            stop_reason: None,
            stop_sequence: None,
            usage: Usage::default(),
            extra: Map::new(),
        }
    }
}

/// Token usage of a response or `message_start`. `input_tokens` counts only
/// uncached input; the cache fields are optional (and may be `null`) as the API sends them.
/// `cache_creation_input_tokens` counts writes of both lifetimes; `cache_creation`
/// splits them into 5-minute and 1-hour writes, which are priced differently.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default, deserialize_with = "null_as_default")]
    pub input_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation: Option<CacheCreation>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub output_tokens: u64,
    /// `service_tier`, `server_tool_use` and the like.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `usage.cache_creation`: cache writes by lifetime
/// (<https://docs.claude.com/en/docs/build-with-claude/prompt-caching>).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CacheCreation {
    #[serde(default, deserialize_with = "null_as_default")]
    pub ephemeral_5m_input_tokens: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub ephemeral_1h_input_tokens: u64,
}

/// Splits the cache writes into (5-minute, 1-hour): the 1-hour count from
/// `cache_creation`, the rest of `cache_creation_input_tokens` as 5-minute writes.
/// Without the total, the split's own 5-minute count.
fn split_cache_writes(total: Option<u64>, split: Option<&CacheCreation>) -> (u64, u64) {
    let one_hour = split.map_or(0, |s| s.ephemeral_1h_input_tokens);
    match total {
        Some(total) => (total.saturating_sub(one_hour), one_hour.min(total)),
        None => (split.map_or(0, |s| s.ephemeral_5m_input_tokens), one_hour),
    }
}

impl Usage {
    /// The vendor-neutral usage.
    pub fn to_token_usage(&self) -> TokenUsage {
        let (five_minute, one_hour) = split_cache_writes(
            self.cache_creation_input_tokens,
            self.cache_creation.as_ref(),
        );
        TokenUsage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cache_read_tokens: self.cache_read_input_tokens.unwrap_or(0),
            cache_write_tokens: five_minute,
            cache_write_1h_tokens: one_hour,
        }
    }

    /// Anthropic usage for a vendor-neutral one; both cache fields are written, and
    /// the split of the writes by lifetime when there are 1-hour writes.
    pub fn from_token_usage(usage: &TokenUsage) -> Self {
        Self {
            input_tokens: usage.input_tokens,
            cache_creation_input_tokens: Some(usage.all_cache_write_tokens()),
            cache_read_input_tokens: Some(usage.cache_read_tokens),
            cache_creation: (usage.cache_write_1h_tokens > 0).then_some(CacheCreation {
                ephemeral_5m_input_tokens: usage.cache_write_tokens,
                ephemeral_1h_input_tokens: usage.cache_write_1h_tokens,
            }),
            output_tokens: usage.output_tokens,
            extra: Map::new(),
        }
    }
}

impl From<&Usage> for TokenUsage {
    fn from(usage: &Usage) -> Self {
        usage.to_token_usage()
    }
}

/// The `usage` of a `message_delta` event. Its counts are cumulative for the
/// whole message: a later value replaces an earlier one, never adds to it.
/// Only `output_tokens` is always present; newer API versions also repeat the
/// input and cache counts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MessageDeltaUsage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation: Option<CacheCreation>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub output_tokens: u64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MessageDeltaUsage {
    /// The cache writes this delta repeats, as (5-minute, 1-hour), if it repeats them.
    /// A delta with the total but without `cache_creation` keeps the 1-hour count
    /// already known (`known_1h`, from `message_start`) within the new total.
    pub fn cache_writes(&self, known_1h: u64) -> Option<(u64, u64)> {
        match (self.cache_creation_input_tokens, &self.cache_creation) {
            (None, None) => None,
            (Some(total), None) => {
                let one_hour = known_1h.min(total);
                Some((total - one_hour, one_hour))
            }
            (total, Some(split)) => Some(split_cache_writes(total, Some(split))),
        }
    }
}

/// The `delta` of a `message_delta` event.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MessageDelta {
    /// Written as `null` when absent.
    #[serde(default)]
    pub stop_reason: Option<StopReason>,
    /// Written as `null` when absent.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `delta` of a `content_block_delta` event. `thinking_delta`,
/// `signature_delta`, `citations_delta` and unknown deltas are kept in `Other`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    #[serde(untagged)]
    Other(Value),
}

/// One streaming event. The SSE `event:` name equals the JSON `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    MessageStart {
        message: MessagesResponse,
    },
    ContentBlockStart {
        index: u32,
        content_block: ContentBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDelta,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<MessageDeltaUsage>,
    },
    MessageStop,
    Ping,
    Error {
        error: ErrorObject,
    },
    /// An event of a type this crate does not know (or a known type whose
    /// body did not parse), kept verbatim. The streaming guide asks clients to
    /// tolerate these.
    #[serde(untagged)]
    Unknown(Value),
}

impl StreamEvent {
    /// The event's `type`, which is also its SSE `event:` name.
    pub fn name(&self) -> &str {
        match self {
            Self::MessageStart { .. } => "message_start",
            Self::ContentBlockStart { .. } => "content_block_start",
            Self::ContentBlockDelta { .. } => "content_block_delta",
            Self::ContentBlockStop { .. } => "content_block_stop",
            Self::MessageDelta { .. } => "message_delta",
            Self::MessageStop => "message_stop",
            Self::Ping => "ping",
            Self::Error { .. } => "error",
            Self::Unknown(value) => value
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("unknown"),
        }
    }

    /// The event as an SSE frame: `event: <name>\ndata: <json>\n\n`.
    pub fn to_frame(&self) -> Bytes {
        sse::anthropic_event(self.name(), &to_vec(self))
    }

    /// Parses the `data:` of one event.
    pub fn parse(data: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(data)
    }
}

/// An error body: `{"type":"error","error":{"type","message"},"request_id"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// Always `error`.
    #[serde(rename = "type")]
    pub kind: String,
    pub error: ErrorObject,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// The `error` object of an error body or stream `error` event.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ErrorObject {
    #[serde(rename = "type", default, deserialize_with = "null_as_default")]
    pub kind: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub message: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
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
    fn request_round_trip_keeps_blocks_and_unknown_fields() {
        // Field names from https://docs.claude.com/en/api/messages
        let body = json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}},
                    {"type": "text", "text": "Describe."}
                ]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "15C", "is_error": false}
                ]},
                {"role": "assistant", "content": "Plain string."}
            ],
            "temperature": 0.2,
            "top_p": 0.9,
            "top_k": 40,
            "stop_sequences": ["\n\nHuman:"],
            "stream": false,
            "metadata": {"user_id": "u-1"},
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
            "thinking": {"type": "enabled", "budget_tokens": 2000}
        });
        assert_eq!(round_trip::<MessagesRequest>(&body), body);
        let parsed: MessagesRequest = serde_json::from_value(body).unwrap();
        let kinds: Vec<&str> = parsed
            .messages
            .iter()
            .flat_map(|message| match &message.content {
                MessageContent::Blocks(blocks) => blocks.iter().map(ContentBlock::kind).collect(),
                MessageContent::Text(_) => vec!["string"],
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "image",
                "document",
                "text",
                "thinking",
                "tool_use",
                "tool_result",
                "string"
            ]
        );
        assert!(
            matches!(&parsed.messages[1].content, MessageContent::Blocks(blocks)
            if matches!(blocks[0], ContentBlock::Unknown(_)))
        );
        assert_eq!(
            parsed.extra.keys().collect::<Vec<_>>(),
            ["thinking", "tools"]
        );
    }

    #[test]
    fn missing_max_tokens_is_none_not_an_error() {
        let parsed: MessagesRequest = serde_json::from_value(json!({
            "model": "m", "messages": [{"role": "user", "content": "hi"}], "system": "s"
        }))
        .unwrap();
        assert_eq!(parsed.max_tokens, None);
        assert_eq!(parsed.system, Some(SystemPrompt::Text("s".into())));
    }

    #[test]
    fn response_round_trip_matches_documented_example() {
        // Example response from https://docs.claude.com/en/api/messages
        let body = json!({
            "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": "Hi! My name is Claude."}],
            "model": "claude-sonnet-4-5",
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": 2095, "output_tokens": 503,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                      "service_tier": "standard"}
        });
        assert_eq!(round_trip::<MessagesResponse>(&body), body);
        let parsed: MessagesResponse = serde_json::from_value(body).unwrap();
        assert_eq!(parsed.stop_reason, Some(StopReason::EndTurn));
        assert_eq!(
            parsed.usage.to_token_usage(),
            TokenUsage {
                input_tokens: 2095,
                output_tokens: 503,
                ..TokenUsage::default()
            }
        );
    }

    #[test]
    fn usage_with_null_and_missing_cache_fields() {
        let usage: Usage = serde_json::from_value(
            json!({"input_tokens": 5, "output_tokens": 1, "cache_read_input_tokens": null}),
        )
        .unwrap();
        assert_eq!(
            usage.to_token_usage(),
            TokenUsage {
                input_tokens: 5,
                output_tokens: 1,
                ..TokenUsage::default()
            }
        );
        let usage: Usage = serde_json::from_value(json!({
            "input_tokens": 5, "output_tokens": 1,
            "cache_creation_input_tokens": 200, "cache_read_input_tokens": 3000
        }))
        .unwrap();
        let neutral = usage.to_token_usage();
        assert_eq!(
            neutral,
            TokenUsage {
                input_tokens: 5,
                output_tokens: 1,
                cache_read_tokens: 3000,
                cache_write_tokens: 200,
                cache_write_1h_tokens: 0,
            }
        );
        assert_eq!(Usage::from_token_usage(&neutral), usage);
    }

    /// The events of the documented basic stream, in order, each parsed,
    /// named and written back unchanged.
    /// Source: https://docs.claude.com/en/docs/build-with-claude/streaming ("Basic streaming request").
    #[test]
    fn documented_stream_events_parse_and_round_trip() {
        let events = [
            (
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant", "content": [], "model": "claude-opus-4-6", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}),
            ),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            ("ping", json!({"type": "ping"})),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"location\": \"San Fra"}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Let me"}}),
            ),
            (
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
            (
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 15}}),
            ),
            ("message_stop", json!({"type": "message_stop"})),
            (
                "error",
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ),
            (
                "some_future_event",
                json!({"type": "some_future_event", "payload": [1, 2]}),
            ),
        ];
        for (name, body) in events {
            let event = StreamEvent::parse(&body.to_string()).unwrap();
            assert_eq!(event.name(), name);
            assert_eq!(serde_json::to_value(&event).unwrap(), body, "{name}");
            let frame = event.to_frame();
            let text = std::str::from_utf8(&frame).unwrap();
            assert!(
                text.starts_with(&format!("event: {name}\ndata: {{")),
                "{text}"
            );
            assert!(text.ends_with("}\n\n"));
        }
    }

    #[test]
    fn typed_stream_event_fields() {
        let event = StreamEvent::parse(
            r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},
                "usage":{"input_tokens":12,"cache_read_input_tokens":null,"output_tokens":30}}"#,
        )
        .unwrap();
        let StreamEvent::MessageDelta {
            delta,
            usage: Some(usage),
        } = event
        else {
            panic!("message_delta expected")
        };
        assert_eq!(delta.stop_reason, Some(StopReason::MaxTokens));
        assert_eq!(
            (
                usage.input_tokens,
                usage.cache_read_input_tokens,
                usage.output_tokens
            ),
            (Some(12), None, 30)
        );

        let event = StreamEvent::parse(
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}"#,
        )
        .unwrap();
        assert!(matches!(
            event,
            StreamEvent::ContentBlockStart {
                index: 1,
                content_block: ContentBlock::ToolUse { .. }
            }
        ));
    }

    #[test]
    fn stop_reasons_known_and_unknown() {
        for (text, reason) in [
            ("end_turn", StopReason::EndTurn),
            ("max_tokens", StopReason::MaxTokens),
            ("stop_sequence", StopReason::StopSequence),
            ("tool_use", StopReason::ToolUse),
            ("pause_turn", StopReason::PauseTurn),
            ("refusal", StopReason::Refusal),
            (
                "model_context_window_exceeded",
                StopReason::ModelContextWindowExceeded,
            ),
            ("brand_new", StopReason::Other("brand_new".into())),
        ] {
            let parsed: StopReason = serde_json::from_value(json!(text)).unwrap();
            assert_eq!(parsed, reason);
            assert_eq!(parsed.as_str(), text);
        }
    }

    #[test]
    fn error_body_round_trip() {
        // Example from https://docs.claude.com/en/api/errors
        let body = json!({"type": "error", "error": {"type": "not_found_error", "message": "The requested resource could not be found."}, "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"});
        assert_eq!(round_trip::<ErrorResponse>(&body), body);
    }
}
