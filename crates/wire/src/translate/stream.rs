//! Streaming translation state machines, and usage tracking for streams passed through unchanged.
//!
//! Usage rules, from the two APIs' documentation:
//! - Anthropic: `message_start` carries the input (and cache) counts;
//!   `message_delta` carries cumulative counts, so each one *replaces* the
//!   previous values (<https://docs.claude.com/en/docs/build-with-claude/streaming>).
//! - OpenAI: with `stream_options.include_usage`, one extra chunk with
//!   `choices: []` and the whole request's usage comes before `data: [DONE]`;
//!   if the stream breaks it never comes
//!   (<https://platform.openai.com/docs/api-reference/chat/create#chat-create-stream_options>).
//!   Some servers put usage on the last chunk with choices, or on every chunk
//!   (cumulatively); any chunk's usage replaces the previous one.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Map;

use super::response::{anthropic_stop_to_openai_finish, openai_finish_to_anthropic_stop};
use crate::anthropic::{self, BlockDelta, ContentBlock, StopReason, StreamEvent};
use crate::error::{self, ApiErrorKind};
use crate::json::to_vec;
use crate::openai::{self, ChatChunk, FinishReason};
use crate::sse;
use crate::usage::TokenUsage;

/// Usage of an Anthropic stream, from its events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnthropicStreamUsage {
    usage: TokenUsage,
    saw_message_start: bool,
    saw_message_delta: bool,
    text_deltas: u64,
}

impl AnthropicStreamUsage {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one event: `message_start` sets all counts; each `message_delta`
    /// replaces the output count and any input or cache count it repeats.
    pub fn on_event(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::MessageStart { message } => {
                self.usage = message.usage.to_token_usage();
                self.saw_message_start = true;
            }
            StreamEvent::MessageDelta {
                usage: Some(delta), ..
            } => {
                self.usage.output_tokens = delta.output_tokens;
                if let Some(input) = delta.input_tokens {
                    self.usage.input_tokens = input;
                }
                if let Some(cache_read) = delta.cache_read_input_tokens {
                    self.usage.cache_read_tokens = cache_read;
                }
                if let Some((five_minute, one_hour)) =
                    delta.cache_writes(self.usage.cache_write_1h_tokens)
                {
                    self.usage.cache_write_tokens = five_minute;
                    self.usage.cache_write_1h_tokens = one_hour;
                }
                self.saw_message_delta = true;
            }
            StreamEvent::ContentBlockDelta {
                delta: BlockDelta::TextDelta { text },
                ..
            } if !text.is_empty() => self.text_deltas += 1,
            _ => {}
        }
    }

    /// Parses one event's `data:` and records it; data that does not parse is ignored.
    pub fn on_data(&mut self, data: &str) {
        if let Ok(event) = StreamEvent::parse(data) {
            self.on_event(&event);
        }
    }

    /// The usage seen so far (zeros before `message_start`).
    pub fn usage(&self) -> TokenUsage {
        self.usage
    }

    /// True once `message_start` has given the input counts.
    pub fn saw_message_start(&self) -> bool {
        self.saw_message_start
    }

    /// True once a `message_delta` has given the final output count. When
    /// false, the output count is only `message_start`'s placeholder.
    pub fn saw_final_usage(&self) -> bool {
        self.saw_message_delta
    }

    /// An estimate of the output tokens: the number of non-empty text deltas.
    /// A documented approximation for streams cut off before `message_delta`.
    pub fn estimated_output_tokens(&self) -> u64 {
        self.text_deltas
    }
}

/// Usage of an OpenAI stream, for streams passed through unchanged.
///
/// Usage comes from whichever chunk carries it (normally the `choices: []`
/// chunk before `[DONE]`); a later one replaces an earlier one. Non-empty
/// content and tool-call deltas are counted so that the output can be estimated when no
/// usage arrives (the server ignores `include_usage`, or the stream broke):
/// one token per delta chunk, a documented approximation since servers
/// usually send one token per chunk.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpenAiStreamUsage {
    reported: Option<TokenUsage>,
    content_chunks: u64,
    saw_done: bool,
    /// `id`, `model` and `created` of the last chunk, for a synthesised usage chunk.
    last_id: String,
    last_model: String,
    last_created: u64,
}

/// Only the parts of a chunk that usage tracking needs, borrowed where possible.
#[derive(Deserialize)]
struct UsagePeek<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<ChoicePeek<'a>>>,
    #[serde(default)]
    usage: Option<openai::Usage>,
}

#[derive(Deserialize)]
struct ChoicePeek<'a> {
    #[serde(default, borrow)]
    delta: Option<DeltaPeek<'a>>,
}

#[derive(Deserialize)]
struct DeltaPeek<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Option<&'a serde_json::value::RawValue>,
}

impl OpenAiStreamUsage {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one parsed chunk.
    pub fn on_chunk(&mut self, chunk: &ChatChunk) {
        if let Some(usage) = &chunk.usage {
            self.reported = Some(usage.to_token_usage());
        }
        if self.last_id != chunk.id {
            self.last_id.clone_from(&chunk.id);
        }
        if self.last_model != chunk.model {
            self.last_model.clone_from(&chunk.model);
        }
        self.last_created = chunk.created;
        let with_content = chunk
            .choices
            .iter()
            .filter(|choice| {
                choice
                    .delta
                    .content
                    .as_deref()
                    .is_some_and(|text| !text.is_empty())
                    || choice
                        .delta
                        .tool_calls
                        .as_ref()
                        .is_some_and(|calls| !calls.is_empty())
            })
            .count();
        self.content_chunks += with_content as u64;
    }

    /// Records one raw `data:` payload without building the whole chunk;
    /// `[DONE]` is noted, and payloads that do not parse are ignored.
    pub fn on_data(&mut self, data: &str) {
        if data.trim() == "[DONE]" {
            self.saw_done = true;
            return;
        }
        let Ok(peek) = serde_json::from_str::<UsagePeek<'_>>(data) else {
            return;
        };
        if let Some(usage) = &peek.usage {
            self.reported = Some(usage.to_token_usage());
        }
        let with_content = peek
            .choices
            .iter()
            .flatten()
            .filter(|choice| {
                choice.delta.as_ref().is_some_and(|delta| {
                    delta
                        .content
                        .as_deref()
                        .is_some_and(|text| !text.is_empty())
                        || delta.tool_calls.is_some_and(|calls| calls.get() != "[]")
                })
            })
            .count();
        self.content_chunks += with_content as u64;
    }

    /// The usage the server reported, if it reported any.
    pub fn usage(&self) -> Option<TokenUsage> {
        self.reported
    }

    /// The number of non-empty content deltas seen.
    pub fn content_chunks(&self) -> u64 {
        self.content_chunks
    }

    /// Estimated output tokens when no usage arrived: [`content_chunks`](Self::content_chunks).
    pub fn estimated_output_tokens(&self) -> u64 {
        self.content_chunks
    }

    /// True once `data: [DONE]` was seen by [`on_data`](Self::on_data).
    pub fn saw_done(&self) -> bool {
        self.saw_done
    }

    /// A final `choices: []` chunk carrying `usage`, with the `id`, `model` and
    /// `created` of the chunks seen by [`on_chunk`](Self::on_chunk): for a client
    /// that asked for `include_usage` when the server sent none.
    pub fn usage_chunk(&self, usage: &TokenUsage) -> Bytes {
        let chunk = ChatChunk {
            id: self.last_id.clone(),
            object: openai::CHAT_COMPLETION_CHUNK_OBJECT.to_owned(),
            created: self.last_created,
            model: self.last_model.clone(),
            choices: Vec::new(),
            usage: Some(openai::Usage::from_token_usage(usage)),
            extra: Map::new(),
        };
        sse::openai_data(&to_vec(&chunk))
    }
}

