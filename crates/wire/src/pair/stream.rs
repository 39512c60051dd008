//! One relay for an upstream stream, whatever the pair: SSE bytes in, client frames
//! out, the usage seen, and a failure event in the client's format.
//!
//! The four modes:
//! - OpenAI → OpenAI: passed through; the usage chunk the gateway asked for is
//!   stripped when the client did not ask for it, and synthesised from the estimate
//!   when the client asked and the server sent none (the llama.cpp server ignores
//!   `include_usage`).
//! - Anthropic → Anthropic: passed through, ending at `message_stop`.
//! - Anthropic → OpenAI and OpenAI → Anthropic: translated.
//! - OpenAI or Anthropic → Responses: the chat chunks (an Anthropic stream translated
//!   to them first) written as Responses events ([`crate::responses::ResponsesStream`]).
//!
//! An upstream error event is not passed on as it came: [`StreamRelay::feed`] returns
//! it as [`RelayStep::UpstreamError`], and the caller ends the stream with
//! [`StreamRelay::fail`] and a message of its own.

use bytes::{Bytes, BytesMut};

use super::{ClientFormat, FormatPair};
use crate::error::{self, ApiErrorKind};
use crate::responses::{self, ResponsesStream};
use crate::sse::{self, SseEvent, SseParser};
use crate::translate::{
    AnthropicStreamUsage, AnthropicToOpenAiStream, OpenAiStreamUsage, OpenAiToAnthropicStream,
};
use crate::usage::TokenUsage;
use crate::{anthropic, json, openai};

/// What a relay needs to know of the request.
#[derive(Clone, Debug)]
pub struct RelayInit<'a> {
    /// The gateway's request id: translated streams derive their message id from it.
    pub request_id: &'a str,
    /// The model name written into translated frames.
    pub model: &'a str,
    /// Unix seconds, for the `created` of translated OpenAI chunks.
    pub created_unix_s: u64,
    /// The client's `stream_options.include_usage`.
    pub client_wants_usage: bool,
    /// The prompt's estimated tokens, for usage the server never reports.
    pub input_estimate: u64,
    /// What a Responses client's `response` object repeats of its request.
    pub responses_echo: Option<&'a responses::Echo>,
}

/// What one step of the relay came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayStep {
    /// More is expected.
    Continue,
    /// The stream ended normally; its last frames are in the output.
    Done,
    /// The upstream sent an error event: the caller ends the stream with
    /// [`StreamRelay::fail`]. `message` is the upstream's own.
    UpstreamError { kind: ApiErrorKind, message: String },
}

enum Mode {
    OpenAiPass(OpenAiStreamUsage),
    AnthropicPass(AnthropicStreamUsage),
    ToOpenAi(Box<AnthropicToOpenAiStream>),
    ToAnthropic(Box<OpenAiToAnthropicStream>),
    ToResponses(Box<ToResponses>),
    ResponsesPass(responses::ResponsesPass),
}

/// A Responses client's stream: chat chunks in (from an Anthropic stream, translated
/// first), Responses events out.
struct ToResponses {
    out: ResponsesStream,
    /// For an Anthropic upstream: its events as chat chunks.
    from_anthropic: Option<AnthropicToOpenAiStream>,
    /// For an OpenAI upstream: its usage.
    usage: OpenAiStreamUsage,
}

/// The relay of one upstream stream to one client.
pub struct StreamRelay {
    parser: SseParser,
    mode: Mode,
    client_wants_usage: bool,
    input_estimate: u64,
    ended: bool,
    /// The answer's text as it streams, when asked for ([`StreamRelay::capture_text`]).
    transcript: Option<String>,
}

impl StreamRelay {
    pub(super) fn new(pair: FormatPair, init: &RelayInit<'_>) -> StreamRelay {
        let mode = match (pair.client, pair.backend.speaks_anthropic()) {
            // A Responses backend serves Responses clients alone (`upstream_body`).
            _ if pair.backend.speaks_responses() => {
                Mode::ResponsesPass(responses::ResponsesPass::default())
            }
            (ClientFormat::OpenAi, false) => Mode::OpenAiPass(OpenAiStreamUsage::new()),
            (ClientFormat::Anthropic, true) => Mode::AnthropicPass(AnthropicStreamUsage::new()),
            (ClientFormat::OpenAi, true) => Mode::ToOpenAi(Box::new(AnthropicToOpenAiStream::new(
                &format!("gen-{}", init.request_id),
                init.model,
                init.created_unix_s,
                init.client_wants_usage,
            ))),
            (ClientFormat::Anthropic, false) => Mode::ToAnthropic(Box::new(
                OpenAiToAnthropicStream::new(
                    &format!("msg_{}", init.request_id.replace('-', "")),
                    init.model,
                )
                .with_input_estimate(init.input_estimate),
            )),
            (ClientFormat::Responses, from_anthropic) => Mode::ToResponses(Box::new(ToResponses {
                out: ResponsesStream::new(
                    init.request_id,
                    init.created_unix_s,
                    init.responses_echo.cloned().unwrap_or_default(),
                ),
                from_anthropic: from_anthropic.then(|| {
                    AnthropicToOpenAiStream::new(
                        &format!("gen-{}", init.request_id),
                        init.model,
                        init.created_unix_s,
                        true,
                    )
                }),
                usage: OpenAiStreamUsage::new(),
            })),
        };
        StreamRelay {
            parser: SseParser::new(),
            mode,
            client_wants_usage: init.client_wants_usage,
            input_estimate: init.input_estimate,
            ended: false,
            transcript: None,
        }
    }

    /// Keeps the answer's text as it streams (a shadow pair needs the primary's answer);
    /// [`StreamRelay::text`] returns it.
    pub fn capture_text(&mut self) {
        self.transcript.get_or_insert_with(String::new);
    }

    /// The text streamed so far, when [`StreamRelay::capture_text`] was called.
    pub fn text(&self) -> Option<&str> {
        self.transcript.as_deref()
    }

    /// Appends the text delta of one upstream event to the transcript.
    fn record_text(&mut self, event: &SseEvent) {
        let Some(transcript) = &mut self.transcript else {
            return;
        };
        let upstream_anthropic = match &self.mode {
            Mode::AnthropicPass(_) | Mode::ToOpenAi(_) => true,
            Mode::ToResponses(relay) => relay.from_anthropic.is_some(),
            Mode::OpenAiPass(_) | Mode::ToAnthropic(_) => false,
            Mode::ResponsesPass(_) => {
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(&event.data) {
                    if value["type"] == "response.output_text.delta" {
                        transcript.push_str(value["delta"].as_str().unwrap_or_default());
                    }
                }
                return;
            }
        };
        if upstream_anthropic {
            if let Ok(anthropic::StreamEvent::ContentBlockDelta {
                delta: anthropic::BlockDelta::TextDelta { text },
                ..
            }) = anthropic::StreamEvent::parse(&event.data)
            {
                transcript.push_str(&text);
            }
        } else if let openai::StreamData::Chunk(chunk) = openai::parse_stream_data(&event.data) {
            if let Some(text) = chunk
                .choices
                .first()
                .and_then(|choice| choice.delta.content.as_deref())
            {
                transcript.push_str(text);
            }
        }
    }

    /// Feeds upstream bytes (split anywhere) and appends the client's frames to `out`.
    /// Stops at the first event that ends the stream; what follows it is ignored.
    pub fn feed(&mut self, chunk: &[u8], out: &mut BytesMut) -> RelayStep {
        if self.ended {
            return RelayStep::Done;
        }
        for event in self.parser.feed(chunk) {
            let step = self.on_event(&event, out);
            if step != RelayStep::Continue {
                self.ended = true;
                return step;
            }
        }
        RelayStep::Continue
    }

    /// The upstream body ended: handles an event left without its blank line.
    /// [`RelayStep::Continue`] here means the stream ended before it was complete.
    pub fn end_of_input(&mut self, out: &mut BytesMut) -> RelayStep {
        if self.ended {
            return RelayStep::Done;
        }
        let Some(event) = self.parser.finish() else {
            return RelayStep::Continue;
        };
        let step = self.on_event(&event, out);
        if step != RelayStep::Continue {
            self.ended = true;
        }
        step
    }

    /// Ends the stream with an error event in the client's format (an OpenAI
    /// `data: {"error":…}` frame, or an Anthropic `event: error`). Does nothing once
    /// the stream has failed already.
    pub fn fail(&mut self, kind: ApiErrorKind, message: &str, out: &mut BytesMut) {
        let frames = match &mut self.mode {
            Mode::ToOpenAi(translator) => translator.fail(kind, message),
            Mode::ToAnthropic(translator) => translator.fail(kind, message),
            Mode::OpenAiPass(_) => vec![error::openai_stream_error(kind, message)],
            Mode::AnthropicPass(_) => vec![error::anthropic_stream_error(kind, message)],
            Mode::ToResponses(relay) => relay.out.fail(kind, message),
            Mode::ResponsesPass(pass) => pass.fail(kind, message),
        };
        self.ended = true;
        for frame in frames {
            out.extend_from_slice(&frame);
        }
    }

    /// Tool calls whose arguments were not valid JSON when the stream ended, passed
    /// on as they were (translated streams; a pass-through stream is not parsed that deep).
    pub fn invalid_tool_arguments(&self) -> u64 {
        match &self.mode {
            Mode::ToOpenAi(translator) => translator.invalid_tool_arguments(),
            Mode::ToAnthropic(translator) => translator.invalid_tool_arguments(),
            Mode::ToResponses(relay) => relay.out.invalid_tool_arguments(),
            Mode::OpenAiPass(_) | Mode::AnthropicPass(_) | Mode::ResponsesPass(_) => 0,
        }
    }