/// Turns an Anthropic event stream into OpenAI chunk frames for an OpenAI client.
///
/// Emits a first chunk with `role: assistant` on `message_start`, one chunk
/// per text delta, a chunk with `finish_reason` on `message_delta`, and on
/// `message_stop` the usage chunk (`choices: []`, only when the client asked
/// for `include_usage`) followed by `data: [DONE]`. A `tool_use` block becomes
/// a tool call: its `content_block_start` a `tool_calls[i]` delta with the `id`
/// and name, each `input_json_delta` an `arguments` delta of the same `i`, the
/// calls numbered from 0 in block order, so text and several tools can
/// interleave. Thinking blocks are not streamed. An `error` event becomes an
/// OpenAI mid-stream error frame and ends the stream.
#[derive(Debug, Clone)]
pub struct AnthropicToOpenAiStream {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    usage: AnthropicStreamUsage,
    role_sent: bool,
    finish_sent: bool,
    done: bool,
    tools: ToolCalls,
}

/// The tool calls of one streamed message: which block or index each is, and
/// its arguments so far, to count the ones that end as invalid JSON.
#[derive(Debug, Clone, Default)]
struct ToolCalls {
    calls: Vec<ToolCall>,
}

#[derive(Debug, Clone)]
struct ToolCall {
    /// The OpenAI `tool_calls[].index` (numbered from 0 on the Anthropic side).
    openai_index: u64,
    /// The Anthropic content block index.
    block: u32,
    arguments: String,
}

impl ToolCalls {
    fn by_block(&mut self, block: u32) -> Option<&mut ToolCall> {
        self.calls.iter_mut().find(|call| call.block == block)
    }

    fn by_openai_index(&mut self, index: u64) -> Option<&mut ToolCall> {
        self.calls
            .iter_mut()
            .find(|call| call.openai_index == index)
    }

    fn push(&mut self, openai_index: u64, block: u32) {
        self.calls.push(ToolCall {
            openai_index,
            block,
            arguments: String::new(),
        });
    }

    /// The calls whose arguments are not a JSON value (an empty string counts as `{}`).
    fn invalid(&self) -> u64 {
        self.calls
            .iter()
            .filter(|call| super::tools::arguments_are_invalid(&call.arguments))
            .count() as u64
    }
}

impl AnthropicToOpenAiStream {
    /// `id`, `model` and `created` are written into every chunk; `include_usage`
    /// is the client's `stream_options.include_usage`.
    pub fn new(id: &str, model: &str, created: u64, include_usage: bool) -> Self {
        Self {
            id: id.to_owned(),
            model: model.to_owned(),
            created,
            include_usage,
            usage: AnthropicStreamUsage::new(),
            role_sent: false,
            finish_sent: false,
            done: false,
            tools: ToolCalls::default(),
        }
    }

    /// Tool calls whose arguments were not valid JSON when the stream ended
    /// (passed on as they were).
    pub fn invalid_tool_arguments(&self) -> u64 {
        self.tools.invalid()
    }

    /// Translates one upstream event into zero or more frames for the client.
    pub fn on_event(&mut self, event: &StreamEvent) -> Vec<Bytes> {
        if self.done {
            return Vec::new();
        }
        self.usage.on_event(event);
        let mut frames = Vec::new();
        match event {
            StreamEvent::MessageStart { .. } => self.push_role(&mut frames),
            StreamEvent::ContentBlockStart {
                content_block: ContentBlock::Text { text, .. },
                ..
            } => self.push_text(&mut frames, text),
            StreamEvent::ContentBlockDelta {
                delta: BlockDelta::TextDelta { text },
                ..
            } => self.push_text(&mut frames, text),
            StreamEvent::ContentBlockStart {
                index,
                content_block:
                    ContentBlock::ToolUse {
                        id, name, input, ..
                    },
            } => self.push_tool_start(&mut frames, *index, id, name, input),
            StreamEvent::ContentBlockDelta {
                index,
                delta: BlockDelta::InputJsonDelta { partial_json },
            } => self.push_tool_arguments(&mut frames, *index, partial_json),
            StreamEvent::MessageDelta { delta, .. } => {
                if let Some(reason) = &delta.stop_reason {
                    self.push_finish(&mut frames, anthropic_stop_to_openai_finish(reason));
                }
            }
            StreamEvent::MessageStop => {
                self.push_finish(&mut frames, FinishReason::Stop);
                if self.include_usage {
                    frames.push(self.usage_frame());
                }
                frames.push(sse::openai_done());
                self.done = true;
            }
            StreamEvent::Error { error } => {
                frames.extend(self.fail(
                    ApiErrorKind::from_anthropic_type(&error.kind),
                    &error.message,
                ));
            }
            _ => {}
        }
        frames
    }

    /// Ends the stream with an OpenAI mid-stream error frame (for an upstream
    /// failure the caller detected, such as a dropped connection); later events are ignored.
    pub fn fail(&mut self, kind: ApiErrorKind, message: &str) -> Vec<Bytes> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        Self::error_frames(kind, message)
    }

    /// The OpenAI mid-stream error frame: `data: {"error":{...}}`, with no `[DONE]` after it.
    pub fn error_frames(kind: ApiErrorKind, message: &str) -> Vec<Bytes> {
        vec![error::openai_stream_error(kind, message)]
    }

    /// The usage seen so far: `message_start`'s input and cache counts, with
    /// the output (and any repeated input) count of the latest `message_delta`.
    pub fn usage(&self) -> TokenUsage {
        self.usage.usage()
    }

    /// The usage tracker, for whether final usage arrived and for estimates.
    pub fn usage_tracker(&self) -> &AnthropicStreamUsage {
        &self.usage
    }

    /// True after `message_stop`, an `error` event or [`fail`](Self::fail).
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn chunk_frame(&self, delta: openai::ChunkDelta, finish_reason: Option<FinishReason>) -> Bytes {
        let chunk = ChatChunk {
            id: self.id.clone(),
            object: openai::CHAT_COMPLETION_CHUNK_OBJECT.to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![openai::ChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason,
                extra: Map::new(),
            }],
            usage: None,
            extra: Map::new(),
        };
        sse::openai_data(&to_vec(&chunk))
    }

    fn usage_frame(&self) -> Bytes {
        let chunk = ChatChunk {
            id: self.id.clone(),
            object: openai::CHAT_COMPLETION_CHUNK_OBJECT.to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices: Vec::new(),
            usage: Some(openai::Usage::from_token_usage(&self.usage.usage())),
            extra: Map::new(),
        };
        sse::openai_data(&to_vec(&chunk))
    }

    fn push_role(&mut self, frames: &mut Vec<Bytes>) {
        if self.role_sent {
            return;
        }
        self.role_sent = true;
        let delta = openai::ChunkDelta {
            role: Some("assistant".to_owned()),
            content: Some(String::new()),
            ..openai::ChunkDelta::default()
        };
        frames.push(self.chunk_frame(delta, None));
    }

    fn push_text(&mut self, frames: &mut Vec<Bytes>, text: &str) {
        self.push_role(frames);
        if text.is_empty() || self.finish_sent {
            return;
        }
        let delta = openai::ChunkDelta {
            content: Some(text.to_owned()),
            ..openai::ChunkDelta::default()
        };
        frames.push(self.chunk_frame(delta, None));
    }

    fn push_tool_start(
        &mut self,
        frames: &mut Vec<Bytes>,
        block: u32,
        id: &str,
        name: &str,
        input: &serde_json::Value,
    ) {
        self.push_role(frames);
        if self.finish_sent || self.tools.by_block(block).is_some() {
            return;
        }
        let openai_index = self.tools.calls.len() as u64;
        self.tools.push(openai_index, block);
        // The start carries `input: {}`; the arguments come as deltas. A start
        // with input already in it sends that input as the first arguments.
        let arguments = match input.as_object() {
            Some(object) if object.is_empty() => String::new(),
            _ => input.to_string(),
        };
        if let Some(call) = self.tools.by_block(block) {
            call.arguments.push_str(&arguments);
        }
        let delta = openai::ChunkDelta {
            tool_calls: Some(vec![serde_json::json!({
                "index": openai_index,
                "id": id,
                "type": "function",
                "function": { "name": name, "arguments": arguments },
            })]),
            ..openai::ChunkDelta::default()
        };
        frames.push(self.chunk_frame(delta, None));
    }

    fn push_tool_arguments(&mut self, frames: &mut Vec<Bytes>, block: u32, partial: &str) {
        if self.finish_sent || partial.is_empty() {
            return;
        }
        let Some(call) = self.tools.by_block(block) else {
            return;
        };
        call.arguments.push_str(partial);
        let delta = openai::ChunkDelta {
            tool_calls: Some(vec![serde_json::json!({
                "index": call.openai_index,
                "function": { "arguments": partial },
            })]),
            ..openai::ChunkDelta::default()
        };
        frames.push(self.chunk_frame(delta, None));
    }

    fn push_finish(&mut self, frames: &mut Vec<Bytes>, reason: FinishReason) {
        self.push_role(frames);
        if self.finish_sent {
            return;
        }
        self.finish_sent = true;
        frames.push(self.chunk_frame(openai::ChunkDelta::default(), Some(reason)));
    }
}