    /// The usage so far, and whether any of it is estimated: the server's own counts
    /// where it reported them; otherwise the input estimate and one output token per
    /// content delta.
    pub fn usage(&self) -> (TokenUsage, bool) {
        let input = self.input_estimate;
        match &self.mode {
            Mode::OpenAiPass(usage) => {
                reported_or_estimated(usage.usage(), input, usage.estimated_output_tokens())
            }
            Mode::AnthropicPass(usage) => anthropic_stream_usage(usage, input),
            Mode::ToOpenAi(translator) => anthropic_stream_usage(translator.usage_tracker(), input),
            Mode::ToResponses(relay) => relay.usage(input),
            Mode::ResponsesPass(pass) => {
                reported_or_estimated(pass.usage(), input, pass.estimated_output_tokens())
            }
            Mode::ToAnthropic(translator) => reported_or_estimated(
                translator.has_usage().then(|| translator.usage()),
                input,
                translator.estimated_output_tokens(),
            ),
        }
    }

    fn on_event(&mut self, event: &SseEvent, out: &mut BytesMut) -> RelayStep {
        self.record_text(event);
        match &mut self.mode {
            Mode::OpenAiPass(usage) => {
                if event.is_openai_done() {
                    finish_openai_stream(usage, self.client_wants_usage, self.input_estimate, out);
                    return RelayStep::Done;
                }
                match openai::parse_stream_data(&event.data) {
                    openai::StreamData::Chunk(mut chunk) => {
                        usage.on_chunk(&chunk);
                        if chunk.usage.is_some() && !self.client_wants_usage {
                            // The usage the gateway asked for, which the client did not:
                            // a usage-only chunk is dropped, usage on a chunk with
                            // choices is removed from it.
                            if !chunk.choices.is_empty() {
                                chunk.usage = None;
                                out.extend_from_slice(&sse::openai_data(&json::to_vec(&chunk)));
                            }
                            return RelayStep::Continue;
                        }
                        out.extend_from_slice(&sse::openai_data(event.data.as_bytes()));
                        RelayStep::Continue
                    }
                    openai::StreamData::Error(error) => RelayStep::UpstreamError {
                        kind: ApiErrorKind::from_openai_error(&error.kind, error.code_str()),
                        message: error.message,
                    },
                    openai::StreamData::Done => {
                        finish_openai_stream(
                            usage,
                            self.client_wants_usage,
                            self.input_estimate,
                            out,
                        );
                        RelayStep::Done
                    }
                    openai::StreamData::Invalid(_) => RelayStep::Continue,
                }
            }
            Mode::AnthropicPass(usage) => {
                let name = event.event.as_deref().unwrap_or("message");
                if name == "error" {
                    return anthropic_error(&event.data);
                }
                usage.on_data(&event.data);
                out.extend_from_slice(&sse::anthropic_event(name, event.data.as_bytes()));
                if name == "message_stop" {
                    RelayStep::Done
                } else {
                    RelayStep::Continue
                }
            }
            Mode::ToOpenAi(translator) => {
                if event.event.as_deref() == Some("error") {
                    return anthropic_error(&event.data);
                }
                let Ok(parsed) = anthropic::StreamEvent::parse(&event.data) else {
                    return RelayStep::Continue;
                };
                append(out, translator.on_event(&parsed));
                if translator.is_done() {
                    RelayStep::Done
                } else {
                    RelayStep::Continue
                }
            }
            Mode::ToAnthropic(translator) => {
                if let openai::StreamData::Error(error) = openai::parse_stream_data(&event.data) {
                    return RelayStep::UpstreamError {
                        kind: ApiErrorKind::from_openai_error(&error.kind, error.code_str()),
                        message: error.message,
                    };
                }
                append(out, translator.on_data(&event.data));
                if translator.is_done() {
                    RelayStep::Done
                } else {
                    RelayStep::Continue
                }
            }
            Mode::ToResponses(relay) => relay.on_event(event, self.input_estimate, out),
            Mode::ResponsesPass(pass) => match pass.on_data(&event.data) {
                responses::PassEvent::Error { code, message } => RelayStep::UpstreamError {
                    kind: ApiErrorKind::from_openai_error(
                        code.as_deref().unwrap_or(""),
                        code.as_deref(),
                    ),
                    message,
                },
                step => {
                    let name = event.event.as_deref().unwrap_or("message");
                    out.extend_from_slice(&sse::anthropic_event(name, event.data.as_bytes()));
                    if step == responses::PassEvent::Final {
                        RelayStep::Done
                    } else {
                        RelayStep::Continue
                    }
                }
            },
        }
    }
}