/// Turns OpenAI chunks into Anthropic event frames for an Anthropic client.
///
/// The first chunk opens the message (`message_start`). Content deltas become
/// `text_delta`s in a text block, opened at the first text; each new
/// `tool_calls[i]` opens a `tool_use` block (with its `id` and name) and its
/// `arguments` deltas become `input_json_delta`s of that block. A new block
/// closes the one before it (`content_block_stop`); arguments for a call whose
/// block is already closed still go to that block's index, where the SDKs'
/// accumulators put them. A `finish_reason` closes the open block.
/// `message_delta` (stop reason and cumulative usage) and `message_stop` wait
/// for the usage: they are sent when the usage chunk (`choices: []`) arrives
/// after the finish, or at [`finish`](Self::finish), which the caller invokes
/// on `data: [DONE]` or at the end of the upstream body. Without any usage
/// from upstream, `message_delta` reports the estimates: the input given to
/// [`with_input_estimate`](Self::with_input_estimate) and one output token per
/// content or tool-call delta ([`estimated_output_tokens`](Self::estimated_output_tokens)).
/// A message with no content at all ends with one empty text block.
#[derive(Debug, Clone)]
pub struct OpenAiToAnthropicStream {
    id: String,
    model: String,
    usage: OpenAiStreamUsage,
    input_estimate: u64,
    started: bool,
    /// The index the next content block gets.
    next_block: u32,
    /// The block open now, if any, and whether it is text.
    open_block: Option<(u32, bool)>,
    tools: ToolCalls,
    stop_reason: Option<StopReason>,
    done: bool,
}

impl OpenAiToAnthropicStream {
    /// `id` and `model` are written into `message_start`.
    pub fn new(id: &str, model: &str) -> Self {
        Self {
            id: id.to_owned(),
            model: model.to_owned(),
            usage: OpenAiStreamUsage::new(),
            input_estimate: 0,
            started: false,
            next_block: 0,
            open_block: None,
            tools: ToolCalls::default(),
            stop_reason: None,
            done: false,
        }
    }

    /// Tool calls whose arguments were not valid JSON when the stream ended
    /// (passed on as they were).
    pub fn invalid_tool_arguments(&self) -> u64 {
        self.tools.invalid()
    }

    /// The input tokens to report when the upstream sends no usage (some servers,
    /// e.g. the llama.cpp server, never do on streams). The output is then the
    /// number of content deltas.
    pub fn with_input_estimate(mut self, input_tokens: u64) -> Self {
        self.input_estimate = input_tokens;
        self
    }

    /// Translates one upstream chunk into zero or more frames for the client.
    pub fn on_chunk(&mut self, chunk: &ChatChunk) -> Vec<Bytes> {
        if self.done {
            return Vec::new();
        }
        self.usage.on_chunk(chunk);
        let mut frames = Vec::new();
        self.start(&mut frames);
        for choice in chunk.choices.iter().filter(|choice| choice.index == 0) {
            if self.stop_reason.is_some() {
                break;
            }
            if let Some(text) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
                let index = self.text_block(&mut frames);
                frames.push(event_frame(&StreamEvent::ContentBlockDelta {
                    index,
                    delta: BlockDelta::TextDelta {
                        text: text.to_owned(),
                    },
                }));
            }
            for call in choice.delta.tool_calls.iter().flatten() {
                self.on_tool_call(&mut frames, call);
            }
            if let Some(reason) = &choice.finish_reason {
                self.stop_reason = Some(openai_finish_to_anthropic_stop(reason));
                self.close_all(&mut frames);
            }
        }
        if self.stop_reason.is_some() && chunk.choices.is_empty() && chunk.usage.is_some() {
            self.push_end(&mut frames);
        }
        frames
    }

    /// Handles one raw `data:` payload: a chunk goes to [`on_chunk`](Self::on_chunk),
    /// `[DONE]` to [`finish`](Self::finish), and `{"error":…}` ends the stream
    /// with an Anthropic `error` event. Payloads that do not parse are ignored.
    pub fn on_data(&mut self, data: &str) -> Vec<Bytes> {
        match openai::parse_stream_data(data) {
            openai::StreamData::Done => self.finish(),
            openai::StreamData::Chunk(chunk) => self.on_chunk(&chunk),
            openai::StreamData::Error(error) => {
                let kind = ApiErrorKind::from_openai_error(&error.kind, error.code_str());
                self.fail(kind, &error.message)
            }
            openai::StreamData::Invalid(_) => Vec::new(),
        }
    }

    /// Ends the message: closes the open block, sends `message_delta` with the
    /// stop reason (`end_turn` if upstream gave none) and the usage seen, then
    /// `message_stop`. Does nothing if the message already ended.
    pub fn finish(&mut self) -> Vec<Bytes> {
        if self.done {
            return Vec::new();
        }
        let mut frames = Vec::new();
        self.start(&mut frames);
        self.close_all(&mut frames);
        self.push_end(&mut frames);
        frames
    }

    /// Ends the stream with an Anthropic `error` event (no `message_stop`
    /// follows); later chunks are ignored.
    pub fn fail(&mut self, kind: ApiErrorKind, message: &str) -> Vec<Bytes> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        Self::error_frames(kind, message)
    }

    /// The Anthropic mid-stream error frame: `event: error` with the error body.
    pub fn error_frames(kind: ApiErrorKind, message: &str) -> Vec<Bytes> {
        vec![error::anthropic_stream_error(kind, message)]
    }

    /// The usage upstream reported (zeros if it reported none; see
    /// [`has_usage`](Self::has_usage)).
    pub fn usage(&self) -> TokenUsage {
        self.usage.usage().unwrap_or_default()
    }

    /// True once upstream reported usage.
    pub fn has_usage(&self) -> bool {
        self.usage.usage().is_some()
    }

    /// Estimated output tokens when upstream reported no usage: the number of
    /// non-empty content deltas.
    pub fn estimated_output_tokens(&self) -> u64 {
        self.usage.estimated_output_tokens()
    }

    /// True after `message_stop` or an error.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The open text block's index, opening one (and closing a tool block) if needed.
    fn text_block(&mut self, frames: &mut Vec<Bytes>) -> u32 {
        if let Some((index, true)) = self.open_block {
            return index;
        }
        self.close_block(frames);
        let index = self.open(frames, ContentBlock::text(""));
        self.open_block = Some((index, true));
        index
    }

    fn open(&mut self, frames: &mut Vec<Bytes>, content_block: ContentBlock) -> u32 {
        let index = self.next_block;
        self.next_block += 1;
        frames.push(event_frame(&StreamEvent::ContentBlockStart {
            index,
            content_block,
        }));
        index
    }

    /// One `tool_calls[]` entry of a delta: a new call opens its block, arguments
    /// go to the call's block.
    fn on_tool_call(&mut self, frames: &mut Vec<Bytes>, call: &serde_json::Value) {
        let openai_index = call
            .get("index")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        let text = |pointer: &str| {
            call.pointer(pointer)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let block = match self.tools.by_openai_index(openai_index) {
            Some(known) => known.block,
            None => {
                self.close_block(frames);
                let id = text("/id");
                let block = self.open(
                    frames,
                    ContentBlock::ToolUse {
                        id: if id.is_empty() {
                            format!("toolu_{openai_index}")
                        } else {
                            id
                        },
                        name: text("/function/name"),
                        input: serde_json::Value::Object(Map::new()),
                        extra: Map::new(),
                    },
                );
                self.tools.push(openai_index, block);
                self.open_block = Some((block, false));
                block
            }
        };
        let arguments = text("/function/arguments");
        if arguments.is_empty() {
            return;
        }
        if let Some(known) = self.tools.by_block(block) {
            known.arguments.push_str(&arguments);
        }
        frames.push(event_frame(&StreamEvent::ContentBlockDelta {
            index: block,
            delta: BlockDelta::InputJsonDelta {
                partial_json: arguments,
            },
        }));
    }

    fn start(&mut self, frames: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        let mut usage = self.usage();
        if usage.input_tokens == 0 {
            usage.input_tokens = self.input_estimate;
        }
        let message = anthropic::MessagesResponse {
            id: self.id.clone(),
            model: self.model.clone(),
            usage: anthropic::Usage::from_token_usage(&usage),
            ..anthropic::MessagesResponse::default()
        };
        frames.push(event_frame(&StreamEvent::MessageStart { message }));
    }

    fn close_block(&mut self, frames: &mut Vec<Bytes>) {
        if let Some((index, _)) = self.open_block.take() {
            frames.push(event_frame(&StreamEvent::ContentBlockStop { index }));
        }
    }

    /// Closes the open block; a message that had none gets one empty text block.
    fn close_all(&mut self, frames: &mut Vec<Bytes>) {
        if self.next_block == 0 {
            self.text_block(frames);
        }
        self.close_block(frames);
    }

    fn push_end(&mut self, frames: &mut Vec<Bytes>) {
        let usage = match self.usage.usage() {
            Some(usage) => anthropic::MessageDeltaUsage {
                input_tokens: Some(usage.input_tokens),
                cache_creation_input_tokens: Some(usage.all_cache_write_tokens()),
                cache_read_input_tokens: Some(usage.cache_read_tokens),
                cache_creation: None,
                output_tokens: usage.output_tokens,
                extra: Map::new(),
            },
            None => anthropic::MessageDeltaUsage {
                input_tokens: Some(self.input_estimate),
                cache_creation_input_tokens: Some(0),
                cache_read_input_tokens: Some(0),
                cache_creation: None,
                output_tokens: self.usage.estimated_output_tokens(),
                extra: Map::new(),
            },
        };
        frames.push(event_frame(&StreamEvent::MessageDelta {
            delta: anthropic::MessageDelta {
                stop_reason: Some(self.stop_reason.clone().unwrap_or(StopReason::EndTurn)),
                stop_sequence: None,
                extra: Map::new(),
            },
            usage: Some(usage),
        }));
        frames.push(event_frame(&StreamEvent::MessageStop));
        self.done = true;
    }
}