impl ToResponses {
    fn usage(&self, input_estimate: u64) -> (TokenUsage, bool) {
        if let Some(translator) = &self.from_anthropic {
            return anthropic_stream_usage(translator.usage_tracker(), input_estimate);
        }
        reported_or_estimated(
            self.usage.usage(),
            input_estimate,
            self.usage.estimated_output_tokens(),
        )
    }

    /// One chat `data:` payload: a chunk goes to the Responses stream, `[DONE]` ends it.
    fn on_chat_data(&mut self, data: &str, input_estimate: u64, out: &mut BytesMut) -> RelayStep {
        match openai::parse_stream_data(data) {
            openai::StreamData::Chunk(chunk) => {
                if self.from_anthropic.is_none() {
                    self.usage.on_chunk(&chunk);
                }
                let usage = chunk.usage.as_ref().map(openai::Usage::to_token_usage);
                append(out, self.out.on_chunk(&chunk, usage));
            }
            openai::StreamData::Done => {
                let (usage, _) = self.usage(input_estimate);
                append(out, self.out.finish(usage));
            }
            openai::StreamData::Error(error) => {
                return RelayStep::UpstreamError {
                    kind: ApiErrorKind::from_openai_error(&error.kind, error.code_str()),
                    message: error.message,
                }
            }
            openai::StreamData::Invalid(_) => {}
        }
        if self.out.is_done() {
            RelayStep::Done
        } else {
            RelayStep::Continue
        }
    }

    fn on_event(&mut self, event: &SseEvent, input_estimate: u64, out: &mut BytesMut) -> RelayStep {
        let Some(translator) = &mut self.from_anthropic else {
            return self.on_chat_data(&event.data, input_estimate, out);
        };
        if event.event.as_deref() == Some("error") {
            return anthropic_error(&event.data);
        }
        let Ok(parsed) = anthropic::StreamEvent::parse(&event.data) else {
            return RelayStep::Continue;
        };
        // The translator writes chat frames (`data: {…}\n\n`); each is read back as a chunk.
        let frames = translator.on_event(&parsed);
        for frame in frames {
            let text = String::from_utf8_lossy(&frame);
            let data = text
                .trim_end()
                .strip_prefix("data: ")
                .unwrap_or_default()
                .to_owned();
            let step = self.on_chat_data(&data, input_estimate, out);
            if step != RelayStep::Continue {
                return step;
            }
        }
        RelayStep::Continue
    }
}

fn append(out: &mut BytesMut, frames: Vec<Bytes>) {
    for frame in frames {
        out.extend_from_slice(&frame);
    }
}

/// An Anthropic `event: error`, as a step; a body without a kind counts as overloaded.
fn anthropic_error(data: &str) -> RelayStep {
    RelayStep::UpstreamError {
        kind: error::kind_from_body(data.as_bytes()).unwrap_or(ApiErrorKind::Overloaded),
        message: error::message_from_body(data.as_bytes()).unwrap_or_default(),
    }
}

/// The usage the server reported, or else the estimate (input and output), marked estimated.
fn reported_or_estimated(
    reported: Option<TokenUsage>,
    input_estimate: u64,
    output_estimate: u64,
) -> (TokenUsage, bool) {
    match reported {
        Some(reported) => (reported, false),
        None => (
            TokenUsage {
                input_tokens: input_estimate,
                output_tokens: output_estimate,
                ..TokenUsage::default()
            },
            true,
        ),
    }
}

/// Usage of an Anthropic stream: the final `message_delta` counts when they came;
/// otherwise what was seen, with the input estimated if `message_start` never came and
/// the output at least the number of text deltas, marked estimated.
fn anthropic_stream_usage(
    tracker: &AnthropicStreamUsage,
    input_estimate: u64,
) -> (TokenUsage, bool) {
    let mut usage = tracker.usage();
    if tracker.saw_final_usage() {
        return (usage, false);
    }
    if !tracker.saw_message_start() {
        usage.input_tokens = input_estimate;
    }
    usage.output_tokens = usage.output_tokens.max(tracker.estimated_output_tokens());
    (usage, true)
}

/// Ends a passed-through OpenAI stream. A client that asked for `include_usage` gets
/// its usage chunk even from a server that sends none: the estimate, as the ledger
/// records it.
fn finish_openai_stream(
    usage: &OpenAiStreamUsage,
    client_wants_usage: bool,
    input_estimate: u64,
    out: &mut BytesMut,
) {
    if client_wants_usage && usage.usage().is_none() {
        let estimate = TokenUsage {
            input_tokens: input_estimate,
            output_tokens: usage.estimated_output_tokens(),
            ..TokenUsage::default()
        };
        out.extend_from_slice(&usage.usage_chunk(&estimate));
    }
    out.extend_from_slice(sse::OPENAI_DONE);
}