fn event_frame(event: &StreamEvent) -> Bytes {
    event.to_frame()
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::sse::{SseEvent, SseParser};

    /// Parses frames back into SSE events, checking that each frame is exactly one event.
    fn parse_frames(frames: &[Bytes]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        frames
            .iter()
            .map(|frame| {
                let mut events = parser.feed(frame);
                assert_eq!(events.len(), 1, "one event per frame: {frame:?}");
                events.remove(0)
            })
            .collect()
    }

    /// The data payloads of OpenAI frames, as JSON (or the string `[DONE]`).
    fn openai_payloads(frames: &[Bytes]) -> Vec<Value> {
        parse_frames(frames)
            .into_iter()
            .map(|event| {
                assert_eq!(event.event, None);
                if event.is_openai_done() {
                    Value::String("[DONE]".into())
                } else {
                    serde_json::from_str(&event.data).unwrap()
                }
            })
            .collect()
    }

    /// (event name, data) of Anthropic frames, checking that the name matches the `type`.
    fn anthropic_payloads(frames: &[Bytes]) -> Vec<(String, Value)> {
        parse_frames(frames)
            .into_iter()
            .map(|event| {
                let name = event.event.unwrap();
                let data: Value = serde_json::from_str(&event.data).unwrap();
                assert_eq!(data["type"], name.as_str());
                (name, data)
            })
            .collect()
    }

    fn event(value: Value) -> StreamEvent {
        serde_json::from_value(value).unwrap()
    }

    fn chunk(value: Value) -> ChatChunk {
        serde_json::from_value(value).unwrap()
    }

    /// The documented basic stream, https://docs.claude.com/en/docs/build-with-claude/streaming
    fn documented_anthropic_stream() -> Vec<StreamEvent> {
        vec![
            event(
                json!({"type": "message_start", "message": {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant", "content": [], "model": "claude-opus-4-6", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}),
            ),
            event(
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            event(json!({"type": "ping"})),
            event(
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}),
            ),
            event(
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}}),
            ),
            event(json!({"type": "content_block_stop", "index": 0})),
            event(
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 15}}),
            ),
            event(json!({"type": "message_stop"})),
        ]
    }

    fn openai_chunk(delta: Value, finish_reason: Value) -> Value {
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": "client-model",
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
               "usage": null})
    }

    fn translate_anthropic(
        events: &[StreamEvent],
        include_usage: bool,
    ) -> (Vec<Value>, AnthropicToOpenAiStream) {
        let mut translator =
            AnthropicToOpenAiStream::new("chatcmpl-1", "client-model", 1700000000, include_usage);
        let frames: Vec<Bytes> = events
            .iter()
            .flat_map(|event| translator.on_event(event))
            .collect();
        (openai_payloads(&frames), translator)
    }

    #[test]
    fn anthropic_to_openai_documented_stream_with_usage_chunk() {
        let (payloads, translator) = translate_anthropic(&documented_anthropic_stream(), true);
        assert_eq!(
            payloads,
            [
                openai_chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                openai_chunk(json!({"content": "Hello"}), Value::Null),
                openai_chunk(json!({"content": "!"}), Value::Null),
                openai_chunk(json!({}), json!("stop")),
                json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000,
                       "model": "client-model", "choices": [],
                       "usage": {"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40,
                                 "prompt_tokens_details": {"cached_tokens": 0}}}),
                json!("[DONE]"),
            ]
        );
        // message_start's output_tokens (1) is replaced by message_delta's cumulative 15.
        assert_eq!(
            translator.usage(),
            TokenUsage {
                input_tokens: 25,
                output_tokens: 15,
                ..TokenUsage::default()
            }
        );
        assert!(translator.is_done());
        assert!(translator.usage_tracker().saw_final_usage());
    }

    #[test]
    fn anthropic_to_openai_without_include_usage_has_no_usage_chunk() {
        let (payloads, _) = translate_anthropic(&documented_anthropic_stream(), false);
        assert_eq!(payloads.len(), 5);
        assert_eq!(payloads[3]["choices"][0]["finish_reason"], "stop");
        assert_eq!(payloads[4], json!("[DONE]"));
        assert!(payloads.iter().all(|payload| payload
            .get("choices")
            .is_none_or(|choices| !choices.as_array().unwrap().is_empty())));
    }

    #[test]
    fn anthropic_message_delta_usage_replaces_never_adds() {
        let events = [
            event(
                json!({"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant", "content": [], "model": "x",
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 5, "cache_creation_input_tokens": 20, "cache_read_input_tokens": 100, "output_tokens": 1}}}),
            ),
            event(
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "a"}}),
            ),
            event(
                json!({"type": "message_delta", "delta": {"stop_reason": null, "stop_sequence": null}, "usage": {"output_tokens": 10}}),
            ),
            event(
                json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens", "stop_sequence": null},
                "usage": {"input_tokens": 6, "cache_read_input_tokens": 100, "output_tokens": 30}}),
            ),
            event(json!({"type": "message_stop"})),
        ];
        let (payloads, translator) = translate_anthropic(&events, true);
        let expected = TokenUsage {
            input_tokens: 6,
            output_tokens: 30,
            cache_read_tokens: 100,
            cache_write_tokens: 20,
            cache_write_1h_tokens: 0,
        };
        assert_eq!(translator.usage(), expected);
        // Only one finish chunk, from the delta that carried a stop reason.
        let finishes: Vec<&Value> = payloads
            .iter()
            .filter_map(|payload| payload.get("choices")?.get(0)?.get("finish_reason"))
            .filter(|reason| !reason.is_null())
            .collect();
        assert_eq!(finishes, [&json!("length")]);
        let usage_chunk = &payloads[payloads.len() - 2];
        assert_eq!(
            usage_chunk["usage"],
            json!({"prompt_tokens": 126, "completion_tokens": 30, "total_tokens": 156,
                   "prompt_tokens_details": {"cached_tokens": 100}})
        );
    }

    #[test]
    fn anthropic_stream_cut_off_keeps_start_usage_and_counts_deltas() {
        let events = documented_anthropic_stream();
        let (payloads, translator) = translate_anthropic(&events[..5], true);
        assert_eq!(payloads.len(), 3);
        assert!(!translator.is_done());
        let tracker = translator.usage_tracker();
        assert!(tracker.saw_message_start() && !tracker.saw_final_usage());
        assert_eq!(
            translator.usage(),
            TokenUsage {
                input_tokens: 25,
                output_tokens: 1,
                ..TokenUsage::default()
            }
        );
        assert_eq!(tracker.estimated_output_tokens(), 2);
    }

    #[test]
    fn anthropic_error_event_becomes_openai_error_frame_and_ends_stream() {
        let mut events = documented_anthropic_stream();
        events.truncate(4);
        events.push(event(json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})));
        events.push(event(json!({"type": "message_stop"})));
        let (payloads, translator) = translate_anthropic(&events, true);
        assert_eq!(payloads.len(), 3);
        assert_eq!(
            payloads[2],
            json!({"error": {"message": "Overloaded", "type": "server_error", "param": null, "code": null}})
        );
        assert!(translator.is_done());
    }

    #[test]
    fn anthropic_unknown_events_and_thinking_blocks_are_tolerated() {
        let mut events = documented_anthropic_stream();
        events.insert(2, event(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}})));
        events.insert(2, event(json!({"type": "brand_new_event", "x": 1})));
        let (payloads, _) = translate_anthropic(&events, true);
        let (expected, _) = translate_anthropic(&documented_anthropic_stream(), true);
        assert_eq!(payloads, expected);
    }

    /// The tool-use stream of Anthropic's streaming guide (a text block, then a
    /// `tool_use` block whose input arrives as `input_json_delta`s), with a second
    /// tool added, so that the calls are numbered 0 and 1 in block order.
    fn anthropic_tool_stream() -> Vec<StreamEvent> {
        [
            json!({"type": "message_start", "message": {"id": "msg_014p7gG3wDgGV9EUtLvnow3U", "type": "message", "role": "assistant", "model": "claude-opus-4-6", "stop_sequence": null, "usage": {"input_tokens": 472, "output_tokens": 2}, "content": [], "stop_reason": null}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Okay, let's check the weather"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {}}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"location\":"}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": " \"San Francisco, CA\", \"unit\": \"fahrenheit\"}"}}),
            json!({"type": "content_block_stop", "index": 1}),
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}}),
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"tz\": \"PST\"}"}}),
            json!({"type": "content_block_stop", "index": 2}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 89}}),
            json!({"type": "message_stop"}),
        ]
        .into_iter()
        .map(event)
        .collect()
    }

    /// Reassembles the tool calls of OpenAI chunk payloads as the SDKs do: by index.
    fn reassemble_openai_calls(payloads: &[Value]) -> Vec<(String, String, String)> {
        let mut calls: Vec<(String, String, String)> = Vec::new();
        for payload in payloads {
            let Some(deltas) = payload
                .pointer("/choices/0/delta/tool_calls")
                .and_then(Value::as_array)
            else {
                continue;
            };
            for delta in deltas {
                let index = delta["index"].as_u64().unwrap() as usize;
                if index == calls.len() {
                    calls.push(Default::default());
                }
                let call = &mut calls[index];
                if let Some(id) = delta["id"].as_str() {
                    call.0 = id.to_owned();
                }
                if let Some(name) = delta.pointer("/function/name").and_then(Value::as_str) {
                    call.1 = name.to_owned();
                }
                if let Some(arguments) =
                    delta.pointer("/function/arguments").and_then(Value::as_str)
                {
                    call.2.push_str(arguments);
                }
            }
        }
        calls
    }

    #[test]
    fn anthropic_tool_use_stream_becomes_openai_tool_call_deltas() {
        let (payloads, translator) = translate_anthropic(&anthropic_tool_stream(), true);
        let calls = reassemble_openai_calls(&payloads);
        assert_eq!(
            calls,
            vec![
                (
                    "toolu_01T1x1fJ34qAmk2tNTrN7Up6".to_owned(),
                    "get_weather".to_owned(),
                    "{\"location\": \"San Francisco, CA\", \"unit\": \"fahrenheit\"}".to_owned()
                ),
                (
                    "toolu_2".to_owned(),
                    "get_time".to_owned(),
                    "{\"tz\": \"PST\"}".to_owned()
                ),
            ]
        );
        // The first delta of a call carries its type; later ones only the index and arguments.
        let first = payloads
            .iter()
            .find(|p| p.pointer("/choices/0/delta/tool_calls").is_some())
            .unwrap();
        assert_eq!(
            first["choices"][0]["delta"]["tool_calls"][0]["type"],
            "function"
        );
        let text: String = payloads
            .iter()
            .filter_map(|p| {
                p.pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
            })
            .collect();
        assert_eq!(text, "Okay, let's check the weather");
        let finish: Vec<&Value> = payloads
            .iter()
            .filter_map(|p| {
                p.pointer("/choices/0/finish_reason")
                    .filter(|f| !f.is_null())
            })
            .collect();
        assert_eq!(finish, [&json!("tool_calls")]);
        assert_eq!(translator.invalid_tool_arguments(), 0);
        assert_eq!(translator.usage().output_tokens, 89);
    }

    /// OpenAI's streamed tool calls, as the function-calling guide shows them:
    /// the first delta of each call has `id`, `type` and the name with empty
    /// arguments; the arguments follow in pieces under the same `index`.
    fn openai_tool_stream(text_first: bool) -> Vec<Value> {
        let mut chunks = vec![openai_chunk(
            json!({"role": "assistant", "content": null}),
            Value::Null,
        )];
        if text_first {
            chunks.push(openai_chunk(
                json!({"content": "Let me look."}),
                Value::Null,
            ));
        }
        for (index, id, name, pieces) in [
            (
                0,
                "call_DdmO9pD3xa9XTPNJ32zg2hcA",
                "get_weather",
                ["{\"", "location", "\":\"", "Paris", "\"}"],
            ),
            (
                1,
                "call_2",
                "get_weather",
                ["{\"loc", "ation\":", "\"Bog", "otá\"", "}"],
            ),
        ] {
            chunks.push(openai_chunk(
                json!({"tool_calls": [{"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
                Value::Null,
            ));
            for piece in pieces {
                chunks.push(openai_chunk(
                    json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                    Value::Null,
                ));
            }
        }
        chunks.push(openai_chunk(json!({}), json!("tool_calls")));
        chunks.push(json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": "m", "choices": [],
            "usage": {"prompt_tokens": 80, "completion_tokens": 33, "total_tokens": 113}}));
        chunks
    }

    /// The content blocks an Anthropic accumulator builds from the events, by index.
    fn accumulate_anthropic(payloads: &[(String, Value)]) -> Vec<Value> {
        let mut blocks: Vec<Value> = Vec::new();
        let mut json_text: Vec<String> = Vec::new();
        for (name, payload) in payloads {
            match name.as_str() {
                "content_block_start" => {
                    assert_eq!(
                        payload["index"].as_u64().unwrap() as usize,
                        blocks.len(),
                        "blocks open in order"
                    );
                    blocks.push(payload["content_block"].clone());
                    json_text.push(String::new());
                }
                "content_block_delta" => {
                    let index = payload["index"].as_u64().unwrap() as usize;
                    match payload["delta"]["type"].as_str().unwrap() {
                        "text_delta" => {
                            let text = format!(
                                "{}{}",
                                blocks[index]["text"].as_str().unwrap(),
                                payload["delta"]["text"].as_str().unwrap()
                            );
                            blocks[index]["text"] = Value::from(text);
                        }
                        "input_json_delta" => json_text[index]
                            .push_str(payload["delta"]["partial_json"].as_str().unwrap()),
                        other => panic!("unexpected delta {other}"),
                    }
                }
                _ => {}
            }
        }
        for (block, text) in blocks.iter_mut().zip(json_text) {
            if block["type"] == "tool_use" && !text.is_empty() {
                block["input"] = serde_json::from_str(&text).unwrap();
            }
        }
        blocks
    }

    #[test]
    fn openai_tool_call_deltas_become_tool_use_blocks() {
        for text_first in [false, true] {
            let (payloads, translator) = translate_openai(&openai_tool_stream(text_first), true);
            let mut expected = vec![
                json!({"type": "tool_use", "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA", "name": "get_weather", "input": {"location": "Paris"}}),
                json!({"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"location": "Bogotá"}}),
            ];
            if text_first {
                expected.insert(0, json!({"type": "text", "text": "Let me look."}));
            }
            assert_eq!(
                accumulate_anthropic(&payloads),
                expected,
                "text first: {text_first}"
            );
            // Each block is stopped before the next starts.
            let order: Vec<String> = payloads
                .iter()
                .filter(|(name, _)| name.starts_with("content_block_st"))
                .map(|(name, payload)| format!("{name}:{}", payload["index"]))
                .collect();
            let blocks = expected.len();
            let want: Vec<String> = (0..blocks)
                .flat_map(|i| {
                    [
                        format!("content_block_start:{i}"),
                        format!("content_block_stop:{i}"),
                    ]
                })
                .collect();
            assert_eq!(order, want);
            let (_, delta) = payloads
                .iter()
                .find(|(name, _)| name == "message_delta")
                .unwrap();
            assert_eq!(delta["delta"]["stop_reason"], "tool_use");
            assert_eq!(delta["usage"]["output_tokens"], 33);
            assert_eq!(translator.invalid_tool_arguments(), 0);
        }
    }

    #[test]
    fn interleaved_text_and_tool_deltas_keep_their_indices() {
        // Arguments of call 0 arrive after call 1 started, and text after both.
        let chunks = vec![
            openai_chunk(json!({"content": "A"}), Value::Null),
            openai_chunk(
                json!({"tool_calls": [{"index": 0, "id": "c0", "function": {"name": "f", "arguments": "{\"a\":"}}]}),
                Value::Null,
            ),
            openai_chunk(
                json!({"tool_calls": [{"index": 1, "id": "c1", "function": {"name": "g", "arguments": "{}"}}]}),
                Value::Null,
            ),
            openai_chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
                Value::Null,
            ),
            openai_chunk(json!({"content": "B"}), Value::Null),
            openai_chunk(json!({}), json!("tool_calls")),
        ];
        let (payloads, _) = translate_openai(&chunks, true);
        assert_eq!(
            accumulate_anthropic(&payloads),
            vec![
                json!({"type": "text", "text": "A"}),
                json!({"type": "tool_use", "id": "c0", "name": "f", "input": {"a": 1}}),
                json!({"type": "tool_use", "id": "c1", "name": "g", "input": {}}),
                json!({"type": "text", "text": "B"}),
            ]
        );
    }

    #[test]
    fn invalid_arguments_pass_through_and_are_counted() {
        let chunks = vec![
            openai_chunk(
                json!({"tool_calls": [{"index": 0, "id": "c0", "function": {"name": "f", "arguments": "{\"a\": tru"}}]}),
                Value::Null,
            ),
            openai_chunk(json!({}), json!("tool_calls")),
        ];
        let (payloads, translator) = translate_openai(&chunks, true);
        let sent: String = payloads
            .iter()
            .filter_map(|(_, p)| p.pointer("/delta/partial_json").and_then(Value::as_str))
            .collect();
        assert_eq!(sent, "{\"a\": tru");
        assert_eq!(translator.invalid_tool_arguments(), 1);

        let mut events = anthropic_tool_stream();
        events.insert(7, event(json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "}}}"}})));
        let (_, translator) = translate_anthropic(&events, false);
        assert_eq!(translator.invalid_tool_arguments(), 1);
    }

    #[test]
    fn anthropic_text_in_content_block_start_is_sent() {
        let events = [
            event(
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "Pre"}}),
            ),
            event(json!({"type": "message_stop"})),
        ];
        let (payloads, _) = translate_anthropic(&events, false);
        assert_eq!(
            payloads,
            [
                openai_chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                openai_chunk(json!({"content": "Pre"}), Value::Null),
                openai_chunk(json!({}), json!("stop")),
                json!("[DONE]"),
            ]
        );
    }

    #[test]
    fn anthropic_raw_sse_split_anywhere_translates_the_same() {
        let raw: Vec<u8> = documented_anthropic_stream()
            .iter()
            .flat_map(|event| event.to_frame().to_vec())
            .collect();
        let run = |cuts: &[usize]| {
            let mut parser = SseParser::new();
            let mut translator =
                AnthropicToOpenAiStream::new("chatcmpl-1", "client-model", 1700000000, true);
            let mut frames = Vec::new();
            let mut start = 0;
            for &cut in cuts.iter().chain([raw.len()].iter()) {
                for sse_event in parser.feed(&raw[start..cut]) {
                    frames
                        .extend(translator.on_event(&StreamEvent::parse(&sse_event.data).unwrap()));
                }
                start = cut;
            }
            (openai_payloads(&frames), translator.usage())
        };
        let whole = run(&[]);
        for cut in (0..raw.len()).step_by(7) {
            assert_eq!(run(&[cut]), whole, "cut at {cut}");
        }
        assert_eq!(whole.0.len(), 6);
    }

    #[test]
    fn anthropic_fail_after_done_sends_nothing() {
        let (_, mut translator) = translate_anthropic(&documented_anthropic_stream(), false);
        assert!(translator.fail(ApiErrorKind::Api, "late").is_empty());
        let mut fresh = AnthropicToOpenAiStream::new("c", "m", 0, false);
        let frames = fresh.fail(ApiErrorKind::Timeout, "upstream timed out");
        assert_eq!(
            openai_payloads(&frames)[0]["error"]["message"],
            "upstream timed out"
        );
        assert!(fresh
            .on_event(&event(json!({"type": "message_stop"})))
            .is_empty());
    }

    fn translate_openai(
        chunks: &[Value],
        then_done: bool,
    ) -> (Vec<(String, Value)>, OpenAiToAnthropicStream) {
        let mut translator = OpenAiToAnthropicStream::new("msg_gw_1", "client-model");
        let mut frames: Vec<Bytes> = chunks
            .iter()
            .flat_map(|value| translator.on_chunk(&chunk(value.clone())))
            .collect();
        if then_done {
            frames.extend(translator.finish());
        }
        (anthropic_payloads(&frames), translator)
    }

    fn names(payloads: &[(String, Value)]) -> Vec<&str> {
        payloads.iter().map(|(name, _)| name.as_str()).collect()
    }

    /// A stream as OpenAI sends it with include_usage
    /// (https://platform.openai.com/docs/api-reference/chat-streaming/streaming).
    fn openai_stream_with_usage() -> Vec<Value> {
        vec![
            openai_chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            openai_chunk(json!({"content": "Hel"}), Value::Null),
            openai_chunk(json!({"content": "lo"}), Value::Null),
            openai_chunk(json!({}), json!("stop")),
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": "m",
                   "choices": [], "usage": {"prompt_tokens": 2006, "completion_tokens": 12, "total_tokens": 2018,
                   "prompt_tokens_details": {"cached_tokens": 1920}}}),
        ]
    }

    #[test]
    fn openai_to_anthropic_stream_with_usage_chunk_after_finish() {
        let (payloads, translator) = translate_openai(&openai_stream_with_usage(), true);
        assert_eq!(
            names(&payloads),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(
            payloads[0].1,
            json!({"type": "message_start", "message": {"id": "msg_gw_1", "type": "message", "role": "assistant",
                   "content": [], "model": "client-model", "stop_reason": null, "stop_sequence": null,
                   "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0}}})
        );
        assert_eq!(
            payloads[1].1,
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        );
        assert_eq!(
            payloads[2].1,
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}})
        );
        assert_eq!(
            payloads[4].1,
            json!({"type": "content_block_stop", "index": 0})
        );
        assert_eq!(
            payloads[5].1,
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                   "usage": {"input_tokens": 86, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1920, "output_tokens": 12}})
        );
        assert_eq!(payloads[6].1, json!({"type": "message_stop"}));
        assert_eq!(
            translator.usage(),
            TokenUsage {
                input_tokens: 86,
                output_tokens: 12,
                cache_read_tokens: 1920,
                cache_write_tokens: 0,
                cache_write_1h_tokens: 0,
            }
        );
        assert!(translator.has_usage() && translator.is_done());
    }

    #[test]
    fn openai_usage_chunk_ends_the_message_before_done() {
        let (payloads, mut translator) = translate_openai(&openai_stream_with_usage(), false);
        assert_eq!(names(&payloads).last(), Some(&"message_stop"));
        assert!(
            translator.finish().is_empty(),
            "[DONE] after the end sends nothing more"
        );
    }

    #[test]
    fn openai_stream_without_usage_reports_the_estimates() {
        let mut chunks = openai_stream_with_usage();
        chunks.pop();
        let (payloads, translator) = translate_openai(&chunks, false);
        assert_eq!(
            names(&payloads).last(),
            Some(&"content_block_stop"),
            "waits for usage or [DONE]"
        );
        assert!(!translator.is_done());

        let (payloads, translator) = translate_openai(&chunks, true);
        // No input estimate given: input 0; output: one token per content delta (2).
        assert_eq!(
            payloads[5].1,
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                   "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0,
                             "cache_read_input_tokens": 0, "output_tokens": 2}})
        );
        assert!(!translator.has_usage());
        assert_eq!(translator.usage(), TokenUsage::default());
        assert_eq!(translator.estimated_output_tokens(), 2);
    }

    #[test]
    fn an_input_estimate_fills_message_start_and_message_delta() {
        let mut chunks = openai_stream_with_usage();
        chunks.pop();
        let mut translator = OpenAiToAnthropicStream::new("msg_1", "m").with_input_estimate(17);
        let mut frames = Vec::new();
        for chunk in &chunks {
            frames.extend(translator.on_data(&chunk.to_string()));
        }
        frames.extend(translator.finish());
        let events: Vec<Value> = parse_frames(&frames)
            .iter()
            .map(|e| serde_json::from_str(&e.data).unwrap())
            .collect();
        assert_eq!(events[0]["message"]["usage"]["input_tokens"], 17);
        let delta = events
            .iter()
            .find(|e| e["type"] == "message_delta")
            .unwrap();
        assert_eq!(delta["usage"]["input_tokens"], 17);
        assert_eq!(delta["usage"]["output_tokens"], 2);
    }

    #[test]
    fn a_usage_chunk_can_be_synthesised_for_a_pass_through_stream() {
        let mut tracker = OpenAiStreamUsage::new();
        let chunk: ChatChunk =
            serde_json::from_value(openai_chunk(json!({"content": "hi"}), Value::Null)).unwrap();
        tracker.on_chunk(&chunk);
        let frame = tracker.usage_chunk(&TokenUsage {
            input_tokens: 5,
            output_tokens: 1,
            ..TokenUsage::default()
        });
        let event = parse_frames(&[frame]).remove(0);
        let value: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(value["choices"], json!([]));
        assert_eq!(value["object"], "chat.completion.chunk");
        assert_eq!(value["id"], chunk.id);
        assert_eq!(value["usage"]["prompt_tokens"], 5);
        assert_eq!(value["usage"]["completion_tokens"], 1);
        assert_eq!(value["usage"]["total_tokens"], 6);
    }

    #[test]
    fn openai_usage_on_the_finish_chunk_is_kept() {
        let mut finish = openai_chunk(json!({"content": "x"}), json!("length"));
        finish["usage"] = json!({"prompt_tokens": 4, "completion_tokens": 9, "total_tokens": 13});
        let (payloads, translator) = translate_openai(&[finish], true);
        assert_eq!(
            names(&payloads),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(payloads[4].1["delta"]["stop_reason"], "max_tokens");
        assert_eq!(payloads[4].1["usage"]["output_tokens"], 9);
        assert_eq!(
            translator.usage(),
            TokenUsage {
                input_tokens: 4,
                output_tokens: 9,
                ..TokenUsage::default()
            }
        );
    }

    #[test]
    fn openai_cumulative_usage_on_every_chunk_replaces() {
        // vLLM with continuous usage stats sends cumulative usage on every chunk.
        let chunks: Vec<Value> = (1..=3)
            .map(|completion| {
                let mut value = openai_chunk(json!({"content": "t"}), if completion == 3 { json!("stop") } else { Value::Null });
                value["usage"] = json!({"prompt_tokens": 10, "completion_tokens": completion, "total_tokens": 10 + completion});
                value
            })
            .collect();
        let (payloads, translator) = translate_openai(&chunks, true);
        assert_eq!(
            translator.usage(),
            TokenUsage {
                input_tokens: 10,
                output_tokens: 3,
                ..TokenUsage::default()
            }
        );
        // message_start already knew the input from the first chunk.
        assert_eq!(payloads[0].1["message"]["usage"]["input_tokens"], 10);
    }

    #[test]
    fn openai_finish_with_nothing_received_is_a_valid_empty_message() {
        let mut translator = OpenAiToAnthropicStream::new("msg_x", "m");
        let payloads = anthropic_payloads(&translator.finish());
        assert_eq!(
            names(&payloads),
            [
                "message_start",
                "content_block_start",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
    }

    #[test]
    fn openai_data_payloads_including_errors() {
        let mut translator = OpenAiToAnthropicStream::new("msg_x", "m");
        let mut frames = Vec::new();
        frames.extend(
            translator.on_data(&openai_chunk(json!({"content": "Hi"}), Value::Null).to_string()),
        );
        frames.extend(translator.on_data("not json"));
        frames.extend(translator.on_data(r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#));
        frames.extend(
            translator.on_data(&openai_chunk(json!({"content": "late"}), Value::Null).to_string()),
        );
        frames.extend(translator.on_data("[DONE]"));
        let payloads = anthropic_payloads(&frames);
        assert_eq!(
            names(&payloads),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "error"
            ]
        );
        assert_eq!(
            payloads[3].1,
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit reached"}})
        );
        assert!(translator.is_done());
    }

    #[test]
    fn openai_done_payload_finishes() {
        let mut translator = OpenAiToAnthropicStream::new("msg_x", "m");
        let mut frames =
            translator.on_data(&openai_chunk(json!({"content": "Hi"}), json!("stop")).to_string());
        frames.extend(translator.on_data("[DONE]"));
        assert_eq!(
            names(&anthropic_payloads(&frames)).last(),
            Some(&"message_stop")
        );
    }

    #[test]
    fn openai_other_choices_are_ignored() {
        let mut value = openai_chunk(json!({"content": "zero"}), Value::Null);
        value["choices"]
            .as_array_mut()
            .unwrap()
            .push(json!({"index": 1, "delta": {"content": "one"}, "finish_reason": "stop"}));
        let (payloads, translator) = translate_openai(&[value], false);
        assert_eq!(
            names(&payloads),
            [
                "message_start",
                "content_block_start",
                "content_block_delta"
            ]
        );
        assert_eq!(payloads[2].1["delta"]["text"], "zero");
        assert!(!translator.is_done());
    }

    #[test]
    fn error_frames_for_both_clients() {
        let frames = OpenAiToAnthropicStream::error_frames(ApiErrorKind::Overloaded, "Overloaded");
        assert_eq!(
            anthropic_payloads(&frames),
            [(
                "error".to_owned(),
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
            )]
        );
        let frames =
            AnthropicToOpenAiStream::error_frames(ApiErrorKind::BadGateway, "upstream closed");
        assert_eq!(
            openai_payloads(&frames),
            [
                json!({"error": {"message": "upstream closed", "type": "server_error", "param": null, "code": null}})
            ]
        );
    }

    /// The same stream fed as raw payloads and as parsed chunks gives the same count.
    #[test]
    fn openai_stream_usage_pass_through() {
        let mut from_data = OpenAiStreamUsage::new();
        let mut from_chunks = OpenAiStreamUsage::new();
        for value in openai_stream_with_usage() {
            from_data.on_data(&value.to_string());
            from_chunks.on_chunk(&chunk(value));
        }
        assert!(!from_data.saw_done());
        from_data.on_data("[DONE]");
        assert!(from_data.saw_done());
        for tracker in [&from_data, &from_chunks] {
            assert_eq!(
                tracker.usage(),
                Some(TokenUsage {
                    input_tokens: 86,
                    output_tokens: 12,
                    cache_read_tokens: 1920,
                    cache_write_tokens: 0,
                    cache_write_1h_tokens: 0,
                })
            );
            assert_eq!(
                tracker.content_chunks(),
                2,
                "the empty role chunk is not counted"
            );
        }
    }

    #[test]
    fn openai_stream_usage_without_usage_chunk_estimates() {
        let mut tracker = OpenAiStreamUsage::new();
        for text in ["a", "", "b", "c"] {
            tracker.on_data(&openai_chunk(json!({"content": text}), Value::Null).to_string());
        }
        tracker.on_data(r#"{"choices":null,"usage":null}"#);
        tracker.on_data("garbage");
        tracker.on_data(r#"{"choices":[{"delta":{"content":"esc\"aped"}}]}"#);
        assert_eq!(tracker.usage(), None);
        assert_eq!(tracker.estimated_output_tokens(), 4);
    }

    #[test]
    fn anthropic_stream_usage_from_raw_data() {
        let mut tracker = AnthropicStreamUsage::new();
        for event in documented_anthropic_stream() {
            tracker.on_data(&serde_json::to_string(&event).unwrap());
        }
        tracker.on_data("not json");
        assert_eq!(
            tracker.usage(),
            TokenUsage {
                input_tokens: 25,
                output_tokens: 15,
                ..TokenUsage::default()
            }
        );
        assert!(tracker.saw_final_usage());
        assert_eq!(tracker.estimated_output_tokens(), 2);
    }
}
